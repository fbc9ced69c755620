//! One connection to one Redis server: TCP, TLS or a Unix socket, speaking
//! RESP2 with the redis crate's parser, commands and scripts.
//!
//! Written here rather than taken from the redis crate (0.32), whose
//! synchronous `Connection` cannot survive a signal: a read interrupted by
//! one (EINTR: a host's signal handler installed without SA_RESTART, any
//! socket with a receive timeout even with SA_RESTART, and on Linux a stop
//! and continue of the process, SIGSTOP then SIGCONT, even in a thread that
//! blocks every signal) comes back as an error, and the crate then marks
//! the reply being read to be skipped: reading again would drop that reply
//! and hand over the next one (or wait for one that never comes). The
//! bytes themselves are not lost: its parser keeps what it has read.
//!
//! Here the socket itself retries: a read or a write interrupted by a
//! signal is made again at once, with what is left of the socket's
//! timeout, counted from when that read or write began (so a flood of
//! signals never stretches a timeout, and a wait that had the time it was
//! allowed gets one last look for what arrived meanwhile). No signal ever
//! reaches the parser or the TLS layer, no command is ever sent twice, and
//! a reply is read exactly once. The handshake (AUTH, SELECT) and pubsub go
//! through the same socket; a Redis Cluster's connections are these too
//! (see `redis::cluster::Connect` below).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{
    ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo, Msg, Parser, RedisError,
    RedisResult, ToRedisArgs, Value,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A connection to one server. Like the redis crate's `Connection`, whose
/// methods it has (those turn uses), and a `ConnectionLike`.
pub(crate) struct Link {
    stream: Stream,
    parser: Parser,
    db: i64,
    /// Replies still to come for requests whose reading failed (a timeout):
    /// read and dropped before the next reply, as the redis crate does.
    owed: usize,
    /// False once a write failed (the server may hold half a command), the
    /// server closed, or a reply could not be parsed: nothing more is sent.
    open: bool,
    /// In pubsub mode (see [`PubSub`]): no more commands.
    subscribed: bool,
}

/// A socket whose reads and writes retry an interrupted system call.
enum Stream {
    Tcp(Patient<TcpStream>),
    Unix(Patient<UnixStream>),
    Tls(Box<StreamOwned<ClientConnection, Patient<TcpStream>>>),
}

#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

/// What [`Patient`] needs of a socket: its timeouts.
trait Socket: Read + Write {
    fn timeout(&self, d: Direction) -> io::Result<Option<Duration>>;
    fn set_timeout(&self, d: Direction, t: Option<Duration>) -> io::Result<()>;
}

/// The same for each kind of stream, whose timeouts have the same names.
macro_rules! socket {
    ($stream:ty) => {
        impl Socket for $stream {
            fn timeout(&self, d: Direction) -> io::Result<Option<Duration>> {
                match d {
                    Direction::Read => self.read_timeout(),
                    Direction::Write => self.write_timeout(),
                }
            }

            fn set_timeout(&self, d: Direction, t: Option<Duration>) -> io::Result<()> {
                match d {
                    Direction::Read => self.set_read_timeout(t),
                    Direction::Write => self.set_write_timeout(t),
                }
            }
        }
    };
}

socket!(TcpStream);
socket!(UnixStream);

/// A socket that never answers `ErrorKind::Interrupted`.
struct Patient<S>(S);

impl<S: Socket> Read for Patient<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        patiently(&mut self.0, Direction::Read, |s| s.read(buf))
    }
}

impl<S: Socket> Write for Patient<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        patiently(&mut self.0, Direction::Write, |s| s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        patiently(&mut self.0, Direction::Write, |s| s.flush())
    }
}

