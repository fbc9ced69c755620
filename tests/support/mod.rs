//! Test support: a throwaway `redis-server` on a free loopback port in a
//! temporary directory, killed on drop. `TURN_TEST_REDIS_SERVER` names
//! another binary.
#![allow(dead_code)]

pub mod cluster;
pub mod history;
pub mod load;
pub mod proxy;
pub mod sentinel;
pub mod turn_1_0;

use std::net::TcpListener;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Arguments before the options (a config file, say).
    first: Vec<String>,
    /// Further options; "{port}" stands for the port, "{dir}" for the dir.
    extra: Vec<String>,
    /// Speaks TLS only (on `port`): checked by a TCP connect.
    pub tls: bool,
}

fn server_binary() -> String {
    std::env::var("TURN_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Redis {
    /// Starts a server without persistence.
    pub fn start() -> Redis {
        Redis::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server that writes every change to its append-only file
    /// before answering (so a kill -9 loses nothing).
    pub fn start_persistent() -> Redis {
        Redis::start_with(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
    }

    /// Starts a server with extra arguments.
    pub fn start_with(extra: &[&str]) -> Redis {
        Redis::start_custom(&[], extra, false, |_, _| {})
    }

    /// Starts a server with arguments before and after the options, after
    /// `prepare` ran on the port and directory it will have (to write a
    /// config file, say).
    pub fn start_custom(
        first: &[&str],
        extra: &[&str],
        tls: bool,
        prepare: impl Fn(u16, &std::path::Path),
    ) -> Redis {
        for _ in 0..20 {
            let mut r = Redis {
                child: None,
                port: free_port(),
                dir: tempfile::tempdir().expect("temp dir"),
                first: first.iter().map(|s| s.to_string()).collect(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                tls,
            };
            prepare(r.port, r.dir.path());
            if r.spawn() {
                return r;
            }
        }
        panic!("could not start {} on a free port", server_binary());
    }

    fn fill(&self, arg: &str) -> String {
        arg.replace("{port}", &self.port.to_string())
            .replace("{dir}", &self.dir.path().display().to_string())
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new(server_binary())
            .args(self.first.iter().map(|a| self.fill(a)))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .args(self.extra.iter().map(|a| self.fill(a)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install it, or set TURN_TEST_REDIS_SERVER)");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                self.child = None;
                return false;
            }
            if self.ping() {
                return true;
            }
            sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    fn ping(&self) -> bool {
        if self.tls {
            return std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
        }
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            // A server that answers at all (even NOAUTH) is up.
            .map_or_else(
                |e| !e.is_io_error() && e.kind() != redis::ErrorKind::IoError,
                |_| true,
            )
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A plain connection for inspecting and tampering with keys.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A server without persistence that takes DEBUG commands (Redis 7
    /// wants them enabled; older servers know no such option and allow
    /// them), with `extra` arguments.
    pub fn start_debuggable(extra: &[&str]) -> Redis {
        let binary =
            std::env::var("TURN_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string());
        let version = std::process::Command::new(binary)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let major: u32 = version
            .split("v=")
            .nth(1)
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse().ok())
            .unwrap_or(7);
        let mut args = vec!["--save", "", "--appendonly", "no"];
        if major >= 7 {
            args.extend(["--enable-debug-command", "yes"]);
        }
        args.extend_from_slice(extra);
        Redis::start_with(&args)
    }

    /// Starts again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.spawn() {
                return;
            }
            sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The directory of the built library (target/<profile>), from the test
/// binary's own path (target/<profile>/deps/<test>).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf()
}

/// The chaos worker example (`cargo build --features cli --examples` builds it).
pub fn chaos_worker() -> PathBuf {
    let path = target_dir().join("examples/chaos_worker");
    assert!(
        path.exists(),
        "build the examples first (make test does: cargo build --features cli --examples)"
    );
    path
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Polls `f` until true or `limit` passed; returns whether it became true.
/// (Generous bounds only: these are behaviour tests, not timings.)
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        sleep(Duration::from_millis(10));
    }
    f()
}

/// Waits (at most `limit`) for `fd` to turn readable; true when it did.
pub fn readable_within(fd: RawFd, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis() as libc::c_int) };
        if n == 1 {
            assert_eq!(p.revents & (libc::POLLNVAL | libc::POLLERR), 0);
            return p.revents & libc::POLLIN != 0;
        }
        if n == 0 || left.is_zero() {
            return false;
        }
        // EINTR: poll again.
    }
}

/// Waits up to `ms` for `fd` to be readable (0: is it now).
pub fn readable(fd: BorrowedFd<'_>, ms: u64) -> bool {
    readable_within(fd.as_raw_fd(), Duration::from_millis(ms))
}

/// A number from the server's `INFO section`: the value of `field`, or with
/// `part` (`calls` of a `cmdstat_...` line, say) that part of it; None when
/// the server shows no such field (a command never run has no line).
pub fn info_number(
    c: &mut redis::Connection,
    section: &str,
    field: &str,
    part: Option<&str>,
) -> Option<u64> {
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    let value = info
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let value = match part {
        None => value,
        Some(part) => value
            .split(',')
            .find_map(|kv| kv.strip_prefix(part)?.strip_prefix('='))?,
    };
    value.trim().parse().ok()
}

/// True once `resource`'s queue holds `n` live tickets (within 30 s).
pub fn queued(l: &turn::Locker, resource: &str, n: usize) -> bool {
    eventually(Duration::from_secs(30), || {
        l.status(resource)
            .map(|s| s.tickets.len() == n)
            .unwrap_or(false)
    })
}

/// Sends a signal (such as "INT" or "KILL") to a process. After "STOP",
/// returns once every thread of the process is stopped: a stop is not
/// instant, and a thread still running could answer what the test sends
/// next.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
    if name == "STOP" {
        assert!(
            eventually(Duration::from_secs(30), || all_stopped(pid)),
            "process {pid} stopped"
        );
    }
}

/// True when no thread of `pid` can run: each is stopped (or the process
/// is gone).
fn all_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // The state follows the command's closing parenthesis.
        let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
        matches!(state, None | Some("T" | "t" | "Z" | "X"))
    })
}

