//! The C ABI from C and C++: real programs compiled against include/turn.h
//! and the built libturn.so with -Wall -Wextra -Werror, run under
//! AddressSanitizer (leaks fail the test) against their own redis-server.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Redis, root, target_dir};

/// Compiles `source` with `compiler` into the temp dir; returns the binary.
/// (The README's C and C++ blocks are compiled so too: tests/readme.rs.)
pub(crate) fn compile(compiler: &str, source: &Path, out_dir: &Path, extra: &[&str]) -> PathBuf {
    let lib = target_dir();
    assert!(
        lib.join("libturn.so").exists(),
        "{} has no libturn.so: build the library first (make test does)",
        lib.display()
    );
    support::soname_link();
    let out = out_dir.join(source.file_stem().unwrap());
    let status = Command::new(compiler)
        .args([
            "-Wall",
            "-Wextra",
            "-Werror",
            "-g",
            "-fsanitize=address",
            "-fno-omit-frame-pointer",
        ])
        .args(extra)
        .arg("-I")
        .arg(root().join("include"))
        .arg(source)
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lturn")
        .status()
        .expect("a C compiler (cc/c++) is installed");
    assert!(
        status.success(),
        "{} does not compile cleanly",
        source.display()
    );
    out
}

fn run(binary: &Path, args: &[&str]) -> String {
    let output = Command::new(binary)
        .args(args)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .output()
        .expect("run the test program");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} failed: {}\n{}",
        binary.display(),
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn c_api_calls_bad_input_and_fork() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile("cc", &root().join("tests/c/api.c"), dir.path(), &[]);
    let mut dead = Redis::start();
    let dead_url = dead.url();
    dead.kill();
    let out = run(&bin, &[&r.url(), &r.port.to_string(), &dead_url]);
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn c_locker_metrics_give_their_size_and_text() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile("cc", &root().join("tests/c/metrics.c"), dir.path(), &[]);
    let out = run(&bin, &[&r.url()]);
    assert!(out.contains("metrics: all checks passed"), "{out}");
}

#[test]
fn c_status_tells_each_tickets_facts() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(
        "cc",
        &root().join("tests/c/status_facts.c"),
        dir.path(),
        &[],
    );
    let out = run(&bin, &[&r.url()]);
    assert!(out.contains("status facts: all checks passed"), "{out}");
}

#[test]
fn c_processes_exclude_each_other_in_fifo_order() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile("cc", &root().join("tests/c/exclusion.c"), dir.path(), &[]);
    let file = dir.path().join("shared.log");
    let out = run(&bin, &[&r.url(), file.to_str().unwrap(), "4", "25"]);
    assert!(out.contains("no overlap"), "{out}");
}

#[test]
fn c_paused_holder_loses_its_lock() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile("cc", &root().join("tests/c/paused.c"), dir.path(), &[]);
    let out = run(&bin, &[&r.url()]);
    assert!(out.contains("late holder lost its lock"), "{out}");
}

#[test]
fn c_lost_fd_quiet_while_held_readable_once_lost() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile("cc", &root().join("tests/c/lost.c"), dir.path(), &[]);
    let out = run(&bin, &[&r.url(), "redis-cli", &r.port.to_string()]);
    println!("{out}");
    assert!(out.contains("lost: all checks passed"), "{out}");
}

#[test]
fn c_pending_acquires_are_served_in_order_from_one_epoll_thread() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile("cc", &root().join("tests/c/pending.c"), dir.path(), &[]);
    let out = run(&bin, &[&r.url()]);
    println!("{out}");
    assert!(out.contains("pending: all checks passed"), "{out}");
}

/// tests/c/modes.c: semaphores, read-write locks and all-or-none from C,
/// blocking and pending; argument errors answered on a locker whose server
/// the program shuts down (so before any round trip).
#[test]
fn c_shared_modes_admit_in_draw_order_and_check_arguments_before_a_round_trip() {
    let r = Redis::start();
    let doomed = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile("cc", &root().join("tests/c/modes.c"), dir.path(), &[]);
    let out = run(&bin, &[&r.url(), &doomed.url(), &doomed.port.to_string()]);
    println!("{out}");
    assert!(out.contains("modes: all checks passed"), "{out}");
}

