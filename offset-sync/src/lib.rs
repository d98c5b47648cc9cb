//! Consumer-group offset translation and sync.
//!
//! ```text
//!  source: ListGroups ─► DescribeGroups ┐ both sides, ─► OffsetFetch's answers
//!                        OffsetFetch    ┘ all at once        │ committed source offsets
//!                                 │                          ▼
//!                    active on target? stop      mirror.to_target (the mirror's own maps)
//!                    (moved / split group)                   │ exact target offsets
//!                                                            ▼
//!  target: OffsetFetch (never move backwards) ─► OffsetCommit (metadata kept)
//! ```
//!
//! Translation is exact: a committed offset C means "the next record to read is the first one
//! at or after C", and the mirror's map returns the target offset of that very record. An
//! offset beyond what has been mirrored is not committed until the data is there. strait
//! writes only to groups with no live members on the target, and Kafka itself refuses a
//! non-member commit to an active group, so a consuming group's position is never overwritten.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use strait_linker::client::groups::CommittedOffset;
use strait_linker::client::{Error, KafkaClient};
use strait_linker::mirror::{MirrorHandle, Translation};
use strait_linker::offset::{SourceOffset, TargetOffset, TopicPartition};
use strait_linker::state::{Namespace, StateError, StateStore};
use tokio_util::sync::CancellationToken;

/// Groups synced at the same time within one pass.
const MAX_CONCURRENT_GROUPS: usize = 64;

/// Selects the groups to sync.
pub type GroupFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Where a group stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SyncState {
    /// Offsets are being translated and committed.
    Syncing,
    /// Live members on the target and none on the source: the group has moved; strait stopped.
    Moved,
    /// Live members on both clusters: its consumers read twice. strait stopped and alerts.
    Split,
    /// The last attempt failed; retried next interval.
    Error {
        /// What failed.
        message: String,
    },
}

/// A group's sync status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// State.
    #[serde(flatten)]
    pub state: SyncState,
    /// Group state on the source (`Empty`, `Stable`, ... or `Dead`).
    pub source_state: String,
    /// Group state on the target.
    pub target_state: String,
    /// Last committed source offsets seen, per `topic-partition`.
    pub last_source_commit: BTreeMap<String, i64>,
    /// Last target offsets strait committed, per `topic-partition`.
    pub last_target_commit: BTreeMap<String, i64>,
    /// Partitions whose source commit is beyond the mirrored data (waiting for the mirror).
    pub waiting_for_mirror: Vec<String>,
    /// Milliseconds from noticing a new source commit to committing its translation (last).
    pub translation_delay_ms: Option<u64>,
    /// When this status was computed (ms since the epoch).
    pub updated_ms: u64,
}

/// What a sync pass committed for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncOutcome {
    /// The group's state after the pass.
    pub state: SyncState,
    /// Target offsets committed in this pass, per partition.
    pub committed: BTreeMap<TopicPartition, TargetOffset>,
    /// Partitions left alone because their source offset is not mirrored yet.
    pub waiting: Vec<TopicPartition>,
}

/// Sync failed for a reason that is not about one group.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A cluster call failed.
    #[error("{side} cluster: {error}")]
    Cluster {
        /// `source` or `target`.
        side: &'static str,
        /// The error.
        error: Error,
    },
    /// The state store failed.
    #[error("state store: {0}")]
    State(#[from] StateError),
    /// A group's sync task ended without an answer (the runtime is shutting down).
    #[error("the sync of group {group} was interrupted")]
    Interrupted {
        /// The group.
        group: String,
    },
}

/// Persisted per group: whether strait stopped syncing it (moved / split survive restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GroupRecord {
    state: SyncState,
}

/// Shared, cheaply cloned view of all groups' status.
#[derive(Debug, Clone, Default)]
pub struct GroupStatusHandle(Arc<RwLock<BTreeMap<String, GroupStatus>>>);

impl GroupStatusHandle {
    /// A copy of every group's status.
    pub fn snapshot(&self) -> BTreeMap<String, GroupStatus> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, group: &str, status: GroupStatus) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(group.to_owned(), status);
    }
}

/// The group offset syncer.
#[derive(Clone)]
pub struct GroupSync {
    source: KafkaClient,
    target: KafkaClient,
    mirror: MirrorHandle,
    filter: GroupFilter,
    interval: Duration,
    records: Namespace<GroupRecord>,
    status: GroupStatusHandle,
    /// When a new source offset was first seen, per (group, partition, offset), for the
    /// translation delay.
    seen: Arc<RwLock<SeenCommits>>,
}

