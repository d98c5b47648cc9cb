//! The playbook format: what a migration engineer reads and writes.
//!
//! A playbook names two clusters, the topics, a workload (producers and consumer groups that
//! count every record), the steps of a migration, and what must hold at the end. Names in a
//! playbook are *logical*: every run appends a random suffix to topics, groups and
//! transactional ids, so playbooks can share long-lived clusters without seeing each other's
//! data. Unknown fields are errors, so a typo never silently changes a rehearsal.
//!
//! ```yaml
//! name: zero-loss-cutover
//! clusters: { source: kafka, target: tansu }
//! topics: [ { name: orders, partitions: 2 } ]
//! workload:
//!   producers: [ { topic: orders, rate: 200, value_bytes: 512 } ]
//!   consumers: [ { group: billing, topic: orders } ]
//! steps:
//!   - start_workload
//!   - start_strait
//!   - wait_mirrored
//!   - create_cutover
//!   - pause_producers
//!   - advance: promoted
//!   - switch_clients: target
//!   - sleep: 2s
//!   - stop_workload
//! asserts: [ no_loss, no_duplicates, exact_resume, { stage: promoted } ]
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Deserializer};
use strait_control_api::cutover::{FenceMode, Stage};

/// A whole playbook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Short name, shown in reports.
    pub name: String,
    /// What the playbook rehearses, for people.
    #[serde(default)]
    pub description: String,
    /// The source and the target.
    pub clusters: Clusters,
    /// Topics created on the source before anything runs.
    pub topics: Vec<TopicSpec>,
    /// Producers and consumer groups.
    #[serde(default)]
    pub workload: Workload,
    /// How strait runs and how cutovers are fenced.
    #[serde(default)]
    pub strait: StraitSpec,
    /// The steps, in order. The first failing step ends the run.
    pub steps: Vec<Step>,
    /// What must hold at the end.
    #[serde(default)]
    pub asserts: Vec<Assertion>,
}

/// The two clusters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clusters {
    pub source: ClusterSpec,
    pub target: ClusterSpec,
}

/// `kafka` or `tansu` (a broker the runner starts and owns), or `{ bootstrap: "host:port" }`
/// (an existing cluster; steps that restart brokers are refused for it).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "ClusterRepr")]
pub struct ClusterSpec {
    pub kind: Option<BrokerKind>,
    pub bootstrap: Option<String>,
    /// Extra broker settings for a local Kafka (`server.properties` lines).
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerKind {
    Kafka,
    Tansu,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ClusterRepr {
    Short(BrokerKind),
    Long(ClusterLong),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterLong {
    #[serde(default)]
    kind: Option<BrokerKind>,
    #[serde(default)]
    bootstrap: Option<String>,
    #[serde(default, deserialize_with = "string_map")]
    config: BTreeMap<String, String>,
}

impl From<ClusterRepr> for ClusterSpec {
    fn from(r: ClusterRepr) -> Self {
        match r {
            ClusterRepr::Short(kind) => Self {
                kind: Some(kind),
                bootstrap: None,
                config: BTreeMap::new(),
            },
            ClusterRepr::Long(l) => Self {
                kind: l.kind,
                bootstrap: l.bootstrap,
                config: l.config,
            },
        }
    }
}

/// A topic created on the source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    #[serde(default = "two")]
    pub partitions: i32,
    /// Topic configs (`cleanup.policy: compact`, ...); strait copies them to the target.
    #[serde(default, deserialize_with = "string_map")]
    pub config: BTreeMap<String, String>,
}

fn two() -> i32 {
    2
}

impl TopicSpec {
    /// Compacted topics keep only the latest record per key, so "no loss" means every
    /// key's latest acknowledged value is read, not every record.
    pub fn compacted(&self) -> bool {
        self.config
            .get("cleanup.policy")
            .is_some_and(|p| p.contains("compact"))
    }
}

/// Producers and consumer groups.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default)]
    pub producers: Vec<ProducerSpec>,
    #[serde(default)]
    pub consumers: Vec<ConsumerSpec>,
}

/// A producer of uniquely numbered, JSON-like records, round-robin over the partitions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSpec {
    /// Defaults to `<topic>-writer`.
    #[serde(default)]
    pub name: Option<String>,
    pub topic: String,
    /// Records per second while running.
    #[serde(default = "default_rate")]
    pub rate: u32,
    /// Value size in bytes (at least the record id fits).
    #[serde(default = "default_value_bytes")]
    pub value_bytes: usize,
    /// Number of distinct keys (keys repeat, as on a compacted topic); unset: every record
    /// has its own key.
    #[serde(default)]
    pub keys: Option<u32>,
    /// Headers per record (with a repeated key, as Kafka allows).
    #[serde(default)]
    pub headers: u32,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Write in transactions; some are aborted, and their records must never be read.
    #[serde(default)]
    pub transactions: Option<TransactionSpec>,
}

