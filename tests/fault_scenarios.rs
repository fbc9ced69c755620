//! Fault scenarios on stalls, pauses and lost connections, default options:
//! many hand-offs per round trip through a slow link (the heartbeat must
//! keep every lock), a waiter paused while its turn is in flight, DEBUG
//! SLEEP beyond the lease, pubsub connections killed under load, a locker
//! freed while an acquire waits, a random mix of faults through the
//! proxy (also under the shared modes), and FIFO order through slow links
//! (also of a semaphore and a read-write lock, whose later tickets must
//! not pass an earlier one that does not fit yet). Each scenario records a
//! history (tests/support/history.rs) and asserts that the checker finds
//! no violation and that work was done.
//!
//! Load scenarios run a random fault schedule (seed printed) for a few
//! seconds, or TURN_SOAK_SECS under `make soak`.

use crate::support;

use std::ffi::CString;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use support::history::{FileFence, History, Rules, Sink, What, Worker, parse};
use support::load::{Load, lockers};
use support::proxy::{Direction, Proxy};
use support::{Redis, Rng, chaos_worker, queued, signal, soak_duration};
use turn::ffi::{
    turn_lock, turn_lock_acquire, turn_lock_release, turn_lock_serial, turn_lock_token,
    turn_locker, turn_locker_free, turn_locker_new, turn_result,
};
use turn::{Acquire, Locker, Mode, Wait};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A bounded acquire with this lease.
fn request(lease: Duration) -> Acquire {
    Acquire::default()
        .expire(lease)
        .wait(Wait::For(Duration::from_secs(20)))
}

/// A server without persistence that takes DEBUG commands.
fn debuggable_redis() -> Redis {
    Redis::start_debuggable(&[])
}

#[test]
fn the_heartbeat_keeps_every_lock_through_many_hand_offs_per_round_trip() {
    let r = Redis::start();
    let proxy = Proxy::start(r.port);
    // About 4 ms per round trip.
    proxy.latency(ms(2), ms(1));
    let mut load = Load::new();
    let ls = lockers(&proxy.url(), 4);
    // Two threads per resource, in two different lockers: every turn is
    // handed over by message; 24 resources keep many hand-offs in flight.
    let resources = 24;
    for i in 0..resources {
        for k in 0..2 {
            let n = (i + k) % ls.len();
            load.spawn(
                &format!("l{n}"),
                &ls[n],
                &format!("res{i}"),
                // The default lease: 48 busy threads on a small machine
                // must not starve a renewal into a loss.
                &request(turn::DEFAULT_EXPIRE),
                Duration::ZERO,
                Duration::ZERO,
            );
        }
    }
    let run = soak_duration(Duration::from_secs(30));
    sleep(run);
    load.stop(Duration::from_secs(60));
    let report = load.history.check(&Rules {
        no_loss: true,
        ..Rules::default()
    });
    // The rate reached is CPU-bound (debug build, two cores): printed, not
    // asserted.
    let round_trips = run.as_secs_f64() / 0.004;
    println!(
        "hand-offs through the proxy: {} grants in {run:?}, {:.1} per 4 ms round trip",
        report.granted,
        report.granted as f64 / round_trips
    );
    report.assert_sound("many hand-offs per round trip", 1000);
}

