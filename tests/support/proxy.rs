//! A TCP fault proxy between clients and a server on loopback, on std
//! threads. It listens on a free loopback port and forwards every
//! connection to a target port. At run time it can add latency with jitter
//! per direction (chunks wait in a queue per direction and connection, so
//! bytes keep their order), stall (hold every byte, keep the connections),
//! resume, cut every connection, refuse new connections (accept and
//! close at once) until told to accept again, and split a client's bytes
//! before a pattern, holding the rest until told (a request cut in two
//! by a slow link). Dropping it stops its threads
//! and closes every connection.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::Rng;

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server.
    Up = 0,
    /// From the server to the client.
    Down = 1,
}

#[derive(Debug, Clone, Copy, Default)]
struct Delay {
    base: Duration,
    jitter: Duration,
}

#[derive(Default)]
struct Settings {
    delay: [Delay; 2],
    stalled: bool,
    refusing: bool,
    /// Armed: the next client chunk with this pattern is split before it.
    split: Option<Vec<u8>>,
    /// A split happened; its second part is held while this is true.
    holding: bool,
}

struct Shared {
    target: u16,
    settings: Mutex<Settings>,
    stop: AtomicBool,
    conns: Mutex<Vec<Arc<Conn>>>,
    seeds: AtomicU64,
    /// Connections accepted and forwarded, refused, and chunks forwarded.
    accepted: AtomicU64,
    refused: AtomicU64,
    chunks: AtomicU64,
}

impl Shared {
    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One direction of one connection: chunks waiting to be written, in
/// order.
#[derive(Default)]
struct Pipe {
    state: Mutex<PipeState>,
    ready: Condvar,
}

#[derive(Default)]
struct PipeState {
    /// (arrival, jitter offset in ns from -jitter to +jitter, bytes, held
    /// by a split).
    chunks: VecDeque<(Instant, i64, Vec<u8>, bool)>,
    closed: bool,
}

impl Pipe {
    fn lock(&self) -> std::sync::MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, discard: bool) {
        let mut s = self.lock();
        s.closed = true;
        if discard {
            s.chunks.clear();
        }
        self.ready.notify_all();
    }
}

struct Conn {
    client: TcpStream,
    server: TcpStream,
    pipes: [Pipe; 2],
    open: AtomicBool,
}

