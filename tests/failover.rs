//! The failover fault kit: a Redis Sentinel set (a master, one
//! replica, three sentinels, down-after 2 s; tests/support/sentinel.rs)
//! failing over under lockers with default options, where a locker
//! follows the master and each grant, renewal and release is confirmed by
//! one replica (WAIT) before it counts.
//!
//! a. The master paused until its replica is promoted, then resumed: the
//!    split-brain window (the old master takes writes until Sentinel
//!    demotes it, about 10 s after the switch), with lockers made before
//!    and after the failover on one resource.
//! b. A planned failover (`SENTINEL FAILOVER`) under load, lockers made
//!    before and after it.
//! c. Locks held across a planned failover: the holder keeps its lock
//!    (its check answers Ok past a whole lease after the switch, its
//!    release Ok) and no one else gets it meanwhile; after the holder
//!    releases, or dies, the next acquirer gets it within the lease + 1 s.
//! d. A failover onto a lagging replica under load: replication stalls
//!    (the replica stopped until the master drops it), the master takes
//!    writes no replica has, then it is killed and the stale replica is
//!    promoted.
//!
//! Each records a history (tests/support/history.rs) that the checker
//! searches for two holders whose check and release answered Ok
//! overlapping, a token given twice or going back among Ok grants,
//! waiters left without a holder for longer than the lease + 1 s after
//! the fault ended, and its other rules.
//!
//! Each scenario runs twice at once, on two Sentinel sets: with default
//! options (asserted), and with `min_replicas` 0 (grants not confirmed),
//! whose counts are printed and not asserted, so that `--nocapture` shows
//! what durable grants change.
//!
//! When a fault ends: with durable grants nothing can be granted while the
//! master has no replica in sync, and a failover leaves the new master
//! alone until the old one is demoted (Sentinel does so about 10 s after
//! the switch) or replaced; recovery is measured from the moment the new
//! master has a replica in sync again. With `min_replicas` 0 it is
//! measured from the switch (every sentinel names the new master).

use crate::support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use redis::Commands;
use support::history::{
    Event, Fence, Fencing, FileLog, History, Report, Rules, Sink, What, Worker, check, parse,
};
use support::load::Load;
use support::sentinel::{Sentinels, Unrest, has_replica_online, master_port};
use support::{Lines, eventually, info_number, now_ns, signal};
use turn::{Acquire, DEFAULT_EXPIRE, Locker, MinReplicas, Options, Wait};

/// The resource of the load scenarios.
const RESOURCE: &str = "res";
/// Environment of the holder process (see [`holder_process`]).
const HOLDER_URL: &str = "TURN_FAILOVER_HOLDER_URL";
const HOLDER_RESOURCE: &str = "TURN_FAILOVER_HOLDER_RESOURCE";
const HOLDER_UNCONFIRMED: &str = "TURN_FAILOVER_HOLDER_UNCONFIRMED";
const HOLDER_LOG: &str = "TURN_FAILOVER_HOLDER_LOG";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The options of a run's lockers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grants {
    /// Default options: a replica confirms each grant. Asserted.
    Durable,
    /// `min_replicas` 0: the master's word is enough. Printed only.
    Unconfirmed,
}

impl Grants {
    fn options(self) -> Options {
        match self {
            Grants::Durable => Options::default(),
            Grants::Unconfirmed => Options {
                min_replicas: Some(MinReplicas::off()),
                ..Options::default()
            },
        }
    }

    fn name(self) -> &'static str {
        match self {
            Grants::Durable => "default options",
            Grants::Unconfirmed => "min_replicas 0",
        }
    }
}

/// An acquire of the load: the default lease, a bounded wait (so that the
/// load stops soon when told to).
fn request() -> Acquire {
    Acquire::default().wait(Wait::For(Duration::from_secs(5)))
}

/// One Ok grant, from a history.
#[derive(Debug, Clone)]
struct Grant {
    id: String,
    worker: String,
    resource: String,
    at: u64,
    /// The last check and the release answered Ok.
    clean: bool,
}

