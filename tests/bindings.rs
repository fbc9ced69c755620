//! Packaging and bindings: `make install` into a temporary prefix with
//! pkg-config, CMake and plain-Makefile builds against it (and against the
//! build tree), static linking, the Go binding under `go test -race`, and
//! the Python ctypes binding under pytest. Each starts its own redis-server.

mod support;

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

    // Static linking with the private libraries turn.pc names.
    let private = pkg_config(&pc, &["--libs-only-l", "--static", "turn"]);
    let exe = out.path().join("demo-static");
    run(Command::new("cc")
        .arg(root().join("examples/c/demo.c"))
        .arg(format!("-I{}", p.join("include").display()))
        .arg(lib.join("libturn.a"))
        .args(private.iter().filter(|f| *f != "-lturn"))
        .arg("-o")
        .arg(&exe));
    let shown = run(Command::new(&exe).args([&r.url(), "pc", "static", "1"]));
    assert!(shown.contains("round 1: done with ticket 3"), "{shown}");

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
    assert!(shown.contains("round 1: done with ticket 4"), "{shown}");
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

#[test]
fn python_binding_under_pytest() {
    let r = Redis::start();
    let venv = target_dir().join("py-bindings");
    if !venv.join("ready").exists() {
        let _ = std::fs::remove_dir_all(&venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "--disable-pip-version-check",
            "pytest==8.3.4",
        ]));
        std::fs::write(venv.join("ready"), "").unwrap();
    }
    let out = run(Command::new(venv.join("bin/python"))
        .current_dir(root().join("bindings/python"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .env("TURN_LIBRARY", target_dir().join("libturn.so"))
        .env("TURN_TEST_REDIS_URL", r.url()));
    assert!(out.contains("passed") && !out.contains("failed"), "{out}");
}
