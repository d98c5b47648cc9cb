//! A handle on a running (or stopped) mirror for the other components: status, and offset
//! translation through the mirror's own, always consistent, offset maps.
//!
//! Translation is answered by the mirror's coordinator task from its in-memory maps, which
//! advance only after the target acknowledged a batch (acks=all). That is what makes a
//! translated consumer offset safe: it never points past data the target holds. When the
//! mirror is not running, the persisted maps are used (nothing writes them then).

use std::borrow::Cow;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::StatusHandle;
use crate::offset::{SourceOffset, TargetOffset, TopicPartition};
use crate::state::{Lookup, OffsetMap, StateError, StateStore};

/// Translates every `(partition, offset)` with `lookup`, finding each partition's map with
/// `map_of` (live or persisted); partitions without a map are not mirrored.
pub(crate) fn translate_all<'a, I, O>(
    items: Vec<(TopicPartition, I)>,
    mut map_of: impl FnMut(&TopicPartition) -> Result<Option<Cow<'a, OffsetMap>>, StateError>,
    lookup: impl Fn(&OffsetMap, I) -> Lookup<O>,
) -> Result<Vec<Translation<O>>, StateError> {
    let mut out = Vec::with_capacity(items.len());
    for (tp, offset) in items {
        out.push(match map_of(&tp)? {
            Some(map) => lookup(&map, offset).into(),
            None => Translation::NotMirrored,
        });
    }
    Ok(out)
}

/// A partition's persisted map.
pub(crate) fn stored_map<'a>(
    store: &StateStore,
    tp: &TopicPartition,
) -> Result<Option<Cow<'a, OffsetMap>>, StateError> {
    Ok(store.load_partition(tp)?.map(|(_, map)| Cow::Owned(map)))
}

/// Marks every stored partition of `topics` stopped with `reason` (`Some`) or active again
/// (`None`), except those `skip` names (the engine's running partitions, whose status it sets
/// when they stop); partitions stopped by an error are left alone. One compare-and-swap per
/// partition that changes: the partitions are not running, and a failback may be writing
/// their checkpoints.
pub(crate) fn set_held(
    store: &StateStore,
    topics: &[String],
    reason: Option<&str>,
    skip: impl Fn(&TopicPartition) -> bool,
) -> Result<(), StateError> {
    use crate::state::PartitionStatus;
    let status = match reason {
        Some(r) => PartitionStatus::Stopped {
            reason: r.to_string(),
        },
        None => PartitionStatus::Active,
    };
    // A set: a wave holds thousands of partitions of a thousand topics.
    let topics: std::collections::HashSet<&str> = topics.iter().map(String::as_str).collect();
    for (tp, cp) in store.partitions()? {
        if !topics.contains(tp.topic.as_str())
            || matches!(cp.status, PartitionStatus::Error { .. })
            || cp.status == status
            || skip(&tp)
        {
            continue;
        }
        store.set_status(&tp, status.clone())?;
    }
    Ok(())
}

/// A translated offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation<O> {
    /// The offset on the other side.
    Mapped(O),
    /// The offset lies beyond what has been mirrored so far: do not commit it yet.
    NotYetMirrored,
    /// strait does not mirror this partition.
    NotMirrored,
}

impl<O> From<Lookup<O>> for Translation<O> {
    fn from(l: Lookup<O>) -> Self {
        match l {
            Lookup::Mapped(o) => Translation::Mapped(o),
            Lookup::NotYetMirrored => Translation::NotYetMirrored,
        }
    }
}

/// A request to the coordinator.
pub(crate) enum Query {
    /// Source → target.
    Forward(
        Vec<(TopicPartition, SourceOffset)>,
        oneshot::Sender<Vec<Translation<TargetOffset>>>,
    ),
    /// Target → source.
    Reverse(
        Vec<(TopicPartition, TargetOffset)>,
        oneshot::Sender<Vec<Translation<SourceOffset>>>,
    ),
    /// Stop mirroring these topics (answered once no write of theirs is in flight).
    Hold {
        topics: Vec<String>,
        reason: String,
        reply: oneshot::Sender<Result<(), StateError>>,
    },
    /// Mirror these held topics again, from their checkpoints.
    Release {
        topics: Vec<String>,
        reply: oneshot::Sender<Result<(), StateError>>,
    },
}

