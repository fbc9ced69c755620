//! A turn 1.0 client played by plain commands, exactly as DESIGN.md
//! section 2 describes it (MSETNX + INCR, then the presence key SET by its
//! keeper; release = DEL presence, SET indicator N+1, PUBLISH internal),
//! so that a test can place each step at the worst moment. Keys under the
//! default prefix `turn`.

fn key(res: &str, what: &str) -> String {
    format!("turn:{res}:{what}")
}

/// turn 1.0's draw: the bootstrap and INCR (its presence key comes later,
/// see [`present`]); its serial.
pub fn draw(c: &mut redis::Connection, res: &str) -> u64 {
    let _: i64 = redis::cmd("MSETNX")
        .arg(key(res, "dispenser"))
        .arg(0)
        .arg(key(res, "indicator"))
        .arg(1)
        .query(c)
        .unwrap();
    redis::cmd("INCR")
        .arg(key(res, "dispenser"))
        .query(c)
        .unwrap()
}

/// turn 1.0's keeper: sets the presence key of ticket `n` with its expiry.
pub fn present(c: &mut redis::Connection, res: &str, n: u64, expire_s: u64) {
    let _: () = redis::cmd("SET")
        .arg(key(res, &format!("serial:{n}")))
        .arg("python")
        .arg("EX")
        .arg(expire_s)
        .query(c)
        .unwrap();
}

/// turn 1.0's release of ticket `n` (unconditional: it need not hold).
pub fn release(c: &mut redis::Connection, res: &str, n: u64) {
    let _: i64 = redis::cmd("DEL")
        .arg(key(res, &format!("serial:{n}")))
        .query(c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(key(res, "indicator"))
        .arg(n + 1)
        .query(c)
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(key(res, "internal"))
        .arg(key(res, &format!("serial:{}", n + 1)))
        .query(c)
        .unwrap();
}
