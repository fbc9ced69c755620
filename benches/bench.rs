//! The turn benchmark: figures side by side with Redis's own round-trip rate
//! on the same server in the same run. `make bench` runs it; it starts its
//! own redis-server unless TURN_REDIS_URL is set. It exits non-zero only on
//! a correctness failure (overlap, lost lock, FIFO broken).
//!
//! Scenarios (see BENCHMARKS.md): solo cycles, beside the protocol floor
//! (the same Redis commands in two bare scripts); contended processes and
//! threads with hand-off latency; many resources; a deep queue of 1,000
//! waiting threads; 10,000 held locks and their heartbeat cost; the herd
//! (P = 1, 4, 16, 64 processes on one resource: cost per hand-off against
//! the number of waiting processes); the beat (one server beside a
//! 3-master cluster, 10,000 locks: a beat's duration and round trips);
//! durability (a master with one replica: solo cycle and hand-off with
//! replica confirmation off and on); short-lived lockers (a locker's whole
//! life, new to free, beside a TCP connect and three PINGs; `turn lock R
//! -- true` beside flock(1)); all or none (`acquire_all` of k = 1, 2, 4, 8
//! free resources: round trips per call); turn 1.0 (Python) solo cycles
//! when its virtualenv is there. The shared modes are measured beside the
//! plain lock: the solo cycle of a semaphore (weight 1 of 4) and of a
//! read-write lock's shared hold in scenario 1's slices, and the herd on a
//! semaphore of 4 permits after the plain one.
//!
//! `TURN_BENCH_QUICK=1` makes a short run; `TURN_BENCH_ONLY=herd` runs the
//! yardstick and the herd alone; `TURN_BENCH_ONLY=modes` the yardstick and
//! scenario 1 with the shared modes, the herd on the plain lock and on the
//! semaphore, and all or none;
//! `TURN_BENCH_ONLY=beat` the heartbeat of
//! 10,000 held locks alone (one server and a 3-master cluster, on loopback
//! and at 1 ms each way); `TURN_BENCH_ONLY=durability` the price of
//! durability alone (its own master and replica);
//! `TURN_BENCH_ONLY=short-lived` the short-lived lockers alone;
//! `TURN_BENCH_HERD_SECS` sets the herd's window per P (default 10 s, 2 s
//! quick).

#[path = "../tests/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::now_ns;
use turn::{Acquire, Locker, Mode, Wait};

/// Counts live heap bytes, for the per-waiter figure.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the same layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded to the system allocator with the same layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

static FAILED: AtomicBool = AtomicBool::new(false);

fn fail(what: String) {
    eprintln!("CORRECTNESS FAILURE: {what}");
    FAILED.store(true, Ordering::SeqCst);
}

/// One held turn: serial, when acquire returned, when release was called.
#[derive(Clone, Copy)]
struct Turn {
    serial: u64,
    acquired: u64,
    releasing: u64,
}

/// The semaphore of the shared-mode scenarios: weight 1 of 4 permits.
const SEMAPHORE: Mode = Mode::Semaphore {
    permits: 4,
    weight: 1,
};

/// A shared hold of a read-write lock.
const SHARED: Mode = Mode::ReadWrite { exclusive: false };

/// What every cycle of the bench asks: its label, `mode`, a wait of 2 min.
fn request(mode: Mode) -> Acquire {
    Acquire::label("bench")
        .mode(mode)
        .wait(Wait::For(Duration::from_secs(120)))
}

/// Acquire the plain lock, release.
fn cycle(locker: &Locker, resource: &str) -> Turn {
    cycle_holding(locker, resource, Mode::Plain, Duration::ZERO)
}

/// Acquire in `mode`, hold for `hold` (asleep, so that it costs no CPU),
/// release.
fn cycle_holding(locker: &Locker, resource: &str, mode: Mode, hold: Duration) -> Turn {
    let lock = locker
        .acquire(resource, &request(mode))
        .unwrap_or_else(|e| panic!("acquire failed: {e}"));
    let acquired = now_ns();
    let serial = lock.serial();
    if !hold.is_zero() {
        thread::sleep(hold);
    }
    let releasing = now_ns();
    if let Err(e) = lock.release() {
        fail(format!("release of {serial} failed: {e}"));
    }
    Turn {
        serial,
        acquired,
        releasing,
    }
}

/// A number from `INFO section`: the value of `field`, or of its entry
/// `part` (as `usec` in `cmdstat_evalsha:calls=3,usec=40,...`); 0 when absent.
fn info_number(c: &mut redis::Connection, section: &str, field: &str, part: Option<&str>) -> f64 {
    info_value(&info(c, &[section]), field, part)
}

/// The text of `INFO` for `sections` (one round trip for all of them).
fn info(c: &mut redis::Connection, sections: &[&str]) -> String {
    redis::cmd("INFO").arg(sections).query(c).unwrap()
}

/// The number that [`info_number`] reads, from an `INFO` text read before.
fn info_value(info: &str, field: &str, part: Option<&str>) -> f64 {
    let value = info
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'));
    let value = match part {
        Some(part) => value.and_then(|v| {
            v.split(',')
                .find_map(|f| f.strip_prefix(part)?.strip_prefix('='))
        }),
        None => value,
    };
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// Total microseconds Redis spent in EVALSHA so far.
fn script_usec(c: &mut redis::Connection) -> f64 {
    info_number(c, "commandstats", "cmdstat_evalsha", Some("usec"))
}

/// The floor under scenario 1: the Redis commands that turn 1.0's protocol
/// makes a draw and a release say (INCR, SET with expiry, GET, the log lines
/// and the internal message), each step one bare EVALSHA sent by redis-rs
/// straight from this loop: no checks, no withdrawn tickets, no library.
struct Floor {
    draw: redis::Script,
    release: redis::Script,
}

impl Floor {
    const KEYS: [&str; 2] = ["turn:bench-floor:dispenser", "turn:bench-floor:indicator"];

    fn new(c: &mut redis::Connection) -> Floor {
        redis::cmd("MSET")
            .arg(Floor::KEYS[0])
            .arg(0)
            .arg(Floor::KEYS[1])
            .arg(1)
            .exec(c)
            .unwrap();
        Floor {
            draw: redis::Script::new(
                r#"
local n = redis.call('INCR', KEYS[1])
local s = string.format('%d', n)
redis.call('SET', ARGV[1] .. s, ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. ': ' .. s .. ' assigned to "' .. ARGV[2] .. '"')
local ind = redis.call('GET', KEYS[2])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. ': ' .. s .. ' started')
return n
"#,
            ),
            release: redis::Script::new(
                r#"
redis.call('DEL', ARGV[1] .. ARGV[2])
local ind = redis.call('GET', KEYS[1])
redis.call('PUBLISH', ARGV[3], ARGV[5] .. ': ' .. ARGV[2] .. ' completed by "' .. ARGV[6] .. '"')
local t = string.format('%d', tonumber(ARGV[2]) + 1)
redis.call('SET', KEYS[1], t)
redis.call('PUBLISH', ARGV[4], ARGV[1] .. t)
redis.call('PUBLISH', ARGV[3], ARGV[5] .. ': ' .. t .. ' granted')
return 1
"#,
            ),
        }
    }

    fn cycle(&mut self, c: &mut redis::Connection) {
        let n: u64 = self
            .draw
            .key(Floor::KEYS[0])
            .key(Floor::KEYS[1])
            .arg("turn:bench-floor:serial:")
            .arg("bench")
            .arg(10_000)
            .arg("turn:bench-floor:external")
            .arg("bench-floor")
            .invoke(c)
            .unwrap();
        let _: i64 = self
            .release
            .key(Floor::KEYS[1])
            .arg("turn:bench-floor:serial:")
            .arg(n)
            .arg("turn:bench-floor:external")
            .arg("turn:bench-floor:internal")
            .arg("bench-floor")
            .arg("bench")
            .invoke(c)
            .unwrap();
    }
}

