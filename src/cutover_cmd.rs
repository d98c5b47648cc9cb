//! `strait cutover ...`: a command-line client of the control API of a running `strait run`,
//! for playbooks. Every command exits 0 on success and 1 on an API error (printed as
//! `error: <code>: <message>` plus its blockers), on a dry run with blockers, or when a
//! waited-for transition did not end where it was asked to.

use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use strait_control_api::cutover::{Cutover, DryRun, FenceMode, Stage};
use strait_control_api::routes::CutoverList;

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
    /// Prints a cutover's report: timeline, checks, cutover point, stragglers, write pause.
    Report(ReportArgs),
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

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// A name for people.
    #[arg(long)]
    name: String,
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
    /// How long a manual fence must see no writes, e.g. `5s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    quiet_period: Option<Duration>,
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
    /// Markdown instead of plain text.
    #[arg(long)]
    markdown: bool,
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    serde_json::from_value(Value::String(s.to_owned())).map_err(|_| {
        format!("unknown stage `{s}` (mirroring, fenced, drained, promoted, rolled_back)")
    })
}

/// Runs one `strait cutover` command.
pub async fn run(args: CutoverArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.api, args.token_file.as_deref())?;
    match args.command {
        CutoverCommand::Create(a) => create(&client, a).await,
        CutoverCommand::Advance(a) => advance(&client, a).await,
        CutoverCommand::Rollback(a) => rollback(&client, a).await,
        CutoverCommand::Status(a) => status(&client, a).await,
        CutoverCommand::Report(a) => report(&client, a).await,
    }
}

/// The API's answer: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn parse<T: DeserializeOwned>(self) -> anyhow::Result<T> {
        serde_json::from_value(self.body).context("unexpected answer from the control API")
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(base: &str, token_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let token = match token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("--token-file: cannot read {}", path.display()))?
                .trim()
                .to_owned(),
            None => std::env::var("STRAIT_API_TOKEN").unwrap_or_default(),
        };
        if token.is_empty() {
            bail!("no API token: set STRAIT_API_TOKEN or pass --token-file");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Sends a request; API errors (4xx, 5xx) become `code: message` errors with blockers.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<u64>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(v) = if_match {
            request = request.header(reqwest::header::IF_MATCH, format!("\"{v}\""));
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the control API at {}", self.base))?;
        let status = response.status().as_u16();
        let text = response.text().await.context("reading the API's answer")?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            bail!("{}", api_error(status, &body));
        }
        Ok(Answer { status, body })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.call(reqwest::Method::GET, path, None, None).await
    }

    async fn cutover(&self, id: &str) -> anyhow::Result<Cutover> {
        self.get(&format!("/v1/cutovers/{}", path_segment(id)))
            .await?
            .parse()
    }
}

/// `code: message`, then one line per blocker (and the current version of a stale request).
fn api_error(status: u16, body: &Value) -> String {
    let (Some(code), Some(message)) = (body["code"].as_str(), body["message"].as_str()) else {
        return format!("HTTP {status}: {}", one_line(&body.to_string()));
    };
    let mut out = format!("{code}: {message}");
    if let Some(blockers) = body["details"]["blockers"].as_array() {
        for b in blockers {
            out.push_str(&format!("\n  blocker: {}", b.as_str().unwrap_or_default()));
        }
    }
    if let Some(v) = body["details"]["current_version"].as_u64() {
        out.push_str(&format!("\n  current version: {v}"));
    }
    out
}

fn one_line(s: &str) -> String {
    s.chars().take(300).filter(|c| *c != '\n').collect()
}