#[test]
fn c_example_builds_and_runs() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile("cc", &root().join("examples/c/demo.c"), dir.path(), &[]);
    let out = run(&bin, &[&r.url(), "printer", "solo", "2"]);
    assert!(
        out.contains("solo       round 2: done with ticket 2 (TURN_OK)"),
        "{out}"
    );
}

/// The README's epoll example (section Event loops) is examples/c/epoll.c's
/// main, word for word; it builds cleanly and serves its tickets in order.
#[test]
fn c_epoll_example_builds_and_serves_in_order() {
    let source = std::fs::read_to_string(root().join("examples/c/epoll.c")).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let main = &source[source.find("int main(").unwrap()..];
    assert!(
        readme.contains(main.trim_end()),
        "README's Event loops example is not examples/c/epoll.c's main"
    );
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile("cc", &root().join("examples/c/epoll.c"), dir.path(), &[]);
    let out = run(&bin, &[&r.url(), "50"]);
    let expected: String = (1..=50).map(|n| format!("ticket {n}: my turn\n")).collect();
    assert_eq!(out, expected);
}

#[test]
fn header_compiles_as_cplusplus() {
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(
        "c++",
        &root().join("tests/c/cplusplus.cpp"),
        dir.path(),
        &["-std=c++17"],
    );
    let out = run(&bin, &[]);
    assert!(out.contains("TURN_ERR_INVALID_ARGUMENT"), "{out}");
}

#[test]
fn cplusplus_wrapper_under_asan() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(
        "c++",
        &root().join("tests/c/wrapper.cpp"),
        dir.path(),
        &["-std=c++17", "-pthread"],
    );
    let out = run(&bin, &[&r.url()]);
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn cplusplus_pending_acquires_under_asan() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(
        "c++",
        &root().join("tests/c/pending.cpp"),
        dir.path(),
        &["-std=c++17"],
    );
    let out = run(&bin, &[&r.url()]);
    println!("{out}");
    assert!(
        out.contains("pending (C++): served 8 in order, all checks passed"),
        "{out}"
    );
}

#[test]
fn cplusplus_options_and_cancel_under_asan() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(
        "c++",
        &root().join("tests/c/options_cancel.cpp"),
        dir.path(),
        &["-std=c++17", "-pthread"],
    );
    let out = run(&bin, &[&r.url()]);
    println!("{out}");
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn cplusplus_example_builds_and_runs() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(
        "c++",
        &root().join("examples/cpp/example.cpp"),
        dir.path(),
        &["-std=c++17", "-pthread"],
    );
    let out = run(&bin, &[&r.url(), "3", "2"]);
    assert!(out.contains("indicator now 7"), "{out}");
}

/// Runs one check of tests/c/handles.c in a process of its own, whose first
/// locker, lock and cancel token it attacks.
fn c_handles_check(check: &str) {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile("cc", &root().join("tests/c/handles.c"), dir.path(), &[]);
    let out = run(&bin, &[&r.url(), check]);
    assert!(out.contains(&format!("handles: {check} passed")), "{out}");
}

#[test]
fn c_freeing_a_lock_as_a_locker_frees_nothing() {
    c_handles_check("freeing_a_lock_as_a_locker_frees_nothing");
}

#[test]
fn c_freeing_a_handle_as_another_kind_frees_nothing() {
    c_handles_check("freeing_a_handle_as_another_kind_frees_nothing");
}

#[test]
fn c_a_lock_where_a_locker_is_expected_is_invalid() {
    c_handles_check("a_lock_where_a_locker_is_expected_is_invalid");
}

#[test]
fn c_a_locker_or_cancel_where_a_lock_is_expected_is_invalid() {
    c_handles_check("a_locker_or_cancel_where_a_lock_is_expected_is_invalid");
}

