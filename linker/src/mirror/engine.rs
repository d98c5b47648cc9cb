//! The coordinator task: discovery, fetch rounds, produce rounds, acks and reconciliation.
//! See the module docs of [`crate::mirror`] for the data flow.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use std::borrow::Cow;

use super::MirrorSettings;
use super::handle::{MirrorHandle, Query, stored_map, translate_all};
use super::partition::PartitionRun;
use super::status::{PartitionState, PartitionView, StatusHandle};
use crate::batch::RawBatch;
use crate::client::data::{
    FetchOptions, FetchPosition, FetchSessions, FetchedPartition, Isolation, PartitionResults,
    ProduceAck,
};
use crate::client::groups::ProducerIdentity;
use crate::client::{Error, KafkaClient};
use crate::offset::TopicPartition;
use crate::state::{OffsetMap, PartitionCheckpoint, PartitionStatus, StateError, StateStore};

/// Why the mirror as a whole stopped.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The source cluster could not be used.
    #[error("source cluster: {0}")]
    Source(Error),
    /// The target cluster could not be used.
    #[error("target cluster: {0}")]
    Target(Error),
    /// The state store failed; strait stops rather than mirror without a record.
    #[error("state store: {0}")]
    State(#[from] StateError),
}

/// The outcome of the task `handle`, once it ended; never, while there is none. For
/// `select!`: polling a task's handle is cancel-safe, and the caller clears `handle` once
/// this returned (a finished handle must not be polled again).
async fn joined<T>(
    handle: &mut Option<tokio::task::JoinHandle<T>>,
) -> Result<T, tokio::task::JoinError> {
    match handle {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// Time allowed for in-flight produces to finish after cancellation.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long mirrored progress may wait before it is written to the state store: one sled
/// write for every partition's progress, instead of one per batch. A crash loses at most
/// this much recorded progress, which the restart recovers from the target's tail.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The mirror: construct with [`Mirror::new`], observe with [`Mirror::status`], run with
/// [`Mirror::run`].
#[derive(Debug)]
pub struct Mirror {
    source: KafkaClient,
    target: KafkaClient,
    store: Arc<StateStore>,
    settings: MirrorSettings,
    status: StatusHandle,
    queries: mpsc::Receiver<Query>,
    handle: MirrorHandle,
}

pub(super) enum Event {
    Fetched {
        reserved: usize,
        results: Vec<FetchedPartition>,
        /// The fetch sessions the fetch took out (`fetch.rs`), to put back.
        sessions: Option<FetchSessions>,
    },
    /// A produce round answered; `tickets` name the batch each partition sent in it.
    Produced {
        tickets: Vec<(TopicPartition, u64)>,
        results: PartitionResults<ProduceAck>,
    },
    /// InitProducerId answered for a partition.
    ProducerId {
        /// `None`: the mirror's shared producer id.
        tp: Option<TopicPartition>,
        result: Result<ProducerIdentity, Error>,
    },
    /// Idle partitions' target ends were read ([`Engine::watch_target_ends`]).
    TargetEnds { results: Vec<FetchedPartition> },
    /// The target's tail past the checkpoint was read (or could not be).
    Tail {
        tp: TopicPartition,
        result: Result<Vec<RawBatch>, Error>,
        /// Batches that failed their CRC on the way and were read again.
        crc_failures: u32,
    },
}

/// Per-partition bookkeeping beside the pure [`PartitionRun`].
pub(super) struct Slot {
    pub(super) run: PartitionRun,
    pub(super) view: PartitionView,
    /// The source topic's id, persisted with every checkpoint so that a topic deleted and
    /// re-created under the same name is recognised.
    pub(super) topic_id: Option<String>,
    /// Waiting for the target tail to be read (after start-up or an uncertain produce).
    pub(super) awaiting_tail: bool,
    pub(super) retry_at: Option<Instant>,
    /// Set by [`MirrorHandle::hold_topics`]: no new fetch or write; the partition stops with
    /// this reason once its write in flight is recorded.
    pub(super) hold: Option<String>,
    /// When the target last acknowledged a write of this partition.
    pub(super) last_ack: Instant,
}

/// A hold request waiting for its partitions' writes in flight.
struct PendingHold {
    topics: Vec<String>,
    reply: tokio::sync::oneshot::Sender<Result<(), StateError>>,
}

impl Mirror {
    /// A mirror from `source` to `target`, recording progress in `store`.
    pub fn new(
        source: KafkaClient,
        target: KafkaClient,
        store: Arc<StateStore>,
        settings: MirrorSettings,
    ) -> Self {
        source.set_cluster(crate::metrics::Cluster::Source);
        target.set_cluster(crate::metrics::Cluster::Target);
        let (queries_tx, queries) = mpsc::channel(64);
        let status = StatusHandle::default();
        let handle = MirrorHandle {
            status: status.clone(),
            queries: queries_tx,
            store: Arc::clone(&store),
            protect_principals: Arc::new(settings.protect_principals.clone()),
        };
        Self {
            source,
            target,
            store,
            settings,
            status,
            queries,
            handle,
        }
    }

    /// A handle for other components: status and offset translation.
    pub fn handle(&self) -> MirrorHandle {
        self.handle.clone()
    }

    /// A handle on the mirror's status, valid while and after it runs.
    pub fn status(&self) -> StatusHandle {
        self.status.clone()
    }

    /// Mirrors until `cancel` fires, then drains: no new fetches, in-flight produces finish
    /// (up to 30 s) and are recorded, state is flushed.
    ///
    /// Cancel safety: do not drop this future to stop it; cancel the token and await it, so
    /// in-flight writes are recorded. (Dropping it is still safe for the data: the next run
    /// reconciles the target's tail.)
    pub async fn run(self, cancel: CancellationToken) -> Result<(), MirrorError> {
        let e_idempotent = self.settings.max_in_flight_per_partition > 1;
        let stacking = super::stacking::Stacking::new(self.settings.batches_per_request);
        let (rounds_tx, rounds_rx) = mpsc::unbounded_channel();
        let fetch_wait = super::fetch::FetchWait::new(
            self.settings.fetch_max_wait,
            self.settings.fetch_idle_max_wait,
        );
        let mut e = Engine {
            source: self.source,
            target: self.target,
            store: self.store,
            settings: self.settings,
            status: self.status,
            slots: BTreeMap::new(),
            budget_used: 0,
            fetch_in_flight: false,
            fetch_wait,
            fetch_cursor: None,
            fetch_sessions: FetchSessions::default(),
            watching_ends: false,
            produce_in_flight: 0,
            next_ticket: 0,
            rounds: rounds_tx,
            unpersisted: BTreeMap::new(),
            shared_producer: None,
            shared_pending: false,
            shared_retry_at: None,
            tails_due: BTreeSet::new(),
            shared_used: BTreeSet::new(),
            progress_due: None,
            idempotent: e_idempotent,
            stacking,
            last_config_sync: Instant::now(),
            config_sync_task: None,
            pending_holds: Vec::new(),
            target_deletes: None,
            protected: BTreeSet::new(),
            setup_deferred: 0,
            setup_deferred_first: None,
            setup_retry: super::discovery::SetupRetry::default(),
        };
        let mut queries = self.queries;
        drop(self.handle); // only clones held by other components keep the query channel open
        let (tx, mut rx) = mpsc::channel::<Event>(64);
        tokio::spawn(super::produce::send_rounds(
            e.target.clone(),
            rounds_rx,
            tx.clone(),
            e.settings.produce_connections,
        ));
        let started = Instant::now();
        e.discover().await?;
        crate::metrics::observe_discovery(started.elapsed());
        let mut next_discovery = Instant::now() + e.next_discovery_in();
        // The listings of the discovery under way, read beside the coordinator; and whether
        // released topics asked for another discovery while they were out.
        let mut listing: Option<tokio::task::JoinHandle<super::discovery::Listings>> = None;
        let mut rediscover = false;
        let mut drain_deadline: Option<Instant> = None;
        loop {
            if e.progress_due.is_some_and(|t| t <= Instant::now()) {
                e.flush_progress()?;
            }
            if drain_deadline.is_none() {
                e.start_tails(&tx);
                e.start_fetch(&tx);
                e.start_produces(&tx);
            } else if e.produce_in_flight == 0 {
                // A fetch still out is not waited for: nothing it brings would be written
                // before the exit, and when the mirror is idle it is a long poll.
                break;
            }
            let idle = !e.fetch_in_flight && e.produce_in_flight == 0;
            let wake = if idle {
                (Instant::now() + e.settings.fetch_max_wait.max(Duration::from_millis(5)))
                    .min(next_discovery)
            } else {
                next_discovery
            };
            let wake = e.progress_due.map_or(wake, |t| wake.min(t));
            tokio::select! {
                _ = cancel.cancelled(), if drain_deadline.is_none() => {
                    tracing::info!("mirror draining");
                    drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
                }
                ev = rx.recv() => match ev {
                    Some(ev) => e.handle(ev, &tx).await?,
                    None => break,
                },
                Some(q) = queries.recv() => {
                    if e.answer(q)? {
                        // Released topics restart now, or as soon as the listings out land.
                        rediscover = listing.is_some();
                        if !rediscover {
                            next_discovery = Instant::now();
                        }
                    }
                }
                listed = joined(&mut listing) => {
                    listing = None;
                    if drain_deadline.is_none() {
                        let started = Instant::now();
                        let applied = match listed {
                            Ok(listings) => {
                                e.apply_listings(listings).await.map_err(|err| err.to_string())
                            }
                            Err(join) => Err(format!("topic listing: {join}")),
                        };
                        if let Err(err) = applied {
                            tracing::warn!(error = %err, "topic discovery failed; retrying next round");
                        }
                        crate::metrics::observe_discovery(started.elapsed());
                        e.watch_target_ends(&tx);
                    }
                    next_discovery = Instant::now();
                    if !std::mem::take(&mut rediscover) {
                        next_discovery += e.next_discovery_in();
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    if drain_deadline.is_some_and(|d| Instant::now() >= d) {
                        tracing::warn!(in_flight = e.produce_in_flight, "drain timed out; the next start reconciles the target");
                        break;
                    }
                    if Instant::now() >= next_discovery && drain_deadline.is_none() {
                        if listing.is_none() {
                            listing = Some(e.start_listing());
                        }
                        // Set again when the listings land; this only keeps the loop from
                        // waking for a discovery already under way.
                        next_discovery = Instant::now() + e.settings.topic_refresh;
                    }
                }
            }
        }
        // Listings and an alteration cut short are harmless: the next run lists again and
        // re-syncs every topic.
        if let Some(task) = listing.take() {
            task.abort();
        }
        if let Some(task) = e.config_sync_task.take() {
            task.abort();
        }
        e.flush_progress()?;
        e.store.flush_async().await?;
        Ok(())
    }
}

pub(super) struct Engine {
    pub(super) source: KafkaClient,
    pub(super) target: KafkaClient,
    pub(super) store: Arc<StateStore>,
    pub(super) settings: MirrorSettings,
    pub(super) status: StatusHandle,
    pub(super) slots: BTreeMap<TopicPartition, Slot>,
    pub(super) budget_used: usize,
    pub(super) fetch_in_flight: bool,
    /// How long the next fetch may wait at the source ([`super::fetch::FetchWait`]).
    pub(super) fetch_wait: super::fetch::FetchWait,
    /// The next fetch asks for partitions from after this one (`fetch::rotated`).
    pub(super) fetch_cursor: Option<TopicPartition>,
    /// The source fetch sessions, while no fetch has them out (`fetch.rs`).
    pub(super) fetch_sessions: FetchSessions,
    /// A [`Engine::watch_target_ends`] read is out.
    watching_ends: bool,
    pub(super) produce_in_flight: usize,
    /// Names each batch sent, so that its answer finds it (and a stale answer finds nothing).
    pub(super) next_ticket: u64,
    /// Produce rounds for [`super::produce::send_rounds`], which queues them in order.
    pub(super) rounds: mpsc::UnboundedSender<super::produce::Round>,
    /// Progress not yet in the state store: per partition, the map entries created or
    /// extended since the last write (possibly none, when only skips moved the cursors).
    unpersisted: BTreeMap<TopicPartition, Vec<crate::state::MapEntry>>,
    /// When the unpersisted progress is written at the latest.
    progress_due: Option<Instant>,
    /// The producer id partitions start with (see `request_producer_ids`), once the target
    /// gave one.
    pub(super) shared_producer: Option<ProducerIdentity>,
    /// The shared producer id's InitProducerId is out: not asked again until it answers
    /// (each answer is a new id; partitions would spread over several, and a target keeps
    /// each one's state).
    pub(super) shared_pending: bool,
    /// After a failed InitProducerId for the shared id: not asked again before this.
    pub(super) shared_retry_at: Option<Instant>,
    /// Partitions whose target tail is to be read, together, at the loop's next turn
    /// ([`Engine::start_tails`]).
    pub(super) tails_due: BTreeSet<TopicPartition>,
    /// Partitions that have written under the shared producer id: they never take it again.
    pub(super) shared_used: BTreeSet<TopicPartition>,
    /// Whether partitions write with strait's own idempotent producer ids (pipelined), or
    /// one batch at a time without one (the setting is 1, or the target refused an id).
    pub(super) idempotent: bool,
    /// Batches of a partition per produce request: the setting once the target took several,
    /// 1 once it refused them (Apache Kafka takes one).
    pub(super) stacking: super::stacking::Stacking,
    pub(super) last_config_sync: Instant,
    /// The config re-sync in the background ([`super::topics::sync_configs`]), if one was
    /// started: a new one starts only after it ended, and it is stopped with the engine.
    pub(super) config_sync_task: Option<tokio::task::JoinHandle<()>>,
    pending_holds: Vec<PendingHold>,
    /// Topics whose target copy strait protected with DENY WRITE ACLs ([`super::protect`]).
    pub(super) protected: BTreeSet<String>,
    /// Whether the target honours DeleteRecords (offset alignment), once known.
    pub(super) target_deletes: Option<bool>,
    /// Partitions the last discovery could not set up (a topic's new leaders not serving
    /// yet, say): the next discovery comes sooner ([`Engine::next_discovery_in`]).
    pub(super) setup_deferred: usize,
    /// The first of them and why, for the discovery's one warning.
    pub(super) setup_deferred_first: Option<String>,
    /// The wait before the next discovery while partitions wait to be set up.
    setup_retry: super::discovery::SetupRetry,
}

impl Engine {
    /// How long until the next discovery ([`super::discovery::SetupRetry`]).
    pub(super) fn next_discovery_in(&mut self) -> Duration {
        let deferred = self.setup_deferred > 0;
        self.setup_retry
            .next_in(deferred, self.settings.topic_refresh)
    }

    /// Whether a partition is idle in the sense of [`Self::watch_target_ends`]: running, with
    /// nothing of strait's in flight or pending on the target, so its target end must be
    /// where strait's map says.
    fn idle_for_watch(s: &Slot) -> bool {
        s.view.state.is_running()
            && !s.awaiting_tail
            && s.run.in_flight == 0
            && s.run.target_tail.is_empty()
    }

    /// Idle partitions whose target end moved were written by someone else. Reads their
    /// target ends in a task of its own (one Fetch per leader; at 5,000 partitions that took
    /// 70-140 ms, during which the coordinator moved no data) and hands the answers back as
    /// [`Event::TargetEnds`]. One check at a time.
    fn watch_target_ends(&mut self, tx: &mpsc::Sender<Event>) {
        if self.watching_ends {
            return;
        }
        let positions: Vec<FetchPosition> = self
            .slots
            .values()
            .filter(|s| Self::idle_for_watch(s))
            .map(|s| FetchPosition {
                topic: s.run.tp.topic.clone(),
                partition: s.run.tp.partition,
                offset: s.run.map.next_target().0,
                max_bytes: 1,
            })
            .collect();
        if positions.is_empty() {
            return;
        }
        let opts = FetchOptions {
            max_wait: Duration::ZERO,
            isolation: Isolation::ReadUncommitted,
            ..FetchOptions::default()
        };
        self.watching_ends = true;
        let (target, tx) = (self.target.clone(), tx.clone());
        tokio::spawn(async move {
            let results = target.fetch(&positions, opts).await;
            let _ = tx.send(Event::TargetEnds { results }).await;
        });
    }

    /// The target ends read by [`Self::watch_target_ends`]. A partition counts only if it is
    /// still idle and its map still ends where the read started: strait's own write, sent and
    /// acknowledged meanwhile, moved the map, and one still unanswered keeps it busy.
    fn on_target_ends(&mut self, results: Vec<FetchedPartition>) {
        self.watching_ends = false;
        for f in results {
            let tp = TopicPartition::new(&f.topic, f.partition);
            let Some(slot) = self.slots.get(&tp) else {
                continue;
            };
            let expected = slot.run.map.next_target().0;
            if f.error.is_none()
                && f.fetch_offset == expected
                && f.high_watermark > expected
                && Self::idle_for_watch(slot)
            {
                let msg = format!(
                    "target end of {tp} is {} but strait wrote up to {expected}: another producer wrote to the mirror topic",
                    f.high_watermark
                );
                let _ = self.fail(&tp, msg);
            }
        }
    }

    // ---------------------------------------------------------------- events and state

    /// Answers a query: translations from the live maps (or the store for partitions that
    /// are not running, whose maps nothing writes), holds and releases. Returns true when
    /// discovery should run at once (released topics).
    fn answer(&mut self, q: Query) -> Result<bool, MirrorError> {
        let q = match q {
            Query::Hold {
                topics,
                reason,
                reply,
            } => {
                // Partitions not running here (stopped, or not yet initialised) are marked in
                // the store, so discovery leaves them stopped; running ones are marked when
                // they stop.
                let slots = &self.slots;
                super::handle::set_held(&self.store, &topics, Some(&reason), |tp| {
                    slots.contains_key(tp)
                })?;
                let held: HashSet<&str> = topics.iter().map(String::as_str).collect();
                for slot in self.slots.values_mut() {
                    if held.contains(slot.run.tp.topic.as_str()) {
                        slot.hold = Some(reason.clone());
                    }
                }
                self.pending_holds.push(PendingHold { topics, reply });
                self.settle_holds()?;
                return Ok(false);
            }
            Query::Release { topics, reply } => {
                let result = super::handle::set_held(&self.store, &topics, None, |_| false);
                if result.is_ok() {
                    self.status.update(|s| {
                        s.partitions.retain(|tp, v| {
                            !(topics.contains(&tp.topic)
                                && matches!(v.state, PartitionState::Stopped { .. }))
                        })
                    });
                }
                let _ = reply.send(result);
                return Ok(true);
            }
            q => q,
        };
        let map_of = |tp: &TopicPartition| match self.slots.get(tp) {
            Some(slot) => Ok(Some(Cow::Borrowed(&slot.run.map))),
            None => stored_map(&self.store, tp),
        };
        match q {
            Query::Forward(items, reply) => {
                let _ = reply.send(translate_all(items, map_of, OffsetMap::target_for)?);
            }
            Query::Reverse(items, reply) => {
                let _ = reply.send(translate_all(items, map_of, OffsetMap::source_for)?);
            }
            Query::Hold { .. } | Query::Release { .. } => unreachable!("answered above"),
        }
        Ok(false)
    }

    /// Stops held partitions whose write in flight is recorded, and answers the hold
    /// requests whose partitions have all stopped.
    fn settle_holds(&mut self) -> Result<(), MirrorError> {
        let ready: Vec<(TopicPartition, PartitionState)> = self
            .slots
            .iter()
            .filter_map(|(tp, s)| match &s.hold {
                Some(reason) if s.run.in_flight == 0 => Some((
                    tp.clone(),
                    PartitionState::Stopped {
                        reason: reason.clone(),
                    },
                )),
                _ => None,
            })
            .collect();
        if let Some((first, PartitionState::Stopped { reason })) = ready.first() {
            // One line for the hold, not one per partition of a wave.
            tracing::info!(topic = %first.topic, partition = first.partition, partitions = ready.len(), %reason, "partitions held");
        }
        self.stop_all(ready)?;
        let running: HashSet<&str> = self.slots.keys().map(|tp| tp.topic.as_str()).collect();
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_holds)
            .into_iter()
            .partition(|h| !h.topics.iter().any(|t| running.contains(t.as_str())));
        self.pending_holds = waiting;
        for h in done {
            let _ = h.reply.send(Ok(()));
        }
        Ok(())
    }

    async fn handle(&mut self, ev: Event, tx: &mpsc::Sender<Event>) -> Result<(), MirrorError> {
        match ev {
            Event::Fetched {
                reserved,
                results,
                sessions,
            } => {
                if let Some(s) = sessions {
                    self.fetch_sessions = s;
                }
                self.on_fetched(reserved, results)?
            }
            Event::Produced { tickets, results } => self.on_produced(tickets, results).await?,
            Event::ProducerId { tp, result } => self.on_producer_id(tp.as_ref(), result),
            Event::Tail {
                tp,
                result,
                crc_failures,
            } => self.on_tail(tp, result, crc_failures, tx)?,
            Event::TargetEnds { results } => self.on_target_ends(results),
        }
        self.match_tails()?;
        if !self.pending_holds.is_empty() {
            self.settle_holds()?;
        }
        Ok(())
    }

    pub(super) fn apply_skips(&mut self, tp: &TopicPartition) -> Result<(), MirrorError> {
        let Some(slot) = self.slots.get_mut(tp) else {
            return Ok(());
        };
        match slot.run.apply_skips() {
            Ok(true) => self.note_progress(tp, &[]),
            Ok(false) => {}
            Err(e) => return self.fail(tp, e.to_string()),
        }
        Ok(())
    }

    /// Stops a partition with an error visible in status, logs and state.
    pub(super) fn fail(&mut self, tp: &TopicPartition, message: String) -> Result<(), MirrorError> {
        tracing::error!(topic = %tp.topic, partition = tp.partition, "{message}");
        self.stop(tp, PartitionState::Error { message })
    }

    pub(super) fn stop(
        &mut self,
        tp: &TopicPartition,
        state: PartitionState,
    ) -> Result<(), MirrorError> {
        self.stop_all(vec![(tp.clone(), state)])
    }

    /// Stops partitions, each in its state: what they mirrored is stored, then their status,
    /// in one write for all (the engine is the one writer of its running partitions'
    /// checkpoints; a hold stops a whole wave at once, inside the cutover's write pause).
    pub(super) fn stop_all(
        &mut self,
        stops: Vec<(TopicPartition, PartitionState)>,
    ) -> Result<(), MirrorError> {
        if stops.is_empty() {
            return Ok(());
        }
        // What the partitions mirrored is stored before their status says they stopped.
        self.flush_progress()?;
        let mut statuses = Vec::with_capacity(stops.len());
        let mut views = Vec::with_capacity(stops.len());
        for (tp, state) in stops {
            let status = match &state {
                PartitionState::Error { message } => PartitionStatus::Error {
                    message: message.clone(),
                },
                PartitionState::Stopped { reason } => PartitionStatus::Stopped {
                    reason: reason.clone(),
                },
                _ => PartitionStatus::Active,
            };
            if let Some(mut slot) = self.slots.remove(&tp) {
                self.budget_used -= slot.run.reset_to_map();
                slot.view.state = state;
                views.push((tp.clone(), slot.view));
            }
            statuses.push((tp, status));
        }
        self.status.update(|s| s.partitions.extend(views));
        self.store
            .set_statuses(statuses.iter().map(|(tp, status)| (tp, status)))?;
        Ok(())
    }

    /// Queues a partition's progress for the next [`Self::flush_progress`].
    pub(super) fn note_progress(
        &mut self,
        tp: &TopicPartition,
        entries: &[crate::state::MapEntry],
    ) {
        let pending = self.unpersisted.entry(tp.clone()).or_default();
        for entry in entries {
            super::produce::push_entry(pending, entry.clone());
        }
        self.progress_due
            .get_or_insert_with(|| Instant::now() + PROGRESS_INTERVAL);
    }

    /// Writes every partition's unpersisted progress (map entries and cursors) to the state
    /// store in one atomic write.
    pub(super) fn flush_progress(&mut self) -> Result<(), MirrorError> {
        self.progress_due = None;
        let pending = std::mem::take(&mut self.unpersisted);
        let updates: Vec<_> = pending
            .into_iter()
            .filter_map(|(tp, entries)| {
                let cp = checkpoint(self.slots.get(&tp)?);
                Some((tp, entries, cp))
            })
            .collect();
        self.store.record_partitions_written(
            updates
                .iter()
                .map(|(tp, entries, cp)| (tp, entries.as_slice(), cp)),
        )?;
        Ok(())
    }

    pub(super) fn publish(&mut self, tp: &TopicPartition) {
        let Some(slot) = self.slots.get_mut(tp) else {
            return;
        };
        let v = &mut slot.view;
        v.next_source = slot.run.map.next_source().0;
        v.next_target = slot.run.map.next_target().0;
        v.lag_records = if v.source_end >= 0 {
            (v.source_end - v.next_source).max(0)
        } else {
            -1
        };
        if v.state.is_running() {
            let idle = slot.run.queue.is_empty() && slot.run.in_flight == 0 && !slot.awaiting_tail;
            v.state = if idle && v.source_end >= 0 && v.next_source >= v.source_end {
                PartitionState::CaughtUp
            } else {
                PartitionState::Mirroring
            };
        }
        let view = v.clone();
        self.status.update(|s| {
            s.partitions.insert(tp.clone(), view);
        });
    }
}

pub(super) fn checkpoint(slot: &Slot) -> PartitionCheckpoint {
    PartitionCheckpoint {
        topic_id: slot.topic_id.clone(),
        next_source: slot.run.map.next_source(),
        next_target: slot.run.map.next_target(),
        status: PartitionStatus::Active,
        producer: slot.run.settled_producer,
    }
}
