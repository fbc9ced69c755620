//! The history of a run, and its checker.
//!
//! Workers (threads of the test, or processes that write lines) record what
//! happened to each acquire, with CLOCK_MONOTONIC timestamps ([`now_ns`]):
//! the call, the ticket seen in the queue (when the test knows the draw
//! order), the grant with its serial and fencing token, each check, the
//! write offered to a fencing store, the release call and its answer. The
//! test records its faults (a Redis restart, a pause, a death) beside them.
//! [`check`] then looks for what the library promises never happens:
//!
//! - two holds that overlapped although both holders' final check and their
//!   release answered Ok;
//! - a fencing token that does not grow among Ok grants (in grant order);
//! - a fencing store that turned away a holder whose check and release
//!   answered Ok, and who held alone (a plain or exclusive holder, or one
//!   with all of a semaphore's permits);
//! - a later-drawn ticket granted before an earlier one that was still in
//!   the queue and was granted later with the same ticket (FIFO);
//! - waiters left without a holder for longer than the lease + 1 s after the
//!   last holder, waiter death, pause or fault (bounded recovery);
//! - an acquire that answered Ok for a lock that a check made right away
//!   called lost (Ok means held);
//! - a check or release answering Ok after a check answered Lost;
//! - when the run injects no fault, any lock lost at all.
//!
//! Each acquire records its mode (the plain lock, a semaphore's permits and
//! weight, a read-write lock's share) and, for an acquire of all of several
//! resources, the set it asked for; such an acquire records its steps on
//! each of its resources under one id. For the shared modes the rules read:
//!
//! - clean holds of a semaphore together weigh at most its permits; no
//!   shared holder beside an exclusive one; no holds of two kinds at once;
//! - an acquire of all that answered Ok got a lock on each of its
//!   resources, in the order it named them;
//! - no barging: a ticket drawn before another (seen queued before the
//!   other started, or with a lower serial of the same queue) and granted
//!   with that ticket is not granted after it, when holds that could not
//!   stand beside it show that it was not admitted yet;
//! - a token never goes back behind the token of a grant that answered
//!   before the acquire started (holders admitted together answer in any
//!   order), nor repeats;
//! - waiters that would all fit beside the live holders are not left
//!   waiting longer than the lease + 1 s without a grant (a dead holder's
//!   permits come back).
//!
//! Processes write one line per event (see [`Event::line`]); lines cut short
//! by a kill are skipped by [`parse`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use turn::{Kind, Mode};

use super::now_ns;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// Acquire called, with this lease and mode; `all` names the resources
    /// of an acquire of all of them, in the caller's order (empty for an
    /// acquire of one).
    Start {
        lease_ms: u64,
        mode: Mode,
        all: Vec<String>,
    },
    /// The acquire's ticket was seen in the queue with this serial (the test
    /// knows it was drawn before acquires started after this event).
    Queued { serial: u64 },
    /// Acquire answered Ok.
    Granted { serial: u64, token: u64 },
    /// Acquire answered an error (its kind).
    Failed { error: String },
    /// A check right after the grant (`at_grant`) or later.
    Check { ok: bool, at_grant: bool },
    /// A write offered to the fencing store with this token.
    Stored { token: u64, accepted: bool },
    /// Release called.
    ReleaseCalled,
    /// Release answered (Ok or not).
    Released { ok: bool },
    /// The worker died (killed): its holds and waits end here.
    Died,
    /// The worker was stopped (SIGSTOP): for recovery, as dead until resumed.
    Paused,
    /// The worker runs again.
    Resumed,
    /// A fault began (Redis restart, stall, ...); nothing need progress.
    FaultStart { name: String },
    /// The fault ended; recovery is measured from here.
    FaultEnd { name: String },
}

impl What {
    /// The start of a plain acquire of one resource.
    pub fn start(lease_ms: u64) -> What {
        What::Start {
            lease_ms,
            mode: Mode::Plain,
            all: Vec::new(),
        }
    }
}

/// A mode as one word of a history line: `plain`, `sem:PERMITS:WEIGHT`,
/// `shared` or `exclusive`.
pub fn mode_word(mode: Mode) -> String {
    match mode {
        Mode::Plain => "plain".to_string(),
        Mode::Semaphore { permits, weight } => format!("sem:{permits}:{weight}"),
        Mode::ReadWrite { exclusive: false } => "shared".to_string(),
        Mode::ReadWrite { exclusive: true } => "exclusive".to_string(),
    }
}

/// The mode a word of [`mode_word`] names.
pub fn parse_mode(word: &str) -> Option<Mode> {
    match word {
        "plain" => Some(Mode::Plain),
        "shared" => Some(Mode::ReadWrite { exclusive: false }),
        "exclusive" => Some(Mode::ReadWrite { exclusive: true }),
        _ => {
            let mut f = word.strip_prefix("sem:")?.split(':');
            let permits = f.next()?.parse().ok()?;
            let weight = f.next()?.parse().ok()?;
            f.next()
                .is_none()
                .then_some(Mode::Semaphore { permits, weight })
        }
    }
}

/// One event. `worker` names a thread or process; `id` one acquire of it
/// (unique in the run); `resource` the lock's resource. Worker-wide events
/// have id "-", run-wide ones worker "-" too; worker "pid:N" stands for
/// every worker of process N (named `NAME#N.K` by [`Worker::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub t: u64,
    pub worker: String,
    pub id: String,
    pub resource: String,
    pub what: What,
}

impl Event {
    /// The event as one line: `H t worker id resource kind args...`; a
    /// start's args are `LEASE_MS MODE [all:R1,R2,...]`.
    pub fn line(&self) -> String {
        let (kind, args) = match &self.what {
            What::Start {
                lease_ms,
                mode,
                all,
            } => (
                "start",
                if all.is_empty() {
                    format!("{lease_ms} {}", mode_word(*mode))
                } else {
                    format!("{lease_ms} {} all:{}", mode_word(*mode), all.join(","))
                },
            ),
            What::Queued { serial } => ("queued", serial.to_string()),
            What::Granted { serial, token } => ("granted", format!("{serial} {token}")),
            What::Failed { error } => ("failed", error.replace(' ', "_")),
            What::Check { ok, at_grant } => (
                if *at_grant { "check0" } else { "check" },
                word(*ok).to_string(),
            ),
            What::Stored { token, accepted } => (
                "stored",
                format!(
                    "{token} {}",
                    if *accepted { "accepted" } else { "rejected" }
                ),
            ),
            What::ReleaseCalled => ("release", String::new()),
            What::Released { ok } => ("released", word(*ok).to_string()),
            What::Died => ("died", String::new()),
            What::Paused => ("paused", String::new()),
            What::Resumed => ("resumed", String::new()),
            What::FaultStart { name } => ("fault", name.replace(' ', "_")),
            What::FaultEnd { name } => ("healed", name.replace(' ', "_")),
        };
        format!(
            "H {} {} {} {} {kind} {args}",
            self.t, self.worker, self.id, self.resource
        )
        .trim_end()
        .to_string()
    }

