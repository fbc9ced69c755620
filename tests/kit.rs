//! The fault-injection kit's own tests (tests/support): the TCP fault proxy
//! on an echo server, and the history checker on made-up histories, one
//! per kind of violation, and a clean one.

use crate::support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::Redis;
use support::history::{Event, Rules, Violation, What, check, parse};
use support::proxy::{Direction, Proxy};
use turn::Mode;

/// An echo server on a free loopback port (each connection echoed by a
/// thread until it closes).
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

fn connect(p: &Proxy) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads exactly `n` bytes (or fails within the read timeout).
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    s.read_exact(&mut out).unwrap();
    out
}

#[test]
fn proxy_keeps_byte_order_under_jitter() {
    let p = Proxy::start(echo_server());
    p.latency(Duration::from_millis(2), Duration::from_millis(2));
    let mut s = connect(&p);
    let mut sent = Vec::new();
    for i in 0..300u32 {
        let chunk = format!("{i:05};");
        s.write_all(chunk.as_bytes()).unwrap();
        sent.extend_from_slice(chunk.as_bytes());
        if i % 7 == 0 {
            thread::sleep(Duration::from_micros(300));
        }
    }
    let got = read_n(&mut s, sent.len());
    assert_eq!(
        String::from_utf8(got).unwrap(),
        String::from_utf8(sent).unwrap()
    );
    // Up and back at least (a starved proxy may read all in one chunk);
    // counted after each write onwards, so the count may lag the echo.
    assert!(
        support::eventually(Duration::from_secs(10), || p.chunks() >= 2),
        "the bytes went through the proxy's queues"
    );
}

#[test]
fn proxy_latency_delays_each_direction() {
    let p = Proxy::start(echo_server());
    p.latency_one_way(Direction::Up, Duration::from_millis(300), Duration::ZERO);
    let mut s = connect(&p);
    let start = Instant::now();
    s.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut s, 4), b"ping");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "held at least the latency"
    );
}

#[test]
fn proxy_stall_holds_bytes_until_resumed() {
    let p = Proxy::start(echo_server());
    let mut s = connect(&p);
    s.write_all(b"a").unwrap();
    assert_eq!(read_n(&mut s, 1), b"a");
    p.stall();
    s.write_all(b"held").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4];
    let r = s.read(&mut buf);
    assert!(
        r.is_err(),
        "nothing comes through while stalled: {r:?} {buf:?}"
    );
    assert_eq!(p.open_connections(), 1, "the connection stays");
    p.resume();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_n(&mut s, 4), b"held");
}

#[test]
fn proxy_cut_closes_every_connection_and_refuse_turns_new_ones_away() {
    let p = Proxy::start(echo_server());
    let mut a = connect(&p);
    let mut b = connect(&p);
    a.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut a, 1), b"x");
    b.write_all(b"y").unwrap();
    assert_eq!(read_n(&mut b, 1), b"y");
    p.cut();
    for s in [&mut a, &mut b] {
        let mut buf = [0u8; 1];
        let r = s.read(&mut buf);
        assert!(matches!(r, Ok(0) | Err(_)), "closed by the cut: {r:?}");
    }
    p.refuse();
    let mut c = connect(&p);
    let _ = c.write_all(b"z");
    let mut buf = [0u8; 1];
    let r = c.read(&mut buf);
    assert!(matches!(r, Ok(0) | Err(_)), "refused: {r:?}");
    assert!(p.refused() >= 1);
    p.accept();
    let mut d = connect(&p);
    d.write_all(b"w").unwrap();
    assert_eq!(read_n(&mut d, 1), b"w");
}

#[test]
fn proxy_carries_a_locker_and_stops_when_dropped() {
    let r = Redis::start();
    let p = Proxy::start(r.port);
    p.latency(Duration::from_millis(2), Duration::from_millis(1));
    let l = turn::Locker::new(Some(&p.url())).unwrap();
    let lock = l.lock("through", "proxy").unwrap();
    assert_eq!(lock.serial(), 1);
    lock.release().unwrap();
    let port = p.port;
    drop(p);
    // Nobody listens any more.
    assert!(support::eventually(Duration::from_secs(5), || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    }));
    let e = l.lock("through", "after").unwrap_err();
    assert_eq!(e.kind(), turn::ErrorKind::Connection, "{e}");
}

// ---- the history checker on made-up histories ----

/// A history built by hand: times in ms.
#[derive(Default)]
struct Made(Vec<Event>);

