//! The `turn` command-line tool against its own redis-server.

mod support;

use std::process::{Command, Output, Stdio};
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
