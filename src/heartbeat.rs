//! The heartbeat: the registry of every ticket of the locker, waiting or
//! held, and one background thread with one connection that renews their
//! leases in one pipelined round trip per beat, and marks a ticket lost
//! when its key is gone, the indicator moved past it, or its lease lapsed
//! by the local clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::connect::Link;
use crate::connect::cluster::Router;
use crate::error::{Error, ErrorKind, Result};
use crate::scripts::{self, Confirm};
use crate::shared::Core;
use crate::sync::{lock, wait_timeout};
use crate::ticket::Ticket;

/// Pause before retrying after a failed beat.
const RETRY: Duration = Duration::from_millis(100);
/// Longest idle sleep (the thread also wakes for new tickets and shutdown).
const IDLE: Duration = Duration::from_secs(1);
/// How long `Locker::health` reports a slow beat after it, and the least
/// time between two lines on standard error about slow beats.
const SLOW_NOTICE_MS: u64 = 60_000;

/// The heartbeat's last beat, as [`crate::Locker::last_beat`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Beat {
    /// Tickets (waiting and held) it renewed or tried to.
    pub tickets: usize,
    /// From its first request to its last reply.
    pub duration: Duration,
    /// Requests it waited for one after another: 1 on one server; on a
    /// Redis Cluster one per master whose queues it renewed (all written
    /// before any is read), more after a redirect (MOVED, ASK), a new
    /// connection or a slot table read.
    pub round_trips: usize,
    /// The shortest lease among its tickets. A beat longer than a third of
    /// it is slow: said on standard error and by [`crate::Locker::health`].
    pub shortest_lease: Duration,
    /// Beats since the locker was made, this one included.
    pub beats: u64,
    /// Slow beats since the locker was made, this one included.
    pub slow_beats: u64,
}

/// What the heartbeat tells of its beats.
#[derive(Default)]
struct BeatFigures {
    last: Option<Beat>,
    beats: u64,
    slow_beats: u64,
    /// When the last slow beat ended (ms since the epoch), and what was
    /// said of it.
    last_slow: Option<(u64, String)>,
    /// When a slow beat was last said on standard error, and how many
    /// slow beats were not said since.
    said_ms: Option<u64>,
    unsaid: u64,
}

/// The tickets the heartbeat keeps alive, and its thread's wake-up.
pub(crate) struct Heartbeat {
    /// Every active ticket of this locker, by id.
    /// Lock order: 4 (see `sync.rs`).
    tickets: Mutex<HashMap<u64, Arc<Ticket>>>,
    /// Wakes the thread when tickets come or the locker closes.
    beat: Condvar,
    /// When the thread means to wake next (ms since the locker's epoch): a
    /// new ticket due earlier wakes it, later ones do not.
    next_beat_ms: AtomicU64,
    /// Makes the thread panic once (tests of its restart).
    inject_panic: AtomicBool,
    /// Lock order: 5 (see `sync.rs`).
    watch: Mutex<BeatFigures>,
}

impl Heartbeat {
    pub fn new() -> Heartbeat {
        Heartbeat {
            tickets: Mutex::new(HashMap::new()),
            beat: Condvar::new(),
            next_beat_ms: AtomicU64::new(u64::MAX),
            inject_panic: AtomicBool::new(false),
            watch: Mutex::new(BeatFigures::default()),
        }
    }

