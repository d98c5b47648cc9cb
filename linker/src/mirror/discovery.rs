//! Discovery and partition set-up for the mirror's coordinator: which source topics are
//! selected, making sure their target topics exist, are ours and are large enough, and where
//! each new partition starts on both sides. Split from [`super::engine`], which runs the
//! data path.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::engine::{Engine, MirrorError, Slot};
use super::partition::PartitionRun;
use super::status::{PartitionState, PartitionView, TopicProblem};
use super::{Start, topics};
use crate::client::data::{Isolation, LogBounds, OffsetSpec, PartitionResults};
use crate::client::{Error, KafkaClient, Retry, TopicMetadata};
use crate::offset::{SourceOffset, TargetOffset, TopicPartition};
use crate::state::{OffsetMap, PartitionCheckpoint, PartitionStatus, StateError};

/// Both clusters' topics, as one discovery read them.
#[derive(Debug)]
pub(super) struct Listings {
    source: Result<Vec<TopicMetadata>, Error>,
    target: Result<Vec<TopicMetadata>, Error>,
}

impl Listings {
    /// Both listings at once: at 1,000 topics each takes tens of milliseconds.
    ///
    /// Cancel-safe: it only reads.
    async fn read(source: &KafkaClient, target: &KafkaClient) -> Self {
        let (source, target) = tokio::join!(source.list_topics(), target.list_topics());
        Self { source, target }
    }
}

impl Engine {
    // ---------------------------------------------------------------- discovery

    /// One whole discovery, listings included: the coordinator's first, before it moves any
    /// data. Later ones list in the background ([`Self::start_listing`]).
    pub(super) async fn discover(&mut self) -> Result<(), MirrorError> {
        let listings = Listings::read(&self.source, &self.target).await;
        self.apply_listings(listings).await
    }

    /// Lists both clusters' topics in a task of its own, for [`Self::apply_listings`]. The
    /// listings touch no engine state, and at 1,000 topics they took 100-360 ms under load,
    /// during which the coordinator answered no hold and moved no data.
    pub(super) fn start_listing(&self) -> tokio::task::JoinHandle<Listings> {
        let (source, target) = (self.source.clone(), self.target.clone());
        tokio::spawn(async move { Listings::read(&source, &target).await })
    }

    /// The rest of a discovery, on the coordinator: everything that reads or changes its
    /// partitions and the state store. The listings may be a moment old; everything else is
    /// read now, so a hold or release answered since they were taken is respected.
    pub(super) async fn apply_listings(&mut self, listings: Listings) -> Result<(), MirrorError> {
        self.setup_deferred = 0;
        self.setup_deferred_first = None;
        let selected: Vec<TopicMetadata> = listings
            .source
            .map_err(MirrorError::Source)?
            .into_iter()
            .filter(|t| !t.internal && (self.settings.filter)(&t.name))
            .collect();
        let target_topics: BTreeMap<String, TopicMetadata> = listings
            .target
            .map_err(MirrorError::Target)?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        let known: BTreeMap<TopicPartition, PartitionCheckpoint> =
            self.store.partitions()?.into_iter().collect();
        let mut problems = Vec::new();
        let mut live = BTreeSet::new();
        let mut ready = Vec::new();
        let mut missing = Vec::new();
        for src in &selected {
            live.insert(src.name.clone());
            match self
                .check_target(src, target_topics.get(&src.name), &known)
                .await
            {
                Ok(TargetTopic::Ready) => ready.push(src),
                Ok(TargetTopic::Missing) => missing.push(src),
                Err(message) => problems.push(TopicProblem {
                    topic: src.name.clone(),
                    message,
                }),
            }
        }
        for (src, r) in missing.iter().zip(self.create_targets(&missing).await) {
            match r {
                Ok(()) => ready.push(src),
                Err(message) => problems.push(TopicProblem {
                    topic: src.name.clone(),
                    message,
                }),
            }
        }
        // Every new partition of every topic read at once: a migration of many small
        // topics would otherwise pay two round trips per topic before its first record.
        let new: Vec<(String, i32)> = ready
            .iter()
            .flat_map(|src| {
                src.partitions
                    .iter()
                    .map(|p| TopicPartition::new(&src.name, p.index))
            })
            .filter(|tp| !self.slots.contains_key(tp) && !known.contains_key(tp))
            .map(|tp| (tp.topic, tp.partition))
            .collect();
        let early = self.prefetch(&new).await;
        let mut fresh = false;
        for src in ready {
            for p in &src.partitions {
                let tp = TopicPartition::new(&src.name, p.index);
                if !self.slots.contains_key(&tp) {
                    let checkpoint = known.get(&tp);
                    fresh |= checkpoint.is_none();
                    self.init_partition(tp, src, checkpoint, &early).await?;
                }
            }
        }
        if fresh {
            // A new partition's first checkpoint says where its map starts on the target. It
            // must be on disk before the first write (none happens until discovery returns):
            // without it, a restart would take the target's end, past what this run wrote, for
            // the start and write those records a second time. Later checkpoints may lag (the
            // target's tail is matched on restart); the first one may not.
            self.store.flush_async().await?;
        }
        // Partitions of topics that vanished from the source stop; their target stays.
        let gone: Vec<TopicPartition> = self
            .slots
            .keys()
            .filter(|tp| !live.contains(&tp.topic))
            .cloned()
            .collect();
        for tp in gone {
            self.stop(
                &tp,
                PartitionState::Stopped {
                    reason: "source topic deleted; target topic kept".into(),
                },
            )?;
        }
        let config_sync_due = self.last_config_sync.elapsed() >= self.settings.config_sync;
        self.protect_topics(&live, config_sync_due, &mut problems)
            .await;
        self.status.update(|s| s.topic_problems = problems);
        if config_sync_due {
            self.last_config_sync = Instant::now();
            self.start_config_sync(live);
        }
        if let Some(first) = &self.setup_deferred_first {
            // One line per discovery, not one per partition of a 1,000-partition topic.
            tracing::warn!(partitions = self.setup_deferred, %first, "partitions not set up yet; retrying at the next discovery, which comes sooner while any wait");
        }
        Ok(())
    }

