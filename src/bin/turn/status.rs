//! `turn status`: the queues of the named resources (turn 1.0's layout),
//! or a summary of every queue; as JSON with `--json`. A semaphore or
//! read-write queue also shows its kind, and each ticket whether it holds
//! or waits, with its weight or its share (shared, exclusive); a plain
//! queue prints exactly what turn 1.0 prints. `--long` shows each ticket's
//! facts: a holder's token, how long it has held and its lease left, a
//! waiter's place and how long it has waited, turn 1.0 tickets as such.

use std::time::Duration;

use serde_json::{Map, Value, json};
use turn::{ErrorKind, Kind, Locker, Mode, Status, TicketInfo};

use super::output::{self, clean};

const SEPARATOR: &str = "------------------------------------------------------------";

fn row(left: &str, right: impl std::fmt::Display) -> String {
    format!("{:<50}{:>10}", left, right)
}

/// The queue of `resource`; None when there is none.
pub fn status_of(locker: &Locker, resource: &str) -> turn::Result<Option<Status>> {
    match locker.status(resource) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// How `turn status` prints.
#[derive(Debug, Clone, Copy, Default)]
pub struct Form {
    /// JSON instead of the table.
    pub json: bool,
    /// Every ticket's facts (`--long`); without resources, every queue.
    pub long: bool,
}

pub fn print_status(locker: &Locker, resources: &[String], form: Form) -> turn::Result<()> {
    if resources.is_empty() && !form.long {
        return print_summary(locker, form.json);
    }
    let mut found = Vec::new();
    if resources.is_empty() {
        for r in locker.resources()? {
            if let Some(s) = status_of(locker, &r)? {
                found.push(s);
            }
        }
        found.sort_by(|a, b| (b.size(), &b.resource).cmp(&(a.size(), &a.resource)));
    }
    for r in resources {
        if let Some(s) = status_of(locker, r)? {
            found.push(s);
        }
    }
    if form.json {
        let list: Vec<_> = found.iter().map(queue_json).collect();
        out!("{}", Value::Array(list));
        return Ok(());
    }
    for (i, s) in found.iter().enumerate() {
        if i > 0 {
            out!("");
        }
        if form.long {
            print_long(s)?;
            continue;
        }
        if s.kind == Kind::Plain {
            out!("{}", row(&clean(&s.resource), s.indicator));
            out!("{SEPARATOR}");
            for t in &s.tickets {
                out!("{}", row(&clean(&t.label), t.serial));
            }
            continue;
        }
        let title = format!("{} ({})", clean(&s.resource), kind_text(s));
        out!("{}", row(&title, s.indicator));
        out!("{SEPARATOR}");
        let (holders, waiters): (Vec<_>, Vec<_>) = s.tickets.iter().partition(|t| t.held);
        for t in holders.iter().chain(&waiters) {
            let state = if t.held { "holds" } else { "waits" };
            let ticket = format!("{state} {:<10} {}", share(t.mode), clean(&t.label));
            out!("{}", row(&ticket, t.serial));
        }
    }
    Ok(())
}

/// A row of `--long`'s ticket table (the header's too).
#[allow(clippy::too_many_arguments)]
fn long_columns(
    serial: &str,
    state: &str,
    share: &str,
    token: &str,
    age: &str,
    lease: &str,
    label: &str,
) -> String {
    format!("{serial:>6}  {state:<8}  {share:<9} {token:>17} {age:>7} {lease:>7}  {label}")
}

/// One queue with every ticket's facts: its title (the resource, its kind
/// unless plain, the indicator), then a row per ticket, holders first. FOR
/// is how long a holder has held, or a waiter waited; STATE names a
/// waiter's place (`waits 2`: one waiter ahead of it); a turn 1.0 ticket
/// shows `turn 1.0` for its token (it has none) and `-` for what is not
/// known of it.
fn print_long(s: &Status) -> turn::Result<()> {
    let title = if s.kind == Kind::Plain {
        clean(&s.resource)
    } else {
        format!("{} ({})", clean(&s.resource), kind_text(s))
    };
    out!("{}", row(&title, s.indicator));
    out!("{SEPARATOR}");
    out!(
        "{}",
        long_columns("SERIAL", "STATE", "SHARE", "TOKEN", "FOR", "LEASE", "LABEL")
    );
    let (holders, waiters): (Vec<_>, Vec<_>) = s.tickets.iter().partition(|t| t.held);
    for t in holders.iter().chain(&waiters) {
        out!("{}", long_row(t));
    }
    Ok(())
}

/// A ticket's row of `--long`.
fn long_row(t: &TicketInfo) -> String {
    let state = match (t.held, t.position) {
        (true, _) => "holds".to_string(),
        (false, Some(p)) => format!("waits {p}"),
        (false, None) => "waits".to_string(),
    };
    let token = match (t.ours, t.token) {
        (false, _) => "turn 1.0".to_string(),
        (true, Some(token)) => token.to_string(),
        (true, None) => "-".to_string(),
    };
    let age = if t.held { t.held_for } else { t.waited_for };
    long_columns(
        &t.serial.to_string(),
        &state,
        &share(t.mode),
        &token,
        &span(age),
        &span(t.lease_left),
        &clean(&t.label),
    )
}

/// A duration for people: `850ms`, `12.3s`, `4m05s`, `2h07m`; `-` when
/// not known.
pub fn span(d: Option<Duration>) -> String {
    let Some(d) = d else {
        return "-".to_string();
    };
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    }
}