fn default_rate() -> u32 {
    100
}
fn default_value_bytes() -> usize {
    100
}
fn default_compression() -> String {
    "none".into()
}

impl ProducerSpec {
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-writer", self.topic))
    }
}

/// Transactions of a producer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionSpec {
    /// Records per transaction.
    #[serde(default = "default_txn_records")]
    pub records: u32,
    /// Every n-th transaction is aborted (0: none).
    #[serde(default)]
    pub abort_every: u32,
}

fn default_txn_records() -> u32 {
    10
}

/// A consumer group reading one topic, committing after every record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    pub group: String,
    pub topic: String,
}

/// How strait runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StraitSpec {
    /// Default fence of cutovers: `manual` (the playbook pauses the producers) or `acl`.
    #[serde(default = "default_fence")]
    pub fence: FenceMode,
    /// Quiet period of a manual fence.
    #[serde(default = "default_quiet", deserialize_with = "duration")]
    pub quiet_period: Duration,
    /// Group sync interval.
    #[serde(default = "default_group_interval", deserialize_with = "duration")]
    pub group_sync_interval: Duration,
}

impl Default for StraitSpec {
    fn default() -> Self {
        Self {
            fence: default_fence(),
            quiet_period: default_quiet(),
            group_sync_interval: default_group_interval(),
        }
    }
}

fn default_fence() -> FenceMode {
    FenceMode::Manual
}
fn default_quiet() -> Duration {
    Duration::from_secs(1)
}
fn default_group_interval() -> Duration {
    Duration::from_millis(500)
}

/// One step. Steps that wait have a timeout; a step that times out fails the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Starts the producers on the source and the consumers on the side they last used.
    StartWorkload,
    /// Stops the producers, lets every consumer read all it should, then stops them.
    StopWorkload,
    /// Stops the producers after their in-flight writes are acknowledged (what an operator
    /// does before a manual fence). The write pause is measured from here.
    PauseProducers,
    /// Resumes the producers on the side they last used.
    ResumeProducers,
    /// Waits until every group has read every record acknowledged so far (what an operator
    /// waits for before a drain).
    WaitConsumed(#[serde(default)] WaitSpec),
    /// Stops the consumers; each one's last read is committed. They start again, where
    /// their group left off, with `switch_clients` or `start_workload`.
    StopConsumers,
    /// Moves every consumer (and resumes every producer) on `source` or `target`.
    SwitchClients(Side),
    /// Writes `records` records at full speed with a producer's shape, before or between
    /// steps (a backlog for the initial copy).
    Load(LoadSpec),
    /// Starts `strait run` (a child process) with embedded state; again after a stop or kill.
    StartStrait,
    /// Stops strait with SIGTERM and waits for it to exit.
    StopStrait,
    /// Kills strait with SIGKILL, at whatever instant it is.
    KillStrait,
    /// Waits until every partition is mirrored up to the source's end and every group's
    /// offsets are translated.
    WaitMirrored(#[serde(default)] WaitSpec),
    /// Creates a cutover of every topic and group of the playbook.
    CreateCutover(#[serde(default)] CreateSpec),
    /// Advances the current cutover (`advance: drained` or `{ to: drained, wait: false }`).
    Advance(AdvanceSpec),
    /// Rolls the current cutover back (before promotion: lifts the fence; after: fails back).
    Rollback(#[serde(default)] WaitSpec),
    /// Waits until the current cutover has settled at `stage`.
    WaitStage(Stage),
    /// Restarts a broker the runner owns (stop, start on the same port and data).
    RestartBroker(Side),
    /// Waits.
    Sleep(#[serde(deserialize_with = "duration")] Duration),
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Source,
    Target,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// The producer (by name) whose topic and record shape are used.
    pub producer: String,
    pub records: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for WaitSpec {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(120)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSpec {
    /// Defaults to the playbook's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Defaults to `strait.fence`.
    #[serde(default)]
    pub fence: Option<FenceMode>,
}

/// `advance: promoted` or `{ to: promoted, wait: false, timeout: 60s }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "AdvanceRepr")]
pub struct AdvanceSpec {
    pub to: Stage,
    /// Wait for the stage (default); `false` returns once the API accepted the request.
    pub wait: bool,
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AdvanceRepr {
    Short(Stage),
    Long(AdvanceLong),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceLong {
    to: Stage,
    #[serde(default = "yes")]
    wait: bool,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    timeout: Duration,
}

fn yes() -> bool {
    true
}

impl From<AdvanceRepr> for AdvanceSpec {
    fn from(r: AdvanceRepr) -> Self {
        match r {
            AdvanceRepr::Short(to) => Self {
                to,
                wait: true,
                timeout: default_timeout(),
            },
            AdvanceRepr::Long(l) => Self {
                to: l.to,
                wait: l.wait,
                timeout: l.timeout,
            },
        }
    }
}

/// What must hold at the end of the run.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Assertion {
    /// Every acknowledged record was read by every group (on a compacted topic: every key's
    /// latest acknowledged value).
    NoLoss,
    /// No group read a record twice, nor a record that was never acknowledged (an aborted
    /// transaction's).
    NoDuplicates,
    /// Each group read each partition in order, without gaps, across every switch: it
    /// resumed at exactly the record it would have read next.
    ExactResume,
    /// The last cutover settled at this stage.
    Stage(Stage),
    /// Producers were paused (pause to resume on the new side) for less than this, and
    /// strait's own write-pause figure is below it.
    WritePauseUnder(#[serde(with = "duration_ser")] Duration),
    /// `strait verify` (run after strait stops) finds every mirrored record identical.
    Verify,
}

impl Assertion {
    pub fn label(&self) -> String {
        match self {
            Assertion::NoLoss => "no_loss".into(),
            Assertion::NoDuplicates => "no_duplicates".into(),
            Assertion::ExactResume => "exact_resume".into(),
            Assertion::Stage(s) => format!("stage {s}"),
            Assertion::WritePauseUnder(d) => {
                format!("write_pause_under {}", humantime::format_duration(*d))
            }
            Assertion::Verify => "verify".into(),
        }
    }
}

mod duration_ser {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::duration(d)
    }
}

/// `1s`, `500ms`, `2m`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("bad duration `{s}`: {e}")))
}

/// A map whose values may be written as YAML numbers or booleans (`segment.ms: 1000`).
fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "`{k}`: expected a string or number, got {other:?}"
                    )));
                }
            };
            Ok((k, s))
        })
        .collect()
}