/// A group's committed source offsets, per (topic, partition).
type Offsets = BTreeMap<(String, i32), i64>;

/// A group's committed offsets as OffsetFetch answers them.
type Committed = BTreeMap<(String, i32), CommittedOffset>;

/// (group, partition) → (source offset, when it was first seen).
type SeenCommits = BTreeMap<(String, TopicPartition), (i64, Instant)>;

impl std::fmt::Debug for GroupSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupSync")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn key(tp: &TopicPartition) -> String {
    tp.to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl GroupSync {
    /// A syncer that translates through `mirror` and keeps its records in `store`.
    pub fn new(
        source: KafkaClient,
        target: KafkaClient,
        mirror: MirrorHandle,
        store: &StateStore,
        filter: GroupFilter,
        interval: Duration,
    ) -> Result<Self, StateError> {
        Ok(Self {
            source,
            target,
            mirror,
            filter,
            interval,
            records: store.namespace("groups")?,
            status: GroupStatusHandle::default(),
            seen: Arc::default(),
        })
    }

    /// The status of every group seen.
    pub fn status(&self) -> GroupStatusHandle {
        self.status.clone()
    }

    /// Syncs every selected source group until `cancel` fires, so that a new source commit
    /// is translated within one `interval`.
    ///
    /// Each interval is a full pass that syncs every selected group. Between full passes, a
    /// cheap check runs four times per interval: ListGroups, then one OffsetFetch per group on
    /// the source, and a group that is new or whose committed offsets changed is synced at
    /// once. A commit therefore waits about a quarter interval for its translation, not a
    /// whole one, while the costly part (describing the group on both clusters, reading and
    /// writing the target) runs only for groups that moved. Checks start at a fixed rate and
    /// groups are synced concurrently.
    ///
    /// Each group has at most one check or sync out. A check does not wait for other groups'
    /// syncs: with 50 groups committing at once a pass took up to 0.66 s, and a commit that
    /// landed during it waited for all of it before its own check began. A group still busy
    /// when a full pass comes owes that pass, and gets it at the first check after its task
    /// ends.
    ///
    /// Cancel-safety: after `cancel` no new check starts, and the checks and syncs out are
    /// waited for, so a target commit is never cut off half sent.
    pub async fn run(&self, cancel: CancellationToken) {
        let detect = (self.interval / 4).max(Duration::from_millis(50));
        let mut ticks = tokio::time::interval(detect);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_GROUPS));
        let mut last_full: Option<Instant> = None;
        let last_seen: Arc<tokio::sync::Mutex<BTreeMap<String, Offsets>>> = Arc::default();
        let mut out = tokio::task::JoinSet::new();
        // The groups with a task out, and each task's group (a task that panicked still
        // frees its group).
        let mut busy: BTreeSet<String> = BTreeSet::new();
        let mut busy_ids: BTreeMap<tokio::task::Id, String> = BTreeMap::new();
        let mut owed_full: BTreeSet<String> = BTreeSet::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(done) = out.join_next_with_id(), if !out.is_empty() => {
                    let id = match &done {
                        Ok((id, ())) => *id,
                        Err(e) => e.id(),
                    };
                    if let Some(g) = busy_ids.remove(&id) {
                        if let Err(e) = done {
                            tracing::error!(group = %g, error = %e, "group sync task failed");
                        }
                        busy.remove(&g);
                    }
                    continue;
                }
                _ = ticks.tick() => {}
            }
            let full = last_full.is_none_or(|t| t.elapsed() >= self.interval);
            if full {
                last_full = Some(Instant::now());
            }
            // Listing is one request per broker: done every check, so a new group's first
            // commit is found as fast as a known group's next one.
            let groups: Vec<String> = match self.source.list_groups().await {
                Ok(listed) => listed
                    .into_iter()
                    .filter(|g| {
                        (self.filter)(&g.group_id)
                            && (g.protocol_type.is_empty() || g.protocol_type == "consumer")
                    })
                    .map(|g| g.group_id)
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list source groups");
                    continue;
                }
            };
            // A group gone from the source owes nothing.
            owed_full.retain(|g| groups.contains(g));
            for g in groups {
                if busy.contains(&g) {
                    if full {
                        owed_full.insert(g);
                    }
                    continue;
                }
                let full = owed_full.remove(&g) || full;
                let (this, limit, seen) =
                    (self.clone(), Arc::clone(&limit), Arc::clone(&last_seen));
                let task = out.spawn({
                    let g = g.clone();
                    async move { this.check_and_sync(g, full, &limit, &seen).await }
                });
                busy_ids.insert(task.id(), g.clone());
                busy.insert(g);
            }
        }
        while out.join_next().await.is_some() {}
    }

    /// One group's turn in [`run`](Self::run): the cheap check, then a sync if the group's
    /// source offsets moved since its last complete sync or `full` asks for one.
    async fn check_and_sync(
        &self,
        g: String,
        full: bool,
        limit: &tokio::sync::Semaphore,
        seen: &tokio::sync::Mutex<BTreeMap<String, Offsets>>,
    ) {
        let Ok(_permit) = limit.acquire().await else {
            return; // never closed
        };
        let committed = self.source.offset_fetch(&g, None).await.ok();
        let now = committed.as_ref().map(|o| {
            o.iter()
                .map(|(k, c)| (k.clone(), c.offset))
                .collect::<Offsets>()
        });
        let changed = match &now {
            Some(o) => seen.lock().await.get(&g) != Some(o),
            None => true,
        };
        if !(full || changed) {
            return;
        }
        // The sync translates exactly the offsets just compared, so `seen` records what
        // was synced.
        match self.sync_group_from(&g, false, committed.as_ref()).await {
            Ok(outcome) if outcome.waiting.is_empty() => {
                if let Some(o) = now {
                    seen.lock().await.insert(g, o);
                }
            }
            // Waiting for the mirror: keep checking at the fast rate.
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(group = %g, error = %e, "group sync failed");
            }
        }
    }

    /// A forced, synchronous sync of named groups (the cutover's final barrier): returns what
    /// was committed per partition. `allow_backwards` lets an explicit request (cutover,
    /// rollback) move a target offset backwards; the periodic sync never does.
    ///
    /// The groups are synced together, up to [`MAX_CONCURRENT_GROUPS`] at a time: the drain
    /// runs this inside the cutover's write pause, where one group after the other cost a
    /// few round trips each (50 groups: 1.25 s). Every group is attempted; on failures the
    /// error of the first failed group in `groups` order is returned.
    pub async fn sync_now(
        &self,
        groups: &[String],
        allow_backwards: bool,
    ) -> Result<BTreeMap<String, SyncOutcome>, SyncError> {
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_GROUPS));
        let mut pass = tokio::task::JoinSet::new();
        for g in groups.iter().cloned() {
            let (this, limit) = (self.clone(), Arc::clone(&limit));
            pass.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let r = this.sync_group(&g, allow_backwards).await;
                (g, r)
            });
        }
        let mut out = BTreeMap::new();
        let mut failed = BTreeMap::new();
        while let Some(joined) = pass.join_next().await {
            let (g, r) = match joined {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => continue, // cancelled: counted as interrupted below
            };
            match r {
                Ok(outcome) => {
                    out.insert(g, outcome);
                }
                Err(e) => {
                    failed.insert(g, e);
                }
            }
        }
        // A group with no answer never passes the barrier unnoticed.
        for g in groups {
            if !out.contains_key(g) && !failed.contains_key(g) {
                failed.insert(g.clone(), SyncError::Interrupted { group: g.clone() });
            }
        }
        if let Some(g) = groups.iter().find(|g| failed.contains_key(*g)) {
            return Err(failed.remove(g).expect("found above"));
        }
        Ok(out)
    }

    /// Stops syncing `group` because a cutover promoted it: its consumers now commit on the
    /// target, and the periodic sync must never overwrite those commits. Persisted; undone by
    /// [`GroupSync::reset_group`].
    pub fn mark_moved(&self, group: &str) -> Result<(), StateError> {
        self.records.put(
            group,
            &GroupRecord {
                state: SyncState::Moved,
            },
        )
    }

    /// Lets strait sync a group it had stopped (moved or split), e.g. after a rollback.
    pub fn reset_group(&self, group: &str) -> Result<(), StateError> {
        self.records.remove(group).map(|_| ())
    }

    /// One sync pass for one group.
    pub async fn sync_group(
        &self,
        group: &str,
        allow_backwards: bool,
    ) -> Result<SyncOutcome, SyncError> {
        self.sync_group_from(group, allow_backwards, None).await
    }

    /// [`sync_group`](Self::sync_group), from the group's committed source offsets when the
    /// caller has just read them (the periodic check), so they are not read twice.
    async fn sync_group_from(
        &self,
        group: &str,
        allow_backwards: bool,
        source_committed: Option<&Committed>,
    ) -> Result<SyncOutcome, SyncError> {
        let src = |error| SyncError::Cluster {
            side: "source",
            error,
        };
        let tgt = |error| SyncError::Cluster {
            side: "target",
            error,
        };
        let stopped = self.records.get(group)?.map(|r| r.state);
        // Both clusters are asked at once: the delay of a sync is one round trip per step,
        // not two.
        let describe = || async {
            tokio::join!(
                self.source
                    .retrying("describe group", || self.source.describe_group(group)),
                self.target
                    .retrying("describe group", || self.target.describe_group(group)),
            )
        };
        let read_offsets = || async {
            let source = async {
                match source_committed {
                    Some(read) => Ok(read.clone()),
                    None => {
                        self.source
                            .retrying("offset fetch", || self.source.offset_fetch(group, None))
                            .await
                    }
                }
            };
            tokio::join!(
                source,
                self.target
                    .retrying("offset fetch", || self.target.offset_fetch(group, None)),
            )
        };
        // A group strait has not stopped has its offsets read beside the describes (the
        // source's only if the periodic check did not just read them): one round trip less
        // per sync (a step took p50 33 ms on two loaded brokers). Only reads
        // go early; the commit still waits for the describes that allow it. A stopped group
        // is only described: its offsets would be thrown away.
        let ((s_desc, t_desc), offsets) =
            if matches!(stopped, Some(SyncState::Moved | SyncState::Split)) {
                (describe().await, None)
            } else {
                let (d, o) = tokio::join!(describe(), read_offsets());
                (d, Some(o))
            };
        let (s_desc, t_desc) = (s_desc.map_err(src)?, t_desc.map_err(tgt)?);
        let mut status = GroupStatus {
            state: SyncState::Syncing,
            source_state: s_desc.state.clone(),
            target_state: t_desc.state.clone(),
            last_source_commit: BTreeMap::new(),
            last_target_commit: BTreeMap::new(),
            waiting_for_mirror: Vec::new(),
            translation_delay_ms: self
                .status
                .snapshot()
                .get(group)
                .and_then(|s| s.translation_delay_ms),
            updated_ms: now_ms(),
        };
        let outcome = |state: SyncState| SyncOutcome {
            state,
            committed: BTreeMap::new(),
            waiting: Vec::new(),
        };

        if let Some((state, observed)) =
            stopped_state(s_desc.is_active(), t_desc.is_active(), stopped.as_ref())
        {
            if state == SyncState::Split {
                tracing::error!(
                    group,
                    source_members = s_desc.members.len(),
                    target_members = t_desc.members.len(),
                    "SPLIT GROUP: live consumers on both clusters read the same data twice; strait stopped syncing it"
                );
            } else if observed && stopped != Some(SyncState::Moved) {
                tracing::info!(
                    group,
                    "group is live on the target and idle on the source: it has moved; strait stopped syncing it"
                );
            }
            // Only what this pass observed is written. A state carried over from the record
            // read before the describes may have been reset meanwhile (a rollback's
            // `reset_group`); writing it back would undo the reset and stop the group's sync
            // for good.
            if observed {
                self.records.put(
                    group,
                    &GroupRecord {
                        state: state.clone(),
                    },
                )?;
            }
            status.state = state.clone();
            self.status.set(group, status);
            return Ok(outcome(state));
        }

        let (committed, current) = match offsets {
            Some(read) => read,
            None => read_offsets().await,
        };
        let (committed, current) = (committed.map_err(src)?, current.map_err(tgt)?);
        let items: Vec<(TopicPartition, SourceOffset)> = committed
            .iter()
            .map(|((t, p), c)| (TopicPartition::new(t, *p), SourceOffset(c.offset)))
            .collect();
        let translated = self.mirror.to_target(items.clone()).await?;

        let mut to_commit = BTreeMap::new();
        let mut result = outcome(SyncState::Syncing);
        let now = Instant::now();
        for ((tp, s), t) in items.into_iter().zip(translated) {
            let k = (tp.topic.clone(), tp.partition);
            let meta = committed[&k].metadata.clone();
            status.last_source_commit.insert(key(&tp), s.0);
            {
                let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
                let e = seen
                    .entry((group.to_owned(), tp.clone()))
                    .or_insert((s.0, now));
                if e.0 != s.0 {
                    *e = (s.0, now);
                }
            }
            let target = match t {
                Translation::Mapped(t) => t,
                Translation::NotYetMirrored => {
                    status.waiting_for_mirror.push(key(&tp));
                    result.waiting.push(tp);
                    continue;
                }
                Translation::NotMirrored => continue,
            };
            if let Some(cur) = current.get(&k) {
                status.last_target_commit.insert(key(&tp), cur.offset);
                if cur.offset == target.0 && cur.metadata == meta {
                    continue;
                }
                if cur.offset > target.0 && !allow_backwards {
                    continue; // never move a target group backwards on our own
                }
            }
            to_commit.insert(
                k,
                CommittedOffset {
                    offset: target.0,
                    leader_epoch: -1,
                    metadata: meta,
                },
            );
            result.committed.insert(tp, target);
        }
        if !to_commit.is_empty() {
            match self
                .target
                .retrying("offset commit", || {
                    self.target.offset_commit(group, &to_commit)
                })
                .await
            {
                Ok(()) => {}
                // The group gained members between describe and commit: Kafka refused.
                Err(e) if matches!(e.code(), Some(22 | 25 | 27)) => {
                    self.records.put(
                        group,
                        &GroupRecord {
                            state: SyncState::Moved,
                        },
                    )?;
                    status.state = SyncState::Moved;
                    self.status.set(group, status);
                    return Ok(outcome(SyncState::Moved));
                }
                Err(e) => {
                    status.state = SyncState::Error {
                        message: e.to_string(),
                    };
                    self.status.set(group, status);
                    return Err(tgt(e));
                }
            }
            let seen = self.seen.read().unwrap_or_else(|e| e.into_inner());
            let delay = result
                .committed
                .keys()
                .filter_map(|tp| seen.get(&(group.to_owned(), tp.clone())))
                .map(|(_, at)| at.elapsed().as_millis() as u64)
                .max();
            status.translation_delay_ms = delay.or(status.translation_delay_ms);
            for (tp, t) in &result.committed {
                status.last_target_commit.insert(key(tp), t.0);
            }
        }
        self.status.set(group, status);
        Ok(result)
    }
}

