//! What a locker counts of its own work, for monitoring: counters and two
//! histograms, kept in atomics (no lock, no allocation, no round trip on
//! the lock's path) and written in the Prometheus text format by
//! [`Metrics::text`]. Label values are fixed words: no label names a
//! resource, a label or a ticket, so the number of series is bounded
//! (per-resource figures come from Redis, see `turn exporter`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the wait histogram's buckets.
pub const WAIT_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Upper bounds (seconds) of the hold histogram's buckets.
pub const HOLD_BUCKETS: [f64; 12] = [
    0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];

/// A histogram of durations: counts per bucket (not cumulative), their
/// number and sum.
struct Histogram {
    bounds: &'static [f64; 12],
    /// One more than the bounds: the last counts what is above them all.
    counts: [AtomicU64; 13],
    sum_us: AtomicU64,
}

impl Histogram {
    const fn new(bounds: &'static [f64; 12]) -> Histogram {
        Histogram {
            bounds,
            counts: [const { AtomicU64::new(0) }; 13],
            sum_us: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros().min(u64::MAX.into()) as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (i, &le) in self.bounds.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            buckets.push((le, cumulative));
        }
        let count = cumulative + self.counts[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count,
            sum: Duration::from_micros(self.sum_us.load(Ordering::Relaxed)),
        }
    }
}

/// How an acquire ended, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Granted by its draw.
    AtOnce,
    /// Granted after waiting.
    AfterWaiting,
    Timeout,
    Canceled,
    /// A try-lock that found the resource taken.
    WouldBlock,
    /// Any other error.
    Failed,
}

/// A locker's counters, shared by its parts.
pub(crate) struct Metrics {
    at_once: AtomicU64,
    after_waiting: AtomicU64,
    timeouts: AtomicU64,
    cancels: AtomicU64,
    would_block: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    handoffs: AtomicU64,
    reconnections: AtomicU64,
    wait: Histogram,
    hold: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            at_once: AtomicU64::new(0),
            after_waiting: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            cancels: AtomicU64::new(0),
            would_block: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            handoffs: AtomicU64::new(0),
            reconnections: AtomicU64::new(0),
            wait: Histogram::new(&WAIT_BUCKETS),
            hold: Histogram::new(&HOLD_BUCKETS),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// An acquire ended as `how` after `waited` (from its start).
    pub fn acquired(&self, how: Ended, waited: Duration) {
        match how {
            Ended::AtOnce => bump(&self.at_once),
            Ended::AfterWaiting => bump(&self.after_waiting),
            Ended::Timeout => bump(&self.timeouts),
            Ended::Canceled => bump(&self.cancels),
            Ended::WouldBlock => bump(&self.would_block),
            Ended::Failed => bump(&self.failed),
        }
        if matches!(how, Ended::AtOnce | Ended::AfterWaiting) {
            self.wait.observe(waited);
        }
    }

    /// A held lock was lost.
    pub fn lost(&self) {
        bump(&self.lost);
    }

    /// A waiting ticket was called by the release before it and took its
    /// turn.
    pub fn handoff(&self) {
        bump(&self.handoffs);
    }

    /// A connection broke (it is replaced when next needed).
    pub fn reconnection(&self) {
        bump(&self.reconnections);
    }

    /// A lock held this long was released (or dropped).
    pub fn held(&self, d: Duration) {
        self.hold.observe(d);
    }

    /// The figures now, with the heartbeat's beats.
    pub fn snapshot(&self, beats: u64, slow_beats: u64) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            acquired_at_once: get(&self.at_once),
            acquired_after_waiting: get(&self.after_waiting),
            timeouts: get(&self.timeouts),
            cancels: get(&self.cancels),
            would_block: get(&self.would_block),
            failed: get(&self.failed),
            lost: get(&self.lost),
            handoffs: get(&self.handoffs),
            beats,
            slow_beats,
            reconnections: get(&self.reconnections),
            wait: self.wait.snapshot(),
            hold: self.hold.snapshot(),
        }
    }
}

/// A histogram's figures: for each bucket its upper bound (seconds) and
/// how many observations were at most that (cumulative, as Prometheus
/// counts them); then all of them, and their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: Duration,
}

