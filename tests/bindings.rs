//! Packaging and bindings: `make install` into a temporary prefix with
//! pkg-config, CMake and plain-Makefile builds against it (and against the
//! build tree), static linking, the Go binding under `go test -race`, the
//! Python ctypes binding under pytest, the Node.js binding under `node
//! --test`, and a fleet of Node.js, C and Python clients on one queue. Each
//! starts its own redis-server.

use crate::support;

use std::path::Path;
use std::process::Command;

use support::{Redis, root, soname_link, target_dir};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn pkg_config(path: &Path, args: &[&str]) -> Vec<String> {
    run(Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", path)
        .args(args))
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

#[test]
fn install_pkg_config_cmake_and_static() {
    let r = Redis::start();
    let build = target_dir();
    let prefix = tempfile::tempdir().unwrap();
    let p = prefix.path();
    run(Command::new("make").current_dir(root()).args([
        "-s",
        "install-files",
        &format!("PREFIX={}", p.display()),
        &format!("BUILD_DIR={}", build.display()),
    ]));
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let lib = p.join("lib");
    for f in [
        format!("libturn.so.{version}"),
        format!("libturn.so.{major}"),
        "libturn.so".into(),
        "libturn.a".into(),
        "pkgconfig/turn.pc".into(),
    ] {
        assert!(lib.join(&f).exists(), "{f} not installed");
    }
    assert!(p.join("include/turn.h").exists() && p.join("include/turn.hpp").exists());
    // The tool's manual pages and shell completions.
    for f in [
        "man/man1/turn.1",
        "man/man1/turn-lock.1",
        "bash-completion/completions/turn",
        "zsh/site-functions/_turn",
        "fish/vendor_completions.d/turn.fish",
    ] {
        let installed = std::fs::read_to_string(p.join("share").join(f)).unwrap_or_default();
        assert!(installed.contains("turn"), "{f} not installed");
    }
    let dynamic = run(Command::new("readelf")
        .arg("-d")
        .arg(lib.join(format!("libturn.so.{version}"))));
    assert!(
        dynamic.contains(&format!("libturn.so.{major}")),
        "no soname:\n{dynamic}"
    );

    // pkg-config of the installed library, with the plain Makefile.
    let pc = lib.join("pkgconfig");
    let flags = pkg_config(&pc, &["--cflags", "--libs", "turn"]);
    assert!(
        flags.contains(&format!("-I{}", p.join("include").display())),
        "{flags:?}"
    );
    let out = tempfile::tempdir().unwrap();
    run(Command::new("make")
        .current_dir(root().join("examples/c"))
        .env("PKG_CONFIG_PATH", &pc)
        .arg(format!("OUT={}", out.path().display())));
    let shown = run(Command::new(out.path().join("demo")).args([&r.url(), "pc", "make", "1"]));
    assert!(shown.contains("round 1: done with ticket 1"), "{shown}");

    // CMake with pkg_check_modules.
    let cmake_build = out.path().join("cmake");
    run(Command::new("cmake")
        .env("PKG_CONFIG_PATH", &pc)
        .arg("-S")
        .arg(root().join("examples/c"))
        .arg("-B")
        .arg(&cmake_build));
    run(Command::new("cmake").arg("--build").arg(&cmake_build));
    let shown = run(Command::new(cmake_build.join("demo")).args([&r.url(), "pc", "cmake", "1"]));
    assert!(shown.contains("round 1: done with ticket 2"), "{shown}");

    // Static linking, the README's recipe as written:
    //   cc prog.c $(pkg-config --cflags turn) -Wl,-Bstatic $(pkg-config --static --libs turn)
    let exe = out.path().join("demo-static");
    let recipe = format!(
        "cc {} $(pkg-config --cflags turn) -Wl,-Bstatic $(pkg-config --static --libs turn) -o {}",
        root().join("examples/c/demo.c").display(),
        exe.display()
    );
    run(Command::new("sh")
        .args(["-c", &recipe])
        .env("PKG_CONFIG_PATH", &pc));
    let needed = run(Command::new("readelf").arg("-d").arg(&exe));
    assert!(!needed.contains("libturn.so"), "not static:\n{needed}");
    let shown = run(Command::new(&exe).args([&r.url(), "pc", "static", "1"]));
    assert!(shown.contains("round 1: done with ticket 3"), "{shown}");

    // CMake's find_package with the installed turnConfig.cmake: the shared
    // library (turn::turn) and the archive (turn::turn_static).
    for f in ["turnConfig.cmake", "turnConfigVersion.cmake"] {
        assert!(lib.join("cmake/turn").join(f).exists(), "{f} not installed");
    }
    let project = out.path().join("find-package");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("CMakeLists.txt"),
        format!(
            "cmake_minimum_required(VERSION 3.13)\n\
             project(uses_turn C)\n\
             find_package(turn {version} CONFIG REQUIRED)\n\
             add_executable(app_shared {demo})\n\
             target_compile_options(app_shared PRIVATE -Wall -Wextra -Werror)\n\
             target_link_libraries(app_shared PRIVATE turn::turn)\n\
             add_executable(app_static {demo})\n\
             target_compile_options(app_static PRIVATE -Wall -Wextra -Werror)\n\
             target_link_libraries(app_static PRIVATE turn::turn_static)\n",
            demo = root().join("examples/c/demo.c").display()
        ),
    )
    .unwrap();
    let cmake_out = out.path().join("find-package-build");
    run(Command::new("cmake")
        .arg("-S")
        .arg(&project)
        .arg("-B")
        .arg(&cmake_out)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", p.display())));
    run(Command::new("cmake").arg("--build").arg(&cmake_out));
    let needed = run(Command::new("readelf")
        .arg("-d")
        .arg(cmake_out.join("app_static")));
    assert!(!needed.contains("libturn.so"), "not static:\n{needed}");
    let needed = run(Command::new("readelf")
        .arg("-d")
        .arg(cmake_out.join("app_shared")));
    assert!(needed.contains("libturn.so"), "not shared:\n{needed}");
    let shown =
        run(Command::new(cmake_out.join("app_shared")).args([&r.url(), "pc", "shared", "1"]));
    assert!(shown.contains("round 1: done with ticket 4"), "{shown}");
    let shown =
        run(Command::new(cmake_out.join("app_static")).args([&r.url(), "pc", "static", "1"]));
    assert!(shown.contains("round 1: done with ticket 5"), "{shown}");
    // A version it is not refuses.
    std::fs::write(
        project.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.13)\nproject(uses_turn C)\n\
         find_package(turn 99 CONFIG REQUIRED)\n",
    )
    .unwrap();
    let refused = Command::new("cmake")
        .arg("-S")
        .arg(&project)
        .arg("-B")
        .arg(out.path().join("find-package-99"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", p.display()))
        .output()
        .unwrap();
    assert!(!refused.status.success(), "turn 99 was found");

    // The build tree through turn-uninstalled.pc.
    soname_link();
    run(Command::new("make").current_dir(root()).args([
        "-s",
        "pkgconfig",
        &format!("BUILD_DIR={}", build.display()),
    ]));
    let uninstalled = root().join("target/pkgconfig");
    let flags = pkg_config(&uninstalled, &["--cflags", "--libs", "turn"]);
    assert!(
        flags.contains(&format!("-I{}", root().join("include").display())),
        "{flags:?}"
    );
    let exe = out.path().join("demo-tree");
    run(Command::new("cc")
        .arg(root().join("examples/c/demo.c"))
        .args(&flags)
        .arg(format!("-Wl,-rpath,{}", build.display()))
        .arg("-o")
        .arg(&exe));
    let shown = run(Command::new(&exe).args([&r.url(), "pc", "tree", "1"]));
    assert!(shown.contains("round 1: done with ticket 6"), "{shown}");
}

#[test]
fn go_binding_under_the_race_detector() {
    let r = Redis::start();
    let build = target_dir();
    soname_link();
    run(Command::new("make").current_dir(root()).args([
        "-s",
        "pkgconfig",
        &format!("BUILD_DIR={}", build.display()),
    ]));
    let go = std::env::var("TURN_TEST_GO").unwrap_or_else(|_| "go".into());
    let unformatted = run(Command::new("gofmt")
        .arg("-l")
        .arg(root().join("bindings/go")));
    assert!(
        unformatted.trim().is_empty(),
        "gofmt would change: {unformatted}"
    );
    let out = run(Command::new(&go)
        .current_dir(root().join("bindings/go"))
        .args(["test", "-race", "-count=1", "./..."])
        .env("PKG_CONFIG_PATH", root().join("target/pkgconfig"))
        .env("CGO_LDFLAGS", format!("-Wl,-rpath,{}", build.display()))
        .env("TURN_TEST_REDIS_URL", r.url()));
    assert!(out.contains("ok"), "{out}");
    // Without a server named, the tests skip cleanly instead of failing.
    let skipped = run(Command::new(&go)
        .current_dir(root().join("bindings/go"))
        .args(["test", "-count=1", "-v", "./..."])
        .env("PKG_CONFIG_PATH", root().join("target/pkgconfig"))
        .env("CGO_LDFLAGS", format!("-Wl,-rpath,{}", build.display()))
        .env_remove("TURN_TEST_REDIS_URL"));
    assert!(
        skipped.contains("--- SKIP") && !skipped.contains("--- FAIL"),
        "{skipped}"
    );
}

/// A virtualenv under the target directory with `packages` installed,
/// made once (again when the list changes).
fn venv(name: &str, packages: &[&str]) -> std::path::PathBuf {
    let venv = target_dir().join(name);
    let want = packages.join(" ");
    let ready = venv.join("ready");
    if std::fs::read_to_string(&ready).ok().as_deref() != Some(want.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .args(packages));
        std::fs::write(&ready, &want).unwrap();
    }
    venv
}

#[test]
fn python_binding_under_pytest() {
    // A unix socket too, for turn 1.0's unix_socket_path.
    let r = Redis::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--unixsocket",
        "{dir}/redis.sock",
        "--unixsocketperm",
        "700",
    ]);
    // redis-py: turn 1.0 programs catch its ConnectionError;
    // prometheus-client: turn.metrics' collector; mypy: the annotations
    // (tests/test_typing.py).
    let venv = venv(
        "py-bindings",
        &[
            "pytest==8.3.4",
            "redis==8.1.0",
            "prometheus-client==0.26.0",
            "mypy==2.4.1",
        ],
    );
    let out = run(Command::new(venv.join("bin/python"))
        .current_dir(root().join("bindings/python"))
        .args([
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "tests",
        ])
        .env("TURN_LIBRARY", target_dir().join("libturn.so"))
        .env("TURN_TEST_REDIS_URL", r.url())
        .env("TURN_TEST_REDIS_SOCKET", r.dir.path().join("redis.sock")));
    println!("{out}");
    assert!(out.contains("passed") && !out.contains("failed"), "{out}");
}