/// Whether a sync pass must leave the group alone, and as what: `Some((state, observed))`
/// when its consumers are live on the target (`observed`: seen in this pass, so the state is
/// to be recorded) or when a cutover or an earlier pass stopped it (`stopped`, carried over,
/// not recorded again); `None` to sync it.
fn stopped_state(
    source_active: bool,
    target_active: bool,
    stopped: Option<&SyncState>,
) -> Option<(SyncState, bool)> {
    match (source_active, target_active, stopped) {
        (true, true, _) => Some((SyncState::Split, true)),
        (false, true, _) => Some((SyncState::Moved, true)),
        (_, false, Some(s @ (SyncState::Moved | SyncState::Split))) => Some((s.clone(), false)),
        (_, false, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{SyncState, stopped_state};

    #[test]
    fn only_an_observed_move_or_split_is_recorded() {
        let moved = SyncState::Moved;
        // Live on the target: recorded as seen now.
        assert_eq!(
            stopped_state(true, true, None),
            Some((SyncState::Split, true))
        );
        assert_eq!(
            stopped_state(false, true, None),
            Some((SyncState::Moved, true))
        );
        assert_eq!(
            stopped_state(false, true, Some(&SyncState::Split)),
            Some((SyncState::Moved, true))
        );
        // Stopped by a cutover, idle everywhere: left alone, but the record read before the
        // describes is not written back (a rollback may have reset it meanwhile).
        assert_eq!(
            stopped_state(false, false, Some(&moved)),
            Some((SyncState::Moved, false))
        );
        assert_eq!(
            stopped_state(true, false, Some(&SyncState::Split)),
            Some((SyncState::Split, false))
        );
        // Otherwise it is synced.
        assert_eq!(stopped_state(true, false, None), None);
        assert_eq!(
            stopped_state(
                false,
                false,
                Some(&SyncState::Error {
                    message: "x".into()
                })
            ),
            None
        );
    }
}
