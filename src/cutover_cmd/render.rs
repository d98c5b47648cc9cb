//! What `strait cutover` prints for people: dry runs, the cutover table, one cutover, and the
//! plain-text form of a report (the Markdown form comes from the API's `report.md`).

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use strait_control_api::cutover::{Cutover, DryRun, Operation, OperationKind, Report};

/// `advance` or `rollback`.
pub(super) fn kind_name(op: &Operation) -> &'static str {
    match op.kind {
        OperationKind::Advance => "advance",
        OperationKind::Rollback => "rollback",
    }
}

/// RFC 3339 with milliseconds, UTC.
pub(super) fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok  " } else { "FAIL" }
}

pub(super) fn dry_run(report: &DryRun) -> String {
    let mut out = String::new();
    let from = report.stage.map_or("-".to_owned(), |s| s.to_string());
    let _ = writeln!(out, "dry run: {from} -> {}", report.to);
    for c in &report.checks {
        let _ = writeln!(out, "  check {} {}: {}", mark(c.ok), c.name, c.detail);
    }
    for a in &report.actions {
        let _ = writeln!(out, "  action: {a}");
    }
    for b in &report.blockers {
        let _ = writeln!(out, "  blocker: {b}");
    }
    out
}

/// One cutover, as `strait cutover status ID` shows it.
pub(super) fn cutover(c: &Cutover) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cutover  {} ({:?})", c.id, c.name);
    let _ = writeln!(out, "stage    {} (version {})", c.stage, c.version);
    let _ = writeln!(out, "topics   {}", c.topics.join(", "));
    let _ = writeln!(out, "groups   {}", c.groups.join(", "));
    match &c.operation {
        Some(op) => {
            let _ = writeln!(
                out,
                "running  {} to {}: {} (by {}, deadline {})",
                kind_name(op),
                op.to,
                op.progress,
                op.requested_by,
                time(op.deadline_ms)
            );
        }
        None => out.push_str("running  -\n"),
    }
    for check in &c.checks {
        let _ = writeln!(
            out,
            "check    {} {}: {}",
            mark(check.ok),
            check.name,
            check.detail
        );
    }
    if !c.stragglers.is_empty() {
        let _ = writeln!(out, "stragglers {}", c.stragglers.len());
    }
    out
}