#[test]
fn a_waiter_paused_while_its_turn_is_in_flight_does_not_take_the_passed_ticket() {
    let r = Redis::start();
    // W, a worker process, reaches Redis through the proxy; the holder H
    // and the next waiter X are here, straight to Redis.
    let proxy = Proxy::start(r.port);
    let dir = tempfile::tempdir().unwrap();
    let history = History::new();
    let fence = Arc::new(FileFence(dir.path().to_path_buf()));
    let l = Locker::new(Some(&r.url())).unwrap();
    let mut h = Worker::new("h", &history, &*fence);
    let (h_id, h_lock) = h.acquire(&l, "res", &request(Duration::from_secs(10)));
    let h_lock = h_lock.unwrap();
    let log = dir.path().join("log.w");
    let mut w = Command::new(chaos_worker())
        .arg(proxy.url())
        .args(["res", "1", "1"])
        .arg(&log)
        .arg(dir.path())
        .args(["1000", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(queued(&l, "res", 2), "W never queued");
    let x_locker = Locker::new(Some(&r.url())).unwrap();
    let x_thread = {
        let (history, fence) = (history.clone(), fence.clone());
        thread::spawn(move || {
            let mut x = Worker::new("x", &history, &*fence);
            let (id, lock) = x.acquire(
                &x_locker,
                "res",
                &Acquire::default()
                    .expire(Duration::from_secs(10))
                    .wait(Wait::For(Duration::from_secs(30))),
            );
            (id, lock, x_locker)
        })
    };
    assert!(queued(&l, "res", 3), "X never queued");
    // W's link stalls: its next heartbeat (a third of its 1 s lease) waits
    // in the proxy, unanswered. Then W stops.
    proxy.stall();
    history.fault_start("stall");
    sleep(ms(600));
    signal(w.id(), "STOP");
    history.process_event(w.id(), What::Paused);
    // H hands the turn to W: the message waits in the proxy.
    assert!(h.finish(&h_id, h_lock, Duration::ZERO));
    // W's lease lapses; X, the next live ticket, passes W's and holds.
    let (x_id, x_lock, x_locker) = x_thread.join().unwrap();
    let x_lock = x_lock.expect("X is granted once W's lease lapsed");
    assert_eq!(x_lock.serial(), 3, "the premise: X passed W's ticket 2");
    // The turn message reaches W at once; its heartbeat's requests only
    // 3 s later. W runs again, stopped for longer than its lease.
    proxy.latency_one_way(Direction::Up, Duration::from_secs(3), Duration::ZERO);
    proxy.resume();
    history.fault_end("stall");
    sleep(ms(300));
    signal(w.id(), "CONT");
    history.process_event(w.id(), What::Resumed);
    sleep(ms(1500));
    let x = Worker::new("x-end", &history, &*fence);
    x.finish(&x_id, x_lock, Duration::ZERO);
    proxy.latency_one_way(Direction::Up, Duration::ZERO, Duration::ZERO);
    // W goes on (a new ticket if it lost its own) and finishes.
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end && w.try_wait().unwrap().is_none() {
        sleep(ms(50));
    }
    if w.try_wait().unwrap().is_none() {
        let _ = w.kill();
    }
    let status = w.wait().unwrap();
    drop(x_locker);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    println!("W wrote:\n{text}");
    let events = parse(&text);
    let mut failures = Vec::new();
    if !status.success() {
        failures.push(format!("W did not finish: {status:?}"));
    }
    for e in &events {
        if let What::Granted { serial: 2, .. } = e.what {
            failures.push(format!(
                "W's acquire answered Ok for ticket 2, which X passed while W was stopped past its lease ({})",
                e.id
            ));
        }
    }
    history.extend(events);
    let report = history.check(&Rules::default());
    println!("paused waiter: {report}");
    assert!(
        failures.is_empty() && report.violations.is_empty(),
        "failures: {failures:#?}\nchecker: {report}"
    );
    assert!(report.granted >= 2);
}

#[test]
fn debug_sleep_beyond_the_lease_breaks_no_guarantee() {
    let r = debuggable_redis();
    let mut load = Load::new();
    let ls = lockers(&r.url(), 3);
    load.cycle_on(
        &ls,
        "res",
        &request(Duration::from_secs(1)),
        ms(5),
        Duration::ZERO,
    );
    let mut rng = Rng::seeded("DEBUG SLEEP");
    let run = soak_duration(Duration::from_secs(8));
    let start = Instant::now();
    let mut sleeps = 0;
    let mut admin = r.conn();
    while start.elapsed() < run {
        sleep(rng.between(ms(700), ms(1500)));
        load.history.fault_start("debug sleep");
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(3)
            .query(&mut admin)
            .expect("DEBUG SLEEP (enabled with --enable-debug-command)");
        load.history.fault_end("debug sleep");
        sleeps += 1;
    }
    sleep(ms(1500));
    load.stop(Duration::from_secs(60));
    assert!(sleeps >= 1);
    load.history
        .check(&Rules::default())
        .assert_sound("DEBUG SLEEP beyond the lease", 20);
}

#[test]
fn killing_pubsub_connections_under_load_strands_no_waiter() {
    let r = Redis::start();
    let mut load = Load::new();
    let ls = lockers(&r.url(), 3);
    // Patience stays at its 60 s default: only the library's own
    // re-reads can save a waiter whose message was lost.
    load.cycle_on(
        &ls,
        "res",
        &request(Duration::from_secs(2)),
        ms(2),
        Duration::ZERO,
    );
    let mut rng = Rng::seeded("CLIENT KILL TYPE pubsub");
    let run = soak_duration(Duration::from_secs(6));
    let start = Instant::now();
    let (mut kills, mut killed) = (0, 0);
    let mut admin = r.conn();
    while start.elapsed() < run {
        sleep(rng.between(ms(100), ms(600)));
        // Not recorded as a fault: waiters must get their turn within the
        // lease + 1 s whatever happens to their subscriptions.
        let n: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut admin)
            .unwrap();
        kills += 1;
        killed += n;
    }
    load.stop(Duration::from_secs(60));
    println!("pubsub kills: {kills} rounds, {killed} connections");
    assert!(killed >= 1, "no pubsub connection was ever killed");
    load.history
        .check(&Rules::default())
        .assert_sound("CLIENT KILL TYPE pubsub under load", 50);
}

#[test]
fn tickets_are_granted_in_draw_order_through_slow_links_and_pubsub_kills() {
    draw_order_rounds("FIFO", Mode::Plain, |_| Mode::Plain);
}

/// The holder takes 2 of 3 permits; each round's first waiter asks for 2
/// (it waits), the next for 1 (it would fit beside the holder, but must not
/// pass the first), and so on.
#[test]
fn a_semaphore_admits_in_draw_order_through_slow_links_and_pubsub_kills() {
    draw_order_rounds(
        "FIFO, semaphore",
        Mode::Semaphore {
            permits: 3,
            weight: 2,
        },
        |i| Mode::Semaphore {
            permits: 3,
            weight: 2 - (i % 2) as u32,
        },
    );
}

/// The holder is shared; each round's first waiter is exclusive (it
/// waits), the next shared (it would hold beside the holder, but must not
/// pass the writer), and so on.
#[test]
fn a_read_write_lock_admits_in_draw_order_through_slow_links_and_pubsub_kills() {
    draw_order_rounds(
        "FIFO, read-write lock",
        Mode::ReadWrite { exclusive: false },
        |i| Mode::ReadWrite {
            exclusive: i % 3 == 0,
        },
    );
}

/// Rounds of a holder (in `holder` mode) and six waiters (waiter i in
/// `waiter(i)` mode) queued in a known order through links of different
/// speeds, pubsub connections killed now and then; the checker's FIFO rule
/// sees each waiter queued before the next starts.
fn draw_order_rounds(scenario: &str, holder: Mode, waiter: fn(usize) -> Mode) {
    let r = Redis::start();
    // Three lockers: one straight to Redis, two through slow, jittery
    // links; their waiters queue in a known order, round after round.
    let slow = Proxy::start(r.port);
    slow.latency(ms(5), ms(4));
    let slower = Proxy::start(r.port);
    slower.latency(ms(15), ms(10));
    let urls = [r.url(), slow.url(), slower.url()];
    let ls: Vec<Locker> = urls.iter().map(|u| Locker::new(Some(u)).unwrap()).collect();
    let admin = Locker::new(Some(&r.url())).unwrap();
    let history = History::new();
    let fence = Arc::new(support::history::Fence::default());
    let mut rng = Rng::seeded(scenario);
    let mut kill = r.conn();
    let rounds = 6;
    let waiters = 6;
    for round in 0..rounds {
        let mut h = Worker::new("h", &history, &*fence);
        let (h_id, held) = h.acquire(&admin, "res", &request(Duration::from_secs(5)).mode(holder));
        let held = held.unwrap();
        let mut threads = Vec::new();
        for i in 0..waiters {
            let (tx, rx) = mpsc::channel();
            let locker = ls[(round + i) % ls.len()].clone();
            let (hist, fen) = (history.clone(), fence.clone());
            // One waiter of each round gives up before its turn: it
            // withdraws, and the queue goes past it.
            let wait = if i == 2 {
                ms(150)
            } else {
                Duration::from_secs(20)
            };
            threads.push(thread::spawn(move || {
                let mut w = Worker::new("w", &hist, &*fen);
                tx.send((w.name.clone(), w.next_id())).unwrap();
                let (id, lock) = w.acquire(
                    &locker,
                    "res",
                    &Acquire::default()
                        .expire(Duration::from_secs(2))
                        .wait(Wait::For(wait))
                        .mode(waiter(i)),
                );
                if let Ok(lock) = lock {
                    w.finish(&id, lock, ms(10));
                }
            }));
            let (name, id) = rx.recv().unwrap();
            // Its ticket is in the queue before the next waiter starts
            // (the one that gives up may have come and gone unseen: then
            // its thread has ended, and it was never granted).
            let gave_up = |threads: &Vec<thread::JoinHandle<()>>| {
                i == 2 && threads.last().is_some_and(|t| t.is_finished())
            };
            let mut seen = None;
            let end = Instant::now() + Duration::from_secs(20);
            while seen.is_none() && Instant::now() < end && !gave_up(&threads) {
                seen = admin
                    .status("res")
                    .ok()
                    .and_then(|s| s.tickets.iter().find(|t| t.label == id).map(|t| t.serial));
                if seen.is_none() {
                    sleep(ms(2));
                }
            }
            match seen {
                Some(serial) => history.record(&name, &id, "res", What::Queued { serial }),
                None => assert!(gave_up(&threads), "the waiter's ticket shows in the queue"),
            }
            if rng.below(2) == 0 {
                let _: i64 = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query(&mut kill)
                    .unwrap();
            }
        }
        sleep(ms(200));
        h.finish(&h_id, held, Duration::ZERO);
        for t in threads {
            t.join().unwrap();
        }
    }
    let report = history.check(&Rules::default());
    report.assert_sound(
        &format!("{scenario} through slow links and pubsub kills"),
        rounds * waiters - rounds,
    );
}

#[test]
fn freeing_a_locker_makes_an_acquire_waiting_in_another_thread_fail_canceled() {
    let r = Redis::start();
    let history = History::new();
    let fence = support::history::Fence::default();
    let holder = Locker::new(Some(&r.url())).unwrap();
    let mut h = Worker::new("h", &history, &fence);
    let (h_id, held) = h.acquire(&holder, "res", &request(Duration::from_secs(10)));
    let held = held.unwrap();
    // The waiter goes through the C ABI: there a locker can be freed while
    // another thread is inside turn_lock_acquire with it.
    let url = CString::new(r.url()).unwrap();
    let mut handle: *mut turn_locker = std::ptr::null_mut();
    // SAFETY: a valid URL string and a place for the handle.
    let rc = unsafe { turn_locker_new(url.as_ptr(), &mut handle) };
    assert_eq!(rc, turn_result::TURN_OK);
    let handle = handle as usize;
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let history = history.clone();
        thread::spawn(move || {
            history.record("w", "w/0", "res", What::start(2000));
            let resource = CString::new("res").unwrap();
            let label = CString::new("w/0").unwrap();
            let mut lock: *mut turn_lock = std::ptr::null_mut();
            // SAFETY: the handle came from turn_locker_new; strings are
            // NUL-terminated; `lock` is a place for the lock.
            let rc = unsafe {
                turn_lock_acquire(
                    handle as *mut turn_locker,
                    resource.as_ptr(),
                    label.as_ptr(),
                    2000,
                    0,
                    60_000,
                    &mut lock,
                )
            };
            if rc == turn_result::TURN_OK {
                let mut token = 0;
                // SAFETY: `lock` is the lock just acquired.
                unsafe { turn_lock_token(lock, &mut token) };
                history.record(
                    "w",
                    "w/0",
                    "res",
                    What::Granted {
                        serial: turn_lock_serial(lock),
                        token,
                    },
                );
            } else {
                history.record(
                    "w",
                    "w/0",
                    "res",
                    What::Failed {
                        error: format!("{rc:?}"),
                    },
                );
            }
            let _ = tx.send((rc, lock as usize));
        })
    };
    assert!(queued(&holder, "res", 2), "the waiter never queued");
    turn_locker_free(handle as *mut turn_locker);
    let mut failures = Vec::new();
    let answer = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(answer) => Some(answer),
        Err(_) => {
            failures.push(
                "turn_lock_acquire still waiting 10 s after turn_locker_free of its locker"
                    .to_string(),
            );
            None
        }
    };
    assert!(h.finish(&h_id, held, Duration::ZERO));
    let answer = answer.or_else(|| rx.recv_timeout(Duration::from_secs(30)).ok());
    match answer {
        Some((turn_result::TURN_ERR_CANCELED, _)) => {}
        Some((turn_result::TURN_OK, lock)) => {
            failures.push(
                "turn_lock_acquire answered TURN_OK although its locker had been freed".into(),
            );
            turn_lock_release(lock as *mut turn_lock);
        }
        Some((rc, _)) => failures.push(format!(
            "turn_lock_acquire answered {rc:?}, not TURN_ERR_CANCELED"
        )),
        None => failures.push("turn_lock_acquire never answered".into()),
    }
    let _ = waiter.join();
    let report = history.check(&Rules::default());
    println!("locker freed while waiting: {report}");
    assert!(
        failures.is_empty() && report.violations.is_empty(),
        "failures: {failures:#?}\nchecker: {report}"
    );
    assert!(report.granted >= 1);
}