/// Percent-encodes everything but unreserved characters, so an id is one path segment.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn create(client: &Client, a: CreateArgs) -> anyhow::Result<()> {
    let mut fence = json!({ "mode": FenceMode::from(a.fence) });
    if let Some(f) = a.failback_fence {
        fence["failback_mode"] = json!(FenceMode::from(f));
    }
    if let Some(q) = a.quiet_period {
        fence["quiet_period_ms"] = json!(u64::try_from(q.as_millis()).unwrap_or(u64::MAX));
    }
    let body = json!({
        "name": a.name, "topics": a.topics, "groups": a.groups, "fence": fence,
        "dry_run": a.dry_run,
    });
    let answer = client
        .call(reqwest::Method::POST, "/v1/cutovers", Some(body), None)
        .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
    }
    if a.dry_run {
        let report: DryRun = answer.parse()?;
        if !a.json {
            print_dry_run(&report);
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

fn print_dry_run(report: &DryRun) {
    let from = report.stage.map_or("-".to_owned(), |s| s.to_string());
    println!("dry run: {from} -> {}", report.to);
    for c in &report.checks {
        println!(
            "  check {} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    for a in &report.actions {
        println!("  action: {a}");
    }
    for b in &report.blockers {
        println!("  blocker: {b}");
    }
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
        print_dry_run(&report);
        return dry_run_result(&report);
    }
    let accepted = answer.status == 202;
    let cutover: Cutover = answer.parse()?;
    match (&cutover.operation, accepted) {
        (Some(op), _) => println!(
            "cutover {id}: {} to {} started (stage {}, version {})",
            op.kind_name(),
            op.to,
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
    let deadline = Instant::now() + wait.timeout;
    let mut last_progress = String::new();
    let mut current = cutover;
    while let Some(op) = &current.operation {
        if op.progress != last_progress {
            eprintln!("  {} ({}): {}", op.working_on, op.kind_name(), op.progress);
            last_progress.clone_from(&op.progress);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {}: cutover {id} is still at stage {} working on {}",
                humantime::format_duration(wait.timeout),
                current.stage,
                op.working_on
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        current = client.cutover(id).await?;
    }
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

trait KindName {
    fn kind_name(&self) -> &'static str;
}

impl KindName for strait_control_api::cutover::Operation {
    fn kind_name(&self) -> &'static str {
        match self.kind {
            strait_control_api::cutover::OperationKind::Advance => "advance",
            strait_control_api::cutover::OperationKind::Rollback => "rollback",
        }
    }
}

async fn status(client: &Client, a: StatusArgs) -> anyhow::Result<()> {
    let Some(id) = a.id else {
        let answer = client.get("/v1/cutovers").await?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&answer.body)?);
            return Ok(());
        }
        let list: CutoverList = answer.parse()?;
        print_table(&list.cutovers);
        return Ok(());
    };
    let answer = client
        .get(&format!("/v1/cutovers/{}", path_segment(&id)))
        .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
        return Ok(());
    }
    let c: Cutover = answer.parse()?;
    println!("cutover  {} ({:?})", c.id, c.name);
    println!("stage    {} (version {})", c.stage, c.version);
    println!("topics   {}", c.topics.join(", "));
    println!("groups   {}", c.groups.join(", "));
    match &c.operation {
        Some(op) => println!(
            "running  {} to {}: {} (by {}, deadline {})",
            op.kind_name(),
            op.to,
            op.progress,
            op.requested_by,
            time(op.deadline_ms)
        ),
        None => println!("running  -"),
    }
    for check in &c.checks {
        println!(
            "check    {} {}: {}",
            if check.ok { "ok  " } else { "FAIL" },
            check.name,
            check.detail
        );
    }
    if !c.stragglers.is_empty() {
        println!("stragglers {}", c.stragglers.len());
    }
    Ok(())
}

fn print_table(cutovers: &[Cutover]) {
    let rows: Vec<[String; 6]> = cutovers
        .iter()
        .map(|c| {
            [
                c.id.clone(),
                c.name.clone(),
                c.stage.to_string(),
                c.version.to_string(),
                c.operation.as_ref().map_or("-".to_owned(), |op| {
                    format!("{} to {}: {}", op.kind_name(), op.to, op.progress)
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
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    if rows.is_empty() {
        println!("(no cutovers)");
    }
}

/// RFC 3339 with milliseconds, UTC.
fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

async fn report(client: &Client, a: ReportArgs) -> anyhow::Result<()> {
    let c = client.cutover(&a.id).await?;
    print!("{}", render_report(&c, a.markdown));
    Ok(())
}

/// The report of one cutover as plain text or Markdown.
fn render_report(c: &Cutover, markdown: bool) -> String {
    let mut out = String::new();
    let section = |out: &mut String, title: &str| {
        if markdown {
            out.push_str(&format!("\n## {title}\n\n"));
        } else {
            out.push_str(&format!(
                "\n{}\n{}\n",
                title.to_uppercase(),
                "-".repeat(title.len())
            ));
        }
    };
    let row = |out: &mut String, cells: &[String]| {
        if markdown {
            let escaped: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            out.push_str(&format!("| {} |\n", escaped.join(" | ")));
        } else {
            out.push_str(&format!("  {}\n", cells.join("  ")));
        }
    };
    let table_head = |out: &mut String, cells: &[&str]| {
        if markdown {
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
            out.push_str(&format!("|{}\n", "---|".repeat(cells.len())));
        }
    };
    if markdown {
        out.push_str(&format!("# Cutover report: {} (`{}`)\n\n", c.name, c.id));
    } else {
        out.push_str(&format!("Cutover report: {} ({})\n", c.name, c.id));
    }
    let write_pause = match (c.fenced_ms, c.promoted_ms) {
        (Some(f), Some(p)) => {
            humantime::format_duration(Duration::from_millis(p.saturating_sub(f))).to_string()
        }
        (Some(_), None) => "not promoted".to_owned(),
        _ => "not fenced".to_owned(),
    };
    let summary = [
        ("Stage", format!("{} (version {})", c.stage, c.version)),
        ("Topics", c.topics.join(", ")),
        ("Groups", c.groups.join(", ")),
        ("Created", time(c.created_ms)),
        ("Fenced", c.fenced_ms.map_or("-".into(), time)),
        ("Promoted", c.promoted_ms.map_or("-".into(), time)),
        ("Rolled back", c.rolled_back_ms.map_or("-".into(), time)),
        ("Write pause (promoted - fenced)", write_pause),
        ("Stragglers", c.stragglers.len().to_string()),
    ];
    for (k, v) in summary {
        if markdown {
            out.push_str(&format!("- **{k}:** {v}\n"));
        } else {
            out.push_str(&format!("{k:<32} {v}\n"));
        }
    }

    section(&mut out, "Timeline");
    table_head(&mut out, &["Time", "Event", "Actor", "Message"]);
    for e in &c.events {
        row(
            &mut out,
            &[
                time(e.at_ms),
                e.kind.clone(),
                e.actor.clone(),
                e.message.clone(),
            ],
        );
    }
    section(&mut out, "Checks");
    table_head(&mut out, &["Check", "Result", "Detail"]);
    for ch in &c.checks {
        row(
            &mut out,
            &[
                ch.name.clone(),
                if ch.ok { "ok" } else { "FAILED" }.to_owned(),
                ch.detail.clone(),
            ],
        );
    }
    section(&mut out, "Cutover point");
    table_head(
        &mut out,
        &["Topic", "Partition", "Source end", "Target end"],
    );
    for p in &c.cutover_point {
        row(
            &mut out,
            &[
                p.topic.clone(),
                p.partition.to_string(),
                p.source_end.to_string(),
                p.target_end.to_string(),
            ],
        );
    }
    if c.cutover_point.is_empty() {
        out.push_str(if markdown {
            "None recorded (not promoted).\n"
        } else {
            "  none (not promoted)\n"
        });
    }
    section(&mut out, "Stragglers");
    table_head(
        &mut out,
        &[
            "Time",
            "Cluster",
            "Topic",
            "Partition",
            "Fenced end",
            "Seen end",
            "Producers",
        ],
    );
    for s in &c.stragglers {
        let producers: Vec<String> = s.producer_ids.iter().map(i64::to_string).collect();
        row(
            &mut out,
            &[
                time(s.at_ms),
                s.cluster.clone(),
                s.topic.clone(),
                s.partition.to_string(),
                s.fenced_end.to_string(),
                s.seen_end.to_string(),
                producers.join(","),
            ],
        );
    }
    if c.stragglers.is_empty() {
        out.push_str(if markdown { "None.\n" } else { "  none\n" });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_print_code_message_and_blockers() {
        let body = json!({
            "code": "illegal_transition", "message": "cannot fence yet",
            "details": { "blockers": ["lag 12000 > 10000", "group billing split"] }
        });
        assert_eq!(
            api_error(409, &body),
            "illegal_transition: cannot fence yet\n  blocker: lag 12000 > 10000\n  blocker: \
             group billing split"
        );
        let stale =
            json!({ "code": "stale_version", "message": "m", "details": { "current_version": 7 } });
        assert!(api_error(412, &stale).ends_with("current version: 7"));
        assert_eq!(
            api_error(502, &json!("bad gateway")),
            "HTTP 502: \"bad gateway\""
        );
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(path_segment("c-1_a.b~"), "c-1_a.b~");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(path_segment("../x"), "..%2Fx");
    }

    #[test]
    fn stages_parse_by_api_name() {
        assert_eq!(parse_stage("promoted").unwrap(), Stage::Promoted);
        assert_eq!(parse_stage("rolled_back").unwrap(), Stage::RolledBack);
        assert!(parse_stage("done").unwrap_err().contains("fenced"));
    }

    #[test]
    fn report_shows_write_pause_and_sections() {
        let c: Cutover = serde_json::from_value(json!({
            "id": "c1", "name": "wave 1", "version": 9, "stage": "promoted",
            "topics": ["orders"], "groups": ["billing"], "fence": { "mode": "acl" },
            "deadlines": {}, "max_lag_records": 10, "operation": null,
            "checks": [{ "name": "lag_under_threshold", "ok": true, "detail": "lag 0" }],
            "cutover_point": [{ "topic": "orders", "partition": 0, "source_end": 42, "target_end": 42 }],
            "fenced_ends": {}, "stragglers": [], "fenced_ms": 1_000, "promoted_ms": 3_500,
            "rolled_back_ms": null,
            "events": [{ "at_ms": 1_000, "kind": "stage_reached", "message": "fenced | acl", "actor": "alice" }],
            "created_ms": 0, "updated_ms": 3_500
        }))
        .unwrap();
        let text = render_report(&c, false);
        assert!(
            text.contains("Write pause (promoted - fenced)  2s 500ms"),
            "{text}"
        );
        assert!(text.contains("orders  0  42  42"), "{text}");
        let md = render_report(&c, true);
        assert!(md.starts_with("# Cutover report: wave 1 (`c1`)"), "{md}");
        assert!(
            md.contains("- **Write pause (promoted - fenced):** 2s 500ms"),
            "{md}"
        );
        assert!(
            md.contains("| stage_reached | alice | fenced \\| acl |"),
            "{md}"
        );
        assert!(md.contains("## Stragglers\n\n| Time |"), "{md}");
        assert!(md.contains("None.\n"), "{md}");
    }
}