/// The Ok grants of a history, in grant order.
fn grants(events: &[Event]) -> Vec<Grant> {
    let mut events = events.to_vec();
    events.sort_by_key(|e| e.t);
    #[derive(Default)]
    struct Seen {
        granted: Option<(u64, String, String)>,
        last_check: Option<bool>,
        released: Option<bool>,
    }
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for e in &events {
        if e.id == "-" {
            continue;
        }
        let s = seen.entry(e.id.clone()).or_default();
        match &e.what {
            What::Granted { .. } => {
                s.granted = Some((e.t, e.worker.clone(), e.resource.clone()));
            }
            What::Check { ok, .. } => s.last_check = Some(*ok),
            What::Released { ok } => s.released = Some(*ok),
            _ => {}
        }
    }
    let mut out: Vec<Grant> = seen
        .into_iter()
        .filter_map(|(id, s)| {
            let (at, worker, resource) = s.granted?;
            Some(Grant {
                id,
                worker,
                resource,
                at,
                clean: s.released == Some(true) && s.last_check != Some(false),
            })
        })
        .collect();
    out.sort_by_key(|g| g.at);
    out
}

/// The group of a worker: its name up to the first digit or `#`
/// (`before0#12.3` is in group `before`).
fn group(worker: &str) -> &str {
    worker
        .split(|c: char| c.is_ascii_digit() || c == '#')
        .next()
        .unwrap_or(worker)
}

/// Clean holds granted after `t`, per group.
fn clean_after(events: &[Event], t: u64) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for g in grants(events) {
        if g.clean && g.at > t {
            *n.entry(group(&g.worker).to_string()).or_insert(0) += 1;
        }
    }
    n
}

/// One run of a scenario on its own Sentinel set.
struct Run {
    scenario: &'static str,
    grants: Grants,
    set: Sentinels,
    load: Load,
    /// Every locker of the run (kept open until the end).
    lockers: Vec<Locker>,
    t0: u64,
    fault_at: Option<u64>,
    switch_at: Option<u64>,
    healed_at: Option<u64>,
    /// Failovers Sentinel makes on its own, recorded as faults.
    unrest: Unrest,
    /// When the set was last calm after the fault (see [`Unrest`]).
    calm_at: Option<u64>,
    /// Broken promises beyond the checker's rules.
    failures: Vec<String>,
    notes: Vec<String>,
}

/// What a run found.
struct Outcome {
    scenario: &'static str,
    grants: Grants,
    report: Report,
    failures: Vec<String>,
    notes: Vec<String>,
    min_granted: usize,
}

