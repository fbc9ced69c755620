//! Our waiters behind turn 1.0 tickets, withdrawn and dead ones: each
//! waiter watches the ticket ahead of it, and must still get its turn at
//! once when a turn 1.0 client releases to it (not after a lease).
//!
//! A turn 1.0 client is played here by plain commands
//! (`support::turn_1_0`), so that its timing can be placed at the worst
//! moment.

use crate::support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::turn_1_0;
use support::{Redis, eventually};
use turn::{Acquire, Locker, Options, Wait};

fn key(res: &str, what: &str) -> String {
    format!("turn:{res}:{what}")
}

fn get_u64(c: &mut redis::Connection, k: &str) -> u64 {
    let v: Option<u64> = redis::cmd("GET").arg(k).query(c).unwrap();
    v.unwrap_or(0)
}

fn dispenser_at(r: &Redis, res: &str, n: u64) -> bool {
    let mut c = r.conn();
    eventually(Duration::from_secs(10), || {
        get_u64(&mut c, &key(res, "dispenser")) >= n
    })
}

/// Our waiter on its own thread and locker: sends (granted at, serial).
/// `within`: how long it waits at most (shorter than the lease that a
/// stalled waiter would sleep through), from its start.
fn our_waiter(
    url: String,
    res: &'static str,
    fresh: bool,
    within: Duration,
    tx: mpsc::Sender<(Instant, u64)>,
) -> thread::JoinHandle<()> {
    our_waiter_with(url, res, fresh, within, Options::default(), tx)
}

/// Our ticket "p", drawn now in a locker of its own, that gives up after
/// `wait`: its serial, or why not.
fn giving_up(
    url: String,
    res: &'static str,
    wait: Duration,
) -> thread::JoinHandle<turn::Result<u64>> {
    thread::spawn(move || {
        let l = Locker::new(Some(&url)).unwrap();
        l.acquire(res, &Acquire::label("p").wait(Wait::For(wait)))
            .map(|l| l.serial())
    })
}

fn our_waiter_with(
    url: String,
    res: &'static str,
    fresh: bool,
    within: Duration,
    options: Options,
    tx: mpsc::Sender<(Instant, u64)>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let l = Locker::with_options(Some(&url), options).unwrap();
        if !fresh {
            // Let the notifier subscribe the locker's channel first.
            thread::sleep(Duration::from_millis(500));
        }
        let lock = l
            .acquire(res, &Acquire::label("w").wait(Wait::For(within)))
            .expect("the waiter gets its turn in time");
        tx.send((Instant::now(), lock.serial())).unwrap();
        lock.release().unwrap();
    })
}

/// A ticket of ours right behind a turn 1.0 holder gives up (timeout); the
/// waiter behind it watched it. The turn 1.0 release sets the indicator to
/// the withdrawn ticket and says so on `internal` only: the waiter must
/// hear it and step past the withdrawn ticket at once, well within the 6 s
/// it waits (the withdrawn ticket's old lease, 10 s, is what a waiter deaf
/// to it would sleep through).
#[test]
fn a_waiter_behind_a_timed_out_ticket_is_called_by_a_turn_1_0_release() {
    let r = Redis::start();
    let mut c = r.conn();
    const RES: &str = "cancel";
    assert_eq!(turn_1_0::draw(&mut c, RES), 1);
    turn_1_0::present(&mut c, RES, 1, 60);
    let p = giving_up(r.url(), RES, Duration::from_millis(1500));
    assert!(dispenser_at(&r, RES, 2));
    let (tx, rx) = mpsc::channel();
    let w = our_waiter(r.url(), RES, false, Duration::from_secs(6), tx);
    assert!(dispenser_at(&r, RES, 3));
    let p = p.join().unwrap();
    assert!(p.is_err(), "p timed out: {p:?}");
    thread::sleep(Duration::from_millis(200));
    let released = Instant::now();
    turn_1_0::release(&mut c, RES, 1);
    w.join().expect("granted within its wait");
    let (at, serial) = rx.recv().unwrap();
    assert_eq!(serial, 3);
    println!(
        "waiter {serial} granted {:?} after the turn 1.0 release",
        at.duration_since(released)
    );
}

