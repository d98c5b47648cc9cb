//! The `strait` command line: wiring only. Every behaviour lives in the library crates.
//!
//! Built so far: `strait describe` (connect to a cluster, negotiate, list brokers and topics).
//! `run`, `verify`, `plan` and `cutover` arrive with the mirror, offset-sync and control-API
//! work; they are not listed until they exist.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use strait_linker::client::{
    ClientConfig, KafkaClient, SaslConfig, SaslMechanism, Secret, TlsConfig,
};

#[derive(Debug, Parser)]
#[command(
    name = "strait",
    version,
    about = "Links two Kafka clusters and moves workloads between them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connects to a cluster and prints its brokers, topics and the API versions strait will use.
    Describe(DescribeArgs),
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Describe(args) => describe(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
