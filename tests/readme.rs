//! The README's code blocks build and run, so that they cannot drift from
//! the API. Each C, C++, Go, Python, JavaScript and Rust block in
//! README.md carries a marker on the line before its fence:
//!
//! - `<!-- readme-test run NAME -->`: a complete program. It is written to a
//!   temporary directory as it stands, built against the built library (C
//!   and C++ with -Wall -Wextra -Werror under AddressSanitizer, Go through
//!   pkg-config, Rust with rustc and -D warnings) and run against a
//!   redis-server of its own, named by `TURN_REDIS_URL`; it must exit 0
//!   and print what its test expects.
//! - `<!-- readme-test wrap NAME -->`: a fragment, put inside a function of
//!   this file that gives it what it uses, then built and run the same way.
//! - `<!-- readme-test compile NAME -->`: a fragment wrapped likewise and
//!   only compiled (it names servers and files that are not here).
//! - `<!-- readme-test gomod NAME -->`: the `go.mod` that the Go programs
//!   are built with, as written (`build_go`).
//! - `<!-- readme-test example PATH -->`: part of a file of the repository
//!   word for word (the epoll program: `tests/c_programs.rs` runs it).
//!
//! A block of those languages without a marker, or a marker this file does
//! not know, fails `every_code_block_is_tested`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Redis, root, soname_link, target_dir};

/// The markers the README must carry, in order, as (kind, name).
const MARKERS: &[(&str, &str)] = &[
    ("run", "c-minimal"),
    ("run", "cpp-minimal"),
    ("compile", "cpp-options"),
    ("gomod", "go-module"),
    ("run", "go-minimal"),
    ("run", "python-minimal"),
    ("run", "node-minimal"),
    ("run", "rust-minimal"),
    ("run", "rust-modes"),
    ("run", "c-modes"),
    ("run", "cpp-modes"),
    ("run", "go-modes"),
    ("run", "python-modes"),
    ("example", "examples/c/epoll.c"),
    ("wrap", "python-asyncio"),
    ("wrap", "go-lost"),
    ("wrap", "c-lost-fd"),
];

/// The languages whose blocks must be tested.
const LANGUAGES: &[&str] = &["c", "cpp", "go", "python", "js", "rust"];

/// A fenced code block of the README.
#[derive(Debug)]
struct Block {
    /// The 1-based line of its opening fence.
    line: usize,
    lang: String,
    /// The marker before it as (kind, name), if any.
    marker: Option<(String, String)>,
    /// Its lines without the fence's indentation.
    code: String,
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// Every fenced block of `text` (fences may be indented, in list items).
fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let Some(lang) = trimmed.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let indent = lines[i].len() - trimmed.len();
        let marker = i
            .checked_sub(1)
            .and_then(|p| lines[p].trim().strip_prefix("<!-- readme-test "))
            .and_then(|m| m.strip_suffix("-->"))
            .map(|m| {
                let mut words = m.split_whitespace();
                let kind = words.next().unwrap_or_default().to_string();
                let name = words.collect::<Vec<_>>().join(" ");
                (kind, name)
            });
        let start = i;
        let mut code = String::new();
        i += 1;
        while i < lines.len() && lines[i].trim() != "```" {
            let line = lines[i];
            let cut = line.len() - line.trim_start().len();
            code.push_str(&line[cut.min(indent)..]);
            code.push('\n');
            i += 1;
        }
        assert!(
            i < lines.len(),
            "README.md:{}: unclosed code block",
            start + 1
        );
        out.push(Block {
            line: start + 1,
            lang: lang.trim().to_string(),
            marker,
            code,
        });
        i += 1;
    }
    out
}

/// The README block marked `kind name`, which must be in `lang`.
fn block(kind: &str, name: &str, lang: &str) -> String {
    let all = blocks(&readme());
    let mut found = all.iter().filter(|b| {
        b.marker
            .as_ref()
            .is_some_and(|(k, n)| k.as_str() == kind && n.as_str() == name)
    });
    let b = found
        .next()
        .unwrap_or_else(|| panic!("README.md has no block marked `readme-test {kind} {name}`"));
    assert!(
        found.next().is_none(),
        "README.md marks two blocks `{kind} {name}`"
    );
    assert_eq!(b.lang, lang, "README.md:{}: the block's language", b.line);
    b.code.clone()
}

