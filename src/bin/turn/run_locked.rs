//! `turn lock RESOURCE... -- COMMAND [ARGS...]`: takes the lock (on several
//! resources: every one of them, or none), runs the command while holding
//! it (the heartbeat keeps the leases), releases when the command exits and
//! exits with its status, as flock(1) does; or with `EXIT_LOCK_LOST` when
//! a lock was lost while the command ran.
//!
//! While it waits for one resource it shows its place in the queue on
//! standard error; Ctrl-C (SIGINT), SIGTERM or SIGHUP withdraw the ticket
//! (and give back the locks of several taken so far). While the command
//! runs, a loss of a lock is said on standard error at once (from the
//! lock's lost fd) and, with --kill-on-loss, the command gets SIGTERM;
//! SIGTERM and SIGHUP sent to the tool are passed on to the command, and
//! SIGINT is left to the command (a terminal sends it to both).

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use turn::{Acquire, Cancel, ErrorKind, Lock, Locker, Pending, Wait};

use super::output::clean;

/// Not had within --wait (sysexits.h EX_TEMPFAIL).
const EXIT_NOT_LOCKED: u8 = 75;

/// A lock was lost while the command ran: whatever the command did may
/// have overlapped with another holder (next to `EXIT_NOT_LOCKED`).
const EXIT_LOCK_LOST: u8 = 76;

/// How often the place in the queue is read while waiting.
const POSITION_EVERY: Duration = Duration::from_millis(250);

/// What the main thread hears about.
enum Event {
    Signal(i32),
    /// The lock of this index (in the order of the resources) was lost.
    Lost(usize),
    /// The command exited (not reaped yet: its pid stays its own).
    Exited,
    /// The outcome of taking several locks.
    Taken(turn::Result<Vec<Lock>>),
}

/// Takes the lock on each of `resources` (one, or all or none of several),
/// runs `command` under them; the exit status.
pub fn run_locked(
    locker: &Locker,
    resources: &[String],
    request: Acquire,
    command: &[OsString],
    kill_on_loss: bool,
) -> turn::Result<u8> {
    for r in resources {
        turn::validate_resource(r)?;
    }
    turn::validate_label(&request.label)?;
    let names: Vec<String> = resources.iter().map(|r| clean(r)).collect();
    let name = names.join(", ");
    let (tx, events) = mpsc::channel();
    let wake = catch_signals(tx.clone()).map_err(|e| io_error("cannot catch signals", e))?;

    // Waiting for one resource: a pending acquire, whose wait goes on in
    // the locker's notifier thread, while this thread polls its fd beside
    // the signals and shows the place in the queue. A try-lock does not
    // wait. Several: all or none, on a thread that a signal cancels.
    let acquired = if let [resource] = resources {
        if matches!(request.wait, Wait::TryOnce | Wait::For(Duration::ZERO)) {
            Waited::Done(locker.acquire(resource, &request).map(|lock| vec![lock]))
        } else {
            wait_turn(locker, resource, &request, &name, &events, &wake)
        }
    } else {
        wait_all(locker, resources, request, tx.clone(), &events)
    };
    let locks = match acquired {
        Waited::Done(Ok(locks)) => locks,
        Waited::Done(Err(e)) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::WouldBlock) => {
            say!("turn: {name}: not locked: {}", clean(e.message()));
            return Ok(EXIT_NOT_LOCKED);
        }
        Waited::Done(Err(e)) => return Err(e),
        Waited::Interrupted(signo) => {
            if resources.len() == 1 {
                say!("turn: {name}: interrupted while waiting; the ticket was withdrawn");
            } else {
                say!(
                    "turn: {name}: interrupted while waiting; the ticket was withdrawn \
                     and the locks taken were released"
                );
            }
            return Ok(128u8.saturating_add(signo as u8));
        }
    };

    // A pause between the grant and here (this process stopped) may have
    // outlived a lease: no command starts on a lock known lost (by the
    // local clock or the heartbeat), as a turn that came while stopped is
    // not taken.
    if let Some(lost) = locks.iter().find(|l| l.is_lost()) {
        let e = turn::Error::new(
            ErrorKind::Lost,
            format!(
                "the turn on \"{}\" came (ticket {}) but was lost before the command started",
                clean(lost.resource()),
                lost.serial()
            ),
        );
        for lock in locks {
            let _ = lock.release();
        }
        return Err(e);
    }

    // Holding: run the command. Several locks: their tokens and serials,
    // space-separated, in the order of the resources.
    let joined = |number: fn(&Lock) -> u64| {
        let numbers: Vec<String> = locks.iter().map(|l| number(l).to_string()).collect();
        numbers.join(" ")
    };
    let mut child = match std::process::Command::new(&command[0])
        .args(&command[1..])
        .env("TURN_LOCK_TOKEN", joined(Lock::token))
        .env("TURN_LOCK_SERIAL", joined(Lock::serial))
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            for lock in locks {
                let _ = lock.release();
            }
            let shown = clean(&command[0].to_string_lossy());
            say!("turn: cannot run {shown}: {e}");
            return Ok(if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            });
        }
    };
    let pid = child.id() as libc::pid_t;
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            wait_exit(pid);
            let _ = tx.send(Event::Exited);
        });
    }
    let watches: Vec<_> = locks
        .iter()
        .enumerate()
        .map(|(i, lock)| watch_lost(lock, i, tx.clone()))
        .collect();
    drop(tx);
    let mut lost_said = vec![false; locks.len()];
    let mut killed = false;
    loop {
        match events.recv() {
            Ok(Event::Exited) | Err(_) => break,
            Ok(Event::Lost(i)) => {
                lost_said[i] = true;
                let why = locks[i].check().err().map(|e| clean(e.message()));
                say!(
                    "turn: {}: the lock was lost while the command ran ({})",
                    names[i],
                    why.unwrap_or_else(|| "lost".to_string())
                );
                if kill_on_loss && !killed {
                    killed = true;
                    say!(
                        "turn: {}: sending SIGTERM to the command (pid {pid})",
                        names[i]
                    );
                    // SAFETY: plain kill(2); the child is not reaped yet
                    // (its exit is awaited without reaping), so the pid is
                    // still its own.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
            }
            Ok(Event::Signal(signo)) => {
                if signo != libc::SIGINT {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, signo) };
                }
            }
            Ok(Event::Taken(_)) => {}
        }
    }
    drop(watches);
    let status = child
        .wait()
        .map_err(|e| io_error("cannot wait for the command", e))?;
    let mut lost = lost_said.iter().any(|&said| said);
    for ((lock, name), said) in locks.into_iter().zip(&names).zip(lost_said) {
        if let Err(e) = lock.release()
            && !said
        {
            lost = true;
            say!(
                "turn: {name}: the lock was lost before the release: {}",
                clean(e.message())
            );
        }
    }
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signo)) => 128u8.saturating_add(signo as u8),
        (None, None) => 1,
    };
    if lost {
        say!(
            "turn: {name}: exit status {EXIT_LOCK_LOST} (the lock was lost); \
             the command's was {code}"
        );
        return Ok(EXIT_LOCK_LOST);
    }
    Ok(code)
}