/// Runs `op` (one read or one write) until it ends otherwise than
/// interrupted by a signal. The socket's timeout for `d` is the budget of
/// the whole call, counted from its start: after an interruption, `op` runs
/// again with the socket's timeout shortened to what is left (restored
/// after), and once nothing is left, one last time with the least timeout
/// (what arrived meanwhile is taken) before it answers `TimedOut`. Without
/// a timeout, `op` runs again as long as it takes, as it would have.
fn patiently<S: Socket, T>(
    s: &mut S,
    d: Direction,
    mut op: impl FnMut(&mut S) -> io::Result<T>,
) -> io::Result<T> {
    let start = Instant::now();
    // The socket's own timeout, once it has been shortened.
    let mut shortened: Option<Option<Duration>> = None;
    let mut last_look = false;
    let result = loop {
        match op(s) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other,
        }
        let configured = match shortened {
            Some(c) => c,
            None => match s.timeout(d) {
                Ok(c) => c,
                Err(e) => break Err(e),
            },
        };
        let Some(limit) = configured else {
            continue;
        };
        let mut left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            if last_look {
                break Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "timed out (the wait was interrupted by signals)",
                ));
            }
            last_look = true;
            left = Duration::from_micros(1);
        }
        if let Err(e) = s.set_timeout(d, Some(left)) {
            break Err(e);
        }
        shortened = Some(configured);
    };
    match shortened {
        Some(configured) => match (result, s.set_timeout(d, configured)) {
            (Ok(_), Err(e)) => Err(e),
            (result, _) => result,
        },
        None => result,
    }
}

impl Stream {
    fn socket(&self) -> &dyn Socket {
        match self {
            Stream::Tcp(s) => &s.0,
            Stream::Unix(s) => &s.0,
            Stream::Tls(s) => &s.sock.0,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// What is left of `deadline`; `TimedOut` once it passed.
fn left(deadline: Option<Instant>) -> io::Result<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection timed out",
                ))
            } else {
                Ok(Some(left))
            }
        }
    }
}

/// Runs `f` again while a signal interrupts it, until `deadline`.
fn again<T>(deadline: Option<Instant>, mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                left(deadline)?;
            }
            other => return other,
        }
    }
}

fn tcp(host: &str, port: u16, deadline: Option<Instant>) -> io::Result<TcpStream> {
    let addrs = again(deadline, || (host, port).to_socket_addrs())?;
    let mut last = None;
    for addr in addrs {
        // connect_timeout polls until the deadline through interruptions.
        let attempt = match left(deadline) {
            Ok(None) => again(None, || TcpStream::connect(addr)),
            Ok(Some(t)) => again(deadline, || TcpStream::connect_timeout(&addr, t)),
            Err(e) => Err(e),
        };
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

fn open(
    addr: &ConnectionAddr,
    tls: Option<&Arc<ClientConfig>>,
    deadline: Option<Instant>,
) -> RedisResult<Stream> {
    Ok(match addr {
        ConnectionAddr::Tcp(host, port) => Stream::Tcp(Patient(tcp(host, *port, deadline)?)),
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            ..
        } => {
            let config = match tls {
                Some(c) => c.clone(),
                None => super::tls::config(None, *insecure).map_err(|e| {
                    RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "invalid TLS settings",
                        e.message().to_string(),
                    ))
                })?,
            };
            let name = ServerName::try_from(host.as_str())
                .map_err(|e| {
                    RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "invalid TLS server name",
                        e.to_string(),
                    ))
                })?
                .to_owned();
            let conn = ClientConnection::new(config, name).map_err(|e| {
                RedisError::from((redis::ErrorKind::IoError, "TLS error", e.to_string()))
            })?;
            let sock = Patient(tcp(host, *port, deadline)?);
            Stream::Tls(Box::new(StreamOwned::new(conn, sock)))
        }
        ConnectionAddr::Unix(path) => {
            Stream::Unix(Patient(again(deadline, || UnixStream::connect(path))?))
        }
    })
}