#[test]
fn c_made_up_values_are_invalid_never_forked() {
    c_handles_check("made_up_values_are_invalid_never_forked");
}

#[test]
fn c_a_stale_lock_is_invalid_and_never_a_newer_one() {
    c_handles_check("a_stale_lock_is_invalid_and_never_a_newer_one");
}

#[test]
fn c_unknown_result_codes_have_a_static_name() {
    c_handles_check("unknown_result_codes_have_a_static_name");
}

#[test]
fn c_in_a_forked_child_only_real_handles_are_forked() {
    c_handles_check("in_a_forked_child_only_real_handles_are_forked");
}

#[test]
fn c_a_status_freed_twice_or_read_after_free_gives_the_fallback() {
    c_handles_check("a_status_freed_twice_or_read_after_free_gives_the_fallback");
}

#[test]
fn c_options_freed_twice_then_used_are_invalid() {
    c_handles_check("options_freed_twice_then_used_are_invalid");
}

#[test]
fn c_made_up_or_other_kinds_as_status_or_options_are_invalid() {
    c_handles_check("made_up_or_other_kinds_as_status_or_options_are_invalid");
}

#[test]
fn c_guessing_the_next_locks_finds_nothing() {
    c_handles_check("guessing_the_next_locks_finds_nothing");
}

#[test]
fn c_in_a_forked_child_parent_status_and_options_still_work() {
    c_handles_check("in_a_forked_child_parent_status_and_options_still_work");
}

/// The log callback (tests/c/log.c): a slow beat, made by stalling a
/// server that asks for a password, is said to the callback at
/// TURN_LOG_WARN or worse, never with the password, and nothing at all is
/// written on standard error (the program's, captured here).
#[test]
fn c_log_callback_gets_the_warnings_without_the_password_and_stderr_stays_empty() {
    let password = "log-test-s3cret";
    let r = Redis::start_debuggable(&["--requirepass", password]);
    let url = format!("redis://:{password}@127.0.0.1:{}/0", r.port);
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(
        "cc",
        &root().join("tests/c/log.c"),
        dir.path(),
        &["-pthread"],
    );
    let output = Command::new(&bin)
        .args([&url, &r.port.to_string(), password])
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .output()
        .expect("run the test program");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("log: all checks passed"), "{stdout}");
    assert!(!stdout.contains(password), "{stdout}");
    assert!(stderr.is_empty(), "written on standard error:\n{stderr}");
}

/// Signals: an interrupted system call is retried inside the
/// library, never reported. For 3 s each, at once: two lockers' threads
/// contend on a resource (acquire, pending acquire, check, status, release,
/// and the lockers made and freed) while SIGALRM reaches every thread of
/// the process every 200 µs, its handler installed with SA_RESTART, and
/// again without; and two child processes contend while being stopped and
/// continued (SIGSTOP, SIGCONT) again and again. No errors in any.
#[test]
fn c_signals_interrupt_nothing() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = compile(
        "cc",
        &root().join("tests/c/signals.c"),
        dir.path(),
        &["-pthread"],
    );
    let url = r.url();
    let runs: [&[&str]; 3] = [
        &["alarm", "3", "restart"],
        &["alarm", "3", "norestart"],
        &["stop", "3"],
    ];
    let outs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|args| {
                let (bin, url) = (&bin, &url);
                s.spawn(move || {
                    let mut all = vec![url.as_str()];
                    all.extend_from_slice(args);
                    run(bin, &all)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        println!("{out}");
    }
    assert!(outs[0].contains("alarm with SA_RESTART: "), "{}", outs[0]);
    assert!(
        outs[1].contains("alarm without SA_RESTART: "),
        "{}",
        outs[1]
    );
    assert!(outs[2].contains("signals: stop: "), "{}", outs[2]);
    assert!(outs.iter().all(|o| o.contains(" 0 errors")), "{outs:?}");
}