/// `pip install ./bindings/python` in a fresh virtualenv builds the library
/// into the package, so that `import turn` works with no environment
/// variable; `pip wheel` makes a wheel that carries it, tagged for any
/// Python 3 on the platform.
#[test]
fn python_package_installs_with_pip() {
    let r = Redis::start();
    // 2.MINOR.PATCH for the crate's 0.MINOR.PATCH: above turn 1.0's.
    let version = std::fs::read_to_string(root().join("bindings/python/turn/_version.py")).unwrap();
    let crate_version = env!("CARGO_PKG_VERSION");
    let (_, minor_patch) = crate_version.split_once('.').unwrap();
    assert!(
        version.contains(&format!("__version__ = \"2.{minor_patch}\"")),
        "bindings/python/turn/_version.py's version is not 2.{minor_patch} (Cargo.toml's {crate_version})"
    );
    let venv = target_dir().join("py-pip");
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    // cargo builds in a target directory of its own (this one is in use),
    // kept between runs; the dev profile, to spare the test a release build.
    let cargo_target = target_dir().join("py-cargo");
    let pip = |args: &[&str]| {
        run(Command::new(venv.join("bin/pip"))
            .args(["-q", "--disable-pip-version-check"])
            .args(args)
            .arg(root().join("bindings/python"))
            .env("CARGO_TARGET_DIR", &cargo_target)
            .env("SETUPTOOLS_RUST_CARGO_PROFILE", "dev")
            .env_remove("TURN_LIBRARY"))
    };
    pip(&["install"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let code = r#"
import sys, turn, turn._ffi
path = turn._ffi.library_path()
assert path.startswith(sys.prefix), path
locker = turn.Locker(url=sys.argv[1])
with locker.lock("pip", label="installed") as lock:
    assert locker.status("pip").tickets == [(lock.serial, "installed")]
print("import turn %s from %s: ok" % (turn.version(), path))
"#;
    let out = run(Command::new(venv.join("bin/python"))
        .current_dir(elsewhere.path())
        .args(["-c", code, &r.url()])
        .env_remove("TURN_LIBRARY")
        .env_remove("LD_LIBRARY_PATH"));
    println!("{out}");
    assert!(out.contains(": ok"), "{out}");

    let wheels = tempfile::tempdir().unwrap();
    pip(&["wheel", "--no-deps", "-w", wheels.path().to_str().unwrap()]);
    let wheel = std::fs::read_dir(wheels.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("pip wheel made a wheel");
    // The library is loaded through ctypes: one wheel for any Python 3.
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains("-py3-none-"), "the wheel's tag: {name}");
    let listing = run(Command::new(venv.join("bin/python"))
        .args(["-m", "zipfile", "-l"])
        .arg(&wheel));
    assert!(
        listing.contains("turn/_libturn") && listing.contains("turn/__init__.py"),
        "{listing}"
    );
    println!("{}", wheel.display());
}

/// The PATH without the directories that hold cargo or rustc.
fn path_without_rust() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<_> = std::env::split_paths(&path)
        .filter(|d| !d.join("cargo").exists() && !d.join("rustc").exists())
        .collect();
    std::env::join_paths(kept).unwrap().into_string().unwrap()
}

/// `make wheel` makes a manylinux wheel carrying the release build's
/// libturn.so; installed into a fresh virtualenv with no cargo or rustc on
/// the PATH (and nothing from the package index), it takes a lock, and
/// brings turn 1.0's `turn` console script.
#[test]
fn python_wheel_installs_and_locks_without_rust() {
    let r = Redis::start();
    // make's TARGET_DIR: the parent of this profile's directory.
    let cargo_target = target_dir().parent().unwrap().to_path_buf();
    run(Command::new("make")
        .current_dir(root())
        .arg("wheel")
        .env("CARGO_TARGET_DIR", &cargo_target));
    let wheel = std::fs::read_dir(cargo_target.join("wheels"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("make wheel made a wheel");
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("turn-2.") && name.contains("-py3-none-manylinux"),
        "the wheel's name: {name}"
    );

    let path = path_without_rust();
    let venv = tempfile::tempdir().unwrap();
    run(Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv.path())
        .env("PATH", &path));
    run(Command::new(venv.path().join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", "--no-index"])
        .arg(&wheel)
        .env("PATH", &path));
    let elsewhere = tempfile::tempdir().unwrap();
    let code = r#"
import shutil, sys, turn, turn._ffi
assert shutil.which("cargo") is None and shutil.which("rustc") is None
path = turn._ffi.library_path()
assert path.startswith(sys.prefix), path
locker = turn.Locker(url=sys.argv[1])
with locker.lock("wheel", label="from the wheel") as lock:
    assert locker.status("wheel").tickets == [(lock.serial, "from the wheel")]
print("turn %s, libturn %s from %s: ok" % (turn.__version__, turn.version(), path))
"#;
    let out = run(Command::new(venv.path().join("bin/python"))
        .current_dir(elsewhere.path())
        .args(["-c", code, &r.url()])
        .env("PATH", &path)
        .env_remove("TURN_LIBRARY")
        .env_remove("LD_LIBRARY_PATH"));
    println!("{}\n{out}", wheel.display());
    assert!(out.contains(": ok"), "{out}");
    let help = run(Command::new(venv.path().join("bin/turn"))
        .arg("--help")
        .env("PATH", &path));
    assert!(help.contains("follow") && help.contains("status"), "{help}");
}

/// Node.js (`TURN_TEST_NODE`, else `node` on the PATH).
fn node() -> String {
    std::env::var("TURN_TEST_NODE").unwrap_or_else(|_| "node".into())
}

/// bindings/node with its packages (koffi), installed from its lockfile
/// when they are not there yet (`make test` installs them first).
pub(crate) fn node_package() -> std::path::PathBuf {
    let dir = root().join("bindings/node");
    if !dir.join("node_modules/koffi/package.json").exists() {
        run(Command::new("npm").current_dir(&dir).args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
        ]));
    }
    dir
}