impl Run {
    /// A new set, in sync, with full syncs starting at once (a demoted
    /// master is in sync a moment after it is told, not 5 s later).
    fn start(scenario: &'static str, grants: Grants) -> Run {
        let set = Sentinels::start();
        set.sync_at_once();
        let load = Load::new();
        let unrest = set.record_unrest(&load.history, grants == Grants::Durable);
        Run {
            scenario,
            grants,
            set,
            load,
            lockers: Vec::new(),
            t0: now_ns(),
            fault_at: None,
            switch_at: None,
            healed_at: None,
            unrest,
            calm_at: None,
            failures: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A new locker with the run's options.
    fn locker(&mut self) -> Locker {
        let l = Locker::with_options(Some(&self.set.url()), self.grants.options())
            .unwrap_or_else(|e| panic!("{}: a locker: {e}", self.scenario));
        self.lockers.push(l.clone());
        l
    }

    /// `n` new lockers, two threads each cycling on [`RESOURCE`] (a 5 ms
    /// hold), named `{group}{i}`.
    fn spawn_group(&mut self, group: &str, n: usize) {
        for i in 0..n {
            let l = self.locker();
            for _ in 0..2 {
                let name = format!("{group}{i}");
                self.load
                    .spawn(&name, &l, RESOURCE, &request(), ms(5), Duration::ZERO);
            }
        }
    }

    /// Lets the load run a moment; the premise: it gets holds.
    fn warm_up(&self) {
        let history = &self.load.history;
        assert!(
            eventually(Duration::from_secs(20), || grants(&history.events())
                .iter()
                .any(|g| g.clean)),
            "{}: the premise: the load holds the lock before the fault",
            self.scenario
        );
        sleep(ms(1000));
    }

    fn ago(&self, t: Option<u64>) -> String {
        t.map_or("never".to_string(), |t| {
            format!("{:.1} s", t.saturating_sub(self.t0) as f64 / 1e9)
        })
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn fault(&mut self, name: &str) {
        self.load.history.fault_start(name);
        self.fault_at = Some(now_ns());
    }

    /// Waits until every sentinel names the replica as master. With
    /// `min_replicas` 0 the fault ends here.
    fn switched(&mut self) {
        assert!(
            self.set.switched(Duration::from_secs(60)),
            "{}: the premise: the sentinels promote the replica",
            self.scenario
        );
        self.mark_switch();
    }

    fn mark_switch(&mut self) {
        self.switch_at = Some(now_ns());
        if self.grants == Grants::Unconfirmed {
            self.load.history.fault_end("failover");
        }
    }

    /// Waits until the new master has a replica in sync. With durable
    /// grants the fault ends here.
    fn healed(&mut self) {
        let replica = &self.set.replica;
        assert!(
            eventually(Duration::from_secs(60), || has_replica_online(replica)),
            "{}: the premise: the new master gets a replica in sync",
            self.scenario
        );
        self.healed_at = Some(now_ns());
        if self.grants == Grants::Durable {
            self.load.history.fault_end("failover");
        }
    }

    /// When recovery is measured from: the end of the fault, or of a
    /// failover Sentinel made on its own after it.
    fn end_at(&self) -> u64 {
        match self.grants {
            Grants::Durable => self.healed_at,
            Grants::Unconfirmed => self.switch_at,
        }
        .expect("the fault ended")
        .max(self.calm_at.unwrap_or(0))
    }

    /// Waits until the set is calm, then keeps the load running at least
    /// 2 s after the fault ended, and until each of `groups` had a clean
    /// hold after it (at most the lease + 5 s: a bound for liveness only).
    fn run_on(&mut self, groups: &[&str]) {
        self.calm_at = self.unrest.wait_calm(Duration::from_secs(60));
        assert!(
            self.calm_at.is_some(),
            "{}: the premise: the Sentinel set settles after the fault",
            self.scenario
        );
        let end = self.end_at();
        let start = Instant::now();
        let history = &self.load.history;
        eventually(DEFAULT_EXPIRE + Duration::from_secs(5), || {
            let n = clean_after(&history.events(), end);
            start.elapsed() >= Duration::from_secs(2)
                && groups.iter().all(|g| n.get(*g).is_some_and(|&n| n > 0))
        });
    }

    /// Stops the load, checks the history.
    fn finish(mut self, groups: &[&str], min_granted: usize) -> Outcome {
        self.load.stop(Duration::from_secs(60));
        self.unrest.stop();
        let events = self.load.history.events();
        let report = check(&events, &Rules::default());
        let after = clean_after(&events, self.end_at());
        for g in groups {
            if after.get(*g).is_none_or(|&n| n == 0) {
                self.failures.push(format!(
                    "lockers made {g} the failover had no clean hold after it ended"
                ));
            }
        }
        let first = self.switch_at.and_then(|switch| {
            grants(&events)
                .iter()
                .find(|g| g.clean && g.at > switch)
                .map(|g| g.at)
        });
        let timeline = format!(
            "fault at {}, switch at {}, new master with a replica in sync at {}, \
             first clean hold after the switch at {}; recovery measured from {}; \
             clean holds after that: {after:?}",
            self.ago(self.fault_at),
            self.ago(self.switch_at),
            self.ago(self.healed_at),
            self.ago(first),
            self.ago(Some(self.end_at())),
        );
        self.notes.insert(0, timeline);
        Outcome {
            scenario: self.scenario,
            grants: self.grants,
            report,
            failures: self.failures,
            notes: self.notes,
            min_granted,
        }
    }
}

impl Outcome {
    fn print(&self) {
        let mut out = format!(
            "{} [{}]: {}",
            self.scenario,
            self.grants.name(),
            self.report
        );
        for n in &self.notes {
            out.push_str(&format!("\n  note: {n}"));
        }
        for f in &self.failures {
            out.push_str(&format!("\n  failure: {f}"));
        }
        println!("{out}");
    }
}

/// Runs `scenario` with default options and with `min_replicas` 0 at once
/// (two Sentinel sets), prints both, then asserts the default run.
fn both(run: fn(Grants) -> Outcome) {
    let unconfirmed = thread::spawn(move || run(Grants::Unconfirmed));
    let durable = thread::spawn(move || run(Grants::Durable));
    let (durable, unconfirmed) = (durable.join(), unconfirmed.join());
    for o in [&unconfirmed, &durable].into_iter().flatten() {
        o.print();
    }
    let (durable, unconfirmed) = match (durable, unconfirmed) {
        (Ok(d), Ok(u)) => (d, u),
        (Err(e), _) | (_, Err(e)) => std::panic::resume_unwind(e),
    };
    println!(
        "{}: violations with min_replicas 0: {}, with default options: {}",
        durable.scenario,
        unconfirmed.report.violations.len(),
        durable.report.violations.len()
    );
    assert!(
        durable.failures.is_empty(),
        "{} [default options]: {} failure(s):\n  {}\nchecker: {}",
        durable.scenario,
        durable.failures.len(),
        durable.failures.join("\n  "),
        durable.report
    );
    durable.report.assert_sound(
        &format!("{} [default options]", durable.scenario),
        durable.min_granted,
    );
}

#[test]
fn a_master_paused_until_its_replica_is_promoted_gives_no_lock_twice() {
    both(paused_master);
}

fn paused_master(grants: Grants) -> Outcome {
    let mut run = Run::start("a. master paused until the replica is promoted", grants);
    run.spawn_group("before", 2);
    run.warm_up();
    let pid = run.set.master.pid().unwrap();
    run.fault("master paused");
    signal(pid, "STOP");
    run.switched();
    // The split-brain window opens: the old master takes writes again
    // until Sentinel demotes it (about 10 s from now).
    signal(pid, "CONT");
    run.spawn_group("after", 2);
    run.healed();
    run.run_on(&["before", "after"]);
    run.finish(&["before", "after"], 20)
}

#[test]
fn a_planned_failover_under_load_gives_no_lock_twice() {
    both(planned_failover);
}

fn planned_failover(grants: Grants) -> Outcome {
    let mut run = Run::start("b. planned failover under load", grants);
    run.spawn_group("before", 2);
    run.warm_up();
    run.fault("planned failover");
    // The old master stays up and takes writes until Sentinel demotes it.
    run.set.planned_failover();
    run.switched();
    run.spawn_group("after", 2);
    run.healed();
    run.run_on(&["before", "after"]);
    run.finish(&["before", "after"], 20)
}

#[test]
fn a_failover_onto_a_lagging_replica_gives_no_token_twice() {
    both(lagging_replica);
}

/// A key the test writes on the master once it has dropped its replica.
const AFTER_THE_STALL: &str = "failover-test:written-after-the-stall";

fn lagging_replica(grants: Grants) -> Outcome {
    let mut run = Run::start("d. failover onto a lagging replica under load", grants);
    // The master drops a replica that has not answered for 1 s (Redis's
    // least); until then what it sends waits in socket buffers, which the
    // replica reads when it runs again.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-timeout")
        .arg("1")
        .query(&mut run.set.master.conn())
        .unwrap();
    run.spawn_group("before", 2);
    run.warm_up();
    let replica_pid = run.set.replica.pid().unwrap();
    run.fault("failover onto a lagging replica");
    signal(replica_pid, "STOP");
    let master = &run.set.master;
    assert!(
        eventually(Duration::from_secs(20), || info_number(
            &mut master.conn(),
            "replication",
            "connected_slaves",
            None
        ) == Some(0)),
        "the premise: the master drops its stopped replica"
    );
    let _: () = master.conn().set(AFTER_THE_STALL, 1).unwrap();
    // The lockers write on for a second that no replica will see.
    sleep(ms(1000));
    let dispenser: Option<u64> = master.conn().get("turn:res:dispenser").unwrap();
    run.set.master.kill();
    signal(replica_pid, "CONT");
    run.switched();
    let mut new_master = run.set.replica.conn();
    let lagged: bool = new_master.exists(AFTER_THE_STALL).unwrap();
    assert!(
        !lagged,
        "the premise: the promoted replica lacks writes the master took"
    );
    let promoted: Option<u64> = new_master.get("turn:res:dispenser").unwrap();
    run.note(format!(
        "dispenser {dispenser:?} on the old master a moment before it was killed, \
         {promoted:?} on the promoted replica"
    ));
    run.spawn_group("after", 2);
    // The old master comes back empty and replicates the new one.
    run.set.master.restart();
    run.set.demote_old_master();
    run.healed();
    run.run_on(&["before", "after"]);
    run.finish(&["before", "after"], 20)
}

#[test]
fn a_lock_held_across_a_planned_failover_stays_held_then_passes_on() {
    both(held_across);
}

/// Waits (at most `limit`) for `done`, checking the holder's lock every
/// 250 ms meanwhile and recording each check; true when done.
fn checking(
    h: &Worker,
    id: &str,
    lock: &turn::Lock,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let end = Instant::now() + limit;
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            let ok = lock.check().is_ok();
            h.record(
                id,
                lock.resource(),
                What::Check {
                    ok,
                    at_grant: false,
                },
            );
            next += ms(250);
        }
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        sleep(ms(20));
    }
}

/// c: the holder of "held" (a thread here) and of "dying" (another
/// process) keep their locks across a planned failover while contenders
/// from lockers made before and after it wait; then the first releases
/// and the second is killed. Sentinel would demote the old master about
/// 10 s after the switch; here it is told at once, as an operator would:
/// with durable grants a renewal counts only once a replica has it, and
/// the new master has none until the old one is demoted, so a lock with
/// the default lease (10 s) is lost across Sentinel's own delay (reported
/// Lost, as it must be); scenarios a and b run through that window.
fn held_across(mode: Grants) -> Outcome {
    let mut run = Run::start("c. locks held across a planned failover", mode);
    let history: History = run.load.history.clone();
    let fence = run.load.fence.clone();
    let holder_locker = run.locker();
    let mut h = Worker::new("holder", &history, &*fence);
    let (h_id, h_lock) = h.acquire(
        &holder_locker,
        "held",
        &Acquire::default().wait(Wait::For(Duration::from_secs(10))),
    );
    let h_lock = h_lock.unwrap_or_else(|e| panic!("the premise: the holder takes \"held\": {e}"));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dying.log");
    let mut dying = HolderProcess::spawn(&run.set.url(), "dying", mode, &log);
    let contenders = run.locker();
    for resource in ["held", "dying"] {
        run.load.spawn(
            "before0",
            &contenders,
            resource,
            &request(),
            ms(5),
            Duration::ZERO,
        );
    }
    // The contenders queue behind the holders.
    checking(&h, &h_id, &h_lock, ms(500), || false);

    run.fault("planned failover");
    run.set.planned_failover();
    let replica = run.set.replica.port;
    let first = &run.set.sentinels[0];
    let promoted = || master_port(first) == Some(replica);
    assert!(
        checking(&h, &h_id, &h_lock, Duration::from_secs(60), promoted),
        "the premise: the replica is promoted"
    );
    run.set.demote_old_master();
    let set = &run.set;
    let agreed = || set.all_name(replica);
    assert!(
        checking(&h, &h_id, &h_lock, Duration::from_secs(60), agreed),
        "the premise: every sentinel names the new master"
    );
    run.mark_switch();
    let after = run.locker();
    for resource in ["held", "dying"] {
        run.load.spawn(
            "after0",
            &after,
            resource,
            &request(),
            ms(5),
            Duration::ZERO,
        );
    }
    let new_master = &run.set.replica;
    assert!(
        checking(&h, &h_id, &h_lock, Duration::from_secs(60), || {
            has_replica_online(new_master)
        }),
        "the premise: the new master gets a replica in sync"
    );
    run.healed_at = Some(now_ns());
    if mode == Grants::Durable {
        history.fault_end("failover");
    }
    checking(&h, &h_id, &h_lock, ms(1000), || false);
    let dying_pid = dying.pid;
    dying.kill();
    history.process_event(dying_pid, What::Died);
    let died_at = now_ns();
    let d_serial = dying_log(&log).iter().find_map(|e| match e.what {
        What::Granted { serial, .. } => Some(serial),
        _ => None,
    });
    let pttl: i64 = run
        .set
        .replica
        .conn()
        .pttl(format!("turn:dying:serial:{}", d_serial.unwrap_or(0)))
        .unwrap();
    run.note(format!(
        "the holder of \"dying\" (serial {d_serial:?}) died with {pttl} ms left on its presence key"
    ));
    // The holder's lock outlives a whole lease after the switch only if it
    // was renewed (and the renewals confirmed) on the new master.
    let switch_at = run.switch_at.unwrap();
    let keep_until = switch_at + (DEFAULT_EXPIRE + Duration::from_secs(1)).as_nanos() as u64;
    checking(&h, &h_id, &h_lock, Duration::from_secs(60), || {
        now_ns() >= keep_until
    });
    let released_at = now_ns();
    let token = h_lock.token();
    let accepted = fence.offer("held", token);
    h.record(&h_id, "held", What::Stored { token, accepted });
    let checked = h_lock.check();
    h.record(
        &h_id,
        "held",
        What::Check {
            ok: checked.is_ok(),
            at_grant: false,
        },
    );
    h.record(&h_id, "held", What::ReleaseCalled);
    let released = h_lock.release();
    h.record(
        &h_id,
        "held",
        What::Released {
            ok: released.is_ok(),
        },
    );
    let clean = checked.is_ok() && released.is_ok();
    // The next acquirers: within the lease + 1 s (the checker's rule);
    // waited for here with a bound for liveness only.
    let passed_on = |resource: &str, after: u64| {
        grants_on(&history, &dying_log(&log), resource)
            .iter()
            .any(|g| group(&g.worker) != "holder" && g.at > after)
    };
    eventually(DEFAULT_EXPIRE + Duration::from_secs(5), || {
        passed_on("held", released_at) && passed_on("dying", died_at)
    });
    run.load.stop(Duration::from_secs(60));
    history.extend(dying_log(&log));

    let events = history.events();
    let mut failures = Vec::new();
    let h_checks: Vec<bool> = events
        .iter()
        .filter(|e| e.id == h_id)
        .filter_map(|e| match e.what {
            What::Check { ok, .. } => Some(ok),
            _ => None,
        })
        .collect();
    let lost = h_checks.iter().filter(|ok| !**ok).count();
    if lost > 0 || !clean {
        failures.push(format!(
            "the holder of \"held\" did not keep it: {lost} of {} checks answered Lost; \
             the last check answered {checked:?}, the release {released:?}",
            h_checks.len()
        ));
    }
    let d_checks: Vec<bool> = events
        .iter()
        .filter(|e| e.resource == "dying" && group(&e.worker) == "dying")
        .filter_map(|e| match e.what {
            What::Check { ok, .. } => Some(ok),
            _ => None,
        })
        .collect();
    let lost = d_checks.iter().filter(|ok| !**ok).count();
    if d_checks.is_empty() || lost > 0 {
        failures.push(format!(
            "the holder of \"dying\" did not keep it until it died: {lost} of {} checks answered Lost",
            d_checks.len()
        ));
    }
    let all = grants(&events);
    for (resource, until, who) in [
        ("held", released_at, "released"),
        ("dying", died_at, "died"),
    ] {
        let others: Vec<&Grant> = all
            .iter()
            .filter(|g| g.resource == resource && !matches!(group(&g.worker), "holder" | "dying"))
            .collect();
        for g in others.iter().filter(|g| g.at < until) {
            failures.push(format!(
                "{} was granted \"{resource}\" {:.1} s before its holder {who}",
                g.id,
                (until - g.at) as f64 / 1e9
            ));
        }
        if !others.iter().any(|g| g.at > until) {
            failures.push(format!("no one got \"{resource}\" after its holder {who}"));
        }
        if let Some(g) = others.iter().find(|g| g.at > until) {
            run.note(format!(
                "\"{resource}\" passed on {:.2} s after its holder {who}",
                (g.at - until) as f64 / 1e9
            ));
        }
    }
    run.failures.extend(failures);
    run.note(format!(
        "the holder of \"held\" made {} checks, the holder of \"dying\" {}",
        h_checks.len(),
        d_checks.len()
    ));
    run.finish(&[], 4)
}

/// The Ok grants on `resource` in the history and the extra events.
fn grants_on(history: &History, extra: &[Event], resource: &str) -> Vec<Grant> {
    let mut events = history.events();
    events.extend_from_slice(extra);
    grants(&events)
        .into_iter()
        .filter(|g| g.resource == resource)
        .collect()
}

/// The events the holder process wrote so far.
fn dying_log(log: &Path) -> Vec<Event> {
    parse(&std::fs::read_to_string(log).unwrap_or_default())
}

/// A process (this test binary, running [`holder_process`]) holding a lock
/// until killed, recording its acquire and a check every 250 ms in a
/// history file.
struct HolderProcess {
    child: Child,
    pid: u32,
}

impl HolderProcess {
    /// Starts it and waits until it holds the lock on `resource`.
    fn spawn(url: &str, resource: &str, mode: Grants, log: &Path) -> HolderProcess {
        // This test binary again, running that test alone (by its full name:
        // the binary holds every module's tests).
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "failover::holder_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(HOLDER_URL, url)
            .env(HOLDER_RESOURCE, resource)
            .env(
                HOLDER_UNCONFIRMED,
                if mode == Grants::Unconfirmed {
                    "1"
                } else {
                    "0"
                },
            )
            .env(HOLDER_LOG, log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut lines = Lines::new(child.stdout.take().unwrap());
        let mut p = HolderProcess { child, pid };
        if !lines.wait_for("held ", Duration::from_secs(30)) {
            p.kill();
            panic!(
                "the premise: the holder process takes \"{resource}\": {:?}",
                lines.rest(Duration::from_secs(1))
            );
        }
        p
    }

    /// SIGKILL.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HolderProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Not a test by itself: the holder process of scenario c, started by
/// [`HolderProcess::spawn`] with its settings in the environment. Takes the
/// lock, prints "held TOKEN", then checks it every 250 ms until killed.
#[test]
#[ignore = "a helper process of the failover tests, which run it"]
fn holder_process() {
    let Ok(url) = std::env::var(HOLDER_URL) else {
        return;
    };
    let resource = std::env::var(HOLDER_RESOURCE).unwrap();
    let mode = if std::env::var(HOLDER_UNCONFIRMED).as_deref() == Ok("1") {
        Grants::Unconfirmed
    } else {
        Grants::Durable
    };
    let log = FileLog(PathBuf::from(std::env::var(HOLDER_LOG).unwrap()));
    let fence = Fence::default();
    let locker = Locker::with_options(Some(&url), mode.options()).unwrap();
    let mut w = Worker::new("dying", &log, &fence);
    let (id, lock) = w.acquire(
        &locker,
        &resource,
        &Acquire::default().wait(Wait::For(Duration::from_secs(20))),
    );
    let lock = match lock {
        Ok(lock) => lock,
        Err(e) => {
            println!("failed {e}");
            return;
        }
    };
    println!("held {}", lock.token());
    std::io::stdout().flush().unwrap();
    loop {
        sleep(ms(250));
        let ok = lock.check().is_ok();
        w.record(
            &id,
            &resource,
            What::Check {
                ok,
                at_grant: false,
            },
        );
    }
}

/// With two replicas, Sentinel's own schedule is enough: the holder of a
/// lock with the default lease (default options: each renewal confirmed
/// by one replica) keeps it across a planned failover that nobody helps
/// along (the old master is left for Sentinel to demote, about 10 s after
/// the switch), because Sentinel moves the second replica under the new
/// master as part of the failover, so renewals there are confirmed at
/// once. (With one replica the new master has none until the old master
/// is demoted, and the lock is lost: see `held_across`.)
#[test]
fn with_two_replicas_a_lock_held_across_a_planned_failover_stays_held() {
    use std::sync::{Arc, Mutex};
    use support::queued;
    use support::sentinel::{role, synced_to};

    let set = Sentinels::start_with_replicas(2);
    let url = set.url();
    let t0 = Instant::now();
    let at = |t: Instant| format!("{:.2} s", t.duration_since(t0).as_secs_f64());
    let waiter = Locker::new(Some(&url)).unwrap();
    let holder = Locker::new(Some(&url)).unwrap();
    assert!(
        holder.min_replicas().is_on(),
        "the premise: replica confirmation is on by default on a Sentinel URL"
    );
    let lock = holder
        .acquire(
            "held",
            &Acquire::default().wait(Wait::For(Duration::from_secs(20))),
        )
        .unwrap_or_else(|e| panic!("the premise: the holder takes \"held\": {e}"));
    let token = lock.token();

    // The waiter: when it was granted, and the token or the error.
    type Granted = Option<(Instant, Result<u64, String>)>;
    let granted: Arc<Mutex<Granted>> = Arc::default();
    let waiting = thread::spawn({
        let granted = granted.clone();
        move || {
            let request = Acquire::default().wait(Wait::For(Duration::from_secs(180)));
            let lock = waiter.acquire("held", &request);
            *granted.lock().unwrap() = Some((
                Instant::now(),
                lock.as_ref().map(|l| l.token()).map_err(|e| e.to_string()),
            ));
            lock.map(|l| l.release())
        }
    });
    assert!(
        queued(&holder, "held", 2),
        "the premise: the waiter queues behind the holder"
    );

    let new_master = set.replica.port;
    let other = &set.more[0];
    let mut log: Vec<String> = Vec::new();
    let mut lost: Vec<String> = Vec::new();
    let mut early: Option<String> = None;
    let mut checks = 0;
    let mut beats = 0;
    let mut promoted_at = None;
    let mut switch_at: Option<Instant> = None;
    let mut other_online_at = None;
    let mut demoted_at = None;

    let failover_at = Instant::now();
    set.planned_failover();
    log.push(format!("{}: SENTINEL FAILOVER accepted", at(failover_at)));
    let mut next_check = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_check {
            checks += 1;
            if let Err(e) = lock.check() {
                lost.push(format!("{}: check: {e}", at(now)));
            }
            if early.is_none()
                && let Some((t, r)) = &*granted.lock().unwrap()
            {
                early = Some(format!("{}: the waiter got {r:?}", at(*t)));
            }
            next_check += ms(250);
        }
        if let Some(b) = holder.last_beat()
            && b.beats != beats
        {
            beats = b.beats;
            log.push(format!(
                "{}: the holder's beat {}: {} ticket(s), {:?}, {} round trip(s), {} slow; health {:?}",
                at(now),
                b.beats,
                b.tickets,
                b.duration,
                b.round_trips,
                b.slow_beats,
                holder.health()
            ));
        }
        if promoted_at.is_none() && master_port(&set.sentinels[0]) == Some(new_master) {
            promoted_at = Some(now);
            log.push(format!(
                "{}: the first sentinel names the new master",
                at(now)
            ));
        }
        if switch_at.is_none() && set.all_name(new_master) {
            switch_at = Some(now);
            log.push(format!(
                "{}: every sentinel names the new master (the switch)",
                at(now)
            ));
        }
        if other_online_at.is_none() && synced_to(other, new_master) {
            other_online_at = Some(now);
            log.push(format!(
                "{}: the other replica is in sync with the new master",
                at(now)
            ));
        }
        if demoted_at.is_none() && role(&set.master).as_deref() == Some("slave") {
            demoted_at = Some(now);
            log.push(format!("{}: Sentinel demoted the old master", at(now)));
        }
        match switch_at {
            // Past a whole lease (and a margin) after the switch.
            Some(s) if now >= s + DEFAULT_EXPIRE + Duration::from_secs(2) => break,
            None => assert!(
                now < failover_at + Duration::from_secs(60),
                "the premise: the sentinels switch to the new master within a minute"
            ),
            _ => {}
        }
        sleep(ms(50));
    }
    let switch_at = switch_at.unwrap();
    let since_switch = |t: Option<Instant>| {
        t.map_or("not yet".to_string(), |t| {
            let d = if t >= switch_at {
                t.duration_since(switch_at).as_secs_f64()
            } else {
                -switch_at.duration_since(t).as_secs_f64()
            };
            format!("{d:+.2} s from the switch")
        })
    };
    println!(
        "failover at {}; first sentinel named the new master {}; switch at {}; \
         the other replica in sync with the new master {}; old master demoted {}; \
         {checks} checks, {} lost",
        at(failover_at),
        since_switch(promoted_at),
        at(switch_at),
        since_switch(other_online_at),
        since_switch(demoted_at),
        lost.len()
    );
    for l in &log {
        println!("  {l}");
    }
    assert!(
        lost.is_empty(),
        "the holder lost its lock: {} of {checks} checks answered Lost, the first at {}\n  \
         last beat {:?}, health {:?}",
        lost.len(),
        lost[0],
        holder.last_beat(),
        holder.health()
    );
    assert!(
        early.is_none(),
        "the waiter was granted while the holder held: {}",
        early.unwrap()
    );

    // A locker made after the switch takes and releases another resource.
    let after = Locker::new(Some(&url)).unwrap();
    let other_lock = after
        .acquire(
            "other",
            &Acquire::default().wait(Wait::For(Duration::from_secs(20))),
        )
        .unwrap_or_else(|e| panic!("a locker made after the switch takes \"other\": {e}"));
    other_lock
        .release()
        .unwrap_or_else(|e| panic!("a locker made after the switch releases \"other\": {e}"));

    let released_at = Instant::now();
    lock.release()
        .unwrap_or_else(|e| panic!("the holder releases \"held\": {e}"));
    // Liveness only: well within a lease.
    assert!(
        eventually(DEFAULT_EXPIRE + Duration::from_secs(10), || granted
            .lock()
            .unwrap()
            .is_some()),
        "the waiter never got \"held\" after its release"
    );
    let (granted_at, waiter_token) = granted.lock().unwrap().clone().unwrap();
    println!(
        "released at {}; the waiter got \"held\" {:.3} s later: {waiter_token:?} (the holder's token {token})",
        at(released_at),
        granted_at.duration_since(released_at).as_secs_f64()
    );
    let waiter_token =
        waiter_token.unwrap_or_else(|e| panic!("the waiter gets \"held\" after the release: {e}"));
    assert!(
        waiter_token > token,
        "the waiter's token {waiter_token} is not above the holder's {token}"
    );
    waiting
        .join()
        .unwrap()
        .expect("the waiter was granted")
        .unwrap_or_else(|e| panic!("the waiter releases \"held\": {e}"));
}
