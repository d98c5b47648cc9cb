//! `strait plan`: a dry run of `strait run` that writes nothing to either cluster.
//!
//! ```text
//!  config (loaded) ─► connect + authenticate: source, target ─► APIs each side must offer
//!  state dir (read from a private copy; never created or locked)
//!  source: Metadata ─► selected topics ─► ListOffsets ─► initial copy (records; bytes via
//!          DescribeLogDirs when every partition copies its whole log)
//!  target: Metadata, Fetch (offset 0, 1 byte), DescribeConfigs ─► conflicts: foreign data,
//!          too few partitions without CreatePartitions, smaller max.message.bytes
//!  source: ListGroups ─► OffsetFetch ─► groups selected, offsets strait cannot sync
//! ```
//!
//! Only read requests are sent (Metadata, ApiVersions, ListOffsets, Fetch, DescribeConfigs,
//! DescribeLogDirs, ListGroups, FindCoordinator for groups that exist, OffsetFetch); every
//! finding becomes a [`Check`]. With `--probe`, [`probe`] additionally exercises the target
//! on one scratch topic that it deletes again.
//!
//! Files: `topics` (APIs, selected topics, target conflicts, size limits), `copy` (initial
//! copy), `groups`, `state` (the state directory, read from a copy); the probe in `probe`
//! (report, scratch topic) with its checks in `log`, `idempotent`, `txn` and `acl`.

mod acl;
mod copy;
mod groups;
mod idempotent;
mod log;
pub mod probe;
mod state;
mod topics;
mod txn;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::client::{Error, KafkaClient};
use crate::config::{ClusterConfig, StraitConfig};
use state::StateView;

pub use probe::{Guarantee, Outcome, ProbeReport};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `strait run` would fail or corrupt something: fix it first.
    Blocker,
    /// `strait run` works, but something will not (fully) happen.
    Warning,
    /// For information.
    Info,
}

/// One finding of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`target connection`, `target topic orders`, ...).
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// How much a failure matters (`info` for passed checks).
    pub severity: Severity,
    /// What was found.
    pub detail: String,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            severity: Severity::Info,
            detail: detail.into(),
        }
    }

    fn blocker(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            severity: Severity::Blocker,
            detail: detail.into(),
        }
    }

    fn warning(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            severity: Severity::Warning,
            detail: detail.into(),
        }
    }
}

/// What happens to one selected topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicPlan {
    /// Topic name (the same on both clusters).
    pub name: String,
    /// Source partition count.
    pub partitions: usize,
    /// The target topic: `absent` (strait creates it), `empty`, `mirrored` (strait's own,
    /// per the state directory), `occupied` (data strait did not write) or `unknown`.
    pub target: String,
    /// Offsets between each partition's start position and its end, summed: records plus
    /// transaction markers still to copy. `None` when the offsets could not be read.
    pub initial_copy_records: Option<u64>,
}

/// A selected consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupPlan {
    /// Group id.
    pub group_id: String,
    /// State as ListGroups reports it (empty when the broker does not say).
    pub state: String,
    /// Mirrored topics the group has committed offsets for (synced).
    pub mirrored_topics: Vec<String>,
    /// Other topics it has committed offsets for (not synced: strait does not mirror them).
    pub other_topics: Vec<String>,
}

/// Sizes of what `strait run` would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Selected topics.
    pub topics: Vec<TopicPlan>,
    /// Number of selected topics.
    pub topic_count: usize,
    /// Number of their partitions.
    pub partition_count: usize,
    /// Records (offsets) the initial copy moves, over all selected partitions.
    pub initial_copy_records: u64,
    /// Bytes on the source's disk of the initial copy, when every selected partition copies
    /// its whole log and the source answers DescribeLogDirs; `None` otherwise.
    pub initial_copy_bytes: Option<u64>,
    /// Consumer groups selected by `[groups]`.
    pub groups: Vec<GroupPlan>,
}

/// The result of `strait plan`.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// True when no check is a blocker.
    pub ready: bool,
    /// Every finding, in the order checked.
    pub checks: Vec<Check>,
    /// Sizes.
    pub figures: Figures,
    /// The target's guarantees, with `--probe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeReport>,
}

impl PlanReport {
    /// The blocking checks.
    pub fn blockers(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|c| !c.ok && c.severity == Severity::Blocker)
    }
}

/// What to do besides the read-only checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Probe the target's semantics on a scratch topic (writes to the target).
    pub probe: bool,
}