/// Every cutover as a table.
pub(super) fn table(cutovers: &[Cutover]) -> String {
    let rows: Vec<[String; 6]> = cutovers
        .iter()
        .map(|c| {
            [
                c.id.clone(),
                c.name.clone(),
                c.stage.to_string(),
                c.version.to_string(),
                c.operation.as_ref().map_or("-".to_owned(), |op| {
                    format!("{} to {}: {}", kind_name(op), op.to, op.progress)
                }),
                c.topics.join(","),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "STAGE", "VERSION", "OPERATION", "TOPICS"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    if rows.is_empty() {
        out.push_str("(no cutovers)\n");
    }
    out
}

/// The report as plain text (the API's `report.md` is the Markdown form).
pub(super) fn report_text(r: &Report) -> String {
    let mut out = String::new();
    let section = |out: &mut String, title: &str| {
        let _ = write!(
            out,
            "\n{}\n{}\n",
            title.to_uppercase(),
            "-".repeat(title.len())
        );
    };
    let kind = if r.rehearsal { "Rehearsal" } else { "Cutover" };
    let _ = writeln!(out, "{kind} report: {} ({})", r.name, r.id);
    let write_pause = r.write_pause_ms.map_or("not promoted".to_owned(), |p| {
        humantime::format_duration(Duration::from_millis(p)).to_string()
    });
    let mut summary = vec![
        ("Result", r.result.clone()),
        ("Stage", r.stage.to_string()),
        ("Write pause (promoted - fenced)", write_pause),
        ("Straggler writes", r.stragglers.len().to_string()),
    ];
    if let Some(fb) = &r.failback {
        summary.push((
            "Failback",
            format!(
                "{} records copied back; {} groups translated back",
                fb.records_copied,
                fb.group_offsets.len()
            ),
        ));
    }
    for (k, v) in summary {
        let _ = writeln!(out, "{k:<32} {v}");
    }
    section(&mut out, "Stages");
    for s in &r.stages {
        let checks: Vec<String> = s
            .checks
            .iter()
            .map(|k| format!("{} {}", if k.ok { "ok" } else { "FAILED" }, k.name))
            .collect();
        let _ = writeln!(
            out,
            "  {}  {:<11}  lag {:<6}  {}",
            time(s.at_ms),
            s.stage.to_string(),
            s.lag_records,
            checks.join(", ")
        );
    }
    section(&mut out, "Cutover point");
    if r.cutover_point.is_empty() {
        out.push_str("  none (not promoted)\n");
    } else {
        let names: Vec<String> = r
            .cutover_point
            .iter()
            .map(|p| format!("{}-{}", p.topic, p.partition))
            .collect();
        let w = names.iter().map(String::len).max().unwrap_or(0).max(9);
        let _ = writeln!(
            out,
            "  {:<w$}  {:>12}  {:>12}",
            "partition", "source end", "target end"
        );
        for (name, p) in names.iter().zip(&r.cutover_point) {
            let _ = writeln!(
                out,
                "  {name:<w$}  {:>12}  {:>12}",
                p.source_end, p.target_end
            );
        }
    }
    section(&mut out, "Stragglers");
    for s in &r.stragglers {
        let _ = writeln!(
            out,
            "  {}  {} {}-{}: end {} -> {} (producers {:?})",
            time(s.at_ms),
            s.cluster,
            s.topic,
            s.partition,
            s.fenced_end,
            s.seen_end,
            s.producer_ids
        );
    }
    if r.stragglers.is_empty() {
        out.push_str("  none\n");
    }
    if !r.failed_checks.is_empty() {
        section(&mut out, "Failed checks");
        for k in &r.failed_checks {
            let _ = writeln!(out, "  {}: {}", k.name, k.detail);
        }
    }
    section(&mut out, "Timeline");
    let kind_w = r.events.iter().map(|e| e.kind.len()).max().unwrap_or(0);
    let actor_w = r.events.iter().map(|e| e.actor.len()).max().unwrap_or(0);
    for e in &r.events {
        let _ = writeln!(
            out,
            "  {}  {:<kind_w$}  {:<actor_w$}  {}",
            time(e.at_ms),
            e.kind,
            e.actor,
            e.message
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_report_shows_result_write_pause_and_sections() {
        let r: Report = serde_json::from_value(json!({
            "id": "c1", "name": "wave 1", "rehearsal": false, "result": "promoted",
            "stage": "promoted",
            "stages": [{ "stage": "fenced", "at_ms": 1_000, "lag_records": 3,
                         "checks": [{ "name": "source_quiet", "ok": true, "detail": "" }] }],
            "write_pause_ms": 2_500, "failback": null,
            "cutover_point": [{ "topic": "orders", "partition": 0, "source_end": 42, "target_end": 42 }],
            "stragglers": [], "failed_checks": [],
            "events": [{ "at_ms": 1_000, "kind": "stage_reached", "message": "stage fenced reached", "actor": "strait" }]
        }))
        .unwrap();
        let text = report_text(&r);
        assert!(text.starts_with("Cutover report: wave 1 (c1)\n"), "{text}");
        assert!(
            text.contains("Result                           promoted\n"),
            "{text}"
        );
        assert!(
            text.contains("Write pause (promoted - fenced)  2s 500ms\n"),
            "{text}"
        );
        assert!(
            text.contains("1970-01-01T00:00:01.000Z  fenced       lag 3       ok source_quiet"),
            "{text}"
        );
        assert!(
            text.contains(
                "  partition    source end    target end\n  orders-0             42            42\n"
            ),
            "{text}"
        );
        assert!(text.contains("STRAGGLERS\n----------\n  none\n"), "{text}");
        assert!(!text.contains("FAILED CHECKS"), "{text}");
        assert!(
            text.contains(
                "TIMELINE\n--------\n  1970-01-01T00:00:01.000Z  stage_reached  strait  stage fenced"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_table_pads_columns() {
        let c: Cutover = serde_json::from_value(json!({
            "id": "co-1", "name": "wave", "version": 3, "stage": "fenced",
            "topics": ["a", "b"], "groups": [], "fence": { "mode": "manual" },
            "deadlines": {}, "max_lag_records": 10, "operation": null, "checks": [],
            "cutover_point": [], "fenced_ends": {}, "stragglers": [], "fenced_ms": null,
            "promoted_ms": null, "rolled_back_ms": null, "failback": null, "events": [],
            "created_ms": 0, "updated_ms": 0
        }))
        .unwrap();
        let t = table(&[c]);
        assert_eq!(
            t,
            "ID    NAME  STAGE   VERSION  OPERATION  TOPICS\nco-1  wave  fenced  3        -          a,b\n"
        );
        assert_eq!(
            table(&[]),
            "ID  NAME  STAGE  VERSION  OPERATION  TOPICS\n(no cutovers)\n"
        );
    }
}
