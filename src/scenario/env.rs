//! What a playbook runs against: the two clusters (local brokers the runner owns, or existing
//! ones) and `strait run` as a child process with embedded state, driven over its control
//! API exactly as an orchestrator would.
//!
//! ```text
//!  runner ──spawn/kill──▶ strait run --config <work>/strait.toml ──▶ <work>/strait.log
//!     │                       │ [api] listen 127.0.0.1:0, token in <work>/api.tokens
//!     └──── HTTP (bearer) ────┘
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use strait_linker::client::{ClientConfig, KafkaClient};
use strait_testkit::{Broker, KafkaOptions, TansuStorage};

use super::playbook::{BrokerKind, ClusterSpec, Playbook, Side};
use crate::cutover_cmd::client::Client;

/// Clusters, names and the strait process of one run.
pub struct Env {
    pub run_id: String,
    pub work: PathBuf,
    pub bootstrap: BTreeMap<Side, String>,
    brokers: BTreeMap<Side, Broker>,
    strait: Option<Child>,
    pub api: Option<Client>,
    pub strait_starts: u32,
    token: String,
    config_path: PathBuf,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("run_id", &self.run_id)
            .field("work", &self.work)
            .finish_non_exhaustive()
    }
}

/// Runs a blocking testkit call (they start processes and panic on failure) off the async
/// threads, turning a panic into an error.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        let msg = e
            .try_into_panic()
            .ok()
            .and_then(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            })
            .unwrap_or_else(|| "cancelled".into());
        anyhow::anyhow!("{what}: {msg}")
    })
}

async fn start_cluster(side: Side, spec: &ClusterSpec) -> anyhow::Result<(String, Option<Broker>)> {
    if let Some(b) = &spec.bootstrap {
        return Ok((b.clone(), None));
    }
    let broker = match spec.kind.expect("checked by the playbook") {
        BrokerKind::Kafka => {
            let mut opts = KafkaOptions::new();
            for (k, v) in &spec.config {
                opts = opts.config(k, v);
            }
            blocking(&format!("starting the {side} (Apache Kafka)"), move || {
                strait_testkit::start_kafka(opts)
            })
            .await?
        }
        BrokerKind::Tansu => {
            blocking(&format!("starting the {side} (tansu)"), || {
                strait_testkit::start_tansu(TansuStorage::Memory)
            })
            .await?
        }
    };
    Ok((broker.bootstrap(), Some(broker)))
}

impl Env {
    /// Starts (or connects to) both clusters and prepares the work directory.
    pub async fn start(book: &Playbook, work: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&work)
            .with_context(|| format!("creating the work directory {}", work.display()))?;
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let (src, tgt) = tokio::try_join!(
            start_cluster(Side::Source, &book.clusters.source),
            start_cluster(Side::Target, &book.clusters.target)
        )?;
        let mut bootstrap = BTreeMap::new();
        let mut brokers = BTreeMap::new();
        for (side, (b, broker)) in [(Side::Source, src), (Side::Target, tgt)] {
            bootstrap.insert(side, b);
            if let Some(broker) = broker {
                brokers.insert(side, broker);
            }
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let tokens = work.join("api.tokens");
        write_private(&tokens, &format!("scenario:{token}\n"))?;
        Ok(Self {
            run_id,
            config_path: work.join("strait.toml"),
            work,
            bootstrap,
            brokers,
            strait: None,
            api: None,
            strait_starts: 0,
            token,
        })
    }

    /// A logical name made unique for this run.
    pub fn name(&self, logical: &str) -> String {
        format!("{logical}-{}", self.run_id)
    }

    pub async fn client(&self, side: Side) -> anyhow::Result<KafkaClient> {
        let cfg = ClientConfig::new(&self.bootstrap[&side]);
        KafkaClient::connect(cfg)
            .await
            .with_context(|| format!("connecting to the {side} at {}", self.bootstrap[&side]))
    }

    pub fn log_path(&self) -> PathBuf {
        self.work.join("strait.log")
    }