#[test]
fn random_faults_through_the_proxy_break_no_guarantee() {
    let r = debuggable_redis();
    let proxy = Proxy::start(r.port);
    proxy.latency(ms(2), ms(1));
    let mut load = Load::new();
    let ls = lockers(&proxy.url(), 3);
    for (i, l) in ls.iter().enumerate() {
        for resource in ["a", "b"] {
            for _ in 0..2 {
                load.spawn(
                    &format!("l{i}"),
                    l,
                    resource,
                    &request(ms(1500)),
                    ms(3),
                    ms(5),
                );
            }
        }
    }
    random_faults(
        r,
        &proxy,
        &mut load,
        "random faults",
        soak_duration(Duration::from_secs(10)),
    );
    load.history
        .check(&Rules::default())
        .assert_sound("random faults through the proxy", 20);
}

#[test]
fn random_faults_through_the_proxy_break_no_guarantee_of_the_shared_modes() {
    let r = debuggable_redis();
    let proxy = Proxy::start(r.port);
    proxy.latency(ms(2), ms(1));
    let mut load = Load::new();
    let ls = lockers(&proxy.url(), 3);
    load.shared_modes(&ls, &request(ms(1500)), ms(3), ms(5));
    random_faults(
        r,
        &proxy,
        &mut load,
        "random faults, shared modes",
        soak_duration(Duration::from_secs(6)),
    );
    load.history
        .check(&Rules::default())
        .assert_sound("random faults through the proxy, shared modes", 20);
}

