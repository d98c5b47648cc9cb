//! The `strait` command line: wiring only. Every behaviour lives in the library crates.
//!
//! Commands: `run` (the mirror, consumer-group offset sync and, with `[api] listen`, the
//! control API), `verify` (compare both clusters through the offset map), `describe` (connect
//! to a cluster, list brokers, topics and API versions), `plan` (read-only readiness checks,
//! `--probe` of the target's guarantees) and `cutover` (a client of the control API: create,
//! advance, rollback, status, report, rehearse; see docs/cutover-runbook.md). `scenario` is
//! not listed until it exists.

mod cutover_cmd;
mod plan_cmd;
mod progress;
#[cfg(feature = "scenario")]
mod scenario;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use strait_control_api::cutover::{CutoverContext, CutoverService};
use strait_linker::client::{
    ClientConfig, KafkaClient, SaslConfig, SaslMechanism, Secret, TlsConfig,
};
use strait_linker::config::{LogConfig, LogFormat, StraitConfig};
use strait_linker::mirror::{Mirror, MirrorSettings};
use strait_linker::state::StateStore;
use strait_offset_sync::GroupSync;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "strait",
    version,
    about = "Links two Kafka clusters and moves workloads between them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: `text` (human-readable) or `json` (one object per line, for log
    /// collectors). Overrides `[log] format` in the config.
    #[arg(long, global = true, value_parser = parse_log_format, env = "STRAIT_LOG_FORMAT")]
    log_format: Option<LogFormat>,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("unknown log format `{s}` (text, json)")),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mirrors the configured topics from the source to the target until interrupted.
    Run(ConfigArgs),
    /// Compares every mirrored record on both clusters through the offset map; exit 0 only
    /// when everything mirrored is identical. Needs the state directory (stop `run` first).
    Verify(VerifyArgs),
    /// Connects to a cluster and prints its brokers, topics and the API versions strait will use.
    Describe(DescribeArgs),
    /// Drives staged cutovers through the control API of a running `strait run`
    /// (create, advance, rollback, status, report, rehearse).
    Cutover(cutover_cmd::CutoverArgs),
    /// Dry run: checks the config, both clusters, the selected topics and groups and the
    /// initial copy without writing to either cluster; exit 0 when ready, 1 with blockers.
    /// `--probe` also tests the target's Kafka guarantees on a scratch topic.
    Plan(plan_cmd::PlanArgs),
    /// Runs cutover playbooks (`scenarios/*.yaml`) against real clusters and reports
    /// whether every consumer resumed exactly, with nothing lost or duplicated.
    #[cfg(feature = "scenario")]
    Scenario(scenario::ScenarioArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// The configuration file (TOML).
    #[arg(long, short, env = "STRAIT_CONFIG")]
    config: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Only topics matching this regex (anchored).
    #[arg(long)]
    topic: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct DescribeArgs {
    /// Bootstrap servers, as in Kafka's `bootstrap.servers` (comma-separated host:port).
    #[arg(long, env = "STRAIT_BOOTSTRAP")]
    bootstrap: String,
    /// CA certificate (PEM) to trust; enables TLS.
    #[arg(long)]
    tls_ca_file: Option<std::path::PathBuf>,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, value_parser = parse_mechanism, requires = "sasl_username")]
    sasl_mechanism: Option<SaslMechanism>,
    /// SASL username.
    #[arg(long, requires = "sasl_mechanism")]
    sasl_username: Option<String>,
    /// SASL password; read from the environment so it stays out of shell history.
    #[arg(long, env = "STRAIT_SASL_PASSWORD", hide_env_values = true)]
    sasl_password: Option<String>,
}

fn parse_mechanism(s: &str) -> Result<SaslMechanism, String> {
    match s {
        "PLAIN" => Ok(SaslMechanism::Plain),
        "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
        "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
        _ => Err(format!(
            "unknown SASL mechanism `{s}` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
        )),
    }
}

/// A scenario run that ended with a verdict (its report is already printed).
#[cfg(feature = "scenario")]
#[derive(Debug)]
struct ScenarioExit(u8);

#[cfg(feature = "scenario")]
impl std::fmt::Display for ScenarioExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scenario exit {}", self.0)
    }
}

