//! One script call: its EVALSHA command (loading the script on NOSCRIPT),
//! the replica confirmation (`WAIT`) that may follow it in the same round
//! trip, and the error of a reply of the wrong shape.

use std::time::Duration;

use redis::{ConnectionLike, FromRedisValue, RedisResult, Script, ToRedisArgs};

use crate::error::Error;
use crate::shared::Core;

/// One EVALSHA of a script, written straight into one command buffer: the
/// declared keys, then the arguments. Built once and run as often as needed
/// (a retry sends the same bytes); loads the script when Redis answers
/// NOSCRIPT (a restarted or flushed server) and sends it again.
pub(super) struct Call {
    script: &'static Script,
    cmd: redis::Cmd,
}

impl Call {
    pub(super) fn new(script: &'static Script, keys: &[&str]) -> Call {
        let mut cmd = redis::Cmd::with_capacity(3 + keys.len() + 8, 256);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        Call { script, cmd }
    }

    pub(super) fn arg<T: ToRedisArgs>(mut self, arg: T) -> Call {
        self.cmd.arg(arg);
        self
    }

    pub(super) fn invoke<T: FromRedisValue>(&self, con: &mut dyn ConnectionLike) -> RedisResult<T> {
        match self.cmd.query(con) {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                self.script.load(con)?;
                self.cmd.query(con)
            }
            result => result,
        }
    }

    /// [`Call::invoke`], followed in the same round trip by `WAIT` when
    /// `confirm` asks for replicas: the reply, and whether enough replicas
    /// have every write made on this connection so far (true when none
    /// are asked for).
    pub(super) fn invoke_confirmed<T: FromRedisValue>(
        &self,
        con: &mut dyn ConnectionLike,
        confirm: Option<Confirm>,
    ) -> RedisResult<(T, bool)> {
        let Some(confirm) = confirm else {
            return Ok((self.invoke(con)?, true));
        };
        let mut pipe = redis::pipe();
        pipe.add_command(self.cmd.clone())
            .cmd("WAIT")
            .arg(confirm.replicas)
            .arg(confirm.wait_ms);
        let (reply, acked): (T, i64) = match pipe.query(con) {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                self.script.load(con)?;
                pipe.query(con)?
            }
            result => result?,
        };
        Ok((reply, acked >= i64::from(confirm.replicas)))
    }
}

/// Replica confirmation of one call: `WAIT replicas wait_ms` after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Confirm {
    pub replicas: u32,
    /// At least 1 (`WAIT` with 0 would block for ever).
    pub wait_ms: u64,
}

impl Confirm {
    /// The confirmation `core` asks for a write of a ticket with lease
    /// `lease`: None when it asks for none; it waits at most a third of the
    /// lease.
    pub fn of(core: &Core, lease: Duration) -> Option<Confirm> {
        let durable = core.durable;
        if !durable.is_on() {
            return None;
        }
        let wait = durable.timeout.min(lease / 3);
        Some(Confirm {
            replicas: durable.replicas,
            wait_ms: (wait.as_millis() as u64).max(1),
        })
    }

    /// The error of a write not confirmed in time.
    pub fn missed(&self, what: &str) -> Error {
        Error::refusal(format!(
            "{what} was not confirmed by {} replica(s) within {} ms",
            self.replicas, self.wait_ms
        ))
    }
}

/// A reply of the wrong shape.
pub(super) fn protocol(what: &'static str, detail: &str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::TypeError, what, detail.to_string()))
}