/// Our holder (1), a turn 1.0 ticket (2) whose presence key comes
/// `key_after` its INCR, and our waiter (3, of a `fresh` locker or not):
/// the holder releases to the turn 1.0 ticket, which releases to our
/// waiter on `internal` only. The waiter must get its turn well within the
/// 6 s it waits (our holder's old lease, 10 s, is what a deaf waiter would
/// sleep through).
fn a_turn_1_0_release_reaches_the_waiter_behind_a_late_key(
    res: &'static str,
    fresh: bool,
    key_after: Duration,
) {
    let r = Redis::start();
    let mut c = r.conn();
    let holder_locker = Locker::new(Some(&r.url())).unwrap();
    let holder = holder_locker.lock(res, "h").unwrap();
    assert_eq!(holder.serial(), 1);
    let d = turn_1_0::draw(&mut c, res);
    assert_eq!(d, 2);
    let (tx, rx) = mpsc::channel();
    let w = our_waiter(r.url(), res, fresh, Duration::from_secs(6), tx);
    assert!(dispenser_at(&r, res, 3));
    thread::sleep(key_after);
    turn_1_0::present(&mut c, res, d, 60);
    thread::sleep(Duration::from_millis(300));
    holder.release().unwrap();
    assert_eq!(get_u64(&mut c, &key(res, "indicator")), d);
    thread::sleep(Duration::from_millis(200));
    let released = Instant::now();
    turn_1_0::release(&mut c, res, d);
    w.join().expect("granted within its wait");
    let (at, serial) = rx.recv().unwrap();
    assert_eq!(serial, 3);
    println!(
        "waiter {serial} granted {:?} after the turn 1.0 release",
        at.duration_since(released)
    );
}

/// A fresh locker's first acquire reads the queue at once, while the turn
/// 1.0 ticket ahead of it has not set its presence key yet (turn 1.0's
/// draw window; its keeper sets it 50 ms later): stepping over a ticket it
/// cannot place, the waiter must listen on `internal`.
#[test]
fn a_waiter_that_looked_in_a_turn_1_0_draw_window_hears_its_release() {
    a_turn_1_0_release_reaches_the_waiter_behind_a_late_key(
        "window",
        true,
        Duration::from_millis(50),
    );
}

/// A warm locker, and a turn 1.0 client whose presence key comes 700 ms
/// after its INCR, past the grace.
#[test]
fn a_waiter_behind_a_slow_turn_1_0_draw_hears_its_release() {
    a_turn_1_0_release_reaches_the_waiter_behind_a_late_key(
        "slow",
        false,
        Duration::from_millis(700),
    );
}

/// A turn 1.0 ticket whose presence key comes 700 ms after its INCR (turn
/// 1.0 sets it from a keeper thread after a publish: two round trips, so
/// on a link slower than 250 ms a round trip) must not be passed by our
/// waiter behind it when the grace is raised above that window (with the
/// default 500 ms it would be: the README says to raise it on such links).
#[test]
fn a_raised_grace_keeps_a_slow_turn_1_0_ticket_in_its_place() {
    let r = Redis::start();
    let mut c = r.conn();
    const RES: &str = "skip";
    let t0 = Instant::now();
    assert_eq!(turn_1_0::draw(&mut c, RES), 1);
    turn_1_0::present(&mut c, RES, 1, 60);
    let d = turn_1_0::draw(&mut c, RES);
    let (tx, rx) = mpsc::channel();
    let options = Options {
        grace: Duration::from_secs(5),
        ..Options::default()
    };
    let w = our_waiter_with(r.url(), RES, false, Duration::from_secs(30), options, tx);
    assert!(dispenser_at(&r, RES, 3));
    thread::sleep(Duration::from_millis(600));
    // The turn 1.0 holder leaves: the indicator shows d, as turn 1.0 says.
    println!("{:?} py release", t0.elapsed());
    turn_1_0::release(&mut c, RES, 1);
    thread::sleep(Duration::from_millis(100));
    // d's keeper sets its key 700 ms after its INCR.
    turn_1_0::present(&mut c, RES, d, 60);
    let ind = get_u64(&mut c, &key(RES, "indicator"));
    assert_eq!(ind, d, "the live turn 1.0 ticket {d} was passed");
    turn_1_0::release(&mut c, RES, d);
    w.join().expect("our waiter gets its turn after it");
    assert_eq!(rx.recv().unwrap().1, 3);
}

