//! `turn`: inspect, follow, reset and lock turn queues in Redis.

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use turn::{Acquire, Cancel, ErrorKind, Locker, MinReplicas, Mode, Options, ResetOutcome, Wait};

/// `eprintln!` that never panics: a standard error nobody reads (a closed
/// pipe) is no reason to fail.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` for a command with nothing to clean up: a reader that went
/// away ends the tool quietly (see `output`), another write error is the
/// command's error.
macro_rules! out {
    ($($arg:tt)*) => {
        output::line(format_args!($($arg)*))?
    };
}

#[path = "turn/exporter.rs"]
mod exporter;
#[path = "turn/output.rs"]
mod output;
#[path = "turn/run_locked.rs"]
mod run_locked;
#[path = "turn/status.rs"]
mod status;
use output::clean;
use run_locked::run_locked;
use status::{print_status, status_of};

/// Exit statuses of `turn lock RESOURCE -- COMMAND`, shown in the help.
const LOCK_EXIT_STATUS: &str = "\
`turn lock RESOURCE... [--wait SECONDS] [--kill-on-loss] -- COMMAND [ARGS...]`
runs COMMAND while holding the lock (like flock(1)); on several resources,
all of them (taken in name order) or none. On one RESOURCE, `--permits N
[--weight W]` takes W (default 1) of a semaphore's N permits, `--shared` or
`--exclusive` a read-write lock. COMMAND finds TURN_LOCK_TOKEN (the fencing
token) and TURN_LOCK_SERIAL in its environment (for several resources, one
number each, space-separated, in their order). Its exit status:
  the command's       when it ran and kept the lock (128+N when signal N
                      killed it)
  76                  the lock was lost while the command ran (with or
                      without --kill-on-loss); the command's own status is
                      said on stderr
  75 (EX_TEMPFAIL)    the lock was not had within --wait (--wait 0: taken);
                      nothing was run
  126, 127            the command could not be run, or was not found
  128+N               signal N (Ctrl-C: 130) came while waiting; the ticket
                      was withdrawn and nothing was run
  2                   a usage error (an unknown option, a value that is not
                      a number, options that conflict or need another,
                      `--` with no COMMAND after it); nothing was locked
  1                   any other failure (Redis unreachable, a value out of
                      range, a queue of another kind or other permits)

Every command: 0 on success, 1 on failure (one line on stderr), 2 on a usage
error. A standard output whose reader went away (`turn status | head -1`)
ends the tool quietly by SIGPIPE, as it ends ls (the shell says 141).";