    /// Parses a line written by [`Event::line`]; None for anything else.
    pub fn parse(line: &str) -> Option<Event> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[0] != "H" {
            return None;
        }
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
        let ok = |i: usize| match f.get(i) {
            Some(&"ok") => Some(true),
            Some(&"lost") => Some(false),
            _ => None,
        };
        let what = match f[5] {
            // A line without a mode is a plain acquire's.
            "start" => What::Start {
                lease_ms: num(6)?,
                mode: match f.get(7) {
                    None => Mode::Plain,
                    Some(w) => parse_mode(w)?,
                },
                all: match f.get(8) {
                    None => Vec::new(),
                    Some(w) => w
                        .strip_prefix("all:")?
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                },
            },
            "queued" => What::Queued { serial: num(6)? },
            "granted" => What::Granted {
                serial: num(6)?,
                token: num(7)?,
            },
            "failed" => What::Failed {
                error: f.get(6)?.to_string(),
            },
            "check" | "check0" => What::Check {
                ok: ok(6)?,
                at_grant: f[5] == "check0",
            },
            "stored" => What::Stored {
                token: num(6)?,
                accepted: match *f.get(7)? {
                    "accepted" => true,
                    "rejected" => false,
                    _ => return None,
                },
            },
            "release" => What::ReleaseCalled,
            "released" => What::Released { ok: ok(6)? },
            "died" => What::Died,
            "paused" => What::Paused,
            "resumed" => What::Resumed,
            "fault" => What::FaultStart {
                name: f.get(6)?.to_string(),
            },
            "healed" => What::FaultEnd {
                name: f.get(6)?.to_string(),
            },
            _ => return None,
        };
        Some(Event {
            t: num(1)?,
            worker: f[2].to_string(),
            id: f[3].to_string(),
            resource: f[4].to_string(),
            what,
        })
    }
}

fn word(ok: bool) -> &'static str {
    if ok { "ok" } else { "lost" }
}

/// The events among `text`'s lines (other lines, and lines cut short, are
/// skipped: a last line without its newline may have been cut anywhere).
pub fn parse(text: &str) -> Vec<Event> {
    let whole = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    whole.lines().filter_map(Event::parse).collect()
}

/// Where events go.
pub trait Sink: Send + Sync {
    fn push(&self, e: Event);

    fn record(&self, worker: &str, id: &str, resource: &str, what: What) {
        self.push(Event {
            t: now_ns(),
            worker: worker.to_string(),
            id: id.to_string(),
            resource: resource.to_string(),
            what,
        });
    }

    /// A fault of the whole run begins.
    fn fault_start(&self, name: &str) {
        self.record(
            "-",
            "-",
            "-",
            What::FaultStart {
                name: name.to_string(),
            },
        );
    }

    /// The fault ends.
    fn fault_end(&self, name: &str) {
        self.record(
            "-",
            "-",
            "-",
            What::FaultEnd {
                name: name.to_string(),
            },
        );
    }

    /// Something worker-wide (Died, Paused, Resumed).
    fn worker_event(&self, worker: &str, what: What) {
        self.record(worker, "-", "-", what);
    }

    /// Something that befell every worker of process `pid`.
    fn process_event(&self, pid: u32, what: What) {
        self.record(&format!("pid:{pid}"), "-", "-", what);
    }
}

/// An in-process history: threads record into it.
#[derive(Clone, Default)]
pub struct History {
    events: Arc<Mutex<Vec<Event>>>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Adds events read from elsewhere (a worker process's lines).
    pub fn extend(&self, events: impl IntoIterator<Item = Event>) {
        self.events.lock().unwrap().extend(events);
    }

    pub fn check(&self, rules: &Rules) -> Report {
        check(&self.events(), rules)
    }
}

impl Sink for History {
    fn push(&self, e: Event) {
        self.events.lock().unwrap().push(e);
    }
}

/// A history in a file that processes append lines to (one write each).
pub struct FileLog(pub PathBuf);

impl Sink for FileLog {
    fn push(&self, e: Event) {
        let line = format!("{}\n", e.line());
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.0)
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
    }
}

/// A storage that accepts a write only with a token greater than the last
/// it accepted (per resource): what a fenced resource does.
pub trait Fencing: Send + Sync {
    fn offer(&self, resource: &str, token: u64) -> bool;
}

/// An in-process fencing store.
#[derive(Default)]
pub struct Fence {
    last: Mutex<HashMap<String, u64>>,
    pub rejections: AtomicUsize,
}

impl Fencing for Fence {
    fn offer(&self, resource: &str, token: u64) -> bool {
        let mut last = self.last.lock().unwrap();
        let seen = last.entry(resource.to_string()).or_insert(0);
        if token > *seen {
            *seen = token;
            true
        } else {
            self.rejections.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// A fencing store in a directory, shared by processes: one file per
/// resource holding the last accepted token, under flock.
pub struct FileFence(pub PathBuf);

impl Fencing for FileFence {
    fn offer(&self, resource: &str, token: u64) -> bool {
        let path = self.0.join(format!("fence.{resource}"));
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        // SAFETY: flock on an open file descriptor.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        let seen: u64 = text.trim().parse().unwrap_or(0);
        let accepted = token > seen;
        if accepted {
            f.seek(SeekFrom::Start(0)).unwrap();
            f.set_len(0).unwrap();
            write!(f, "{token}").unwrap();
        }
        // SAFETY: as above.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        accepted
    }
}

/// How a cycle of [`Worker::cycle`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acquire failed with this error.
    Failed(turn::Error),
    /// Held; `clean` when the final check and the release answered Ok.
    Held {
        serial: u64,
        token: u64,
        clean: bool,
    },
}

/// A worker: one thread's (or process's) acquires, numbered.
pub struct Worker<'a> {
    pub name: String,
    pub sink: &'a dyn Sink,
    pub fence: &'a dyn Fencing,
    n: u64,
}

static WORKERS: AtomicU64 = AtomicU64::new(0);

impl<'a> Worker<'a> {
    /// A worker named `name` (made unique in this process).
    pub fn new(name: &str, sink: &'a dyn Sink, fence: &'a dyn Fencing) -> Worker<'a> {
        let n = WORKERS.fetch_add(1, Ordering::Relaxed);
        Worker {
            name: format!("{name}#{}.{n}", std::process::id()),
            sink,
            fence,
            n: 0,
        }
    }