impl Made {
    fn at(&mut self, ms: u64, worker: &str, id: &str, what: What) -> &mut Made {
        self.on(ms, worker, id, "r", what)
    }

    /// An event on `resource`.
    fn on(&mut self, ms: u64, worker: &str, id: &str, resource: &str, what: What) -> &mut Made {
        self.0.push(Event {
            t: ms * 1_000_000,
            worker: worker.into(),
            id: id.into(),
            resource: resource.into(),
            what,
        });
        self
    }

    /// A whole clean hold from `from` to `to` ms with this serial/token.
    fn hold(&mut self, worker: &str, id: &str, from: u64, to: u64, token: u64) -> &mut Made {
        self.at(from, worker, id, What::start(1000));
        self.held(worker, id, "r", from + 1, to, token, token)
    }

    /// A whole clean hold of `mode` on `resource`, started at `from`,
    /// granted at `from` + 1 ms, released at `to`.
    fn hold_as(&mut self, id: &str, resource: &str, mode: Mode, from: u64, to: u64) -> &mut Made {
        let serial = self.0.len() as u64 + 1;
        self.start_as(id, resource, mode, from)
            .held(id, id, resource, from + 1, to, serial, serial)
    }

    /// The start of an acquire of `mode` on `resource` (worker named as
    /// the id).
    fn start_as(&mut self, id: &str, resource: &str, mode: Mode, at: u64) -> &mut Made {
        self.on(
            at,
            id,
            id,
            resource,
            What::Start {
                lease_ms: 1000,
                mode,
                all: Vec::new(),
            },
        )
    }

    /// The rest of a clean hold: granted at `from`, released at `to`.
    #[allow(clippy::too_many_arguments)]
    fn held(
        &mut self,
        worker: &str,
        id: &str,
        resource: &str,
        from: u64,
        to: u64,
        serial: u64,
        token: u64,
    ) -> &mut Made {
        self.on(from, worker, id, resource, What::Granted { serial, token })
            .on(
                from,
                worker,
                id,
                resource,
                What::Check {
                    ok: true,
                    at_grant: true,
                },
            )
            .on(
                from + 1,
                worker,
                id,
                resource,
                What::Stored {
                    token,
                    accepted: true,
                },
            )
            .on(
                to - 1,
                worker,
                id,
                resource,
                What::Check {
                    ok: true,
                    at_grant: false,
                },
            )
            .on(to, worker, id, resource, What::ReleaseCalled)
            .on(to + 1, worker, id, resource, What::Released { ok: true })
    }

    /// A clean acquire of all of `resources` (plain), started at `from`,
    /// its locks granted at `from` + 1 ms, released at `to`.
    fn hold_all(&mut self, id: &str, resources: &[&str], from: u64, to: u64) -> &mut Made {
        let all: Vec<String> = resources.iter().map(|r| r.to_string()).collect();
        for r in resources {
            self.on(
                from,
                id,
                id,
                r,
                What::Start {
                    lease_ms: 1000,
                    mode: Mode::Plain,
                    all: all.clone(),
                },
            );
        }
        for r in resources {
            let serial = self.0.len() as u64 + 1;
            self.held(id, id, r, from + 1, to, serial, serial);
        }
        self
    }

    /// The held steps of `id` on `resource` after its grant, removed (the
    /// hold goes on past the history's end, or was granted elsewhere).
    fn unfinished(&mut self, id: &str, resource: &str) -> &mut Made {
        self.0.retain(|e| {
            e.id != id
                || e.resource != resource
                || matches!(e.what, What::Start { .. } | What::Granted { .. })
        });
        self
    }

    fn check(&self) -> Vec<Violation> {
        check(&self.0, &Rules::default()).violations
    }
}

#[test]
fn checker_passes_a_clean_history_and_counts() {
    let mut h = Made::default();
    h.hold("a", "a1", 0, 10, 1)
        .hold("b", "b1", 12, 20, 2)
        .hold("a", "a2", 21, 30, 3);
    // A failed acquire, and a lost hold with its lost check.
    h.at(31, "c", "c1", What::start(1000)).at(
        32,
        "c",
        "c1",
        What::Failed {
            error: "Timeout".into(),
        },
    );
    let report = check(&h.0, &Rules::default());
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!(
        (report.granted, report.clean, report.failed),
        (3, 3, 1),
        "{report}"
    );
    // Lines round-trip, and a line cut short is skipped.
    let text: String = h.0.iter().map(|e| e.line() + "\n").collect();
    let mut back = parse(&text);
    assert_eq!(back, h.0);
    back = parse(&format!("{text}H 99 x x1 r gran"));
    assert_eq!(back.len(), h.0.len());
}

