//! The `turn` command-line tool against its own redis-server.

use crate::support;

use std::io::{BufRead, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use redis::Commands;
use support::{Lines, Redis, eventually, queued, signal, subscribers};
use turn::{Acquire, Locker};

fn turn_cmd(r: &Redis, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_turn"));
    c.env_remove("TURN_REDIS_URL")
        .arg("--url")
        .arg(r.url())
        .args(args);
    c
}

fn turn(r: &Redis, args: &[&str]) -> Output {
    turn_cmd(r, args).output().expect("turn runs")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "turn failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Each object of the JSON array `list` with only the named keys it has.
fn fields(list: &serde_json::Value, keys: &[&str]) -> serde_json::Value {
    let picked = list.as_array().unwrap().iter().map(|object| {
        let object = object.as_object().unwrap();
        let kept = keys
            .iter()
            .filter_map(|k| object.get(*k).map(|v| (k.to_string(), v.clone())));
        serde_json::Value::Object(kept.collect())
    });
    serde_json::Value::Array(picked.collect())
}

#[test]
fn status_prints_turn_1_0_layout() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l
        .lock("my_valuable_resource", "This shows up in messages.")
        .unwrap();
    let _other = l.lock("other", "x").unwrap();
    let out = stdout(&turn(
        &r,
        &["status", "my_valuable_resource", "missing", "other"],
    ));
    assert_eq!(
        out,
        "my_valuable_resource                                       1\n\
         ------------------------------------------------------------\n\
         This shows up in messages.                                 1\n\
         \n\
         other                                                      1\n\
         ------------------------------------------------------------\n\
         x                                                          1\n"
    );
    held.release().unwrap();
    let out = stdout(&turn(&r, &["status"]));
    assert_eq!(
        out,
        "Resource                                          Queue size\n\
         ------------------------------------------------------------\n\
         other                                                      1\n\
         my_valuable_resource                                       0\n"
    );
}

#[test]
fn status_json_and_exact_names() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let _a = l.lock("a*", "star").unwrap();
    let _b = l.lock("ab", "plain").unwrap();
    let out = stdout(&turn(&r, &["status", "--json", "a*"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        1,
        "only the queue named a*: {out}"
    );
    assert_eq!(v[0]["resource"], "a*");
    assert_eq!(v[0]["tickets"][0]["label"], "star");
    assert_eq!(v[0]["tickets"][0]["serial"], 1);
    let out = stdout(&turn(&r, &["status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[test]
fn control_characters_are_escaped() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let _held = l.lock("r", "evil\x1b[2J\nlabel").unwrap();
    let out = stdout(&turn(&r, &["status", "r"]));
    assert!(out.contains("evil\\u{1b}[2J\\nlabel"), "{out}");
    assert!(!out.contains('\x1b'));
}

#[test]
fn reset_reports_like_turn_1_0() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    l.lock("idle", "x").unwrap().release().unwrap();
    let held = l.lock("busy", "x").unwrap();
    let out = stdout(&turn(&r, &["reset", "idle", "busy", "nope"]));
    assert_eq!(
        out,
        "\"busy\" is in use by 1 user(s).\nNo such queue: \"nope\".\n"
    );
    let idle: Option<String> = r.conn().get("turn:idle:dispenser").unwrap();
    assert_eq!(idle, None);
    held.release().unwrap();
    let out = stdout(&turn(&r, &["reset"]));
    assert_eq!(out, "");
    assert_eq!(l.resources().unwrap(), Vec::<String>::new());
}

#[test]
fn follow_prints_log_lines_until_interrupted() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let mut child = turn_cmd(&r, &["follow", "res"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::new(child.stdout.take().unwrap());
    assert!(eventually(Duration::from_secs(10), || subscribers(
        &r,
        "turn:res:external"
    ) == 1));
    l.lock("res", "lbl").unwrap().release().unwrap();
    assert!(lines.wait_for("granted", Duration::from_secs(10)));
    signal(child.id(), "INT");
    assert!(child.wait().unwrap().success(), "Ctrl-C exits 0");
    assert_eq!(
        lines.rest(Duration::from_secs(2)),
        [
            "res: 1 assigned to \"lbl\"",
            "res: 1 started",
            "res: 1 completed by \"lbl\"",
            "res: 2 granted",
        ]
    );
}

#[test]
fn lock_holds_until_interrupted_and_cancels_waits() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let taken = l.lock("taken", "someone").unwrap();
    let mut child = turn_cmd(&r, &["lock", "free", "taken"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::new(child.stdout.take().unwrap());
    assert!(lines.wait_for("free: locked", Duration::from_secs(10)));
    let s = l.status("free").unwrap();
    assert_eq!(s.tickets[0].label, "lock tool");
    let e = l
        .acquire("free", &Acquire::label("x").wait(turn::Wait::TryOnce))
        .unwrap_err();
    assert_eq!(e.kind(), turn::ErrorKind::WouldBlock);
    assert!(queued(&l, "taken", 2));
    signal(child.id(), "INT");
    assert!(child.wait().unwrap().success());
    let mut out = lines.rest(Duration::from_secs(2));
    out.sort();
    assert_eq!(
        out,
        [
            "free: acquiring",
            "free: locked",
            "free: released",
            "taken: acquiring",
            "taken: canceled"
        ]
    );
    assert_eq!(
        l.status("taken").unwrap().tickets.len(),
        1,
        "the canceled ticket left no trace"
    );
    taken.release().unwrap();
    l.lock("free", "after").unwrap().release().unwrap();
}

#[test]
fn unreachable_redis_is_a_one_line_error() {
    let mut r = Redis::start();
    r.kill();
    let o = turn(&r, &["status"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("turn: "), "{err}");
}

#[test]
fn host_port_and_password_options_make_the_url() {
    let r = Redis::start_with(&["--save", "", "--requirepass", "p@ss word"]);
    let port = r.port.to_string();
    let run = |pw: &str| {
        Command::new(env!("CARGO_BIN_EXE_turn"))
            .env_remove("TURN_REDIS_URL")
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--password",
                pw,
                "status",
            ])
            .output()
            .unwrap()
    };
    assert!(run("p@ss word").status.success());
    let bad = run("wrong");
    assert!(!bad.status.success());
    assert!(!String::from_utf8_lossy(&bad.stderr).contains("wrong"));
}

/// Runs `turn ARGS` whose command prints "started" once it runs under the
/// lock; returns when it did, with the tool's stdout and stderr lines.
fn started(r: &Redis, args: &[&str]) -> (std::process::Child, Lines, Lines) {
    let mut child = turn_cmd(r, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Lines::new(child.stdout.take().unwrap());
    let err = Lines::new(child.stderr.take().unwrap());
    assert!(out.wait_for("started", Duration::from_secs(10)));
    (child, out, err)
}

/// Deletes the presence key of the ticket holding `resource`.
fn delete_holder_key(r: &Redis, l: &Locker, resource: &str) {
    let serial = l.status(resource).unwrap().tickets[0].serial;
    let n: i64 = r
        .conn()
        .del(format!("turn:{resource}:serial:{serial}"))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn lock_command_exit_status_is_the_command_s() {
    let r = Redis::start();
    let o = turn(&r, &["lock", "job", "--", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    // Killed by a signal: 128 + its number, as shells say.
    let o = turn(&r, &["lock", "job", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.status.code(), Some(128 + 15));
    let o = turn(&r, &["lock", "job", "--", "true"]);
    assert_eq!(o.status.code(), Some(0));
    let o = turn(&r, &["lock", "job", "--", "/nonexistent/command"]);
    assert_eq!(o.status.code(), Some(127));
    // Each run released its lock: the queue is idle.
    let l = Locker::new(Some(&r.url())).unwrap();
    assert!(l.status("job").unwrap().tickets.is_empty());
}

#[test]
fn lock_command_finds_its_fencing_token_and_serial_in_the_environment() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    l.lock("env", "before").unwrap().release().unwrap();
    let out = stdout(&turn(
        &r,
        &[
            "lock",
            "env",
            "--label",
            "env job",
            "--",
            "sh",
            "-c",
            "echo $TURN_LOCK_TOKEN $TURN_LOCK_SERIAL",
        ],
    ));
    let words: Vec<u64> = out.split_whitespace().map(|w| w.parse().unwrap()).collect();
    assert_eq!(words.len(), 2, "{out}");
    assert_eq!(words[1], 2, "the second ticket of the queue");
    let after = l.lock("env", "after").unwrap();
    assert!(
        words[0] < after.token(),
        "token {} not below the next lock's",
        words[0]
    );
    assert_eq!(after.token() - after.serial(), words[0] - words[1]);
}

#[test]
fn lock_wait_0_against_a_held_lock_exits_75_and_runs_nothing() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l.lock("busy", "holder").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let o = turn(
        &r,
        &["lock", "busy", "--wait", "0", "--", "sh", "-c", &touch],
    );
    assert_eq!(o.status.code(), Some(75));
    assert!(!marker.exists(), "the command ran");
    assert!(String::from_utf8_lossy(&o.stderr).contains("busy: not locked"));
    let o = turn(
        &r,
        &["lock", "busy", "--wait", "0.3", "--", "sh", "-c", &touch],
    );
    assert_eq!(o.status.code(), Some(75));
    assert!(!marker.exists(), "the command ran");
    assert_eq!(l.status("busy").unwrap().tickets.len(), 1, "tickets left");
    held.release().unwrap();
    let o = turn(
        &r,
        &["lock", "busy", "--wait", "0", "--", "sh", "-c", &touch],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(marker.exists());
}

#[test]
fn lock_command_hears_at_once_when_the_lock_is_lost_while_it_runs() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let script = format!(
        "echo started; while [ ! -e {} ]; do sleep 0.05; done; echo finished",
        go.display()
    );
    let (mut child, mut out, mut err) = started(
        &r,
        &["lock", "lose", "--expire", "5", "--", "sh", "-c", &script],
    );
    delete_holder_key(&r, &l, "lose");
    assert!(
        err.wait_for(
            "lock was lost while the command ran",
            Duration::from_secs(30)
        ),
        "{:?}",
        err.seen
    );
    // Without --kill-on-loss the command runs on to its end; its status
    // 0 becomes 76, the lock having been lost meanwhile.
    std::fs::write(&go, "").unwrap();
    assert!(out.wait_for("finished", Duration::from_secs(10)));
    assert_eq!(child.wait().unwrap().code(), Some(76));
    let said = err.rest(Duration::from_secs(2)).join("\n");
    assert!(
        said.contains("exit status 76 (the lock was lost); the command's was 0"),
        "{said}"
    );
}

#[test]
fn lock_kill_on_loss_sends_the_command_sigterm() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let (mut child, _out, mut err) = started(
        &r,
        &[
            "lock",
            "kill",
            "--expire",
            "5",
            "--kill-on-loss",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 60",
        ],
    );
    delete_holder_key(&r, &l, "kill");
    // The lock was lost: 76, whatever the command's status (SIGTERM's).
    assert_eq!(child.wait().unwrap().code(), Some(76));
    let said = err.rest(Duration::from_secs(2)).join("\n");
    assert!(
        said.contains("lock was lost while the command ran"),
        "{said}"
    );
    assert!(said.contains("sending SIGTERM"), "{said}");
}

#[test]
fn lock_shows_its_place_while_waiting_and_ctrl_c_withdraws_the_ticket() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l.lock("queue", "holder").unwrap();
    // A second waiter ahead of the tool.
    let cancel = turn::Cancel::new();
    let waiter = {
        let (l, request) = (l.clone(), Acquire::label("waiter").cancel(&cancel));
        std::thread::spawn(move || l.acquire("queue", &request).map(drop))
    };
    assert!(queued(&l, "queue", 2));
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let mut child = turn_cmd(&r, &["lock", "queue", "--", "sh", "-c", &touch])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = Lines::new(child.stderr.take().unwrap());
    assert!(
        err.wait_for("queue: waiting, 2 ahead", Duration::from_secs(10)),
        "{:?}",
        err.seen
    );
    cancel.cancel();
    assert_eq!(
        waiter.join().unwrap().unwrap_err().kind(),
        turn::ErrorKind::Canceled
    );
    assert!(
        err.wait_for("queue: waiting, 1 ahead", Duration::from_secs(10)),
        "{:?}",
        err.seen
    );
    signal(child.id(), "INT");
    assert_eq!(child.wait().unwrap().code(), Some(128 + 2));
    assert!(!marker.exists(), "the command ran");
    let s = l.status("queue").unwrap();
    assert_eq!(s.tickets.len(), 1, "the tool's ticket was left: {s:?}");
    assert_eq!(s.dispenser, 3, "the tool had drawn ticket 3");
    held.release().unwrap();
    // The queue moves on past the withdrawn tickets.
    l.lock("queue", "after").unwrap().release().unwrap();
}

#[test]
fn a_watch_interval_that_is_not_a_number_is_refused() {
    let r = Redis::start();
    for bad in ["nan", "inf"] {
        let out = turn(&r, &["status", "--watch", "--interval", bad, "x"]);
        assert_eq!(out.status.code(), Some(1), "{bad}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--interval"),
            "{out:?}"
        );
    }
}

#[test]
fn min_replicas_is_passed_on_and_bad_values_are_refused() {
    let r = Redis::start();
    // One server has no replica: 0 turns replica confirmation off.
    let out = stdout(&turn(
        &r,
        &["--min-replicas", "0", "lock", "job", "--", "true"],
    ));
    assert_eq!(out, "");
    let refused = |args: &[&str], says: &str| {
        let o = turn(&r, &[args, &["status"]].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("turn: ") && err.contains(says),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    };
    for bad in ["0", "nan", "-1", "1e300"] {
        let timeout = format!("--replica-timeout={bad}");
        refused(&["--min-replicas", "1", &timeout], "--replica-timeout");
    }
    // Needing another option: a usage error.
    let o = turn(&r, &["--replica-timeout", "0.5", "status"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--min-replicas"),
        "{o:?}"
    );
    // Not below the command timeout (5 s): the library says so.
    refused(
        &["--min-replicas", "1", "--replica-timeout", "5"],
        "command timeout",
    );
    // Not a count: clap's usage error.
    let o = turn(&r, &["--min-replicas", "many", "status"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

/// Waits at most `limit` for `child` to exit (killing it and failing the
/// test past that); its exit status and what it said on stderr.
fn finish(mut child: std::process::Child, limit: Duration) -> (ExitStatus, String) {
    let mut stderr = child.stderr.take().expect("stderr piped");
    let said = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let end = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("turn still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, said.join().unwrap())
}

/// The tool ended as `ls` does when its reader went away: killed by
/// SIGPIPE, silently (no panic message, no status 101).
fn ended_quietly_by_sigpipe(what: &str, status: ExitStatus, stderr: &str) {
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_ne!(status.code(), Some(101), "{what}: a panic");
    assert_eq!(
        status.signal(),
        Some(libc::SIGPIPE),
        "{what}: {status:?}, stderr {stderr:?}"
    );
    assert_eq!(stderr, "", "{what}");
}

/// `turn ARGS` with standard output a pipe whose reader is gone already.
fn with_closed_stdout(r: &Redis, args: &[&str]) -> std::process::Child {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    turn_cmd(r, args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_closed_standard_output_ends_every_command_quietly() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    // Several queues: every command below writes more than one line.
    let held: Vec<_> = (0..5)
        .map(|i| l.lock(&format!("q{i}"), "held").unwrap())
        .collect();
    l.lock("idle", "x").unwrap().release().unwrap();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["status", "q0", "q1", "q2"],
        &["status", "--json", "q0", "q1"],
        &["reset", "q0", "q1", "nope"],
        &["status", "--watch", "--interval", "0.05"],
        &["follow", "q0"],
        &["lock", "free", "q0"],
    ] {
        let child = with_closed_stdout(&r, args);
        let (status, stderr) = finish(child, Duration::from_secs(20));
        ended_quietly_by_sigpipe(&format!("turn {args:?}"), status, &stderr);
    }
    // `turn lock free q0` gave back what it took, and left no ticket.
    assert!(l.status("free").map_or(true, |s| s.tickets.is_empty()));
    assert_eq!(l.status("q0").unwrap().tickets.len(), 1);
    drop(held);
}

#[test]
fn turn_status_piped_into_head_1_exits_quietly() {
    let r = Redis::start();
    // A queue whose status is more than a pipe holds (64 KiB; 160 KB of
    // labels): the tool is still writing when the reader goes, as with
    // `turn status R | head -1`.
    let mut c = r.conn();
    let label = "x".repeat(4000);
    let _: () = c.set("turn:big:dispenser", 40).unwrap();
    let _: () = c.set("turn:big:indicator", 1).unwrap();
    for n in 1..=40 {
        let _: () = c.set(format!("turn:big:serial:{n}"), &label).unwrap();
    }
    for args in [&["status", "big"][..], &["status", "--json", "big"]] {
        let mut child = turn_cmd(&r, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The start only (the JSON is one long line), as `head -c 1024`.
        let mut out = child.stdout.take().unwrap();
        let mut start = [0u8; 1024];
        out.read_exact(&mut start).unwrap();
        assert!(start.starts_with(b"big") || start.starts_with(b"["));
        drop(out);
        let (status, stderr) = finish(child, Duration::from_secs(20));
        ended_quietly_by_sigpipe(&format!("turn {args:?} | head"), status, &stderr);
    }
}

#[test]
fn follow_and_lock_end_when_their_reader_goes_away() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    // `turn follow res | head -1`: it ends when head does, not at the next
    // line (which never comes).
    let mut child = turn_cmd(&r, &["follow", "res"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    assert!(eventually(Duration::from_secs(10), || subscribers(
        &r,
        "turn:res:external"
    ) == 1));
    l.lock("res", "lbl").unwrap().release().unwrap();
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first, "res: 1 assigned to \"lbl\"\n");
    drop(out);
    let (status, stderr) = finish(child, Duration::from_secs(10));
    ended_quietly_by_sigpipe("turn follow | head -1", status, &stderr);

    // `turn lock free | head -2`: the lock is given back when head ends.
    let mut child = turn_cmd(&r, &["lock", "free"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    out.read_line(&mut lines).unwrap();
    out.read_line(&mut lines).unwrap();
    assert_eq!(lines, "free: acquiring\nfree: locked\n");
    assert_eq!(l.status("free").unwrap().tickets.len(), 1);
    drop(out);
    let (status, stderr) = finish(child, Duration::from_secs(10));
    ended_quietly_by_sigpipe("turn lock free | head -2", status, &stderr);
    assert!(l.status("free").unwrap().tickets.is_empty(), "released");
    l.acquire("free", &Acquire::label("after").wait(turn::Wait::TryOnce))
        .unwrap()
        .release()
        .unwrap();
}

#[test]
fn lock_with_nothing_after_the_double_dash_is_a_usage_error() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    // `turn lock R -- $CMD` with an empty $CMD: refused, not turn 1.0's
    // hold-until-interrupted form.
    for args in [
        &["lock", "R", "--"][..],
        &["lock", "--label", "x", "R", "--"],
        &["lock", "--"],
    ] {
        let child = turn_cmd(&r, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (status, stderr) = finish(child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("nothing after `--`"), "{args:?}: {stderr}");
        assert!(stderr.contains("Usage: turn lock"), "{args:?}: {stderr}");
    }
    assert_eq!(
        l.status("R").unwrap_err().kind(),
        turn::ErrorKind::NotFound,
        "R was never queued for"
    );
    // Without `--`, turn 1.0's form still holds until interrupted.
    let mut child = turn_cmd(&r, &["lock", "R"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::new(child.stdout.take().unwrap());
    assert!(lines.wait_for("R: locked", Duration::from_secs(10)));
    signal(child.id(), "INT");
    assert!(child.wait().unwrap().success());
}

/// A script for `turn lock ... -- sh -c SCRIPT`: prints "started" once it
/// runs under the lock, then holds it until the file `go` exists.
fn until(go: &std::path::Path) -> String {
    format!(
        "echo started; while [ ! -e {} ]; do sleep 0.05; done",
        go.display()
    )
}

/// `turn ARGS` with stdout and stderr piped, not waited for.
fn spawned(r: &Redis, args: &[&str]) -> (std::process::Child, Lines, Lines) {
    let mut child = turn_cmd(r, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Lines::new(child.stdout.take().unwrap());
    let err = Lines::new(child.stderr.take().unwrap());
    (child, out, err)
}

/// The labels of the tickets of `resource` that hold, and of those that wait.
fn holders_and_waiters(l: &Locker, resource: &str) -> (Vec<String>, Vec<String>) {
    let s = l.status(resource).unwrap();
    let (held, waiting): (Vec<_>, Vec<_>) = s.tickets.into_iter().partition(|t| t.held);
    let labels = |t: Vec<turn::TicketInfo>| t.into_iter().map(|t| t.label).collect();
    (labels(held), labels(waiting))
}

#[test]
fn two_turn_lock_permits_2_hold_at_once_while_a_third_waits() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let go: Vec<_> = (0..3).map(|i| dir.path().join(format!("go{i}"))).collect();
    let script: Vec<_> = go.iter().map(|g| until(g)).collect();
    let lock = |label: &'static str, i: usize| {
        [
            "lock",
            "pool",
            "--permits",
            "2",
            "--label",
            label,
            "--",
            "sh",
            "-c",
        ]
        .into_iter()
        .chain([script[i].as_str()])
        .collect::<Vec<&str>>()
    };
    let (mut first, _, _) = started(&r, &lock("first", 0));
    // The second runs while the first holds.
    let (mut second, _, _) = started(&r, &lock("second", 1));
    let (mut third, mut third_out, mut third_err) = spawned(&r, &lock("third", 2));
    assert!(queued(&l, "pool", 3));
    assert_eq!(
        holders_and_waiters(&l, "pool"),
        (vec!["first".into(), "second".into()], vec!["third".into()])
    );
    assert!(
        third_err.wait_for("pool: waiting, 2 ahead", Duration::from_secs(10)),
        "{:?}",
        third_err.seen
    );
    assert!(
        !third_out.arrived().iter().any(|l| l == "started"),
        "the third ran while two held"
    );
    // A permit comes back: the third runs.
    std::fs::write(&go[0], "").unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert!(third_out.wait_for("started", Duration::from_secs(10)));
    assert_eq!(
        holders_and_waiters(&l, "pool"),
        (vec!["second".into(), "third".into()], vec![])
    );
    std::fs::write(&go[1], "").unwrap();
    std::fs::write(&go[2], "").unwrap();
    assert_eq!(second.wait().unwrap().code(), Some(0));
    assert_eq!(third.wait().unwrap().code(), Some(0));
    assert!(l.status("pool").unwrap().tickets.is_empty(), "all released");
}

#[test]
fn turn_lock_shared_twice_holds_at_once_and_exclusive_waits_its_turn() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let go: Vec<_> = (0..4).map(|i| dir.path().join(format!("go{i}"))).collect();
    let script: Vec<_> = go.iter().map(|g| until(g)).collect();
    let lock = |share: &'static str, label: &'static str, i: usize| {
        ["lock", "files", share, "--label", label, "--", "sh", "-c"]
            .into_iter()
            .chain([script[i].as_str()])
            .collect::<Vec<&str>>()
    };
    let (mut reader1, _, _) = started(&r, &lock("--shared", "reader 1", 0));
    let (mut reader2, _, _) = started(&r, &lock("--shared", "reader 2", 1));
    let (mut writer, mut writer_out, _) = spawned(&r, &lock("--exclusive", "writer", 2));
    assert!(queued(&l, "files", 3));
    // A shared ticket drawn after the exclusive one waits for it.
    let (mut reader3, mut reader3_out, _) = spawned(&r, &lock("--shared", "reader 3", 3));
    assert!(queued(&l, "files", 4));
    assert_eq!(
        holders_and_waiters(&l, "files"),
        (
            vec!["reader 1".into(), "reader 2".into()],
            vec!["writer".into(), "reader 3".into()]
        )
    );
    std::fs::write(&go[0], "").unwrap();
    assert_eq!(reader1.wait().unwrap().code(), Some(0));
    assert_eq!(
        holders_and_waiters(&l, "files").0,
        ["reader 2"],
        "the writer waits for every shared holder"
    );
    std::fs::write(&go[1], "").unwrap();
    assert_eq!(reader2.wait().unwrap().code(), Some(0));
    assert!(writer_out.wait_for("started", Duration::from_secs(10)));
    assert_eq!(
        holders_and_waiters(&l, "files"),
        (vec!["writer".into()], vec!["reader 3".into()])
    );
    std::fs::write(&go[2], "").unwrap();
    assert_eq!(writer.wait().unwrap().code(), Some(0));
    assert!(reader3_out.wait_for("started", Duration::from_secs(10)));
    std::fs::write(&go[3], "").unwrap();
    assert_eq!(reader3.wait().unwrap().code(), Some(0));
    assert!(
        l.status("files").unwrap().tickets.is_empty(),
        "all released"
    );
}

#[test]
fn turn_lock_on_several_resources_holds_them_all_while_the_command_runs() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let script = format!(
        "echo tokens $TURN_LOCK_TOKEN; echo serials $TURN_LOCK_SERIAL; {}",
        until(&go)
    );
    let (mut child, mut out, _) = started(&r, &["lock", "b", "a", "c", "--", "sh", "-c", &script]);
    for resource in ["a", "b", "c"] {
        assert_eq!(
            holders_and_waiters(&l, resource),
            (vec!["lock tool".into()], vec![]),
            "{resource}"
        );
    }
    let said = out.arrived().to_vec();
    let numbers = |prefix: &str| -> Vec<u64> {
        let line = said.iter().find(|l| l.starts_with(prefix)).unwrap();
        line.split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect()
    };
    // One token and one serial per resource, in the order given.
    assert_eq!(numbers("serials"), [1, 1, 1]);
    let tokens = numbers("tokens");
    assert_eq!(tokens.len(), 3, "{said:?}");
    std::fs::write(&go, "").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    for (resource, token) in ["b", "a", "c"].into_iter().zip(tokens) {
        assert!(
            l.status(resource).unwrap().tickets.is_empty(),
            "{resource} released"
        );
        let next = l.lock(resource, "after").unwrap();
        assert!(
            token < next.token(),
            "{resource}: token {token} not below the next"
        );
        next.release().unwrap();
    }
}

#[test]
fn turn_lock_on_several_resources_takes_none_when_one_is_busy() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l.lock("b", "holder").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let o = turn(
        &r,
        &[
            "lock", "a", "b", "c", "--wait", "0", "--", "sh", "-c", &touch,
        ],
    );
    assert_eq!(o.status.code(), Some(75), "{o:?}");
    assert!(!marker.exists(), "the command ran");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("a, b, c: not locked"), "{err}");
    assert!(l.status("a").unwrap().tickets.is_empty(), "a given back");
    assert_eq!(
        holders_and_waiters(&l, "b"),
        (vec!["holder".into()], vec![])
    );
    assert!(
        l.status("c").map_or(true, |s| s.tickets.is_empty()),
        "c left alone"
    );

    // Waiting for b with a taken: Ctrl-C gives a back and withdraws b's ticket.
    let (mut child, _, mut err) = spawned(&r, &["lock", "a", "b", "--", "sh", "-c", &touch]);
    assert!(queued(&l, "b", 2));
    assert_eq!(holders_and_waiters(&l, "a").0, ["lock tool"]);
    signal(child.id(), "INT");
    assert_eq!(child.wait().unwrap().code(), Some(128 + 2));
    assert!(!marker.exists(), "the command ran");
    assert!(
        err.wait_for("interrupted while waiting", Duration::from_secs(10)),
        "{:?}",
        err.seen
    );
    assert!(l.status("a").unwrap().tickets.is_empty(), "a given back");
    assert_eq!(
        holders_and_waiters(&l, "b"),
        (vec!["holder".into()], vec![])
    );
    held.release().unwrap();
    l.lock("b", "after").unwrap().release().unwrap();
}

#[test]
fn turn_lock_on_several_resources_says_which_lock_was_lost() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let (mut child, _out, mut err) = started(
        &r,
        &[
            "lock",
            "a",
            "b",
            "--expire",
            "5",
            "--kill-on-loss",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 60",
        ],
    );
    delete_holder_key(&r, &l, "b");
    // The lock was lost: 76, whatever the command's status (SIGTERM's).
    assert_eq!(child.wait().unwrap().code(), Some(76));
    let said = err.rest(Duration::from_secs(2)).join("\n");
    assert!(
        said.contains("b: the lock was lost while the command ran"),
        "{said}"
    );
    assert!(said.contains("b: sending SIGTERM"), "{said}");
    assert!(!said.contains("a: the lock was lost"), "{said}");
    assert!(l.status("a").unwrap().tickets.is_empty(), "a released");
}

#[test]
fn conflicting_lock_options_are_usage_errors() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    for (args, says) in [
        (
            &["R", "--permits", "2", "--shared"][..],
            "cannot be used with",
        ),
        (
            &["R", "--permits", "2", "--exclusive"],
            "cannot be used with",
        ),
        (&["R", "--shared", "--exclusive"], "cannot be used with"),
        (&["R", "--weight", "2"], "--permits"),
        (&["R", "--permits", "0"], "0 is not in"),
        (&["R", "--permits", "two"], "invalid value"),
        (&["R", "--permits", "2", "--weight", "0"], "0 is not in"),
        (&["R", "S", "--permits", "2"], "exactly one RESOURCE"),
        (&["R", "S", "--shared"], "exactly one RESOURCE"),
        (&[], "at least one RESOURCE"),
    ] {
        let args = [&["lock"], args, &["--", "true"]].concat();
        let o = turn(&r, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Without a command too: one resource, not several, nor every queue.
    for args in [
        &["lock", "R", "S", "--shared"][..],
        &["lock", "--exclusive"],
    ] {
        let o = turn(&r, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("exactly one RESOURCE"), "{args:?}: {err}");
    }
    // A weight over the permits: a value out of range.
    let o = turn(
        &r,
        &["lock", "R", "--permits", "2", "--weight", "3", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err, "turn: --weight (3) must be at most --permits (2)\n");
    assert_eq!(
        l.resources().unwrap(),
        Vec::<String>::new(),
        "nothing queued"
    );
}

#[test]
fn turn_lock_on_a_queue_of_another_kind_says_its_kind_and_runs_nothing() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let semaphore = Acquire::label("job").mode(turn::Mode::Semaphore {
        permits: 2,
        weight: 1,
    });
    let held = l.acquire("pool", &semaphore).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    for (mode, asked) in [
        (&["--shared"][..], "a read-write lock"),
        (&["--exclusive"], "a read-write lock"),
        (&["--permits", "3"], "a semaphore of 3 permits"),
        (&[], "a plain lock"),
    ] {
        let args = [&["lock", "pool"], mode, &["--", "sh", "-c", &touch]].concat();
        let o = turn(&r, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let expected =
            format!("turn: \"pool\" is a semaphore of 2 permits; this acquire asked for {asked}");
        assert!(err.starts_with(&expected), "{args:?}: {err}");
        assert!(err.contains("reset the queue when it is idle"), "{err}");
        assert!(!marker.exists(), "the command ran");
    }
    assert_eq!(
        holders_and_waiters(&l, "pool"),
        (vec!["job".into()], vec![]),
        "the refused acquires left no ticket"
    );
    // Without a command: said, and the tool ends (nothing to hold).
    let child = turn_cmd(&r, &["lock", "pool", "--shared"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, err) = finish(child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("is a semaphore of 2 permits"), "{err}");
    // Once idle and reset, the queue is made anew of the kind asked.
    held.release().unwrap();
    assert_eq!(
        turn(&r, &["lock", "pool", "--shared", "--", "true"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(stdout(&turn(&r, &["reset", "pool"])), "");
    let o = turn(&r, &["lock", "pool", "--shared", "--", "sh", "-c", &touch]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(marker.exists());
}

const SEPARATOR: &str = "------------------------------------------------------------";

/// A line of `turn status`: left-aligned in 50 columns, right in 10.
fn row(left: &str, right: u64) -> String {
    format!("{left:<50}{right:>10}\n")
}

#[test]
fn status_shows_a_semaphore_s_permits_holders_and_waiters() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let sem = |label: &str, weight| {
        Acquire::label(label).mode(turn::Mode::Semaphore { permits: 3, weight })
    };
    let build = l.acquire("pool", &sem("build", 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let (mut tool, _, _) = started(
        &r,
        &[
            "lock",
            "pool",
            "--permits",
            "3",
            "--weight",
            "2",
            "--label",
            "test",
            "--",
            "sh",
            "-c",
            &until(&go),
        ],
    );
    let deploy = l.start_acquire("pool", &sem("deploy", 1)).unwrap();
    assert!(queued(&l, "pool", 3));
    let plain = l.lock("plain", "x").unwrap();
    let out = stdout(&turn(&r, &["status", "pool", "plain"]));
    let expected = [
        row("pool (semaphore, 3 of 3 permits held)", 1),
        format!("{SEPARATOR}\n"),
        row("holds weight 1   build", 1),
        row("holds weight 2   test", 2),
        row("waits weight 1   deploy", 3),
        "\n".to_string(),
        row("plain", 1),
        format!("{SEPARATOR}\n"),
        row("x", 1),
    ]
    .concat();
    assert_eq!(out, expected);

    let out = stdout(&turn(&r, &["status", "--json", "pool", "plain"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["kind"], "semaphore");
    assert_eq!(v[0]["permits"], 3);
    assert_eq!(
        fields(&v[0]["tickets"], &["serial", "label", "held", "weight"]),
        serde_json::json!([
            {"serial": 1, "label": "build", "held": true, "weight": 1},
            {"serial": 2, "label": "test", "held": true, "weight": 2},
            {"serial": 3, "label": "deploy", "held": false, "weight": 1},
        ])
    );
    // A plain queue's JSON has the fields it had before the shared modes
    // (and each ticket's facts besides).
    assert_eq!(
        fields(
            &serde_json::json!([v[1]]),
            &[
                "resource",
                "indicator",
                "dispenser",
                "size",
                "kind",
                "permits"
            ]
        ),
        serde_json::json!([{
            "resource": "plain", "indicator": 1, "dispenser": 1, "size": 1,
        }])
    );
    assert_eq!(
        fields(&v[1]["tickets"], &["serial", "label", "weight", "mode"]),
        serde_json::json!([{"serial": 1, "label": "x"}])
    );
    let out = stdout(&turn(&r, &["status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pool = v
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["resource"] == "pool");
    assert_eq!(pool.unwrap()["kind"], "semaphore", "{out}");
    let plain_summary = v
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["resource"] == "plain");
    assert_eq!(plain_summary.unwrap().get("kind"), None, "{out}");

    std::fs::write(&go, "").unwrap();
    assert_eq!(tool.wait().unwrap().code(), Some(0));
    deploy.cancel().unwrap();
    build.release().unwrap();
    plain.release().unwrap();
}

#[test]
fn status_shows_a_read_write_lock_s_shared_and_exclusive_tickets() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let rw =
        |label: &str, exclusive| Acquire::label(label).mode(turn::Mode::ReadWrite { exclusive });
    let report = l.acquire("files", &rw("report", false)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let (mut tool, _, _) = started(
        &r,
        &[
            "lock",
            "files",
            "--shared",
            "--label",
            "backup",
            "--",
            "sh",
            "-c",
            &until(&go),
        ],
    );
    let migrate = l.start_acquire("files", &rw("migrate", true)).unwrap();
    assert!(queued(&l, "files", 3));
    let audit = l.start_acquire("files", &rw("audit", false)).unwrap();
    assert!(queued(&l, "files", 4));
    let out = stdout(&turn(&r, &["status", "files"]));
    let expected = [
        row("files (read-write lock)", 1),
        format!("{SEPARATOR}\n"),
        row("holds shared     report", 1),
        row("holds shared     backup", 2),
        row("waits exclusive  migrate", 3),
        row("waits shared     audit", 4),
    ]
    .concat();
    assert_eq!(out, expected);

    let out = stdout(&turn(&r, &["status", "--json", "files"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["kind"], "rwlock");
    assert_eq!(v[0].get("permits"), None);
    assert_eq!(
        fields(
            &v[0]["tickets"],
            &["serial", "label", "held", "mode", "weight"]
        ),
        serde_json::json!([
            {"serial": 1, "label": "report", "held": true, "mode": "shared"},
            {"serial": 2, "label": "backup", "held": true, "mode": "shared"},
            {"serial": 3, "label": "migrate", "held": false, "mode": "exclusive"},
            {"serial": 4, "label": "audit", "held": false, "mode": "shared"},
        ])
    );

    std::fs::write(&go, "").unwrap();
    assert_eq!(tool.wait().unwrap().code(), Some(0));
    audit.cancel().unwrap();
    migrate.cancel().unwrap();
    report.release().unwrap();
}

#[test]
fn turn_lock_in_a_shared_mode_keeps_its_exits_and_loss_reports() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let full = l
        .acquire(
            "pool",
            &Acquire::label("all").mode(turn::Mode::Semaphore {
                permits: 2,
                weight: 2,
            }),
        )
        .unwrap();
    // Not had within --wait: 75, nothing run, no ticket left.
    let o = turn(
        &r,
        &[
            "lock",
            "pool",
            "--permits",
            "2",
            "--wait",
            "0",
            "--",
            "false",
        ],
    );
    assert_eq!(o.status.code(), Some(75), "{o:?}");
    let o = turn(
        &r,
        &[
            "lock",
            "pool",
            "--permits",
            "2",
            "--wait",
            "0.2",
            "--",
            "false",
        ],
    );
    assert_eq!(o.status.code(), Some(75), "{o:?}");
    assert_eq!(l.status("pool").unwrap().tickets.len(), 1, "tickets left");
    full.release().unwrap();
    // The command's status.
    let o = turn(
        &r,
        &["lock", "pool", "--permits", "2", "--", "sh", "-c", "exit 7"],
    );
    assert_eq!(o.status.code(), Some(7));

    // A shared holder whose lock is lost hears it; --kill-on-loss ends
    // the command.
    let (mut child, _out, mut err) = started(
        &r,
        &[
            "lock",
            "files",
            "--shared",
            "--expire",
            "5",
            "--kill-on-loss",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 60",
        ],
    );
    delete_holder_key(&r, &l, "files");
    // The lock was lost: 76, whatever the command's status (SIGTERM's).
    assert_eq!(child.wait().unwrap().code(), Some(76));
    let said = err.rest(Duration::from_secs(2)).join("\n");
    assert!(
        said.contains("files: the lock was lost while the command ran"),
        "{said}"
    );

    // Without a command: held until Ctrl-C, then given back.
    let mut child = turn_cmd(&r, &["lock", "files", "--exclusive"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::new(child.stdout.take().unwrap());
    assert!(lines.wait_for("files: locked", Duration::from_secs(10)));
    let s = l.status("files").unwrap();
    assert_eq!(s.tickets[0].mode, turn::Mode::ReadWrite { exclusive: true });
    assert!(s.tickets[0].held);
    signal(child.id(), "INT");
    assert!(child.wait().unwrap().success());
    assert!(lines.wait_for("files: released", Duration::from_secs(10)));
    assert!(l.status("files").unwrap().tickets.is_empty());
}

#[test]
fn status_long_shows_holders_and_waiters_with_their_facts_and_marks_turn_1_0_tickets() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l.lock("printer", "holder").unwrap();
    let waiter = {
        let l = l.clone();
        std::thread::spawn(move || l.lock("printer", "waiter"))
    };
    assert!(queued(&l, "printer", 2));
    // A ticket of turn 1.0's kind: a presence key without our identity.
    let mut c = r.conn();
    let serial: u64 = c.incr("turn:printer:dispenser", 1).unwrap();
    let _: () = c
        .set_ex(format!("turn:printer:serial:{serial}"), "python", 60)
        .unwrap();
    let waiter_token = l.status("printer").unwrap().tickets[1].token.unwrap();

    for flag in ["--long", "-l"] {
        let out = stdout(&turn(&r, &["status", flag, "printer"]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6, "{out}");
        assert_eq!(
            lines[0],
            "printer                                                    1"
        );
        assert_eq!(lines[1], "-".repeat(60));
        let words = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
        assert_eq!(
            words(2),
            ["SERIAL", "STATE", "SHARE", "TOKEN", "FOR", "LEASE", "LABEL"]
        );
        let holder = words(3);
        assert_eq!(
            holder[..4],
            ["1", "holds", "alone", &held.token().to_string()]
        );
        assert_eq!(holder[6..], ["holder"], "{out}");
        let waiter = words(4);
        let waiter_token = waiter_token.to_string();
        assert_eq!(waiter[..5], ["2", "waits", "1", "alone", &waiter_token]);
        assert_eq!(waiter[7..], ["waiter"], "{out}");
        // A turn 1.0 ticket: no token, no age known; its lease is shown.
        let python = words(5);
        assert_eq!(
            python[..8],
            ["3", "waits", "2", "alone", "turn", "1.0", "-", python[7]]
        );
        assert_ne!(python[7], "-", "its lease: {out}");
        assert_eq!(python[8..], ["python"], "{out}");
    }
    // Without a resource: every queue, each with its tickets.
    let _other = l.lock("other", "elsewhere").unwrap();
    let out = stdout(&turn(&r, &["status", "--long"]));
    assert!(out.starts_with("printer "), "largest queue first: {out}");
    assert!(out.contains("\n\nother "), "{out}");
    assert!(out.contains("  elsewhere\n"), "{out}");

    let _: () = c.del(format!("turn:printer:serial:{serial}")).unwrap();
    held.release().unwrap();
    waiter.join().unwrap().unwrap().release().unwrap();
}

#[test]
fn status_long_of_a_semaphore_shows_each_holder_s_weight() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l
        .acquire(
            "pool",
            &Acquire::label("big").mode(turn::Mode::Semaphore {
                permits: 3,
                weight: 2,
            }),
        )
        .unwrap();
    let out = stdout(&turn(&r, &["status", "-l", "pool"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("pool (semaphore, 2 of 3 permits held) "),
        "{out}"
    );
    let words: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(words[..4], ["1", "holds", "weight", "2"], "{out}");
    assert_eq!(words[words.len() - 1], "big");
    held.release().unwrap();
}

#[test]
fn status_json_gives_each_ticket_s_facts_and_keeps_its_fields() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l.lock("printer", "holder").unwrap();
    let waiter = {
        let l = l.clone();
        std::thread::spawn(move || l.lock("printer", "waiter"))
    };
    assert!(queued(&l, "printer", 2));
    let mut c = r.conn();
    let serial: u64 = c.incr("turn:printer:dispenser", 1).unwrap();
    let _: () = c
        .set_ex(format!("turn:printer:serial:{serial}"), "python", 60)
        .unwrap();

    let out = stdout(&turn(&r, &["status", "--json", "printer"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let q = &v[0];
    assert_eq!(q["resource"], "printer");
    assert_eq!(
        (q["indicator"].as_u64(), q["size"].as_u64()),
        (Some(1), Some(3))
    );
    let t = &q["tickets"];
    assert_eq!(
        (t[0]["serial"].as_u64(), &t[0]["label"]),
        (Some(1), &"holder".into())
    );
    assert_eq!(t[0]["held"], true);
    assert_eq!(t[0]["ours"], true);
    assert_eq!(t[0]["token"].as_u64(), Some(held.token()));
    assert!(t[0]["held_for_ms"].is_u64(), "{out}");
    assert!(
        t[0]["lease_left_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{out}"
    );
    assert!(t[0]["waited_for_ms"].is_null() && t[0]["position"].is_null());
    assert_eq!(
        (t[1]["held"].as_bool(), t[1]["position"].as_u64()),
        (Some(false), Some(1))
    );
    assert!(t[1]["waited_for_ms"].is_u64() && t[1]["held_for_ms"].is_null());
    assert!(t[1]["token"].as_u64().is_some_and(|k| k > held.token()));
    assert_eq!(t[2]["ours"], false, "a turn 1.0 ticket: {out}");
    assert!(t[2]["token"].is_null() && t[2]["waited_for_ms"].is_null());
    assert_eq!(t[2]["position"].as_u64(), Some(2));

    let _: () = c.del(format!("turn:printer:serial:{serial}")).unwrap();
    held.release().unwrap();
    waiter.join().unwrap().unwrap().release().unwrap();
}

#[test]
fn status_watch_into_a_pipe_prints_snapshots_separated_by_a_blank_line_without_clearing() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let _held = l.lock("printer", "holder").unwrap();
    let mut child = turn_cmd(&r, &["status", "--watch", "--interval", "0.05", "printer"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let snapshot = "printer                                                    1\n\
                    ------------------------------------------------------------\n\
                    holder                                                     1\n";
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("printer ").count() < 3 {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "ended early: {seen:?}");
        seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    signal(child.id(), "INT");
    child.wait().unwrap();
    out.read_to_string(&mut seen).unwrap();
    assert!(!seen.contains('\x1b'), "no screen clearing: {seen:?}");
    let snapshots: Vec<&str> = seen.split("\n\n").collect();
    assert!(snapshots.len() >= 3, "{seen:?}");
    for s in &snapshots[..snapshots.len() - 1] {
        assert_eq!(format!("{s}\n"), snapshot);
    }
}

#[test]
fn lock_exits_with_the_command_s_status_when_the_lock_was_kept() {
    let r = Redis::start();
    let o = turn(&r, &["lock", "kept", "--", "sh", "-c", "exit 0"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(o.stderr.is_empty(), "{o:?}");
}

/// The tool run without Redis (nothing listens on port 1): completions and
/// manual pages need none.
fn turn_offline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_turn"))
        .env_remove("TURN_REDIS_URL")
        .args(["--url", "redis://127.0.0.1:1/0"])
        .args(args)
        .output()
        .expect("turn runs")
}

/// Whether `program` can be run (it is installed).
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Every subcommand the tool shows in its help.
fn subcommands() -> Vec<String> {
    let help = Command::new(env!("CARGO_BIN_EXE_turn"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let listed = help.split("Commands:").nth(1).unwrap();
    let names: Vec<String> = listed
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|n| n != "help")
        .collect();
    assert!(names.len() >= 7, "{names:?}");
    names
}

#[test]
fn completion_scripts_are_printed_and_load_in_their_shells() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, file) in [
        ("bash", "turn.bash"),
        ("zsh", "_turn"),
        ("fish", "turn.fish"),
    ] {
        let o = turn_offline(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {o:?}");
        let script = String::from_utf8(o.stdout).unwrap();
        for sub in subcommands() {
            assert!(script.contains(&sub), "{shell}: no {sub}");
        }
        let path = dir.path().join(file);
        std::fs::write(&path, &script).unwrap();
        let path = path.display().to_string();
        let check = match shell {
            // Loaded, the function completes `turn lo` as `turn lock`.
            "bash" => format!(
                "source {path} && complete -p turn && COMP_WORDS=(turn lo) COMP_CWORD=1 \
                 COMP_LINE='turn lo' COMP_POINT=7 && _turn turn lo turn && echo \"${{COMPREPLY[@]}}\""
            ),
            "zsh" => {
                format!("autoload -U compinit && compinit -u && source {path} && whence -w _turn")
            }
            _ => format!("source {path} && complete -C 'turn lo'"),
        };
        if !installed(shell) {
            assert_ne!(shell, "bash", "bash is needed");
            eprintln!("{shell} is not installed: its script was not loaded");
            continue;
        }
        let mut c = Command::new(shell);
        if shell == "zsh" {
            c.arg("-f");
        }
        let o = c.arg("-c").arg(&check).output().unwrap();
        assert!(o.status.success(), "{shell}: {o:?}");
        assert!(!o.stdout.is_empty(), "{shell}: {o:?}");
        let said = String::from_utf8_lossy(&o.stdout);
        match shell {
            "bash" => assert!(
                said.contains("-F _turn turn") && said.ends_with("lock\n"),
                "{said}"
            ),
            "zsh" => assert!(said.contains("_turn: function"), "{said}"),
            _ => assert!(said.starts_with("lock\t"), "{said}"),
        }
    }
    // Not a shell clap knows: a usage error.
    assert_eq!(
        turn_offline(&["completions", "tcsh"]).status.code(),
        Some(2)
    );
}

#[test]
fn the_manual_page_renders_and_names_every_subcommand() {
    let o = turn_offline(&["man"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let page = String::from_utf8(o.stdout).unwrap();
    for section in [
        ".TH turn 1",
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH SUBCOMMANDS",
    ] {
        assert!(page.contains(section), "no {section}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("turn.1"), &page).unwrap();
    // Rendered as man(1) would, when groff is there; else the source.
    let text = match Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(dir.path().join("turn.1"))
        .output()
    {
        Ok(r) => {
            assert!(r.status.success(), "{r:?}");
            assert!(r.stderr.is_empty(), "groff warns: {r:?}");
            String::from_utf8(r.stdout).unwrap()
        }
        Err(_) => page.clone(),
    };
    for sub in subcommands() {
        assert!(text.contains(&format!("turn-{sub}(1)")), "no turn-{sub}(1)");
    }
    // The exit statuses of `turn lock` are on the page too.
    assert!(
        text.contains("EX_TEMPFAIL") && text.contains("76"),
        "{text}"
    );
    // --dir: one page per subcommand.
    let o = turn_offline(&["man", "--dir", &dir.path().display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    for sub in subcommands() {
        let page = std::fs::read_to_string(dir.path().join(format!("turn-{sub}.1"))).unwrap();
        assert!(page.contains(&format!(".TH turn-{sub} 1")), "{sub}");
    }
}

#[test]
fn follow_json_prints_one_object_per_line() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let mut child = turn_cmd(&r, &["follow", "--json", "res"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::new(child.stdout.take().unwrap());
    assert!(eventually(Duration::from_secs(10), || subscribers(
        &r,
        "turn:res:external"
    ) == 1));
    l.lock("res", "a \"quoted\" job")
        .unwrap()
        .release()
        .unwrap();
    l.announce("res", "maintenance at noon").unwrap();
    assert!(lines.wait_for("noon", Duration::from_secs(10)));
    signal(child.id(), "INT");
    assert!(child.wait().unwrap().success(), "Ctrl-C exits 0");
    let objects: Vec<serde_json::Value> = lines
        .rest(Duration::from_secs(2))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let label = "a \"quoted\" job";
    assert_eq!(
        objects,
        [
            serde_json::json!({"resource": "res", "serial": 1, "event": "assigned", "label": label, "text": format!("res: 1 assigned to \"{label}\"")}),
            serde_json::json!({"resource": "res", "serial": 1, "event": "started", "text": "res: 1 started"}),
            serde_json::json!({"resource": "res", "serial": 1, "event": "completed", "label": label, "text": format!("res: 1 completed by \"{label}\"")}),
            serde_json::json!({"resource": "res", "serial": 2, "event": "granted", "text": "res: 2 granted"}),
            serde_json::json!({"resource": "res", "event": "message", "text": "res: maintenance at noon"}),
        ]
    );
}

/// The rows of the README's table of the tool's exit statuses: each
/// row's first cell.
fn readme_exit_statuses() -> Vec<String> {
    let readme = std::fs::read_to_string(support::root().join("README.md")).unwrap();
    let table = readme
        .split("<!-- tool exit statuses -->")
        .nth(1)
        .expect("README.md has the tool's table of exit statuses");
    table
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.split('|').nth(1).unwrap().trim().to_string())
        .collect()
}

#[test]
fn the_exit_statuses_the_readme_lists_are_the_tool_s() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let code = |args: &[&str]| turn(&r, args).status.code();
    let rows = readme_exit_statuses();
    assert!(rows.len() >= 8, "{rows:?}");
    let help = String::from_utf8(turn(&r, &["lock", "--help"]).stdout).unwrap();
    for row in &rows {
        // The help's table shows each numbered row too.
        if row.starts_with(|c: char| c.is_ascii_digit()) {
            let shown = match row.as_str() {
                "0" => "0 on success".to_string(),
                _ => format!("  {row}"),
            };
            assert!(
                help.contains(&shown),
                "`turn lock --help` lacks {row}:\n{help}"
            );
        }
        match row.as_str() {
            "0" => assert_eq!(code(&["lock", "zero", "--", "true"]), Some(0)),
            "1" => {
                let unreachable = turn_offline(&["status"]);
                assert_eq!(unreachable.status.code(), Some(1), "{unreachable:?}");
                assert_eq!(code(&["lock", "w", "--wait=-1", "--", "true"]), Some(1));
                let weight = ["lock", "w", "--permits", "2", "--weight", "3", "--", "true"];
                assert_eq!(code(&weight), Some(1));
            }
            "2" => {
                assert_eq!(code(&["status", "--no-such-option"]), Some(2));
                assert_eq!(
                    code(&["lock", "u", "--wait", "soon", "--", "true"]),
                    Some(2)
                );
                assert_eq!(code(&["lock", "u", "--kill-on-loss"]), Some(2));
                assert_eq!(code(&["--replica-timeout", "1", "status"]), Some(2));
                assert_eq!(code(&["lock", "u", "--"]), Some(2));
                assert!(
                    !l.resources().unwrap().contains(&"u".to_string()),
                    "nothing locked"
                );
            }
            "75" => {
                let held = l.lock("busy", "holder").unwrap();
                assert_eq!(
                    code(&["lock", "busy", "--wait", "0", "--", "true"]),
                    Some(75)
                );
                held.release().unwrap();
            }
            "76" => {
                let (mut child, _out, _err) = started(
                    &r,
                    &[
                        "lock",
                        "lost",
                        "--expire",
                        "5",
                        "--kill-on-loss",
                        "--",
                        "sh",
                        "-c",
                        "echo started; exec sleep 60",
                    ],
                );
                delete_holder_key(&r, &l, "lost");
                assert_eq!(child.wait().unwrap().code(), Some(76));
            }
            "126, 127" => {
                assert_eq!(code(&["lock", "run", "--", "/"]), Some(126));
                assert_eq!(code(&["lock", "run", "--", "/no/such/program"]), Some(127));
            }
            "128+N" => {
                let killed = ["lock", "sig", "--", "sh", "-c", "kill -TERM $$"];
                assert_eq!(code(&killed), Some(128 + 15));
            }
            "the command's" => {
                assert_eq!(code(&["lock", "own", "--", "sh", "-c", "exit 7"]), Some(7));
            }
            other => panic!("the README lists exit status {other}, which this test does not check"),
        }
    }
}