/// Runs every check for `cfg` (already loaded and validated). Never fails: every problem is
/// a [`Check`].
pub async fn plan(cfg: &StraitConfig, opts: PlanOptions) -> PlanReport {
    let mut checks = vec![Check::pass(
        "config",
        format!(
            "valid; mirror.start = {}, state.dir = {}",
            cfg.mirror.start,
            cfg.state.dir.display()
        ),
    )];
    let source = connect("source", &cfg.source, &mut checks).await;
    let target = connect("target", &cfg.target, &mut checks).await;
    if let Some(s) = &source {
        checks.push(topics::api_check("source", s, topics::SOURCE_APIS).await);
    }
    if let Some(t) = &target {
        checks.push(topics::api_check("target", t, topics::TARGET_APIS).await);
    }
    let state = StateView::read(&cfg.state.dir);
    checks.push(state_check(&cfg.state.dir, &state));
    let mut figures = Figures::default();
    if let Some(s) = &source {
        topics::check_topics(cfg, s, target.as_ref(), &state, &mut checks, &mut figures).await;
        groups::check_groups(cfg, s, &mut checks, &mut figures).await;
    }
    let probe = match (opts.probe, &target) {
        (false, _) => None,
        (true, Some(t)) => Some(probe::probe(t).await),
        (true, None) => Some(ProbeReport::untested(
            &cfg.target.bootstrap_servers,
            "the target cluster cannot be reached",
        )),
    };
    if let Some(p) = &probe
        && let Some(problem) = &p.cleanup_problem
    {
        checks.push(Check::warning("probe scratch topic", problem.clone()));
    }
    PlanReport {
        ready: !checks
            .iter()
            .any(|c| !c.ok && c.severity == Severity::Blocker),
        checks,
        figures,
        probe,
    }
}

/// Connects to one side; a failure is a blocker naming the side and the error.
async fn connect(
    side: &str,
    cluster: &ClusterConfig,
    checks: &mut Vec<Check>,
) -> Option<KafkaClient> {
    let name = format!("{side} connection");
    match KafkaClient::connect(cluster.client_config()).await {
        Ok(c) => {
            let auth = match &cluster.security.sasl {
                Some(s) => format!(", authenticated as {} ({})", s.username, s.mechanism.name()),
                None => String::new(),
            };
            let tls = if cluster.security.tls.is_some() {
                " over TLS"
            } else {
                ""
            };
            checks.push(Check::pass(
                name,
                format!(
                    "connected to the {side} cluster {} at {}{tls}{auth}; {} broker(s)",
                    c.cluster_id().unwrap_or_else(|| "<no id>".into()),
                    cluster.bootstrap_servers,
                    c.brokers().len()
                ),
            ));
            Some(c)
        }
        Err(e) => {
            let at = &cluster.bootstrap_servers;
            let detail = match &e {
                Error::Auth { .. } => {
                    format!("authentication to the {side} cluster at {at} failed: {e}")
                }
                _ => format!("cannot connect to the {side} cluster at {at}: {e}"),
            };
            checks.push(Check::blocker(name, detail));
            None
        }
    }
}

fn state_check(dir: &std::path::Path, state: &StateView) -> Check {
    let name = "state directory";
    let in_use_text = |in_use: &Option<Option<u32>>| match in_use {
        Some(Some(pid)) => format!("state directory in use by a running strait (pid {pid})"),
        Some(None) => "state directory in use by a running strait".to_owned(),
        None => String::new(),
    };
    match state {
        StateView::Absent => Check::pass(
            name,
            format!(
                "{} does not exist (plan does not create it); strait run creates it, and every \
                 target topic must then be absent or empty",
                dir.display()
            ),
        ),
        StateView::Read {
            checkpoints,
            in_use,
        } => {
            let topics: BTreeMap<&str, usize> =
                checkpoints.keys().fold(BTreeMap::new(), |mut m, tp| {
                    *m.entry(tp.topic.as_str()).or_default() += 1;
                    m
                });
            let progress = format!(
                "{} holds progress for {} partition(s) of {} topic(s)",
                dir.display(),
                checkpoints.len(),
                topics.len()
            );
            match in_use {
                Some(_) => Check::pass(
                    name,
                    format!("{}; read from a copy: {progress}", in_use_text(in_use)),
                ),
                None => Check::pass(name, progress),
            }
        }
        StateView::Unreadable {
            error,
            in_use: in_use @ Some(_),
        } => Check::pass(
            name,
            format!(
                "{}; its progress could not be read ({error}), so target topics with data \
                 cannot be attributed to it",
                in_use_text(in_use)
            ),
        ),
        StateView::Unreadable {
            error,
            in_use: None,
        } => Check::blocker(name, format!("{} cannot be read: {error}", dir.display())),
    }
}
