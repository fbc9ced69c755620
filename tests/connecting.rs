//! Connecting: Unix sockets, TLS (a CA, an untrusted server, mutual TLS),
//! an ACL user limited to the turn keys and channels, a wrong password,
//! and Sentinel failover. Every server is started here on loopback.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use redis::Commands;
use support::cluster::Cluster;
use support::sentinel::Sentinels;
use support::{Redis, queued};
use turn::{Acquire, ErrorKind, Locker, Options, Tls, Wait};

/// Takes a lock while another thread waits for it, then status, bump and
/// reset: everything the library does, including pubsub hand-off.
fn exercise(l: &Locker) {
    let held = l.lock("conn", "holder").unwrap();
    let l2 = l.clone();
    let waiter = thread::spawn(move || {
        l2.acquire(
            "conn",
            &Acquire::label("waiter").wait(Wait::For(Duration::from_secs(30))),
        )
        .map(|lock| lock.serial())
    });
    assert!(queued(l, "conn", 2));
    held.release().unwrap();
    let serial = waiter.join().unwrap().unwrap();
    assert_eq!(serial, 2);
    assert!(l.bump("conn").unwrap() >= 3);
    assert_eq!(l.resources().unwrap(), ["conn"]);
    l.reset("conn").unwrap();
}

/// A server listening on a Unix socket too (with `extra` arguments), and
/// the socket's path.
fn unix_redis(extra: &[&str]) -> (Redis, std::path::PathBuf) {
    let mut args = vec![
        "--save",
        "",
        "--unixsocket",
        "{dir}/redis.sock",
        "--unixsocketperm",
        "700",
    ];
    args.extend_from_slice(extra);
    let r = Redis::start_with(&args);
    let sock = r.dir.path().join("redis.sock");
    (r, sock)
}

#[test]
fn unix_socket_urls() {
    let (_r, sock) = unix_redis(&[]);
    for url in [
        format!("redis+unix://{}?db=0", sock.display()),
        format!("unix://{}", sock.display()),
    ] {
        let l = Locker::new(Some(&url)).unwrap();
        exercise(&l);
    }
}

/// A password on a Unix socket URL is `pass=`; a parameter the URL does
/// not take (`password=`) is refused by name, not ignored (which would
/// connect without the password and fail later, elsewhere).
#[test]
fn a_unix_socket_url_takes_its_password_and_refuses_unknown_parameters() {
    let (_r, sock) = unix_redis(&["--requirepass", "s3cret"]);
    let l = Locker::new(Some(&format!("unix://{}?pass=s3cret", sock.display()))).unwrap();
    exercise(&l);
    let e = Locker::new(Some(&format!("unix://{}?password=s3cret", sock.display()))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("\"password\""), "{e}");
    assert!(e.message().contains("pass="), "{e}");
    assert!(!e.message().contains("s3cret"), "{e}");
}

/// A cluster URL whose seed is a server without cluster support: the
/// locker is not made, and the error names the seed and the reason.
#[test]
fn a_cluster_url_at_a_plain_server_says_so_when_the_locker_is_made() {
    let r = Redis::start();
    let e = Locker::new(Some(&format!("redis+cluster://127.0.0.1:{}", r.port))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(
        e.message()
            .contains(&format!("at the cluster nodes 127.0.0.1:{}", r.port)),
        "{e}"
    );
    assert!(e.message().contains("cluster support disabled"), "{e}");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate; and
/// a second, untrusted CA with its own server certificate.
fn certificates(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (ca, name) in [("ca", "turn test CA"), ("other", "untrusted CA")] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
    }
    for (who, ca, ext) in [
        ("server", "ca", "server.ext"),
        ("client", "ca", "client.ext"),
        ("rogue", "other", "server.ext"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
                "-subj",
                "/CN=localhost",
            ],
        );
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "",
            "-CA",
            "",
            "-CAkey",
            "",
            "-CAcreateserial",
            "-out",
            "",
            "-days",
            "2",
        ];
        let (csr, cacrt, cakey, crt) = (
            format!("{who}.csr"),
            format!("{ca}.crt"),
            format!("{ca}.key"),
            format!("{who}.crt"),
        );
        args[3] = &csr;
        args[5] = &cacrt;
        args[7] = &cakey;
        args[10] = &crt;
        args.extend(["-extfile", ext]);
        openssl(dir, &args);
    }
}

