//! A ticket leaving the queue, the one place that removes one: a lock
//! released ([`release`]), a ticket withdrawn ([`withdraw`]: a wait that
//! timed out, was canceled or failed, a try-lock that would block, a turn
//! that came to a pending nobody takes) and every ticket of a locker that
//! closes ([`close`]).
//!
//! Withdrawals' round trips are one background thread's, so that the
//! thread giving a ticket up never waits on a stalled server.
//!
//! A host thread that withdraws waits for the round trip at most
//! [`WITHDRAW_WAIT`] (the command timeout if shorter): on a healthy server
//! it returns with the ticket gone from the queue, as a blocking call
//! would; on a server that does not answer, it returns then all the same
//! and the withdrawal goes on in the background (a ticket never withdrawn
//! is passed by the queue once its lease lapses, as a dead one is). The
//! library's own threads (the notifier stepping pending acquires) do not
//! wait at all. Closing withdraws what is still queued (see
//! `Engine::shutdown`).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::heartbeat::Heartbeat;
use crate::scripts::{self, Mode};
use crate::shared::Core;
use crate::sync::{lock, wait, wait_timeout};
use crate::ticket::{Draw, Ticket};

/// The longest a host thread waits for its withdrawal's round trip.
pub(crate) const WITHDRAW_WAIT: Duration = Duration::from_millis(250);

/// The pause before a withdrawal that failed is tried again.
const RETRY: Duration = Duration::from_millis(100);

/// The pause before the ticket of a draw whose reply never came is looked
/// for again.
const LOOK_AGAIN: Duration = Duration::from_millis(500);

/// Answers that there is no ticket after which a draw is taken never to
/// have run.
const LOOKS: u32 = 3;

/// The longest a draw's ticket is looked for (Redis away all along).
const LOOK_FOR: Duration = Duration::from_secs(600);