#[test]
fn checker_finds_an_overlap_of_clean_holds() {
    let mut h = Made::default();
    h.hold("a", "a1", 0, 10, 1).hold("b", "b1", 5, 20, 2);
    let v = h.check();
    assert!(
        matches!(&v[..], [Violation::Overlap { first, second, .. }] if first == "a1" && second == "b1"),
        "{v:?}"
    );
    // Not when one of them was told its lock was lost.
    let mut h = Made::default();
    h.hold("a", "a1", 0, 10, 1).hold("b", "b1", 5, 20, 2);
    for e in h.0.iter_mut() {
        if e.id == "a1" && e.what == (What::Released { ok: true }) {
            e.what = What::Released { ok: false };
        }
    }
    assert!(h.check().is_empty());
}

#[test]
fn checker_finds_a_token_going_back_or_repeating() {
    let mut h = Made::default();
    h.hold("a", "a1", 0, 10, 5).hold("b", "b1", 12, 20, 3);
    let v = h.check();
    assert!(
        v.iter().any(|v| matches!(
            v,
            Violation::TokenBack {
                earlier_token: 5,
                later_token: 3,
                ..
            }
        )),
        "{v:?}"
    );
    let mut h = Made::default();
    h.hold("a", "a1", 0, 10, 4).hold("b", "b1", 12, 20, 4);
    assert!(
        h.check()
            .iter()
            .any(|v| matches!(v, Violation::TokenBack { .. }))
    );
}

#[test]
fn checker_finds_a_fencing_rejection_of_a_clean_holder() {
    let mut h = Made::default();
    h.hold("a", "a1", 0, 10, 1);
    h.0.iter_mut()
        .find(|e| matches!(e.what, What::Stored { .. }))
        .unwrap()
        .what = What::Stored {
        token: 1,
        accepted: false,
    };
    let report = check(&h.0, &Rules::default());
    assert_eq!(report.rejected, 1);
    assert!(
        matches!(
            &report.violations[..],
            [Violation::Rejected { token: 1, .. }]
        ),
        "{report}"
    );
}

#[test]
fn checker_finds_a_fifo_break() {
    let mut h = Made::default();
    // a1 waits from 0 with ticket 2 (seen queued at 1); b1 starts at 2 and
    // is granted at 6, before a1 (granted with ticket 2 at 10).
    h.at(0, "a", "a1", What::start(1000))
        .at(1, "a", "a1", What::Queued { serial: 2 })
        .at(2, "b", "b1", What::start(1000))
        .at(
            6,
            "b",
            "b1",
            What::Granted {
                serial: 3,
                token: 3,
            },
        )
        .at(8, "b", "b1", What::ReleaseCalled)
        .at(9, "b", "b1", What::Released { ok: true })
        .at(
            10,
            "a",
            "a1",
            What::Granted {
                serial: 2,
                token: 2,
            },
        )
        .at(11, "a", "a1", What::ReleaseCalled)
        .at(12, "a", "a1", What::Released { ok: true });
    let v = h.check();
    assert!(
        v.iter().any(|v| matches!(
            v,
            Violation::FifoBreak {
                first_serial: 2,
                later_serial: 3,
                ..
            }
        )),
        "{v:?}"
    );
}

#[test]
fn checker_finds_a_stranded_waiter_and_measures_from_the_last_fault() {
    let lease = What::start(1000);
    let mut h = Made::default();
    // a1 holds, its worker dies at 100 ms; b1 waits and is granted only at
    // 3000 ms (> 1000 ms lease + 1 s).
    h.at(0, "a", "a1", lease.clone())
        .at(
            1,
            "a",
            "a1",
            What::Granted {
                serial: 1,
                token: 1,
            },
        )
        .at(2, "b", "b1", lease.clone())
        .at(100, "a", "-", What::Died)
        .at(
            3000,
            "b",
            "b1",
            What::Granted {
                serial: 2,
                token: 2,
            },
        );
    let v = h.check();
    assert!(
        matches!(&v[..], [Violation::Stranded { waiters, .. }] if waiters == &["b1".to_string()]),
        "{v:?}"
    );
    // Granted at 1900 ms: within the bound.
    h.0.last_mut().unwrap().t = 1_900_000_000;
    assert!(h.check().is_empty());
    // A fault from 50 ms to 2500 ms: the bound counts from its end.
    h.0.last_mut().unwrap().t = 4_000_000_000;
    h.at(
        50,
        "-",
        "-",
        What::FaultStart {
            name: "restart".into(),
        },
    )
    .at(
        2500,
        "-",
        "-",
        What::FaultEnd {
            name: "restart".into(),
        },
    );
    assert!(h.check().is_empty(), "{:?}", h.check());
}

