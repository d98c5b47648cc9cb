//! `GET /v1/status`: the mirror's partitions and the synced groups, as the API returns them,
//! built from the mirror's and the group sync's status snapshots.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strait_linker::mirror::{MirrorStatus, PartitionState, PartitionView};
use strait_offset_sync::{GroupStatus, SyncState};

/// Everything strait mirrors and syncs, now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusReport {
    /// When this report was made (ms since the epoch).
    pub at_ms: u64,
    /// Whether `/readyz` answers 200: the mirror has discovered a partition or reported a
    /// topic problem.
    pub ready: bool,
    /// One entry per mirrored partition, by topic and partition.
    pub partitions: Vec<PartitionStatus>,
    /// Topics that match the mirror's selection but cannot be mirrored, and why.
    pub topic_problems: Vec<TopicProblem>,
    /// Record batches of a partition strait puts in one produce request, as learned from
    /// the target (`[mirror] max_batches_per_request` where the target takes several, 1
    /// where it refused them, as Apache Kafka does); absent until the target has answered
    /// a write of several batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_batches_per_request: Option<usize>,
    /// One entry per consumer group seen by the group sync, by group id.
    pub groups: Vec<GroupSyncStatus>,
}

/// The state of one partition's mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionStateName {
    /// Reading the target's tail and the start position.
    Initializing,
    /// Copying; not yet at the source end.
    Mirroring,
    /// At the source end as of the last fetch.
    CaughtUp,
    /// Stopped on purpose (source topic deleted, cutover promoted); see `reason`.
    Stopped,
    /// Stopped by an error that needs an operator; see `reason`.
    Error,
}

impl PartitionStateName {
    /// Every state, in lifecycle order.
    pub const ALL: [Self; 5] = [
        Self::Initializing,
        Self::Mirroring,
        Self::CaughtUp,
        Self::Stopped,
        Self::Error,
    ];

    /// The name as in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "initializing",
            Self::Mirroring => "mirroring",
            Self::CaughtUp => "caught_up",
            Self::Stopped => "stopped",
            Self::Error => "error",
        }
    }

    /// The name and the reason (for stopped and error) of a partition state.
    pub fn of(state: &PartitionState) -> (Self, Option<String>) {
        match state {
            PartitionState::Initializing => (Self::Initializing, None),
            PartitionState::Mirroring => (Self::Mirroring, None),
            PartitionState::CaughtUp => (Self::CaughtUp, None),
            PartitionState::Stopped { reason } => (Self::Stopped, Some(reason.clone())),
            PartitionState::Error { message } => (Self::Error, Some(message.clone())),
        }
    }
}

/// One partition's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PartitionStatus {
    /// Topic (same name on both clusters).
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// State.
    pub state: PartitionStateName,
    /// Why the partition stopped (`stopped`, `error`); null otherwise.
    pub reason: Option<String>,
    /// Source end offset (last stable offset) as of the last fetch; -1 if not known yet.
    pub source_end: i64,
    /// Target end offset: where the next mirrored record will land; -1 if not known yet.
    pub target_end: i64,
    /// Next source offset to mirror; -1 if not known yet.
    pub next_source: i64,
    /// Source offsets not mirrored yet (`source_end - next_source`); -1 if not known yet.
    pub lag_records: i64,
    /// Age of the newest mirrored record when records are waiting (now minus its timestamp),
    /// 0 when nothing is waiting, null when records are waiting and none was mirrored yet.
    pub lag_seconds: Option<f64>,
    /// Timestamp of the newest mirrored record (ms since the epoch); -1 if none yet.
    pub last_mirrored_timestamp: i64,
    /// Records mirrored by this process.
    pub records_mirrored: u64,
    /// Record batch bytes mirrored by this process.
    pub bytes_mirrored: u64,
    /// Batches whose CRC failed, fetched from the source or read from the target's tail (each
    /// was read again, never written).
    pub crc_failures: u64,
}

/// A topic that cannot be mirrored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TopicProblem {
    /// Topic.
    pub topic: String,
    /// What is wrong.
    pub message: String,
}

/// Where a group's offset sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupStateName {
    /// Offsets are translated and committed on the target.
    Syncing,
    /// Live members on the target only: the group moved; strait stopped syncing it.
    Moved,
    /// Live members on both clusters; strait stopped syncing it.
    Split,
    /// The last attempt failed (see `message`); retried next interval.
    Error,
}