/// The metrics of `turn exporter`, shown in its help.
const EXPORTER_HELP: &str = "\
`turn exporter --listen 127.0.0.1:9808 [RESOURCE|GLOB...]` answers GET
/metrics in the Prometheus text format, reading Redis at each scrape. Per
queue, with the label resource:
  turn_queue_waiters, turn_queue_holders          live tickets
  turn_queue_oldest_waiter_age_seconds            0 when none waits
  turn_queue_longest_holder_age_seconds           0 when none holds
  turn_queue_least_lease_left_seconds             absent without a holder
  turn_queue_dispenser, turn_queue_indicator      the queue's serials
  turn_queue_info{kind=\"plain|semaphore|rwlock\"}  always 1
  turn_queue_permits                              semaphores only
And the exporter's own:
  turn_exporter_up                 0 when Redis could not be reached
  turn_exporter_errors_total{kind} errors reading Redis (kind=\"connection\")
  turn_exporter_scrape_duration_seconds, turn_exporter_scrapes_total
  turn_exporter_resources_matched, turn_exporter_resources_exported,
  turn_exporter_resources_capped (1: more matched than --max-resources),
  turn_exporter_max_resources
Redis unreachable does not end the exporter: the next scrape tries again.
SIGINT or SIGTERM ends it with status 0; an address it cannot listen on
ends it with status 1.";

/// Inspect, follow, reset and lock turn queues (FIFO locks kept in Redis).
#[derive(Parser)]
#[command(name = "turn", version, after_help = LOCK_EXIT_STATUS)]
struct Cli {
    /// Redis URL, redis://[user:password@]host:port/db (overrides --host,
    /// --port, --db and --password)
    #[arg(long, global = true, env = "TURN_REDIS_URL")]
    url: Option<String>,
    /// Redis host
    #[arg(long, global = true, default_value = "localhost")]
    host: String,
    /// Redis port
    #[arg(long, global = true, default_value_t = 6379)]
    port: u16,
    /// Redis database number
    #[arg(long, global = true, default_value_t = 0)]
    db: u32,
    /// Redis password
    #[arg(
        long,
        global = true,
        env = "TURN_REDIS_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// Key prefix of the queues
    #[arg(long, global = true, default_value = "turn")]
    prefix: String,
    /// CA certificate (PEM) to trust for a rediss:// URL
    #[arg(long, global = true)]
    tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mutual TLS
    #[arg(long, global = true)]
    tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's key (PEM)
    #[arg(long, global = true)]
    tls_key: Option<std::path::PathBuf>,
    /// Replicas that must have each grant, renewal and release (0: do not
    /// wait). Default: 1 on a redis+sentinel:// URL, 0 otherwise
    #[arg(long, global = true, value_name = "N")]
    min_replicas: Option<u32>,
    /// Seconds to wait for those replicas with --min-replicas (default 1;
    /// below the command timeout, 5)
    #[arg(long, global = true, value_name = "SECONDS")]
    replica_timeout: Option<f64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the queues of the given resources, or a summary of every queue
    Status {
        resources: Vec<String>,
        /// Print JSON instead of the table
        #[arg(long)]
        json: bool,
        /// Show each ticket: a holder's token, how long it has held and its
        /// lease left, a waiter's place and how long it has waited (every
        /// queue when no resource is given)
        #[arg(long, short = 'l')]
        long: bool,
        /// Print again every --interval seconds until interrupted: redrawn
        /// on a terminal, snapshots one after another (a blank line
        /// between) otherwise
        #[arg(long)]
        watch: bool,
        /// Seconds between prints with --watch
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Print the log lines of the given resources (of every queue when none
    /// is given) as they come, until interrupted
    Follow {
        resources: Vec<String>,
        /// One JSON object per line: resource, serial (when the line has
        /// one), event, label (when it has one) and the line's text
        #[arg(long)]
        json: bool,
    },
    /// Bump, then remove idle queues (every queue when none is given)
    Reset { resources: Vec<String> },
    /// Serve the queues' figures to Prometheus: `/metrics` on --listen, read
    /// from Redis at each scrape, until SIGINT or SIGTERM
    #[command(after_help = EXPORTER_HELP)]
    Exporter {
        /// Resources to export, by name or by glob (`*`, `?`, `[...]`:
        /// quote them from the shell); every queue when none is given
        #[arg(value_name = "RESOURCE|GLOB")]
        resources: Vec<String>,
        /// Address to listen on, HOST:PORT (port 0: a free port; the
        /// address is printed on standard error)
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// The most queues exported (the first by name); more are counted
        /// in turn_exporter_resources_matched and turn_exporter_resources_capped
        #[arg(long, value_name = "N", default_value_t = 1000)]
        max_resources: usize,
    },
    /// Run a command while holding the lock on RESOURCE (`turn lock RESOURCE
    /// -- COMMAND [ARGS...]`), on all of several resources or none, or a
    /// shared lock on one (--permits, --shared, --exclusive); without a
    /// command, take the lock on each resource (every queue when none is
    /// given) and hold them until interrupted
    #[command(after_help = LOCK_EXIT_STATUS)]
    Lock {
        resources: Vec<String>,
        /// Label of the locks
        #[arg(long, default_value = "lock tool")]
        label: String,
        /// Lease in seconds (renewed while held; passed this long after a crash)
        #[arg(long, default_value_t = 10.0)]
        expire: f64,
        /// Seconds to wait for the turn (0: take it only if free now); when
        /// not had in time, exit 75 and run nothing. Default: as long as it
        /// takes
        #[arg(long)]
        wait: Option<f64>,
        /// Send the command SIGTERM when the lock is lost while it runs
        #[arg(long)]
        kill_on_loss: bool,
        #[command(flatten)]
        mode: ModeArgs,
        /// The command to run while holding the lock, after `--`
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// Print the tool's completion script for a shell (`turn completions
    /// bash > /etc/bash_completion.d/turn`)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page turn(1), or write it and one page per
    /// subcommand (turn-lock(1), ...) into a directory
    Man {
        /// Write turn.1 and turn-SUBCOMMAND.1 into this directory
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

/// What `turn lock RESOURCE` asks of the queue: the plain lock unless one
/// of these is given. A queue's kind (and a semaphore's permits) is fixed
/// when it is made; an acquire of another kind is refused.
#[derive(clap::Args)]
struct ModeArgs {
    /// Take the lock as a semaphore of N permits: holders share RESOURCE
    /// while their weights add up to at most N, admitted in draw order
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..),
        conflicts_with_all = ["shared", "exclusive"]
    )]
    permits: Option<u32>,
    /// The permits this holder takes (needs --permits; default 1)
    #[arg(
        long,
        value_name = "W",
        value_parser = clap::value_parser!(u32).range(1..),
        requires = "permits"
    )]
    weight: Option<u32>,
    /// Take a read-write lock, shared: held beside other shared holders
    #[arg(long, conflicts_with = "exclusive")]
    shared: bool,
    /// Take a read-write lock, exclusive: held alone
    #[arg(long)]
    exclusive: bool,
}

impl ModeArgs {
    /// The mode asked for.
    fn mode(&self) -> Mode {
        match (self.permits, self.shared, self.exclusive) {
            (Some(permits), _, _) => Mode::Semaphore {
                permits,
                weight: self.weight.unwrap_or(1),
            },
            (None, true, _) => Mode::ReadWrite { exclusive: false },
            (None, false, true) => Mode::ReadWrite { exclusive: true },
            (None, false, false) => Mode::Plain,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Lock { command, .. } = &cli.command
        && command.is_empty()
        && std::env::args_os().skip(1).any(|a| a == "--")
    {
        // `turn lock R -- $CMD` with an empty $CMD: not turn 1.0's form,
        // which would hold R until interrupted.
        usage_error(
            "lock",
            "nothing after `--`: name the COMMAND to run while holding the lock \
             (`turn lock RESOURCE` without `--` holds it until interrupted)",
        );
    }
    match &cli.command {
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "turn", &mut out);
            return match output::raw(&String::from_utf8_lossy(&out)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say!("turn: {}", clean(e.message()));
                    ExitCode::FAILURE
                }
            };
        }
        Command::Man { dir } => {
            return match man(dir.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say!("turn: {}", clean(e.message()));
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say!("turn: {}", clean(e.message()));
            ExitCode::FAILURE
        }
    }
}

/// The manual pages, from the same definitions as `--help`: turn(1) on
/// standard output, or turn.1 and turn-SUBCOMMAND.1 written into `dir`.
fn man(dir: Option<&std::path::Path>) -> turn::Result<()> {
    let failed = |e: std::io::Error| invalid(&format!("cannot write the manual page: {e}"));
    match dir {
        Some(dir) => clap_mangen::generate_to(Cli::command(), dir).map_err(failed),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command().disable_help_subcommand(true))
                .render(&mut page)
                .map_err(failed)?;
            output::raw(&String::from_utf8_lossy(&page))
        }
    }
}