/// The first case with the real turn 1.0 client: a Python holder (holding
/// 3 s, lease 60 s), our ticket behind it times out after 1 s, our waiter
/// behind that one gets its turn when the Python holder leaves, within the
/// 8 s it waits.
#[test]
fn a_python_release_past_a_timed_out_ticket_calls_our_waiter() {
    use std::process::{Command, Stdio};
    let r = Redis::start();
    const RES: &str = "realpy";
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut py = Command::new(support::python_with_turn_1_0())
        .arg(support::root().join("tests/python/worker.py"))
        .args([&r.port.to_string(), RES, "python", "1"])
        .arg(&log)
        .args(["60", "60", "3.0"])
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = support::Lines::new(py.stdout.take().unwrap());
    assert!(lines.wait_for("held 1", Duration::from_secs(30)));
    let held = Instant::now();
    let p = giving_up(r.url(), RES, Duration::from_millis(1000));
    assert!(dispenser_at(&r, RES, 2));
    let (tx, rx) = mpsc::channel();
    let w = our_waiter(r.url(), RES, false, Duration::from_secs(8), tx);
    assert!(dispenser_at(&r, RES, 3));
    assert!(p.join().unwrap().is_err());
    w.join().expect("granted within its wait");
    let (at, serial) = rx.recv().unwrap();
    assert_eq!(serial, 3);
    assert!(py.wait().unwrap().success());
    let lag = at
        .duration_since(held)
        .saturating_sub(Duration::from_secs(3));
    println!("waiter {serial} granted {lag:?} after the Python holder left");
}

/// All ours, default options. The holder (a `turn lock` process) is
/// SIGKILLed; the ticket right behind it gives up (timeout) before the
/// holder's lease lapses; the waiter behind that one is granted after the
/// holder's lease, not after its own 60 s patience (it waits 20 s at most;
/// the time from the kill is printed).
#[test]
fn a_killed_holder_followed_by_a_timed_out_ticket_is_passed_within_the_lease() {
    use std::process::{Command, Stdio};
    let r = Redis::start();
    const RES: &str = "killed";
    let mut holder = Command::new(env!("CARGO_BIN_EXE_turn"))
        .env_remove("TURN_REDIS_URL")
        .args(["--url", &r.url(), "lock", RES])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(dispenser_at(&r, RES, 1));
    let p = giving_up(r.url(), RES, Duration::from_secs(8));
    assert!(dispenser_at(&r, RES, 2));
    let (tx, rx) = mpsc::channel();
    let w = our_waiter(r.url(), RES, false, Duration::from_secs(20), tx);
    assert!(dispenser_at(&r, RES, 3));
    thread::sleep(Duration::from_millis(500));
    support::signal(holder.id(), "KILL");
    let killed = Instant::now();
    let _ = holder.wait();
    assert!(p.join().unwrap().is_err(), "p gave up");
    w.join()
        .expect("granted after the holder's lease, before its patience");
    let (at, serial) = rx.recv().unwrap();
    assert_eq!(serial, 3);
    println!(
        "waiter {serial} granted {:?} after the holder was killed (lease 10 s)",
        at.duration_since(killed)
    );
}

/// A `turn lock` process of ours holding `res` with a lease of `expire_s`
/// seconds (a separate process, to be SIGKILLed), once it holds.
fn killable_holder(r: &Redis, res: &str, expire_s: &str) -> std::process::Child {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_turn"))
        .env_remove("TURN_REDIS_URL")
        .args(["--url", &r.url(), "lock", "--expire", expire_s, res])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = support::Lines::new(child.stdout.take().unwrap());
    assert!(
        lines.wait_for(&format!("{res}: locked"), Duration::from_secs(30)),
        "the holder holds"
    );
    child
}

/// The messages of `res`'s `internal` and `external` channels, as they
/// come, with the time each came.
struct Heard {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<Vec<(Instant, String, String)>>>,
}

impl Heard {
    fn start(r: &Redis, res: &str) -> Heard {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let mut c = r.conn();
        let (internal, external) = (key(res, "internal"), key(res, "external"));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut ps = c.as_pubsub();
            ps.subscribe(&internal).unwrap();
            ps.subscribe(&external).unwrap();
            ps.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut got = Vec::new();
            while !flag.load(Ordering::Acquire) {
                if let Ok(m) = ps.get_message() {
                    let payload: String = m.get_payload().unwrap_or_default();
                    got.push((Instant::now(), m.get_channel_name().to_string(), payload));
                }
            }
            got
        });
        ready_rx.recv().unwrap();
        Heard {
            stop,
            thread: Some(thread),
        }
    }

    /// Everything heard so far; stops listening.
    fn end(mut self) -> Vec<(Instant, String, String)> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// With the real turn 1.0 client. Our holder (a `turn
