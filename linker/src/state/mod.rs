//! strait's persisted state: per-partition offset maps and checkpoints, and a small typed
//! key-value store for other components. sled is an implementation detail of this module: no
//! sled type appears in its API.
//!
//! ```text
//!   mirror pipeline (one task per partition)
//!     │ after each produced batch:  OffsetMap::push / skip_source      (pure, in memory)
//!     ▼
//!   StateStore::record_batch_written(tp, map.last_entry(), checkpoint)
//!     │ one atomic sled batch: the new or extended map entry + the checkpoint
//!     ▼
//!   <dir>/db  ─── sled trees ───  "partitions":  'c'‖tp → PartitionCheckpoint (JSON)
//!     │                                          'm'‖tp‖source_first → MapEntry (JSON)
//!     │                           "ns/<name>":   key → V (JSON), one tree per Namespace
//!     ▼ on restart
//!   StateStore::load_partition(tp) → (PartitionCheckpoint, OffsetMap)
//!     → reconcile against the target, resume at next_source
//! ```
//!
//! - [`offset_map`]: [`OffsetMap`], the source ↔ target offset translation of one partition.
//! - [`StateStore`]: the directory lock, the partition records and [`Namespace`]s.
//!
//! # Consistency and durability
//!
//! Each [`StateStore::record_batch_written`] writes the partition's last map entry and its
//! checkpoint in one atomic sled batch: after a crash at any point, the stored pair is either
//! the one before or the one after the call, never a mix, so the map always agrees with the
//! checkpoint's cursors. A map entry is keyed by its `source_first`; when [`OffsetMap::push`]
//! merges a batch into the last entry, that entry keeps its key and the write replaces it.
//!
//! sled makes writes durable only when it flushes (every few hundred milliseconds in the
//! background, or on [`StateStore::flush`]); a killed process loses what was not flushed.
//! strait's recovery does not need the last progress writes to survive: it matches the
//! target's tail past the checkpoint on restart. It does need each (entry, checkpoint) pair to
//! be atomic, which sled guarantees for a batch, and it needs a partition's *first*
//! checkpoint (where its map starts on the target) on disk before anything is written for
//! it: the mirror flushes after setting up new partitions, before their first write.
//!
//! # Ownership
//!
//! One writer per key range: a partition's records are written only by the task mirroring
//! it, and each [`Namespace`] is owned by one component. [`StateStore::set_status`] is the
//! exception that may race with the mirroring task, so it is a compare-and-swap that leaves
//! the cursors alone.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::offset::{SourceOffset, TargetOffset, TopicPartition};

mod keys;
mod namespace;
pub mod offset_map;
mod store;

pub use namespace::Namespace;
pub use offset_map::{Layout, Lookup, MapEntry, MapError, OffsetMap, Pushed};
pub use store::StateStore;

/// The persisted progress of one mirrored partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartitionCheckpoint {
    /// The source topic's id when known: a topic deleted and re-created under the same name
    /// gets a new id, and its old offsets mean nothing.
    pub topic_id: Option<String>,
    /// The next source offset to fetch ([`OffsetMap::next_source`]).
    pub next_source: SourceOffset,
    /// The target end offset expected after the writes so far ([`OffsetMap::next_target`]).
    pub next_target: TargetOffset,
    /// Whether the partition is being mirrored.
    pub status: PartitionStatus,
    /// strait's idempotent producer on the target after the last recorded batch: the id and
    /// epoch that batch was written under, and the sequence number the next batch under them
    /// takes. A restart continues under this id where the target's last batch carries it
    /// (instead of asking the target for a new one), so a target keeps one producer's state
    /// per partition however often strait restarts, and a write still in flight when the
    /// old process died is recognised as a duplicate if it lands late. `None`: the last
    /// batch carried no producer id, or the state predates this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<ProducerCursor>,
}

/// An idempotent producer's position on one target partition (see
/// [`PartitionCheckpoint::producer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProducerCursor {
    /// The producer id the target assigned to strait.
    pub id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// The sequence number of the next batch written under this id to this partition.
    pub next_sequence: i32,
}

/// Whether a partition is being mirrored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PartitionStatus {
    /// Mirroring.
    Active,
    /// Deliberately stopped (e.g. by an operator or a cutover).
    Stopped {
        /// Why.
        reason: String,
    },
    /// Stopped by an error that needs attention.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// Why the state store failed.
#[derive(Debug, Error)]
pub enum StateError {
    /// Another [`StateStore`] (in this process or another one) holds the directory.
    #[error(
        "state directory {} is in use by another strait process ({})",
        dir.display(),
        holder_text(*.holder)
    )]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it into the lock file, if readable.
        holder: Option<u32>,
    },
    /// A file system operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The database failed (sled's error, as text so that sled types stay inside `state`).
    #[error("state database error while {context}: {message}")]
    Db {
        /// What the store was doing.
        context: String,
        /// sled's error.
        message: String,
    },
    /// A stored value or key that cannot be decoded.
    #[error("corrupt state at key {key}: {message}")]
    Corrupt {
        /// The key, rendered readably.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A value that cannot be encoded.
    #[error("cannot encode the value for key {key}: {message}")]
    Encode {
        /// The key, rendered readably.
        key: String,
        /// serde's error.
        message: String,
    },
    /// An offset map invariant violated by a write or by stored state.
    #[error("offset map of {tp}: {source}")]
    Map {
        /// The partition.
        tp: TopicPartition,
        /// The violated invariant.
        #[source]
        source: MapError,
    },
    /// An operation on a partition that has no stored state.
    #[error("no state stored for partition {tp}")]
    UnknownPartition {
        /// The partition.
        tp: TopicPartition,
    },
    /// A topic name that cannot be a key (it contains a NUL byte, which no Kafka topic can).
    #[error("invalid topic name {topic:?}: contains a NUL byte")]
    InvalidTopic {
        /// The name.
        topic: String,
    },
    /// The directory holds state in a format this version does not understand.
    #[error(
        "state directory {} has format version {found}, this strait understands {supported}",
        dir.display()
    )]
    UnsupportedFormat {
        /// The state directory.
        dir: PathBuf,
        /// The format found.
        found: String,
        /// The format this version writes.
        supported: String,
    },
}

fn holder_text(holder: Option<u32>) -> String {
    match holder {
        Some(pid) if pid == std::process::id() => format!("pid {pid}, this process"),
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

impl StateError {
    /// Wraps a sled error (or any other database error) with what the store was doing.
    fn db(context: impl Into<String>, error: impl std::fmt::Display) -> Self {
        Self::Db {
            context: context.into(),
            message: error.to_string(),
        }
    }
}