    /// A partition could not be set up this discovery (its leader not serving yet, say): it
    /// is tried again at the next one, which comes sooner ([`Engine::next_discovery_in`]).
    fn defer_setup(&mut self, tp: &TopicPartition, what: &str, e: &dyn std::fmt::Display) {
        tracing::debug!(partition = %tp, error = %e, "{what}; retrying at next discovery");
        self.setup_deferred += 1;
        if self.setup_deferred_first.is_none() {
            self.setup_deferred_first = Some(format!("{tp}: {what}: {e}"));
        }
    }

    /// Re-syncs the target topics' copied configs in a task of its own
    /// ([`topics::sync_configs`]): it touches no engine state, and run here it stood the data
    /// path still for as long as it took (0.3-0.9 s at 1,000 topics). Skipped while the
    /// previous one still runs.
    fn start_config_sync(&mut self, live: BTreeSet<String>) {
        if self
            .config_sync_task
            .as_ref()
            .is_some_and(|t| !t.is_finished())
        {
            return;
        }
        let (source, target) = (self.source.clone(), self.target.clone());
        let live: Vec<String> = live.into_iter().collect();
        self.config_sync_task = Some(tokio::spawn(async move {
            for (t, r) in topics::sync_configs(&source, &target, &live).await {
                match r {
                    Ok(changed) => {
                        tracing::info!(topic = %t, ?changed, "target topic configs re-synced");
                    }
                    Err(err) => tracing::warn!(topic = %t, error = %err, "config sync failed"),
                }
            }
        }));
    }