    fn registry(&self) -> MutexGuard<'_, HashMap<u64, Arc<Ticket>>> {
        lock(&self.tickets)
    }

    /// Takes a drawn ticket in, held or waiting. False when the locker is
    /// closing or the ticket's lease lapsed by the local clock before the
    /// draw's reply came (it may have been passed): the ticket is then the
    /// caller's to withdraw.
    /// (Closing sets its flag before it takes the registry's mutex, so a
    /// ticket admitted here is drained by the closing, never missed.)
    pub fn admit(&self, core: &Core, ticket: &Arc<Ticket>, held: bool) -> bool {
        let mut tickets = self.registry();
        if core.is_closed() || ticket.lapsed(core.now_ms()) {
            return false;
        }
        if held {
            ticket.set_held(core.now_ms());
        }
        tickets.insert(ticket.id, ticket.clone());
        drop(tickets);
        if due_at(ticket) < self.next_beat_ms.load(Ordering::Acquire) {
            self.beat.notify_all();
        }
        true
    }

    /// Makes a waiting ticket held, when that is still true: its locker is
    /// open, it was not found lost, and its lease has not lapsed by the
    /// local clock (a waiter paused past its lease may have been passed).
    pub fn grant(&self, core: &Core, t: &Ticket) -> bool {
        let _tickets = self.registry();
        if core.is_closed() || t.lapsed(core.now_ms()) {
            return false;
        }
        t.set_held(core.now_ms());
        t.is_held()
    }

    /// Takes a ticket out (released, withdrawn).
    pub fn unregister(&self, t: &Ticket) {
        self.registry().remove(&t.id);
    }

    /// Takes every ticket out, for closing, whose flag is set before.
    pub fn drain(&self) -> Vec<Arc<Ticket>> {
        self.registry().drain().map(|(_, t)| t).collect()
    }

    /// Wakes the thread (under the registry's mutex, so that a thread about
    /// to sleep cannot miss it).
    pub fn wake(&self) {
        let _tickets = self.registry();
        self.beat.notify_all();
    }

    fn watch(&self) -> MutexGuard<'_, BeatFigures> {
        lock(&self.watch)
    }

    /// Keeps the figures of a beat; a slow one (longer than a third of the
    /// shortest lease among its tickets: the next renewal of those tickets
    /// is due before it ended) is said on standard error, at most one line
    /// a minute, and reported by [`Heartbeat::health`] for a minute.
    fn note(&self, now: u64, batch: &[Arc<Ticket>], took: Duration, round_trips: usize) {
        let Some(shortest) = batch.iter().map(|t| t.expire_ms()).min() else {
            return;
        };
        let mut watch = self.watch();
        let slow = took.as_millis() as u64 * 3 > shortest;
        watch.beats += 1;
        if slow {
            watch.slow_beats += 1;
        }
        watch.last = Some(Beat {
            tickets: batch.len(),
            duration: took,
            round_trips,
            shortest_lease: Duration::from_millis(shortest),
            beats: watch.beats,
            slow_beats: watch.slow_beats,
        });
        if !slow {
            return;
        }
        let text = format!(
            "the heartbeat is too slow: a beat of {} ticket(s) took {} ms in {round_trips} round trip(s), more than a third of the shortest lease among them ({shortest} ms); locks may be lost",
            batch.len(),
            took.as_millis(),
        );
        let mut said = None;
        if watch
            .said_ms
            .is_none_or(|said| now >= said + SLOW_NOTICE_MS)
        {
            let unsaid = std::mem::take(&mut watch.unsaid);
            if unsaid > 0 {
                said = Some(format!(
                    "{text} ({unsaid} more slow beat(s) since the last line)"
                ));
            } else {
                said = Some(text.clone());
            }
            watch.said_ms = Some(now);
        } else {
            watch.unsaid += 1;
        }
        watch.last_slow = Some((now, text));
        // Said once the watch is let go: the log callback may ask for health.
        drop(watch);
        if let Some(said) = said {
            crate::log::warn(&said);
        }
    }

    /// The figures of the last beat.
    pub fn last_beat(&self) -> Option<Beat> {
        self.watch().last
    }

    /// Beats so far, and the slow ones among them.
    pub fn beats(&self) -> (u64, u64) {
        let watch = self.watch();
        (watch.beats, watch.slow_beats)
    }

    /// Ok unless a beat in the last minute was slow: then a `Connection`
    /// error saying so.
    pub fn health(&self, now_ms: u64) -> Result<()> {
        let watch = self.watch();
        match &watch.last_slow {
            Some((at, text)) if now_ms < at + SLOW_NOTICE_MS => Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "{text} ({} slow beat(s) so far; the last {} s ago)",
                    watch.slow_beats,
                    (now_ms - at) / 1000
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Makes the thread panic once, or not (tests of its restart).
    pub fn inject_panic(&self, on: bool) {
        self.inject_panic.store(on, Ordering::Release);
        self.beat.notify_all();
    }
}

/// The heartbeat's connection: to one server, or a connection per master
/// of a cluster.
enum Renewer {
    Server(Link),
    Cluster(Router),
}

/// The heartbeat thread's body.
pub(crate) fn run(core: &Core, hb: &Heartbeat) {
    let mut link: Option<Renewer> = None;
    // The master's epoch the link was made under (see `connect/sentinel.rs`).
    let mut epoch = 0;
    let mut failed = false;
    while let Some(batch) = next_batch(core, hb, failed) {
        if hb.inject_panic.swap(false, Ordering::AcqRel) {
            panic!("injected into the heartbeat thread");
        }
        if core.is_closed() {
            // Closing came meanwhile: its tickets are released or lost.
            return;
        }
        let sent_ms = core.now_ms();
        let started = Instant::now();
        // Opening a connection to one server in this beat costs its
        // set-up and the script's load (the cluster's router counts its
        // own).
        let mut opened = 0;
        if epoch != core.pool.epoch() {
            // The master changed: renew on the new one.
            link = None;
        }
        if link.is_none() {
            epoch = core.pool.epoch();
            link = connect(core);
            if matches!(link, Some(Renewer::Server(_))) {
                opened = 2;
            }
        }
        // Renewals wait for the replicas the locker asks for, at most a
        // third of the shortest lease among them.
        let confirm = batch
            .iter()
            .map(|t| t.expire)
            .min()
            .and_then(|lease| Confirm::of(core, lease));
        let (alive, round_trips) = match link.as_mut() {
            Some(Renewer::Server(c)) => {
                // After a SCRIPT FLUSH (or a server that lost its scripts),
                // the script is loaded again and the beat sent again at
                // once: short leases cannot wait for a reconnection.
                let (result, round_trips) = match scripts::renew(c, &batch, confirm) {
                    Err(e) if e.kind() == redis::ErrorKind::NoScriptError => (
                        scripts::prepare_renewals(c)
                            .and_then(|_| scripts::renew(c, &batch, confirm)),
                        3,
                    ),
                    result => (result, 1),
                };
                match result {
                    Ok(alive) if alive.len() == batch.len() => (alive, round_trips),
                    _ => (vec![None; batch.len()], round_trips),
                }
            }
            Some(Renewer::Cluster(router)) => {
                let renewed = scripts::renew_routed(router, &batch, confirm);
                (renewed.alive, renewed.round_trips)
            }
            None => (vec![None; batch.len()], 0),
        };
        hb.note(
            core.now_ms(),
            &batch,
            started.elapsed(),
            opened + round_trips,
        );
        // Keep trying the tickets not confirmed (soon, after a pause);
        // those whose lease lapses meanwhile are marked lost by the local
        // clock. On one server a failed beat opens a new connection; the
        // cluster's router drops and reopens its own per node.
        failed = alive.iter().any(Option::is_none);
        if failed && matches!(link, Some(Renewer::Server(_))) {
            core.metrics.reconnection();
            link = None;
        }
        record(&batch, &alive, sent_ms);
    }
}

fn connect(core: &Core) -> Option<Renewer> {
    let read_timeout = Some(core.options.command_timeout);
    if let Some(router) = core.pool.router(read_timeout, scripts::prepare_node) {
        return Some(Renewer::Cluster(router));
    }
    let mut c = core.pool.connect_one(read_timeout).ok()?;
    scripts::prepare_renewals(&mut c).ok()?;
    Some(Renewer::Server(c))
}

/// Waits until some tickets are due and returns them; None on shutdown.
/// Renewals are all this thread does, so nothing else can delay them.
fn next_batch(core: &Core, hb: &Heartbeat, failed: bool) -> Option<Vec<Arc<Ticket>>> {
    let mut tickets = hb.registry();
    // The closing flag is read under the registry's mutex, which closing
    // takes to wake this thread: no wake-up is missed before a wait.
    if failed && !core.is_closed() {
        tickets = wait_timeout(&hb.beat, tickets, RETRY);
    }
    loop {
        if core.is_closed() {
            return None;
        }
        let now = core.now_ms();
        let plan = schedule(tickets.values(), now);
        if !plan.due.is_empty() {
            hb.next_beat_ms.store(0, Ordering::Release);
            return Some(plan.due);
        }
        let sleep = plan.sleep(now);
        hb.next_beat_ms
            .store(now + sleep.as_millis() as u64, Ordering::Release);
        tickets = wait_timeout(&hb.beat, tickets, sleep);
    }
}

/// A ticket's lease is renewed every third of it.
fn interval(t: &Ticket) -> u64 {
    (t.expire_ms() / 3).max(1)
}

/// When a ticket is due for its next renewal (ms since the epoch).
fn due_at(t: &Ticket) -> u64 {
    t.refreshed_ms() + interval(t)
}

/// What one look at the registry found.
struct Schedule {
    /// The tickets to renew now.
    due: Vec<Arc<Ticket>>,
    /// When the next of the others is due.
    next: Option<u64>,
}

impl Schedule {
    /// How long to sleep from `now` when nothing is due: until the next
    /// ticket is, at most [`IDLE`].
    fn sleep(&self, now: u64) -> Duration {
        self.next.map_or(IDLE, |n| {
            Duration::from_millis(n.saturating_sub(now)).min(IDLE)
        })
    }
}

/// Which active tickets are due at `now`; the ones whose lease lapsed by
/// the local clock are marked lost instead.
fn schedule<'a>(tickets: impl IntoIterator<Item = &'a Arc<Ticket>>, now: u64) -> Schedule {
    let mut due = Vec::new();
    let mut next: Option<u64> = None;
    for t in tickets {
        if !t.is_active() {
            continue;
        }
        if t.lapsed(now) {
            t.mark_lost();
            continue;
        }
        let due_at = due_at(t);
        // Refresh early by up to half an interval, so that tickets with
        // the same lease share a beat.
        if due_at <= now + interval(t) / 2 {
            due.push(t.clone());
        } else {
            next = Some(next.map_or(due_at, |n| n.min(due_at)));
        }
    }
    Schedule { due, next }
}