/// Reads lines from a child's stdout on a thread, so tests can wait for one.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn new(out: impl std::io::Read + Send + 'static) -> Lines {
        use std::io::BufRead;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits (at most `limit`) for a line containing `text`.
    pub fn wait_for(&mut self, text: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        if self.seen.iter().any(|l| l.contains(text)) {
            return true;
        }
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(text);
                    self.seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Takes in the lines that came so far, without waiting.
    pub fn arrived(&mut self) -> &[String] {
        while let Ok(line) = self.rx.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Collects what remains until the stream ends (at most `limit`).
    pub fn rest(&mut self, limit: Duration) -> Vec<String> {
        let end = Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        self.seen.clone()
    }
}

/// Subscribers of a channel, per PUBSUB NUMSUB.
pub fn subscribers(r: &Redis, channel: &str) -> i64 {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(&mut r.conn())
        .unwrap();
    n
}

/// The Python of a virtualenv named `name` under the target directory with
/// `packages` installed (`python3 -m venv`, then pip from the package
/// index), made once per process and kept across runs.
pub fn python_venv(name: &str, packages: &[&str]) -> PathBuf {
    let dir = target_dir().join(name);
    let ready = dir.join("ready");
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let base = std::env::var("TURN_TEST_PYTHON3").unwrap_or_else(|_| "python3".into());
        let ok = Command::new(&base).args(["-m", "venv"]).arg(&dir).status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "{base} -m venv failed (on Debian: apt-get install python3-venv)"
        );
        let ok = Command::new(dir.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .args(packages)
            .status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "pip install {packages:?} failed"
        );
        std::fs::write(&ready, "").unwrap();
    }
    dir.join("bin/python")
}

/// The Python of a virtualenv with turn 1.0 installed.
pub fn python_with_turn_1_0() -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| python_venv("py-turn-1.0", &["turn==1.0", "redis==8.1.0"]))
        .clone()
}

/// Makes target/<profile>/libturn.so.MAJOR point at libturn.so (as `make
/// build` does), so that programs linked against the build tree find the
/// library by its soname.
pub fn soname_link() {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let link = target_dir().join(format!("libturn.so.{major}"));
    if std::fs::symlink_metadata(&link).is_err() {
        let _ = std::os::unix::fs::symlink("libturn.so", &link);
    }
}

/// CLOCK_MONOTONIC in ns: one clock for all processes on this machine (to
/// compare times taken in different processes).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A small xorshift generator (tests need no crate for this).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from TURN_SOAK_SEED when set, else from the clock; the seed
    /// is printed so that a failing schedule can be replayed.
    pub fn seeded(what: &str) -> Rng {
        let seed = std::env::var("TURN_SOAK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        println!("{what}: seed {seed} (TURN_SOAK_SEED replays it)");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A duration from `lo` to `hi`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }
}

/// How long a load scenario runs: TURN_SOAK_SECS when set (`make soak`),
/// else `default` (short, for `make test`).
pub fn soak_duration(default: Duration) -> Duration {
    std::env::var("TURN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(default, Duration::from_secs)
}