    /// The id (and label) the next acquire will have.
    pub fn next_id(&self) -> String {
        format!("{}/{}", self.name, self.n)
    }

    /// Takes a new id for an acquire the caller makes itself.
    pub fn take_id(&mut self) -> String {
        let id = self.next_id();
        self.n += 1;
        id
    }

    /// Records an event of acquire `id`.
    pub fn record(&self, id: &str, resource: &str, what: What) {
        self.sink.record(&self.name, id, resource, what);
    }

    /// The acquire's label is its id (so status shows whose ticket is
    /// whose). Records the start and the answer; on Ok, records the check
    /// made right away.
    pub fn acquire(
        &mut self,
        locker: &turn::Locker,
        resource: &str,
        request: &turn::Acquire,
    ) -> (String, turn::Result<turn::Lock>) {
        let id = self.take_id();
        let mut request = request.clone();
        request.label = id.clone();
        let lease_ms = request.expire.unwrap_or(turn::DEFAULT_EXPIRE).as_millis() as u64;
        self.record(
            &id,
            resource,
            What::Start {
                lease_ms,
                mode: request.mode,
                all: Vec::new(),
            },
        );
        let result = locker.acquire(resource, &request);
        match &result {
            Ok(lock) => {
                self.record(
                    &id,
                    resource,
                    What::Granted {
                        serial: lock.serial(),
                        token: lock.token(),
                    },
                );
                let ok = lock.check().is_ok();
                self.record(&id, resource, What::Check { ok, at_grant: true });
            }
            Err(e) => self.record(
                &id,
                resource,
                What::Failed {
                    error: format!("{:?}", e.kind()),
                },
            ),
        }
        (id, result)
    }

    /// The rest of a hold: offers the token to the fence, waits `hold`,
    /// checks, releases, recording each step. True when clean.
    pub fn finish(&self, id: &str, lock: turn::Lock, hold: Duration) -> bool {
        let resource = lock.resource().to_string();
        let token = lock.token();
        let accepted = self.fence.offer(&resource, token);
        self.record(id, &resource, What::Stored { token, accepted });
        if !hold.is_zero() {
            std::thread::sleep(hold);
        }
        let checked = lock.check().is_ok();
        self.record(
            id,
            &resource,
            What::Check {
                ok: checked,
                at_grant: false,
            },
        );
        self.record(id, &resource, What::ReleaseCalled);
        let released = lock.release().is_ok();
        self.record(id, &resource, What::Released { ok: released });
        checked && released
    }

    /// An acquire of all of `resources` (the label is the id), recorded on
    /// each: the start with the set, then on Ok each lock's grant (in the
    /// order the locks came back, under the lock's own resource) and the
    /// check made right away; on an error its failure on each.
    pub fn acquire_all(
        &mut self,
        locker: &turn::Locker,
        resources: &[&str],
        request: &turn::Acquire,
    ) -> (String, turn::Result<Vec<turn::Lock>>) {
        let id = self.take_id();
        let mut request = request.clone();
        request.label = id.clone();
        let lease_ms = request.expire.unwrap_or(turn::DEFAULT_EXPIRE).as_millis() as u64;
        let all: Vec<String> = resources.iter().map(|r| r.to_string()).collect();
        for r in resources {
            self.record(
                &id,
                r,
                What::Start {
                    lease_ms,
                    mode: request.mode,
                    all: all.clone(),
                },
            );
        }
        let result = locker.acquire_all(resources, &request);
        match &result {
            Ok(locks) => {
                for lock in locks {
                    self.record(
                        &id,
                        lock.resource(),
                        What::Granted {
                            serial: lock.serial(),
                            token: lock.token(),
                        },
                    );
                }
                for lock in locks {
                    let ok = lock.check().is_ok();
                    self.record(&id, lock.resource(), What::Check { ok, at_grant: true });
                }
            }
            Err(e) => {
                for r in resources {
                    self.record(
                        &id,
                        r,
                        What::Failed {
                            error: format!("{:?}", e.kind()),
                        },
                    );
                }
            }
        }
        (id, result)
    }

    /// The rest of a hold of several locks taken together: offers each
    /// token to the fence, waits `hold`, checks each, releases each,
    /// recording every step on the lock's resource. True when all clean.
    pub fn finish_all(&self, id: &str, locks: Vec<turn::Lock>, hold: Duration) -> bool {
        for lock in &locks {
            let (resource, token) = (lock.resource(), lock.token());
            let accepted = self.fence.offer(resource, token);
            self.record(id, resource, What::Stored { token, accepted });
        }
        if !hold.is_zero() {
            std::thread::sleep(hold);
        }
        let mut clean = true;
        for lock in &locks {
            let ok = lock.check().is_ok();
            clean &= ok;
            self.record(
                id,
                lock.resource(),
                What::Check {
                    ok,
                    at_grant: false,
                },
            );
        }
        for lock in locks {
            let resource = lock.resource().to_string();
            self.record(id, &resource, What::ReleaseCalled);
            let ok = lock.release().is_ok();
            clean &= ok;
            self.record(id, &resource, What::Released { ok });
        }
        clean
    }

    /// One whole cycle of an acquire of all of `resources`: acquire, fence,
    /// hold, check, release. `Held` names the first lock's serial and token.
    pub fn cycle_all(
        &mut self,
        locker: &turn::Locker,
        resources: &[&str],
        request: &turn::Acquire,
        hold: Duration,
    ) -> Outcome {
        let (id, result) = self.acquire_all(locker, resources, request);
        match result {
            Err(e) => Outcome::Failed(e),
            Ok(locks) => {
                let (serial, token) = (locks[0].serial(), locks[0].token());
                let clean = self.finish_all(&id, locks, hold);
                Outcome::Held {
                    serial,
                    token,
                    clean,
                }
            }
        }
    }