    /// Writes strait's config: the run's topics and groups only, embedded state in the work
    /// directory, the API on a free loopback port.
    pub fn write_config(
        &self,
        topics: &[String],
        groups: &[String],
        group_interval: Duration,
    ) -> anyhow::Result<()> {
        let alternation = |names: &[String]| {
            let escaped: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
            toml_str(&format!("({})", escaped.join("|")))
        };
        // No groups: an empty include list syncs none.
        let groups_include = if groups.is_empty() {
            String::new()
        } else {
            alternation(groups)
        };
        let text = format!(
            "[source]\nbootstrap_servers = {src}\nclient_id = \"strait-scenario\"\n\n\
             [target]\nbootstrap_servers = {tgt}\nclient_id = \"strait-scenario\"\n\n\
             [mirror]\ntopics = [{topics}]\ntopic_refresh_interval = \"1s\"\n\
             fetch_max_wait = \"10ms\"\n\n\
             [state]\ndir = {state}\n\n\
             [groups]\ninclude = [{groups_include}]\ninterval = \"{interval}ms\"\n\n\
             [api]\nlisten = \"127.0.0.1:0\"\ntoken_file = {tokens}\n\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n",
            src = toml_str(&self.bootstrap[&Side::Source]),
            tgt = toml_str(&self.bootstrap[&Side::Target]),
            topics = alternation(topics),
            state = toml_str(&self.work.join("state").display().to_string()),
            interval = group_interval.as_millis(),
            tokens = toml_str(&self.work.join("api.tokens").display().to_string()),
        );
        std::fs::write(&self.config_path, text)
            .with_context(|| format!("writing {}", self.config_path.display()))
    }

    /// Starts `strait run` and waits until its API answers.
    pub async fn start_strait(&mut self) -> anyhow::Result<()> {
        if self.strait.is_some() {
            bail!("strait is already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let before = std::fs::metadata(self.log_path())?.len();
        let exe = std::env::current_exe().context("locating the strait binary")?;
        let child = std::process::Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env_remove("STRAIT_API_TOKEN")
            .env_remove("STRAIT_LOG_FORMAT")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting strait run")?;
        self.strait = Some(child);
        self.strait_starts += 1;
        let addr = self.wait_for_listen(before).await?;
        self.api = Some(Client::with_token(&format!("http://{addr}"), &self.token)?);
        Ok(())
    }

    /// The address of the "control API listening" line written after byte `from` of the log.
    async fn wait_for_listen(&mut self, from: u64) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read(self.log_path())?;
            let new = String::from_utf8_lossy(&text[usize::try_from(from)?.min(text.len())..]);
            for line in new.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                    && v["fields"]["message"] == "control API listening"
                    && let Some(a) = v["fields"]["addr"].as_str()
                {
                    return Ok(a.to_owned());
                }
            }
            if let Some(status) = self
                .strait
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.strait = None;
                bail!(
                    "strait run exited ({status}) before its API listened; last log lines:\n{}",
                    tail(&new, 15)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "strait's API did not start within 60 s; see {}",
                    self.log_path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM (`graceful`) or SIGKILL, then waits for the exit.
    pub async fn stop_strait(&mut self, graceful: bool) -> anyhow::Result<String> {
        let Some(mut child) = self.strait.take() else {
            bail!("strait is not running");
        };
        self.api = None;
        let pid = child.id().to_string();
        let signal = if graceful { "-TERM" } else { "-KILL" };
        std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .context("kill")?;
        let status = blocking("waiting for strait to exit", move || child.wait()).await??;
        Ok(status.to_string())
    }

    pub fn strait_running(&self) -> bool {
        self.strait.is_some()
    }

    pub fn api(&self) -> anyhow::Result<&Client> {
        self.api
            .as_ref()
            .context("strait is not running (start_strait first)")
    }

    pub async fn restart_broker(&mut self, side: Side) -> anyhow::Result<()> {
        let mut broker = self
            .brokers
            .remove(&side)
            .with_context(|| format!("the {side} is not a local broker"))?;
        let broker = blocking(&format!("restarting the {side}"), move || {
            broker.restart();
            broker
        })
        .await?;
        self.brokers.insert(side, broker);
        Ok(())
    }

    /// Runs `strait verify` on the state directory (strait must be stopped).
    pub async fn verify(&self) -> anyhow::Result<(bool, String)> {
        let exe = std::env::current_exe()?;
        let config = self.config_path.clone();
        let out = blocking("strait verify", move || {
            std::process::Command::new(exe)
                .args(["verify", "--config"])
                .arg(config)
                .env("STRAIT_LOG_FORMAT", "text")
                .output()
        })
        .await??;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }

    /// Stops strait if it still runs (brokers stop when the Env is dropped).
    pub async fn shutdown(&mut self) {
        if self.strait.is_some() {
            let _ = self.stop_strait(true).await;
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut c) = self.strait.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes a file readable by its owner only (it holds the API token).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
