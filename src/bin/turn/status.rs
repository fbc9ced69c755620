//! `turn status`: the queues of the named resources (turn 1.0's layout),
//! or a summary of every queue; as JSON with `--json`. A semaphore or
//! read-write queue also shows its kind, and each ticket whether it holds
//! or waits, with its weight or its share (shared, exclusive); a plain
//! queue prints exactly what turn 1.0 prints.

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

pub fn print_status(locker: &Locker, resources: &[String], json: bool) -> turn::Result<()> {
    if resources.is_empty() {
        return print_summary(locker, json);
    }
    let mut found = Vec::new();
    for r in resources {
        if let Some(s) = status_of(locker, r)? {
            found.push(s);
        }
    }
    if json {
        let list: Vec<_> = found.iter().map(queue_json).collect();
        out!("{}", Value::Array(list));
        return Ok(());
    }
    for (i, s) in found.iter().enumerate() {
        if i > 0 {
            out!("");
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

/// A ticket: serial and label; in a shared queue also whether it holds,
/// and its weight (a semaphore) or its mode ("shared", "exclusive").
fn ticket_json(t: &TicketInfo, kind: Kind) -> Value {
    let mut object = Map::new();
    object.insert("serial".into(), json!(t.serial));
    object.insert("label".into(), json!(t.label));
    if kind != Kind::Plain {
        object.insert("held".into(), json!(t.held));
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