impl Link {
    /// Connects to `info` (with `tls` for `rediss://`, else a default made
    /// now) and authenticates and selects the database, all within
    /// `timeout`. The connection has no timeouts afterwards: set them.
    pub fn connect(
        info: &ConnectionInfo,
        tls: Option<&Arc<ClientConfig>>,
        timeout: Option<Duration>,
    ) -> RedisResult<Link> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let stream = open(&info.addr, tls, deadline)?;
        let mut link = Link::new(stream, info.redis.db);
        // The TLS handshake happens at the first write, in there.
        let budget = left(deadline)?;
        link.set_read_timeout(budget)?;
        link.set_write_timeout(budget)?;
        link.handshake(&info.redis)?;
        link.set_read_timeout(None)?;
        link.set_write_timeout(None)?;
        Ok(link)
    }

    fn new(stream: Stream, db: i64) -> Link {
        Link {
            stream,
            parser: Parser::new(),
            db,
            owed: 0,
            open: true,
            subscribed: false,
        }
    }

    /// AUTH (again without the user name for a server older than ACLs,
    /// as the redis crate does), SELECT, and a PING: one round trip,
    /// which also proves the server answers.
    fn handshake(&mut self, redis: &redis::RedisConnectionInfo) -> RedisResult<()> {
        let mut with_user = true;
        loop {
            let mut pipe = redis::pipe();
            if let Some(password) = &redis.password {
                let auth = pipe.cmd("AUTH");
                if let (true, Some(user)) = (with_user, &redis.username) {
                    auth.arg(user);
                }
                auth.arg(password);
            }
            if redis.db != 0 {
                pipe.cmd("SELECT").arg(redis.db);
            }
            // Its answer does not matter (an ACL may refuse it).
            pipe.cmd("PING");
            let replies = self.req_packed_commands(&pipe.get_packed_pipeline(), 0, pipe.len())?;
            let mut replies = replies.into_iter();
            if redis.password.is_some() {
                match replies.next() {
                    Some(Value::Okay) => {}
                    Some(Value::ServerError(e))
                        if with_user
                            && redis.username.is_some()
                            && e.details().is_some_and(|d| {
                                d.contains("wrong number of arguments for 'auth' command")
                            }) =>
                    {
                        with_user = false;
                        continue;
                    }
                    _ => {
                        return Err(RedisError::from((
                            redis::ErrorKind::AuthenticationFailed,
                            "Password authentication failed",
                        )));
                    }
                }
            }
            if redis.db != 0
                && let Some(Value::ServerError(e)) = replies.next()
            {
                return Err(RedisError::from((
                    redis::ErrorKind::ResponseError,
                    "Redis server refused to switch database",
                    e.details().unwrap_or_default().to_string(),
                )));
            }
            return Ok(());
        }
    }

    /// Sets the timeout of each read (None: reads wait as long as it
    /// takes). Zero is an error.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> RedisResult<()> {
        Ok(self.stream.socket().set_timeout(Direction::Read, t)?)
    }

    /// Sets the timeout of each write (None: writes wait as long as it
    /// takes). Zero is an error.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> RedisResult<()> {
        Ok(self.stream.socket().set_timeout(Direction::Write, t)?)
    }

    fn usable(&self) -> RedisResult<()> {
        if !self.open {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection broke earlier",
            )
            .into());
        }
        Ok(())
    }

    /// Writes `bytes` whole, or closes: a server may hold half a command.
    fn write(&mut self, bytes: &[u8]) -> RedisResult<()> {
        self.usable()?;
        if let Err(e) = self
            .stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
        {
            self.open = false;
            return Err(e.into());
        }
        Ok(())
    }

    /// Reads one value. After a timeout the parser keeps what it has read:
    /// the next read goes on with the same value; any other failure (the
    /// server closed, a value that cannot be parsed) closes the link.
    fn value(&mut self) -> RedisResult<Value> {
        self.usable()?;
        let result = self.parser.parse_value(&mut self.stream);
        if let Err(e) = &result
            && !e.is_timeout()
        {
            self.open = false;
        }
        result
    }

    /// The next reply, after the replies owed (see [`Link::owed`]); when
    /// it cannot be read, it is owed in turn.
    fn reply(&mut self) -> RedisResult<Value> {
        let result = (|| {
            while self.owed > 0 {
                self.value()?;
                self.owed -= 1;
            }
            loop {
                match self.value()? {
                    Value::Push { .. } => {}
                    v => return Ok(v),
                }
            }
        })();
        if result.is_err() {
            self.owed += 1;
        }
        result
    }

    /// Sends a packed command (or several) without reading a reply.
    pub fn send_packed_command(&mut self, cmd: &[u8]) -> RedisResult<()> {
        self.commands_allowed()?;
        self.write(cmd)
    }

    /// Reads one reply (after [`Link::send_packed_command`]).
    pub fn recv_response(&mut self) -> RedisResult<Value> {
        self.commands_allowed()?;
        self.reply()
    }

    fn commands_allowed(&self) -> RedisResult<()> {
        if self.subscribed {
            return Err(RedisError::from((
                redis::ErrorKind::ClientError,
                "a connection used for pubsub takes no more commands",
            )));
        }
        Ok(())
    }

    /// This connection for pubsub, for good.
    pub fn as_pubsub(&mut self) -> PubSub<'_> {
        PubSub {
            link: self,
            waiting: VecDeque::new(),
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.send_packed_command(cmd)?;
        self.reply()
    }

    /// As the redis crate's: the replies from `offset` on, error replies
    /// among them as values; an error reply before `offset` (inside a
    /// transaction) is the error. A reply that cannot be read ends the
    /// call, and the ones after it are owed.
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.send_packed_command(cmd)?;
        let total = offset + count;
        let mut values = Vec::with_capacity(count);
        let mut first_err = None;
        for i in 0..total {
            let value = match self.reply() {
                Ok(v) => v,
                Err(e) => {
                    self.owed += total - i - 1;
                    return Err(e);
                }
            };
            if i >= offset {
                values.push(value);
            } else if let Value::ServerError(e) = value {
                first_err.get_or_insert_with(|| RedisError::from(e));
            }
        }
        first_err.map_or(Ok(values), Err)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}

