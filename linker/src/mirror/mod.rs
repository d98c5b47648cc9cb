//! The mirror engine: copies selected topics from the source cluster to the target, batch by
//! batch and byte for byte, and records where every batch landed.
//!
//! ```text
//!            ┌──────────── coordinator task (owns every PartitionRun) ──────────────┐
//!  source ◄──┤ fetch round: one Fetch per source leader, many partitions each       │
//!            │   (`fetch`: once all caught up, the wait grows to 500 ms)            │
//!            │   └► accept_fetch: CRC check, drop control/aborted ─► queue          │
//!  target ◄──┤ produce rounds: one Produce per target leader, 1 batch/partition     │
//!            │   (up to 8 where the target takes them, `stacking`), ≤5 rounds in    │
//!            │   flight per partition (strait's idempotent producer); each batch    │
//!            │   goes as a new 61-byte header + its fetched records, never copied   │
//!            │   └► acks in queue order ─► MapEntry + checkpoint (one sled write)   │
//!            └──────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! One task owns all partition state, so there are no locks on the data path; network calls
//! run as spawned futures whose results come back over channels. Memory is bounded by a byte
//! budget: a fetch reserves its `max_bytes` (the budget left, at most `fetch_max_bytes` per
//! source broker, shared among the partitions behind), the unused part is returned when the
//! response arrives, and the rest is returned as batches are written. A slow target
//! therefore stops fetching; it never grows memory.
//!
//! Exactly-once on the target without transactions: strait is the only writer of a mirror
//! topic, and a partition's writes in flight carry strait's own idempotent producer id and
//! consecutive sequence numbers, so the target stores them in order or refuses the rest
//! ([`produce`]); without a producer id, one write is in flight. After a crash or an uncertain
//! produce (timeout, broken connection), the partition reads the target's tail past its
//! checkpoint and matches it, batch by batch, against the source batches that follow
//! ([`partition::PartitionRun::match_tail`]) before writing anything: what is already there is
//! recorded, not written twice; anything that does not match stops the partition (a foreign
//! write) instead of being skipped or doubled.

mod align;
mod discovery;
mod engine;
pub mod failback;
mod fetch;
pub mod handle;
mod partition;
mod produce;
pub mod protect;
mod stacking;
pub mod status;
mod tail;
pub mod topics;
pub mod verify;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use engine::{Mirror, MirrorError};
pub use handle::{MirrorHandle, Translation};
pub use status::{MirrorStatus, PartitionState, PartitionView, StatusHandle};

/// Where a newly mirrored partition starts in the source log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The log start offset.
    Earliest,
    /// The current end (only new data is mirrored).
    Latest,
    /// The first record at or after this timestamp (ms since the epoch).
    Timestamp(i64),
}

/// Selects the topics to mirror.
pub type TopicFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Tunables of the mirror engine.
#[derive(Clone)]
pub struct MirrorSettings {
    /// Which source topics to mirror.
    pub filter: TopicFilter,
    /// Where new partitions start.
    pub start: Start,
    /// How often to look for new topics and partitions (and check target ends).
    pub topic_refresh: Duration,
    /// How often to re-sync topic configs.
    pub config_sync: Duration,
    /// Byte budget for fetched data not yet written.
    pub max_in_flight_bytes: usize,
    /// Fetch max wait.
    pub fetch_max_wait: Duration,
    /// The longest a fetch may wait once the whole mirror is caught up (see `fetch.rs`).
    pub fetch_idle_max_wait: Duration,
    /// Fetch from the source in incremental fetch sessions (KIP-227; `client/fetch_session.rs`).
    pub fetch_sessions: bool,
    /// Fetch response size limit.
    pub fetch_max_bytes: i32,
    /// Per-partition fetch size (raised automatically for a larger single batch).
    pub partition_fetch_max_bytes: i32,
    /// Bytes the source should gather before answering a fetch that waits `fetch_max_wait`.
    pub fetch_min_bytes: i32,
    /// Writes in flight per partition (1..=5), and produce rounds in flight at once. Above 1,
    /// writes carry strait's own idempotent producer id so the target keeps them in order; 1
    /// writes without one.
    pub max_in_flight_per_partition: usize,
    /// Connections per target broker that writes are spread over (a partition always uses
    /// the same one).
    pub produce_connections: usize,
    /// Batches of a partition per produce request, for targets that take several (tansu);
    /// the mirror falls back to 1 when the target refuses (Apache Kafka).
    pub batches_per_request: usize,
    /// Consecutive CRC failures on one batch before the partition stops.
    pub max_crc_retries: u32,
    /// Principals denied writes to mirror topics on the target ([`protect`]); empty: off.
    pub protect_principals: Vec<String>,
}