    /// One whole cycle: acquire, fence, hold, check, release.
    pub fn cycle(
        &mut self,
        locker: &turn::Locker,
        resource: &str,
        request: &turn::Acquire,
        hold: Duration,
    ) -> Outcome {
        let (id, result) = self.acquire(locker, resource, request);
        match result {
            Err(e) => Outcome::Failed(e),
            Ok(lock) => {
                let (serial, token) = (lock.serial(), lock.token());
                let clean = self.finish(&id, lock, hold);
                Outcome::Held {
                    serial,
                    token,
                    clean,
                }
            }
        }
    }
}

/// What the checker looks for beyond the always-on rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Recovery margin beyond the lease (1 s).
    pub margin: Duration,
    /// No fault was injected: any lock lost is a violation.
    pub no_loss: bool,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            margin: Duration::from_secs(1),
            no_loss: false,
        }
    }
}

/// A broken guarantee, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    Overlap {
        resource: String,
        first: String,
        second: String,
        /// How long both held at once, in µs.
        overlap_us: u64,
    },
    TokenBack {
        resource: String,
        earlier: String,
        earlier_token: u64,
        later: String,
        later_token: u64,
    },
    Rejected {
        id: String,
        token: u64,
    },
    FifoBreak {
        resource: String,
        first: String,
        first_serial: u64,
        later: String,
        later_serial: u64,
    },
    Stranded {
        resource: String,
        /// From and to, in ms since the first event.
        from_ms: u64,
        to_ms: u64,
        bound_ms: u64,
        waiters: Vec<String>,
    },
    LostAtGrant {
        id: String,
        resource: String,
        serial: u64,
        /// The resources of an acquire of all (empty for one).
        all: Vec<String>,
    },
    OkAfterLost {
        id: String,
        what: &'static str,
    },
    Lost {
        id: String,
        serial: u64,
    },
    /// Clean holds of a semaphore weighing more than its permits at once.
    OverPermits {
        resource: String,
        permits: u32,
        weight: u64,
        holders: Vec<String>,
    },
    /// A clean shared holder beside a clean exclusive one.
    SharedBesideExclusive {
        resource: String,
        exclusive: String,
        shared: String,
        overlap_us: u64,
    },
    /// Clean holds of two kinds of queue (or two semaphores' permits) on one
    /// resource at once.
    KindsMixed {
        resource: String,
        first: String,
        first_mode: Mode,
        second: String,
        second_mode: Mode,
    },
    /// An acquire of all that answered Ok without a lock on each resource
    /// it asked for, in its order.
    NotAll {
        id: String,
        asked: Vec<String>,
        got: Vec<String>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Overlap {
                resource,
                first,
                second,
                overlap_us,
            } => write!(
                f,
                "overlap on {resource}: {first} and {second} both held for {overlap_us} µs, and both checked and released Ok"
            ),
            Violation::TokenBack {
                resource,
                earlier,
                earlier_token,
                later,
                later_token,
            } => write!(
                f,
                "token did not grow on {resource}: {later} was granted token {later_token} after {earlier} had token {earlier_token}"
            ),
            Violation::Rejected { id, token } => write!(
                f,
                "the fencing store rejected token {token} of {id}, whose check and release answered Ok"
            ),
            Violation::FifoBreak {
                resource,
                first,
                first_serial,
                later,
                later_serial,
            } => write!(
                f,
                "FIFO broken on {resource}: {later} (drawn after {first}, got serial {later_serial}) was granted before {first} (ticket {first_serial}, still queued and granted later)"
            ),
            Violation::Stranded {
                resource,
                from_ms,
                to_ms,
                bound_ms,
                waiters,
            } => write!(
                f,
                "waiters stranded on {resource}: nobody held from {from_ms} ms to {to_ms} ms ({} ms > {bound_ms} ms) while {} waited: {}",
                to_ms - from_ms,
                waiters.len(),
                waiters.join(", ")
            ),
            Violation::LostAtGrant {
                id,
                resource,
                serial,
                all,
            } => {
                let of_all = if all.is_empty() {
                    String::new()
                } else {
                    format!(", one of an acquire of all of {all:?}")
                };
                write!(
                    f,
                    "acquire answered Ok for {id} (serial {serial} on {resource}{of_all}) but a check right away answered Lost: Ok did not mean held"
                )
            }
            Violation::OkAfterLost { id, what } => {
                write!(f, "{id}: {what} answered Ok after a check answered Lost")
            }
            Violation::Lost { id, serial } => write!(
                f,
                "{id} (serial {serial}) lost its lock although no fault was injected"
            ),
            Violation::OverPermits {
                resource,
                permits,
                weight,
                holders,
            } => write!(
                f,
                "over the permits on {resource}: {} holders weighing {weight} > {permits} permits held at once, each checked and released Ok: {}",
                holders.len(),
                holders.join(", ")
            ),
            Violation::SharedBesideExclusive {
                resource,
                exclusive,
                shared,
                overlap_us,
            } => write!(
                f,
                "shared beside exclusive on {resource}: {shared} (shared) held beside {exclusive} (exclusive) for {overlap_us} µs, both checked and released Ok"
            ),
            Violation::KindsMixed {
                resource,
                first,
                first_mode,
                second,
                second_mode,
            } => write!(
                f,
                "two kinds on {resource} at once: {first} ({}) and {second} ({}) both held, both checked and released Ok",
                mode_word(*first_mode),
                mode_word(*second_mode)
            ),
            Violation::NotAll { id, asked, got } => write!(
                f,
                "{id}: the acquire of all of {asked:?} answered Ok with locks on {got:?}"
            ),
        }
    }
}

/// Counts and violations of a checked history.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Locks granted: acquires that answered Ok (an acquire of all counts
    /// one per resource).
    pub granted: usize,
    /// Holds whose final check and release answered Ok.
    pub clean: usize,
    /// Holds that a check or the release called lost.
    pub lost: usize,
    /// Acquires that answered an error (an acquire of all counts one per
    /// resource).
    pub failed: usize,
    /// Writes the fencing store turned away.
    pub rejected: usize,
    /// Faults injected.
    pub faults: usize,
    pub violations: Vec<Violation>,
}