#[test]
fn checker_finds_an_ok_that_was_not_held_and_an_ok_after_lost() {
    let mut h = Made::default();
    h.hold("a", "a1", 0, 10, 1);
    h.0.iter_mut()
        .find(|e| matches!(e.what, What::Check { at_grant: true, .. }))
        .unwrap()
        .what = What::Check {
        ok: false,
        at_grant: true,
    };
    let v = h.check();
    assert!(
        v.iter()
            .any(|v| matches!(v, Violation::LostAtGrant { serial: 1, .. })),
        "{v:?}"
    );
    assert!(
        v.iter().any(|v| matches!(
            v,
            Violation::OkAfterLost {
                what: "a check",
                ..
            }
        )),
        "{v:?}"
    );
    assert!(
        v.iter().any(|v| matches!(
            v,
            Violation::OkAfterLost {
                what: "the release",
                ..
            }
        )),
        "{v:?}"
    );
}

#[test]
fn checker_counts_any_loss_when_no_fault_was_injected() {
    let mut h = Made::default();
    h.hold("a", "a1", 0, 10, 1);
    h.0.last_mut().unwrap().what = What::Released { ok: false };
    let rules = Rules {
        no_loss: true,
        ..Rules::default()
    };
    let report = check(&h.0, &rules);
    assert_eq!(report.lost, 1);
    assert!(
        matches!(&report.violations[..], [Violation::Lost { serial: 1, .. }]),
        "{report}"
    );
    assert!(check(&h.0, &Rules::default()).violations.is_empty());
}

// ---- the shared modes and acquires of all ----

/// A semaphore of 3 permits, taken with this weight.
fn sem(weight: u32) -> Mode {
    Mode::Semaphore { permits: 3, weight }
}

const SHARED: Mode = Mode::ReadWrite { exclusive: false };
const EXCLUSIVE: Mode = Mode::ReadWrite { exclusive: true };

#[test]
fn checker_passes_clean_shared_holds_and_acquires_of_all() {
    let mut h = Made::default();
    // Semaphore: 1 + 2 permits at once, then 2 + 1.
    h.hold_as("s1", "s", sem(1), 0, 10)
        .hold_as("s2", "s", sem(2), 2, 12)
        .hold_as("s3", "s", sem(1), 11, 20);
    // Read-write: two readers together, a writer alone, a reader after.
    h.hold_as("r1", "rw", SHARED, 0, 10)
        .hold_as("r2", "rw", SHARED, 1, 12)
        .hold_as("w1", "rw", EXCLUSIVE, 13, 20)
        .hold_as("r3", "rw", SHARED, 21, 30);
    // All of a and b, then b alone, then all of b and c.
    h.hold_all("x1", &["b", "a"], 0, 10)
        .hold_as("y1", "b", Mode::Plain, 11, 20)
        .hold_all("x2", &["b", "c"], 21, 30);
    let report = check(&h.0, &Rules::default());
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!((report.granted, report.clean), (12, 12), "{report}");
    // Modes and sets round-trip through lines.
    let text: String = h.0.iter().map(|e| e.line() + "\n").collect();
    assert!(text.contains(" start 1000 sem:3:2\n"), "{text}");
    assert!(text.contains(" start 1000 plain all:b,a\n"), "{text}");
    assert_eq!(parse(&text), h.0);
}

#[test]
fn checker_finds_holders_over_a_semaphores_permits() {
    let mut h = Made::default();
    h.hold_as("a1", "s", sem(2), 0, 10)
        .hold_as("b1", "s", sem(1), 2, 12)
        .hold_as("c1", "s", sem(1), 5, 15);
    let v = h.check();
    assert!(
        matches!(&v[..], [Violation::OverPermits { permits: 3, weight: 4, holders, .. }]
            if holders == &["a1", "b1", "c1"]),
        "{v:?}"
    );
    // Not when one of them was told its lock was lost.
    for e in h.0.iter_mut() {
        if e.id == "b1" && e.what == (What::Released { ok: true }) {
            e.what = What::Released { ok: false };
        }
    }
    assert!(h.check().is_empty(), "{:?}", h.check());
}

