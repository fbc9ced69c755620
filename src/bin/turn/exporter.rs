//! `turn exporter --listen ADDR [RESOURCE|GLOB ...]`: serves `/metrics`
//! in the Prometheus text format (0.0.4), read from Redis at each scrape:
//! per queue (label `resource`) its waiters, holders, the oldest waiter's
//! age, the longest holder's age, the least lease left among its holders,
//! its dispenser and indicator and its kind; and the exporter's own
//! figures (Redis reachable, errors, the scrape's duration, the resources
//! matched and exported under `--max-resources`).
//!
//! Requests are answered one at a time, each from a fresh read of Redis;
//! nothing is cached between scrapes. Redis unreachable is a figure
//! (`turn_exporter_up 0`, the error counted), never the end of the tool:
//! the next scrape tries again. SIGINT or SIGTERM ends it with status 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use turn::{ErrorKind, Kind, Locker, Options, Status};

use super::invalid;
use super::status::status_of;

/// The `Content-Type` of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What `turn exporter` exports: the queues named, or matching a glob
/// (`*`, `?`, `[...]`), or every queue when none is given.
pub struct Selection {
    names: Vec<String>,
    globs: Vec<glob::Pattern>,
}

impl Selection {
    /// Reads the command's RESOURCE and GLOB arguments; an invalid glob or
    /// resource name is an error.
    pub fn parse(args: &[String]) -> turn::Result<Selection> {
        let mut selection = Selection {
            names: Vec::new(),
            globs: Vec::new(),
        };
        for arg in args {
            if arg.contains(['*', '?', '[']) {
                let pattern = glob::Pattern::new(arg)
                    .map_err(|e| invalid(&format!("invalid glob {arg:?}: {e}")))?;
                selection.globs.push(pattern);
            } else {
                turn::validate_resource(arg)?;
                selection.names.push(arg.clone());
            }
        }
        Ok(selection)
    }

    fn everything(&self) -> bool {
        self.names.is_empty() && self.globs.is_empty()
    }

    fn takes(&self, resource: &str) -> bool {
        self.everything()
            || self.names.iter().any(|n| n == resource)
            || self.globs.iter().any(|g| g.matches(resource))
    }
}

/// How the exporter reaches Redis and what it exports.
pub struct Exporter {
    pub url: String,
    pub options: Options,
    pub selection: Selection,
    pub max_resources: usize,
}

/// One scrape's reading of Redis.
struct Reading {
    matched: usize,
    queues: Vec<Status>,
}

/// What lives from scrape to scrape.
struct State {
    /// Made at the first scrape that reaches Redis, kept afterwards (it
    /// reconnects by itself).
    locker: Option<Locker>,
    scrapes: u64,
    /// Errors by kind; `connection` is always there.
    errors: BTreeMap<&'static str, u64>,
}

impl Exporter {
    /// Listens on `listen` until SIGINT or SIGTERM; the exit status.
    pub fn serve(self, listen: &str) -> turn::Result<u8> {
        let stop = Arc::new(AtomicBool::new(false));
        // Blocked here, before any thread is made, so that every thread
        // inherits the mask and only `wait_for_signal` receives them.
        let signals = block_signals()?;
        let server = tiny_http::Server::http(listen)
            .map_err(|e| invalid(&format!("cannot listen on {listen}: {e}")))?;
        let server = Arc::new(server);
        match server.server_addr().to_ip() {
            Some(addr) => say!("turn exporter: listening on http://{addr}/metrics"),
            None => say!("turn exporter: listening on {listen}"),
        }
        {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::Builder::new()
                .name("turn-signals".into())
                .spawn(move || {
                    wait_for_signal(&signals);
                    stop.store(true, Ordering::SeqCst);
                    server.unblock();
                })
                .map_err(|e| invalid(&format!("cannot start a thread: {e}")))?;
        }
        let mut state = State {
            locker: None,
            scrapes: 0,
            errors: BTreeMap::from([("connection", 0)]),
        };
        while !stop.load(Ordering::SeqCst) {
            match server.recv() {
                Ok(request) => self.answer(request, &mut state),
                // Unblocked by a signal; or a failed accept (out of
                // descriptors, say): pause, then go on.
                Err(_) if stop.load(Ordering::SeqCst) => break,
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        Ok(0)
    }

    fn answer(&self, request: tiny_http::Request, state: &mut State) {
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method(), path) {
            (tiny_http::Method::Get | tiny_http::Method::Head, "/metrics") => {
                tiny_http::Response::from_string(self.scrape(state))
                    .with_header(header("Content-Type", TEXT_FORMAT))
            }
            (tiny_http::Method::Get | tiny_http::Method::Head, "/") => {
                tiny_http::Response::from_string(
                    "turn exporter: the queues' metrics are at /metrics\n",
                )
                .with_header(header("Content-Type", "text/plain; charset=utf-8"))
            }
            (tiny_http::Method::Get | tiny_http::Method::Head, _) => {
                tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404)
            }
            _ => tiny_http::Response::from_string("only GET and HEAD\n")
                .with_status_code(405)
                .with_header(header("Allow", "GET, HEAD")),
        };
        // A client that went away is no concern of the next one.
        let _ = request.respond(response);
    }

