//! Key and channel names of the turn protocol, and the rules for names.
//!
//! For prefix `P` and resource `R` (turn 1.0 compatible):
//! `P:R:dispenser`, `P:R:indicator`, `P:R:serial:N` (presence of ticket N),
//! and the pubsub channels `P:R:internal` and `P:R:external`.

use crate::error::{Error, Result};

/// Longest resource name accepted, in bytes.
pub const MAX_RESOURCE_LEN: usize = 1024;
/// Longest label accepted, in bytes.
pub const MAX_LABEL_LEN: usize = 4096;
/// Longest key prefix accepted, in bytes.
pub const MAX_PREFIX_LEN: usize = 256;

/// The names of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    /// The resource as it appears in key names and log lines: the resource
    /// itself, or `{R}` on a Redis Cluster (a hash tag, so that every key of
    /// the queue lives in one slot).
    pub name: String,
    pub dispenser: String,
    pub indicator: String,
    /// `P:R:serial:`; append a serial for the presence key of that ticket.
    pub presence_prefix: String,
    pub internal: String,
    pub external: String,
    /// `P:R:withdrawn`: tickets given up before their turn (ours only;
    /// turn 1.0 does not know it).
    pub withdrawn: String,
    /// `P:R:ticket:`; append a serial for the identity key of that ticket
    /// (ours only): `NONCE BASE CHANNEL`, the ticket's unique nonce, the
    /// token base of the incarnation it was drawn in, and the channel of
    /// the locker that drew it. A serial alone does not name a ticket (a
    /// queue can vanish and hand the same numbers out again); the nonce
    /// does. Outside `P:R:serial:*`, which turn 1.0's status scans.
    pub ticket_prefix: String,
    /// `P:R:incarnation`: `BASE TOP`, the fencing-token base of the queue
    /// and the highest serial one of our draws took (ours only).
    pub incarnation: String,
    /// `P:R:kind`: `semaphore PERMITS` or `rwlock` for a queue of shared
    /// modes, set when the queue is made; missing for a plain queue (ours
    /// only).
    pub kind: String,
    /// `P:R:admitted`: the highest serial a shared-mode queue admitted;
    /// every ticket after it waits (ours only).
    pub admitted: String,
    /// `P:R:holders`: hash of the admitted tickets of a shared-mode queue
    /// not yet known done, serial -> weight (ours only).
    pub holders: String,
    /// `P:R:weights`: hash of the waiting tickets of a shared-mode queue,
    /// serial -> weight (ours only).
    pub weights: String,
    /// `P:R:since`: hash serial -> server time (ms) of the admission of a
    /// holder of a shared-mode queue, or of when a ticket missing its key
    /// was first seen there, for status and admission (ours only).
    pub since: String,
    /// `P:R:granted`: the serial a plain queue's indicator was set to by one
    /// of our scripts, expiring a day after (its time to live tells how
    /// long ago, by the server's clock), for status and for telling a dead
    /// holder from a turn 1.0 ticket whose key is not set yet (ours only).
    pub granted: String,
}

impl Keys {
    pub fn new(prefix: &str, resource: &str) -> Keys {
        Keys::named(prefix, resource.to_string())
    }

    /// The keys of `resource` on a Redis Cluster: `P:{R}:...`, the same as
    /// a turn 1.0 client using the resource name `{R}`.
    pub fn tagged(prefix: &str, resource: &str) -> Keys {
        Keys::named(prefix, format!("{{{resource}}}"))
    }

    fn named(prefix: &str, name: String) -> Keys {
        let base = format!("{prefix}:{name}");
        Keys {
            name,
            dispenser: format!("{base}:dispenser"),
            indicator: format!("{base}:indicator"),
            presence_prefix: format!("{base}:serial:"),
            internal: format!("{base}:internal"),
            external: format!("{base}:external"),
            withdrawn: format!("{base}:withdrawn"),
            ticket_prefix: format!("{base}:ticket:"),
            incarnation: format!("{base}:incarnation"),
            kind: format!("{base}:kind"),
            admitted: format!("{base}:admitted"),
            holders: format!("{base}:holders"),
            weights: format!("{base}:weights"),
            since: format!("{base}:since"),
            granted: format!("{base}:granted"),
        }
    }

    pub fn presence(&self, serial: u64) -> String {
        format!("{}{serial}", self.presence_prefix)
    }

    /// The identity key of ticket `serial`.
    pub fn ticket(&self, serial: u64) -> String {
        format!("{}{serial}", self.ticket_prefix)
    }