/// Applies a beat's answers: a ticket found alive counts as renewed when
/// the beat was sent; one found gone is lost; one not answered for sure
/// (None) is neither, and stays due.
fn record(batch: &[Arc<Ticket>], alive: &[Option<bool>], sent_ms: u64) {
    for (t, &ok) in batch.iter().zip(alive) {
        match ok {
            Some(true) => t.refreshed(sent_ms),
            Some(false) => t.mark_lost(),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keys;

    /// A ticket with a lease of `expire_ms`, last renewed at `refreshed_ms`.
    fn ticket(id: u64, expire_ms: u64, refreshed_ms: u64) -> Arc<Ticket> {
        let keys = Arc::new(Keys::new("turn", "r"));
        Ticket::for_test(&keys, id, id, expire_ms, refreshed_ms)
    }

    fn ids(tickets: &[Arc<Ticket>]) -> Vec<u64> {
        let mut ids: Vec<u64> = tickets.iter().map(|t| t.id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_ticket_is_due_a_third_of_its_lease_after_its_renewal() {
        let t = ticket(1, 3000, 0);
        assert_eq!(due_at(&t), 1000);
        let plan = schedule([&t], 0);
        assert!(plan.due.is_empty());
        assert_eq!(plan.next, Some(1000));
        assert_eq!(ids(&schedule([&t], 1000).due), vec![1]);
        t.refreshed(1000);
        assert_eq!(schedule([&t], 1200).next, Some(2000));
    }

    #[test]
    fn tickets_due_within_half_an_interval_share_the_beat() {
        // Intervals of 1000 ms: due at 1000, 1400 (early by 400, within
        // 500) and 1600 (too far).
        let a = ticket(1, 3000, 0);
        let b = ticket(2, 3000, 400);
        let c = ticket(3, 3000, 600);
        let plan = schedule([&a, &b, &c], 1000);
        assert_eq!(ids(&plan.due), vec![1, 2]);
        assert_eq!(plan.next, Some(1600));
        // A short lease is not renewed early by a long one's half interval.
        let short = ticket(4, 300, 0);
        let plan = schedule([&short], 40);
        assert!(plan.due.is_empty());
        assert_eq!(plan.next, Some(100));
        assert_eq!(ids(&schedule([&short], 50).due), vec![4]);
    }

    #[test]
    fn lapsed_tickets_are_marked_lost_and_not_renewed() {
        let lapsed = ticket(1, 300, 0);
        let alive = ticket(2, 3000, 0);
        let plan = schedule([&lapsed, &alive], 301);
        assert!(lapsed.is_lost());
        assert!(!alive.is_lost());
        assert!(plan.due.is_empty());
        assert_eq!(plan.next, Some(1000));
        // At the lease's last millisecond the ticket is still renewed.
        let edge = ticket(3, 300, 0);
        assert_eq!(ids(&schedule([&edge], 300).due), vec![3]);
        assert!(!edge.is_lost());
    }

    #[test]
    fn tickets_no_longer_active_are_left_out() {
        let done = ticket(1, 300, 0);
        done.set_done();
        let lost = ticket(2, 300, 0);
        lost.mark_lost();
        let plan = schedule([&done, &lost], 1000);
        assert!(plan.due.is_empty());
        assert_eq!(plan.next, None);
    }

    #[test]
    fn the_thread_sleeps_until_the_next_due_ticket_or_a_second() {
        let plan = |next| Schedule {
            due: Vec::new(),
            next,
        };
        assert_eq!(plan(None).sleep(5000), IDLE);
        assert_eq!(plan(Some(5250)).sleep(5000), Duration::from_millis(250));
        assert_eq!(plan(Some(9000)).sleep(5000), IDLE);
        assert_eq!(plan(Some(4000)).sleep(5000), Duration::ZERO);
    }

    #[test]
    fn a_beat_longer_than_a_third_of_the_shortest_lease_is_reported_for_a_minute() {
        let hb = Heartbeat::new();
        assert_eq!(hb.last_beat(), None);
        let batch = [ticket(1, 3000, 0), ticket(2, 900, 0)];
        // 300 ms is a third of the shortest lease: not slow yet.
        hb.note(1000, &batch, Duration::from_millis(300), 3);
        let beat = hb.last_beat().unwrap();
        assert_eq!((beat.tickets, beat.round_trips, beat.beats), (2, 3, 1));
        assert_eq!(beat.shortest_lease, Duration::from_millis(900));
        assert_eq!(beat.slow_beats, 0);
        assert!(hb.health(1000).is_ok());
        hb.note(2000, &batch, Duration::from_millis(301), 4);
        assert_eq!(hb.last_beat().unwrap().slow_beats, 1);
        let e = hb.health(2500).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.message().contains("301 ms"), "{}", e.message());
        assert!(e.message().contains("900 ms"), "{}", e.message());
        // A fast beat since does not hide it; a minute later it is gone.
        hb.note(3000, &batch, Duration::from_millis(10), 3);
        assert!(hb.health(3000).is_err());
        assert!(hb.health(2000 + SLOW_NOTICE_MS).is_ok());
    }

    #[test]
    fn a_beat_renews_the_tickets_found_alive_and_loses_the_others() {
        let a = ticket(1, 3000, 0);
        let b = ticket(2, 3000, 0);
        b.set_held(0);
        let c = ticket(3, 3000, 0);
        record(
            &[a.clone(), b.clone(), c.clone()],
            &[Some(true), Some(false), None],
            700,
        );
        assert_eq!(a.refreshed_ms(), 700);
        assert!(a.is_active() && !a.is_lost());
        assert!(b.is_lost());
        // Unsure: neither renewed nor lost.
        assert_eq!(c.refreshed_ms(), 0);
        assert!(c.is_active() && !c.is_lost());
        // A late answer never moves a renewal back.
        record(std::slice::from_ref(&a), &[Some(true)], 500);
        assert_eq!(a.refreshed_ms(), 700);
    }
}