/// Examples of each kind of violation a report prints.
const EXAMPLES: usize = 5;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} granted, {} clean, {} lost, {} failed acquires, {} fencing rejections, {} faults, {} violations",
            self.granted,
            self.clean,
            self.lost,
            self.failed,
            self.rejected,
            self.faults,
            self.violations.len()
        )?;
        let mut kinds: BTreeMap<&str, Vec<&Violation>> = BTreeMap::new();
        for v in &self.violations {
            kinds.entry(v.kind()).or_default().push(v);
        }
        for (kind, list) in kinds {
            write!(f, "\n  {kind}: {}", list.len())?;
            for v in list.iter().take(EXAMPLES) {
                write!(f, "\n    - {v}")?;
            }
            if list.len() > EXAMPLES {
                write!(f, "\n    - ...")?;
            }
        }
        Ok(())
    }
}

impl Violation {
    /// A short name of the kind of violation.
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::Overlap { .. } => "overlap",
            Violation::TokenBack { .. } => "token back",
            Violation::Rejected { .. } => "fencing rejection of a clean holder",
            Violation::FifoBreak { .. } => "FIFO break",
            Violation::Stranded { .. } => "stranded waiters",
            Violation::LostAtGrant { .. } => "Ok not held",
            Violation::OkAfterLost { .. } => "Ok after Lost",
            Violation::Lost { .. } => "loss without a fault",
            Violation::OverPermits { .. } => "over the permits",
            Violation::SharedBesideExclusive { .. } => "shared beside exclusive",
            Violation::KindsMixed { .. } => "two kinds at once",
            Violation::NotAll { .. } => "not all locks",
        }
    }
}

impl Report {
    /// Panics with every violation, or when fewer than `min_granted`
    /// acquires answered Ok (the run did too little to mean anything).
    pub fn assert_sound(&self, scenario: &str, min_granted: usize) {
        println!("{scenario}: {self}");
        assert!(
            self.violations.is_empty(),
            "{scenario}: {} violation(s):\n{self}",
            self.violations.len()
        );
        assert!(
            self.granted >= min_granted,
            "{scenario}: too little work: {} grants, expected at least {min_granted}",
            self.granted
        );
    }
}

/// What one acquire did on one resource, assembled from its events.
#[derive(Debug, Default, Clone)]
struct Hold {
    worker: String,
    resource: String,
    start: Option<u64>,
    lease_ms: u64,
    mode: Mode,
    /// The resources of an acquire of all (empty for an acquire of one).
    all: Vec<String>,
    queued: Option<(u64, u64)>,
    /// Time, serial, token.
    granted: Option<(u64, u64, u64)>,
    /// Where the grant is in the history (grants of one acquire of all are
    /// recorded in the order its locks came back).
    granted_nth: usize,
    end_wait: Option<u64>,
    checks: Vec<(u64, bool, bool)>,
    release_called: Option<u64>,
    released: Option<bool>,
}

impl Hold {
    fn serial(&self) -> u64 {
        self.granted.map_or(0, |g| g.1)
    }

    fn final_check_ok(&self) -> bool {
        self.checks.last().is_none_or(|c| c.1)
    }

    fn clean(&self) -> bool {
        self.granted.is_some() && self.released == Some(true) && self.final_check_ok()
    }

    /// One of several resources of an acquire of all: its wait is not
    /// its own (it may be waiting for another of them).
    fn of_several(&self) -> bool {
        self.all.len() > 1
    }
}

/// A hold is one acquire's steps on one resource.
type HoldKey = (String, String);

/// What a mode takes of its resource, as (demand, capacity): holders fit
/// together while their demands add up to at most the capacity. A
/// read-write lock's shared holder takes 1 of [`ALL`], its exclusive one
/// all of it.
fn demand(mode: Mode) -> (u64, u64) {
    match mode {
        Mode::Plain => (1, 1),
        Mode::Semaphore { permits, weight } => (weight as u64, permits as u64),
        Mode::ReadWrite { exclusive: true } => (ALL, ALL),
        Mode::ReadWrite { exclusive: false } => (1, ALL),
    }
}

/// The capacity of a read-write lock (more than any number of readers).
const ALL: u64 = 1 << 32;

/// True when a ticket of `mode` can hold beside holders of `beside`.
fn fits(mode: Mode, beside: &[Mode]) -> bool {
    let (d, cap) = demand(mode);
    beside.iter().all(|m| m.kind() == mode.kind())
        && beside.iter().map(|m| demand(*m).0).sum::<u64>() + d <= cap
}

/// A holder of a shared mode (a semaphore or a read-write lock): holders
/// admitted together answer in any order.
fn shared(mode: Mode) -> bool {
    !matches!(mode, Mode::Plain)
}

/// Holds alone: no one may hold beside it.
fn alone(mode: Mode) -> bool {
    let (d, cap) = demand(mode);
    d == cap
}

