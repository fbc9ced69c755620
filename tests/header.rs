//! The committed C header must be what cbindgen generates from the sources.
//! Regenerate with `make header` (TURN_UPDATE_HEADER=1).

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
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
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