/// Injects faults at random (seeded by `name`) for `run` under `load`:
/// restarts, FLUSHDB, pubsub kills, stalls, cuts and refusals of the
/// proxy, DEBUG SLEEP, latency spikes; then stops the load.
fn random_faults(mut r: Redis, proxy: &Proxy, load: &mut Load, scenario: &str, run: Duration) {
    let mut rng = Rng::seeded(scenario);
    let start = Instant::now();
    let mut done: Vec<&str> = Vec::new();
    let mut admin = r.conn();
    let history = load.history.clone();
    while start.elapsed() < run {
        sleep(rng.between(ms(500), ms(1500)));
        let (name, length) = match rng.below(8) {
            0 => ("restart", Duration::ZERO),
            1 => ("flushdb", Duration::ZERO),
            2 => ("pubsub kill", Duration::ZERO),
            3 => ("stall", rng.between(ms(300), ms(2500))),
            4 => ("cut", Duration::ZERO),
            5 => ("refuse", rng.between(ms(200), ms(1000))),
            6 => ("debug sleep", Duration::ZERO),
            _ => ("latency spike", rng.between(ms(300), ms(1500))),
        };
        history.fault_start(name);
        match name {
            "restart" => {
                r.restart();
                admin = r.conn();
            }
            "flushdb" => {
                let _: () = redis::cmd("FLUSHDB").query(&mut admin).unwrap();
            }
            "pubsub kill" => {
                let _: i64 = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query(&mut admin)
                    .unwrap();
            }
            "stall" => {
                proxy.stall();
                sleep(length);
                proxy.resume();
            }
            "cut" => proxy.cut(),
            "refuse" => {
                proxy.refuse();
                proxy.cut();
                sleep(length);
                proxy.accept();
            }
            "debug sleep" => {
                let secs = 1 + rng.below(2);
                let _: () = redis::cmd("DEBUG")
                    .arg("SLEEP")
                    .arg(secs)
                    .query(&mut admin)
                    .unwrap();
            }
            _ => {
                proxy.latency(ms(50), ms(40));
                sleep(length);
                proxy.latency(ms(2), ms(1));
            }
        }
        history.fault_end(name);
        done.push(name);
    }
    sleep(ms(1500));
    load.stop(Duration::from_secs(60));
    println!("{scenario}: {}", done.join(", "));
    assert!(!done.is_empty());
}