    /// Reads Redis; the text of one scrape.
    fn scrape(&self, state: &mut State) -> String {
        let start = Instant::now();
        state.scrapes += 1;
        let reading = self.read(state);
        let mut out = String::with_capacity(4096);
        if let Ok(reading) = &reading {
            write_queues(&mut out, &reading.queues);
        }
        let mut gauge = |name: &str, help: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        };
        gauge(
            "turn_exporter_up",
            "1 when this scrape read Redis, 0 when Redis could not be reached.",
            &u8::from(reading.is_ok()),
        );
        gauge(
            "turn_exporter_max_resources",
            "The most queues exported (--max-resources).",
            &self.max_resources,
        );
        if let Ok(reading) = &reading {
            gauge(
                "turn_exporter_resources_matched",
                "Queues named or matching the arguments (every queue when none).",
                &reading.matched,
            );
            gauge(
                "turn_exporter_resources_exported",
                "Queues exported by this scrape (at most --max-resources).",
                &reading.queues.len(),
            );
            gauge(
                "turn_exporter_resources_capped",
                "1 when more queues matched than --max-resources: the first ones by name were exported.",
                &u8::from(reading.matched > self.max_resources),
            );
        }
        let _ = writeln!(
            out,
            "# HELP turn_exporter_scrapes_total Scrapes answered, this one included."
        );
        let _ = writeln!(out, "# TYPE turn_exporter_scrapes_total counter");
        let _ = writeln!(out, "turn_exporter_scrapes_total {}", state.scrapes);
        let _ = writeln!(
            out,
            "# HELP turn_exporter_errors_total Errors reading Redis, by kind (connection: Redis unreachable)."
        );
        let _ = writeln!(out, "# TYPE turn_exporter_errors_total counter");
        for (kind, n) in &state.errors {
            let _ = writeln!(out, "turn_exporter_errors_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP turn_exporter_scrape_duration_seconds Seconds this scrape took to read Redis."
        );
        let _ = writeln!(out, "# TYPE turn_exporter_scrape_duration_seconds gauge");
        let _ = writeln!(
            out,
            "turn_exporter_scrape_duration_seconds {}",
            start.elapsed().as_secs_f64()
        );
        out
    }

    /// The queues to export, read now. A connection error ends the
    /// reading (counted); another error of one queue (a queue in an
    /// unknown shape) is counted and that queue left out.
    fn read(&self, state: &mut State) -> Result<Reading, ()> {
        let fail = |state: &mut State, e: &turn::Error| {
            *state.errors.entry(kind_name(e.kind())).or_insert(0) += 1;
        };
        if state.locker.is_none() {
            match Locker::with_options(Some(&self.url), self.options.clone()) {
                Ok(locker) => state.locker = Some(locker),
                Err(e) => {
                    fail(state, &e);
                    return Err(());
                }
            }
        }
        let locker = state.locker.clone().expect("made above");
        let mut matched = match locker.resources() {
            Ok(all) => all,
            Err(e) => {
                fail(state, &e);
                return Err(());
            }
        };
        // Sorted by name, as `resources` lists them.
        matched.retain(|r| self.selection.takes(r));
        let mut queues = Vec::new();
        for r in matched.iter().take(self.max_resources) {
            match status_of(&locker, r) {
                // Gone since the listing.
                Ok(None) => {}
                Ok(Some(s)) => queues.push(s),
                Err(e) if e.kind() == ErrorKind::Connection => {
                    fail(state, &e);
                    return Err(());
                }
                Err(e) => fail(state, &e),
            }
        }
        Ok(Reading {
            matched: matched.len(),
            queues,
        })
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

/// An error kind as a label value: `connection`, `not_found`, ...
fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NullArgument => "null_argument",
        ErrorKind::InvalidArgument => "invalid_argument",
        ErrorKind::Connection => "connection",
        ErrorKind::Timeout => "timeout",
        ErrorKind::WouldBlock => "would_block",
        ErrorKind::Lost => "lost",
        ErrorKind::Busy => "busy",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Forked => "forked",
        ErrorKind::Protocol => "protocol",
        ErrorKind::Canceled => "canceled",
        ErrorKind::WrongKind => "wrong_kind",
        ErrorKind::Panic => "panic",
        _ => "other",
    }
}