impl MirrorSettings {
    /// Defaults suitable for tests and small deployments, mirroring every non-internal topic
    /// that `filter` accepts.
    pub fn new(filter: TopicFilter) -> Self {
        Self {
            filter,
            start: Start::Earliest,
            topic_refresh: Duration::from_secs(5),
            config_sync: Duration::from_secs(60),
            max_in_flight_bytes: 256 << 20,
            fetch_max_wait: Duration::from_millis(10),
            fetch_idle_max_wait: Duration::from_millis(500),
            fetch_sessions: true,
            fetch_max_bytes: 50 << 20,
            partition_fetch_max_bytes: 8 << 20,
            fetch_min_bytes: 1,
            max_in_flight_per_partition: 5,
            produce_connections: 2,
            batches_per_request: 8,
            max_crc_retries: 5,
            protect_principals: Vec::new(),
        }
    }
}

impl fmt::Debug for MirrorSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MirrorSettings")
            .field("start", &self.start)
            .field("topic_refresh", &self.topic_refresh)
            .field("config_sync", &self.config_sync)
            .field("max_in_flight_bytes", &self.max_in_flight_bytes)
            .field("fetch_max_wait", &self.fetch_max_wait)
            .field("fetch_idle_max_wait", &self.fetch_idle_max_wait)
            .field("fetch_sessions", &self.fetch_sessions)
            .field("fetch_max_bytes", &self.fetch_max_bytes)
            .field("partition_fetch_max_bytes", &self.partition_fetch_max_bytes)
            .field("fetch_min_bytes", &self.fetch_min_bytes)
            .field(
                "max_in_flight_per_partition",
                &self.max_in_flight_per_partition,
            )
            .field("produce_connections", &self.produce_connections)
            .field("batches_per_request", &self.batches_per_request)
            .field("protect_principals", &self.protect_principals)
            .finish_non_exhaustive()
    }
}

impl From<&crate::config::MirrorConfig> for MirrorSettings {
    fn from(c: &crate::config::MirrorConfig) -> Self {
        let selector = c.selector();
        let clamp = |b: u64| i32::try_from(b).unwrap_or(i32::MAX);
        Self {
            filter: Arc::new(move |t: &str| selector.matches(t)),
            start: match c.start {
                crate::config::StartPosition::Earliest => Start::Earliest,
                crate::config::StartPosition::Latest => Start::Latest,
                crate::config::StartPosition::Timestamp(t) => Start::Timestamp(t),
            },
            topic_refresh: c.topic_refresh_interval.get(),
            config_sync: c.config_sync_interval.get(),
            max_in_flight_bytes: usize::try_from(c.max_in_flight_bytes.bytes())
                .unwrap_or(usize::MAX),
            fetch_max_wait: c.fetch_max_wait.get(),
            fetch_idle_max_wait: c.fetch_idle_max_wait.get(),
            fetch_sessions: c.fetch_sessions,
            fetch_max_bytes: clamp(c.fetch_max_bytes.bytes()),
            partition_fetch_max_bytes: clamp(c.partition_fetch_max_bytes.bytes()),
            fetch_min_bytes: clamp(c.fetch_min_bytes.bytes()),
            max_in_flight_per_partition: usize::from(c.max_in_flight_per_partition),
            produce_connections: usize::from(c.target_connections_per_broker),
            batches_per_request: usize::from(c.max_batches_per_request),
            protect_principals: c.protect_principals.clone(),
            ..Self::new(Arc::new(|_: &str| true))
        }
    }
}
