//! The turn benchmark: figures side by side with Redis's own round-trip rate
//! on the same server in the same run. `make bench` runs it; it starts its
//! own redis-server unless TURN_REDIS_URL is set. It exits non-zero only on
//! a correctness failure (overlap, lost lock, FIFO broken).
//!
//! Scenarios (see BENCHMARKS.md): solo cycles, beside the protocol floor
//! (the same Redis commands in two bare scripts); contended processes and
//! threads with hand-off latency; many resources; a deep queue of 1,000
//! waiting threads; 10,000 held locks and their heartbeat cost; turn 1.0
//! (Python) solo cycles when its virtualenv is there.

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
use turn::{Acquire, Locker, Wait};

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

fn cycle(locker: &Locker, resource: &str) -> Turn {
    let lock = locker
        .acquire(
            resource,
            &Acquire::label("bench").wait(Wait::For(Duration::from_secs(120))),
        )
        .unwrap_or_else(|e| panic!("acquire failed: {e}"));
    let acquired = now_ns();
    let serial = lock.serial();
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
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
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

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return worker(&args[1..]);
    }
    let quick = std::env::var_os("TURN_BENCH_QUICK").is_some();
    let secs = if quick { 0.3 } else { 2.0 };
    let server;
    let url = match std::env::var("TURN_REDIS_URL") {
        Ok(u) => u,
        Err(_) => {
            server = support::Redis::start();
            server.url()
        }
    };
    println!("turn {} benchmark against {url}", turn::VERSION);
    // The yardstick, scenario 1 and its protocol floor are measured in
    // alternating slices, so that a noisy neighbour weighs on all alike.
    let locker = Locker::new(Some(&url)).unwrap();
    let slices = if quick { 10 } else { 40 };
    let mut meter = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let (mut pings, mut ping_time, mut cycles, mut cycle_time) = (0usize, 0.0, 0usize, 0.0);
    let (mut bare, mut bare_time, mut script_us, mut bare_us) = (0usize, 0.0, 0.0, 0.0);
    let mut floor = Floor::new(&mut meter);
    for _ in 0..slices {
        let slice = secs / slices as f64;
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < slice {
            let _: String = redis::cmd("PING").query(&mut meter).unwrap();
            pings += 1;
        }
        ping_time += start.elapsed().as_secs_f64();
        let before = script_usec(&mut meter);
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < slice {
            cycle(&locker, "bench-solo");
            cycles += 1;
        }
        cycle_time += start.elapsed().as_secs_f64();
        script_us += script_usec(&mut meter) - before;
        let before = script_usec(&mut meter);
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < slice {
            floor.cycle(&mut meter);
            bare += 1;
        }
        bare_time += start.elapsed().as_secs_f64();
        bare_us += script_usec(&mut meter) - before;
    }
    let ping = pings as f64 / ping_time;
    let rt_us = 1e6 / ping;
    println!(
        "{:<34} {ping:>9.0} PING/s (one connection, sequential): round trip {rt_us:.1} µs",
        "yardstick"
    );

    // 1. Solo.
    let rate = cycles as f64 / cycle_time;
    println!(
        "{:<34} {rate:>9.0} cycles/s = {:.2} x PING/s (target >= 0.40, ceiling 0.5); Redis ran its scripts {:.1} µs per cycle",
        "1 solo (acquire + release)",
        rate / ping,
        script_us / cycles as f64
    );
    let bare = bare as f64 / bare_time;
    println!(
        "{:<34} {bare:>9.0} cycles/s = {:.2} x PING/s (the protocol's Redis commands in two bare scripts, no library); {:.1} µs per cycle",
        "  protocol floor",
        bare / ping,
        bare_us / bare_time / bare
    );

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
        "{:<34} {waiters} waiters served in serial order in {drain:.2} s ({:.0}/s); {clients} redis connections (pool 8 + 2), {locker_threads} background threads (target 2); {heap_per:.0} B live heap per waiting lock incl. its thread's (target <= 4096)",
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
        std::process::exit(1);
    }
}