#[cfg(feature = "scenario")]
impl std::error::Error for ScenarioExit {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The config (if any) chooses the log format and level; RUST_LOG overrides the level.
    let config = match &cli.command {
        Command::Run(a)
        | Command::Verify(VerifyArgs { config: a, .. })
        | Command::Plan(plan_cmd::PlanArgs { config: a, .. }) => {
            match StraitConfig::load(&a.config) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Command::Describe(_) | Command::Cutover(_) => None,
        #[cfg(feature = "scenario")]
        Command::Scenario(_) => None,
    };
    init_logging(config.as_ref().map(|c| &c.log), cli.log_format);
    // From here on `[log] format` is the effective one (progress bars only with text logs).
    let config = config.map(|mut c| {
        c.log.format = cli.log_format.unwrap_or(c.log.format);
        c
    });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match (cli.command, config) {
            (Command::Run(_), Some(cfg)) => run(cfg).await,
            (Command::Verify(args), Some(cfg)) => verify(cfg, args).await,
            (Command::Describe(args), _) => describe(args).await,
            (Command::Cutover(args), _) => cutover_cmd::run(args).await,
            (Command::Plan(args), Some(cfg)) => plan_cmd::run(cfg, args).await,
            #[cfg(feature = "scenario")]
            (Command::Scenario(args), _) => {
                let code = scenario::run(args).await?;
                if code != 0 {
                    return Err(ScenarioExit(code).into());
                }
                Ok(())
            }
            _ => unreachable!("config loaded for every command that needs one"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        #[cfg(feature = "scenario")]
        Err(e) if e.is::<ScenarioExit>() => {
            ExitCode::from(e.downcast_ref::<ScenarioExit>().map_or(1, |c| c.0))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let mut config = ClientConfig::new(&args.bootstrap);
    config.security.tls = args.tls_ca_file.map(|ca_file| TlsConfig {
        ca_file,
        server_name: None,
    });
    if let (Some(mechanism), Some(username)) = (args.sasl_mechanism, args.sasl_username) {
        let password = args
            .sasl_password
            .context("--sasl-password (or STRAIT_SASL_PASSWORD) is required with SASL")?;
        config.security.sasl = Some(SaslConfig {
            mechanism,
            username,
            password: Secret::new(password),
        });
    }
    let client = KafkaClient::connect(config)
        .await
        .context("connecting to the cluster")?;
    println!(
        "cluster id: {}",
        client.cluster_id().unwrap_or_else(|| "<none>".into())
    );
    let mut brokers: Vec<_> = client.brokers().into_iter().collect();
    brokers.sort();
    for (id, addr) in brokers {
        println!("broker {id}: {addr}");
    }
    for t in client.list_topics().await? {
        if !t.internal {
            println!("topic {} partitions={}", t.name, t.partitions.len());
        }
    }
    let conn = client.any_connection().await?;
    let mut versions: Vec<_> = (0..100)
        .filter_map(|k| conn.api_versions().range(k).map(|r| (k, r)))
        .collect();
    versions.sort();
    for (k, (lo, hi)) in versions {
        println!(
            "api {k:>3} {:<24} v{lo}-v{hi}",
            strait_linker::client::connection::api_name(k)
        );
    }
    Ok(())
}

fn init_logging(log: Option<&LogConfig>, format: Option<LogFormat>) {
    let level = log.map_or("info", |l| l.level.as_str());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colours only on a terminal: log files and log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format.or(log.map(|l| l.format)) {
        Some(LogFormat::Json) => builder.json().init(),
        _ => builder.init(),
    }
}

/// Connects to both clusters, failing with a message that names the side.
async fn connect_both(cfg: &StraitConfig) -> anyhow::Result<(KafkaClient, KafkaClient)> {
    // A fetch response may be as large as mirror.fetch_max_bytes (plus one oversized first
    // batch, which brokers always return whole): let the client accept it.
    let mut source_config = cfg.source.client_config();
    let fetch_max = usize::try_from(cfg.mirror.fetch_max_bytes.bytes()).unwrap_or(usize::MAX);
    source_config.max_response_bytes = source_config
        .max_response_bytes
        .max(fetch_max.saturating_add(64 << 20));
    let source = KafkaClient::connect(source_config).await.with_context(|| {
        format!(
            "cannot reach the source cluster at {}",
            cfg.source.bootstrap_servers
        )
    })?;
    let target = KafkaClient::connect(cfg.target.client_config())
        .await
        .with_context(|| {
            format!(
                "cannot reach the target cluster at {}",
                cfg.target.bootstrap_servers
            )
        })?;
    Ok((source, target))
}

async fn run(cfg: StraitConfig) -> anyhow::Result<()> {
    // Tokens and the API port are checked before anything else, so a bad token file or a
    // busy port stops strait at once.
    let api = strait_control_api::ApiServer::bind(&cfg.api).await?;
    let store = Arc::new(StateStore::open(&cfg.state.dir).context("opening the state directory")?);
    let (source, target) = connect_both(&cfg).await?;
    let mirror = Mirror::new(
        source.clone(),
        target.clone(),
        Arc::clone(&store),
        MirrorSettings::from(&cfg.mirror),
    );
    let selector = cfg.groups.selector();
    let groups = GroupSync::new(
        source.clone(),
        target.clone(),
        mirror.handle(),
        &store,
        Arc::new(move |g: &str| selector.matches(g)),
        cfg.groups.interval.get(),
    )?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        on_signal.cancel();
    });
    tracing::info!(source = %cfg.source.bootstrap_servers, target = %cfg.target.bootstrap_servers, "strait running");
    let group_task = {
        let (groups, cancel) = (groups.clone(), cancel.clone());
        tokio::spawn(async move { groups.run(cancel).await })
    };
    let api_task = match api {
        Some(api) => {
            let ctx = CutoverContext {
                source,
                target,
                mirror: mirror.handle(),
                groups: groups.clone(),
                store: Arc::clone(&store),
            };
            let service = CutoverService::start(ctx, cancel.clone())?;
            let serve = api.serve(service, mirror.handle(), groups.status(), cancel.clone());
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    if progress::enabled(cfg.log.format == LogFormat::Json) {
        tokio::spawn(progress::initial_copy(
            mirror.handle().status().clone(),
            cancel.clone(),
        ));
    }
    let result = mirror.run(cancel.clone()).await;
    // The mirror stopping (for any reason) stops the group sync too.
    cancel.cancel();
    let _ = group_task.await;
    if let Some(task) = api_task {
        let _ = task.await;
    }
    result?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn verify(cfg: StraitConfig, args: VerifyArgs) -> anyhow::Result<()> {
    let topic_filter = match &args.topic {
        Some(t) => Some(
            regex::Regex::new(&format!("^(?:{t})$"))
                .with_context(|| format!("--topic: invalid regex `{t}`"))?,
        ),
        None => None,
    };
    let store = StateStore::open(&cfg.state.dir).context("opening the state directory")?;
    let (source, target) = connect_both(&cfg).await?;
    let bar = progress::enabled(args.json || cfg.log.format == LogFormat::Json)
        .then(|| progress::verify(0));
    let report = strait_linker::mirror::verify::verify_each(
        &source,
        &target,
        &store,
        |t| topic_filter.as_ref().is_none_or(|r| r.is_match(t)),
        |done, total, p| {
            if let Some(b) = &bar {
                b.set_length(total as u64);
                b.set_position(done as u64);
                b.set_message(format!(
                    "{}-{}: {} records",
                    p.topic, p.partition, p.matched
                ));
            }
        },
    )
    .await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for p in &report.partitions {
            let mark = if p.differences == 0 { "ok  " } else { "DIFF" };
            println!(
                "{mark} {}-{}: {} identical, {} different, lag {} ({})",
                p.topic, p.partition, p.matched, p.differences, p.lag_records, p.status
            );
            if p.unrecorded > 0 {
                println!(
                    "       {} records past the recorded end are the next source records (written just before strait stopped; the next start records them)",
                    p.unrecorded
                );
            }
            for d in &p.details {
                println!("       {d}");
            }
        }
        println!(
            "{}",
            if report.identical {
                "identical"
            } else {
                "DIFFERENCES FOUND"
            }
        );
    }
    if report.identical {
        Ok(())
    } else {
        anyhow::bail!("the target differs from the source")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_flag_is_global_and_checked() {
        let cli = Cli::try_parse_from([
            "strait",
            "describe",
            "--bootstrap",
            "127.0.0.1:9092",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.log_format, Some(LogFormat::Json));
        let err = Cli::try_parse_from([
            "strait",
            "--log-format",
            "xml",
            "describe",
            "--bootstrap",
            "127.0.0.1:9092",
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown log format `xml`"),
            "{err}"
        );
    }
}
