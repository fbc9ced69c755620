//! The lost fd of a held lock (`Lock::lost_fd`, `turn_lock_lost_fd`): it
//! turns readable when the heartbeat finds the lock gone, at once when the
//! lease lapses by the local clock while Redis stalls, and never for a lock
//! held and released normally. Delays are printed (run with --nocapture),
//! never asserted beyond generous bounds.

use crate::support;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use support::proxy::Proxy;
use support::{Redis, readable_within};
use turn::{Acquire, ErrorKind, Locker, Options};

fn lease(ms: u64) -> Acquire {
    Acquire::label("lost fd").expire(Duration::from_millis(ms))
}

#[test]
fn lost_fd_turns_readable_within_a_beat_after_the_presence_key_is_deleted() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    // A beat every second.
    let lock = l.acquire("del", &lease(3000)).unwrap();
    let fd = lock.lost_fd().unwrap().as_raw_fd();
    assert_eq!(
        lock.lost_fd().unwrap().as_raw_fd(),
        fd,
        "one fd per lock, made once"
    );
    assert!(!readable_within(fd, Duration::ZERO));
    let deleted = Instant::now();
    let n: i64 = redis::cmd("DEL")
        .arg(format!("turn:del:serial:{}", lock.serial()))
        .query(&mut r.conn())
        .unwrap();
    assert_eq!(n, 1);
    // Generous: one beat is a second.
    assert!(readable_within(fd, Duration::from_secs(30)));
    println!(
        "lost fd readable {:?} after the DEL of the presence key (beat: 1 s)",
        deleted.elapsed()
    );
    assert!(readable_within(fd, Duration::ZERO), "it stays readable");
    assert_eq!(lock.check().unwrap_err().kind(), ErrorKind::Lost);
    assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::Lost);
}

#[test]
fn lost_fd_turns_readable_when_the_indicator_moves_on() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let lock = l.acquire("moved", &lease(600)).unwrap();
    let fd = lock.lost_fd().unwrap().as_raw_fd();
    let _: () = redis::cmd("SET")
        .arg("turn:moved:indicator")
        .arg(lock.serial() + 1)
        .query(&mut r.conn())
        .unwrap();
    assert!(readable_within(fd, Duration::from_secs(30)));
    assert_eq!(lock.check().unwrap_err().kind(), ErrorKind::Lost);
}

#[test]
fn lost_fd_turns_readable_at_once_when_the_lease_lapses_while_redis_stalls() {
    let r = Redis::start();
    let proxy = Proxy::start(r.port);
    // Replies may take a minute: the heartbeat thread waits for its stalled
    // renewal all that time, so only the local lease clock can tell.
    let options = Options {
        command_timeout: Duration::from_secs(60),
        ..Options::default()
    };
    let l = Locker::with_options(Some(&proxy.url()), options).unwrap();
    let lock = l.acquire("stall", &lease(1000)).unwrap();
    let fd = lock.lost_fd().unwrap().as_raw_fd();
    assert!(lock.check().is_ok());
    let stalled = Instant::now();
    proxy.stall();
    // Well before the heartbeat's command timeout.
    assert!(readable_within(fd, Duration::from_secs(20)));
    println!(
        "lost fd readable {:?} after Redis stalled (lease: 1 s, renewed every 333 ms)",
        stalled.elapsed()
    );
    assert_eq!(lock.check().unwrap_err().kind(), ErrorKind::Lost);
    // Redis answers again: the late renewal revives nothing.
    proxy.resume();
    std::thread::sleep(Duration::from_millis(500));
    assert!(readable_within(fd, Duration::ZERO));
    assert_eq!(lock.check().unwrap_err().kind(), ErrorKind::Lost);
    assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::Lost);
}

#[test]
fn lost_fd_stays_quiet_for_a_lock_held_and_released_normally() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    // Renewed every 500 ms: three leases pass while it is watched (a
    // shorter lease would leave too little slack on a loaded machine).
    let lock = l.acquire("held", &lease(1500)).unwrap();
    let fd = lock.lost_fd().unwrap().as_raw_fd();
    // SAFETY: a live descriptor; F_GETFD reads its flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert!(flags >= 0 && flags & libc::FD_CLOEXEC != 0, "close-on-exec");
    assert!(!readable_within(fd, Duration::from_millis(4500)));
    assert!(lock.check().is_ok());
    lock.release().unwrap();
    // A lock made afterwards has its own quiet fd.
    let next = l.acquire("held", &lease(1500)).unwrap();
    let fd = next.lost_fd().unwrap().as_raw_fd();
    assert!(!readable_within(fd, Duration::from_millis(1500)));
    next.release().unwrap();
}

#[test]
fn lost_fd_turns_readable_when_the_locker_is_closed() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let lock = l.acquire("closed", &lease(10_000)).unwrap();
    let fd = lock.lost_fd().unwrap().as_raw_fd();
    l.close();
    assert!(readable_within(fd, Duration::from_secs(10)));
    assert_eq!(lock.check().unwrap_err().kind(), ErrorKind::Lost);
}

#[test]
fn a_lost_fd_asked_for_after_the_loss_is_readable_at_once() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let lock = l.acquire("late", &lease(300)).unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("turn:late:serial:{}", lock.serial()))
        .query(&mut r.conn())
        .unwrap();
    assert!(support::eventually(Duration::from_secs(30), || lock.is_lost()));
    let fd = lock.lost_fd().unwrap().as_raw_fd();
    assert!(readable_within(fd, Duration::ZERO));
}

/// The signal mask of thread `tid` of this process, from /proc.
fn blocked_signals(tid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .unwrap()
        .trim();
    u64::from_str_radix(mask, 16).unwrap()
}

#[test]
fn the_library_threads_carry_names_and_block_the_hosts_signals() {
    let r = Redis::start();
    let l = turn::Locker::new(Some(&r.url())).unwrap();
    let lock = l.lock("named", "x").unwrap();
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let tid = task.unwrap().file_name().into_string().unwrap();
        let Ok(comm) = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")) else {
            continue;
        };
        let comm = comm.trim().to_string();
        if !comm.starts_with("turn-") {
            continue;
        }
        let mask = blocked_signals(&tid);
        for sig in [
            libc::SIGALRM,
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGUSR1,
            libc::SIGCHLD,
        ] {
            assert!(mask & (1 << (sig - 1)) != 0, "{comm} takes signal {sig}");
        }
        assert!(
            mask & (1 << (libc::SIGSEGV - 1)) == 0,
            "{comm} blocks SIGSEGV"
        );
        names.push(comm);
    }
    // Other tests of this binary run lockers of their own meanwhile.
    names.sort();
    names.dedup();
    assert_eq!(names, ["turn-heartbeat", "turn-leaving", "turn-notifier"]);
    lock.release().unwrap();
}