/// lock` process, lease 2 s) is SIGKILLed while a turn 1.0 waiter (patience
/// 60 s) is next in line and one of our waiters is behind it. Nobody of
/// ours is right behind the dead holder, and turn 1.0 would bump only after
/// its patience: our waiter behind passes the dead ticket for it, with turn
/// 1.0's `internal` message, once the holder's lease lapses. The turn 1.0
/// waiter is served within the lease + 1 s (the time is printed; the
/// assert allows the lease + 3 s, for a loaded machine), our waiter after
/// it has left (FIFO and exclusion: its "leave" is in its log when our
/// waiter is granted), and the bump is made once.
#[test]
fn a_turn_1_0_waiter_behind_our_killed_holder_is_served_within_the_lease() {
    use std::process::{Command, Stdio};
    let r = Redis::start();
    const RES: &str = "mixedkill";
    const LEASE: Duration = Duration::from_secs(2);
    let mut holder = killable_holder(&r, RES, "2");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // turn 1.0: lease 60 s, patience 60 s, holds 0.5 s.
    let mut py = Command::new(support::python_with_turn_1_0())
        .arg(support::root().join("tests/python/worker.py"))
        .args([&r.port.to_string(), RES, "python", "1"])
        .arg(&log)
        .args(["60", "60", "0.5"])
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut py_lines = support::Lines::new(py.stdout.take().unwrap());
    assert!(dispenser_at(&r, RES, 2));
    // Our waiter reads the turn 1.0 client's log the moment it is granted.
    let w = {
        let (url, log) = (r.url(), log.clone());
        thread::spawn(move || {
            let l = Locker::new(Some(&url)).unwrap();
            let lock = l
                .acquire(
                    RES,
                    &Acquire::label("w").wait(Wait::For(Duration::from_secs(20))),
                )
                .expect("our waiter gets its turn in time");
            let logged = std::fs::read_to_string(&log).unwrap();
            let serial = lock.serial();
            lock.release().unwrap();
            (serial, logged)
        })
    };
    assert!(dispenser_at(&r, RES, 3));
    // Past our waiter's grace, its presence key and the turn 1.0 one's set.
    let mut c = r.conn();
    assert!(eventually(Duration::from_secs(10), || {
        let n: i64 = redis::cmd("EXISTS")
            .arg(key(RES, "serial:2"))
            .arg(key(RES, "serial:3"))
            .query(&mut c)
            .unwrap();
        n == 2
    }));
    thread::sleep(Duration::from_millis(700));
    let heard = Heard::start(&r, RES);
    support::signal(holder.id(), "KILL");
    let killed = Instant::now();
    let _ = holder.wait();
    assert!(
        py_lines.wait_for("held 2", Duration::from_secs(30)),
        "the turn 1.0 waiter is served before its patience"
    );
    let served = killed.elapsed();
    println!("turn 1.0 waiter served {served:?} after the kill (lease {LEASE:?})");
    assert!(
        served < LEASE + Duration::from_secs(3),
        "served {served:?} after the kill, lease {LEASE:?}"
    );
    let (serial, logged_at_grant) = w.join().expect("our waiter is granted");
    assert_eq!(serial, 3);
    assert_eq!(
        logged_at_grant, "enter 2 python\nleave 2 python\n",
        "our waiter was granted only after the turn 1.0 one left"
    );
    assert!(py.wait().unwrap().success());
    let heard = heard.end();
    let external = key(RES, "external");
    let bumps: Vec<&String> = heard
        .iter()
        .filter(|(_, ch, p)| *ch == external && p.ends_with(" bumps"))
        .map(|(_, _, p)| p)
        .collect();
    assert_eq!(
        bumps,
        [&format!("{RES}: 3 bumps")],
        "one bump, by our waiter"
    );
    let calls_2 = heard
        .iter()
        .filter(|(_, ch, p)| *ch == key(RES, "internal") && *p == key(RES, "serial:2"))
        .count();
    assert_eq!(calls_2, 1, "ticket 2 called once");
}