#[test]
fn checker_finds_a_shared_holder_beside_an_exclusive_one() {
    let mut h = Made::default();
    h.hold_as("r1", "rw", SHARED, 0, 10)
        .hold_as("w1", "rw", EXCLUSIVE, 5, 15);
    let v = h.check();
    assert!(
        matches!(&v[..], [Violation::SharedBesideExclusive { exclusive, shared, .. }]
            if exclusive == "w1" && shared == "r1"),
        "{v:?}"
    );
    // Two exclusive holders at once: an overlap.
    let mut h = Made::default();
    h.hold_as("w1", "rw", EXCLUSIVE, 0, 10)
        .hold_as("w2", "rw", EXCLUSIVE, 5, 15);
    let v = h.check();
    assert!(matches!(&v[..], [Violation::Overlap { .. }]), "{v:?}");
}

#[test]
fn checker_finds_two_kinds_held_at_once() {
    let mut h = Made::default();
    h.hold_as("p1", "r", Mode::Plain, 0, 10)
        .hold_as("s1", "r", sem(1), 5, 15);
    // And two semaphores of other permits.
    h.hold_as("s2", "s", sem(1), 0, 10).hold_as(
        "s3",
        "s",
        Mode::Semaphore {
            permits: 4,
            weight: 1,
        },
        5,
        15,
    );
    let v = h.check();
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(
        v.iter().all(|v| matches!(v, Violation::KindsMixed { .. })),
        "{v:?}"
    );
}

#[test]
fn checker_finds_an_overlap_on_one_resource_of_an_acquire_of_all() {
    let mut h = Made::default();
    h.hold_all("x1", &["a", "b"], 0, 10)
        .hold_as("y1", "b", Mode::Plain, 5, 15)
        .hold_as("z1", "a", Mode::Plain, 11, 20);
    let v = h.check();
    assert!(
        matches!(&v[..], [Violation::Overlap { resource, first, second, .. }]
            if resource == "b" && first == "x1" && second == "y1"),
        "{v:?}"
    );
}

#[test]
fn checker_finds_an_acquire_of_all_that_answered_without_every_lock_in_order() {
    // Ok with a lock on a alone.
    let mut h = Made::default();
    h.hold_all("x1", &["b", "a"], 0, 10);
    h.0.retain(|e| e.resource != "b" || matches!(e.what, What::Start { .. }));
    let v = h.check();
    assert!(
        matches!(&v[..], [Violation::NotAll { asked, got, .. }]
            if asked == &["b", "a"] && got == &["a"]),
        "{v:?}"
    );
    // Ok with both, in the other order.
    let mut h = Made::default();
    h.hold_all("x1", &["b", "a"], 0, 10);
    for e in h.0.iter_mut() {
        if matches!(e.what, What::Granted { .. }) && e.resource == "a" {
            e.t -= 1;
        }
    }
    let v = h.check();
    assert!(
        matches!(&v[..], [Violation::NotAll { got, .. }] if got == &["a", "b"]),
        "{v:?}"
    );
}

/// A semaphore of 3: H holds 2 permits from 1 to 100 ms; A (2 permits,
/// serial 2) starts at 1 and is granted at `a_granted`; B (1 permit,
/// serial 3) starts at 3 and is granted at `b_granted`.
fn barging(queued: bool, b_granted: u64, a_granted: u64) -> Made {
    let mut h = Made::default();
    h.start_as("h1", "s", sem(2), 0)
        .held("h1", "h1", "s", 1, 100, 1, 101)
        .start_as("a1", "s", sem(2), 1)
        .start_as("b1", "s", sem(1), 3)
        .held("b1", "b1", "s", b_granted, b_granted + 3, 3, 103)
        .held("a1", "a1", "s", a_granted, a_granted + 5, 2, 102);
    if queued {
        h.on(2, "a1", "a1", "s", What::Queued { serial: 2 });
    }
    h
}

