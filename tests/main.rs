//! The integration tests: one test binary (`integration`; Cargo.toml sets
//! `autotests = false`), with a module by subject, each the file of its
//! name beside this one, and `support` (tests/support/) shared by them.
//! One binary is built and linked once and keeps one copy of `support`.
//!
//! The tests of every module share this process and run side by side: a
//! test that reads process-wide state (open descriptors, threads) allows
//! for the others. A test that needs a process of its own runs this binary
//! again on itself alone, by its full name (`failover::holder_process`,
//! `stale_tickets::waiter_process`).
//!
//! Run one subject with a filter: `cargo test --features cli --test integration faults::`.

mod support;

mod bindings;
mod c_programs;
mod chaos;
mod cli;
mod cluster_heartbeat;
mod cluster_stalls;
mod connecting;
mod data_loss;
mod exporter;
mod failover;
mod fault_scenarios;
mod faults;
mod header;
mod heartbeat;
mod identity;
mod kit;
mod locking;
mod lost;
mod metrics;
mod mixed_fleet;
mod mixed_fleet_waits;
mod modes;
mod pending;
mod pending_faults;
mod readme;
mod stale_tickets;
mod status_facts;

/// Cargo builds no other binary from tests/ (`autotests = false`): a test
/// file that this one does not declare would never be compiled or run.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let dir = support::root().join("tests");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(module) = name.strip_suffix(".rs") else {
            continue;
        };
        if module != "main" && !main.lines().any(|l| l == format!("mod {module};")) {
            missing.push(name.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "tests/main.rs declares no module for {missing:?}"
    );
}