thread_local! {
    /// Set in the library's own background threads.
    static OWN_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one of the library's own.
pub(crate) fn mark_own_thread() {
    OWN_THREAD.with(|own| own.set(true));
}

fn on_own_thread() -> bool {
    OWN_THREAD.with(Cell::get)
}

/// Withdraws a ticket that will not be used (timeout, failure, loss): the
/// round trip is the leaving thread's (see `leaving.rs`). A ticket known
/// lost touches nothing (see `Lock::release`).
pub(crate) fn withdraw(core: &Core, heartbeat: &Heartbeat, leaving: &Leaving, t: &Arc<Ticket>) {
    heartbeat.unregister(t);
    let lost = t.is_lost();
    t.set_done();
    if lost {
        return;
    }
    let wait = WITHDRAW_WAIT.min(core.options.command_timeout);
    if !leaving.queue_withdrawal(t.clone(), wait) {
        // Drawn while the locker closes: withdrawn here, as closing would.
        let _ = scripts::release(core, t, Mode::Abandon, false);
    }
}

/// Releases a held lock, in one round trip (two when a doubtful answer
/// sends it to a new master). A ticket known lost, or whose lease lapsed by
/// the local clock, touches nothing.
pub(crate) fn release(core: &Core, heartbeat: &Heartbeat, t: &Ticket) -> Result<()> {
    if !core.in_owner_process() {
        return Err(Error::new(
            ErrorKind::Forked,
            "this lock belongs to another process (before fork)",
        ));
    }
    heartbeat.unregister(t);
    if core.is_closed() {
        t.set_done();
        return Err(Error::lost(
            "the locker was closed; the lock was released then",
        ));
    }
    if t.is_lost() || t.lapsed(core.now_ms()) {
        // Its keys may be someone else's by now (a queue made anew by
        // turn 1.0 clients is one case no check can tell): touch nothing;
        // they expire by themselves.
        t.set_done();
        return Err(Error::lost(format!(
            "lock {} on \"{}\" was lost before the release; nothing was touched",
            t.serial, t.resource
        )));
    }
    core.metrics.held(t.held_for(core.now_ms()));
    let epoch = core.pool.epoch();
    let mut result = scripts::release(core, t, Mode::Release, true);
    let doubtful = match &result {
        Ok(left) => !left.moved || !left.present || left.unconfirmed.is_some(),
        Err(e) => e.is_connection(),
    };
    if doubtful {
        // Asked of an old master? With Sentinel, ask which is the master
        // now, and release there when it changed (nothing else to do).
        core.pool.ask_master();
        if core.pool.epoch() != epoch {
            result = scripts::release(core, t, Mode::Release, true);
        }
    }
    t.set_done();
    let left = result?;
    if !left.moved || !left.present {
        // Lost before the release, unseen until now.
        core.metrics.lost();
    }
    if !left.moved {
        return Err(Error::lost(format!(
            "lock {} on \"{}\" was lost: the indicator had moved on; it was left alone",
            t.serial, t.resource
        )));
    }
    if !left.present {
        return Err(Error::lost(format!(
            "lock {} on \"{}\" was lost: its lease lapsed before the release",
            t.serial, t.resource
        )));
    }
    if let Some(confirm) = left.unconfirmed {
        // Given up all the same; should the master fail before its
        // replicas have the release, the next holder waits for the lease.
        let e = confirm.missed(&format!(
            "the release of lock {} on \"{}\"",
            t.serial, t.resource
        ));
        return Err(Error::connection(format!(
            "{e}; the lock is given up all the same"
        )));
    }
    Ok(())
}

/// Closing's part: releases the held tickets among `tickets` and withdraws
/// the waiting ones and those given up but not withdrawn yet (`leaving`),
/// while Redis answers (`reachable`: it answered closing's first round
/// trip) and until `deadline` (see `CLOSE_BUDGET`); every ticket of
/// `tickets` ends lost (its waiter and its lost fd hear of it).
pub(crate) fn close(
    core: &Core,
    tickets: Vec<Arc<Ticket>>,
    leaving: Vec<Arc<Ticket>>,
    mut reachable: bool,
    deadline: Instant,
) {
    let go_on = |reachable: &mut bool, t: &Ticket, mode: Mode| {
        if !*reachable || Instant::now() >= deadline {
            return;
        }
        if let Err(e) = scripts::release(core, t, mode, false) {
            *reachable = !e.is_connection();
        }
    };
    for t in tickets {
        if t.is_held() {
            go_on(&mut reachable, &t, Mode::Release);
        } else if t.is_active() {
            go_on(&mut reachable, &t, Mode::Abandon);
        }
        t.mark_closed();
    }
    for t in leaving {
        go_on(&mut reachable, &t, Mode::Abandon);
    }
}

/// The tickets to withdraw, and the thread's wake-ups.
pub(crate) struct Leaving {
    /// Lock order: 5 (see `sync.rs`).
    queue: Mutex<Queue>,
    /// Wakes the thread: work came, or the locker closes.
    work: Condvar,
    /// Wakes the threads waiting for their withdrawal.
    done: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Tickets not withdrawn yet, each with its number.
    waiting: VecDeque<(u64, Arc<Ticket>)>,
    /// The number the next ticket gets.
    next: u64,
    /// Every ticket numbered below it has been withdrawn (or given up).
    done_below: u64,
    /// The thread stopped (closing): nothing queued is withdrawn by it.
    stopped: bool,
    /// Draws whose reply never came, looked for (see [`Leaving::doubt`]).
    doubts: Vec<Doubt>,
}

/// A draw whose reply never came (or that was sent again after a broken
/// connection): it may have made a ticket that nobody waits on. Looked for
/// by its nonce until found, or until Redis has answered [`LOOKS`] times
/// that there is none (the draw then never ran: a draw stuck in a stalled
/// server runs when the server resumes, before it answers a later request
/// on another connection but for a race, which the looks after the first
/// cover), or for [`LOOK_FOR`] at most.
struct Doubt {
    draw: Draw,
    /// A ticket of the same draw (and nonce) that is in use: passed over.
    except: Option<u64>,
    /// When to look next.
    next: Instant,
    /// Answers that there is no such ticket, so far.
    none: u32,
    /// When it was first looked for.
    since: Instant,
}

impl Leaving {
    pub fn new() -> Leaving {
        Leaving {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            done: Condvar::new(),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    /// Queues `t` for withdrawal; on a host thread, waits for it at most
    /// `wait`. False when the thread had stopped (closing): the ticket was
    /// not queued, and is the caller's to withdraw.
    pub fn queue_withdrawal(&self, t: Arc<Ticket>, wait: Duration) -> bool {
        let mut queue = self.queue();
        if queue.stopped {
            return false;
        }
        let n = queue.next;
        queue.next += 1;
        queue.waiting.push_back((n, t));
        self.work.notify_all();
        if on_own_thread() {
            return true;
        }
        let end = Instant::now() + wait;
        while queue.done_below <= n && !queue.stopped {
            let now = Instant::now();
            if now >= end {
                break;
            }
            queue = wait_timeout(&self.done, queue, end - now);
        }
        true
    }

    /// A draw whose reply never came (Redis stalled, or the connection
    /// broke after it was sent): the thread looks for the ticket it may
    /// have made and withdraws it, so that it does not hold up the queue
    /// until its lease lapses.
    /// `except`: the serial of a ticket of the same draw that is in use (a
    /// draw sent again after a broken connection keeps its second ticket).
    pub fn doubt(&self, draw: Draw, except: Option<u64>) {
        let mut queue = lock(&self.queue);
        if queue.stopped {
            return;
        }
        let now = Instant::now();
        queue.doubts.push(Doubt {
            draw,
            except,
            next: now,
            none: 0,
            since: now,
        });
        self.work.notify_all();
    }

    /// Stops the thread (closing) and takes what it had not withdrawn yet.
    pub fn stop(&self) -> Vec<Arc<Ticket>> {
        let mut queue = self.queue();
        queue.stopped = true;
        self.work.notify_all();
        self.done.notify_all();
        queue.waiting.drain(..).map(|(_, t)| t).collect()
    }
}

/// What the thread does next.
enum Job {
    /// Withdraw the queued ticket numbered so.
    Withdraw(u64, Arc<Ticket>),
    /// Look for the ticket of a draw whose reply never came.
    Find(Doubt),
}

/// The thread's body: withdraws the queued tickets one by one, and looks
/// for the tickets of draws whose reply never came, until the locker
/// closes. A withdrawal that fails for the connection's sake (Redis
/// stalled, restarting, failing over) is tried again after [`RETRY`],
/// until it succeeds or the ticket's lease has lapsed (the queue passes it
/// then). A ticket stays queued while it is tried, so that closing, which
/// takes the queue, withdraws it too.
pub(crate) fn run(core: &Core, leaving: &Leaving) {
    loop {
        let job = {
            let mut queue = lock(&leaving.queue);
            loop {
                if queue.stopped {
                    return;
                }
                if let Some((n, t)) = queue.waiting.front() {
                    break Job::Withdraw(*n, t.clone());
                }
                let now = Instant::now();
                if let Some(i) = queue.doubts.iter().position(|d| d.next <= now) {
                    break Job::Find(queue.doubts.swap_remove(i));
                }
                queue = match queue.doubts.iter().map(|d| d.next).min() {
                    Some(next) => wait_timeout(&leaving.work, queue, next - now),
                    None => wait(&leaving.work, queue),
                };
            }
        };
        match job {
            Job::Withdraw(n, t) => withdraw_queued(core, leaving, n, &t),
            Job::Find(mut doubt) => {
                let again = match find_and_withdraw(core, &doubt.draw, doubt.except) {
                    Looked::Done => false,
                    Looked::None => {
                        doubt.none += 1;
                        doubt.none < LOOKS
                    }
                    Looked::Unanswered => true,
                };
                if again && doubt.since.elapsed() < LOOK_FOR {
                    doubt.next = Instant::now() + LOOK_AGAIN;
                    lock(&leaving.queue).doubts.push(doubt);
                }
            }
        }
    }
}

/// Withdraws the queued ticket `t` (numbered `n`), or leaves it queued to
/// be tried again after a pause.
fn withdraw_queued(core: &Core, leaving: &Leaving, n: u64, t: &Ticket) {
    let failed = match scripts::release(core, t, Mode::Abandon, false) {
        Err(e) => e.is_connection() && !t.lapsed(core.now_ms()),
        Ok(_) => false,
    };
    let mut queue = lock(&leaving.queue);
    if failed {
        // Tried again after a pause, unless closing takes it meanwhile.
        drop(wait_timeout(&leaving.work, queue, RETRY));
        return;
    }
    if queue.waiting.front().is_some_and(|(front, _)| *front == n) {
        queue.waiting.pop_front();
    }
    queue.done_below = n + 1;
    leaving.done.notify_all();
}

/// What a look for a draw's ticket came to.
enum Looked {
    /// Found and withdrawn (or nothing more to do).
    Done,
    /// Redis answered that there is no such ticket (yet).
    None,
    /// Redis did not answer.
    Unanswered,
}

/// Looks for the ticket a draw made (by its nonce, passing `except` over)
/// and withdraws it.
fn find_and_withdraw(core: &Core, draw: &Draw, except: Option<u64>) -> Looked {
    let (serial, identity) = match scripts::find(core, &draw.keys, &draw.nonce, except) {
        Ok(Some(found)) => found,
        Ok(None) => return Looked::None,
        Err(e) if e.is_connection() => return Looked::Unanswered,
        Err(_) => return Looked::Done,
    };
    // The identity is `NONCE BASE CHANNEL`: the token is BASE + serial.
    let Some(token) = identity
        .split(' ')
        .nth(1)
        .and_then(|base| base.parse::<i128>().ok())
        .and_then(|base| u64::try_from(base + i128::from(serial)).ok())
    else {
        return Looked::Done;
    };
    let ticket = Ticket::new(draw.clone(), serial, token);
    match scripts::release(core, &ticket, Mode::Abandon, false) {
        Err(e) if e.is_connection() => Looked::Unanswered,
        _ => Looked::Done,
    }
}
