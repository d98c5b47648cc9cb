//! The cutover's data model: what is persisted, returned by the API and accepted from it.
//! Pure data; the rules live in [`super::machine`], the actions in [`super::service`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The stages of a cutover, in order. `rolled_back` is terminal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Created; the wave's topics are being mirrored.
    Mirroring,
    /// No more writes reach the wave's source topics.
    Fenced,
    /// The target holds everything the source has; groups synced a final time.
    Drained,
    /// The target is the primary; mirroring of the wave stopped; cutover point recorded.
    Promoted,
    /// A rollback finished: the source is the primary again.
    RolledBack,
}

impl Stage {
    /// The stage after this one on the way to promotion.
    pub fn next(self) -> Option<Stage> {
        match self {
            Self::Mirroring => Some(Self::Fenced),
            Self::Fenced => Some(Self::Drained),
            Self::Drained => Some(Self::Promoted),
            Self::Promoted | Self::RolledBack => None,
        }
    }

    /// The stage's name as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mirroring => "mirroring",
            Self::Fenced => "fenced",
            Self::Drained => "drained",
            Self::Promoted => "promoted",
            Self::RolledBack => "rolled_back",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How writes are stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FenceMode {
    /// strait adds DENY WRITE ACLs for the wave's topics and removes them on rollback.
    Acl,
    /// The operator stopped the producers; strait verifies quiescence.
    Manual,
}

/// The fence of a cutover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FenceSpec {
    /// How the source is fenced.
    pub mode: FenceMode,
    /// How the target is fenced during a failback (rollback after promotion); defaults to
    /// `mode`. Use `manual` for targets without ACL enforcement (tansu).
    #[serde(default)]
    pub failback_mode: Option<FenceMode>,
    /// Principals denied by an `acl` fence. strait's own principal must be a super user (or
    /// not listed) for a failback to write to the source.
    #[serde(default = "default_principals")]
    pub principals: Vec<String>,
    /// How long end offsets must stay unchanged (and no producer be active) for a `manual`
    /// fence to count as quiet, in milliseconds.
    #[serde(default = "default_quiet_ms")]
    pub quiet_period_ms: u64,
}

fn default_principals() -> Vec<String> {
    vec!["User:*".to_string()]
}

fn default_quiet_ms() -> u64 {
    5_000
}

impl FenceSpec {
    /// The fence mode used on the target during a failback.
    pub fn failback(&self) -> FenceMode {
        self.failback_mode.unwrap_or(self.mode)
    }
}

/// Time allowed for each stage; an expired fence or drain rolls back to `mirroring`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Deadlines {
    /// Milliseconds for `mirroring` → `fenced` (including the quiet period).
    pub fence_ms: u64,
    /// Milliseconds for `fenced` → `drained`.
    pub drain_ms: u64,
    /// Milliseconds for `drained` → `promoted`.
    pub promote_ms: u64,
    /// Milliseconds for a failback; an expired failback is reported, not undone (the target
    /// stays fenced and the operation can be retried).
    pub failback_ms: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            fence_ms: 60_000,
            drain_ms: 300_000,
            promote_ms: 60_000,
            failback_ms: 600_000,
        }
    }
}

/// `POST /v1/cutovers`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCutover {
    /// A name for people (unique among cutovers that are not rolled back).
    pub name: String,
    /// The wave's topics (exact names; each must be mirrored by this strait).
    pub topics: Vec<String>,
    /// The wave's consumer groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// How writes are fenced.
    pub fence: FenceSpec,
    /// Stage deadlines.
    #[serde(default)]
    pub deadlines: Deadlines,
    /// Largest lag (records, summed over the wave) at which fencing may start.
    #[serde(default = "default_max_lag")]
    pub max_lag_records: i64,
    /// Validate and report, create nothing.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_max_lag() -> i64 {
    10_000
}

/// `POST /v1/cutovers/{id}/advance`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceRequest {
    /// The stage to reach; later than the current one (stages in between are run in order).
    pub to: Stage,
    /// Report the checks and actions, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Expected version (alternative to `If-Match`).
    #[serde(default)]
    pub version: Option<u64>,
}

/// `POST /v1/cutovers/{id}/rollback`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Report the checks and actions, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Expected version (alternative to `If-Match`).
    #[serde(default)]
    pub version: Option<u64>,
}

/// What an operation is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Moving towards promotion.
    Advance,
    /// Returning to the source.
    Rollback,
}

/// A transition in progress (persisted, so a restart resumes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Operation {
    /// Advance or rollback.
    pub kind: OperationKind,
    /// Final stage of the operation.
    pub to: Stage,
    /// The stage being worked on now (for an advance: the next stage to reach).
    pub working_on: Stage,
    /// When the operation started (ms since the epoch).
    pub started_ms: u64,
    /// When the current step times out (ms since the epoch).
    pub deadline_ms: u64,
    /// Who asked (token name).
    pub requested_by: String,
    /// Progress note for people, e.g. "waiting for 3 partitions to drain".
    pub progress: String,
}

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    /// Stable check name, e.g. `lag_under_threshold`.
    pub name: String,
    /// Whether it holds.
    pub ok: bool,
    /// Figures behind the answer.
    pub detail: String,
}

/// Where one partition stood when the cutover was promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PartitionPoint {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Source end offset (high watermark) at promotion.
    pub source_end: i64,
    /// Target end offset at promotion.
    pub target_end: i64,
}