/// The Node.js binding's own tests under `node --test`, among them 1,000
/// acquires waiting in one process, served in ticket order, with the
/// process's thread count the same at 10 and at 1,000 waiters (printed).
#[test]
fn node_binding_under_node_test() {
    let r = Redis::start();
    let dir = node_package();
    let mut files: Vec<String> = std::fs::read_dir(dir.join("test"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.js"))
        .map(|n| format!("test/{n}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "bindings/node/test has no *.test.js");
    let out = run(Command::new(node())
        .current_dir(&dir)
        .arg("--test")
        .args(&files)
        .env("TURN_LIBRARY", target_dir().join("libturn.so"))
        .env("TURN_TEST_REDIS_URL", r.url()));
    println!("{out}");
    assert!(
        out.contains("\n# fail 0\n") && !out.contains("\n# pass 0\n"),
        "{out}"
    );
    assert!(out.contains("with 1000 waiters"), "{out}");
}

/// Node.js, C and Python (the ctypes binding) clients, two of each, take
/// turns on one queue: no two hold at once, tickets are served in order,
/// and every client has all its turns.
#[test]
fn node_c_and_python_clients_share_one_queue_exclusively() {
    const ROUNDS: usize = 10;
    let r = Redis::start();
    let node_dir = node_package();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fleet.log");
    let c = crate::c_programs::compile("cc", &root().join("tests/c/fleet.c"), dir.path(), &[]);
    let lib = target_dir().join("libturn.so");
    let python = std::env::var("TURN_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut children = Vec::new();
    for i in 0..2 {
        let clients = [
            (format!("node{i}"), {
                let mut cmd = Command::new(node());
                cmd.arg(root().join("tests/node/fleet.js"))
                    .current_dir(&node_dir);
                cmd
            }),
            (format!("python{i}"), {
                let mut cmd = Command::new(&python);
                cmd.arg(root().join("tests/python/fleet.py"))
                    .env("PYTHONPATH", root().join("bindings/python"))
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                cmd
            }),
            (format!("c{i}"), Command::new(&c)),
        ];
        for (label, mut cmd) in clients {
            let child = cmd
                .args([r.url().as_str(), "fleet", &label, &ROUNDS.to_string()])
                .arg(&log)
                .env("TURN_LIBRARY", &lib)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            children.push((label, child));
        }
    }
    for (label, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{label} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<(&str, u64, &str)> = text
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            assert_eq!(w.len(), 3, "a torn line: {l:?}");
            (w[0], w[1].parse().expect("a serial"), w[2])
        })
        .collect();
    assert_eq!(lines.len(), 2 * 6 * ROUNDS, "{text}");
    let mut turns = std::collections::BTreeMap::<&str, usize>::new();
    let mut last = 0;
    for pair in lines.chunks(2) {
        let (enter, serial, label) = pair[0];
        assert_eq!(enter, "enter", "two holders at once:\n{text}");
        assert_eq!(
            pair[1],
            ("leave", serial, label),
            "two holders at once:\n{text}"
        );
        assert!(serial > last, "ticket {serial} after {last}:\n{text}");
        last = serial;
        *turns.entry(label).or_default() += 1;
    }
    assert_eq!(turns.len(), 6, "{turns:?}");
    assert!(turns.values().all(|&n| n == ROUNDS), "{turns:?}");
}