    /// The serial named by an `internal` message (`P:R:serial:N`), parsed
    /// strictly: the exact presence prefix followed by decimal digits only.
    pub fn serial_of_message(&self, payload: &[u8]) -> Option<u64> {
        let rest = payload.strip_prefix(self.presence_prefix.as_bytes())?;
        parse_serial(rest)
    }
}

/// Parses a serial number: ASCII digits only, no sign, no spaces, fits u64.
pub(crate) fn parse_serial(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The resource named by a dispenser key `P:R:dispenser`, or None when the
/// key is not one of this prefix's dispensers.
pub(crate) fn resource_of_dispenser<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(':')?;
    let resource = rest.strip_suffix(":dispenser")?;
    if validate_resource(resource).is_ok() {
        Some(resource)
    } else {
        None
    }
}

/// Escapes the glob characters of Redis `SCAN MATCH` / `KEYS` patterns, so
/// that a name matches itself only.
pub(crate) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A resource name is 1 to [`MAX_RESOURCE_LEN`] bytes without control characters.
pub fn validate_resource(resource: &str) -> Result<()> {
    if resource.is_empty() {
        return Err(Error::invalid("resource name is empty"));
    }
    if resource.len() > MAX_RESOURCE_LEN {
        return Err(Error::invalid(format!(
            "resource name is {} bytes long; the limit is {MAX_RESOURCE_LEN}",
            resource.len()
        )));
    }
    if resource.chars().any(char::is_control) {
        return Err(Error::invalid("resource name contains a control character"));
    }
    Ok(())
}

/// A label is at most [`MAX_LABEL_LEN`] bytes; it may be empty.
pub fn validate_label(label: &str) -> Result<()> {
    if label.len() > MAX_LABEL_LEN {
        return Err(Error::invalid(format!(
            "label is {} bytes long; the limit is {MAX_LABEL_LEN}",
            label.len()
        )));
    }
    Ok(())
}

/// A key prefix is 1 to [`MAX_PREFIX_LEN`] bytes without control characters.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Err(Error::invalid("key prefix is empty"));
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(Error::invalid(format!(
            "key prefix is longer than {MAX_PREFIX_LEN} bytes"
        )));
    }
    if prefix.chars().any(char::is_control) {
        return Err(Error::invalid("key prefix contains a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_turn_1_0() {
        let k = Keys::new("turn", "printer");
        assert_eq!(k.dispenser, "turn:printer:dispenser");
        assert_eq!(k.indicator, "turn:printer:indicator");
        assert_eq!(k.presence(7), "turn:printer:serial:7");
        assert_eq!(k.internal, "turn:printer:internal");
        assert_eq!(k.external, "turn:printer:external");
    }

    #[test]
    fn messages_parse_strictly() {
        let k = Keys::new("turn", "a:b");
        assert_eq!(k.serial_of_message(b"turn:a:b:serial:12"), Some(12));
        assert_eq!(k.serial_of_message(b"turn:a:b:serial:"), None);
        assert_eq!(k.serial_of_message(b"turn:a:b:serial:+1"), None);
        assert_eq!(k.serial_of_message(b"turn:a:b:serial:1 "), None);
        assert_eq!(k.serial_of_message(b"turn:a:serial:1"), None);
        assert_eq!(
            k.serial_of_message(b"turn:a:b:serial:99999999999999999999999"),
            None
        );
    }

    #[test]
    fn dispenser_keys_parse_strictly() {
        assert_eq!(resource_of_dispenser("turn", "turn:x:dispenser"), Some("x"));
        assert_eq!(
            resource_of_dispenser("turn", "turn:a:b:dispenser"),
            Some("a:b")
        );
        assert_eq!(resource_of_dispenser("turn", "turn::dispenser"), None);
        assert_eq!(resource_of_dispenser("turn", "turnx:dispenser"), None);
        assert_eq!(resource_of_dispenser("turn", "other:x:dispenser"), None);
        assert_eq!(resource_of_dispenser("turn", "turn:x:indicator"), None);
    }

    #[test]
    fn globs_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_resource("").is_err());
        assert!(validate_resource("a\nb").is_err());
        assert!(validate_resource(&"x".repeat(MAX_RESOURCE_LEN + 1)).is_err());
        assert!(validate_resource(&"x".repeat(MAX_RESOURCE_LEN)).is_ok());
        assert!(validate_resource("ünïcode: * ok").is_ok());
        assert!(validate_label("").is_ok());
        assert!(validate_label(&"x".repeat(MAX_LABEL_LEN + 1)).is_err());
        assert!(validate_prefix("").is_err());
    }
}
