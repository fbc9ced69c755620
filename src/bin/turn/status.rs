//! `turn status`: the queues of the named resources (turn 1.0's layout),
//! or a summary of every queue; as JSON with `--json`.

use turn::{ErrorKind, Kind, Locker, Status};

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
        let list: Vec<_> = found
            .iter()
            .map(|s| {
                serde_json::json!({
                    "resource": s.resource,
                    "indicator": s.indicator,
                    "dispenser": s.dispenser,
                    "size": s.size(),
                    "tickets": s.tickets.iter()
                        .map(|t| serde_json::json!({"serial": t.serial, "label": t.label}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        out!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    for (i, s) in found.iter().enumerate() {
        if i > 0 {
            out!("");
        }
        out!("{}", row(&clean(&s.resource), s.indicator));
        out!("{SEPARATOR}");
        for t in &s.tickets {
            out!("{}", row(&clean(&t.label), t.serial));
        }
    }
    Ok(())
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
                serde_json::json!({
                    "resource": s.resource,
                    "size": s.size(),
                    "indicator": s.indicator,
                    "dispenser": s.dispenser,
                })
            })
            .collect();
        out!("{}", serde_json::Value::Array(list));
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

/// A kind of queue in a sentence: `a semaphore of 3 permits`.
fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Plain => "a plain lock".to_string(),
        Kind::Semaphore { permits: 1 } => "a semaphore of 1 permit".to_string(),
        Kind::Semaphore { permits } => format!("a semaphore of {permits} permits"),
        Kind::ReadWrite => "a read-write lock".to_string(),
    }
}

/// A `WrongKind` error of an acquire of `asked` on `resource`, said with
/// the queue's kind as it is now (read again) and how to make it anew;
/// any other error as it is.
pub fn explain_wrong_kind(
    locker: &Locker,
    resource: &str,
    asked: Kind,
    e: turn::Error,
) -> turn::Error {
    if e.kind() != ErrorKind::WrongKind {
        return e;
    }
    let Ok(Some(queue)) = status_of(locker, resource) else {
        return e;
    };
    let name = clean(resource);
    turn::Error::new(
        ErrorKind::WrongKind,
        format!(
            "{name}: its queue is {}, not {}; a queue's kind is fixed until it is \
             reset (`turn reset {name}` once nobody holds or waits)",
            kind_name(queue.kind),
            kind_name(asked)
        ),
    )
}