fn io_error(what: &str, e: std::io::Error) -> turn::Error {
    turn::Error::new(ErrorKind::InvalidArgument, format!("{what}: {e}"))
}

/// How a wait ended.
enum Waited {
    /// The outcome of the acquire: the locks in the order of the resources.
    Done(turn::Result<Vec<Lock>>),
    /// A signal came first: the ticket was withdrawn (and the locks taken
    /// before it released).
    Interrupted(i32),
}

/// Takes all of several locks or none (`Locker::acquire_all`) on a thread,
/// while this one waits for its outcome or a signal, which cancels it.
fn wait_all(
    locker: &Locker,
    resources: &[String],
    request: Acquire,
    tx: mpsc::Sender<Event>,
    events: &Receiver<Event>,
) -> Waited {
    let cancel = Cancel::new();
    let request = request.cancel(&cancel);
    {
        let (locker, resources) = (locker.clone(), resources.to_vec());
        std::thread::spawn(move || {
            let names: Vec<&str> = resources.iter().map(String::as_str).collect();
            let _ = tx.send(Event::Taken(locker.acquire_all(&names, &request)));
        });
    }
    let mut interrupted = None;
    loop {
        match events.recv() {
            Ok(Event::Signal(signo)) => {
                interrupted.get_or_insert(signo);
                cancel.cancel();
            }
            Ok(Event::Taken(taken)) => {
                let Some(signo) = interrupted else {
                    return Waited::Done(taken);
                };
                // Had just before the cancel: given back.
                for lock in taken.into_iter().flatten() {
                    let _ = lock.release();
                }
                return Waited::Interrupted(signo);
            }
            Ok(_) => {}
            Err(_) => {
                return Waited::Done(Err(turn::Error::new(
                    ErrorKind::Panic,
                    "the thread taking the locks ended without an outcome",
                )));
            }
        }
    }
}

