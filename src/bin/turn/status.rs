//! `turn status`: the queues of the named resources (turn 1.0's layout),
//! or a summary of every queue; as JSON with `--json`.

use turn::{ErrorKind, Locker, Status};

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