    /// Protects mirrored topics that are not held (promoted) with DENY WRITE ACLs on the
    /// target: new ones at once, all of them again when `renew` (an ACL removed by hand, or by
    /// a failback's target fence, comes back). Held topics are left to the cutover, which
    /// lifts their protection when it promotes them.
    async fn protect_topics(
        &mut self,
        live: &BTreeSet<String>,
        renew: bool,
        problems: &mut Vec<TopicProblem>,
    ) {
        if self.settings.protect_principals.is_empty() {
            return;
        }
        let mut due = Vec::new();
        for t in live {
            let mut partitions = self
                .slots
                .range(TopicPartition::new(t, i32::MIN)..)
                .take_while(|(tp, _)| &tp.topic == t);
            let held = partitions.clone().any(|(_, s)| s.hold.is_some());
            if held || partitions.next().is_none() {
                self.protected.remove(t);
                continue;
            }
            if self.protected.contains(t) && !renew {
                continue;
            }
            due.push(t.clone());
        }
        if due.is_empty() {
            return;
        }
        let principals = &self.settings.protect_principals;
        // All in one request; the broker answers each ACL, so a refused topic is told apart
        // from the others without a request of its own.
        let outcomes: Vec<(String, Result<(), String>)> =
            match super::protect::protect(&self.target, &due, principals).await {
                Ok(each) => due
                    .into_iter()
                    .zip(each)
                    .map(|(t, r)| (t, r.map_err(|e| e.to_string())))
                    .collect(),
                Err(e) => {
                    let e = e.to_string();
                    due.into_iter().map(|t| (t, Err(e.clone()))).collect()
                }
            };
        for (t, r) in outcomes {
            match r {
                Ok(()) => {
                    if self.protected.insert(t.clone()) {
                        tracing::info!(topic = %t, ?principals, "mirror topic protected on the target (DENY WRITE)");
                    }
                }
                Err(e) => problems.push(TopicProblem {
                    topic: t,
                    message: format!("cannot protect the target topic with DENY WRITE ACLs: {e}"),
                }),
            }
        }
    }

