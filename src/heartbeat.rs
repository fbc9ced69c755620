//! The heartbeat: one background thread with one connection that keeps the
//! presence key of every ticket of the locker alive, waiting or held, in one
//! pipelined round trip per beat, and marks a ticket lost when its key is
//! gone, the indicator moved past it, or its lease lapsed by the local clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::connect::Conn;

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
        let batch = work;
        let sent_ms = core.now_ms();
        if conn.is_none() {
            conn = connect(&core);
        }
        let result = match conn.as_mut() {
            Some(c) => beat(c, &batch),
            None => Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "not connected",
            ))),
        };
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

fn connect(core: &Core) -> Option<Conn> {
    let mut c = core.pool.connect(Some(core.options.command_timeout)).ok()?;
    if let Conn::Single(single) = &mut c {
        scripts::HEARTBEAT.load(single).ok()?;
    }
    Some(c)
}

/// Waits until some tickets are due and returns them; None on shutdown.
/// Renewals are all this thread does, so nothing else can delay them.
fn next_batch(core: &Core, failed: bool) -> Option<Vec<Arc<Ticket>>> {
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
        if !due.is_empty() {
            core.next_beat_ms.store(0, Ordering::Release);
            return Some(due);
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

/// The heartbeat script's arguments for one ticket (see `scripts`).
fn renewal(cmd: &mut redis::Pipeline, t: &Ticket) {
    cmd.arg(t.keys.presence(t.serial))
        .arg(t.expire_ms())
        .arg(if t.is_held() { "h" } else { "w" })
        .arg(&t.keys.indicator)
        .arg(t.serial)
        .arg(t.keys.ticket(t.serial))
        .arg(&t.identity)
        .arg(&t.keys.incarnation)
        .arg(&t.base);
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
            renewal(cmd, t);
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
                .arg(&t.identity)
                .arg(&t.keys.incarnation)
                .arg(&t.base);
        }
        let replies: Vec<i64> = call.invoke(conn)?;
        for (&i, ok) in members.iter().zip(replies) {
            alive[i] = ok;
        }
    }
    Ok(alive)
}