impl Conn {
    fn close(&self, discard: bool) {
        self.open.store(false, Ordering::Release);
        for p in &self.pipes {
            p.close(discard);
        }
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

/// A running proxy; see the module's description.
pub struct Proxy {
    /// The loopback port clients connect to.
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding a free loopback port to `target` on loopback.
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            target,
            settings: Mutex::new(Settings::default()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            seeds: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1,
            ),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
        });
        let s = shared.clone();
        let acceptor = thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || accept_loop(listener, s))
            .unwrap();
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// A Redis URL that goes through the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Latency of each chunk, both ways: `base` ± `jitter` (uniform).
    pub fn latency(&self, base: Duration, jitter: Duration) {
        self.latency_one_way(Direction::Up, base, jitter);
        self.latency_one_way(Direction::Down, base, jitter);
    }

    /// Latency of one direction. It applies to the chunks already waiting
    /// too: a chunk leaves no earlier than its arrival plus the latency in
    /// force (order is always kept).
    pub fn latency_one_way(&self, dir: Direction, base: Duration, jitter: Duration) {
        self.shared.settings().delay[dir as usize] = Delay { base, jitter };
        self.wake_all();
    }

    /// Stops forwarding (bytes are read and held; connections stay).
    pub fn stall(&self) {
        self.shared.settings().stalled = true;
    }

    /// Forwards again, held bytes first.
    pub fn resume(&self) {
        self.shared.settings().stalled = false;
        self.wake_all();
    }

    /// Closes every connection now; bytes held are dropped.
    pub fn cut(&self) {
        let conns = std::mem::take(&mut *self.shared.conns.lock().unwrap());
        for c in conns {
            c.close(true);
        }
    }

    /// New connections are accepted and closed at once.
    pub fn refuse(&self) {
        self.shared.settings().refusing = true;
    }

    /// New connections are forwarded again.
    pub fn accept(&self) {
        self.shared.settings().refusing = false;
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        let mut conns = self.shared.conns.lock().unwrap();
        conns.retain(|c| c.open.load(Ordering::Acquire));
        conns.len()
    }

    /// Connections forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Chunks forwarded so far (both ways).
    pub fn chunks(&self) -> u64 {
        self.shared.chunks.load(Ordering::Relaxed)
    }

    /// Arms a split: the next chunk a client sends that holds `pattern` is
    /// cut before it; the part before goes on, the rest is held (with what
    /// follows on that connection) until [`Proxy::release_split`].
    pub fn split_before(&self, pattern: &[u8]) {
        let mut s = self.shared.settings();
        s.split = Some(pattern.to_vec());
        s.holding = false;
    }

    /// True once an armed split has cut a chunk (and holds its rest).
    pub fn split_happened(&self) -> bool {
        self.shared.settings().holding
    }

    /// Lets the held part of a split go on (and disarms a split that did
    /// not happen).
    pub fn release_split(&self) {
        let mut s = self.shared.settings();
        s.holding = false;
        s.split = None;
        drop(s);
        self.wake_all();
    }

    fn wake_all(&self) {
        for c in self.shared.conns.lock().unwrap().iter() {
            for p in &c.pipes {
                let _guard = p.lock();
                p.ready.notify_all();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wakes the accept loop, which then sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        self.cut();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.settings().refusing {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        let Ok(server) = TcpStream::connect(("127.0.0.1", shared.target)) else {
            drop(client);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        let conn = Arc::new(Conn {
            client,
            server,
            pipes: [Pipe::default(), Pipe::default()],
            open: AtomicBool::new(true),
        });
        {
            let mut conns = shared.conns.lock().unwrap();
            conns.retain(|c| c.open.load(Ordering::Acquire));
            conns.push(conn.clone());
        }
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        for (dir, from, to) in [(Direction::Up, c2, s3), (Direction::Down, s2, c3)] {
            let seed = shared
                .seeds
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
                | 1;
            let (s, c) = (shared.clone(), conn.clone());
            thread::spawn(move || reader(s, c, dir, from, Rng(seed)));
            let (s, c) = (shared.clone(), conn.clone());
            thread::spawn(move || writer(s, c, dir, to));
        }
    }
}

/// Reads from one side into the pipe of `dir`.
fn reader(shared: Arc<Shared>, conn: Arc<Conn>, dir: Direction, mut from: TcpStream, mut rng: Rng) {
    let pipe = &conn.pipes[dir as usize];
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let jitter = shared.settings().delay[dir as usize].jitter.as_nanos() as i64;
                let offset = if jitter > 0 {
                    rng.below(2 * jitter as u64 + 1) as i64 - jitter
                } else {
                    0
                };
                let data = &buf[..n];
                let at = if dir == Direction::Up {
                    let mut set = shared.settings();
                    let at = set
                        .split
                        .as_ref()
                        .and_then(|p| data.windows(p.len()).position(|w| w == p.as_slice()));
                    if at.is_some() {
                        set.split = None;
                        set.holding = true;
                    }
                    at
                } else {
                    None
                };
                let mut s = pipe.lock();
                if s.closed {
                    break;
                }
                let now = Instant::now();
                match at {
                    Some(at) => {
                        s.chunks
                            .push_back((now, offset, data[..at].to_vec(), false));
                        s.chunks.push_back((now, offset, data[at..].to_vec(), true));
                    }
                    None => s.chunks.push_back((now, offset, data.to_vec(), false)),
                }
                pipe.ready.notify_all();
            }
        }
    }
    // Flush what is queued, then close (the writer does).
    pipe.close(false);
}

/// When a chunk that arrived at `arrival` with jitter `offset` (ns) may
/// leave, under latency `base`.
fn due_at(arrival: Instant, offset: i64, base: Duration) -> Instant {
    let due = arrival + base;
    if offset >= 0 {
        due + Duration::from_nanos(offset as u64)
    } else {
        due.checked_sub(Duration::from_nanos(offset.unsigned_abs()))
            .unwrap_or(due)
    }
}

/// Writes the chunks of `dir` to the other side when they are due and the
/// proxy is not stalled; closes the connection when its pipe is closed and
/// empty, or a write fails.
fn writer(shared: Arc<Shared>, conn: Arc<Conn>, dir: Direction, mut to: TcpStream) {
    let pipe = &conn.pipes[dir as usize];
    let mut last_due = Instant::now();
    loop {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let (stalled, holding, base) = {
            let s = shared.settings();
            (s.stalled, s.holding, s.delay[dir as usize].base)
        };
        let mut s = pipe.lock();
        let Some((arrival, offset, _, held)) = s.chunks.front() else {
            if s.closed {
                break;
            }
            let _ = pipe.ready.wait_timeout(s, Duration::from_millis(50));
            continue;
        };
        if stalled || (*held && holding) {
            drop(s);
            thread::sleep(Duration::from_millis(2));
            continue;
        }
        let due = due_at(*arrival, *offset, base).max(last_due);
        let now = Instant::now();
        if due > now {
            let _ = pipe
                .ready
                .wait_timeout(s, (due - now).min(Duration::from_millis(50)));
            continue;
        }
        // Every chunk due by now goes in one write.
        let (_, _, mut bytes, _) = s.chunks.pop_front().unwrap();
        last_due = due;
        let mut n = 1;
        while let Some((arrival, offset, _, held)) = s.chunks.front() {
            let next = due_at(*arrival, *offset, base).max(last_due);
            if next > now || (*held && holding) {
                break;
            }
            last_due = next;
            bytes.extend_from_slice(&s.chunks.pop_front().unwrap().2);
            n += 1;
        }
        drop(s);
        if to.write_all(&bytes).is_err() {
            break;
        }
        shared.chunks.fetch_add(n, Ordering::Relaxed);
    }
    conn.close(true);
}
