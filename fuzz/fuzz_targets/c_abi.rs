//! The C ABI's string inputs: arbitrary bytes (not UTF-8, control
//! characters, huge) through every entry point that takes a string, with
//! handles that are not live. Each call must return an error code, never
//! crash or panic.
#![no_main]

use std::ffi::CString;

use libfuzzer_sys::fuzz_target;
use turn::ffi::*;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let a = CString::new(parts.next().unwrap_or_default()).unwrap();
    let b = CString::new(parts.next().unwrap_or_default()).unwrap();
    let bogus_locker = 0x1235usize as *mut turn_locker;
    let mut lock: *mut turn_lock = std::ptr::null_mut();
    let mut status: *mut turn_status = std::ptr::null_mut();
    let mut ind = 0u64;
    unsafe {
        let rc = turn_lock_acquire(bogus_locker, a.as_ptr(), b.as_ptr(), 0, 0, 0, &mut lock);
        assert_ne!(rc, turn_result::TURN_OK);
        assert_ne!(rc, turn_result::TURN_ERR_PANIC);
        assert!(lock.is_null());
        let rc = turn_status_get(bogus_locker, a.as_ptr(), &mut status);
        assert_ne!(rc, turn_result::TURN_ERR_PANIC);
        assert!(status.is_null());
        let rc = turn_bump(bogus_locker, b.as_ptr(), &mut ind);
        assert_ne!(rc, turn_result::TURN_ERR_PANIC);
        let rc = turn_reset(bogus_locker, a.as_ptr());
        assert_ne!(rc, turn_result::TURN_ERR_PANIC);
        let mut opts: *mut turn_options = std::ptr::null_mut();
        assert_eq!(turn_options_new(&mut opts), turn_result::TURN_OK);
        let rc = turn_options_set_prefix(opts, a.as_ptr());
        assert_ne!(rc, turn_result::TURN_ERR_PANIC);
        turn_options_free(opts);
        let _ = turn_lock_check(data.len() as *const turn_lock);
        let _ = turn_lock_release(data.len() as *mut turn_lock);
        let _ = turn_last_error();
    }
});
