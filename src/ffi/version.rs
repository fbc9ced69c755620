//! The library's version.

use std::ffi::c_char;

/// The library's version, a static string such as "0.1.0".
#[unsafe(no_mangle)]
pub extern "C" fn turn_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