fn tls_server(certs: &Path, server: &str, auth_clients: &str) -> Redis {
    let cert = certs.join(format!("{server}.crt")).display().to_string();
    let key = certs.join(format!("{server}.key")).display().to_string();
    let ca = certs.join("ca.crt").display().to_string();
    Redis::start_custom(
        &[],
        &[
            "--save",
            "",
            "--port",
            "0",
            "--tls-port",
            "{port}",
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            auth_clients,
        ],
        true,
        |_, _| {},
    )
}

fn tls_options(certs: &Path, client: bool) -> Options {
    Options {
        tls: Some(Tls {
            ca_file: Some(certs.join("ca.crt")),
            cert_file: client.then(|| certs.join("client.crt")),
            key_file: client.then(|| certs.join("client.key")),
        }),
        connect_timeout: Duration::from_secs(2),
        ..Options::default()
    }
}

#[test]
fn tls_with_a_ca_refusing_untrusted_servers_and_mutual_tls() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let url = |r: &Redis| format!("rediss://127.0.0.1:{}/0", r.port);

    let r = tls_server(certs.path(), "server", "no");
    let l = Locker::with_options(Some(&url(&r)), tls_options(certs.path(), false)).unwrap();
    exercise(&l);
    // The system's roots do not trust the test CA.
    let e = Locker::new(Some(&url(&r))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");

    let rogue = tls_server(certs.path(), "rogue", "no");
    let e = Locker::with_options(Some(&url(&rogue)), tls_options(certs.path(), false)).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Connection,
        "an untrusted certificate is refused: {e}"
    );

    let mutual = tls_server(certs.path(), "server", "yes");
    let e =
        Locker::with_options(Some(&url(&mutual)), tls_options(certs.path(), false)).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Connection,
        "no client certificate: {e}"
    );
    let l = Locker::with_options(Some(&url(&mutual)), tls_options(certs.path(), true)).unwrap();
    exercise(&l);

    let e = Locker::with_options(
        Some(&format!("redis://127.0.0.1:{}/0", r.port)),
        tls_options(certs.path(), false),
    )
    .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidArgument,
        "TLS files with a redis:// URL"
    );
}

/// The ACL rule the README gives for a turn user.
pub const ACL_RULE: &str = "on ~turn:* &turn:* -@all +eval +evalsha +script|load +ping +scan +select +subscribe +unsubscribe +publish +incr +setnx +set +get +mget +exists +pttl +del +sadd +srem +pexpire +time";

