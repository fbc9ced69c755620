//! `turn exporter`: its `/metrics` read by Prometheus's own text parser
//! (Python's prometheus_client) and scraped by a real Prometheus server,
//! and what it answers while Redis is away.

use crate::support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{Lines, Redis, eventually, queued};
use turn::{Acquire, Locker, Mode};

/// A running `turn exporter`, stopped by SIGTERM on drop.
struct Exporter {
    child: Child,
    /// HOST:PORT it listens on, as it printed.
    addr: String,
}

impl Exporter {
    /// `turn --url URL exporter --listen 127.0.0.1:0 ARGS...`, once it
    /// has said where it listens.
    fn start(url: &str, args: &[&str]) -> Exporter {
        let mut child = Command::new(env!("CARGO_BIN_EXE_turn"))
            .env_remove("TURN_REDIS_URL")
            .args(["--url", url, "exporter", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("turn runs");
        let mut err = Lines::new(child.stderr.take().unwrap());
        assert!(
            err.wait_for("listening on", Duration::from_secs(30)),
            "the exporter says where it listens: {:?}",
            err.seen
        );
        let line = err.seen.last().unwrap().clone();
        assert_eq!(err.seen.len(), 1, "one line on standard error: {line}");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("an address in {line:?}"))
            .to_string();
        Exporter { child, addr }
    }

    /// The body of GET /metrics.
    fn scrape(&self) -> String {
        let (status, head, body) = get(&self.addr, "/metrics");
        assert_eq!(status, 200, "GET /metrics: {head}\n{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "the text format's content type: {head}"
        );
        body
    }

    /// SIGTERM; asserts the exporter exits with status 0.
    fn stop(mut self) {
        support::signal(self.child.id(), "TERM");
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` from `addr` (HTTP/1.0): status, head, body.
fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("a response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, head.to_string(), body.to_string())
}

/// The Python of a virtualenv with prometheus_client (the reference
/// implementation of the text format's parser), made once under the
/// target directory.
fn python_with_prometheus_client() -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        support::python_venv("py-prometheus-client", &["prometheus-client==0.26.0"])
    })
    .clone()
}

/// Parses `text` with prometheus_client's `text_string_to_metric_families`
/// (which fails on anything out of format); each family's type by name,
/// and every sample: name, labels, value.
struct Parsed {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Parsed {
    fn of(text: &str) -> Parsed {
        const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
types, samples = {}, []
for family in text_string_to_metric_families(sys.stdin.read()):
    types[family.name] = family.type
    for s in family.samples:
        samples.append([s.name, s.labels, s.value])
print(json.dumps({"types": types, "samples": samples}))
"#;
        let mut child = Command::new(python_with_prometheus_client())
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "prometheus_client reads the exposition: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        let types = json["types"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let samples = json["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels = s[1]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                (
                    s[0].as_str().unwrap().to_string(),
                    labels,
                    s[2].as_f64().unwrap(),
                )
            })
            .collect();
        Parsed { types, samples }
    }

    /// The value of the sample `name` whose labels are exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
    }

    fn of_resource(&self, name: &str, resource: &str) -> Option<f64> {
        self.value(name, &[("resource", resource)])
    }

    /// The resources that have a sample of `name`.
    fn resources(&self, name: &str) -> Vec<String> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter_map(|(_, l, _)| l.get("resource").cloned())
            .collect()
    }
}

/// A resource name with the characters the text format escapes in a label
/// value (a double quote and a backslash).
const ODD: &str = r#"tape "B" \ drive"#;

#[test]
fn exporter_metrics_read_by_prometheus_parser_match_the_queues() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    // A plain queue: a holder and two waiters.
    let held = l.lock("printer", "report").unwrap();
    let first = l
        .start_acquire("printer", &Acquire::label("first waiter"))
        .unwrap();
    let second = l
        .start_acquire("printer", &Acquire::label("second waiter"))
        .unwrap();
    assert!(queued(&l, "printer", 3));
    // A semaphore of 3 permits, 2 of them held.
    let pool = l
        .acquire(
            "pool",
            &Acquire::label("batch").mode(Mode::Semaphore {
                permits: 3,
                weight: 2,
            }),
        )
        .unwrap();
    let odd = l.lock(ODD, "odd").unwrap();

    // Every queue, under the default cap.
    let e = Exporter::start(&r.url(), &[]);
    let m = Parsed::of(&e.scrape());
    assert_eq!(m.types["turn_queue_waiters"], "gauge");
    assert_eq!(m.types["turn_exporter_up"], "gauge");
    assert_eq!(m.types["turn_exporter_errors"], "counter");
    assert_eq!(m.value("turn_exporter_up", &[]), Some(1.0));
    assert_eq!(m.value("turn_exporter_max_resources", &[]), Some(1000.0));
    assert_eq!(m.value("turn_exporter_resources_matched", &[]), Some(3.0));
    assert_eq!(m.value("turn_exporter_resources_exported", &[]), Some(3.0));
    assert_eq!(m.value("turn_exporter_resources_capped", &[]), Some(0.0));
    assert_eq!(
        m.value("turn_exporter_errors_total", &[("kind", "connection")]),
        Some(0.0)
    );
    assert!(
        m.value("turn_exporter_scrape_duration_seconds", &[])
            .unwrap()
            >= 0.0
    );

    assert_eq!(m.of_resource("turn_queue_holders", "printer"), Some(1.0));
    assert_eq!(m.of_resource("turn_queue_waiters", "printer"), Some(2.0));
    assert_eq!(m.of_resource("turn_queue_dispenser", "printer"), Some(3.0));
    assert_eq!(m.of_resource("turn_queue_indicator", "printer"), Some(1.0));
    let waited = m
        .of_resource("turn_queue_oldest_waiter_age_seconds", "printer")
        .unwrap();
    let held_for = m
        .of_resource("turn_queue_longest_holder_age_seconds", "printer")
        .unwrap();
    // The holder drew before the waiters.
    assert!(
        held_for >= waited && waited >= 0.0,
        "held {held_for} s, waited {waited} s"
    );
    let lease = m
        .of_resource("turn_queue_least_lease_left_seconds", "printer")
        .unwrap();
    assert!(
        lease > 0.0 && lease <= turn::DEFAULT_EXPIRE.as_secs_f64(),
        "lease left {lease} s"
    );
    assert_eq!(
        m.value(
            "turn_queue_info",
            &[("resource", "printer"), ("kind", "plain")]
        ),
        Some(1.0)
    );
    assert_eq!(m.of_resource("turn_queue_permits", "printer"), None);

    assert_eq!(m.of_resource("turn_queue_holders", "pool"), Some(1.0));
    assert_eq!(m.of_resource("turn_queue_waiters", "pool"), Some(0.0));
    assert_eq!(m.of_resource("turn_queue_permits", "pool"), Some(3.0));
    assert_eq!(
        m.value(
            "turn_queue_info",
            &[("resource", "pool"), ("kind", "semaphore")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.of_resource("turn_queue_oldest_waiter_age_seconds", "pool"),
        Some(0.0)
    );

    // The escaped label value reads back as the resource's name.
    assert_eq!(m.of_resource("turn_queue_holders", ODD), Some(1.0));
    e.stop();

    // Named and globbed, capped at 2: the first two by name.
    let jobs: Vec<_> = ["job-1", "job-2", "job-3"]
        .iter()
        .map(|name| l.lock(name, "job").unwrap())
        .collect();
    let e = Exporter::start(&r.url(), &["--max-resources", "2", "job-*", "printer"]);
    let m = Parsed::of(&e.scrape());
    assert_eq!(m.value("turn_exporter_max_resources", &[]), Some(2.0));
    assert_eq!(m.value("turn_exporter_resources_matched", &[]), Some(4.0));
    assert_eq!(m.value("turn_exporter_resources_exported", &[]), Some(2.0));
    assert_eq!(m.value("turn_exporter_resources_capped", &[]), Some(1.0));
    assert_eq!(m.resources("turn_queue_waiters"), ["job-1", "job-2"]);
    e.stop();

    drop((first, second));
    held.release().unwrap();
    pool.release().unwrap();
    odd.release().unwrap();
    drop(jobs);
}

/// A free loopback port (bound and let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A Prometheus server scraping `target` every second, in `dir`, on a
/// free loopback port; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: turn\n    scrape_interval: 1s\n    \
                 scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let binary =
            std::env::var("TURN_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".to_string());
        // The free port may be taken before the server binds it: then it
        // exits, and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("{binary} runs (on Debian: apt-get install prometheus): {e}")
                });
            let mut p = Prometheus { child, port };
            let addr = format!("127.0.0.1:{port}");
            let ready = eventually(Duration::from_secs(60), || {
                matches!(p.child.try_wait(), Ok(Some(_)))
                    || (TcpStream::connect(&addr).is_ok() && get(&addr, "/-/ready").0 == 200)
            });
            if ready && matches!(p.child.try_wait(), Ok(None)) {
                return p;
            }
        }
        let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
        panic!("Prometheus did not start; its log:\n{log}");
    }

    /// The values of an instant query's result.
    fn query(&self, promql: &str) -> Option<Vec<String>> {
        let encoded: String = promql
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let addr = format!("127.0.0.1:{}", self.port);
        TcpStream::connect(&addr).ok()?;
        let (status, _, body) = get(&addr, &format!("/api/v1/query?query={encoded}"));
        if status != 200 {
            return None;
        }
        let json: Value = serde_json::from_str(&body).ok()?;
        let results = json["data"]["result"].as_array()?;
        Some(
            results
                .iter()
                .filter_map(|r| r["value"][1].as_str().map(str::to_string))
                .collect(),
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_server_scrapes_the_exporter_and_answers_a_queue_s_waiters() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l.lock("printer", "report").unwrap();
    let waiting = l
        .start_acquire("printer", &Acquire::label("waiter"))
        .unwrap();
    assert!(queued(&l, "printer", 2));
    let e = Exporter::start(&r.url(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let p = Prometheus::start(dir.path(), &e.addr);
    let mut last = None;
    let answered = eventually(Duration::from_secs(90), || {
        last = p.query(r#"turn_queue_waiters{resource="printer"}"#);
        last.as_deref() == Some(&["1".to_string()][..])
    });
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    assert!(
        answered,
        "Prometheus answers the queue's waiters (last answer {last:?}); its log:\n{log}"
    );
    assert_eq!(
        p.query(r#"up{job="turn"}"#).as_deref(),
        Some(&["1".to_string()][..]),
        "Prometheus found the target up"
    );
    drop(p);
    e.stop();
    drop(waiting);
    held.release().unwrap();
}

/// The value of the unlabelled sample `name` in an exposition.
fn plain_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn exporter_reports_redis_down_as_up_0_and_recovers_when_it_is_back() {
    let mut r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    drop(l.lock("printer", "report").unwrap());
    let e = Exporter::start(&r.url(), &[]);
    let text = e.scrape();
    assert_eq!(plain_value(&text, "turn_exporter_up"), Some(1.0));
    assert!(text.contains("turn_queue_info{resource=\"printer\",kind=\"plain\"} 1"));

    r.kill();
    let text = e.scrape();
    assert_eq!(plain_value(&text, "turn_exporter_up"), Some(0.0), "{text}");
    assert!(
        text.contains("turn_exporter_errors_total{kind=\"connection\"} 1"),
        "the error counted: {text}"
    );
    assert!(!text.contains("turn_queue_"), "no queue figures: {text}");
    let text = e.scrape();
    assert!(
        text.contains("turn_exporter_errors_total{kind=\"connection\"} 2"),
        "each failed scrape counted: {text}"
    );

    r.restart();
    let mut text = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            text = e.scrape();
            plain_value(&text, "turn_exporter_up") == Some(1.0)
        }),
        "up again once Redis is back: {text}"
    );
    e.stop();
}

#[test]
fn exporter_starts_while_redis_is_down_and_reads_it_once_up() {
    let mut r = Redis::start();
    let url = r.url();
    r.kill();
    let e = Exporter::start(&url, &[]);
    let text = e.scrape();
    assert_eq!(plain_value(&text, "turn_exporter_up"), Some(0.0), "{text}");
    r.restart();
    let mut text = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            text = e.scrape();
            plain_value(&text, "turn_exporter_up") == Some(1.0)
        }),
        "up once Redis is there: {text}"
    );
    assert_eq!(
        plain_value(&text, "turn_exporter_resources_matched"),
        Some(0.0)
    );
    e.stop();
}

#[test]
fn exporter_answers_404_elsewhere_and_stops_on_sigint() {
    let r = Redis::start();
    let e = Exporter::start(&r.url(), &[]);
    let (status, _, _) = get(&e.addr, "/nothing");
    assert_eq!(status, 404);
    let (status, _, body) = get(&e.addr, "/");
    assert_eq!(status, 200);
    assert!(body.contains("/metrics"), "{body}");
    let mut e = e;
    support::signal(e.child.id(), "INT");
    assert_eq!(e.child.wait().unwrap().code(), Some(0));
}

#[test]
fn exporter_help_documents_listen_cap_and_metrics() {
    let out = Command::new(env!("CARGO_BIN_EXE_turn"))
        .args(["exporter", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for text in [
        "--listen",
        "--max-resources",
        "[default: 1000]",
        "turn_queue_waiters",
        "turn_exporter_up",
        "turn_exporter_resources_capped",
        "SIGTERM",
    ] {
        assert!(help.contains(text), "the help names {text}:\n{help}");
    }
}

#[test]
fn exporter_refuses_an_address_it_cannot_listen_on() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_turn"))
        .args(["exporter", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on"), "{err}");
}

/// The README's section "Watching turn in production".
fn watching_section() -> String {
    let readme = std::fs::read_to_string(support::root().join("README.md")).unwrap();
    let start = readme
        .find("\n## Watching turn in production\n")
        .expect("the README has the section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

#[test]
fn readme_names_every_series_the_exporter_answers() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    let held = l
        .acquire(
            "pool",
            &Acquire::label("batch").mode(Mode::Semaphore {
                permits: 2,
                weight: 1,
            }),
        )
        .unwrap();
    let e = Exporter::start(&r.url(), &[]);
    let text = e.scrape();
    e.stop();
    held.release().unwrap();
    let section = watching_section();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.len() >= 16, "every family: {names:?}");
    for name in names {
        assert!(
            section.contains(&format!("`{name}")),
            "the README's section names {name}"
        );
    }
}

#[test]
fn readme_alert_rules_pass_promtool() {
    let section = watching_section();
    let start = section.find("```yaml\ngroups:").expect("the alert rules");
    let rules = &section[start + "```yaml\n".len()..];
    let rules = &rules[..rules.find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, rules).unwrap();
    let binary = std::env::var("TURN_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    let out = Command::new(&binary)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{binary} runs (on Debian: apt-get install prometheus): {e}"));
    assert!(
        out.status.success(),
        "promtool accepts the README's rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