/// The connections of a Redis Cluster (`ClusterClient::get_generic_connection`).
impl redis::cluster::Connect for Link {
    fn connect<T>(info: T, timeout: Option<Duration>) -> RedisResult<Self>
    where
        T: IntoConnectionInfo,
    {
        Link::connect(&info.into_connection_info()?, None, timeout)
    }

    fn send_packed_command(&mut self, cmd: &[u8]) -> RedisResult<()> {
        Link::send_packed_command(self, cmd)
    }

    fn set_write_timeout(&self, dur: Option<Duration>) -> RedisResult<()> {
        Link::set_write_timeout(self, dur)
    }

    fn set_read_timeout(&self, dur: Option<Duration>) -> RedisResult<()> {
        Link::set_read_timeout(self, dur)
    }

    fn recv_response(&mut self) -> RedisResult<Value> {
        Link::recv_response(self)
    }
}

/// A connection in pubsub mode (RESP2), as the redis crate's `PubSub`.
/// Once subscribed, the connection takes no more commands (it is not
/// unsubscribed on drop: it is dropped).
pub(crate) struct PubSub<'a> {
    link: &'a mut Link,
    /// Messages read while waiting for a confirmation.
    waiting: VecDeque<Msg>,
}

impl PubSub<'_> {
    /// Subscribes to `channels` (one or several); returns once the server
    /// confirmed each.
    pub fn subscribe<T: ToRedisArgs>(&mut self, channels: T) -> RedisResult<()> {
        self.change("SUBSCRIBE", channels)
    }

    /// Unsubscribes from `channels` (one or several); returns once the
    /// server confirmed each.
    pub fn unsubscribe<T: ToRedisArgs>(&mut self, channels: T) -> RedisResult<()> {
        self.change("UNSUBSCRIBE", channels)
    }

    fn change<T: ToRedisArgs>(&mut self, verb: &str, channels: T) -> RedisResult<()> {
        let mut cmd = redis::cmd(verb);
        cmd.arg(channels);
        // One confirmation per channel; no channel is nothing to do.
        let expected = cmd.args_iter().len().saturating_sub(1);
        if expected == 0 {
            return Ok(());
        }
        self.link.subscribed = true;
        self.link.write(&cmd.get_packed_command())?;
        let mut confirmed = 0;
        while confirmed < expected {
            // A confirmation not read leaves the connection out of step.
            let value = self.link.value().inspect_err(|_| self.link.open = false)?;
            if let Value::ServerError(e) = value {
                self.link.open = false;
                return Err(e.into());
            }
            match Msg::from_owned_value(value) {
                Some(msg) => self.waiting.push_back(msg),
                None => confirmed += 1,
            }
        }
        Ok(())
    }

    /// The next message; a timeout (see [`PubSub::set_read_timeout`]) is
    /// an error after which the next call goes on reading.
    pub fn get_message(&mut self) -> RedisResult<Msg> {
        if let Some(msg) = self.waiting.pop_front() {
            return Ok(msg);
        }
        loop {
            if let Some(msg) = Msg::from_owned_value(self.link.value()?) {
                return Ok(msg);
            }
        }
    }

    /// Sets how long [`PubSub::get_message`] waits (None: for ever).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> RedisResult<()> {
        self.link.set_read_timeout(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::thread;

    static HANDLED: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn on_signal(_: libc::c_int) {
        HANDLED.fetch_add(1, Ordering::Relaxed);
    }

    /// SIGUSR2 with a handler installed without SA_RESTART (nothing else in
    /// the tests sends it): each one interrupts a blocked read or write.
    fn install() {
        // SAFETY: a handler that only counts; a zeroed sigaction is valid.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut());
        }
    }

    /// Sends SIGUSR2 to the calling thread every 100 µs until dropped.
    struct Flood {
        stop: Arc<AtomicBool>,
        thread: Option<thread::JoinHandle<()>>,
    }

    fn flood() -> Flood {
        install();
        // SAFETY: pthread_self is always safe.
        let target = unsafe { libc::pthread_self() } as usize;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                // SAFETY: the target thread outlives the flood (joined on drop).
                unsafe { libc::pthread_kill(target as libc::pthread_t, libc::SIGUSR2) };
                thread::sleep(Duration::from_micros(100));
            }
        });
        Flood {
            stop,
            thread: Some(thread),
        }
    }

    impl Drop for Flood {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn pair() -> (Link, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Link::new(Stream::Unix(Patient(a)), 0), b)
    }

    #[test]
    fn replies_trickling_in_under_a_flood_of_signals_are_read_whole_and_in_order() {
        let (mut link, mut server) = pair();
        link.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let before = HANDLED.load(Ordering::Relaxed);
        let _flood = flood();
        let replies: &[u8] = b"+OK\r\n:42\r\n*2\r\n$5\r\nhello\r\n:-7\r\n-ERR nope\r\n";
        let feeder = thread::spawn(move || {
            let mut sink = [0u8; 256];
            let _ = server.read(&mut sink);
            for b in replies {
                thread::sleep(Duration::from_millis(2));
                server.write_all(&[*b]).unwrap();
            }
            server
        });
        let got = link
            .req_packed_commands(b"*1\r\n$4\r\nPING\r\n", 1, 3)
            .unwrap();
        assert_eq!(
            got,
            vec![
                Value::Int(42),
                Value::Array(vec![Value::BulkString(b"hello".to_vec()), Value::Int(-7)]),
                redis::parse_redis_value(b"-ERR nope\r\n").unwrap(),
            ]
        );
        let _server = feeder.join().unwrap();
        assert!(
            HANDLED.load(Ordering::Relaxed) > before + 10,
            "the reads were interrupted"
        );
        assert!(link.is_open() && link.owed == 0);
    }

    #[test]
    fn a_flood_of_signals_does_not_stretch_the_read_timeout() {
        let (mut link, _server) = pair();
        link.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let _flood = flood();
        let start = Instant::now();
        let e = link
            .req_packed_command(b"*1\r\n$4\r\nPING\r\n")
            .unwrap_err();
        let took = start.elapsed();
        assert!(e.is_timeout(), "{e}");
        assert!(took >= Duration::from_millis(290), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // The socket's own timeout is back.
        assert_eq!(
            link.stream.socket().timeout(Direction::Read).unwrap(),
            Some(Duration::from_millis(300))
        );
        // The reply that did not come is owed, and dropped when it comes.
        assert_eq!(link.owed, 1);
    }

    #[test]
    fn a_late_reply_is_skipped_and_the_next_one_read() {
        let (mut link, mut server) = pair();
        link.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert!(link.req_packed_command(b"*1\r\n$4\r\nPING\r\n").is_err());
        server.write_all(b"+PONG\r\n:1\r\n").unwrap();
        assert_eq!(
            link.req_packed_command(b"*1\r\n$4\r\nPING\r\n").unwrap(),
            Value::Int(1)
        );
    }

    #[test]
    fn messages_while_subscribing_are_kept_and_a_timeout_resumes_the_read() {
        let (mut link, mut server) = pair();
        link.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut pubsub = link.as_pubsub();
        server
            .write_all(
                b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n\
                  *3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n\
                  *3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
            )
            .unwrap();
        pubsub.subscribe(&["a", "b"]).unwrap();
        let msg = pubsub.get_message().unwrap();
        assert_eq!(
            (msg.get_channel_name(), msg.get_payload_bytes()),
            ("a", &b"hi"[..])
        );
        // Half a message, a timeout, then the rest.
        server.write_all(b"*3\r\n$7\r\nmessage\r\n$1\r\nb").unwrap();
        let e = pubsub.get_message().unwrap_err();
        assert!(e.is_timeout(), "{e}");
        server.write_all(b"\r\n$2\r\nho\r\n").unwrap();
        let msg = pubsub.get_message().unwrap();
        assert_eq!(
            (msg.get_channel_name(), msg.get_payload_bytes()),
            ("b", &b"ho"[..])
        );
        drop(pubsub);
        assert!(link.recv_response().is_err(), "no commands after pubsub");
    }
}