/// Steps whose settings all have defaults.
const OPTIONAL_ARGS: &[&str] = &[
    "wait_mirrored",
    "wait_consumed",
    "create_cutover",
    "rollback",
];

impl Playbook {
    /// Reads and checks a playbook file; errors name the file and the problem.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        // YAML → a plain value → the playbook: serde_yaml_ng reads enum variants only as
        // YAML tags (`!advance fenced`); going through a plain value lets playbooks write
        // the readable `advance: fenced` (and a bare `start_workload`).
        let mut value: serde_json::Value = serde_yaml_ng::from_str(text)?;
        // Steps with optional settings may be written bare (`- rollback`).
        if let Some(steps) = value.get_mut("steps").and_then(|s| s.as_array_mut()) {
            for step in steps {
                if let Some(name) = step.as_str()
                    && OPTIONAL_ARGS.contains(&name)
                {
                    *step = serde_json::json!({ name: {} });
                }
            }
        }
        let p: Playbook = serde_json::from_value(value)?;
        p.check()?;
        Ok(p)
    }

    /// Consistency the types cannot express.
    fn check(&self) -> anyhow::Result<()> {
        for (side, c) in [
            ("source", &self.clusters.source),
            ("target", &self.clusters.target),
        ] {
            match (&c.kind, &c.bootstrap) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => bail!("clusters.{side}: give either a kind (kafka, tansu) or a bootstrap"),
            }
            if c.kind != Some(BrokerKind::Kafka) && !c.config.is_empty() {
                bail!("clusters.{side}.config: only a local kafka broker takes settings");
            }
        }
        if self.clusters.source.kind == Some(BrokerKind::Tansu) {
            bail!("clusters.source: the source must be Apache Kafka (kafka or a bootstrap)");
        }
        if self.topics.is_empty() {
            bail!("topics: at least one topic");
        }
        let topic = |t: &str| self.topics.iter().find(|s| s.name == t);
        let mut names = std::collections::BTreeSet::new();
        for t in &self.topics {
            if !(1..=1000).contains(&t.partitions) {
                bail!("topics.{}.partitions: 1 to 1000", t.name);
            }
            if !names.insert(&t.name) {
                bail!("topics: `{}` twice", t.name);
            }
        }
        let mut producers = std::collections::BTreeSet::new();
        for p in &self.workload.producers {
            if topic(&p.topic).is_none() {
                bail!(
                    "workload.producers.{}: unknown topic `{}`",
                    p.name(),
                    p.topic
                );
            }
            if !producers.insert(p.name()) {
                bail!("workload.producers: `{}` twice", p.name());
            }
            if p.rate == 0 {
                bail!("workload.producers.{}.rate: must be above 0", p.name());
            }
            if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&p.compression.as_str()) {
                bail!(
                    "workload.producers.{}.compression: `{}` (none, gzip, snappy, lz4, zstd)",
                    p.name(),
                    p.compression
                );
            }
            if p.transactions.as_ref().is_some_and(|t| t.records == 0) {
                bail!(
                    "workload.producers.{}.transactions.records: above 0",
                    p.name()
                );
            }
        }
        for c in &self.workload.consumers {
            if topic(&c.topic).is_none() {
                bail!(
                    "workload.consumers.{}: unknown topic `{}`",
                    c.group,
                    c.topic
                );
            }
        }
        for (i, s) in self.steps.iter().enumerate() {
            let n = i + 1;
            match s {
                Step::Load(l) if !producers.contains(&l.producer) => {
                    bail!("steps[{n}] load: unknown producer `{}`", l.producer)
                }
                Step::RestartBroker(side) => {
                    let c = match side {
                        Side::Source => &self.clusters.source,
                        Side::Target => &self.clusters.target,
                    };
                    if c.kind.is_none() {
                        bail!("steps[{n}] restart_broker: the {side} is not a local broker");
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "
name: t
clusters: { source: kafka, target: { bootstrap: 'h:1' } }
topics: [ { name: a } ]
workload:
  producers: [ { topic: a, keys: 5, transactions: { records: 3, abort_every: 2 } } ]
  consumers: [ { group: g, topic: a } ]
steps:
  - start_workload
  - load: { producer: a-writer, records: 10 }
  - advance: fenced
  - advance: { to: drained, wait: false }
  - switch_clients: target
  - sleep: 1s
  - wait_mirrored: {}
asserts: [ no_loss, { stage: promoted }, { write_pause_under: 5s } ]
";

    #[test]
    fn a_playbook_parses_with_short_and_long_forms() {
        let p = Playbook::parse(MINIMAL).unwrap();
        assert_eq!(p.topics[0].partitions, 2);
        assert_eq!(p.clusters.target.bootstrap.as_deref(), Some("h:1"));
        assert!(matches!(
            p.steps[2],
            Step::Advance(AdvanceSpec {
                to: Stage::Fenced,
                wait: true,
                ..
            })
        ));
        assert!(matches!(
            p.steps[3],
            Step::Advance(AdvanceSpec {
                to: Stage::Drained,
                wait: false,
                ..
            })
        ));
        assert!(matches!(p.steps[5], Step::Sleep(d) if d == Duration::from_secs(1)));
        assert!(
            matches!(p.asserts[2], Assertion::WritePauseUnder(d) if d == Duration::from_secs(5))
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = |yaml: &str| format!("{:#}", Playbook::parse(yaml).unwrap_err());
        let typo = MINIMAL.replace("records: 10", "recrods: 10");
        assert!(err(&typo).contains("recrods"), "{}", err(&typo));
        let bad_topic = MINIMAL.replace(
            "consumers: [ { group: g, topic: a } ]",
            "consumers: [ { group: g, topic: b } ]",
        );
        assert!(err(&bad_topic).contains("unknown topic `b`"));
        let restart = MINIMAL.replace("- sleep: 1s", "- restart_broker: target");
        assert!(err(&restart).contains("not a local broker"));
        let step = MINIMAL.replace("- start_workload", "- start_wrkload");
        assert!(err(&step).contains("start_wrkload"), "{}", err(&step));
        let tansu_source = MINIMAL.replace("source: kafka", "source: tansu");
        assert!(err(&tansu_source).contains("clusters.source"));
    }

    #[test]
    fn every_shipped_playbook_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "yaml") {
                Playbook::load(&path).unwrap();
                n += 1;
            }
        }
        assert!(n >= 6, "only {n} playbooks in {}", dir.display());
    }
}