/// Checks a history (events in any order; they are sorted by time).
pub fn check(events: &[Event], rules: &Rules) -> Report {
    let mut events = events.to_vec();
    events.sort_by_key(|e| e.t);
    let t0 = events.first().map_or(0, |e| e.t);
    let mut holds: BTreeMap<HoldKey, Hold> = BTreeMap::new();
    let mut report = Report::default();
    for (nth, e) in events.iter().enumerate() {
        if e.id == "-" {
            if matches!(e.what, What::FaultStart { .. }) {
                report.faults += 1;
            }
            continue;
        }
        let h = holds
            .entry((e.id.clone(), e.resource.clone()))
            .or_insert_with(|| Hold {
                worker: e.worker.clone(),
                resource: e.resource.clone(),
                ..Hold::default()
            });
        match &e.what {
            What::Start {
                lease_ms,
                mode,
                all,
            } => {
                h.start = Some(e.t);
                h.lease_ms = *lease_ms;
                h.mode = *mode;
                h.all = all.clone();
            }
            What::Queued { serial } => h.queued = Some((e.t, *serial)),
            What::Granted { serial, token } => {
                h.granted = Some((e.t, *serial, *token));
                h.granted_nth = nth;
                h.end_wait = Some(e.t);
            }
            What::Failed { .. } => h.end_wait = Some(e.t),
            What::Check { ok, at_grant } => h.checks.push((e.t, *ok, *at_grant)),
            What::Stored {
                accepted: false, ..
            } => report.rejected += 1,
            What::ReleaseCalled => h.release_called = Some(e.t),
            What::Released { ok } => h.released = Some(*ok),
            _ => {}
        }
    }
    let mut violations = Vec::new();
    for ((id, _), h) in &holds {
        if h.start.is_some() && h.end_wait.is_some() && h.granted.is_none() {
            report.failed += 1;
        }
        let Some((_, serial, _)) = h.granted else {
            continue;
        };
        report.granted += 1;
        if h.clean() {
            report.clean += 1;
        } else if h.released.is_some() || !h.checks.is_empty() {
            report.lost += 1;
            if rules.no_loss {
                violations.push(Violation::Lost {
                    id: id.clone(),
                    serial,
                });
            }
        }
        if let Some(c) = h.checks.iter().find(|c| c.2)
            && !c.1
        {
            violations.push(Violation::LostAtGrant {
                id: id.clone(),
                resource: h.resource.clone(),
                serial,
                all: h.all.clone(),
            });
        }
        if let Some(first_lost) = h.checks.iter().position(|c| !c.1) {
            if h.checks[first_lost..].iter().any(|c| c.1) {
                violations.push(Violation::OkAfterLost {
                    id: id.clone(),
                    what: "a check",
                });
            }
            if h.released == Some(true) {
                violations.push(Violation::OkAfterLost {
                    id: id.clone(),
                    what: "the release",
                });
            }
        }
    }
    all_or_none(&holds, &mut violations);
    // Rejections of clean holds that hold alone (shared holders write
    // together: their tokens reach the store in any order).
    for e in &events {
        if let What::Stored {
            token,
            accepted: false,
        } = e.what
            && holds
                .get(&(e.id.clone(), e.resource.clone()))
                .is_some_and(|h| h.clean() && alone(h.mode))
        {
            violations.push(Violation::Rejected {
                id: e.id.clone(),
                token,
            });
        }
    }
    let faults = fault_windows(&events);
    let mut by_resource: BTreeMap<&str, Vec<(&String, &Hold)>> = BTreeMap::new();
    for ((id, _), h) in &holds {
        by_resource.entry(&h.resource).or_default().push((id, h));
    }
    for (resource, list) in &by_resource {
        exclusion(resource, list, &mut violations);
        if list.iter().any(|(_, h)| shared(h.mode)) {
            tokens_shared(resource, list, &mut violations);
            fifo_shared(resource, list, &faults, &mut violations);
        } else {
            tokens(resource, list, &mut violations);
            fifo(resource, list, &mut violations);
        }
    }
    stranded(&events, &holds, rules, t0, &mut violations);
    report.violations = violations;
    report
}

/// An acquire of all that answered Ok has a lock on each resource it asked
/// for, granted in the order it named them.
fn all_or_none(holds: &BTreeMap<HoldKey, Hold>, out: &mut Vec<Violation>) {
    let mut by_id: BTreeMap<&str, Vec<&Hold>> = BTreeMap::new();
    for ((id, _), h) in holds {
        by_id.entry(id).or_default().push(h);
    }
    for (id, list) in by_id {
        let Some(asked) = list.iter().map(|h| &h.all).find(|all| !all.is_empty()) else {
            continue;
        };
        let mut granted: Vec<&&Hold> = list.iter().filter(|h| h.granted.is_some()).collect();
        if granted.is_empty() {
            continue;
        }
        granted.sort_by_key(|h| h.granted_nth);
        let got: Vec<String> = granted.iter().map(|h| h.resource.clone()).collect();
        if &got != asked {
            out.push(Violation::NotAll {
                id: id.to_string(),
                asked: asked.clone(),
                got,
            });
        }
    }
}

/// Clean holds, [grant, release call], must fit together: one at a time
/// on a plain lock (or an exclusive holder of a read-write lock), at most
/// the permits on a semaphore, one kind at a time.
fn exclusion(resource: &str, list: &[(&String, &Hold)], out: &mut Vec<Violation>) {
    let mut spans: Vec<(u64, u64, &String, Mode)> = list
        .iter()
        .filter(|(_, h)| h.clean())
        .filter_map(|(id, h)| Some((h.granted?.0, h.release_called?, *id, h.mode)))
        .collect();
    spans.sort_by_key(|s| (s.0, s.1));
    let mut active: Vec<(u64, u64, &String, Mode)> = Vec::new();
    for (start, end, id, mode) in spans {
        active.retain(|a| a.1 > start);
        for &(_, other_end, other, other_mode) in &active {
            let overlap_us = (other_end.min(end) - start) / 1000;
            if other_mode.kind() != mode.kind() {
                out.push(Violation::KindsMixed {
                    resource: resource.to_string(),
                    first: other.clone(),
                    first_mode: other_mode,
                    second: id.clone(),
                    second_mode: mode,
                });
                continue;
            }
            match (other_mode, mode) {
                (Mode::Plain, _)
                | (Mode::ReadWrite { exclusive: true }, Mode::ReadWrite { exclusive: true }) => out
                    .push(Violation::Overlap {
                        resource: resource.to_string(),
                        first: other.clone(),
                        second: id.clone(),
                        overlap_us,
                    }),
                (Mode::ReadWrite { exclusive: a }, Mode::ReadWrite { exclusive: b }) if a != b => {
                    let (exclusive, shared) = if a { (other, id) } else { (id, other) };
                    out.push(Violation::SharedBesideExclusive {
                        resource: resource.to_string(),
                        exclusive: exclusive.clone(),
                        shared: shared.clone(),
                        overlap_us,
                    });
                }
                _ => {}
            }
        }
        if let Kind::Semaphore { permits } = mode.kind() {
            let same: Vec<&(u64, u64, &String, Mode)> = active
                .iter()
                .filter(|a| a.3.kind() == mode.kind())
                .collect();
            let weight: u64 = same.iter().map(|a| demand(a.3).0).sum::<u64>() + demand(mode).0;
            if weight > permits as u64 {
                let mut holders: Vec<String> = same.iter().map(|a| a.2.clone()).collect();
                holders.push(id.clone());
                out.push(Violation::OverPermits {
                    resource: resource.to_string(),
                    permits,
                    weight,
                    holders,
                });
            }
        }
        active.push((start, end, id, mode));
    }
}