/// Cheaply cloned handle on a mirror.
#[derive(Debug, Clone)]
pub struct MirrorHandle {
    pub(crate) status: StatusHandle,
    pub(crate) queries: mpsc::Sender<Query>,
    pub(crate) store: Arc<StateStore>,
    pub(crate) protect_principals: Arc<Vec<String>>,
}

impl MirrorHandle {
    /// Principals denied writes to mirror topics on the target (`[mirror]
    /// protect_principals`); a promotion lifts their ACLs with [`super::protect::unprotect`].
    pub fn protect_principals(&self) -> &[String] {
        &self.protect_principals
    }

    /// The mirror's status.
    pub fn status(&self) -> &StatusHandle {
        &self.status
    }

    /// Translates source offsets to target offsets (consumer semantics: the first mirrored
    /// record at or after each offset).
    pub async fn to_target(
        &self,
        items: Vec<(TopicPartition, SourceOffset)>,
    ) -> Result<Vec<Translation<TargetOffset>>, StateError> {
        self.ask(items, Query::Forward, OffsetMap::target_for).await
    }

    /// Translates target offsets back to source offsets (for rollback after promotion).
    pub async fn to_source(
        &self,
        items: Vec<(TopicPartition, TargetOffset)>,
    ) -> Result<Vec<Translation<SourceOffset>>, StateError> {
        self.ask(items, Query::Reverse, OffsetMap::source_for).await
    }

    /// Stops mirroring `topics` (a cutover promoted them): their partitions finish the write
    /// in flight, are recorded, and stop with `reason`, persisted so a restart keeps them
    /// stopped. Returns once nothing of theirs is in flight. Idempotent.
    ///
    /// While held, nothing in the mirror writes the partitions' maps: the caller (a failback)
    /// may record batches of its own in them through the store.
    pub async fn hold_topics(&self, topics: &[String], reason: &str) -> Result<(), StateError> {
        let (reply, rx) = oneshot::channel();
        let q = Query::Hold {
            topics: topics.to_vec(),
            reason: reason.to_string(),
            reply,
        };
        if self.queries.send(q).await.is_ok()
            && let Ok(answer) = rx.await
        {
            return answer;
        }
        // Not running: mark them in the store; the next start leaves them stopped.
        set_held(&self.store, topics, Some(reason), |_| false)
    }

    /// Mirrors held `topics` again: each partition resumes from its checkpoint after
    /// reconciling the target's tail. Idempotent.
    pub async fn release_topics(&self, topics: &[String]) -> Result<(), StateError> {
        let (reply, rx) = oneshot::channel();
        let q = Query::Release {
            topics: topics.to_vec(),
            reply,
        };
        if self.queries.send(q).await.is_ok()
            && let Ok(answer) = rx.await
        {
            return answer;
        }
        set_held(&self.store, topics, None, |_| false)
    }

    /// Asks the running mirror; when it is not running, its persisted maps are final and
    /// answer instead.
    async fn ask<I: Clone, O>(
        &self,
        items: Vec<(TopicPartition, I)>,
        query: impl FnOnce(Vec<(TopicPartition, I)>, oneshot::Sender<Vec<Translation<O>>>) -> Query,
        lookup: impl Fn(&OffsetMap, I) -> Lookup<O>,
    ) -> Result<Vec<Translation<O>>, StateError> {
        let (tx, rx) = oneshot::channel();
        if self.queries.send(query(items.clone(), tx)).await.is_ok()
            && let Ok(answer) = rx.await
        {
            return Ok(answer);
        }
        translate_all(items, |tp| stored_map(&self.store, tp), lookup)
    }
}