/// Ends the tool with clap's usage error (exit status 2) of `subcommand`.
fn usage_error(subcommand: &str, text: &str) -> ! {
    let mut cli = Cli::command();
    cli.build();
    let command = cli
        .find_subcommand_mut(subcommand)
        .expect("a subcommand of turn");
    command
        .error(clap::error::ErrorKind::InvalidValue, text)
        .exit()
}

/// Ends the tool with clap's usage error (exit status 2) of `turn` itself.
fn global_usage_error(text: &str) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, text)
        .exit()
}

/// Runs the subcommand; the exit status.
fn run(cli: Cli) -> turn::Result<u8> {
    // The command's own arguments are checked before Redis is reached.
    if let Command::Lock {
        resources,
        wait,
        kill_on_loss,
        command,
        mode,
        ..
    } = &cli.command
    {
        if !command.is_empty() && resources.is_empty() {
            usage_error("lock", "with a COMMAND, name at least one RESOURCE");
        }
        if mode.mode() != Mode::Plain && resources.len() != 1 {
            usage_error(
                "lock",
                "--permits, --shared and --exclusive take exactly one RESOURCE \
                 (several resources are taken as plain locks, all or none)",
            );
        }
        if let (Some(permits), Some(weight)) = (mode.permits, mode.weight)
            && weight > permits
        {
            return Err(invalid(&format!(
                "--weight ({weight}) must be at most --permits ({permits})"
            )));
        }
        if *kill_on_loss && command.is_empty() {
            usage_error("lock", "--kill-on-loss needs a COMMAND (after --)");
        }
        if wait.is_some_and(|w| !(0.0..=31_536_000.0).contains(&w)) {
            return Err(invalid("--wait must be between 0 and 31536000 seconds"));
        }
    }
    let url = cli.url.clone().unwrap_or_else(|| url_of(&cli));
    let tls = turn::Tls {
        ca_file: cli.tls_ca.clone(),
        cert_file: cli.tls_cert.clone(),
        key_file: cli.tls_key.clone(),
    };
    let options = Options {
        prefix: cli.prefix.clone(),
        tls: (tls != turn::Tls::default()).then_some(tls),
        min_replicas: min_replicas(&cli)?,
        ..Options::default()
    };
    if let Command::Exporter {
        resources,
        listen,
        max_resources,
    } = cli.command
    {
        // Redis is read at each scrape: it need not be up yet.
        let exporter = exporter::Exporter {
            url,
            options,
            selection: exporter::Selection::parse(&resources)?,
            max_resources,
        };
        return exporter.serve(&listen);
    }
    let locker = Locker::with_options(Some(&url), options)?;
    match cli.command {
        Command::Status {
            resources,
            json,
            long,
            watch,
            interval,
        } => {
            let form = status::Form { json, long };
            if !watch {
                return print_status(&locker, &resources, form).map(|()| 0);
            }
            if !interval.is_finite() {
                return Err(invalid(&format!(
                    "--interval must be a number of seconds, not {interval}"
                )));
            }
            let (_open, stop) = stops();
            let pause = Duration::from_secs_f64(interval.clamp(0.05, 3600.0));
            let terminal = std::io::stdout().is_terminal();
            let mut first = true;
            loop {
                if terminal {
                    output::raw("\x1b[2J\x1b[H")?;
                } else if !first {
                    out!("");
                }
                first = false;
                print_status(&locker, &resources, form)?;
                match stop.recv_timeout(pause) {
                    Ok(Stop::ReaderGone) => output::reader_gone(),
                    Ok(_) => return Ok(0),
                    Err(_) => {}
                }
            }
        }
        Command::Exporter { .. } => unreachable!("served above"),
        Command::Completions { .. } | Command::Man { .. } => unreachable!("done in main"),
        Command::Follow { resources, json } => follow(&locker, resources, json).map(|()| 0),
        Command::Reset { resources } => reset(&locker, resources).map(|()| 0),
        Command::Lock {
            resources,
            label,
            expire,
            wait,
            kill_on_loss,
            command,
            mode,
        } => {
            if !(0.1..=86_400.0).contains(&expire) {
                return Err(invalid("--expire must be between 0.1 and 86400 seconds"));
            }
            let mut request = Acquire::label(label)
                .expire(Duration::from_secs_f64(expire))
                .mode(mode.mode());
            if let Some(w) = wait {
                request = request.wait(if w == 0.0 {
                    Wait::TryOnce
                } else {
                    Wait::For(Duration::from_secs_f64(w))
                });
            }
            if command.is_empty() {
                return lock(&locker, resources, request);
            }
            run_locked(&locker, &resources, request, &command, kill_on_loss)
        }
    }
}