/// What a locker counted since it was made ([`crate::Locker::metrics`]).
/// Every figure counts up; none names a resource.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Acquires granted by their draw (one round trip).
    pub acquired_at_once: u64,
    /// Acquires granted after waiting.
    pub acquired_after_waiting: u64,
    /// Acquires that timed out.
    pub timeouts: u64,
    /// Acquires canceled (a cancel token, a pending acquire canceled or
    /// dropped, the locker closed).
    pub cancels: u64,
    /// Try-locks that found the resource taken.
    pub would_block: u64,
    /// Acquires that failed otherwise (connection, protocol, wrong kind).
    pub failed: u64,
    /// Held locks lost (presence key gone, dropped from the holders, lease
    /// lapsed by the local clock).
    pub lost: u64,
    /// Waits ended by the call of the release before them.
    pub handoffs: u64,
    /// Heartbeat beats, and the slow ones among them (longer than a third
    /// of the shortest lease).
    pub beats: u64,
    pub slow_beats: u64,
    /// Connections that broke (each is replaced when next needed).
    pub reconnections: u64,
    /// Seconds from an acquire's start to its grant.
    pub wait: HistogramSnapshot,
    /// Seconds from a grant to the release (or drop) of the lock.
    pub hold: HistogramSnapshot,
}

impl MetricsSnapshot {
    /// The figures in the Prometheus text format (version 0.0.4), every
    /// name starting with `turn_`.
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        counter(
            "turn_acquires_total",
            "Acquires granted, by whether their draw was granted at once or they waited.",
            &[
                ("{granted=\"at_once\"}", self.acquired_at_once),
                ("{granted=\"after_waiting\"}", self.acquired_after_waiting),
            ],
        );
        counter(
            "turn_acquire_failures_total",
            "Acquires that ended without a lock, by reason.",
            &[
                ("{reason=\"timeout\"}", self.timeouts),
                ("{reason=\"canceled\"}", self.cancels),
                ("{reason=\"would_block\"}", self.would_block),
                ("{reason=\"error\"}", self.failed),
            ],
        );
        counter(
            "turn_locks_lost_total",
            "Held locks lost: presence key gone, dropped from the holders, or lease lapsed.",
            &[("", self.lost)],
        );
        counter(
            "turn_handoffs_total",
            "Waits ended by the call of the release before them.",
            &[("", self.handoffs)],
        );
        counter(
            "turn_heartbeat_beats_total",
            "Heartbeat beats (one pipelined round trip each per server).",
            &[("", self.beats)],
        );
        counter(
            "turn_heartbeat_slow_beats_total",
            "Beats longer than a third of the shortest lease among their tickets.",
            &[("", self.slow_beats)],
        );
        counter(
            "turn_reconnections_total",
            "Connections that broke (each is replaced when next needed).",
            &[("", self.reconnections)],
        );
        histogram(
            &mut out,
            "turn_wait_seconds",
            "Seconds from an acquire's start to its grant.",
            &self.wait,
        );
        histogram(
            &mut out,
            "turn_hold_seconds",
            "Seconds from a grant to the release of the lock.",
            &self.hold,
        );
        out
    }
}

fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (le, n) in &h.buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum.as_secs_f64());
    let _ = writeln!(out, "{name}_count {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_cumulatively_and_the_text_has_every_series() {
        let m = Metrics::default();
        m.acquired(Ended::AtOnce, Duration::from_micros(300));
        m.acquired(Ended::AfterWaiting, Duration::from_millis(70));
        m.acquired(Ended::Timeout, Duration::from_secs(5));
        m.held(Duration::from_secs(4000));
        m.lost();
        let s = m.snapshot(7, 1);
        assert_eq!(
            (s.acquired_at_once, s.acquired_after_waiting, s.timeouts),
            (1, 1, 1)
        );
        assert_eq!(s.wait.count, 2);
        assert_eq!(s.wait.buckets[0], (0.001, 1));
        assert_eq!(s.wait.buckets[3], (0.05, 1));
        assert_eq!(s.wait.buckets[4], (0.1, 2));
        assert_eq!(s.hold.buckets.last(), Some(&(3600.0, 0)));
        assert_eq!(s.hold.count, 1);
        let text = s.text();
        for line in [
            "turn_acquires_total{granted=\"at_once\"} 1",
            "turn_acquire_failures_total{reason=\"timeout\"} 1",
            "turn_locks_lost_total 1",
            "turn_heartbeat_beats_total 7",
            "turn_heartbeat_slow_beats_total 1",
            "turn_wait_seconds_bucket{le=\"0.1\"} 2",
            "turn_wait_seconds_bucket{le=\"+Inf\"} 2",
            "turn_wait_seconds_count 2",
            "turn_hold_seconds_bucket{le=\"+Inf\"} 1",
            "# TYPE turn_hold_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
