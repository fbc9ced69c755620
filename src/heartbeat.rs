//! The heartbeat: one background thread with one connection that keeps the
//! presence key of every ticket of the locker alive, waiting or held, in one
//! pipelined round trip per beat, and marks a ticket lost when its key is
//! gone, the indicator moved past it, or its lease lapsed by the local clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::connect::{Conn, run_pipeline};

use crate::locker::Core;
use crate::scripts::{self, Call};
use crate::ticket::Ticket;

/// Tickets refreshed by one script call (many calls go in one pipeline).
const CHUNK: usize = 500;
/// Pause before retrying after a failed beat.
const RETRY: Duration = Duration::from_millis(100);
/// Longest idle sleep (the thread also wakes for new tickets and shutdown).
const IDLE: Duration = Duration::from_secs(1);

/// The heartbeat thread's body.
pub(crate) fn run(core: Arc<Core>) {
    let mut conn: Option<Conn> = None;
    let mut failed = false;
    while let Some(work) = next_batch(&core, failed) {
        if core.inject_panic[0].swap(false, Ordering::AcqRel) {
            panic!("injected into the heartbeat thread");
        }
        let Work {
            beat: batch,
            starts,
        } = work;
        if batch.is_empty() {
            say_started(&core, &mut conn, &starts);
            continue;
        }
        let sent_ms = core.now_ms();
        if conn.is_none() {
            conn = core
                .pool
                .connect(Some(core.options.command_timeout))
                .ok()
                .and_then(|mut c| scripts::HEARTBEAT.load(&mut c).ok().map(|_| c));
        }
        let result = match conn.as_mut() {
            Some(c) => beat(c, &batch),
            None => Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "not connected",
            ))),
        };
        // Announcements wait until the due refreshes are done.
        if !starts.is_empty() {
            core.starts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(starts);
        }
        match result {
            Ok(alive) => {
                failed = false;
                for (t, ok) in batch.iter().zip(alive) {
                    if ok == 1 {
                        t.refreshed(sent_ms);
                    } else {
                        t.mark_lost();
                    }
                }
            }
            Err(_) => {
                // Keep trying; tickets whose lease lapses meanwhile are
                // marked lost by the local clock.
                conn = None;
                failed = true;
            }
        }
    }
}

/// What the heartbeat thread has to do next: refreshes first, always.
struct Work {
    /// Refresh these tickets (due, or due soon).
    beat: Vec<Arc<Ticket>>,
    /// Say "N started" for these tickets, granted by a message; only when
    /// no refresh is due (else they wait for the next turn of the loop).
    starts: Vec<Arc<Ticket>>,
}

/// Says "N started" for tickets granted by a message, unless their release
/// said it already; one pipeline. Best effort: the log line is all it is.
fn say_started(core: &Core, conn: &mut Option<Conn>, starts: &[Arc<Ticket>]) {
    let mut guards = Vec::with_capacity(starts.len());
    let mut pipe = redis::pipe();
    for t in starts {
        let guard = t.start_unsaid.lock().unwrap_or_else(|e| e.into_inner());
        if *guard {
            pipe.cmd("PUBLISH")
                .arg(&t.keys.external)
                .arg(format!("{}: {} started", t.keys.name, t.serial))
                .ignore();
            guards.push(guard);
        }
    }
    if guards.is_empty() {
        return;
    }
    if conn.is_none() {
        *conn = connect(core);
    }
    let ok = conn
        .as_mut()
        .is_some_and(|c| run_pipeline(c, &pipe).is_ok());
    if !ok {
        *conn = None;
    }
    for mut g in guards {
        *g = false;
    }
}

fn connect(core: &Core) -> Option<Conn> {
    let mut c = core.pool.connect(Some(core.options.command_timeout)).ok()?;
    if let Conn::Single(single) = &mut c {
        scripts::HEARTBEAT.load(single).ok()?;
    }
    Some(c)
}

/// Waits until some tickets are due (or starts are to be said) and returns
/// the work; None on shutdown.
fn next_batch(core: &Core, failed: bool) -> Option<Work> {
    let mut tickets = core.tickets.lock().unwrap_or_else(|e| e.into_inner());
    if failed {
        tickets = core
            .beat
            .wait_timeout(tickets, RETRY)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    loop {
        if core.is_closed() {
            return None;
        }
        let starts = std::mem::take(&mut *core.starts.lock().unwrap_or_else(|e| e.into_inner()));
        let now = core.now_ms();
        let mut due = Vec::new();
        let mut next: Option<u64> = None;
        for t in tickets.values() {
            if !t.is_active() {
                continue;
            }
            if t.lapsed(now) {
                t.mark_lost();
                continue;
            }
            let interval = (t.expire_ms() / 3).max(1);
            let due_at = t.refreshed_ms() + interval;
            // Refresh early by up to half an interval, so that tickets
            // with the same lease share a beat.
            if due_at <= now + interval / 2 {
                due.push(t.clone());
            } else {
                next = Some(next.map_or(due_at, |n| n.min(due_at)));
            }
        }
        if !due.is_empty() || !starts.is_empty() {
            core.next_beat_ms.store(0, Ordering::Release);
            return Some(Work { beat: due, starts });
        }
        let sleep = next.map_or(IDLE, |n| {
            Duration::from_millis(n.saturating_sub(now)).min(IDLE)
        });
        core.next_beat_ms
            .store(now + sleep.as_millis() as u64, Ordering::Release);
        tickets = core
            .beat
            .wait_timeout(tickets, sleep)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// One beat: one pipeline of script calls, CHUNK tickets each.
fn beat(conn: &mut Conn, batch: &[Arc<Ticket>]) -> redis::RedisResult<Vec<i64>> {
    let conn = match conn {
        Conn::Single(c) => c,
        Conn::Cluster(_) => return beat_cluster(conn, batch),
    };
    let mut pipe = redis::pipe();
    for chunk in batch.chunks(CHUNK) {
        let cmd = pipe
            .cmd("EVALSHA")
            .arg(scripts::HEARTBEAT.get_hash())
            .arg(0);
        for t in chunk {
            cmd.arg(t.keys.presence(t.serial))
                .arg(t.expire_ms())
                .arg(if t.is_held() { "h" } else { "w" })
                .arg(&t.keys.indicator)
                .arg(t.serial)
                .arg(t.keys.ticket(t.serial))
                .arg(&t.identity);
        }
    }
    let replies: Vec<Vec<i64>> = pipe.query(conn)?;
    Ok(replies.into_iter().flatten().collect())
}

/// One beat on a cluster: a script call per resource, routed to the node of
/// its keys (the resource's hash tag) by its declared indicator key.
fn beat_cluster(conn: &mut Conn, batch: &[Arc<Ticket>]) -> redis::RedisResult<Vec<i64>> {
    let mut alive = vec![0; batch.len()];
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, t) in batch.iter().enumerate() {
        groups.entry(t.keys.indicator.as_str()).or_default().push(i);
    }
    for (indicator, members) in groups {
        let mut call = Call::new(&scripts::HEARTBEAT, &[indicator]);
        for &i in &members {
            let t = &batch[i];
            call = call
                .arg(t.keys.presence(t.serial))
                .arg(t.expire_ms())
                .arg(if t.is_held() { "h" } else { "w" })
                .arg(&t.keys.indicator)
                .arg(t.serial)
                .arg(t.keys.ticket(t.serial))
                .arg(&t.identity);
        }
        let replies: Vec<i64> = call.invoke(conn)?;
        for (&i, ok) in members.iter().zip(replies) {
            alive[i] = ok;
        }
    }
    Ok(alive)
}