/// Tokens of Ok grants must grow in grant order.
fn tokens(resource: &str, list: &[(&String, &Hold)], out: &mut Vec<Violation>) {
    let mut grants: Vec<(u64, u64, &String)> = list
        .iter()
        .filter_map(|(id, h)| h.granted.map(|g| (g.0, g.2, *id)))
        .collect();
    grants.sort();
    let mut best: Option<(u64, &String)> = None;
    for (_, token, id) in grants {
        if let Some((max, who)) = best
            && token <= max
        {
            out.push(Violation::TokenBack {
                resource: resource.to_string(),
                earlier: who.clone(),
                earlier_token: max,
                later: id.clone(),
                later_token: token,
            });
        }
        if best.is_none_or(|(max, _)| token > max) {
            best = Some((token, id));
        }
    }
}

/// Tokens on a resource with shared holders: holders admitted together
/// answer in any order, so a token need only be above every token granted
/// before its acquire started; and no token is given twice.
fn tokens_shared(resource: &str, list: &[(&String, &Hold)], out: &mut Vec<Violation>) {
    let mut grants: Vec<(u64, u64, &String)> = list
        .iter()
        .filter_map(|(id, h)| h.granted.map(|g| (g.0, g.2, *id)))
        .collect();
    grants.sort();
    let mut starts: Vec<(u64, u64, &String)> = list
        .iter()
        .filter_map(|(id, h)| Some((h.start?, h.granted?.2, *id)))
        .collect();
    starts.sort();
    // Grants in time order against acquires in start order.
    let mut best: Option<(u64, &String)> = None;
    let mut next = 0;
    for (start, token, id) in starts {
        while next < grants.len() && grants[next].0 < start {
            let (_, t, who) = grants[next];
            if best.is_none_or(|(max, _)| t > max) {
                best = Some((t, who));
            }
            next += 1;
        }
        if let Some((max, who)) = best
            && token <= max
        {
            out.push(Violation::TokenBack {
                resource: resource.to_string(),
                earlier: who.clone(),
                earlier_token: max,
                later: id.clone(),
                later_token: token,
            });
        }
    }
    let mut seen: HashMap<u64, &String> = HashMap::new();
    for (_, token, id) in grants {
        if let Some(who) = seen.insert(token, id) {
            out.push(Violation::TokenBack {
                resource: resource.to_string(),
                earlier: who.clone(),
                earlier_token: token,
                later: id.clone(),
                later_token: token,
            });
        }
    }
}

/// A ticket seen queued before another acquire started, and granted later
/// with that same ticket, must be granted before it.
fn fifo(resource: &str, list: &[(&String, &Hold)], out: &mut Vec<Violation>) {
    for (a_id, a) in list {
        let (Some((queued_at, qserial)), Some((a_granted, a_serial, _))) = (a.queued, a.granted)
        else {
            continue;
        };
        if a_serial != qserial {
            continue; // drew again: not the same ticket
        }
        for (b_id, b) in list {
            let (Some(b_start), Some((b_granted, b_serial, _))) = (b.start, b.granted) else {
                continue;
            };
            if b_start > queued_at && b_granted < a_granted {
                out.push(Violation::FifoBreak {
                    resource: resource.to_string(),
                    first: (*a_id).clone(),
                    first_serial: a_serial,
                    later: (*b_id).clone(),
                    later_serial: b_serial,
                });
            }
        }
    }
}

/// The spans during which a fault was under way (from a fault's start to
/// the end of the last fault then open).
fn fault_windows(events: &[Event]) -> Vec<(u64, u64)> {
    let mut windows = Vec::new();
    let (mut open, mut from) = (0i64, 0u64);
    for e in events {
        match e.what {
            What::FaultStart { .. } => {
                if open == 0 {
                    from = e.t;
                }
                open += 1;
            }
            What::FaultEnd { .. } => {
                open -= 1;
                if open == 0 {
                    windows.push((from, e.t));
                }
            }
            _ => {}
        }
    }
    if open > 0 {
        windows.push((from, u64::MAX));
    }
    windows
}

/// No barging on a resource with shared holders. Ticket A was drawn before
/// B's when A was seen queued before B started, or when A's serial is
/// below B's and no fault (which may make the queue anew, its serials
/// starting over) came between their starts and A's grant. A granted with
/// that ticket after B's grant answered was admitted after B, a barging,
/// when at some moment from B's grant on, clean holds that A could not
/// stand beside held (else A held beside them: an exclusion breach). A
/// plain resource's FIFO is [`fifo`]'s.
fn fifo_shared(
    resource: &str,
    list: &[(&String, &Hold)],
    faults: &[(u64, u64)],
    out: &mut Vec<Violation>,
) {
    // Clean holds by grant time, and the longest of them (so that the
    // holds under way at a moment are found among the grants just before).
    let mut clean: Vec<(u64, u64, &String, Mode)> = list
        .iter()
        .filter(|(_, h)| h.clean())
        .filter_map(|(id, h)| Some((h.granted?.0, h.release_called?, *id, h.mode)))
        .collect();
    clean.sort_by_key(|c| (c.0, c.1));
    let longest = clean.iter().map(|c| c.1 - c.0).max().unwrap_or(0);
    let holding_at = |t: u64, except: &str| -> Vec<Mode> {
        let from = clean.partition_point(|c| c.0 < t.saturating_sub(longest));
        let to = clean.partition_point(|c| c.0 <= t);
        clean[from..to]
            .iter()
            .filter(|c| c.1 > t && c.2.as_str() != except)
            .map(|c| c.3)
            .collect()
    };
    let calm = |from: u64, to: u64| faults.iter().all(|&(s, e)| e < from || s > to);
    for (a_id, a) in list {
        let (Some(a_start), Some((a_granted, a_serial, _))) = (a.start, a.granted) else {
            continue;
        };
        for (b_id, b) in list {
            let (Some(b_start), Some((b_granted, b_serial, _))) = (b.start, b.granted) else {
                continue;
            };
            if b_granted >= a_granted || a_id == b_id {
                continue;
            }
            let seen_before = a
                .queued
                .is_some_and(|(at, serial)| serial == a_serial && b_start > at);
            let drawn_before = a_serial < b_serial && calm(a_start.min(b_start), a_granted);
            if !seen_before && !drawn_before {
                continue;
            }
            // Moments from B's grant on, before A's: B's grant and the
            // clean grants between.
            let between = clean.partition_point(|c| c.0 <= b_granted)
                ..clean.partition_point(|c| c.0 < a_granted);
            let moments = std::iter::once(b_granted).chain(clean[between].iter().map(|c| c.0));
            let mut barged = false;
            for t in moments {
                if !fits(a.mode, &holding_at(t, a_id)) {
                    barged = true;
                    break;
                }
            }
            if barged {
                out.push(Violation::FifoBreak {
                    resource: resource.to_string(),
                    first: (*a_id).clone(),
                    first_serial: a_serial,
                    later: (*b_id).clone(),
                    later_serial: b_serial,
                });
            }
        }
    }
}