/// PING round trips per second: `conns` threads, each one connection,
/// sequential, for `secs`.
fn ping_rate(url: &str, conns: usize, secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (url, stop, count) = (url.to_string(), stop.clone(), count.clone());
            thread::spawn(move || {
                let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let _: String = redis::cmd("PING").query(&mut c).unwrap();
                    n += 1;
                }
                count.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    let start = Instant::now();
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Hand-offs between consecutive serials: next acquire returned minus the
/// previous release called, in µs; a negative one is an overlap.
fn handoffs(mut turns: Vec<Turn>) -> Vec<f64> {
    turns.sort_by_key(|t| t.serial);
    let mut out = Vec::new();
    for w in turns.windows(2) {
        if w[1].serial != w[0].serial + 1 {
            continue;
        }
        if w[1].acquired < w[0].releasing {
            fail(format!(
                "overlap: {} acquired before {} released",
                w[1].serial, w[0].serial
            ));
        }
        out.push((w[1].acquired as f64 - w[0].releasing as f64) / 1000.0);
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

fn report_contended(name: &str, turns: Vec<Turn>, wall: f64, rt_us: f64) {
    let n = turns.len();
    let h = handoffs(turns);
    let (p50, p99) = (percentile(&h, 0.5), percentile(&h, 0.99));
    println!(
        "{name:<34} {:>9.0} cycles/s   hand-off p50 {:>7.1} µs = {:>4.1} RT (target <= 3)   p99 {:>8.1} µs = {:>5.1} RT (target <= 20)",
        n as f64 / wall,
        p50,
        p50 / rt_us,
        p99,
        p99 / rt_us
    );
}

/// A worker process of scenario 2: prints "serial acquired releasing" lines.
fn worker(args: &[String]) {
    let (url, resource, cycles) = (&args[0], &args[1], args[2].parse::<usize>().unwrap());
    let locker = Locker::new(Some(url)).unwrap();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    // Start together: wait for the go file.
    while !std::path::Path::new(&args[3]).exists() {
        thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..cycles {
        let t = cycle(&locker, resource);
        writeln!(out, "{} {} {}", t.serial, t.acquired, t.releasing).unwrap();
    }
    out.flush().unwrap();
    // A failed release is the run's failure, not only this process's.
    if FAILED.load(Ordering::SeqCst) {
        std::process::exit(1);
    }
}

/// Sleeps until CLOCK_MONOTONIC reads `t` (ns).
fn sleep_until_ns(t: u64) {
    let now = now_ns();
    if t > now {
        thread::sleep(Duration::from_nanos(t - now));
    }
}

/// CPU time of this whole process (all its threads), user + system, in µs.
fn cpu_of_this_process_us() -> u64 {
    // SAFETY: an all-zero rusage is a valid value to write into.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid rusage to write into.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// `mode` as a herd worker's argument: "plain", "semaphore:PERMITS:WEIGHT",
/// "shared" or "exclusive".
fn mode_arg(mode: Mode) -> String {
    match mode {
        Mode::Plain => "plain".into(),
        Mode::Semaphore { permits, weight } => format!("semaphore:{permits}:{weight}"),
        Mode::ReadWrite { exclusive: false } => "shared".into(),
        Mode::ReadWrite { exclusive: true } => "exclusive".into(),
    }
}

/// The mode that [`mode_arg`] wrote.
fn parse_mode_arg(arg: &str) -> Mode {
    let parts: Vec<&str> = arg.split(':').collect();
    match parts[..] {
        ["plain"] => Mode::Plain,
        ["semaphore", permits, weight] => Mode::Semaphore {
            permits: permits.parse().unwrap(),
            weight: weight.parse().unwrap(),
        },
        ["shared"] => SHARED,
        ["exclusive"] => Mode::ReadWrite { exclusive: true },
        _ => panic!("not a mode: {arg}"),
    }
}

/// A worker process of the herd scenario (arguments: url, resource, mode as
/// [`mode_arg`] writes it). It
/// makes its locker, warms it up on a resource of its own, says "ready",
/// reads "go end" (CLOCK_MONOTONIC ns) from its standard input, then
/// cycles on the resource (hold 0–500 µs, asleep) from go until end and
/// finishes the cycle in progress. A thread of the bench's own reads the
/// process's CPU time (getrusage RUSAGE_SELF: the locker's threads too) at
/// go and at end. Then it prints "cpu µs" and "serial acquired releasing"
/// lines, and exits non-zero if a release failed.
fn herd_worker(args: &[String]) {
    let (url, resource, mode) = (&args[0], &args[1], parse_mode_arg(&args[2]));
    let locker = Locker::new(Some(url)).unwrap();
    let warm = format!("{resource}-warm-{}", std::process::id());
    cycle_holding(&locker, &warm, mode, Duration::ZERO);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready").unwrap();
    stdout.flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let times: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let (go, end) = (times[0], times[1]);
    let sampler = thread::spawn(move || {
        sleep_until_ns(go);
        let before = cpu_of_this_process_us();
        sleep_until_ns(end);
        cpu_of_this_process_us() - before
    });
    let mut rng = support::Rng((now_ns() ^ (u64::from(std::process::id()) << 32)) | 1);
    let mut turns = Vec::new();
    sleep_until_ns(go);
    while now_ns() < end {
        let hold = Duration::from_micros(rng.below(501));
        turns.push(cycle_holding(&locker, resource, mode, hold));
    }
    let cpu = sampler.join().unwrap();
    let mut out = std::io::BufWriter::new(stdout);
    writeln!(out, "cpu {cpu}").unwrap();
    for t in turns {
        writeln!(out, "{} {} {}", t.serial, t.acquired, t.releasing).unwrap();
    }
    out.flush().unwrap();
    drop(locker);
    if FAILED.load(Ordering::SeqCst) {
        std::process::exit(1);
    }
}

/// What Redis has done so far, from one `INFO stats commandstats cpu`.
#[derive(Clone, Copy)]
struct RedisUse {
    /// EVALSHA and EVAL calls.
    scripts: f64,
    /// Calls of every command, those inside scripts too, but not the
    /// meter's own INFO.
    commands: f64,
    /// Microseconds spent in EVALSHA and EVAL (commandstats usec; the
    /// commands a script calls are inside its time, and counted again on
    /// their own lines, so the lines are not summed).
    script_us: f64,
    /// The server process's CPU time, used_cpu_user + used_cpu_sys, in µs.
    cpu_us: f64,
    /// Read events on client connections (`total_reads_processed`), the
    /// meter's INFO among them: one per round trip of a client that waits
    /// for each answer.
    reads: f64,
}

fn redis_use(c: &mut redis::Connection) -> RedisUse {
    let text = info(c, &["stats", "commandstats", "cpu"]);
    let mut commands = 0.0;
    for line in text.lines().filter(|l| l.starts_with("cmdstat_")) {
        let name = line.split(':').next().unwrap_or_default();
        if name != "cmdstat_info" {
            commands += info_value(line, name, Some("calls"));
        }
    }
    RedisUse {
        scripts: info_value(&text, "cmdstat_evalsha", Some("calls"))
            + info_value(&text, "cmdstat_eval", Some("calls")),
        commands,
        script_us: info_value(&text, "cmdstat_evalsha", Some("usec"))
            + info_value(&text, "cmdstat_eval", Some("usec")),
        cpu_us: (info_value(&text, "used_cpu_user", None)
            + info_value(&text, "used_cpu_sys", None))
            * 1e6,
        reads: info_value(&text, "total_reads_processed", None),
    }
}

/// One line of the herd scenario: figures per hand-off (per admission on a
/// semaphore) at one P.
struct HerdRow {
    p: usize,
    rate: f64,
    scripts: f64,
    commands: f64,
    redis_us: f64,
    redis_script_us: f64,
    client_us: f64,
}

/// One window of the herd scenario at one P, as measured: every turn of
/// every worker (the drain after the window too), the workers' CPU time in
/// the window (µs, all of them), the window (`go` to `end`, ns) and Redis's
/// use read at `t0` and `t1` within it.
struct HerdWindow {
    turns: Vec<Turn>,
    client_us: f64,
    go: u64,
    end: u64,
    t0: u64,
    t1: u64,
    before: RedisUse,
    after: RedisUse,
}

/// Runs `p` herd workers cycling in `mode` on `resource` for `window`;
/// a worker that fails is a correctness failure (`name` says where).
fn herd_window(
    url: &str,
    resource: &str,
    mode: Mode,
    p: usize,
    window: Duration,
    meter: &mut redis::Connection,
    name: &str,
) -> HerdWindow {
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..p)
        .map(|_| {
            let mut child = Command::new(&exe)
                .args(["--herd-worker", url, resource, &mode_arg(mode)])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let out = std::io::BufReader::new(child.stdout.take().unwrap());
            (child, out)
        })
        .collect();
    for (_, out) in &mut children {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if line.trim() != "ready" {
            fail(format!("{name}: a worker did not start"));
        }
    }
    let go = now_ns() + 200_000_000;
    let end = go + window.as_nanos() as u64;
    for (child, _) in &mut children {
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{go} {end}").unwrap();
    }
    sleep_until_ns(go);
    let t0 = now_ns();
    let before = redis_use(meter);
    sleep_until_ns(end);
    let t1 = now_ns();
    let after = redis_use(meter);
    let (mut turns, mut client_us) = (Vec::new(), 0.0);
    for (mut child, out) in children {
        for line in out.lines() {
            let line = line.unwrap();
            if let Some(cpu) = line.strip_prefix("cpu ") {
                client_us += cpu.parse::<f64>().unwrap();
                continue;
            }
            let v: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
            turns.push(Turn {
                serial: v[0],
                acquired: v[1],
                releasing: v[2],
            });
        }
        if !child.wait().unwrap().success() {
            fail(format!("{name}: a worker process failed"));
        }
    }
    turns.sort_by_key(|t| t.serial);
    if turns.windows(2).any(|w| w[0].serial == w[1].serial) {
        fail(format!("{name}: a serial held twice"));
    }
    HerdWindow {
        turns,
        client_us,
        go,
        end,
        t0,
        t1,
        before,
        after,
    }
}

impl HerdWindow {
    /// Turns (hand-offs, admissions) that began between `a` and `b`.
    fn began(&self, a: u64, b: u64) -> impl Iterator<Item = &Turn> {
        self.turns
            .iter()
            .filter(move |t| (a..b).contains(&t.acquired))
    }

    /// The figures per turn that began in the window (the workers' window
    /// for the rate and client CPU, the meter's for Redis's figures).
    fn row(&self, p: usize) -> HerdRow {
        let n = self.began(self.go, self.end).count().max(1) as f64;
        let n_meter = self.began(self.t0, self.t1).count().max(1) as f64;
        let (before, after) = (&self.before, &self.after);
        HerdRow {
            p,
            rate: n / self.secs(),
            scripts: (after.scripts - before.scripts) / n_meter,
            commands: (after.commands - before.commands) / n_meter,
            redis_us: (after.cpu_us - before.cpu_us) / n_meter,
            redis_script_us: (after.script_us - before.script_us) / n_meter,
            client_us: self.client_us / n,
        }
    }

    fn secs(&self) -> f64 {
        (self.end - self.go) as f64 / 1e9
    }

    /// Cores kept busy in the window: Redis's, the workers'.
    fn cores(&self) -> String {
        let meter_secs = (self.t1 - self.t0) as f64 / 1e9;
        format!(
            "cores busy: Redis {:.2}, clients {:.2}",
            (self.after.cpu_us - self.before.cpu_us) / 1e6 / meter_secs,
            self.client_us / 1e6 / self.secs()
        )
    }

    /// Holders at once: the most over every turn (the drain too), and the
    /// mean over the window. A holder holds at least from its acquire's
    /// return to its release's call, so more than `permits` at once is an
    /// overlap (a correctness failure, `name` says where).
    fn holders(&self, permits: u32, name: &str) -> (u32, f64) {
        let mut events: Vec<(u64, i32)> = self
            .turns
            .iter()
            .flat_map(|t| [(t.acquired, 1), (t.releasing, -1)])
            .collect();
        // At one instant a release comes before an acquire.
        events.sort();
        let (mut now, mut most) = (0i32, 0i32);
        for (_, step) in events {
            now += step;
            most = most.max(now);
        }
        if most > permits as i32 {
            fail(format!(
                "{name}: {most} holders at once (permits {permits})"
            ));
        }
        let held: u64 = self
            .turns
            .iter()
            .map(|t| {
                t.releasing
                    .min(self.end)
                    .saturating_sub(t.acquired.max(self.go))
            })
            .sum();
        (most as u32, held as f64 / (self.end - self.go) as f64)
    }

    /// The hand-offs of a permit (µs, sorted) on a queue that admits
    /// `slots` tickets at once and always has one waiting (more workers
    /// than slots): admissions follow draw order, so past the first
    /// `slots`, the ticket drawn j-th is admitted by the (j - slots)-th
    /// release; a hand-off is from that release called to the ticket's
    /// acquire returned, for tickets admitted in the window. None when
    /// the serials of the queue are not all there from 1 on.
    fn permit_handoffs(&self, slots: usize) -> Vec<f64> {
        if self
            .turns
            .iter()
            .enumerate()
            .any(|(i, t)| t.serial != i as u64 + 1)
        {
            return Vec::new();
        }
        let mut releases: Vec<u64> = self.turns.iter().map(|t| t.releasing).collect();
        releases.sort();
        let mut out: Vec<f64> = releases
            .iter()
            .zip(self.turns.iter().skip(slots))
            .filter(|(_, t)| (self.go..self.end).contains(&t.acquired))
            .map(|(&released, t)| (t.acquired as f64 - released as f64) / 1000.0)
            .collect();
        out.sort_by(|a, b| a.partial_cmp(b).unwrap());
        out
    }
}

/// The herd scenario: P worker processes, each with its own
/// locker, cycle on one resource for `window` at P = 1, 4, 16, 64. Prints
/// a line per P and its ratios beside their targets (printed, not
/// asserted; an overlap is a correctness failure).
fn herd(url: &str, rt_us: f64, window: Duration) {
    let mut meter = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut rows = Vec::new();
    let mut p99_at_64 = f64::NAN;
    for p in [1usize, 4, 16, 64] {
        let name = format!("7 herd, {p} processes");
        let resource = format!("bench-herd-{p}");
        let w = herd_window(url, &resource, Mode::Plain, p, window, &mut meter, &name);
        // Exclusion over every turn, the drain after `end` too.
        handoffs(w.turns.clone());
        let mut lat: Vec<f64> = w
            .turns
            .windows(2)
            .filter(|t| t[1].serial == t[0].serial + 1 && (w.go..w.end).contains(&t[1].acquired))
            .map(|t| (t[1].acquired as f64 - t[0].releasing as f64) / 1000.0)
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        let row = w.row(p);
        println!(
            "{name:<34} {:>9.0} cycles/s; per hand-off: {:>5.1} script calls, {:>6.1} commands, Redis CPU {:>6.1} µs (INFO cpu; {:.1} µs in scripts), client CPU {:>6.1} µs; hand-off p50 {:>7.1} µs = {:>5.1} RT, p99 {:>8.1} µs = {:>5.1} RT; {}",
            row.rate,
            row.scripts,
            row.commands,
            row.redis_us,
            row.redis_script_us,
            row.client_us,
            p50,
            p50 / rt_us,
            p99,
            p99 / rt_us,
            w.cores(),
        );
        p99_at_64 = p99 / rt_us;
        rows.push(row);
    }
    let at = |p: usize| rows.iter().find(|r| r.p == p).unwrap();
    let scripts = rows.iter().map(|r| r.scripts).fold(0.0, f64::max);
    let commands = rows.iter().map(|r| r.commands).fold(0.0, f64::max);
    let redis = at(64).redis_us / at(1).redis_us;
    let redis_scripts = at(64).redis_script_us / at(1).redis_script_us;
    let client = at(64).client_us / at(1).client_us;
    let cycles = at(64).rate / at(4).rate;
    let p99 = p99_at_64;
    println!(
        "{:<34} script calls per hand-off, most {scripts:.1} (target <= 3: {}); commands, most {commands:.1} (target <= 20: {}); Redis CPU 64/1 {redis:.1} (INFO cpu; target <= 2: {}; in scripts {redis_scripts:.1}); client CPU 64/1 {client:.1} (target <= 3: {}); cycles/s 64/4 {cycles:.2} (target >= 0.8: {}); p99 at 64 {p99:.1} RT (target <= 20: {})",
        "  herd against targets",
        verdict(scripts <= 3.0),
        verdict(commands <= 20.0),
        verdict(redis <= 2.0),
        verdict(client <= 3.0),
        verdict(cycles >= 0.8),
        verdict(p99 <= 20.0),
    );
}

/// The herd on a semaphore of 4 permits: P worker processes take weight 1
/// each, so up to 4 hold at once and P - 4 wait, at P = 1, 4, 16, 64. A
/// line per P (per admission: a turn that began in the window) and the
/// ratio of P = 64 to P = 1 beside its targets (printed, not asserted;
/// more than 4 holders at once is a correctness failure).
fn herd_semaphore(url: &str, rt_us: f64, window: Duration) {
    let Mode::Semaphore { permits, weight } = SEMAPHORE else {
        unreachable!("SEMAPHORE is a semaphore")
    };
    let slots = (permits / weight) as usize;
    let mut meter = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut rows = Vec::new();
    for p in [1usize, 4, 16, 64] {
        let name = format!("7 herd, semaphore {permits}, {p} processes");
        let resource = format!("bench-herd-semaphore-{p}");
        let w = herd_window(url, &resource, SEMAPHORE, p, window, &mut meter, &name);
        let (most, mean) = w.holders(permits, &name);
        let handoff = if p <= slots {
            "no ticket waits".to_string()
        } else {
            let h = w.permit_handoffs(slots);
            let (p50, p99) = (percentile(&h, 0.5), percentile(&h, 0.99));
            format!(
                "permit hand-off p50 {p50:>7.1} µs = {:>4.1} RT, p99 {p99:>8.1} µs = {:>5.1} RT",
                p50 / rt_us,
                p99 / rt_us
            )
        };
        let row = w.row(p);
        println!(
            "{name:<34} {:>9.0} admissions/s; per admission: {:>5.2} script calls, {:>6.1} commands, Redis CPU {:>6.1} µs (INFO cpu; {:.1} µs in scripts), client CPU {:>6.1} µs; holders at once {mean:.2} on average, most {most} (permits {permits}); {handoff}; {}",
            row.rate,
            row.scripts,
            row.commands,
            row.redis_us,
            row.redis_script_us,
            row.client_us,
            w.cores(),
        );
        rows.push(row);
    }
    let at = |p: usize| rows.iter().find(|r| r.p == p).unwrap();
    // To the hundredth: the window's edges cut the scripts of up to P
    // admissions in flight out of thousands.
    let scripts = (rows.iter().map(|r| r.scripts).fold(0.0, f64::max) * 100.0).round() / 100.0;
    let redis = at(64).redis_us / at(1).redis_us;
    let redis_scripts = at(64).redis_script_us / at(1).redis_script_us;
    println!(
        "{:<34} script calls per admission, most {scripts:.2} (target <= 3: {}); Redis CPU per admission 64/1 {redis:.2} (INFO cpu; target <= 2: {}; in scripts {redis_scripts:.2})",
        "  semaphore herd against targets",
        verdict(scripts <= 3.0),
        verdict(redis <= 2.0),
    );
}

fn threads_of_this_process() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn client_count(url: &str) -> usize {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    list.lines().count() - 1
}

/// Takes `n` locks on distinct resources with the default lease, from 16
/// threads; the seconds it took.
fn take_many(locker: &Locker, n: usize, prefix: &str) -> (Vec<turn::Lock>, f64) {
    let start = Instant::now();
    let locks = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (l, locks, prefix) = (locker.clone(), locks.clone(), prefix.to_string());
            thread::spawn(move || {
                for i in (t..n).step_by(16) {
                    let lock = l
                        .acquire(&format!("{prefix}-{i}"), &Acquire::label("h"))
                        .unwrap();
                    locks.lock().unwrap().push(lock);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let locks = Arc::try_unwrap(locks).ok().unwrap().into_inner().unwrap();
    (locks, start.elapsed().as_secs_f64())
}

/// One row of the beat scenario: `n` locks held by one locker on `url`
/// (default lease, 10 s: a beat every 3.3 s), watched for two thirds of
/// the lease after they are taken; the largest beat seen is printed.
fn beat_row(name: &str, url: &str, ping_url: &str, n: usize) {
    let rt_us = 1e6 / ping_rate(ping_url, 1, 0.5);
    let locker = Locker::new(Some(url)).unwrap();
    let (locks, took) = take_many(&locker, n, "bench-beat");
    let before = locker.last_beat().map_or(0, |b| b.beats);
    let mut largest: Option<turn::Beat> = None;
    let mut seen = 0u64;
    let mut last = before;
    let start = Instant::now();
    while start.elapsed() < turn::DEFAULT_EXPIRE * 2 / 3 {
        thread::sleep(Duration::from_millis(20));
        if let Some(b) = locker.last_beat()
            && b.beats != last
        {
            seen += b.beats - last;
            last = b.beats;
            if largest.is_none_or(|l| b.tickets > l.tickets) {
                largest = Some(b);
            }
        }
    }
    let lost = locks.iter().filter(|l| l.check().is_err()).count();
    if lost > 0 {
        fail(format!("{name}: {lost} held locks lost"));
    }
    match largest {
        Some(b) => println!(
            "{name:<34} {:>9.1} ms per beat of {} tickets, {} round trips per beat (PING round trip {rt_us:.0} µs); {seen} beats seen, {} slow; {n} locks taken in {took:.1} s; {lost} lost",
            b.duration.as_secs_f64() * 1000.0,
            b.tickets,
            b.round_trips,
            b.slow_beats
        ),
        None => fail(format!("{name}: no beat seen")),
    }
    drop(locks);
    drop(locker);
}

/// The heartbeat with 10,000 held locks: one server and a 3-master
/// cluster, on loopback and through proxies at 1 ms each way (the nodes
/// announce their proxy, so redirects cross it too).
fn beat(url: &str, quick: bool) {
    let n = if quick { 1000 } else { 10_000 };
    beat_row("beat, one server", url, url, n);
    let cluster = support::cluster::Cluster::start(3);
    let seed = cluster.proxies[0].url();
    beat_row("beat, cluster of 3", &cluster.url(), &seed, n);
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(6379);
    let proxy = support::proxy::Proxy::start(port);
    proxy.latency(Duration::from_millis(1), Duration::ZERO);
    beat_row(
        "beat, one server, 1 ms each way",
        &proxy.url(),
        &proxy.url(),
        n,
    );
    drop(proxy);
    cluster.latency(Duration::from_millis(1));
    beat_row(
        "beat, cluster of 3, 1 ms each way",
        &cluster.url(),
        &seed,
        n,
    );
}

/// What the durability scenario counts on the master, from one `INFO stats
/// commandstats` (the commands a script calls are counted too).
#[derive(Clone, Copy, Default)]
struct Traffic {
    /// Read events on client connections (`total_reads_processed`): one per
    /// round trip of a client that waits for each answer, a pipeline
    /// (EVALSHA and its WAIT) being one.
    reads: f64,
    /// Every command, those inside scripts too (`total_commands_processed`).
    commands: f64,
    /// The replica's REPLCONF ACKs (commands, not a client's).
    replconf: f64,
    /// Write events on the replica (`total_writes_processed` there): its
    /// acks to the master, a read event each there (a write can carry two
    /// acks), and the replies to this meter's INFO.
    replica_writes: f64,
    /// EVALSHA and EVAL calls.
    scripts: f64,
    wait: f64,
    /// MGET calls, those inside scripts too.
    mget: f64,
}

impl Traffic {
    /// Reads the master's counters on `c`, the replica's on `r`.
    fn read(c: &mut redis::Connection, r: &mut redis::Connection) -> Traffic {
        let text = info(c, &["stats", "commandstats"]);
        let replica_writes = info_number(r, "stats", "total_writes_processed", None);
        let calls = |name: &str| info_value(&text, name, Some("calls"));
        Traffic {
            reads: info_value(&text, "total_reads_processed", None),
            commands: info_value(&text, "total_commands_processed", None),
            replconf: calls("cmdstat_replconf"),
            replica_writes,
            scripts: calls("cmdstat_evalsha") + calls("cmdstat_eval"),
            wait: calls("cmdstat_wait"),
            mget: calls("cmdstat_mget"),
        }
    }

    /// What the clients did between `before` and now (`self`): the replica's
    /// acks and the INFO that read `before` taken out (on each server, the
    /// INFO that read `before` is counted, the one that read `self` not).
    fn since(&self, before: &Traffic) -> Traffic {
        let replconf = self.replconf - before.replconf;
        let replica_writes = self.replica_writes - before.replica_writes - 1.0;
        Traffic {
            reads: self.reads - before.reads - replica_writes - 1.0,
            commands: self.commands - before.commands - replconf - 1.0,
            replconf,
            replica_writes,
            scripts: self.scripts - before.scripts,
            wait: self.wait - before.wait,
            mget: self.mget - before.mget,
        }
    }

    fn add(&mut self, d: &Traffic) {
        self.reads += d.reads;
        self.commands += d.commands;
        self.replconf += d.replconf;
        self.replica_writes += d.replica_writes;
        self.scripts += d.scripts;
        self.wait += d.wait;
        self.mget += d.mget;
    }

    /// Per cycle, as printed.
    fn per(&self, cycles: usize) -> String {
        let n = cycles.max(1) as f64;
        format!(
            "per cycle {:.2} round trips ({:.2} EVALSHA, {:.2} WAIT), {:.2} MGET and {:.1} commands incl. in scripts",
            self.reads / n,
            self.scripts / n,
            self.wait / n,
            self.mget / n,
            self.commands / n
        )
    }
}

/// One round of hand-offs between the two lockers `pair`, a thread each,
/// on one resource: `per` cycles each, no hold. The hand-offs (µs, sorted;
/// an overlap is a correctness failure), the cycles done, the wall time and
/// the master's traffic (`meter` on the master, `replica_meter` on the
/// replica).
fn durable_handoffs(
    pair: &[Locker; 2],
    resource: &str,
    per: usize,
    meter: &mut redis::Connection,
    replica_meter: &mut redis::Connection,
) -> (Vec<f64>, usize, f64, Traffic) {
    let barrier = Arc::new(Barrier::new(3));
    let threads: Vec<_> = pair
        .iter()
        .map(|l| {
            let (l, barrier, resource) = (l.clone(), barrier.clone(), resource.to_string());
            thread::spawn(move || {
                barrier.wait();
                (0..per).map(|_| cycle(&l, &resource)).collect::<Vec<_>>()
            })
        })
        .collect();
    let before = Traffic::read(meter, replica_meter);
    barrier.wait();
    let start = Instant::now();
    let mut turns = Vec::new();
    for t in threads {
        turns.extend(t.join().unwrap());
    }
    let wall = start.elapsed().as_secs_f64();
    let traffic = Traffic::read(meter, replica_meter).since(&before);
    let n = turns.len();
    (handoffs(turns), n, wall, traffic)
}

/// Scenario 9, the price of durability: a master with one replica; a
/// locker with default options (no replica confirmation on a plain URL)
/// and one with `min_replicas` 1 within 1 s, both on the master's URL.
/// The solo cycle of each, measured in alternating slices with the
/// master's PING rate, then a hand-off between two lockers of each kind.
fn durability(quick: bool) {
    // No 5 s pause before the replica's first (diskless) sync.
    let master = support::Redis::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    let master_port = master.port.to_string();
    let replica =
        support::Redis::start_with(&["--save", "", "--replicaof", "127.0.0.1", &master_port]);
    let url = master.url();
    println!(
        "9 durability: master {url}, replica on port {}",
        replica.port
    );
    let mut meter = master.conn();
    let mut replica_meter = replica.conn();
    let synced = support::eventually(Duration::from_secs(20), || {
        info(&mut replica_meter, &["replication"]).contains("master_link_status:up")
            && info_value(
                &info(&mut meter, &["replication"]),
                "connected_slaves",
                None,
            ) >= 1.0
    });
    if !synced {
        println!("{:<34} skipped: the replica never synced", "9 durability");
        return;
    }
    let confirmed = turn::Options {
        min_replicas: Some(turn::MinReplicas::new(1, Duration::from_millis(1000))),
        ..Default::default()
    };
    let kinds = [
        ("replicas off", turn::Options::default()),
        ("min_replicas 1", confirmed),
    ];
    let lockers: Vec<Locker> = kinds
        .iter()
        .map(|(_, o)| Locker::with_options(Some(&url), o.clone()).unwrap())
        .collect();
    for (l, (name, _)) in lockers.iter().zip(&kinds) {
        println!(
            "  {name:<32} the locker confirms with {} replica(s)",
            l.min_replicas().replicas
        );
        cycle(
            l,
            &format!("bench-durable-warm-{}", l.min_replicas().replicas),
        );
    }

    // The solo cycle: the master's PING and each locker in alternating
    // slices, each cycle timed.
    let (window, slices) = if quick { (0.3, 6) } else { (1.0, 20) };
    let slice = window / slices as f64;
    let (mut pings, mut ping_time) = (0usize, 0.0);
    let mut lat = [Vec::new(), Vec::new()];
    let mut time = [0.0; 2];
    let mut traffic = [Traffic::default(); 2];
    for _ in 0..slices {
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < slice {
            let _: String = redis::cmd("PING").query(&mut meter).unwrap();
            pings += 1;
        }
        ping_time += start.elapsed().as_secs_f64();
        for (k, l) in lockers.iter().enumerate() {
            let resource = format!("bench-durable-solo-{k}");
            let before = Traffic::read(&mut meter, &mut replica_meter);
            let start = Instant::now();
            while start.elapsed().as_secs_f64() < slice {
                let t = Instant::now();
                cycle(l, &resource);
                lat[k].push(t.elapsed().as_secs_f64() * 1e6);
            }
            time[k] += start.elapsed().as_secs_f64();
            traffic[k].add(&Traffic::read(&mut meter, &mut replica_meter).since(&before));
        }
    }
    drop(lockers);
    let ping = pings as f64 / ping_time;
    let rt_us = 1e6 / ping;
    println!(
        "{:<34} {ping:>9.0} PING/s (the master, one connection, sequential): round trip {rt_us:.1} µs",
        "  yardstick"
    );
    let mut solo_p50 = [0.0; 2];
    let mut solo_rate = [0.0; 2];
    for (k, (name, _)) in kinds.iter().enumerate() {
        lat[k].sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = lat[k].len();
        let rate = n as f64 / time[k];
        let (p50, p99) = (percentile(&lat[k], 0.5), percentile(&lat[k], 0.99));
        solo_p50[k] = p50;
        solo_rate[k] = rate;
        println!(
            "{:<34} {rate:>9.0} cycles/s = {:.2} x PING/s; cycle p50 {p50:>7.1} µs = {:>4.1} RT, p99 {p99:>8.1} µs = {:>5.1} RT; {}",
            format!("  solo, {name}"),
            rate / ping,
            p50 / rt_us,
            p99 / rt_us,
            traffic[k].per(n)
        );
    }

    // The hand-off: two lockers of each kind, a thread each, one resource,
    // in rounds that alternate between the kinds.
    let (rounds, per) = if quick { (2, 25) } else { (5, 100) };
    let pairs: Vec<[Locker; 2]> = kinds
        .iter()
        .map(|(_, o)| {
            [0, 1].map(|i| {
                let l = Locker::with_options(Some(&url), o.clone()).unwrap();
                cycle(&l, &format!("bench-durable-warm-{i}"));
                l
            })
        })
        .collect();
    let mut hand = [Vec::new(), Vec::new()];
    let mut done = [0usize; 2];
    let mut wall = [0.0; 2];
    let mut hand_traffic = [Traffic::default(); 2];
    for _ in 0..rounds {
        for (k, pair) in pairs.iter().enumerate() {
            let resource = format!("bench-durable-handoff-{k}");
            let (h, n, w, t) =
                durable_handoffs(pair, &resource, per, &mut meter, &mut replica_meter);
            hand[k].extend(h);
            done[k] += n;
            wall[k] += w;
            hand_traffic[k].add(&t);
        }
    }
    drop(pairs);
    let mut hand_p50 = [0.0; 2];
    let mut hand_p99 = [0.0; 2];
    for (k, (name, _)) in kinds.iter().enumerate() {
        if done[k] != rounds * 2 * per {
            fail(format!(
                "durability, {name}: {} of {} cycles done",
                done[k],
                rounds * 2 * per
            ));
        }
        hand[k].sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (p50, p99) = (percentile(&hand[k], 0.5), percentile(&hand[k], 0.99));
        hand_p50[k] = p50;
        hand_p99[k] = p99;
        println!(
            "{:<34} {:>9.0} cycles/s; hand-off p50 {p50:>7.1} µs = {:>4.1} RT, p99 {p99:>8.1} µs = {:>5.1} RT; {}",
            format!("  hand-off, {name}"),
            done[k] as f64 / wall[k],
            p50 / rt_us,
            p99 / rt_us,
            hand_traffic[k].per(done[k])
        );
    }
    println!(
        "{:<34} solo cycle p50 {:+.1} µs (x{:.2}), cycles/s x{:.2}; hand-off p50 {:+.1} µs ({:+.1} RT), p99 {:+.1} µs; WAIT per solo cycle {:.2}",
        "  price of durability",
        solo_p50[1] - solo_p50[0],
        solo_p50[1] / solo_p50[0],
        solo_rate[1] / solo_rate[0],
        hand_p50[1] - hand_p50[0],
        (hand_p50[1] - hand_p50[0]) / rt_us,
        hand_p99[1] - hand_p99[0],
        traffic[1].wait / lat[1].len().max(1) as f64
    );
    if traffic[1].wait == 0.0 {
        println!(
            "{:<34} the locker with min_replicas 1 sent no WAIT: the library does not confirm yet",
            "  NOTE"
        );
    }
    drop(replica);
    drop(master);
}

/// Scenario 10, short-lived lockers: the whole life of a locker that takes
/// one lock (new locker, acquire, release, free, through the C ABI), beside
/// its floor in the same run (a raw TCP connect to the server, three PINGs
/// and a close); once for a locker whose lock was free and once for one
/// that waited for it (another locker holds it for 2 ms from the start);
/// then `turn lock R -- true` beside `flock FILE true`, each a process;
/// then, when the bench runs the server (`pid`), `turn_locker_free` of a
/// locker holding a lock while the server is paused (SIGSTOP).
fn short_lived(url: &str, pid: Option<u32>, quick: bool) {
    use std::ffi::CString;
    use std::io::Read;
    use turn::ffi::{
        turn_lock, turn_lock_acquire, turn_lock_release, turn_locker, turn_locker_free,
        turn_locker_new, turn_result,
    };

    const HOLD: Duration = Duration::from_millis(2);
    let rounds = if quick { 30 } else { 200 };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        percentile(&v, 0.5)
    };
    let p99 = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        percentile(&v, 0.99)
    };

    // The floor: what any client of this server pays at least for a
    // connection and a few round trips.
    let addr = url
        .strip_prefix("redis://")
        .and_then(|rest| rest.split('/').next())
        .filter(|a| !a.contains('@'))
        .map(str::to_string);
    let Some(addr) = addr else {
        println!(
            "{:<34} skipped: the floor needs a plain redis://host:port URL",
            "10 short-lived"
        );
        return;
    };
    let floor_once = || {
        let start = Instant::now();
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut reply = [0u8; 7];
        for _ in 0..3 {
            s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
            s.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"+PONG\r\n");
        }
        drop(s);
        us(start.elapsed())
    };

    // One locker's life through the C ABI: (lifecycle, free) in µs, and
    // whether it waited: its acquire was called before the holder's
    // release (`held_until` says when that was; an acquire returned
    // before it is a correctness failure).
    let url_c = CString::new(url).unwrap();
    let resource = c"bench-short-lived";
    let label = c"short-lived";
    let life = |held_until: Option<&dyn Fn() -> Option<Instant>>| -> (f64, f64, bool) {
        let start = Instant::now();
        let mut locker: *mut turn_locker = std::ptr::null_mut();
        // SAFETY: valid strings and out-pointers; the handles are used
        // as the header says (released once, freed once).
        unsafe {
            let r = turn_locker_new(url_c.as_ptr(), &mut locker);
            assert!(r == turn_result::TURN_OK, "turn_locker_new");
            let mut lock: *mut turn_lock = std::ptr::null_mut();
            let calling = Instant::now();
            let r = turn_lock_acquire(
                locker,
                resource.as_ptr(),
                label.as_ptr(),
                0,
                0,
                60_000,
                &mut lock,
            );
            assert!(r == turn_result::TURN_OK, "turn_lock_acquire");
            let acquired = Instant::now();
            let r = turn_lock_release(lock);
            if r != turn_result::TURN_OK {
                fail(format!("short-lived: release answered {r:?}"));
            }
            let freeing = Instant::now();
            turn_locker_free(locker);
            let end = Instant::now();
            let waited = match held_until.and_then(|f| f()) {
                Some(released) => {
                    if acquired < released {
                        fail("short-lived: acquired before the holder released".into());
                    }
                    calling < released
                }
                None => false,
            };
            (us(end - start), us(end - freeing), waited)
        }
    };

    let holder = Locker::new(Some(url)).unwrap();
    cycle(&holder, "bench-short-lived");
    life(None);
    let mut floor = Vec::new();
    let mut free_life = (Vec::new(), Vec::new());
    let mut wait_life = (Vec::new(), Vec::new());
    let mut waited = 0;
    for _ in 0..rounds {
        floor.push(floor_once());
        // Nobody holds it: no wait.
        let (l, f, _) = life(None);
        free_life.0.push(l);
        free_life.1.push(f);
        // Held by another locker until 2 ms after the start.
        let lock = holder.lock("bench-short-lived", "holder").unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Instant>();
        let released = Arc::new(Mutex::new(None));
        let releaser = {
            let released = released.clone();
            thread::spawn(move || {
                let start = rx.recv().unwrap();
                let until = start + HOLD;
                let now = Instant::now();
                if until > now {
                    thread::sleep(until - now);
                }
                *released.lock().unwrap() = Some(Instant::now());
                lock.release().unwrap();
            })
        };
        // The life starts when the holder's 2 ms do.
        let start = Instant::now();
        tx.send(start).unwrap();
        let (l, f, w) = {
            let released = released.clone();
            let probe = move || *released.lock().unwrap();
            life(Some(&probe))
        };
        releaser.join().unwrap();
        if w {
            waited += 1;
        }
        wait_life.0.push(l - us(HOLD));
        wait_life.1.push(f);
    }
    drop(holder);
    let floor_p50 = median(floor.clone());
    println!(
        "{:<34} {floor_p50:>7.0} µs p50 (a raw TCP connect, three PINGs and a close; p99 {:.0} µs)",
        "10 short-lived: floor",
        p99(floor)
    );
    for (name, (lives, frees)) in [
        ("  a locker that did not wait", free_life),
        ("  a locker that waited 2 ms", wait_life),
    ] {
        let (l50, l99) = (median(lives.clone()), p99(lives));
        let (f50, f99) = (median(frees.clone()), p99(frees));
        println!(
            "{name:<34} lifecycle{} p50 {l50:>7.0} µs = {:>5.1} x floor (target <= 20), p99 {l99:>7.0} µs; turn_locker_free p50 {:>6.2} ms (target <= 5), p99 {:>6.2} ms",
            if name.contains("waited") {
                " - 2 ms"
            } else {
                ""
            },
            l50 / floor_p50,
            f50 / 1000.0,
            f99 / 1000.0,
        );
    }
    println!(
        "{:<34} {waited} of {rounds} lives called acquire before the holder's release",
        ""
    );

    // The tool beside flock(1), each a new process running `true`.
    let runs = if quick { 20 } else { 100 };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flock");
    std::fs::write(&file, "").unwrap();
    let time = |cmd: &mut Command| {
        let start = Instant::now();
        let status = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        (us(start.elapsed()), status.success())
    };
    let tool = env!("CARGO_BIN_EXE_turn");
    let mut flock = Vec::new();
    let mut turn_lock = Vec::new();
    let mut ok = true;
    let mut flock_ok = true;
    for _ in 0..runs {
        let (t, s) = time(Command::new("flock").arg(&file).arg("true"));
        flock.push(t);
        flock_ok &= s;
        let (t, s) =
            time(Command::new(tool).args(["--url", url, "lock", "bench-short-tool", "--", "true"]));
        turn_lock.push(t);
        ok &= s;
    }
    if !ok {
        fail("short-lived: `turn lock R -- true` failed".into());
    }
    let (t50, f50) = (median(turn_lock.clone()), median(flock.clone()));
    if flock_ok {
        println!(
            "{:<34} {:>7.2} ms p50 (p99 {:.2} ms) beside `flock FILE true` {:.2} ms p50 (p99 {:.2} ms): {:.1} x (target <= 10)",
            "  turn lock R -- true",
            t50 / 1000.0,
            p99(turn_lock) / 1000.0,
            f50 / 1000.0,
            p99(flock) / 1000.0,
            t50 / f50
        );
    } else {
        println!(
            "{:<34} {:>7.2} ms p50 (p99 {:.2} ms); flock(1) did not run here",
            "  turn lock R -- true",
            t50 / 1000.0,
            p99(turn_lock) / 1000.0,
        );
    }

    // Freeing a locker that holds a lock while the server is paused: its
    // round trips and its wait for its threads are bounded.
    let Some(pid) = pid else {
        println!(
            "{:<34} skipped: the bench does not run the server (TURN_REDIS_URL)",
            "  free, Redis paused"
        );
        return;
    };
    let mut frees = Vec::new();
    for i in 0..if quick { 3 } else { 7 } {
        let mut locker: *mut turn_locker = std::ptr::null_mut();
        let resource = CString::new(format!("bench-short-paused-{i}")).unwrap();
        // SAFETY: as in `life`.
        unsafe {
            let r = turn_locker_new(url_c.as_ptr(), &mut locker);
            assert!(r == turn_result::TURN_OK, "turn_locker_new");
            let mut lock: *mut turn_lock = std::ptr::null_mut();
            let r = turn_lock_acquire(
                locker,
                resource.as_ptr(),
                label.as_ptr(),
                0,
                0,
                60_000,
                &mut lock,
            );
            assert!(r == turn_result::TURN_OK, "turn_lock_acquire");
            support::signal(pid, "STOP");
            let start = Instant::now();
            turn_locker_free(locker);
            frees.push(us(start.elapsed()));
            support::signal(pid, "CONT");
            // Closing released it (TURN_ERR_LOST: the server never heard).
            let _ = turn_lock_release(lock);
        }
    }
    println!(
        "{:<34} turn_locker_free p50 {:>6.1} ms, max {:.1} ms (a lock held; command timeout 5 s)",
        "  free, Redis paused",
        median(frees.clone()) / 1000.0,
        frees.iter().cloned().fold(0.0, f64::max) / 1000.0
    );
}

/// Scenario 11, all or none: `Locker::acquire_all` of k = 1, 2, 4, 8 free
/// resources (plain locks), each call bracketed by the meter's `INFO`: its
/// round trips (Redis's read events, less the meter's own), script calls
/// and commands, and its duration; the locks are released after the
/// count. Printed beside k + 1, not asserted.
fn all_or_none(url: &str, rt_us: f64, quick: bool) {
    let calls = if quick { 50 } else { 300 };
    let locker = Locker::new(Some(url)).unwrap();
    let mut meter = redis::Client::open(url).unwrap().get_connection().unwrap();
    for k in [1usize, 2, 4, 8] {
        let names: Vec<String> = (0..k).map(|i| format!("bench-all-{k}-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let take = || {
            locker
                .acquire_all(&names, &request(Mode::Plain))
                .unwrap_or_else(|e| panic!("acquire_all of {k}: {e}"))
        };
        // The scripts loaded and the connections made before the count.
        for lock in take() {
            lock.release().unwrap();
        }
        let (mut trips, mut scripts, mut commands, mut took) = (Vec::new(), 0.0, 0.0, Vec::new());
        for _ in 0..calls {
            let before = redis_use(&mut meter);
            let start = Instant::now();
            let locks = take();
            took.push(start.elapsed().as_secs_f64() * 1e6);
            let after = redis_use(&mut meter);
            // The INFO that read `before` is counted in `after`.
            trips.push(after.reads - before.reads - 1.0);
            scripts += after.scripts - before.scripts;
            commands += after.commands - before.commands;
            if locks.len() != k {
                fail(format!("acquire_all of {k} gave {} locks", locks.len()));
            }
            for (lock, name) in locks.iter().zip(&names) {
                if lock.resource() != *name {
                    fail(format!(
                        "acquire_all of {k}: {} for {name}",
                        lock.resource()
                    ));
                }
            }
            for lock in locks {
                if let Err(e) = lock.release() {
                    fail(format!("acquire_all of {k}: release failed: {e}"));
                }
            }
        }
        let mean = trips.iter().sum::<f64>() / calls as f64;
        trips.sort_by(|a, b| a.partial_cmp(b).unwrap());
        took.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p50 = percentile(&took, 0.5);
        println!(
            "{:<34} {mean:>5.2} round trips per call (median {:.0}, most {:.0}; target <= k + 1 = {}: {}), {:.2} script calls, {:.1} commands; call p50 {p50:>7.1} µs = {:>4.1} RT",
            format!("11 all or none, k = {k}"),
            percentile(&trips, 0.5),
            trips.last().copied().unwrap_or(f64::NAN),
            k + 1,
            verdict(mean <= (k + 1) as f64),
            scripts / calls as f64,
            commands / calls as f64,
            p50 / rt_us,
        );
    }
}

/// One loop of scenario 1 over its slices: the steps done (cycles or
/// PINGs), the seconds they took and the µs Redis ran its scripts meanwhile.
#[derive(Default)]
struct Sliced {
    steps: usize,
    secs: f64,
    script_us: f64,
}

impl Sliced {
    /// Runs `step` on `meter`'s connection for `slice` seconds.
    fn run(
        &mut self,
        meter: &mut redis::Connection,
        slice: f64,
        mut step: impl FnMut(&mut redis::Connection),
    ) {
        let before = script_usec(meter);
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < slice {
            step(meter);
            self.steps += 1;
        }
        self.secs += start.elapsed().as_secs_f64();
        self.script_us += script_usec(meter) - before;
    }

    fn rate(&self) -> f64 {
        self.steps as f64 / self.secs
    }

    fn script_us_per_step(&self) -> f64 {
        self.script_us / self.steps.max(1) as f64
    }
}

/// The yardstick and scenario 1: Redis's PING, the solo cycle of the plain
/// lock, its protocol floor and the solo cycles of the shared modes (a
/// semaphore's weight 1 of 4, a read-write lock's shared hold), measured in
/// alternating slices so that a noisy neighbour weighs on all alike.
/// Prints them; the PING rate and round trip (µs).
fn solo(locker: &Locker, meter: &mut redis::Connection, quick: bool, secs: f64) -> (f64, f64) {
    let slices = if quick { 10 } else { 40 };
    let slice = secs / slices as f64;
    let mut floor = Floor::new(meter);
    let modes = [
        (
            "  semaphore, weight 1 of 4",
            SEMAPHORE,
            "bench-solo-semaphore",
        ),
        ("  read-write, shared", SHARED, "bench-solo-shared"),
    ];
    let (mut pings, mut plain, mut bare, mut metered) = (
        Sliced::default(),
        Sliced::default(),
        Sliced::default(),
        Sliced::default(),
    );
    let mut shared: Vec<Sliced> = modes.iter().map(|_| Sliced::default()).collect();
    for _ in 0..slices {
        pings.run(meter, slice, |c| {
            let _: String = redis::cmd("PING").query(c).unwrap();
        });
        plain.run(meter, slice, |_| {
            cycle(locker, "bench-solo");
        });
        bare.run(meter, slice, |c| floor.cycle(c));
        // The plain cycle again, reading the locker's metrics (as text, as
        // a scrape would) after each.
        metered.run(meter, slice, |_| {
            cycle(locker, "bench-solo");
            std::hint::black_box(locker.metrics().text());
        });
        for ((_, mode, resource), sliced) in modes.iter().zip(&mut shared) {
            sliced.run(meter, slice, |_| {
                cycle_holding(locker, resource, *mode, Duration::ZERO);
            });
        }
    }
    let ping = pings.rate();
    let rt_us = 1e6 / ping;
    println!(
        "{:<34} {ping:>9.0} PING/s (one connection, sequential): round trip {rt_us:.1} µs",
        "yardstick"
    );

    // 1. Solo.
    let rate = plain.rate();
    println!(
        "{:<34} {rate:>9.0} cycles/s = {:.2} x PING/s (target >= 0.40, ceiling 0.5); Redis ran its scripts {:.1} µs per cycle",
        "1 solo (acquire + release)",
        rate / ping,
        plain.script_us_per_step()
    );
    println!(
        "{:<34} {:>9.0} cycles/s = {:.2} x PING/s (the protocol's Redis commands in two bare scripts, no library); {:.1} µs per cycle",
        "  protocol floor",
        bare.rate(),
        bare.rate() / ping,
        bare.script_us_per_step()
    );
    let plain_us = 1e6 / rate;
    let metered_us = 1e6 / metered.rate();
    println!(
        "{:<34} {:>9.0} cycles/s; cycle {metered_us:.1} µs = {:.3} x the plain cycle's {plain_us:.1} µs (the metrics are kept in every cycle above; reading them makes no round trip)",
        "  reading the metrics each cycle",
        metered.rate(),
        metered_us / plain_us,
    );
    for ((name, _, _), sliced) in modes.iter().zip(&shared) {
        let us = 1e6 / sliced.rate();
        println!(
            "{name:<34} {:>9.0} cycles/s = {:.2} x PING/s; cycle {us:.1} µs = {:.2} x the plain cycle's {plain_us:.1} µs (target <= 1.2: {}); Redis ran its scripts {:.1} µs per cycle",
            sliced.rate(),
            sliced.rate() / ping,
            us / plain_us,
            verdict(us / plain_us <= 1.2),
            sliced.script_us_per_step()
        );
    }
    (ping, rt_us)
}

/// How a figure stands against its target.
fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return worker(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--herd-worker") {
        return herd_worker(&args[1..]);
    }
    let quick = std::env::var_os("TURN_BENCH_QUICK").is_some();
    let secs = if quick { 0.3 } else { 2.0 };
    // Scenario 9 starts its own master and replica: no other server.
    if std::env::var("TURN_BENCH_ONLY").as_deref() == Ok("durability") {
        println!("turn {} benchmark, durability alone", turn::VERSION);
        durability(quick);
        std::process::exit(if FAILED.load(Ordering::SeqCst) { 1 } else { 0 });
    }
    // Killed on drop: the exits below drop it first.
    let mut server = None;
    let url = match std::env::var("TURN_REDIS_URL") {
        Ok(u) => u,
        Err(_) => server.insert(support::Redis::start()).url(),
    };
    println!("turn {} benchmark against {url}", turn::VERSION);
    // The herd scenario's window per P, in seconds.
    let herd_window = std::env::var("TURN_BENCH_HERD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(if quick { 2 } else { 10 }));
    match std::env::var("TURN_BENCH_ONLY").as_deref() {
        Err(_) => {}
        Ok("herd") => {
            let ping = ping_rate(&url, 1, secs);
            let rt_us = 1e6 / ping;
            println!(
                "{:<34} {ping:>9.0} PING/s (one connection, sequential): round trip {rt_us:.1} µs",
                "yardstick"
            );
            herd(&url, rt_us, herd_window);
            drop(server);
            std::process::exit(if FAILED.load(Ordering::SeqCst) { 1 } else { 0 });
        }
        Ok("modes") => {
            let locker = Locker::new(Some(&url)).unwrap();
            let mut meter = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let (_, rt_us) = solo(&locker, &mut meter, quick, secs);
            drop(locker);
            herd(&url, rt_us, herd_window);
            herd_semaphore(&url, rt_us, herd_window);
            all_or_none(&url, rt_us, quick);
            drop(server);
            std::process::exit(if FAILED.load(Ordering::SeqCst) { 1 } else { 0 });
        }
        Ok("beat") => {
            beat(&url, quick);
            drop(server);
            std::process::exit(if FAILED.load(Ordering::SeqCst) { 1 } else { 0 });
        }
        Ok("short-lived") => {
            short_lived(&url, server.as_ref().and_then(|s| s.pid()), quick);
            drop(server);
            std::process::exit(if FAILED.load(Ordering::SeqCst) { 1 } else { 0 });
        }
        Ok(other) => {
            eprintln!(
                "TURN_BENCH_ONLY={other}: the scenarios that run alone are herd, modes, beat, durability and short-lived"
            );
            drop(server);
            std::process::exit(2);
        }
    }
    let locker = Locker::new(Some(&url)).unwrap();
    let mut meter = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let (ping, rt_us) = solo(&locker, &mut meter, quick, secs);

    // 2. Contended, processes.
    let per = if quick { 50 } else { 500 };
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args(["--worker", &url, "bench-procs", &per.to_string()])
                .arg(&go)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    std::fs::write(&go, "").unwrap();
    let mut turns = Vec::new();
    for mut c in children {
        for line in std::io::BufReader::new(c.stdout.take().unwrap()).lines() {
            let v: Vec<u64> = line
                .unwrap()
                .split(' ')
                .map(|x| x.parse().unwrap())
                .collect();
            turns.push(Turn {
                serial: v[0],
                acquired: v[1],
                releasing: v[2],
            });
        }
        if !c.wait().unwrap().success() {
            fail("a worker process failed".into());
        }
    }
    if turns.len() != 4 * per {
        fail(format!("{} of {} cycles done", turns.len(), 4 * per));
    }
    report_contended(
        "2 contended, 4 processes",
        turns,
        start.elapsed().as_secs_f64(),
        rt_us,
    );

    // 3. Contended, threads sharing one locker.
    let per = if quick { 50 } else { 250 };
    let turns = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (locker, turns) = (locker.clone(), turns.clone());
            thread::spawn(move || {
                let mine: Vec<Turn> = (0..per).map(|_| cycle(&locker, "bench-threads")).collect();
                turns.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    let turns = std::mem::take(&mut *turns.lock().unwrap());
    report_contended("3 contended, 8 threads, 1 locker", turns, wall, rt_us);

    // 4. Many resources: 8 threads, one locker, a resource each.
    let ping8 = ping_rate(&url, 8, secs);
    let count = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(9));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (locker, count, barrier) = (locker.clone(), count.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut n = 0;
                while start.elapsed().as_secs_f64() < secs {
                    cycle(&locker, &format!("bench-many-{i}"));
                    n += 1;
                }
                count.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    let rate = count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    println!(
        "{:<34} {rate:>9.0} cycles/s = {:.2} x PING/s of 8 connections ({ping8:.0}/s; target >= 0.25)",
        "4 many resources, 8 threads",
        rate / ping8
    );

    // 5. Deep queue: 1,000 threads waiting on one resource.
    let waiters = if quick { 200 } else { 1000 };
    let clients_before = client_count(&url);
    let threads_before = threads_of_this_process();
    let deep = Locker::new(Some(&url)).unwrap();
    let holder = deep.lock("bench-deep", "holder").unwrap();
    let heap_before = LIVE.load(Ordering::Relaxed);
    let grants = Arc::new(Mutex::new(Vec::with_capacity(waiters)));
    let threads: Vec<_> = (0..waiters)
        .map(|_| {
            let (deep, grants) = (deep.clone(), grants.clone());
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let lock = deep
                        .acquire(
                            "bench-deep",
                            &Acquire::label("w").wait(Wait::For(Duration::from_secs(300))),
                        )
                        .unwrap_or_else(|e| panic!("deep acquire: {e}"));
                    grants.lock().unwrap().push(lock.serial());
                    lock.release().unwrap();
                })
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    while deep
        .status("bench-deep")
        .map(|s| s.tickets.len())
        .unwrap_or(0)
        < waiters + 1
    {
        if start.elapsed() > Duration::from_secs(120) {
            fail("the deep queue did not fill".into());
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let heap_per = (LIVE.load(Ordering::Relaxed) - heap_before) as f64 / waiters as f64;
    let clients = client_count(&url) - clients_before;
    let locker_threads = threads_of_this_process() - threads_before - waiters;
    let start = Instant::now();
    holder.release().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    let drain = start.elapsed().as_secs_f64();
    let grants = grants.lock().unwrap();
    if grants.len() != waiters || !grants.windows(2).all(|w| w[0] < w[1]) {
        fail("deep queue: turns not in serial order".into());
    }
    println!(
        "{:<34} {waiters} waiters served in serial order in {drain:.2} s ({:.0}/s); {clients} redis connections (pool 8 + 2), {locker_threads} background threads (target 3: heartbeat, notifier, withdrawals); {heap_per:.0} B live heap per waiting lock incl. its thread's (target <= 4096)",
        "5 deep queue",
        waiters as f64 / drain
    );
    drop(grants);
    drop(deep);

    // 6. Many held locks: 10,000 on distinct resources, 3 heartbeats.
    let held_n = if quick { 1000 } else { 10_000 };
    let expire = Duration::from_secs(3);
    let many = Locker::new(Some(&url)).unwrap();
    let start = Instant::now();
    let locks: Vec<_> = (0..held_n)
        .map(|i| {
            many.acquire(
                &format!("bench-held-{i}"),
                &Acquire::label("h").expire(expire),
            )
            .unwrap()
        })
        .collect();
    let took = start.elapsed().as_secs_f64();
    let evalshas = |c: &mut redis::Connection| {
        info_number(c, "commandstats", "cmdstat_evalsha", Some("calls"))
    };
    let commands =
        |c: &mut redis::Connection| info_number(c, "stats", "total_commands_processed", None);
    let evalsha_before = evalshas(&mut meter);
    let total_before = commands(&mut meter);
    // Three heartbeat intervals (a beat every third of the lease).
    let window = expire;
    thread::sleep(window);
    let evalsha = evalshas(&mut meter) - evalsha_before;
    let total = commands(&mut meter) - total_before;
    let lost = locks.iter().filter(|l| l.check().is_err()).count();
    if lost > 0 {
        fail(format!("{lost} held locks lost"));
    }
    let beats = window.as_secs_f64() / (expire.as_secs_f64() / 3.0);
    println!(
        "{:<34} {held_n} locks taken in {took:.2} s; over {beats:.0} beats: {evalsha:.0} EVALSHA sent ({:.1} per beat, {:.0}/s; target <= {held_n} x beats), {total:.0} commands counted by redis incl. those inside the scripts; {lost} lost",
        "6 many held locks",
        evalsha / beats,
        evalsha / window.as_secs_f64()
    );
    drop(locks);
    drop(many);

    // 7. Herd: P processes on one resource, P = 1, 4, 16, 64; the plain
    // lock, then a semaphore of 4 permits.
    herd(&url, rt_us, herd_window);
    herd_semaphore(&url, rt_us, herd_window);

    // 8. The heartbeat of 10,000 locks: one server and a cluster.
    beat(&url, quick);

    // 9. The price of durability: a master with one replica, replica
    // confirmation off and on.
    durability(quick);

    // 10. Short-lived lockers: a locker's whole life beside a connection's
    // floor, and `turn lock R -- true` beside flock(1).
    short_lived(&url, server.as_ref().and_then(|s| s.pid()), quick);

    // 11. All or none: acquire_all of k free resources, its round trips.
    all_or_none(&url, rt_us, quick);

    // turn 1.0 (Python), solo, when its virtualenv is there.
    // (made with pip like the tests' one unless TURN_BENCH_PYTHON names it)
    let python = match std::env::var("TURN_BENCH_PYTHON") {
        Ok(p) => std::path::PathBuf::from(p),
        Err(_) => std::panic::catch_unwind(support::python_with_turn_1_0).unwrap_or_default(),
    };
    if python.exists() {
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .unwrap_or("6379");
        let code = format!(
            "import time, turn\nl = turn.Locker(host='127.0.0.1', port={port}, db=0)\nn = 0\nt = time.time()\nwhile time.time() - t < {secs}:\n    with l.lock('bench-python', label='bench', expire=10, patience=60):\n        pass\n    n += 1\nprint(n / (time.time() - t))\n"
        );
        match Command::new(&python).arg("-c").arg(code).output() {
            Ok(o) if o.status.success() => {
                let rate: f64 = String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse()
                    .unwrap_or(0.0);
                println!(
                    "{:<34} {rate:>9.0} cycles/s = {:.3} x PING/s (turn 1.0, same server, same run)",
                    "turn 1.0 (Python) solo",
                    rate / ping
                );
            }
            _ => println!(
                "{:<34} could not run {}",
                "turn 1.0 (Python) solo",
                python.display()
            ),
        }
    } else {
        println!(
            "{:<34} skipped: no turn 1.0 virtualenv (set TURN_BENCH_PYTHON)",
            "turn 1.0 (Python) solo"
        );
    }

    if FAILED.load(Ordering::SeqCst) {
        drop(server);
        std::process::exit(1);
    }
}