#[test]
fn every_code_block_is_tested() {
    let text = readme();
    let all = blocks(&text);
    for b in &all {
        if LANGUAGES.contains(&b.lang.as_str()) {
            assert!(
                b.marker.is_some(),
                "README.md:{}: a ```{} block without a `<!-- readme-test KIND NAME -->` \
                 line before it (see tests/readme.rs)",
                b.line,
                b.lang
            );
        }
    }
    let markers: Vec<(String, String)> = all.iter().filter_map(|b| b.marker.clone()).collect();
    let known: Vec<(String, String)> = MARKERS
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect();
    assert_eq!(
        markers, known,
        "the README's readme-test markers are not the ones tests/readme.rs tests"
    );
    // A marker must stand right before a fence.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("<!-- readme-test") {
            assert!(
                lines
                    .get(i + 1)
                    .is_some_and(|next| next.trim_start().starts_with("```")),
                "README.md:{}: a readme-test marker not followed by a code block",
                i + 1
            );
        }
    }
}

/// Runs `cmd` (at most two minutes); returns its standard output, failing
/// on a non-zero exit.
fn run(cmd: &mut Command) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    // Read both pipes in threads, so a chatty program cannot block on them.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).map(|_| s)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran for more than two minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap().unwrap_or_default();
    let err = err.join().unwrap().unwrap_or_default();
    assert!(status.success(), "{cmd:?} failed ({status}):\n{out}\n{err}");
    out
}

/// The directory of libturn.so (with its soname link).
fn lib_dir() -> PathBuf {
    let lib = target_dir();
    assert!(
        lib.join("libturn.so").exists(),
        "{} has no libturn.so: build the library first (cargo build; make test does)",
        lib.display()
    );
    soname_link();
    lib
}

/// Compiles `source` as C (`cc`) or C++ (`c++ -std=c++17`) as
/// tests/c_programs.rs does, beside it; returns the binary.
fn compile_c(compiler: &str, source: &Path) -> PathBuf {
    let extra: &[&str] = if compiler == "c++" {
        &["-std=c++17", "-pthread"]
    } else {
        &[]
    };
    crate::c_programs::compile(
        compiler,
        source,
        source.parent().expect("a directory"),
        extra,
    )
}

