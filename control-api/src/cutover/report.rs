//! The report of a cutover or rehearsal, as JSON ([`Report`]) and Markdown: what a migration
//! engineer attaches to the change ticket after a staging rehearsal.

use std::fmt::Write as _;

use super::model::{Cutover, Report, Stage};

/// The report of `c`.
pub fn build(c: &Cutover) -> Report {
    let expired = c
        .events
        .iter()
        .any(|e| e.kind == "deadline_expired" || e.kind == "step_failed");
    let result = match (&c.operation, c.stage) {
        (Some(_), _) => "running",
        (None, Stage::RolledBack) => "rolled_back",
        (None, Stage::Promoted) => "promoted",
        (None, Stage::Mirroring) if expired => "failed",
        (None, Stage::Mirroring) => "mirroring",
        (None, _) => "paused",
    };
    let mut failed_checks: Vec<_> = c
        .stage_log
        .iter()
        .flat_map(|s| s.checks.iter())
        .chain(c.checks.iter())
        .filter(|k| !k.ok)
        .cloned()
        .collect();
    failed_checks.dedup();
    Report {
        id: c.id.clone(),
        name: c.name.clone(),
        rehearsal: c.rehearsal,
        result: result.to_string(),
        stage: c.stage,
        stages: c.stage_log.clone(),
        write_pause_ms: match (c.fenced_ms, c.promoted_ms) {
            (Some(f), Some(p)) => Some(p.saturating_sub(f)),
            _ => None,
        },
        failback: c.failback.clone(),
        cutover_point: c.cutover_point.clone(),
        stragglers: c.stragglers.clone(),
        failed_checks,
        events: c.events.clone(),
    }
}

fn time(ms: u64, start: u64) -> String {
    format!("+{:.1}s", ms.saturating_sub(start) as f64 / 1000.0)
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let start = r.events.first().map_or(0, |e| e.at_ms);
    let kind = if r.rehearsal { "Rehearsal" } else { "Cutover" };
    let _ = writeln!(out, "# {kind} report: {} (`{}`)\n", r.name, r.id);
    let _ = writeln!(out, "- **Result:** {}", r.result);
    let _ = writeln!(out, "- **Stage:** {}", r.stage);
    match r.write_pause_ms {
        Some(p) => {
            let _ = writeln!(
                out,
                "- **Write pause** (source fenced → target primary): {p} ms"
            );
        }
        None => {
            let _ = writeln!(out, "- **Write pause:** not promoted");
        }
    }
    let _ = writeln!(out, "- **Straggler writes:** {}", r.stragglers.len());
    if let Some(fb) = &r.failback {
        let _ = writeln!(
            out,
            "- **Failback:** {} records copied back; groups translated back: {}",
            fb.records_copied,
            fb.group_offsets.len()
        );
    }
    let _ = writeln!(out, "\n## Stages\n");
    let _ = writeln!(out, "| stage | at | lag (records) | checks |");
    let _ = writeln!(out, "|---|---|---|---|");
    for s in &r.stages {
        let checks: Vec<String> = s
            .checks
            .iter()
            .map(|k| format!("{} {}", if k.ok { "✔" } else { "✘" }, k.name))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            s.stage,
            time(s.at_ms, start),
            s.lag_records,
            checks.join(", ")
        );
    }
    if !r.cutover_point.is_empty() {
        let _ = writeln!(out, "\n## Cutover point\n");
        let _ = writeln!(out, "| partition | source end | target end |");
        let _ = writeln!(out, "|---|---|---|");
        for p in &r.cutover_point {
            let _ = writeln!(
                out,
                "| {}-{} | {} | {} |",
                p.topic, p.partition, p.source_end, p.target_end
            );
        }
    }
    if let Some(fb) = &r.failback
        && !fb.group_offsets.is_empty()
    {
        let _ = writeln!(
            out,
            "\n## Group offsets committed on the source by the failback\n"
        );
        for (g, offsets) in &fb.group_offsets {
            let _ = writeln!(out, "- `{g}`: {offsets:?}");
        }
    }
    if !r.stragglers.is_empty() {
        let _ = writeln!(out, "\n## Straggler writes\n");
        for s in &r.stragglers {
            let _ = writeln!(
                out,
                "- {} {}-{}: end {} → {} (producers {:?})",
                s.cluster, s.topic, s.partition, s.fenced_end, s.seen_end, s.producer_ids
            );
        }
    }
    if !r.failed_checks.is_empty() {
        let _ = writeln!(out, "\n## Failed checks\n");
        for k in &r.failed_checks {
            let _ = writeln!(out, "- **{}**: {}", k.name, k.detail);
        }
    }
    let _ = writeln!(out, "\n## Timeline\n");
    for e in &r.events {
        let _ = writeln!(
            out,
            "- {} `{}` ({}) {}",
            time(e.at_ms, start),
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
    use crate::cutover::machine::new_cutover;
    use crate::cutover::model::{CreateCutover, Deadlines, FenceMode, FenceSpec, StageRecord};

    #[test]
    fn report_says_what_happened() {
        let mut c = new_cutover(
            "c1".into(),
            CreateCutover {
                name: "wave".into(),
                topics: vec!["t".into()],
                groups: vec![],
                fence: FenceSpec {
                    mode: FenceMode::Manual,
                    failback_mode: None,
                    principals: vec!["User:*".into()],
                    quiet_period_ms: 100,
                },
                deadlines: Deadlines::default(),
                max_lag_records: 0,
                dry_run: false,
            },
            "ops",
            1_000,
        );
        c.rehearsal = true;
        c.fenced_ms = Some(2_000);
        c.promoted_ms = Some(2_750);
        c.stage = Stage::RolledBack;
        c.stage_log.push(StageRecord {
            stage: Stage::Fenced,
            at_ms: 2_000,
            lag_records: 3,
            checks: vec![],
        });
        let r = build(&c);
        assert_eq!(r.result, "rolled_back");
        assert_eq!(r.write_pause_ms, Some(750));
        let md = markdown(&r);
        assert!(md.starts_with("# Rehearsal report: wave"), "{md}");
        assert!(md.contains("750 ms"), "{md}");
        assert!(md.contains("| fenced | +1.0s | 3 |"), "{md}");
        c.operation = None;
        c.stage = Stage::Mirroring;
        c.events.push(crate::cutover::model::Event {
            at_ms: 3_000,
            kind: "deadline_expired".into(),
            message: "x".into(),
            actor: "strait".into(),
        });
        assert_eq!(build(&c).result, "failed");
    }
}