/// Takes a ticket with a pending acquire and waits for its outcome,
/// polling its fd beside `wake` (readable when a signal came), and shows
/// the place in the queue every `POSITION_EVERY` while it changes. A
/// signal withdraws the ticket (a turn that came meanwhile is handed on).
fn wait_turn(
    locker: &Locker,
    resource: &str,
    request: &Acquire,
    name: &str,
    events: &Receiver<Event>,
    wake: &UnixStream,
) -> Waited {
    let pending = match locker.start_acquire(resource, request) {
        Ok(pending) => pending,
        Err(e) => return Waited::Done(Err(e)),
    };
    let mut progress = Progress::new(name);
    let waited = loop {
        let mut fds = [
            libc::pollfd {
                fd: pending.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds; the pending's fd lives as long as
        // `pending`, the wake stream as long as this call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, POSITION_EVERY.as_millis() as i32) };
        if fds[1].revents != 0 {
            let mut drain = [0u8; 64];
            while (&*wake).read(&mut drain).is_ok_and(|n| n > 0) {}
            let signal = events.try_iter().find_map(|e| match e {
                Event::Signal(signo) => Some(signo),
                _ => None,
            });
            if let Some(signo) = signal {
                // Withdrawn, or handed on should the turn have come.
                let _ = pending.cancel();
                break Waited::Interrupted(signo);
            }
        }
        if fds[0].revents != 0 {
            match pending.finish() {
                Ok(None) => {}
                Ok(Some(lock)) => break Waited::Done(Ok(vec![lock])),
                Err(e) => break Waited::Done(Err(e)),
            }
        }
        if n == 0 {
            progress.show(position(locker, resource, &pending));
        }
    };
    progress.done();
    waited
}

/// Live tickets ahead of the pending one, the holder included: the
/// pending's own count (as its waiter last read the queue), refined by a
/// status of the queue, which moves with each hand-off and leaves out
/// tickets withdrawn or dead.
fn position(locker: &Locker, resource: &str, pending: &Pending) -> u64 {
    let ahead = pending.ahead();
    match (pending.serial(), locker.status(resource)) {
        (Some(mine), Ok(status)) => {
            let live = status.tickets.iter().filter(|t| t.serial < mine).count();
            ahead.min(live as u64)
        }
        _ => ahead,
    }
}

/// The place in the queue, on standard error: updated in place on a
/// terminal, one line per change otherwise.
struct Progress<'a> {
    name: &'a str,
    terminal: bool,
    shown: Option<u64>,
}

impl<'a> Progress<'a> {
    fn new(name: &'a str) -> Progress<'a> {
        Progress {
            name,
            terminal: std::io::stderr().is_terminal(),
            shown: None,
        }
    }

    /// Shows how many live tickets are ahead when that changed.
    fn show(&mut self, ahead: u64) {
        if self.shown == Some(ahead) {
            return;
        }
        self.shown = Some(ahead);
        let mut err = std::io::stderr().lock();
        let text = format!("{}: waiting, {ahead} ahead", self.name);
        if self.terminal {
            let _ = write!(err, "\r\x1b[K{text}");
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    /// Clears the line shown in place.
    fn done(&mut self) {
        if self.terminal && self.shown.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// The write end of the signal pipe, for the handler.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signo: libc::c_int) {
    #[cfg(target_os = "linux")]
    // SAFETY: the calling thread's errno, saved and restored around write.
    let saved = unsafe { *libc::__errno_location() };
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signo as u8;
        // SAFETY: write(2) is async-signal-safe; one byte from the stack.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    #[cfg(target_os = "linux")]
    // SAFETY: as above.
    unsafe {
        *libc::__errno_location() = saved
    };
}

/// Catches SIGINT, SIGTERM and SIGHUP: each becomes an `Event::Signal`
/// (through a pipe the handler writes to and a thread reads), and makes
/// the stream returned readable (for a thread that polls descriptors).
/// Commands run later get the default handling back at exec.
fn catch_signals(tx: mpsc::Sender<Event>) -> std::io::Result<UnixStream> {
    let (mut read, write) = UnixStream::pair()?;
    write.set_nonblocking(true)?;
    let (wake, mut ring) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    ring.set_nonblocking(true)?;
    SIGNAL_PIPE.store(write.into_raw_fd(), Ordering::Relaxed);
    std::thread::spawn(move || {
        let mut byte = [0u8];
        while read.read_exact(&mut byte).is_ok() {
            if tx.send(Event::Signal(byte[0] as i32)).is_err() {
                break;
            }
            let _ = ring.write(&[1]);
        }
    });
    for signo in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a handler that only writes to a
        // pipe, installed with plain sigaction(2).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signo, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(wake)
}

/// Waits until the process `pid` exits, without reaping it.
fn wait_exit(pid: libc::pid_t) {
    loop {
        // SAFETY: a zeroed siginfo_t to be written by waitid(2).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain waitid(2) on our own child; WNOWAIT leaves it to
        // be reaped by Child::wait.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// A watch of a lock's lost fd; dropping it ends the watch and waits for
/// its thread (so the fd is not polled once the lock is released).
struct LostWatch {
    stop: Option<UnixStream>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LostWatch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Watches the lost fd of lock `index` on a thread: sends `Event::Lost`
/// once it is readable.
fn watch_lost(lock: &Lock, index: usize, tx: mpsc::Sender<Event>) -> Option<LostWatch> {
    let fd: RawFd = match lock.lost_fd() {
        Ok(fd) => fd.as_raw_fd(),
        Err(e) => {
            say!("turn: cannot watch the lock for loss: {e}");
            return None;
        }
    };
    let (stop, stopped) = UnixStream::pair().ok()?;
    let thread = std::thread::spawn(move || {
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stopped.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            // SAFETY: two valid pollfds. The lost fd stays open until the
            // lock is released, which waits for this thread to end (see
            // `LostWatch`); a closed `stop` makes `stopped` readable.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                continue; // EINTR
            }
            if fds[1].revents != 0 {
                return;
            }
            if fds[0].revents != 0 {
                let _ = tx.send(Event::Lost(index));
                return;
            }
        }
    });
    Some(LostWatch {
        stop: Some(stop),
        thread: Some(thread),
    })
}