impl GroupStateName {
    /// Every state.
    pub const ALL: [Self; 4] = [Self::Syncing, Self::Moved, Self::Split, Self::Error];

    /// The name as in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syncing => "syncing",
            Self::Moved => "moved",
            Self::Split => "split",
            Self::Error => "error",
        }
    }

    /// The name and message of a sync state.
    pub fn of(state: &SyncState) -> (Self, Option<String>) {
        match state {
            SyncState::Syncing => (Self::Syncing, None),
            SyncState::Moved => (Self::Moved, None),
            SyncState::Split => (Self::Split, None),
            SyncState::Error { message } => (Self::Error, Some(message.clone())),
        }
    }
}

/// One consumer group's offset sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupSyncStatus {
    /// Group id.
    pub group: String,
    /// Sync state.
    pub state: GroupStateName,
    /// What failed (`error`); null otherwise.
    pub message: Option<String>,
    /// The group's state on the source (`Empty`, `Stable`, ..., `Dead`).
    pub source_state: String,
    /// The group's state on the target.
    pub target_state: String,
    /// Last committed source offsets seen, per `topic-partition`.
    pub last_source_commit: BTreeMap<String, i64>,
    /// Last target offsets strait committed, per `topic-partition`.
    pub last_target_commit: BTreeMap<String, i64>,
    /// Partitions whose source commit is beyond the mirrored data.
    pub waiting_for_mirror: Vec<String>,
    /// Milliseconds from noticing the last new source commit to committing its translation.
    pub translation_delay_ms: Option<u64>,
    /// When this status was computed (ms since the epoch).
    pub updated_ms: u64,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Lag in seconds: the age of the newest mirrored record while records wait, else 0; `None`
/// when records wait and none was mirrored yet. Never negative (producer clocks may run ahead).
pub fn lag_seconds(view: &PartitionView, now_ms: u64) -> Option<f64> {
    if view.lag_records <= 0 {
        return Some(0.0);
    }
    if view.last_mirrored_timestamp < 0 {
        return None;
    }
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    Some(now.saturating_sub(view.last_mirrored_timestamp).max(0) as f64 / 1000.0)
}

/// Ready when the mirror has reported a discovery: at least one partition or topic problem.
/// (A strait whose selection matches no topic at all stays not ready: it mirrors nothing.)
pub fn is_ready(mirror: &MirrorStatus) -> bool {
    !mirror.partitions.is_empty() || !mirror.topic_problems.is_empty()
}

/// The report for `GET /v1/status`.
pub fn report(
    mirror: &MirrorStatus,
    groups: &BTreeMap<String, GroupStatus>,
    now_ms: u64,
) -> StatusReport {
    let partitions = mirror
        .partitions
        .iter()
        .map(|(tp, v)| {
            let (state, reason) = PartitionStateName::of(&v.state);
            PartitionStatus {
                topic: tp.topic.clone(),
                partition: tp.partition,
                state,
                reason,
                source_end: v.source_end,
                target_end: v.next_target,
                next_source: v.next_source,
                lag_records: v.lag_records,
                lag_seconds: lag_seconds(v, now_ms),
                last_mirrored_timestamp: v.last_mirrored_timestamp,
                records_mirrored: v.records_mirrored,
                bytes_mirrored: v.bytes_mirrored,
                crc_failures: v.crc_failures,
            }
        })
        .collect();
    let groups = groups
        .iter()
        .map(|(group, g)| {
            let (state, message) = GroupStateName::of(&g.state);
            GroupSyncStatus {
                group: group.clone(),
                state,
                message,
                source_state: g.source_state.clone(),
                target_state: g.target_state.clone(),
                last_source_commit: g.last_source_commit.clone(),
                last_target_commit: g.last_target_commit.clone(),
                waiting_for_mirror: g.waiting_for_mirror.clone(),
                translation_delay_ms: g.translation_delay_ms,
                updated_ms: g.updated_ms,
            }
        })
        .collect();
    StatusReport {
        at_ms: now_ms,
        ready: is_ready(mirror),
        partitions,
        target_batches_per_request: mirror.target_batches_per_request,
        topic_problems: mirror
            .topic_problems
            .iter()
            .map(|p| TopicProblem {
                topic: p.topic.clone(),
                message: p.message.clone(),
            })
            .collect(),
        groups,
    }
}