/// Runs a program built from the README against `redis`.
fn run_program(binary: &Path, redis: &Redis) -> String {
    run(Command::new(binary)
        .env("TURN_REDIS_URL", redis.url())
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0"))
}

/// The number after `prefix` on the line of `out` that starts with it.
fn number_after(out: &str, prefix: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no line `{prefix}N` in:\n{out}"))
}

/// The minimal C program, as written: the ticket number starts over when
/// the queue is made anew, the fencing token does not.
#[test]
fn c_minimal_program_runs_and_its_token_never_goes_back() {
    let code = block("run", "c-minimal", "c");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("prog.c");
    std::fs::write(&source, code).unwrap();
    let bin = compile_c("cc", &source);
    let r = Redis::start();
    let ticket_and_token = |out: &str| {
        let ticket = number_after(out, "my turn: ticket ");
        let token = number_after(out, &format!("my turn: ticket {ticket}, fencing token "));
        (ticket, token)
    };
    let (ticket1, token1) = ticket_and_token(&run_program(&bin, &r));
    let (ticket2, token2) = ticket_and_token(&run_program(&bin, &r));
    assert_eq!((ticket1, ticket2), (1, 2));
    assert!(token2 > token1, "token {token2} after {token1}");
    // A queue made anew: the ticket number starts over, the token grows on.
    let _: () = redis::cmd("FLUSHDB").query(&mut r.conn()).unwrap();
    let (ticket3, token3) = ticket_and_token(&run_program(&bin, &r));
    assert_eq!(ticket3, 1, "a new queue starts at ticket 1");
    assert!(
        token3 > token2,
        "token {token3} after {token2} and a FLUSHDB"
    );
}

#[test]
fn c_lost_fd_fragment_runs() {
    let code = block("wrap", "c-lost-fd", "c");
    let program = format!(
        "#include <stdio.h>\n\
         #include <stdlib.h>\n\
         #include <unistd.h>\n\
         #include <sys/epoll.h>\n\
         #include \"turn.h\"\n\
         \n\
         /* The README's fragment, with an epoll set and a held lock. */\n\
         static void readme_fragment(int ep, turn_lock *lock) {{\n\
         {code}\
         }}\n\
         \n\
         int main(void) {{\n\
         \x20   turn_locker *locker = NULL;\n\
         \x20   turn_lock *lock = NULL;\n\
         \x20   if (turn_locker_new(getenv(\"TURN_REDIS_URL\"), &locker) != TURN_OK) return 1;\n\
         \x20   if (turn_lock_acquire(locker, \"printer\", \"job\", 0, 0, -1, &lock) != TURN_OK) return 1;\n\
         \x20   int ep = epoll_create1(EPOLL_CLOEXEC);\n\
         \x20   readme_fragment(ep, lock);\n\
         \x20   close(ep);\n\
         \x20   turn_locker_free(locker);\n\
         \x20   puts(\"fragment ran\");\n\
         \x20   return 0;\n\
         }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("lost_fd.c");
    std::fs::write(&source, program).unwrap();
    let bin = compile_c("cc", &source);
    let r = Redis::start();
    let out = run_program(&bin, &r);
    assert_eq!(out, "fragment ran\n");
}

/// The epoll program is examples/c/epoll.c's main, which
/// tests/c_programs.rs builds and runs.
#[test]
fn c_epoll_block_is_the_example_file() {
    let code = block("example", "examples/c/epoll.c", "c");
    let file = std::fs::read_to_string(root().join("examples/c/epoll.c")).unwrap();
    assert!(
        file.contains(code.trim_end()),
        "README's epoll block is not part of examples/c/epoll.c"
    );
}

#[test]
fn cpp_minimal_program_runs() {
    let code = block("run", "cpp-minimal", "cpp");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("prog.cpp");
    std::fs::write(&source, code).unwrap();
    let bin = compile_c("c++", &source);
    let r = Redis::start();
    let out = run_program(&bin, &r);
    assert!(number_after(&out, "my turn: fencing token ") > 0, "{out}");
    let rest: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rest, ["TURN_ERR_TIMEOUT", "free right now"], "{out}");
}

#[test]
fn cpp_options_fragment_compiles() {
    let code = block("compile", "cpp-options", "cpp");
    let program = format!(
        "#include \"turn.hpp\"\n\
         \n\
         // The README's fragment, in a function that is never called.\n\
         void readme_fragment();\n\
         void readme_fragment() {{\n\
         {code}\
         }}\n\
         \n\
         int main() {{ return 0; }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("options.cpp");
    std::fs::write(&source, program).unwrap();
    compile_c("c++", &source);
}

/// Builds a Go program (main.go) in a module of its own, `report/` beside
/// `turn/` (a link to this checkout), with the README's `go.mod` as
/// written, and a turn.pc for this build; returns the binary.
fn build_go(code: &str, dir: &Path) -> PathBuf {
    let lib = lib_dir();
    let go = std::env::var("TURN_TEST_GO").unwrap_or_else(|_| "go".into());
    let module = dir.join("report");
    let pc = dir.join("pkgconfig");
    std::fs::create_dir_all(&module).unwrap();
    std::fs::create_dir_all(&pc).unwrap();
    std::os::unix::fs::symlink(root(), dir.join("turn")).unwrap();
    std::fs::write(module.join("go.mod"), block("gomod", "go-module", "")).unwrap();
    std::fs::write(module.join("main.go"), code).unwrap();
    let template = std::fs::read_to_string(root().join("turn.pc.in")).unwrap();
    let include = root().join("include");
    std::fs::write(
        pc.join("turn.pc"),
        template
            .replace("@PREFIX@", &root().display().to_string())
            .replace("@LIBDIR@", &lib.display().to_string())
            .replace("@INCLUDEDIR@", &include.display().to_string())
            .replace("@VERSION@", env!("CARGO_PKG_VERSION")),
    )
    .unwrap();
    let out = dir.join("prog");
    run(Command::new(&go)
        .current_dir(&module)
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .env("PKG_CONFIG_PATH", &pc)
        .env("CGO_LDFLAGS", format!("-Wl,-rpath,{}", lib.display()))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOWORK", "off"));
    out
}

#[test]
fn go_minimal_program_runs() {
    let code = block("run", "go-minimal", "go");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gofmt.go"), &code).unwrap();
    let unformatted = run(Command::new("gofmt")
        .arg("-l")
        .arg(dir.path().join("gofmt.go")));
    assert!(
        unformatted.trim().is_empty(),
        "gofmt would change the README's Go program"
    );
    let bin = build_go(&code, dir.path());
    let r = Redis::start();
    let out = run_program(&bin, &r);
    assert!(number_after(&out, "my turn: fencing token ") > 0, "{out}");
}

#[test]
fn go_lost_fragment_runs() {
    let code = block("wrap", "go-lost", "go");
    let program = format!(
        "package main\n\
         \n\
         import (\n\
         \t\"context\"\n\
         \t\"fmt\"\n\
         \t\"log\"\n\
         \t\"os\"\n\
         \t\"time\"\n\
         \n\
         \t\"turn\"\n\
         )\n\
         \n\
         // The README's fragment, with a locker and a done channel.\n\
         func job(locker *turn.Locker, done <-chan struct{{}}) error {{\n\
         {code}\
         \treturn nil\n\
         }}\n\
         \n\
         func main() {{\n\
         \tlocker, err := turn.NewLocker(os.Getenv(\"TURN_REDIS_URL\"))\n\
         \tif err != nil {{\n\
         \t\tlog.Fatal(err)\n\
         \t}}\n\
         \tdefer locker.Close()\n\
         \tdone := make(chan struct{{}})\n\
         \tclose(done)\n\
         \tif err := job(locker, done); err != nil {{\n\
         \t\tlog.Fatal(err)\n\
         \t}}\n\
         \tfmt.Println(\"fragment ran\")\n\
         }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let bin = build_go(&program, dir.path());
    let r = Redis::start();
    let out = run_program(&bin, &r);
    assert_eq!(out, "fragment ran\n");
}

/// Runs a Python program with the binding from the source tree and the
/// built library.
fn run_python(code: &str, redis: &Redis) -> String {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("prog.py");
    std::fs::write(&source, code).unwrap();
    let python = std::env::var("TURN_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(python)
        .arg(&source)
        .current_dir(dir.path())
        .env("PYTHONPATH", root().join("bindings/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("TURN_LIBRARY", lib_dir().join("libturn.so"))
        .env("TURN_REDIS_URL", redis.url()))
}

#[test]
fn python_minimal_program_runs() {
    let code = block("run", "python-minimal", "python");
    let r = Redis::start();
    let out = run_python(&code, &r);
    assert!(number_after(&out, "my turn: fencing token ") > 0, "{out}");
    let rest: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rest.len(), 2, "{out}");
    assert_eq!(rest[0], "nightly report", "{out}");
    assert!(
        rest[1].starts_with("Status('printer'") && rest[1].ends_with("tickets=[])"),
        "{out}"
    );
}

#[test]
fn python_asyncio_fragment_runs() {
    let code = block("wrap", "python-asyncio", "python");
    let program = format!(
        "import asyncio\n\
         import os\n\
         import turn\n\
         \n\
         async def print_report(token):\n\
         \x20   print(\"my turn: fencing token\", token)\n\
         \n\
         # The README's fragment:\n\
         {code}\
         \n\
         asyncio.run(job(turn.Locker(url=os.environ[\"TURN_REDIS_URL\"])))\n\
         print(\"fragment ran\")\n"
    );
    let r = Redis::start();
    let out = run_python(&program, &r);
    assert!(number_after(&out, "my turn: fencing token ") > 0, "{out}");
    assert!(out.ends_with("fragment ran\n"), "{out}");
}

/// The README's Node.js program, run with `require('turn')` resolving to
/// bindings/node (a `turn` link to it on NODE_PATH).
#[test]
fn node_minimal_program_runs() {
    let code = block("run", "node-minimal", "js");
    let package = crate::bindings::node_package();
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    std::os::unix::fs::symlink(&package, modules.join("turn")).unwrap();
    let source = dir.path().join("prog.js");
    std::fs::write(&source, code).unwrap();
    let r = Redis::start();
    let node = std::env::var("TURN_TEST_NODE").unwrap_or_else(|_| "node".into());
    let out = run(Command::new(node)
        .arg(&source)
        .current_dir(dir.path())
        .env("NODE_PATH", &modules)
        .env("TURN_LIBRARY", lib_dir().join("libturn.so"))
        .env("TURN_REDIS_URL", r.url()));
    assert!(number_after(&out, "my turn: fencing token ") > 0, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// rustc of the toolchain that built this test.
fn rustc() -> PathBuf {
    let beside_cargo = Path::new(env!("CARGO")).with_file_name("rustc");
    if beside_cargo.exists() {
        beside_cargo
    } else {
        PathBuf::from("rustc")
    }
}

/// Builds the README's Rust block `name` (`rustfmt --check`, `-D
/// warnings`) against the library this test links.
fn build_rust(name: &str, dir: &Path) -> PathBuf {
    let code = block("run", name, "rust");
    let source = dir.join("main.rs");
    std::fs::write(&source, code).unwrap();
    let rustfmt = rustc().with_file_name("rustfmt");
    if rustfmt.exists() {
        run(Command::new(rustfmt)
            .args(["--check", "--edition", "2024"])
            .arg(&source));
    }
    // Against the library this test links (its rlib and dependencies).
    let target = target_dir();
    let rlib = target.join("libturn.rlib");
    assert!(
        rlib.exists(),
        "{} has no libturn.rlib: cargo build first",
        target.display()
    );
    let bin = dir.join("main");
    run(Command::new(rustc())
        .args(["--edition", "2024", "-D", "warnings", "-C", "debuginfo=0"])
        .arg("--extern")
        .arg(format!("turn={}", rlib.display()))
        .arg("-L")
        .arg(format!("dependency={}", target.join("deps").display()))
        .arg(&source)
        .arg("-o")
        .arg(&bin));
    bin
}

#[test]
fn rust_minimal_program_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bin = build_rust("rust-minimal", dir.path());
    let r = Redis::start();
    let out = run_program(&bin, &r);
    assert!(number_after(&out, "my turn: fencing token ") > 0, "{out}");
}

#[test]
fn rust_modes_program_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bin = build_rust("rust-modes", dir.path());
    let r = Redis::start();
    let out = run_program(&bin, &r);
    assert!(number_after(&out, "encoding with token ") > 0, "{out}");
    assert!(out.contains("holding 2 locks"), "{out}");
}

/// The shared modes' programs in C, C++, Go and Python: each takes a
/// semaphore's permit, a reader's share and two locks at once, in turn.
const MODES_OUTPUT: &str = "encoding\nreading\ntransferring\n";

#[test]
fn c_modes_program_takes_each_mode_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("modes.c");
    std::fs::write(&source, block("run", "c-modes", "c")).unwrap();
    let bin = compile_c("cc", &source);
    let r = Redis::start();
    assert_eq!(run_program(&bin, &r), MODES_OUTPUT);
}

#[test]
fn cpp_modes_program_takes_each_mode_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("modes.cpp");
    std::fs::write(&source, block("run", "cpp-modes", "cpp")).unwrap();
    let bin = compile_c("c++", &source);
    let r = Redis::start();
    assert_eq!(run_program(&bin, &r), MODES_OUTPUT);
}

#[test]
fn go_modes_program_takes_each_mode_in_turn() {
    let code = block("run", "go-modes", "go");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gofmt.go"), &code).unwrap();
    let unformatted = run(Command::new("gofmt")
        .arg("-l")
        .arg(dir.path().join("gofmt.go")));
    assert!(
        unformatted.trim().is_empty(),
        "gofmt would change the README's Go modes program"
    );
    let bin = build_go(&code, dir.path());
    let r = Redis::start();
    assert_eq!(run_program(&bin, &r), MODES_OUTPUT);
}

#[test]
fn python_modes_program_takes_each_mode_in_turn() {
    let r = Redis::start();
    assert_eq!(
        run_python(&block("run", "python-modes", "python"), &r),
        MODES_OUTPUT
    );
}
