//! `strait cutover ...`: a command-line client of the control API of a running `strait run`,
//! for playbooks. Every command exits 0 on success and 1 on an API error (printed as
//! `error: <code>: <message>` plus its blockers), on a dry run with blockers, or when a
//! waited-for transition (or rehearsal) did not end where it was asked to.
//!
//! The HTTP client lives in [`client`], what is printed for people in [`render`].

pub(crate) mod client;
mod render;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};
use strait_control_api::cutover::{Cutover, DryRun, FenceMode, Report, Stage};
use strait_control_api::routes::CutoverList;

use client::{Answer, Client, path_segment};

#[derive(Debug, clap::Args)]
pub struct CutoverArgs {
    /// Base URL of the control API (`[api] listen` of the running strait).
    #[arg(
        long,
        global = true,
        env = "STRAIT_API_URL",
        default_value = "http://127.0.0.1:8088"
    )]
    api: String,
    /// File holding the bearer token (the token alone; surrounding whitespace is ignored).
    /// Without it the token is read from the STRAIT_API_TOKEN environment variable.
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for an `https://` API URL whose certificate is not
    /// signed by a public CA (`[api] tls_cert` signed by your own CA).
    #[arg(long, global = true, env = "STRAIT_API_CA_FILE")]
    api_ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: CutoverCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CutoverCommand {
    /// Creates a cutover (stage `mirroring`) and prints its id; `--dry-run` only checks.
    Create(CreateArgs),
    /// Starts moving a cutover to a later stage (fenced, drained, promoted).
    Advance(AdvanceArgs),
    /// Starts a rollback (a failback after promotion).
    Rollback(RollbackArgs),
    /// Lists the cutovers as a table, or shows one.
    Status(StatusArgs),
    /// Prints a cutover's report: result, stages with lag and checks, write pause, cutover
    /// point, failback, stragglers and timeline.
    Report(ReportArgs),
    /// Rehearses a cutover and its failback back to back on the configured (staging)
    /// clusters; prints the rehearsal's id, or with --wait its Markdown report.
    Rehearse(RehearseArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Fence {
    /// strait adds DENY WRITE ACLs for the wave's topics.
    Acl,
    /// The operator stops the producers; strait checks the topics stay quiet.
    Manual,
}

impl From<Fence> for FenceMode {
    fn from(f: Fence) -> Self {
        match f {
            Fence::Acl => FenceMode::Acl,
            Fence::Manual => FenceMode::Manual,
        }
    }
}

/// The wave and its fence, as `create` and `rehearse` take them.
#[derive(Debug, clap::Args)]
struct WaveArgs {
    /// The wave's topics, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    topics: Vec<String>,
    /// The wave's consumer groups, comma-separated.
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// How writes to the source are stopped.
    #[arg(long, value_enum)]
    fence: Fence,
    /// How the target is fenced during a failback (default: as --fence).
    #[arg(long, value_enum)]
    failback_fence: Option<Fence>,
    /// How long a manual fence must see no writes, e.g. `5s` (default 5s).
    #[arg(long, value_parser = humantime::parse_duration)]
    quiet_period: Option<Duration>,
}

impl WaveArgs {
    /// The request's `fence` object.
    fn fence(&self) -> Value {
        let mut fence = json!({ "mode": FenceMode::from(self.fence) });
        if let Some(f) = self.failback_fence {
            fence["failback_mode"] = json!(FenceMode::from(f));
        }
        if let Some(q) = self.quiet_period {
            fence["quiet_period_ms"] = json!(u64::try_from(q.as_millis()).unwrap_or(u64::MAX));
        }
        fence
    }
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// A name for people.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    wave: WaveArgs,
    /// Largest lag (records, summed over the wave) at which fencing may start (default
    /// 10000).
    #[arg(long)]
    max_lag_records: Option<i64>,
    /// Time allowed to fence, e.g. `2m` (default 1m); an expired fence is undone.
    #[arg(long, value_parser = humantime::parse_duration)]
    fence_deadline: Option<Duration>,
    /// Time allowed to drain (default 5m); an expired drain is undone.
    #[arg(long, value_parser = humantime::parse_duration)]
    drain_deadline: Option<Duration>,
    /// Time allowed to promote (default 1m); an expired promotion is undone.
    #[arg(long, value_parser = humantime::parse_duration)]
    promote_deadline: Option<Duration>,
    /// Time allowed for a failback (default 10m); an expired one is reported, not undone.
    #[arg(long, value_parser = humantime::parse_duration)]
    failback_deadline: Option<Duration>,
    /// Only check; create nothing. Exits 1 when something would block it.
    #[arg(long)]
    dry_run: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct WaitArgs {
    /// Wait until the transition finished (`operation` is null) and print the final stage;
    /// exit 1 unless it ended at the requested stage.
    #[arg(long)]
    wait: bool,
    /// Longest wait with --wait.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    timeout: Duration,
}

#[derive(Debug, clap::Args)]
struct AdvanceArgs {
    /// The cutover's id.
    id: String,
    /// The stage to reach: fenced, drained or promoted.
    #[arg(long, value_parser = parse_stage)]
    to: Stage,
    /// Only check; change nothing. Exits 1 when something would block it.
    #[arg(long)]
    dry_run: bool,
    /// Expected version (sent as If-Match); the request fails with stale_version otherwise.
    #[arg(long)]
    if_match: Option<u64>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
struct RollbackArgs {
    /// The cutover's id.
    id: String,
    /// Only check; change nothing. Exits 1 when something would block it.
    #[arg(long)]
    dry_run: bool,
    /// Expected version (sent as If-Match).
    #[arg(long)]
    if_match: Option<u64>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// One cutover's id; all cutovers when left out.
    id: Option<String>,
    /// Print JSON as returned by the API.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// The cutover's id.
    id: String,
    /// Markdown (the API's `report.md`) instead of plain text.
    #[arg(long, conflicts_with = "json")]
    markdown: bool,
    /// JSON as returned by the API.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct RehearseArgs {
    /// A name for people (default: `rehearsal-<time>`).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    wave: WaveArgs,
    /// Wait until the rehearsal finished and print its Markdown report; exit 1 unless it
    /// ended rolled back (a failed check or an expired deadline on the way).
    #[arg(long)]
    wait: bool,
    /// Longest wait with --wait.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20m")]
    timeout: Duration,
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    serde_json::from_value(Value::String(s.to_owned())).map_err(|_| {
        format!("unknown stage `{s}` (mirroring, fenced, drained, promoted, rolled_back)")
    })
}

/// Runs one `strait cutover` command.
pub async fn run(args: CutoverArgs) -> anyhow::Result<()> {
    let client = Client::new(
        &args.api,
        args.token_file.as_deref(),
        args.api_ca_file.as_deref(),
    )?;
    match args.command {
        CutoverCommand::Create(a) => create(&client, a).await,
        CutoverCommand::Advance(a) => advance(&client, a).await,
        CutoverCommand::Rollback(a) => rollback(&client, a).await,
        CutoverCommand::Status(a) => status(&client, a).await,
        CutoverCommand::Report(a) => report(&client, a).await,
        CutoverCommand::Rehearse(a) => rehearse(&client, a).await,
    }
}

impl CreateArgs {
    /// The `POST /v1/cutovers` body; unset options keep the API's defaults.
    fn body(&self) -> Value {
        let mut body = json!({
            "name": self.name, "topics": self.wave.topics, "groups": self.wave.groups,
            "fence": self.wave.fence(), "dry_run": self.dry_run,
        });
        if let Some(n) = self.max_lag_records {
            body["max_lag_records"] = json!(n);
        }
        let mut deadlines = serde_json::Map::new();
        for (key, d) in [
            ("fence_ms", self.fence_deadline),
            ("drain_ms", self.drain_deadline),
            ("promote_ms", self.promote_deadline),
            ("failback_ms", self.failback_deadline),
        ] {
            if let Some(d) = d {
                deadlines.insert(
                    key.into(),
                    json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                );
            }
        }
        if !deadlines.is_empty() {
            body["deadlines"] = Value::Object(deadlines);
        }
        body
    }
}

async fn create(client: &Client, a: CreateArgs) -> anyhow::Result<()> {
    let body = a.body();
    let answer = client
        .call(reqwest::Method::POST, "/v1/cutovers", Some(body), None)
        .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
    }
    if a.dry_run {
        let report: DryRun = answer.parse()?;
        if !a.json {
            print!("{}", render::dry_run(&report));
        }
        return dry_run_result(&report);
    }
    let cutover: Cutover = answer.parse()?;
    if !a.json {
        // The id alone on stdout, for `ID=$(strait cutover create ...)`.
        println!("{}", cutover.id);
        eprintln!(
            "cutover {} ({:?}) at stage {}, version {}",
            cutover.id, cutover.name, cutover.stage, cutover.version
        );
    }
    Ok(())
}

fn dry_run_result(report: &DryRun) -> anyhow::Result<()> {
    match report.blockers.len() {
        0 => Ok(()),
        n => bail!("dry run: {n} blocker(s); nothing was changed"),
    }
}

async fn advance(client: &Client, a: AdvanceArgs) -> anyhow::Result<()> {
    let path = format!("/v1/cutovers/{}/advance", path_segment(&a.id));
    let body = json!({ "to": a.to, "dry_run": a.dry_run });
    let answer = client
        .call(reqwest::Method::POST, &path, Some(body), a.if_match)
        .await?;
    transition(client, &a.id, answer, a.dry_run, &a.wait, a.to).await
}

async fn rollback(client: &Client, a: RollbackArgs) -> anyhow::Result<()> {
    let path = format!("/v1/cutovers/{}/rollback", path_segment(&a.id));
    let body = json!({ "dry_run": a.dry_run });
    let answer = client
        .call(reqwest::Method::POST, &path, Some(body), a.if_match)
        .await?;
    transition(client, &a.id, answer, a.dry_run, &a.wait, Stage::RolledBack).await
}

/// Prints the answer to an advance or rollback and, with --wait, follows it to the end.
async fn transition(
    client: &Client,
    id: &str,
    answer: Answer,
    dry_run: bool,
    wait: &WaitArgs,
    want: Stage,
) -> anyhow::Result<()> {
    if dry_run {
        let report: DryRun = answer.parse()?;
        print!("{}", render::dry_run(&report));
        return dry_run_result(&report);
    }
    let accepted = answer.status == 202;
    let cutover: Cutover = answer.parse()?;
    match (&cutover.operation, accepted) {
        (Some(op), _) => println!(
            "cutover {id}: {} to {} {} (stage {}, version {})",
            render::kind_name(op),
            op.to,
            if accepted {
                "started"
            } else {
                "already in progress"
            },
            cutover.stage,
            cutover.version
        ),
        (None, true) => println!(
            "cutover {id}: accepted (stage {}, version {})",
            cutover.stage, cutover.version
        ),
        (None, false) => println!(
            "cutover {id}: nothing to do (stage {}, version {})",
            cutover.stage, cutover.version
        ),
    }
    if !wait.wait {
        return Ok(());
    }
    let current = follow(client, cutover, wait.timeout).await?;
    println!("{}", current.stage);
    if current.stage != want {
        let why = current
            .events
            .last()
            .map(|e| format!(" (last event: {}: {})", e.kind, e.message))
            .unwrap_or_default();
        bail!(
            "cutover {id} ended at stage {}, not {want}{why}",
            current.stage
        );
    }
    Ok(())
}

/// True once nothing more will happen to `c` by itself: no operation runs, and it is not a
/// rehearsal that has just been promoted (its failback starts next).
fn settled(c: &Cutover) -> bool {
    c.operation.is_none() && !(c.rehearsal && c.stage == Stage::Promoted)
}

/// Polls the cutover until it is [`settled`], printing each new progress note on stderr.
async fn follow(
    client: &Client,
    mut current: Cutover,
    timeout: Duration,
) -> anyhow::Result<Cutover> {
    let deadline = Instant::now() + timeout;
    let mut last_progress = String::new();
    while !settled(&current) {
        if let Some(op) = &current.operation
            && op.progress != last_progress
        {
            eprintln!(
                "  {} ({}): {}",
                op.working_on,
                render::kind_name(op),
                op.progress
            );
            last_progress.clone_from(&op.progress);
        }
        if Instant::now() >= deadline {
            let doing = current
                .operation
                .as_ref()
                .map_or(String::new(), |op| format!(" working on {}", op.working_on));
            bail!(
                "timed out after {}: cutover {} is still at stage {}{doing}",
                humantime::format_duration(timeout),
                current.id,
                current.stage,
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        current = client.cutover(&current.id).await?;
    }
    Ok(current)
}

async fn status(client: &Client, a: StatusArgs) -> anyhow::Result<()> {
    let path = match &a.id {
        Some(id) => format!("/v1/cutovers/{}", path_segment(id)),
        None => "/v1/cutovers".to_owned(),
    };
    let answer = client.get(&path).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
    } else if a.id.is_some() {
        print!("{}", render::cutover(&answer.parse()?));
    } else {
        let list: CutoverList = answer.parse()?;
        print!("{}", render::table(&list.cutovers));
    }
    Ok(())
}

async fn report(client: &Client, a: ReportArgs) -> anyhow::Result<()> {
    let path = format!("/v1/cutovers/{}/report", path_segment(&a.id));
    if a.markdown {
        print!("{}", client.get_text(&format!("{path}.md")).await?);
        return Ok(());
    }
    let answer = client.get(&path).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
    } else {
        print!("{}", render::report_text(&answer.parse()?));
    }
    Ok(())
}

async fn rehearse(client: &Client, a: RehearseArgs) -> anyhow::Result<()> {
    let mut body = json!({
        "topics": a.wave.topics, "groups": a.wave.groups, "fence": a.wave.fence(),
    });
    if let Some(name) = &a.name {
        body["name"] = json!(name);
    }
    let started: Cutover = client
        .call(reqwest::Method::POST, "/v1/rehearsals", Some(body), None)
        .await?
        .parse()?;
    let id = started.id.clone();
    eprintln!(
        "rehearsal {id} ({:?}) started: fenced, drained, promoted, then failback",
        started.name
    );
    if !a.wait {
        // The id alone on stdout, for `ID=$(strait cutover rehearse ...)`.
        println!("{id}");
        return Ok(());
    }
    let done = follow(client, started, a.timeout).await?;
    let path = format!("/v1/cutovers/{}/report", path_segment(&id));
    let report: Report = client.get(&path).await?.parse()?;
    print!("{}", client.get_text(&format!("{path}.md")).await?);
    if report.result != "rolled_back" {
        bail!(
            "rehearsal {id} ended with result {} at stage {}, not rolled_back",
            report.result,
            done.stage
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_by_api_name() {
        assert_eq!(parse_stage("promoted").unwrap(), Stage::Promoted);
        assert_eq!(parse_stage("rolled_back").unwrap(), Stage::RolledBack);
        assert!(parse_stage("done").unwrap_err().contains("fenced"));
    }

    /// `strait cutover ARGS...` parsed (the first argument stands for the program).
    fn command(args: &[&str]) -> Result<CutoverCommand, clap::Error> {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            command: CutoverCommand,
        }
        Cli::try_parse_from(args).map(|c| c.command)
    }

    #[test]
    fn create_options_become_the_request_body() {
        let parse = |args: &[&str]| match command(args) {
            Ok(CutoverCommand::Create(a)) => a,
            other => panic!("{other:?}"),
        };
        let a = parse(&[
            "x",
            "create",
            "--name",
            "w1",
            "--topics",
            "a",
            "--fence",
            "acl",
            "--max-lag-records",
            "500",
            "--drain-deadline",
            "10m",
            "--fence-deadline",
            "90s",
        ]);
        assert_eq!(
            a.body(),
            json!({
                "name": "w1", "topics": ["a"], "groups": [], "fence": { "mode": "acl" },
                "dry_run": false, "max_lag_records": 500,
                "deadlines": { "fence_ms": 90_000, "drain_ms": 600_000 }
            })
        );
        // Unset options are left to the API's defaults.
        let b = parse(&[
            "x", "create", "--name", "w2", "--topics", "a", "--fence", "manual",
        ]);
        assert!(b.body().get("deadlines").is_none() && b.body().get("max_lag_records").is_none());
        // The body is what the API accepts.
        let req: strait_control_api::cutover::CreateCutover =
            serde_json::from_value(a.body()).unwrap();
        assert_eq!(req.deadlines.drain_ms, 600_000);
        assert_eq!(
            req.deadlines.promote_ms, 60_000,
            "unset deadlines keep their default"
        );
    }

    #[test]
    fn fence_options_become_the_fence_object() {
        let parse = |args: &[&str]| match command(args) {
            Ok(CutoverCommand::Rehearse(a)) => a,
            other => panic!("{other:?}"),
        };
        let a = parse(&[
            "x",
            "rehearse",
            "--topics",
            "a,b",
            "--groups",
            "g",
            "--fence",
            "manual",
            "--failback-fence",
            "manual",
            "--quiet-period",
            "1s 500ms",
            "--wait",
        ]);
        assert_eq!(a.wave.topics, ["a", "b"]);
        assert_eq!(a.wave.groups, ["g"]);
        assert_eq!(
            a.wave.fence(),
            json!({ "mode": "manual", "failback_mode": "manual", "quiet_period_ms": 1500 })
        );
        assert!(a.wait && a.name.is_none());
        assert_eq!(a.timeout, Duration::from_secs(20 * 60));
        let b = parse(&["x", "rehearse", "--topics", "a", "--fence", "acl"]);
        assert_eq!(b.wave.fence(), json!({ "mode": "acl" }));
        assert!(b.wave.groups.is_empty() && !b.wait);
        assert!(command(&["x", "rehearse", "--fence", "acl"]).is_err());
    }

    #[test]
    fn a_rehearsal_is_settled_only_after_its_failback() {
        let mut c: Cutover = serde_json::from_value(json!({
            "id": "c1", "name": "r", "version": 9, "stage": "promoted", "rehearsal": true,
            "topics": ["orders"], "groups": [], "fence": { "mode": "manual" },
            "deadlines": {}, "max_lag_records": 10, "operation": null, "checks": [],
            "cutover_point": [], "fenced_ends": {}, "stragglers": [], "fenced_ms": null,
            "promoted_ms": null, "rolled_back_ms": null, "failback": null, "events": [],
            "created_ms": 0, "updated_ms": 0
        }))
        .unwrap();
        assert!(!settled(&c), "promoted rehearsal: its failback comes next");
        c.stage = Stage::RolledBack;
        assert!(settled(&c));
        c.stage = Stage::Promoted;
        c.rehearsal = false;
        assert!(settled(&c), "a promoted cutover stays promoted");
    }
}