/// The same with turn 1.0 tickets played by plain commands, two of ours
/// each behind one: our holder 1 (killed, lease 2 s), turn 1.0 ticket 2,
/// our waiter 3, turn 1.0 ticket 4, our waiter 5. Both our waiters watch
/// the dead holder; one bump is made (to 2, the first live ticket, never
/// past it), 2 is called once on `internal`, and the queue then goes in
/// order: 2, 3, 4, 5.
#[test]
fn two_waiters_behind_turn_1_0_tickets_pass_a_killed_holder_once_and_in_order() {
    let r = Redis::start();
    const RES: &str = "twice";
    let mut c = r.conn();
    let mut holder = killable_holder(&r, RES, "2");
    assert_eq!(turn_1_0::draw(&mut c, RES), 2);
    turn_1_0::present(&mut c, RES, 2, 60);
    let (tx, rx) = mpsc::channel();
    let w3 = our_waiter(r.url(), RES, false, Duration::from_secs(30), tx.clone());
    assert!(dispenser_at(&r, RES, 3));
    assert!(eventually(Duration::from_secs(10), || {
        redis::cmd("EXISTS")
            .arg(key(RES, "serial:3"))
            .query::<i64>(&mut c)
            .unwrap()
            == 1
    }));
    assert_eq!(turn_1_0::draw(&mut c, RES), 4);
    turn_1_0::present(&mut c, RES, 4, 60);
    let w5 = our_waiter(r.url(), RES, false, Duration::from_secs(30), tx);
    assert!(dispenser_at(&r, RES, 5));
    thread::sleep(Duration::from_millis(1200));
    let heard = Heard::start(&r, RES);
    support::signal(holder.id(), "KILL");
    let killed = Instant::now();
    let _ = holder.wait();
    assert!(
        eventually(Duration::from_secs(10), || {
            get_u64(&mut c, &key(RES, "indicator")) == 2
        }),
        "the dead holder is passed"
    );
    let passed = killed.elapsed();
    println!("the killed holder was passed {passed:?} after the kill (lease 2 s)");
    assert!(passed < Duration::from_secs(5), "passed after {passed:?}");
    // Ticket 2 lives: nobody passes it.
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(get_u64(&mut c, &key(RES, "indicator")), 2);
    assert!(
        rx.try_recv().is_err(),
        "nobody of ours granted before 2 left"
    );
    turn_1_0::release(&mut c, RES, 2);
    let (_, first) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first, 3);
    // Ours released to 4, a live turn 1.0 ticket: 5 waits for it.
    assert!(eventually(Duration::from_secs(10), || {
        get_u64(&mut c, &key(RES, "indicator")) == 4
    }));
    thread::sleep(Duration::from_millis(500));
    assert!(rx.try_recv().is_err(), "5 did not pass the live ticket 4");
    turn_1_0::release(&mut c, RES, 4);
    let (_, second) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(second, 5);
    w3.join().unwrap();
    w5.join().unwrap();
    let heard = heard.end();
    let bumps: Vec<&String> = heard
        .iter()
        .filter(|(_, ch, p)| *ch == key(RES, "external") && p.ends_with(" bumps"))
        .map(|(_, _, p)| p)
        .collect();
    assert_eq!(bumps.len(), 1, "one bump: {bumps:?}");
    let calls_2 = heard
        .iter()
        .filter(|(_, ch, p)| *ch == key(RES, "internal") && *p == key(RES, "serial:2"))
        .count();
    assert_eq!(calls_2, 1, "ticket 2 called once");
}