fn invalid(text: &str) -> turn::Error {
    turn::Error::new(ErrorKind::InvalidArgument, text)
}

/// --min-replicas and --replica-timeout; None: the deployment's default.
fn min_replicas(cli: &Cli) -> turn::Result<Option<MinReplicas>> {
    let Some(replicas) = cli.min_replicas else {
        return match cli.replica_timeout {
            Some(_) => global_usage_error("--replica-timeout needs --min-replicas"),
            None => Ok(None),
        };
    };
    let timeout = cli
        .replica_timeout
        .unwrap_or(turn::DEFAULT_REPLICA_TIMEOUT.as_secs_f64());
    if !(timeout > 0.0 && timeout <= 86_400.0) {
        return Err(invalid(
            "--replica-timeout must be more than 0 and at most 86400 seconds",
        ));
    }
    Ok(Some(MinReplicas::new(
        replicas,
        Duration::from_secs_f64(timeout),
    )))
}

/// Builds a URL from --host, --port, --db and --password.
fn url_of(cli: &Cli) -> String {
    let auth = match &cli.password {
        Some(p) => format!(":{}@", percent_encode(p)),
        None => String::new(),
    };
    format!("redis://{auth}{}:{}/{}", cli.host, cli.port, cli.db)
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Why a command that runs until stopped stops.
enum Stop {
    /// Ctrl-C.
    Interrupted,
    /// Standard output's reader went away (see `output::watch_reader`).
    ReaderGone,
    /// A write to standard output failed (kept by the writer).
    WriteFailed,
    /// `turn lock` without a command: every acquire failed, nothing is
    /// held or waited for.
    NothingLeft,
}

/// A channel that receives a `Stop` per Ctrl-C, and one when standard
/// output's reader goes away; with a sender for more reasons (a failed
/// write elsewhere), which also keeps the channel open.
fn stops() -> (mpsc::Sender<Stop>, mpsc::Receiver<Stop>) {
    let (tx, rx) = mpsc::channel();
    let interrupted = tx.clone();
    let _ = ctrlc::set_handler(move || {
        let _ = interrupted.send(Stop::Interrupted);
    });
    output::watch_reader(tx.clone(), Stop::ReaderGone);
    (tx, rx)
}

/// The named resources, or every queue when none is named.
fn chosen(locker: &Locker, resources: Vec<String>) -> turn::Result<Vec<String>> {
    if resources.is_empty() {
        locker.resources()
    } else {
        Ok(resources)
    }
}

fn follow(locker: &Locker, resources: Vec<String>, json: bool) -> turn::Result<()> {
    let resources = chosen(locker, resources)?;
    if resources.is_empty() {
        return Ok(());
    }
    for r in &resources {
        turn::validate_resource(r)?;
    }
    let (_open, stop) = stops();
    let mut unwritten = None;
    locker.follow(&resources, |line| {
        if let Some(line) = line
            && let Err(e) = if json {
                output::try_line(format_args!("{}", follow_json(&line)))
            } else {
                output::try_line(format_args!("{}", clean(&line.text)))
            }
        {
            unwritten = Some(e);
            return ControlFlow::Break(());
        }
        match stop.try_recv() {
            Ok(Stop::ReaderGone) => output::reader_gone(),
            Ok(_) => ControlFlow::Break(()),
            Err(_) => ControlFlow::Continue(()),
        }
    })?;
    unwritten.map_or(Ok(()), |e| Err(output::failed(e)))
}

/// A log line as one JSON object: `resource`, `serial` (when the line has
/// one), `event` (`assigned`, `started`, `granted`, `canceled`,
/// `completed`, `bumps`, `reset`; `message` for any other text, such as a
/// line announced by a program), `label` (of `assigned to "L"` and
/// `completed by "L"`) and `text`, the line as published.
fn follow_json(line: &turn::LogLine) -> String {
    let mut object = serde_json::Map::new();
    object.insert("resource".into(), line.resource.clone().into());
    let rest = line
        .text
        .strip_prefix(&line.resource)
        .and_then(|t| t.strip_prefix(": "))
        .unwrap_or(&line.text);
    let numbered = rest
        .split_once(' ')
        .and_then(|(n, tail)| Some((n.parse::<u64>().ok()?, tail)));
    let (event, label) = match numbered {
        Some((serial, tail)) => {
            object.insert("serial".into(), serial.into());
            let quoted = |head: &str| {
                tail.strip_prefix(head)
                    .and_then(|t| t.strip_prefix('"')?.strip_suffix('"'))
                    .map(str::to_string)
            };
            if let Some(label) = quoted("assigned to ") {
                ("assigned", Some(label))
            } else if let Some(label) = quoted("completed by ") {
                ("completed", Some(label))
            } else {
                match tail {
                    "started" | "granted" | "canceled" | "bumps" => (tail, None),
                    _ => ("message", None),
                }
            }
        }
        None if rest == "Reset tool bumps." => ("reset", None),
        None => ("message", None),
    };
    object.insert("event".into(), event.into());
    if let Some(label) = label {
        object.insert("label".into(), label.into());
    }
    object.insert("text".into(), line.text.clone().into());
    serde_json::Value::Object(object).to_string()
}

fn reset(locker: &Locker, resources: Vec<String>) -> turn::Result<()> {
    for r in chosen(locker, resources)? {
        let name = clean(&r);
        let Some(status) = status_of(locker, &r)? else {
            out!("No such queue: \"{name}\".");
            continue;
        };
        match locker.reset_queue(&r, Some(status.dispenser))? {
            ResetOutcome::Reset => {}
            ResetOutcome::NotFound => out!("No such queue: \"{name}\"."),
            ResetOutcome::Busy(n) => out!("\"{name}\" is in use by {n} user(s)."),
            ResetOutcome::Activity => out!("Activity detected for \"{name}\"."),
        }
    }
    Ok(())
}

/// `turn lock [RESOURCE...]`: takes each lock and holds them until Ctrl-C,
/// or until standard output fails (its reader went away: the tool then
/// ends by SIGPIPE, see `output`), and gives them back; the exit status.
/// When every acquire failed (each said on standard error) it ends at
/// once, with status 1.
fn lock(locker: &Locker, resources: Vec<String>, request: Acquire) -> turn::Result<u8> {
    let resources = chosen(locker, resources)?;
    if resources.is_empty() {
        return Ok(0);
    }
    for r in &resources {
        turn::validate_resource(r)?;
    }
    turn::validate_label(&request.label)?;
    let (stopper, stop) = stops();
    // Acquires that did not fail (waiting, holding, or canceled).
    let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(resources.len()));
    let nothing_left = stopper.clone();
    // The first failed write to standard output, by any thread.
    let unwritten = std::sync::Arc::new(std::sync::Mutex::new(None::<std::io::Error>));
    let write = {
        let unwritten = unwritten.clone();
        move |text: String| {
            if let Err(e) = output::try_line(format_args!("{text}")) {
                let mut first = unwritten.lock().unwrap_or_else(|e| e.into_inner());
                if first.is_none() {
                    *first = Some(e);
                    let _ = stopper.send(Stop::WriteFailed);
                }
            }
        }
    };
    let cancel = Cancel::new();
    let request = request.cancel(&cancel);
    let mut waiters = Vec::new();
    for r in resources {
        write(format!("{}: acquiring", clean(&r)));
        if unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            break;
        }
        let (locker, request, write) = (locker.clone(), request.clone(), write.clone());
        let (left, nothing_left) = (left.clone(), nothing_left.clone());
        waiters.push(std::thread::spawn(move || {
            let result = locker.acquire(&r, &request);
            if let Err(e) = &result
                && e.kind() != ErrorKind::Canceled
                && left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1
            {
                let _ = nothing_left.send(Stop::NothingLeft);
            }
            match &result {
                Ok(_) => write(format!("{}: locked", clean(&r))),
                Err(e) if e.kind() == ErrorKind::Canceled => {
                    write(format!("{}: canceled", clean(&r)))
                }
                // The message names the resource.
                Err(e) if e.kind() == ErrorKind::WrongKind => {
                    say!("turn: {}", clean(e.message()))
                }
                Err(e) => say!("turn: {}: {}", clean(&r), clean(e.message())),
            }
            result.ok()
        }));
    }
    let why = stop.recv();
    cancel.cancel();
    let mut failed = None;
    for w in waiters {
        let Ok(Some(lock)) = w.join() else { continue };
        let name = clean(lock.resource());
        match lock.release() {
            Ok(()) => write(format!("{name}: released")),
            Err(e) => {
                write(format!("{name}: lost"));
                failed = Some(e);
            }
        }
    }
    let unwritten = unwritten.lock().unwrap_or_else(|e| e.into_inner()).take();
    match (unwritten, why) {
        (Some(e), _) => Err(output::failed(e)),
        (None, Ok(Stop::ReaderGone)) => output::reader_gone(),
        (None, Ok(Stop::NothingLeft)) => Ok(1),
        (None, _) => failed.map_or(Ok(0), Err),
    }
}