/// A write that reached a fenced cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Straggler {
    /// `source` or `target`.
    pub cluster: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// End offset when fenced.
    pub fenced_end: i64,
    /// End offset seen later.
    pub seen_end: i64,
    /// Producer ids the broker reports as recently active (empty when it cannot tell).
    pub producer_ids: Vec<i64>,
    /// When it was seen (ms since the epoch).
    pub at_ms: u64,
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Stable kind, e.g. `created`, `stage_reached`, `deadline_expired`, `straggler`.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// The token name that caused it, `strait` for automatic events.
    pub actor: String,
}

/// A cutover, as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Cutover {
    /// Identifier (URL-safe).
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// Incremented on every change; send it back as `If-Match` or `version`.
    pub version: u64,
    /// Current stage.
    pub stage: Stage,
    /// The wave's topics.
    pub topics: Vec<String>,
    /// The wave's groups.
    pub groups: Vec<String>,
    /// Fence.
    pub fence: FenceSpec,
    /// Deadlines.
    pub deadlines: Deadlines,
    /// Lag threshold for fencing.
    pub max_lag_records: i64,
    /// The transition in progress, if any.
    pub operation: Option<Operation>,
    /// The latest checks run.
    pub checks: Vec<Check>,
    /// Recorded at promotion.
    pub cutover_point: Vec<PartitionPoint>,
    /// Source end offsets when the fence took effect (per `topic-partition`).
    pub fenced_ends: std::collections::BTreeMap<String, i64>,
    /// Writes seen on a fenced cluster.
    pub stragglers: Vec<Straggler>,
    /// When the source fence took effect / was lifted, and when the target took writes
    /// (ms since the epoch): the write pause is from `fenced_ms` to `promoted_ms`.
    pub fenced_ms: Option<u64>,
    /// When the cutover was promoted.
    pub promoted_ms: Option<u64>,
    /// When it was rolled back.
    pub rolled_back_ms: Option<u64>,
    /// Progress of a failback (rollback after promotion), once one started.
    pub failback: Option<FailbackState>,
    /// A rehearsal: advanced to `promoted` and rolled back (failback) automatically.
    #[serde(default)]
    pub rehearsal: bool,
    /// Every stage reached, with the wave's lag and the checks that passed then.
    #[serde(default)]
    pub stage_log: Vec<StageRecord>,
    /// Timeline.
    pub events: Vec<Event>,
    /// Created (ms since the epoch).
    pub created_ms: u64,
    /// Last changed (ms since the epoch).
    pub updated_ms: u64,
}

/// A stage as it was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StageRecord {
    /// The stage.
    pub stage: Stage,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// The wave's mirror lag then (records, summed over its partitions).
    pub lag_records: i64,
    /// The checks that were run to reach it.
    pub checks: Vec<Check>,
}

/// `POST /v1/rehearsals`: a full cutover of a wave and its rollback, run back to back against
/// the configured (staging) clusters, with a report.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RehearsalRequest {
    /// A name (default: `rehearsal-<time>`).
    #[serde(default)]
    pub name: Option<String>,
    /// The wave's topics.
    pub topics: Vec<String>,
    /// The wave's consumer groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// How writes are fenced (the rehearsal really fences: run it against staging).
    pub fence: FenceSpec,
    /// Stage deadlines.
    #[serde(default)]
    pub deadlines: Deadlines,
    /// Largest lag (records) at which fencing may start.
    #[serde(default = "default_max_lag")]
    pub max_lag_records: i64,
    /// `live` (the configured clusters) is the only mode so far; `shadow` (prefixed copies,
    /// producers never fenced) is refused with 400 until it exists.
    #[serde(default)]
    pub mode: RehearsalMode,
}

/// Where a rehearsal runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RehearsalMode {
    /// On the configured clusters, fencing the real topics.
    #[default]
    Live,
    /// On prefixed copies (not available yet).
    Shadow,
}

/// The report of a cutover or rehearsal: `GET /v1/cutovers/{id}/report` (JSON) and
/// `.../report.md` (Markdown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Cutover id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Whether it was a rehearsal.
    pub rehearsal: bool,
    /// `running`, `promoted`, `rolled_back`, `failed` (rolled back by a deadline or a failed
    /// check) or `mirroring`.
    pub result: String,
    /// Current stage.
    pub stage: Stage,
    /// Stages reached, with lag and checks.
    pub stages: Vec<StageRecord>,
    /// Write pause: from the source fence to promotion (ms), once promoted.
    pub write_pause_ms: Option<u64>,
    /// Failback progress and outcome.
    pub failback: Option<FailbackState>,
    /// Cutover point.
    pub cutover_point: Vec<PartitionPoint>,
    /// Straggler writes seen.
    pub stragglers: Vec<Straggler>,
    /// Every check that failed along the way (empty when all held).
    pub failed_checks: Vec<Check>,
    /// The timeline.
    pub events: Vec<Event>,
}

/// Where a failback stands (persisted, so a restart resumes it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FailbackState {
    /// Target end offsets once the target was fenced (per `topic-partition`): what is copied
    /// back.
    pub target_ends: std::collections::BTreeMap<String, i64>,
    /// When the target fence took effect (ms since the epoch).
    pub target_fenced_ms: Option<u64>,
    /// Records copied back to the source so far.
    pub records_copied: u64,
    /// Source offsets committed for each group, per `topic-partition`, once translated back.
    pub group_offsets: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>,
}

/// The result of a dry run: what would be checked and done, with nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DryRun {
    /// Always true.
    pub dry_run: bool,
    /// The stage now.
    pub stage: Option<Stage>,
    /// The stage the request would reach.
    pub to: Stage,
    /// Checks run now, against the live clusters.
    pub checks: Vec<Check>,
    /// Actions the request would take, in order.
    pub actions: Vec<String>,
    /// What would stop it (empty: it would proceed).
    pub blockers: Vec<String>,
}