/// A live ticket at the indicator is never passed by the waiter behind a
/// turn 1.0 ticket: neither our holder (renewed by its heartbeat past
/// several leases) nor a turn 1.0 holder in its draw window (its presence
/// key set 300 ms after its draw, within the grace of our waiter, which
/// drew right after it).
#[test]
fn a_waiter_behind_a_turn_1_0_ticket_never_passes_a_live_ticket_at_the_indicator() {
    let r = Redis::start();
    let mut c = r.conn();
    // Our holder, lease 600 ms, renewed.
    const OURS: &str = "liveours";
    let holder_locker = Locker::new(Some(&r.url())).unwrap();
    let holder = holder_locker
        .acquire(
            OURS,
            &Acquire::label("h").expire(Duration::from_millis(600)),
        )
        .unwrap();
    assert_eq!(turn_1_0::draw(&mut c, OURS), 2);
    turn_1_0::present(&mut c, OURS, 2, 60);
    let (tx, rx) = mpsc::channel();
    let w = our_waiter(r.url(), OURS, false, Duration::from_secs(30), tx);
    assert!(dispenser_at(&r, OURS, 3));
    let heard = Heard::start(&r, OURS);
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(get_u64(&mut c, &key(OURS, "indicator")), 1);
    holder.check().expect("our holder still holds");
    holder.release().unwrap();
    assert_eq!(get_u64(&mut c, &key(OURS, "indicator")), 2);
    // turn 1.0's release is not atomic (its key goes, then the indicator
    // moves): a waiter that reads the queue in between may step past the
    // ticket that is leaving. Only a bump before it began would have
    // passed a live ticket.
    let leaving = Instant::now();
    turn_1_0::release(&mut c, OURS, 2);
    w.join().unwrap();
    assert_eq!(rx.recv().unwrap().1, 3);
    let heard = heard.end();
    assert!(
        !heard
            .iter()
            .any(|(at, _, p)| p.ends_with(" bumps") && *at < leaving),
        "nobody bumped a live ticket: {heard:?}"
    );

    // A turn 1.0 holder in its draw window: drawn at an empty queue (its
    // turn at once), its key set 300 ms later.
    const WINDOW: &str = "livewindow";
    assert_eq!(turn_1_0::draw(&mut c, WINDOW), 1);
    assert_eq!(turn_1_0::draw(&mut c, WINDOW), 2);
    turn_1_0::present(&mut c, WINDOW, 2, 60);
    let (tx, rx) = mpsc::channel();
    let w = our_waiter(r.url(), WINDOW, true, Duration::from_secs(30), tx);
    assert!(dispenser_at(&r, WINDOW, 3));
    thread::sleep(Duration::from_millis(300));
    turn_1_0::present(&mut c, WINDOW, 1, 60);
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        get_u64(&mut c, &key(WINDOW, "indicator")),
        1,
        "the turn 1.0 holder in its draw window was passed"
    );
    turn_1_0::release(&mut c, WINDOW, 1);
    turn_1_0::release(&mut c, WINDOW, 2);
    w.join().unwrap();
    assert_eq!(rx.recv().unwrap().1, 3);
}

/// A withdrawn ticket at the indicator is passed at once, but before the
/// grace only withdrawn tickets are: a turn 1.0 ticket behind it still in
/// its draw window (no presence key yet) is the next turn, not passed.
/// Ticket 1 is a turn 1.0 holder; our ticket 2 times out (withdrawn); turn
/// 1.0 draws 3 and sets its key 300 ms later; our waiter 4 draws right
/// after 3, and the turn 1.0 release of 1 moves the indicator to 2 within
/// our waiter's grace. (Before, the waiter's bump passed 3 too.)
#[test]
fn before_the_grace_a_waiter_passes_a_withdrawn_ticket_but_not_a_turn_1_0_draw() {
    let r = Redis::start();
    let mut c = r.conn();
    const RES: &str = "earlypass";
    assert_eq!(turn_1_0::draw(&mut c, RES), 1);
    turn_1_0::present(&mut c, RES, 1, 60);
    let p = giving_up(r.url(), RES, Duration::from_millis(300));
    assert!(p.join().unwrap().is_err(), "2 timed out");
    assert_eq!(turn_1_0::draw(&mut c, RES), 3);
    let (tx, rx) = mpsc::channel();
    let w = our_waiter(r.url(), RES, true, Duration::from_secs(30), tx);
    assert!(dispenser_at(&r, RES, 4));
    turn_1_0::release(&mut c, RES, 1);
    thread::sleep(Duration::from_millis(300));
    turn_1_0::present(&mut c, RES, 3, 60);
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        get_u64(&mut c, &key(RES, "indicator")),
        3,
        "the withdrawn 2 is passed, the turn 1.0 ticket 3 is not"
    );
    assert!(rx.try_recv().is_err(), "our waiter passed ticket 3");
    turn_1_0::release(&mut c, RES, 3);
    w.join().unwrap();
    assert_eq!(rx.recv().unwrap().1, 4);
}
