//! The committed C header must be what cbindgen generates from the sources,
//! made C89-clean (block comments only, no comma after an enum's last
//! value), and must compile as C89. Regenerate with `make header`
//! (TURN_UPDATE_HEADER=1).

use std::path::Path;

#[test]
fn header_is_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let fresh = c89(&String::from_utf8(generated).expect("a UTF-8 header")).into_bytes();
    let path = root.join("include/turn.h");
    if std::env::var_os("TURN_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write include/turn.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/turn.h is stale: run `make header` and commit it"
    );
}

/// cbindgen's header as C89 takes it: its line comments (after `#endif`
/// and the `extern "C"` brace) become block comments, and an enum's last
/// value loses its comma.
fn c89(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    for line in header.split_inclusive('\n') {
        match line.split_once("// ") {
            Some((code, comment)) if !line.trim_start().starts_with('*') => {
                let comment = comment.trim_end();
                out.push_str(&format!("{code}/* {comment} */\n"));
            }
            _ => out.push_str(line),
        }
    }
    out.replace(",\n}", "\n}")
}

/// A C89 compiler, pedantic and with every warning an error, takes the
/// header (and a C++98 one, through its `extern "C"` guard).
#[test]
fn header_compiles_as_c89_and_cpp98() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("c89.c");
    std::fs::write(
        &source,
        "#include \"turn.h\"\nint main(void) { return turn_version() == 0; }\n",
    )
    .unwrap();
    for (compiler, std) in [("cc", "-std=c89"), ("c++", "-std=c++98")] {
        let lang: &[&str] = if compiler == "c++" {
            &["-x", "c++"]
        } else {
            &[]
        };
        let status = std::process::Command::new(compiler)
            .args(lang)
            .args([
                std,
                "-pedantic",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-fsyntax-only",
                "-I",
            ])
            .arg(root.join("include"))
            .arg(&source)
            .status()
            .expect("a C and a C++ compiler are installed");
        assert!(status.success(), "{compiler} {std} refused include/turn.h");
    }
}

/// The C++ wrapper refuses a standard below C++17 with one line that says
/// so, not with errors from inside `<optional>`.
#[test]
fn the_cpp_wrapper_says_it_needs_cpp17() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("old.cpp");
    std::fs::write(&source, "#include \"turn.hpp\"\nint main() { return 0; }\n").unwrap();
    let compile = |std: &str| {
        std::process::Command::new("c++")
            .args([std, "-fsyntax-only", "-I"])
            .arg(root.join("include"))
            .arg(&source)
            .output()
            .expect("a C++ compiler is installed")
    };
    let old = compile("-std=c++14");
    let said = String::from_utf8_lossy(&old.stderr);
    assert!(!old.status.success(), "C++14 took turn.hpp");
    assert!(said.contains("turn.hpp needs C++17 or later"), "{said}");
    assert_eq!(said.matches("error:").count(), 1, "one error only: {said}");
    assert!(
        compile("-std=c++17").status.success(),
        "C++17 refused turn.hpp"
    );
}
