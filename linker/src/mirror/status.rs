//! What the mirror reports about itself: per-partition progress and state, shared read-only
//! with the control API, metrics and the CLI.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::offset::TopicPartition;

/// The lifecycle of one partition's mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PartitionState {
    /// Reading the target's tail and the start position.
    Initializing,
    /// Copying data; not yet at the source end.
    Mirroring,
    /// At the source end as of the last fetch.
    CaughtUp,
    /// Stopped on purpose (source topic deleted, cutover promoted, paused).
    Stopped {
        /// Why.
        reason: String,
    },
    /// Stopped by an error that needs an operator (foreign write, data deleted at the source
    /// before it was mirrored, persistent CRC failures).
    Error {
        /// What happened and where.
        message: String,
    },
}

impl PartitionState {
    /// True when the partition is still copying or caught up.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Initializing | Self::Mirroring | Self::CaughtUp)
    }
}

/// One partition's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionView {
    /// State.
    #[serde(flatten)]
    pub state: PartitionState,
    /// Source end offset (LSO with read_committed) as of the last fetch, -1 if unknown.
    pub source_end: i64,
    /// Next source offset strait will mirror.
    pub next_source: i64,
    /// Target end offset strait expects.
    pub next_target: i64,
    /// Records not yet mirrored: `source_end - next_source` (offsets, including gaps).
    pub lag_records: i64,
    /// Timestamp (ms) of the newest record mirrored, -1 if none yet.
    pub last_mirrored_timestamp: i64,
    /// Data records mirrored by this process.
    pub records_mirrored: u64,
    /// Batch bytes mirrored by this process.
    pub bytes_mirrored: u64,
    /// Batches whose CRC failed, fetched from the source or read from the target's tail
    /// (each was read again, never written).
    pub crc_failures: u64,
}

impl PartitionView {
    pub(crate) fn new() -> Self {
        Self {
            state: PartitionState::Initializing,
            source_end: -1,
            next_source: -1,
            next_target: -1,
            lag_records: -1,
            last_mirrored_timestamp: -1,
            records_mirrored: 0,
            bytes_mirrored: 0,
            crc_failures: 0,
        }
    }

    /// Takes over the process-lifetime counters of `earlier`, this partition's view before it
    /// was set up again (a released hold, a stopped partition looked at by a later discovery),
    /// so counters never go backwards within a process.
    pub(crate) fn carry_counters(&mut self, earlier: &PartitionView) {
        self.records_mirrored = earlier.records_mirrored;
        self.bytes_mirrored = earlier.bytes_mirrored;
        self.crc_failures = earlier.crc_failures;
        self.last_mirrored_timestamp = earlier.last_mirrored_timestamp;
    }
}

/// A topic-level problem (the target topic cannot be used, the source topic vanished, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicProblem {
    /// Topic.
    pub topic: String,
    /// What is wrong, for an operator.
    pub message: String,
}

/// A snapshot of the mirror.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MirrorStatus {
    /// Per-partition progress.
    pub partitions: BTreeMap<TopicPartition, PartitionView>,
    /// Topics that cannot be mirrored, and why.
    pub topic_problems: Vec<TopicProblem>,
    /// Batches of a partition strait puts in one produce request, once the target showed
    /// whether it takes several (`None`: not yet known, or never tried).
    pub target_batches_per_request: Option<usize>,
}

impl MirrorStatus {
    /// True when every running partition is caught up and none is in error.
    pub fn all_caught_up(&self) -> bool {
        !self.partitions.is_empty()
            && self.partitions.values().all(|p| {
                matches!(
                    p.state,
                    PartitionState::CaughtUp | PartitionState::Stopped { .. }
                )
            })
    }
}

/// Shared, cheaply cloned view of the mirror's status.
#[derive(Debug, Clone, Default)]
pub struct StatusHandle(Arc<RwLock<MirrorStatus>>);

impl StatusHandle {
    /// A copy of the current status.
    pub fn snapshot(&self) -> MirrorStatus {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut MirrorStatus)) {
        f(&mut self.0.write().unwrap_or_else(|e| e.into_inner()));
    }
}