/// A shared queue's kind, as its title says it: `semaphore, 2 of 3
/// permits held`, `read-write lock`.
fn kind_text(s: &Status) -> String {
    match s.kind {
        Kind::Plain => "plain lock".to_string(),
        Kind::Semaphore { permits } => {
            let held: u64 = s
                .tickets
                .iter()
                .filter(|t| t.held)
                .map(|t| u64::from(weight(t.mode)))
                .sum();
            format!("semaphore, {held} of {permits} permits held")
        }
        Kind::ReadWrite => "read-write lock".to_string(),
    }
}

/// What a ticket of a shared queue asks: `weight W`, `shared`, `exclusive`.
fn share(mode: Mode) -> String {
    match mode {
        Mode::Semaphore { weight, .. } => format!("weight {weight}"),
        Mode::ReadWrite { exclusive: false } => "shared".to_string(),
        Mode::ReadWrite { exclusive: true } => "exclusive".to_string(),
        Mode::Plain => "alone".to_string(),
    }
}

fn weight(mode: Mode) -> u32 {
    match mode {
        Mode::Semaphore { weight, .. } => weight,
        _ => 0,
    }
}

/// The kind of a shared queue in JSON: `"kind": "semaphore", "permits": N`
/// or `"kind": "rwlock"` (the value of its `kind` key in Redis). A plain
/// queue's JSON has neither, as before the shared modes.
fn put_kind(object: &mut Map<String, Value>, kind: Kind) {
    match kind {
        Kind::Plain => {}
        Kind::Semaphore { permits } => {
            object.insert("kind".into(), json!("semaphore"));
            object.insert("permits".into(), json!(permits));
        }
        Kind::ReadWrite => {
            object.insert("kind".into(), json!("rwlock"));
        }
    }
}

/// One queue of `turn status --json R...`.
fn queue_json(s: &Status) -> Value {
    let mut object = Map::new();
    object.insert("resource".into(), json!(s.resource));
    put_kind(&mut object, s.kind);
    object.insert("indicator".into(), json!(s.indicator));
    object.insert("dispenser".into(), json!(s.dispenser));
    object.insert("size".into(), json!(s.size()));
    let tickets = s.tickets.iter().map(|t| ticket_json(t, s.kind)).collect();
    object.insert("tickets".into(), Value::Array(tickets));
    Value::Object(object)
}

/// A ticket: serial and label; in a shared queue also its weight (a
/// semaphore) or its mode ("shared", "exclusive"); and its facts: whether
/// it holds, whether this library drew it (`ours`: false for a turn 1.0
/// ticket), its `token`, a holder's `held_for_ms`, a waiter's
/// `waited_for_ms` and `position` (from 1), its `lease_left_ms`; null for
/// what is not known or does not apply.
fn ticket_json(t: &TicketInfo, kind: Kind) -> Value {
    let mut object = Map::new();
    object.insert("serial".into(), json!(t.serial));
    object.insert("label".into(), json!(t.label));
    object.insert("held".into(), json!(t.held));
    object.insert("ours".into(), json!(t.ours));
    object.insert("token".into(), json!(t.token));
    let ms = |d: Option<Duration>| json!(d.map(|d| d.as_millis() as u64));
    object.insert("held_for_ms".into(), ms(t.held_for));
    object.insert("waited_for_ms".into(), ms(t.waited_for));
    object.insert("lease_left_ms".into(), ms(t.lease_left));
    object.insert("position".into(), json!(t.position));
    if kind != Kind::Plain {
        match t.mode {
            Mode::Semaphore { weight, .. } => {
                object.insert("weight".into(), json!(weight));
            }
            mode => {
                object.insert("mode".into(), json!(share(mode)));
            }
        }
    }
    Value::Object(object)
}

fn print_summary(locker: &Locker, json: bool) -> turn::Result<()> {
    let mut queues = Vec::new();
    for r in locker.resources()? {
        if let Some(s) = status_of(locker, &r)? {
            queues.push(s);
        }
    }
    // Largest queue first; ties by name, descending, as turn 1.0 sorts.
    queues.sort_by(|a, b| (b.size(), &b.resource).cmp(&(a.size(), &a.resource)));
    if json {
        let list: Vec<_> = queues
            .iter()
            .map(|s| {
                let mut object = Map::new();
                object.insert("resource".into(), json!(s.resource));
                put_kind(&mut object, s.kind);
                object.insert("size".into(), json!(s.size()));
                object.insert("indicator".into(), json!(s.indicator));
                object.insert("dispenser".into(), json!(s.dispenser));
                Value::Object(object)
            })
            .collect();
        out!("{}", Value::Array(list));
        return Ok(());
    }
    if queues.is_empty() {
        return Ok(());
    }
    out!("{}", row("Resource", "Queue size"));
    out!("{SEPARATOR}");
    for s in &queues {
        out!("{}", row(&clean(&s.resource), s.size()));
    }
    Ok(())
}