#[test]
fn checker_finds_a_ticket_barging_past_an_earlier_one_on_a_semaphore() {
    // B took the permit left beside H while A, drawn before it, waited.
    for queued in [true, false] {
        let v = barging(queued, 5, 101).check();
        assert!(
            matches!(&v[..], [Violation::FifoBreak { first, later, .. }]
                if first == "a1" && later == "b1"),
            "seen queued: {queued}: {v:?}"
        );
    }
    // Admitted together once H left, B's answer first: no barging.
    assert!(barging(true, 101, 103).check().is_empty());
    // Without the queue seen, a fault between the starts and A's grant
    // (the queue may have been made anew) leaves the serials unordered.
    let mut h = barging(false, 5, 101);
    h.on(
        2,
        "-",
        "-",
        "-",
        What::FaultStart {
            name: "flushdb".into(),
        },
    )
    .on(
        2,
        "-",
        "-",
        "-",
        What::FaultEnd {
            name: "flushdb".into(),
        },
    );
    assert!(h.check().is_empty(), "{:?}", h.check());
}

#[test]
fn checker_lets_shared_holders_admitted_together_answer_in_any_order_but_finds_a_token_going_back()
{
    // A (token 11) and B (token 12) start together and are admitted
    // together; B answers first.
    let mut h = Made::default();
    h.start_as("a1", "s", sem(1), 0)
        .start_as("b1", "s", sem(1), 0)
        .held("b1", "b1", "s", 5, 20, 2, 12)
        .held("a1", "a1", "s", 6, 20, 1, 11);
    assert!(h.check().is_empty(), "{:?}", h.check());
    // C starts after both answered, and is granted a token below B's.
    h.start_as("c1", "s", sem(1), 30)
        .held("c1", "c1", "s", 31, 40, 3, 10);
    let v = h.check();
    assert!(
        matches!(
            &v[..],
            [Violation::TokenBack {
                earlier_token: 12,
                later_token: 10,
                ..
            }]
        ),
        "{v:?}"
    );
    // Or B's token again.
    let mut h = Made::default();
    h.hold_as("a1", "s", sem(1), 0, 10);
    h.start_as("b1", "s", sem(1), 2)
        .held("b1", "b1", "s", 3, 10, 2, 1);
    let v = h.check();
    assert!(
        v.iter().any(|v| matches!(
            v,
            Violation::TokenBack {
                earlier_token: 1,
                later_token: 1,
                ..
            }
        )),
        "{v:?}"
    );
}

#[test]
fn checker_finds_a_dead_holders_permits_not_coming_back() {
    // A holds 2 of 3 permits and dies at 100 ms; B holds 1 permit; W asks
    // for 2: it fits once A's permits come back.
    let made = |w_granted: u64, b_weight: u32| {
        let mut h = Made::default();
        h.hold_as("b1", "s", sem(b_weight), 0, 5000)
            .start_as("a1", "s", sem(2), 0)
            .on(
                1,
                "a1",
                "a1",
                "s",
                What::Granted {
                    serial: 2,
                    token: 2,
                },
            )
            .on(100, "a1", "-", "-", What::Died)
            .start_as("w1", "s", sem(2), 50)
            .held("w1", "w1", "s", w_granted, w_granted + 10, 3, 3);
        h.unfinished("a1", "s");
        h
    };
    let v = made(3000, 1).check();
    assert!(
        matches!(&v[..], [Violation::Stranded { resource, waiters, .. }]
            if resource == "s" && waiters == &["w1"]),
        "{v:?}"
    );
    // Granted at 1900 ms: within the lease + 1 s of A's death.
    assert!(made(1900, 1).check().is_empty());
    // Beside a live holder of 2 permits W does not fit: not stranded.
    let v = made(6000, 2).check();
    assert!(
        v.iter().all(|v| !matches!(v, Violation::Stranded { .. })),
        "{v:?}"
    );
}

#[test]
fn unrest_records_a_failover_sentinel_makes_without_the_test() {
    let set = support::sentinel::Sentinels::start();
    let history = support::history::History::new();
    let mut unrest = set.record_unrest(&history, false);
    // A failover the test does not record itself: SENTINEL FAILOVER, as
    // Sentinel's own failovers come.
    set.planned_failover();
    assert!(set.switched(Duration::from_secs(60)), "no switch");
    let calm = unrest.wait_calm(Duration::from_secs(60));
    unrest.stop();
    let events = history.events();
    let at = |want: fn(&What) -> bool| events.iter().find(|e| want(&e.what)).map(|e| e.t);
    let started = at(|w| matches!(w, What::FaultStart { name } if name == "sentinel unrest"));
    let ended = at(|w| matches!(w, What::FaultEnd { name } if name == "sentinel unrest"));
    assert!(
        matches!((started, ended, calm), (Some(s), Some(e), Some(c)) if s < e && e <= c),
        "the failover was not recorded as one fault ending when the set was calm: \
         start {started:?}, end {ended:?}, calm since {calm:?}"
    );
}