/// True when a worker-wide event of `event_worker` concerns `worker`.
fn covers(event_worker: &str, worker: &str) -> bool {
    event_worker == worker
        || event_worker
            .strip_prefix("pid:")
            .is_some_and(|pid| worker.contains(&format!("#{pid}.")))
}

/// Waiters left waiting for longer than the lease + margin, counted from
/// the last grant or disturbance (a death, a pause, the end of a fault),
/// although each of them would fit beside the live holders (on a plain
/// lock: no live holder). A waiter of an acquire of all is not measured (it may be
/// waiting for another of its resources), and it may hold each of its
/// resources but the last in name order (they are taken in that order).
fn stranded(
    events: &[Event],
    holds: &BTreeMap<HoldKey, Hold>,
    rules: &Rules,
    t0: u64,
    out: &mut Vec<Violation>,
) {
    let Some(last_t) = events.last().map(|e| e.t) else {
        return;
    };
    let mut leases: HashMap<&str, u64> = HashMap::new();
    for h in holds.values() {
        let l = leases.entry(h.resource.as_str()).or_default();
        *l = (*l).max(h.lease_ms);
    }
    let mut gone: HashSet<&str> = HashSet::new();
    let mut disturbed = 0u64;
    let mut faults = 0i64;
    // Per resource: waiting ids, holding ids (and ids that may hold), gap
    // start.
    #[derive(Default)]
    struct State<'a> {
        waiting: HashSet<&'a str>,
        holding: HashSet<&'a str>,
        gap: Option<u64>,
        /// Who waited during the open gap.
        stuck: BTreeSet<&'a str>,
    }
    let mut states: BTreeMap<&str, State> = BTreeMap::new();
    let hold_of = |id: &str, resource: &str| holds.get(&(id.to_string(), resource.to_string()));
    let close = |resource: &str,
                 s: &State,
                 gap: u64,
                 at: u64,
                 disturbed: u64,
                 faults: i64,
                 out: &mut Vec<Violation>| {
        if faults > 0 {
            return;
        }
        let from = gap.max(disturbed);
        let bound =
            Duration::from_millis(leases.get(resource).copied().unwrap_or(0)) + rules.margin;
        if at > from && Duration::from_nanos(at - from) > bound {
            let waiters: Vec<String> = s.stuck.iter().map(|w| w.to_string()).collect();
            out.push(Violation::Stranded {
                resource: resource.to_string(),
                from_ms: (from - t0) / 1_000_000,
                to_ms: (at - t0) / 1_000_000,
                bound_ms: bound.as_millis() as u64,
                waiters,
            });
        }
    };
    for e in events {
        match &e.what {
            What::Died | What::Paused => {
                gone.insert(e.worker.as_str());
                disturbed = disturbed.max(e.t);
            }
            What::Resumed => {
                gone.remove(e.worker.as_str());
            }
            What::FaultStart { .. } => faults += 1,
            What::FaultEnd { .. } => {
                faults -= 1;
                disturbed = disturbed.max(e.t);
            }
            What::Start { all, .. } => {
                let s = states.entry(e.resource.as_str()).or_default();
                if all.len() <= 1 {
                    s.waiting.insert(e.id.as_str());
                } else if all.iter().any(|r| r.as_bytes() > e.resource.as_bytes()) {
                    s.holding.insert(e.id.as_str());
                }
            }
            What::Granted { .. } => {
                let s = states.entry(e.resource.as_str()).or_default();
                s.waiting.remove(e.id.as_str());
                s.holding.insert(e.id.as_str());
            }
            What::Failed { .. } => {
                let s = states.entry(e.resource.as_str()).or_default();
                s.waiting.remove(e.id.as_str());
                s.holding.remove(e.id.as_str());
            }
            What::ReleaseCalled => {
                let s = states.entry(e.resource.as_str()).or_default();
                s.holding.remove(e.id.as_str());
            }
            _ => continue,
        }
        // Re-evaluate the event's resource; a worker-wide event touches all.
        let wide = e.id == "-";
        for (resource, s) in states.iter_mut() {
            if !wide && *resource != e.resource.as_str() {
                continue;
            }
            let alive = |id: &&str| {
                hold_of(id, resource).is_none_or(|h| !gone.iter().any(|g| covers(g, &h.worker)))
            };
            let mode = |id: &str| hold_of(id, resource).map_or(Mode::Plain, |h| h.mode);
            let waiting: Vec<&str> = s.waiting.iter().copied().filter(alive).collect();
            let holding: Vec<Mode> = s.holding.iter().copied().filter(alive).map(mode).collect();
            let open = !waiting.is_empty() && waiting.iter().all(|id| fits(mode(id), &holding));
            // A grant is progress: the wait is measured again from it.
            if let (Some(g), What::Granted { .. }) = (s.gap, &e.what) {
                close(resource, s, g, e.t, disturbed, faults, out);
                s.gap = None;
                s.stuck.clear();
            }
            match (s.gap, open) {
                (None, true) => s.gap = Some(e.t),
                (Some(g), false) => {
                    close(resource, s, g, e.t, disturbed, faults, out);
                    s.gap = None;
                    s.stuck.clear();
                }
                _ => {}
            }
            if open {
                s.stuck.extend(waiting);
            }
        }
    }
    for (resource, s) in &states {
        if let Some(g) = s.gap {
            close(resource, s, g, last_t, disturbed, faults, out);
        }
    }
}