    /// Checks that the target topic of `src`, if it exists, is ours and has enough partitions
    /// (growing it when the source grew); a missing one is left to [`Self::create_targets`].
    async fn check_target(
        &self,
        src: &TopicMetadata,
        existing: Option<&TopicMetadata>,
        known: &BTreeMap<TopicPartition, PartitionCheckpoint>,
    ) -> Result<TargetTopic, String> {
        // The topic's first partition on record, found by range (a scan of every partition
        // per topic cost 20 ms per discovery at 5,000 partitions).
        let first = known
            .range(TopicPartition::new(&src.name, i32::MIN)..)
            .next()
            .filter(|(tp, _)| tp.topic == src.name)
            .map(|(_, cp)| cp);
        let ours = first.is_some();
        if let Some(cp) = first
            && let Some(id) = &cp.topic_id
            && *id != src.id.to_string()
        {
            return Err(format!(
                "source topic {} was deleted and re-created (new topic id); its mirror is stopped",
                src.name
            ));
        }
        let Some(target) = existing else {
            return Ok(TargetTopic::Missing);
        };
        if !ours {
            match topics::is_empty(&self.target, target).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    return Err(format!(
                        "target topic {} already exists with data strait did not write: {why}",
                        src.name
                    ));
                }
                Err(e) => return Err(format!("cannot inspect target topic: {e}")),
            }
        }
        if target.partitions.len() < src.partitions.len() {
            self.target
                .create_partitions(
                    &src.name,
                    src.partitions.len() as i32,
                    Duration::from_secs(30),
                )
                .await
                .map_err(|e| {
                    format!(
                        "source grew to {} partitions but the target cannot follow: {e}",
                        src.partitions.len()
                    )
                })?;
            tracing::info!(topic = %src.name, partitions = src.partitions.len(), "grew target topic");
            let want = BTreeMap::from([(src.name.clone(), src.partitions.len())]);
            let mut waited = self.wait_for_targets(want).await;
            return waited
                .remove(&src.name)
                .unwrap_or(Ok(()))
                .map(|()| TargetTopic::Ready);
        }
        Ok(TargetTopic::Ready)
    }

    /// Creates the target topics of `missing` together ([`topics::create_targets`]) and waits
    /// until their partitions have leaders; one outcome per topic, in `missing`'s order.
    async fn create_targets(&self, missing: &[&TopicMetadata]) -> Vec<Result<(), String>> {
        if missing.is_empty() {
            return Vec::new();
        }
        let mut created = topics::create_targets(&self.source, &self.target, missing).await;
        let mut want = BTreeMap::new();
        for src in missing {
            if let Some(Ok(())) = created.get(&src.name) {
                tracing::info!(topic = %src.name, partitions = src.partitions.len(), "created target topic");
                want.insert(src.name.clone(), src.partitions.len());
            }
        }
        let mut waited = self.wait_for_targets(want).await;
        missing
            .iter()
            .map(|src| match created.remove(&src.name) {
                Some(Ok(())) => waited.remove(&src.name).unwrap_or(Ok(())),
                Some(Err(e)) => Err(format!("cannot create target topic: {e}")),
                None => Err("cannot create target topic: no answer from the target".to_owned()),
            })
            .collect()
    }

    /// Waits until each topic of `want` has at least its number of partitions on the target,
    /// all with leaders, polling their metadata together every 100 ms for up to 30 s.
    async fn wait_for_targets(
        &self,
        mut want: BTreeMap<String, usize>,
    ) -> BTreeMap<String, Result<(), String>> {
        let mut out = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !want.is_empty() {
            let names: Vec<String> = want.keys().cloned().collect();
            if let Ok(found) = self.target.refresh_metadata(Some(&names)).await {
                for t in found {
                    if want.get(&t.name).is_some_and(|n| {
                        t.partitions.len() >= *n && t.partitions.iter().all(|p| p.leader >= 0)
                    }) {
                        want.remove(&t.name);
                        out.insert(t.name, Ok(()));
                    }
                }
            }
            if want.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                for (topic, partitions) in std::mem::take(&mut want) {
                    let message = format!(
                        "target topic {topic} did not get {partitions} partitions with leaders in 30 s"
                    );
                    out.insert(topic, Err(message));
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        out
    }

    /// Reads where each of `keys` (new partitions of one topic) starts on the source and
    /// what its target holds, for all of them at once: one ListOffsets per source leader and
    /// one bounds read per target leader, where a round trip per partition made a
    /// 1,000-partition start take seconds. A partition whose answer stays an error is set up
    /// at the next discovery.
    async fn prefetch(&self, keys: &[(String, i32)]) -> Prefetched {
        let mut early = Prefetched::default();
        if keys.is_empty() {
            return early;
        }
        // A topic created a moment ago refuses reads for a moment (its leaders are in the
        // metadata before they serve): those partitions are read again, together.
        let starts = brief_retry_all(keys, |k| async move { self.start_offsets(&k).await });
        early.starts = starts.await;
        let bounds = brief_retry_all(keys, |k| async move { self.target.log_bounds(&k).await });
        early.bounds = bounds.await;
        early
    }

    pub(super) async fn init_partition(
        &mut self,
        tp: TopicPartition,
        src: &TopicMetadata,
        checkpoint: Option<&PartitionCheckpoint>,
        early: &Prefetched,
    ) -> Result<(), MirrorError> {
        let mut view = PartitionView::new();
        self.status.update(|s| {
            if let Some(earlier) = s.partitions.get(&tp) {
                view.carry_counters(earlier);
            }
        });
        let (map, awaiting_tail) = match checkpoint {
            Some(cp) => {
                match &cp.status {
                    PartitionStatus::Active => {}
                    PartitionStatus::Stopped { reason } => {
                        view.state = PartitionState::Stopped {
                            reason: reason.clone(),
                        }
                    }
                    PartitionStatus::Error { message } => {
                        view.state = PartitionState::Error {
                            message: message.clone(),
                        }
                    }
                }
                if !view.state.is_running() {
                    view.next_source = cp.next_source.0;
                    view.next_target = cp.next_target.0;
                    self.status.update(|s| {
                        s.partitions.insert(tp.clone(), view);
                    });
                    return Ok(());
                }
                let (_, map) = self
                    .store
                    .load_partition(&tp)?
                    .ok_or_else(|| StateError::UnknownPartition { tp: tp.clone() })?;
                // An alignment interrupted by a crash (align.rs): finish it before mirroring.
                if map.entries().is_empty()
                    && map.next_target().0 > 0
                    && map.next_target().0 <= map.next_source().0
                    && let Err(e) = self.fill_and_delete(&tp, map.next_target().0).await
                {
                    self.defer_setup(&tp, "finishing the target offset alignment failed", &e);
                    return Ok(());
                }
                (map, true)
            }
            None => {
                let start = match answer(&early.starts, &tp) {
                    Ok(s) => s,
                    Err(e) => {
                        self.defer_setup(&tp, "cannot read the source start offset", &e);
                        return Ok(());
                    }
                };
                let bounds = match answer(&early.bounds, &tp) {
                    Ok(b) => b,
                    Err(e) => {
                        self.defer_setup(&tp, "cannot read the target end offset", &e);
                        return Ok(());
                    }
                };
                if bounds.end > bounds.start {
                    // The topic is strait's (created by it, found empty, or with other
                    // partitions on record), yet this partition holds records strait has no
                    // record of: its state was lost, or someone else wrote there. Mirroring
                    // after them would hide them behind the map; stop instead.
                    let message = format!(
                        "target partition holds offsets {}..{} that strait has no record of (state lost, or another producer wrote to it); not mirrored",
                        bounds.start, bounds.end
                    );
                    tracing::error!(topic = %tp.topic, partition = tp.partition, "{message}");
                    let cp = PartitionCheckpoint {
                        topic_id: Some(src.id.to_string()),
                        next_source: SourceOffset(start),
                        next_target: TargetOffset(bounds.end),
                        status: PartitionStatus::Error {
                            message: message.clone(),
                        },
                        producer: None,
                    };
                    self.store.record_batch_written(&tp, None, &cp)?;
                    view.state = PartitionState::Error { message };
                    view.next_source = start;
                    view.next_target = bounds.end;
                    self.status.update(|s| {
                        s.partitions.insert(tp.clone(), view);
                    });
                    return Ok(());
                }
                let target_end = bounds.end;
                // An empty target whose source starts above 0: align the offsets (align.rs).
                let mut target_start = target_end;
                if target_end == 0
                    && start > 0
                    && start <= super::align::MAX_ALIGN_OFFSETS
                    && self.target_deletes(&tp).await
                {
                    let base = match self.first_batch_base(&tp, start).await {
                        Ok(b) => b,
                        Err(e) => {
                            self.defer_setup(&tp, "cannot read the source's first batch", &e);
                            return Ok(());
                        }
                    };
                    // Persisted before the first filler record: a crash resumes the alignment.
                    let cp = PartitionCheckpoint {
                        topic_id: Some(src.id.to_string()),
                        next_source: SourceOffset(start),
                        next_target: TargetOffset(base),
                        status: PartitionStatus::Active,
                        producer: None,
                    };
                    self.store.record_batch_written(&tp, None, &cp)?;
                    self.store.flush_async().await?;
                    if let Err(e) = self.fill_and_delete(&tp, base).await {
                        self.defer_setup(&tp, "aligning target offsets failed", &e);
                        return Ok(());
                    }
                    target_start = base;
                }
                let map = OffsetMap::new(SourceOffset(start), TargetOffset(target_start));
                let cp = PartitionCheckpoint {
                    topic_id: Some(src.id.to_string()),
                    next_source: map.next_source(),
                    next_target: map.next_target(),
                    status: PartitionStatus::Active,
                    producer: None,
                };
                self.store.record_batch_written(&tp, None, &cp)?;
                tracing::info!(topic = %tp.topic, partition = tp.partition, start, target_end, "mirroring partition");
                (map, false)
            }
        };
        view.next_source = map.next_source().0;
        view.next_target = map.next_target().0;
        let topic_id = checkpoint
            .and_then(|cp| cp.topic_id.clone())
            .or_else(|| Some(src.id.to_string()));
        let mut run = PartitionRun::new(
            tp.clone(),
            map,
            self.settings.partition_fetch_max_bytes,
            self.idempotent,
        );
        if awaiting_tail {
            run.resume_from(checkpoint.and_then(|cp| cp.producer));
        }
        self.slots.insert(
            tp.clone(),
            Slot {
                run,
                view,
                topic_id,
                awaiting_tail,
                retry_at: None,
                hold: None,
                last_ack: std::time::Instant::now(),
            },
        );
        if awaiting_tail {
            self.spawn_tail(&tp);
        }
        self.publish(&tp);
        Ok(())
    }

    /// Where each of `keys` starts per `[mirror] start`, one ListOffsets per source leader;
    /// a timestamp after every record of a partition starts it at its end.
    async fn start_offsets(&self, keys: &[(String, i32)]) -> PartitionResults<i64> {
        let mut out = PartitionResults::new();
        let mut none_found = Vec::new();
        for (key, r) in self
            .source
            .list_offsets(keys, self.start_spec(), Isolation::ReadCommitted)
            .await
        {
            match r {
                Ok(found) if found.offset >= 0 => {
                    out.insert(key, Ok(found.offset));
                }
                Ok(_) => none_found.push(key),
                Err(e) => {
                    out.insert(key, Err(e));
                }
            }
        }
        if !none_found.is_empty() {
            for (key, r) in self
                .source
                .list_offsets(&none_found, OffsetSpec::Latest, Isolation::ReadCommitted)
                .await
            {
                out.insert(key, r.map(|latest| latest.offset));
            }
        }
        out
    }

    /// What `[mirror] start` asks ListOffsets for.
    fn start_spec(&self) -> OffsetSpec {
        match self.settings.start {
            Start::Earliest => OffsetSpec::Earliest,
            Start::Latest => OffsetSpec::Latest,
            Start::Timestamp(t) => OffsetSpec::Timestamp(t),
        }
    }

    /// Where the target partition's log starts and ends ([`KafkaClient::log_bounds`]: correct
    /// on targets whose ListOffsets latest is not).
    pub(super) async fn target_bounds(&self, tp: &TopicPartition) -> Result<LogBounds, Error> {
        let key = (tp.topic.clone(), tp.partition);
        let mut r = self.target.log_bounds(std::slice::from_ref(&key)).await;
        r.remove(&key).unwrap_or(Err(Error::NoLeader {
            context: crate::client::Context::partition(&tp.topic, tp.partition),
        }))
    }
}

/// Where a selected source topic's target stands before partition set-up.
enum TargetTopic {
    /// It exists, is strait's (or empty) and has enough partitions.
    Ready,
    /// It does not exist yet.
    Missing,
}

/// When the next discovery comes: after `topic_refresh_interval`, or while partitions wait
/// to be set up, after 250 ms doubling up to it. Kafka made a new topic's 1,000 leaders
/// serve over 2-5 s on the bench machine, longer than [`brief_retry_all`] waits (2 s); the
/// partitions left over then waited a whole interval (5 s), most of the copy's time.
#[derive(Debug)]
pub(super) struct SetupRetry {
    wait: Duration,
}

impl Default for SetupRetry {
    fn default() -> Self {
        Self { wait: Self::FIRST }
    }
}

impl SetupRetry {
    const FIRST: Duration = Duration::from_millis(250);

    /// The wait before the next discovery; `deferred`: the last one left partitions to set up.
    pub(super) fn next_in(&mut self, deferred: bool, refresh: Duration) -> Duration {
        if !deferred {
            self.wait = Self::FIRST;
            return refresh;
        }
        let wait = self.wait.min(refresh);
        self.wait = self.wait.saturating_mul(2);
        wait
    }
}

/// New partitions' start offsets and target bounds, read together ([`Engine::prefetch`]).
#[derive(Debug, Default)]
pub(super) struct Prefetched {
    starts: PartitionResults<i64>,
    bounds: PartitionResults<LogBounds>,
}

/// Calls `read` for `keys`, then again for the partitions whose answer was a retriable error,
/// all of them in one call, up to 20 times 100 ms apart (partition set-up only: it blocks
/// the coordinator, so it must stay short). Returns every partition's last answer.
async fn brief_retry_all<T, F, Fut>(keys: &[(String, i32)], mut read: F) -> PartitionResults<T>
where
    F: FnMut(Vec<(String, i32)>) -> Fut,
    Fut: std::future::Future<Output = PartitionResults<T>>,
{
    let mut out = PartitionResults::new();
    let mut pending = keys.to_vec();
    for attempt in 0.. {
        let mut again = Vec::new();
        for (key, r) in read(pending).await {
            if matches!(&r, Err(e) if e.retry() != Retry::No) && attempt < 20 {
                again.push(key.clone());
            }
            out.insert(key, r);
        }
        if again.is_empty() {
            break;
        }
        pending = again;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

/// One partition's answer in `results` (a partition missing from them has no leader).
fn answer<T: Copy>(results: &PartitionResults<T>, tp: &TopicPartition) -> Result<T, Error> {
    match results.get(&(tp.topic.clone(), tp.partition)) {
        Some(Ok(v)) => Ok(*v),
        Some(Err(e)) => Err(e.clone()),
        None => Err(Error::NoLeader {
            context: crate::client::Context::partition(&tp.topic, tp.partition),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_comes_sooner_while_partitions_wait_to_be_set_up() {
        let refresh = Duration::from_secs(5);
        let mut r = SetupRetry::default();
        assert_eq!(r.next_in(false, refresh), refresh);
        let waits: Vec<u128> = (0..7)
            .map(|_| r.next_in(true, refresh).as_millis())
            .collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        // Everything set up: back to the interval, and the next wait starts short again.
        assert_eq!(r.next_in(false, refresh), refresh);
        assert_eq!(r.next_in(true, refresh), Duration::from_millis(250));
        // An interval shorter than the first retry wins.
        let mut r = SetupRetry::default();
        assert_eq!(r.next_in(true, Duration::from_millis(100)).as_millis(), 100);
    }
}