#[test]
fn an_acl_user_limited_to_turn_keys_and_channels() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let documented = format!(
        "ACL SETUSER turn on >PASSWORD {}",
        ACL_RULE.strip_prefix("on ").unwrap()
    );
    assert!(
        readme.contains(&documented),
        "the README gives the rule tested here"
    );
    let r = Redis::start();
    let mut admin = r.conn();
    let mut acl = redis::cmd("ACL");
    acl.arg("SETUSER").arg("turnuser").arg(">s3cret pw");
    for part in ACL_RULE.split(' ') {
        acl.arg(part);
    }
    let _: () = acl.query(&mut admin).unwrap();
    let url = format!("redis://turnuser:s3cret%20pw@127.0.0.1:{}/0", r.port);
    let l = Locker::new(Some(&url)).unwrap();
    exercise(&l);
    // The user can touch nothing else.
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    assert!(c.set::<_, _, ()>("other:key", "x").is_err());

    // A user the ACL refuses a command the library needs (the scripts):
    // a connection error that says so and points at the rule.
    let mut acl = redis::cmd("ACL");
    acl.arg("SETUSER").arg("noscripts").arg(">s3cret pw");
    for part in ACL_RULE.split(' ').filter(|p| !p.starts_with("+eval")) {
        acl.arg(part);
    }
    let _: () = acl.query(&mut admin).unwrap();
    let url = format!("redis://noscripts:s3cret%20pw@127.0.0.1:{}/0", r.port);
    let l = Locker::new(Some(&url)).unwrap();
    let e = l.lock("conn", "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.message().contains("permission denied"), "{e}");
    assert!(e.message().contains("ACL rule"), "{e}");

    let wrong = format!("redis://turnuser:nope-wrong@127.0.0.1:{}/0", r.port);
    let e = Locker::new(Some(&wrong)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(!e.message().contains("nope-wrong"), "{e}");
    assert!(
        e.message().to_lowercase().contains("auth") || e.message().contains("WRONGPASS"),
        "{e}"
    );
}

#[test]
fn sentinel_failover_is_followed() {
    let mut set = Sentinels::start();
    let url = set.url();
    let l = Locker::new(Some(&url)).unwrap();
    exercise(&l);
    let held = l
        .acquire(
            "failover",
            &Acquire::label("held").expire(Duration::from_secs(2)),
        )
        .unwrap();
    // Let the write reach the replica, then lose the master.
    let _: () = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query(&mut set.master.conn())
        .map(|_: i64| ())
        .unwrap();
    assert!(set.fail_over(Duration::from_secs(60)), "no failover");
    // Grants wait for a replica by default on Sentinel: the old master
    // comes back, and the sentinels make it the new master's replica.
    set.master.restart();
    // As an operator would, at once (Sentinel does it too, in its time).
    set.demote_old_master();
    // New acquires work once the library has reconnected by itself.
    let start = Instant::now();
    let lock = loop {
        match l.acquire(
            "after",
            &Acquire::label("x").wait(Wait::For(Duration::from_secs(10))),
        ) {
            Ok(lock) => break lock,
            Err(e)
                if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout)
                    && start.elapsed() < Duration::from_secs(60) =>
            {
                eprintln!("{:?} after {:?}: {e}", e.kind(), start.elapsed());
                thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("acquire after failover: {e}"),
        }
    };
    lock.release().unwrap();
    // The held lock is either still held (its key made it to the new
    // master) or reported lost: never held with its key gone.
    thread::sleep(Duration::from_secs(3));
    let key_there: bool = set.replica.conn().exists("turn:failover:serial:1").unwrap();
    assert!(held.is_lost() || key_there, "held without a presence key");
    let _ = held.release();
}

#[test]
fn a_cluster_keeps_each_queue_in_one_slot() {
    let cluster = Cluster::start(3);
    let url = cluster.url();
    let l = Locker::new(Some(&url)).unwrap();
    exercise(&l);

    // Many resources, threads contending on each: exclusion and FIFO per
    // resource, with hand-offs announced by whichever node owns the queue.
    let resources: Vec<String> = (0..24).map(|i| format!("res-{i}")).collect();
    let inside: std::sync::Arc<Vec<std::sync::atomic::AtomicUsize>> =
        std::sync::Arc::new((0..resources.len()).map(|_| Default::default()).collect());
    let grants = std::sync::Arc::new(std::sync::Mutex::new(vec![Vec::new(); resources.len()]));
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (l, inside, grants, resources) =
                (l.clone(), inside.clone(), grants.clone(), resources.clone());
            thread::spawn(move || {
                for round in 0..4 {
                    for k in 0..resources.len() {
                        let i = (k * 7 + t + round) % resources.len();
                        let lock = l
                            .acquire(
                                &resources[i],
                                &Acquire::label("c").wait(Wait::For(Duration::from_secs(60))),
                            )
                            .unwrap();
                        assert_eq!(
                            inside[i].fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                            0,
                            "overlap"
                        );
                        grants.lock().unwrap()[i].push(lock.serial());
                        inside[i].fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        lock.release().unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for g in grants.lock().unwrap().iter() {
        assert_eq!(g.len(), 24);
        assert!(
            g.windows(2).all(|w| w[0] < w[1]),
            "FIFO per resource: {g:?}"
        );
    }
    let mut found = l.resources().unwrap();
    found.sort();
    let mut want = resources.clone();
    want.sort();
    assert_eq!(found, want, "discovery over every master");
    assert_eq!(l.status("res-3").unwrap().dispenser, 24);
    // The keys carry the hash tag, and the queues are spread over the nodes.
    for n in &cluster.nodes {
        let size: i64 = redis::cmd("DBSIZE").query(&mut n.conn()).unwrap();
        assert!(size > 0, "a node holds no queue");
    }
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("turn:{res-3}:dispenser")
        .query(&mut cluster.nodes[0].conn())
        .unwrap();
    let slot2: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("turn:{res-3}:serial:7")
        .query(&mut cluster.nodes[0].conn())
        .unwrap();
    assert_eq!(slot, slot2);
}

#[test]
fn port_0_and_a_negative_database_are_invalid_urls() {
    let r = Redis::start();
    for url in [
        "redis://127.0.0.1:0/0".to_string(),
        "redis://127.0.0.1:0".to_string(),
        "rediss://127.0.0.1:0/0".to_string(),
        format!("redis://127.0.0.1:{}/-1", r.port),
        "redis://127.0.0.1:6379/-1".to_string(),
        "redis+unix:///tmp/no-such-redis.sock?db=-1".to_string(),
        "redis+sentinel://127.0.0.1:0/mymaster".to_string(),
        "redis+cluster://127.0.0.1:0".to_string(),
    ] {
        match Locker::new(Some(&url)) {
            Ok(_) => panic!("{url} was accepted"),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::InvalidArgument,
                "{url}: {}",
                e.message()
            ),
        }
    }
    let fine = Locker::new(Some(&format!("redis://127.0.0.1:{}/1", r.port))).unwrap();
    exercise(&fine);
}

/// A loopback port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The error of `Locker::new(url)`, checked: a `Connection` error that
/// never shows the password `secret` and says each of `says`.
fn connection_error(url: &str, secret: &str, says: &[&str]) -> String {
    let e = match Locker::with_options(
        Some(url),
        Options {
            connect_timeout: Duration::from_secs(2),
            ..Options::default()
        },
    ) {
        Ok(_) => panic!("{url} connected"),
        Err(e) => e,
    };
    let text = e.message().to_string();
    assert_eq!(e.kind(), ErrorKind::Connection, "{url}: {text}");
    assert!(!text.contains(secret), "{url}: the password shows: {text}");
    for s in says {
        assert!(text.contains(s), "{url}: no {s:?} in {text:?}");
    }
    text
}

#[test]
fn a_connection_error_names_the_address_and_never_the_password() {
    let (a, b) = (closed_port(), closed_port());
    let text = connection_error(
        &format!("redis://u:sekret@127.0.0.1:{a}/0"),
        "sekret",
        &[&format!("cannot connect to redis at 127.0.0.1:{a}: ")],
    );
    assert!(text.contains("refused"), "{text}");
    connection_error(
        &format!("rediss://u:sekret@127.0.0.1:{a}/0"),
        "sekret",
        &[&format!("cannot connect to redis at 127.0.0.1:{a}: ")],
    );
    connection_error(
        "redis+unix:///tmp/no-such-turn-dir/redis.sock?db=0&pass=sekret",
        "sekret",
        &["cannot connect to redis at /tmp/no-such-turn-dir/redis.sock: "],
    );
    // Sentinel: the master's name and each sentinel tried.
    connection_error(
        &format!("redis+sentinel://u:sekret@127.0.0.1:{a},127.0.0.1:{b}/mymaster"),
        "sekret",
        &[
            &format!(
                "cannot connect to redis at the master \"mymaster\" of the sentinels \
                 127.0.0.1:{a}, 127.0.0.1:{b}: no sentinel answered"
            ),
            &format!("127.0.0.1:{a}: Connection refused"),
            &format!("127.0.0.1:{b}: Connection refused"),
        ],
    );
    // Cluster: the seeds.
    connection_error(
        &format!("redis+cluster://u:sekret@127.0.0.1:{a},127.0.0.1:{b}"),
        "sekret",
        &[&format!(
            "cannot connect to redis at the cluster nodes 127.0.0.1:{a}, 127.0.0.1:{b}: "
        )],
    );
}

#[test]
fn a_wrong_or_missing_password_is_an_authentication_failure() {
    let r = Redis::start_with(&[
        "--save",
        "",
        "--requirepass",
        "sekret",
        "--unixsocket",
        "{dir}/redis.sock",
        "--unixsocketperm",
        "700",
    ]);
    let sock = r.dir.path().join("redis.sock").display().to_string();
    let tcp = format!("127.0.0.1:{}", r.port);
    let mut admin = redis::Client::open(format!("redis://:sekret@{tcp}/0"))
        .unwrap()
        .get_connection()
        .unwrap();
    for rule in [
        &["SETUSER", "sleeper", "off", ">pw-of-sleeper", "~*", "+@all"][..],
        &["SETUSER", "limited", "on", ">pw-of-limited", "-@all"],
    ] {
        let _: () = redis::cmd("ACL").arg(rule).query(&mut admin).unwrap();
    }
    let wrong = "authentication failed at {}: the server refused the password";
    let none = "authentication failed at {}: the server requires a password and none was given";
    for (url, secret, says, at) in [
        (
            format!("redis://:wrong-pw@{tcp}/0"),
            "wrong-pw",
            wrong,
            &tcp,
        ),
        (
            format!("redis://nobody:wrong-pw@{tcp}/0"),
            "wrong-pw",
            wrong,
            &tcp,
        ),
        // A disabled user.
        (
            format!("redis://sleeper:pw-of-sleeper@{tcp}/0"),
            "pw-of-sleeper",
            wrong,
            &tcp,
        ),
        (format!("redis://{tcp}/0"), "sekret", none, &tcp),
        // SELECT is what the server refuses first here.
        (format!("redis://{tcp}/3"), "sekret", none, &tcp),
        (
            format!("unix://{sock}?pass=wrong-pw"),
            "wrong-pw",
            wrong,
            &sock,
        ),
        (format!("unix://{sock}"), "sekret", none, &sock),
        (
            format!("redis+cluster://:wrong-pw@{tcp}"),
            "wrong-pw",
            wrong,
            &format!("the cluster nodes {tcp}"),
        ),
    ] {
        connection_error(&url, secret, &[&says.replace("{}", at)]);
    }
    // A user that may not run PING: no authentication failure, but said.
    let text = connection_error(
        &format!("redis://limited:pw-of-limited@{tcp}/0"),
        "pw-of-limited",
        &[&format!("permission denied at {tcp}: ")],
    );
    assert!(!text.contains("authentication failed"), "{text}");
    let l = Locker::new(Some(&format!("redis://:sekret@{tcp}/0"))).unwrap();
    exercise(&l);

    // The C API: TURN_ERR_CONNECTION with the same words.
    let url = std::ffi::CString::new(format!("redis://:wrong-pw@{tcp}/0")).unwrap();
    let mut out: *mut turn::ffi::turn_locker = std::ptr::null_mut();
    // SAFETY: a NUL-terminated URL and a place for the locker.
    let code = unsafe { turn::ffi::turn_locker_new(url.as_ptr(), &mut out) };
    assert_eq!(code, turn::ffi::turn_result::TURN_ERR_CONNECTION);
    assert!(out.is_null());
    // SAFETY: the library's NUL-terminated text of this thread's last error.
    let text = unsafe { std::ffi::CStr::from_ptr(turn::ffi::turn_last_error()) }
        .to_string_lossy()
        .into_owned();
    assert!(text.contains(&wrong.replace("{}", &tcp)), "{text}");
    assert!(!text.contains("wrong-pw"), "{text}");

    // The tool says it on standard error.
    let out = Command::new(env!("CARGO_BIN_EXE_turn"))
        .args(["--url", &format!("redis://{tcp}/0"), "status"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.starts_with(&format!("turn: {}", none.replace("{}", &tcp))),
        "{said}"
    );
}

#[test]
fn a_password_required_after_connecting_is_an_authentication_failure() {
    let r = Redis::start();
    let l = Locker::new(Some(&r.url())).unwrap();
    l.lock("later", "x").unwrap().release().unwrap();
    // The locker's connections go; new ones are made without a password
    // to a server that now wants one.
    let mut admin = r.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("sekret")
        .query(&mut admin)
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query(&mut admin)
        .unwrap();
    let e = l.resources().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.message().starts_with("authentication failed"), "{e}");
    let e = l.lock("later", "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.message().starts_with("authentication failed"), "{e}");
}

#[test]
fn sentinel_errors_name_the_master_and_the_sentinels() {
    let master = Redis::start_with(&["--save", "", "--requirepass", "sekret"]);
    let s = support::sentinel::sentinel(master.port);
    let m = format!("127.0.0.1:{}", master.port);
    let named = format!(
        "{m}, the master \"mymaster\" named by the sentinels 127.0.0.1:{}",
        s.port
    );
    let url =
        |auth: &str, name: &str| format!("redis+sentinel://{auth}127.0.0.1:{}/{name}", s.port);
    connection_error(
        &url(":wrong-pw@", "mymaster"),
        "wrong-pw",
        &[&format!(
            "authentication failed at {named}: the server refused the password"
        )],
    );
    connection_error(
        &url("", "mymaster"),
        "sekret",
        &[&format!(
            "authentication failed at {named}: the server requires a password"
        )],
    );
    connection_error(
        &url(":sekret@", "nosuch"),
        "sekret",
        &[&format!(
            "cannot connect to redis at the master \"nosuch\" of the sentinels 127.0.0.1:{}: \
             no sentinel knows the master",
            s.port
        )],
    );
    Locker::new(Some(&url(":sekret@", "mymaster"))).unwrap();
}
