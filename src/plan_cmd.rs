//! `strait plan`: prints the plan's checks (and, with `--probe`, the target's guarantees);
//! the checks themselves live in `strait_linker::plan`.

use strait_linker::config::StraitConfig;
use strait_linker::plan::{self, Outcome, PlanOptions, PlanReport, Severity};

/// Arguments of `strait plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: crate::ConfigArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also check which Kafka guarantees hold on the target, on a scratch topic
    /// `strait-probe-<random>` that is created there and deleted again.
    #[arg(long)]
    pub probe: bool,
}

/// Runs the plan; an error (exit 1) when there are blockers.
pub async fn run(cfg: StraitConfig, args: PlanArgs) -> anyhow::Result<()> {
    let spinner = crate::progress::enabled(args.json).then(|| {
        crate::progress::spinner(if args.probe {
            "plan: checking the clusters and probing the target"
        } else {
            "plan: checking the clusters, topics and groups"
        })
    });
    let report = plan::plan(&cfg, PlanOptions { probe: args.probe }).await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    let blockers: Vec<&str> = report.blockers().map(|c| c.name.as_str()).collect();
    if blockers.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "not ready: {} blocker(s) ({})",
            blockers.len(),
            blockers.join(", ")
        )
    }
}

/// The report for people: one line per check, the figures, the probe, the verdict.
fn render(r: &PlanReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for c in &r.checks {
        let mark = match (c.ok, c.severity) {
            (true, _) => "ok",
            (false, Severity::Blocker) => "BLOCKER",
            (false, Severity::Warning) => "warn",
            (false, Severity::Info) => "info",
        };
        let _ = writeln!(out, "{mark:<8}{}: {}", c.name, c.detail);
    }
    let f = &r.figures;
    let bytes = f
        .initial_copy_bytes
        .map(|b| format!(" ({:.1} MiB)", b as f64 / (1u64 << 20) as f64))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "plan: {} topic(s), {} partition(s), {} record(s) to copy{bytes}, {} group(s)",
        f.topic_count,
        f.partition_count,
        f.initial_copy_records,
        f.groups.len()
    );
    if let Some(p) = &r.probe {
        let scratch = match (&p.scratch_topic, p.scratch_topic_deleted) {
            (Some(t), true) => format!("scratch topic {t}, deleted"),
            (Some(t), false) => format!("scratch topic {t}, NOT deleted"),
            (None, _) => "no scratch topic".to_owned(),
        };
        let _ = writeln!(out, "probe of the target {} ({scratch}):", p.target);
        for g in &p.guarantees {
            let mark = match g.outcome {
                Outcome::Held => "held",
                Outcome::NotHeld => "NOT HELD",
                Outcome::Untested => "untested",
            };
            let _ = writeln!(out, "{mark:<10}{}: {}", g.name, g.detail);
            if let Some(a) = g.affects {
                let _ = writeln!(out, "{:<10}affects: {a}", "");
            }
        }
    }
    let blockers = r.blockers().count();
    let _ = writeln!(
        out,
        "{}",
        if blockers == 0 {
            "READY".to_owned()
        } else {
            format!("NOT READY: {blockers} blocker(s)")
        }
    );
    out
}