/// A label value as the text format wants it: backslash, double quote
/// and newline escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A queue's figures, as exported.
struct Figures {
    /// `resource="..."`, escaped.
    label: String,
    kind: &'static str,
    permits: Option<u32>,
    waiters: u64,
    holders: u64,
    oldest_waiter: f64,
    longest_holder: f64,
    least_lease_left: Option<f64>,
    dispenser: u64,
    indicator: u64,
}

fn figures(s: &Status) -> Figures {
    let holders = s.tickets.iter().filter(|t| t.held);
    let waiters = s.tickets.iter().filter(|t| !t.held);
    // Redis gives milliseconds: exported as such (0.25, not 0.2500000001).
    let seconds = |d: Option<Duration>| d.map_or(0.0, |d| d.as_millis() as f64 / 1000.0);
    Figures {
        label: format!("resource=\"{}\"", escape(&s.resource)),
        kind: match s.kind {
            Kind::Plain => "plain",
            Kind::Semaphore { .. } => "semaphore",
            Kind::ReadWrite => "rwlock",
        },
        permits: match s.kind {
            Kind::Semaphore { permits } => Some(permits),
            _ => None,
        },
        waiters: waiters.clone().count() as u64,
        holders: holders.clone().count() as u64,
        oldest_waiter: waiters.map(|t| seconds(t.waited_for)).fold(0.0, f64::max),
        longest_holder: holders
            .clone()
            .map(|t| seconds(t.held_for))
            .fold(0.0, f64::max),
        least_lease_left: holders
            .filter_map(|t| t.lease_left)
            .min()
            .map(|d| seconds(Some(d))),
        dispenser: s.dispenser,
        indicator: s.indicator,
    }
}

/// The per-queue families, each with a sample per queue.
fn write_queues(out: &mut String, queues: &[Status]) {
    let all: Vec<Figures> = queues.iter().map(figures).collect();
    let mut family = |name: &str, help: &str, value: &dyn Fn(&Figures) -> Option<String>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for f in &all {
            if let Some(v) = value(f) {
                let _ = writeln!(out, "{name}{{{}}} {v}", f.label);
            }
        }
    };
    family(
        "turn_queue_waiters",
        "Live tickets waiting for their turn.",
        &|f| Some(f.waiters.to_string()),
    );
    family(
        "turn_queue_holders",
        "Live tickets holding the lock (at most one in a plain queue).",
        &|f| Some(f.holders.to_string()),
    );
    family(
        "turn_queue_oldest_waiter_age_seconds",
        "Seconds the oldest waiter has waited (0 when none waits).",
        &|f| Some(f.oldest_waiter.to_string()),
    );
    family(
        "turn_queue_longest_holder_age_seconds",
        "Seconds the longest holder has held (0 when none holds).",
        &|f| Some(f.longest_holder.to_string()),
    );
    family(
        "turn_queue_least_lease_left_seconds",
        "Seconds of lease left of the holder closest to lapsing (absent when no holder has a lease).",
        &|f| f.least_lease_left.map(|v| v.to_string()),
    );
    family(
        "turn_queue_dispenser",
        "The last serial handed out.",
        &|f| Some(f.dispenser.to_string()),
    );
    family(
        "turn_queue_indicator",
        "The serial whose turn it is (the lowest that holds or waits in a shared queue).",
        &|f| Some(f.indicator.to_string()),
    );
    family(
        "turn_queue_permits",
        "A semaphore's permits (absent for other kinds).",
        &|f| f.permits.map(|p| p.to_string()),
    );
    let _ = writeln!(
        out,
        "# HELP turn_queue_info The queue's kind (plain, semaphore, rwlock); always 1."
    );
    let _ = writeln!(out, "# TYPE turn_queue_info gauge");
    for f in &all {
        let _ = writeln!(out, "turn_queue_info{{{},kind=\"{}\"}} 1", f.label, f.kind);
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it makes
/// from now on); the set, for `wait_for_signal`.
fn block_signals() -> turn::Result<libc::sigset_t> {
    // SAFETY: a sigset_t initialized by sigemptyset before use; plain
    // pthread_sigmask(3) on the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(invalid(&format!(
                "cannot block signals: {}",
                std::io::Error::from_raw_os_error(rc)
            )));
        }
        Ok(set)
    }
}

/// Returns when one of the blocked signals comes.
fn wait_for_signal(set: &libc::sigset_t) {
    loop {
        let mut signo = 0;
        // SAFETY: sigwait(3) on a set made by `block_signals`.
        if unsafe { libc::sigwait(set, &mut signo) } == 0 {
            return;
        }
    }
}
