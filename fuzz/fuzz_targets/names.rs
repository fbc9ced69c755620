//! Key names, channel messages and discovery parsing: no panic, and what is
//! built parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let serial = u64::from_le_bytes(data[..8].try_into().unwrap());
    let rest = &data[8..];
    let mut parts = rest.splitn(3, |b| *b == 0);
    let prefix = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let resource = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let payload = parts.next().unwrap_or_default();
    turn::fuzzing::names(&prefix, &resource, payload, serial);
});
