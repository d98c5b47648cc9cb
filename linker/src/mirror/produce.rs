//! The engine's write side: produce rounds, acknowledgements in order, failed writes,
//! target producer ids, and matching a reconciled target tail.
//!
//! ```text
//!  start_produces: one Produce per round, one write per partition (≤`batches_per_request`
//!        │ consecutive batches; 1 on Kafka), ≤`depth` writes in flight per partition
//!        │ (strait's idempotent producer id + sequence; 1 without one)
//!        ▼
//!  on_produced ─► ack: Pending.acked ─► settle: map entries in queue order ─► one sled write
//!              └► error: partition broken ─► all in flight answered ─► read target tail
//!                                              (spawn_tail) ─► fresh producer id ─► match_tails
//!  at start: read target tail ─► match_tails ─► the checkpoint's producer id at the sequence
//!            after the target's last batch, if that batch carries it (else the shared id)
//! ```
//!
//! Acks can overtake each other (each round is its own task), so a batch is recorded only
//! once every batch before it is; the sequence numbers make the target refuse a batch whose
//! predecessor did not land, so what is acknowledged is always a prefix of what was sent.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::engine::{Engine, Event, MirrorError};
use super::partition::{Producer, WriteMismatch, is_gapped};
use super::stacking::Learned;
use crate::batch;
use crate::client::data::{PartitionResults, ProduceAck, ProduceItem};
use crate::client::groups::ProducerIdentity;
use crate::client::{DATA_LANE, Error, KafkaClient, Retry};
use crate::offset::TopicPartition;
use crate::records;
use crate::state::MapEntry;

/// Largest single produce request strait builds.
const MAX_PRODUCE_REQUEST_BYTES: usize = 64 << 20;
/// Delay before retrying a partition after a retriable error.
pub(super) const RETRY_DELAY: Duration = Duration::from_millis(200);
/// How long a produce may wait for the target's acknowledgement.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// A partition idle this long sends its next write alone, as under a new producer id: the
/// target may have expired its producer state (Kafka: `producer.id.expiration.ms`, 1 day by
/// default; far shorter settings exist), and then accepts any sequence.
const PRODUCER_IDLE_RECONFIRM: Duration = Duration::from_secs(60);

/// One produce round: a batch from each partition that may send one.
pub(super) struct Round {
    items: Vec<ProduceItem>,
    tickets: Vec<(TopicPartition, u64)>,
}

/// Queues produce rounds on the target connections one after the other, in the order the
/// engine made them, so each partition's batches reach its leader in sequence order (tasks
/// spawned per round could overtake each other), and hands each round's answers back as an
/// event. The number of rounds in flight is bounded by the engine (see `start_produces`).
/// Each round is spread over `lanes` connections per target broker, a partition always on
/// the same one; they are data lanes ([`DATA_LANE`] up), so the target's control requests
/// (end checks, a cutover's reads) do not queue behind the writes.
pub(super) async fn send_rounds(
    client: KafkaClient,
    mut rounds: mpsc::UnboundedReceiver<Round>,
    events: mpsc::Sender<Event>,
    lanes: usize,
) {
    while let Some(Round { items, tickets }) = rounds.recv().await {
        let answers = client
            .queue_produce(items, -1, PRODUCE_TIMEOUT, DATA_LANE..DATA_LANE + lanes)
            .await;
        let events = events.clone();
        tokio::spawn(async move {
            let results = answers.await;
            let _ = events.send(Event::Produced { tickets, results }).await;
        });
    }
}

impl Engine {
    /// Sends produce rounds while fewer than `max_in_flight_per_partition` are in flight: each
    /// takes the next unsent write of every partition that may send one.
    ///
    /// As many rounds as a partition may have writes, no more: then every round can carry
    /// every partition that has data. With more rounds than that, a busy partition sits out
    /// the rounds beyond its limit, which go out with fewer partitions each, and a target
    /// that serves one request at a time per connection (Kafka) spends its time on more,
    /// smaller requests. Measured (8 partitions, Kafka to Kafka at 70 MB/s, 8 rounds against
    /// 5): 5 batches a request and 1.5-2 s behind, against 8 a request and 0.16-0.42 s.
    pub(super) fn start_produces(&mut self, tx: &mpsc::Sender<Event>) {
        self.request_producer_ids(tx);
        let depth = self.settings.max_in_flight_per_partition;
        while self.produce_in_flight < depth {
            let now = Instant::now();
            let mut items = Vec::new();
            let mut tickets = Vec::new();
            let mut size = 0;
            for slot in self.slots.values_mut() {
                if slot.run.in_flight == 0 && slot.last_ack.elapsed() > PRODUCER_IDLE_RECONFIRM {
                    slot.run.unconfirm();
                }
                if !slot.view.state.is_running()
                    || slot.hold.is_some()
                    || slot.awaiting_tail
                    || !slot.run.target_tail.is_empty() // matched in `match_tails`, never re-written
                    || slot.retry_at.is_some_and(|t| t > now)
                    || !slot.run.can_send(depth)
                {
                    continue;
                }
                let ticket = self.next_ticket;
                let Some(limit) = self.stacking.limit(&slot.run.tp, slot.run.in_flight == 0) else {
                    continue;
                };
                let Some(bytes) = slot.run.send_run(ticket, limit) else {
                    continue;
                };
                self.stacking
                    .sent(&slot.run.tp, ticket, slot.run.batches_under(ticket));
                self.next_ticket += 1;
                size += bytes.len();
                items.push(ProduceItem {
                    topic: slot.run.tp.topic.clone(),
                    partition: slot.run.tp.partition,
                    records: bytes,
                });
                tickets.push((slot.run.tp.clone(), ticket));
                slot.retry_at = None;
                if size >= MAX_PRODUCE_REQUEST_BYTES {
                    break;
                }
            }
            if items.is_empty() {
                return;
            }
            self.produce_in_flight += 1;
            let round = Round { items, tickets };
            if let Err(mpsc::error::SendError(round)) = self.rounds.send(round) {
                // The sender task is gone (only at shutdown): answer the round as failed so
                // its partitions reconcile instead of waiting forever.
                self.produce_in_flight -= 1;
                for (tp, ticket) in round.tickets {
                    self.stacking.failed(&tp, ticket, 0, false);
                    if let Some(slot) = self.slots.get_mut(&tp) {
                        let _ = slot.run.on_failed(ticket);
                    }
                }
                return;
            }
        }
    }

    /// Gives each partition that needs a producer id, and has something to write, one.
    ///
    /// After a restart, a partition whose target still ends with a batch under the id its
    /// checkpoint recorded continues under that id and its sequence
    /// ([`PartitionRun::take_resume`]): no new id, so the target does not keep one more
    /// producer's state per partition for every start (tansu 0.6 rewrites all of it for
    /// every idempotent batch), and a write the old process left in flight is a duplicate
    /// the target drops if it lands late. Otherwise a partition's first id is the mirror's
    /// shared one (one InitProducerId for all partitions: at a thousand partitions, one call
    /// per partition costs seconds), with its own sequence numbers from 0, which is sound
    /// because nothing was ever written to that partition under it. After a reset, or for a
    /// partition that was written under the shared id before (held and released), the
    /// partition asks for an id of its own, so no sequence number is ever reused under one id.
    fn request_producer_ids(&mut self, tx: &mpsc::Sender<Event>) {
        let now = Instant::now();
        let mut wants_shared = false;
        for slot in self.slots.values_mut() {
            if slot.run.producer != Producer::Needed
                || !slot.view.state.is_running()
                || slot.awaiting_tail
                || !slot.run.target_tail.is_empty() // its last batch decides (`match_tails`)
                || slot.retry_at.is_some_and(|t| t > now)
                || !slot.run.has_writes()
                || slot.run.take_resume()
            {
                continue;
            }
            if !self.shared_used.contains(&slot.run.tp) {
                match self.shared_producer {
                    Some(p) => {
                        slot.run.producer = Producer::Id {
                            id: p.producer_id,
                            epoch: p.producer_epoch,
                            next_seq: 0,
                            confirmed: false,
                        };
                        self.shared_used.insert(slot.run.tp.clone());
                    }
                    None => wants_shared = true,
                }
                continue;
            }
            slot.run.producer = Producer::Requested;
            let (client, tx, tp) = (self.target.clone(), tx.clone(), slot.run.tp.clone());
            tokio::spawn(async move {
                let result = client.init_producer_id(None, PRODUCE_TIMEOUT).await;
                let _ = tx
                    .send(Event::ProducerId {
                        tp: Some(tp),
                        result,
                    })
                    .await;
            });
        }
        if wants_shared && !self.shared_pending && self.shared_retry_at.is_none_or(|t| t <= now) {
            self.shared_pending = true;
            let (client, tx) = (self.target.clone(), tx.clone());
            tokio::spawn(async move {
                let result = client.init_producer_id(None, PRODUCE_TIMEOUT).await;
                let _ = tx.send(Event::ProducerId { tp: None, result }).await;
            });
        }
    }

    /// A producer id arrived: the shared one (`tp` None) or a partition's own.
    pub(super) fn on_producer_id(
        &mut self,
        tp: Option<&TopicPartition>,
        result: Result<ProducerIdentity, Error>,
    ) {
        if tp.is_none() {
            self.shared_pending = false;
        }
        if let Err(e) = &result
            && e.retry() == Retry::No
        {
            // The target cannot give strait an idempotent producer id (no InitProducerId,
            // or not authorised): write one batch at a time without one, everywhere.
            tracing::warn!(error = %e, "the target refused a producer id; writing one batch per partition at a time, without pipelining");
            self.idempotent = false;
            for s in self.slots.values_mut() {
                if matches!(s.run.producer, Producer::Needed | Producer::Requested) {
                    s.run.producer = Producer::Plain;
                }
            }
            return;
        }
        let Some(tp) = tp else {
            match result {
                // Partitions take it up at the next round (`request_producer_ids`).
                Ok(p) => self.shared_producer = Some(p),
                Err(e) => {
                    tracing::debug!(error = %e, "InitProducerId failed; retrying");
                    crate::metrics::count_retry(e.class());
                    self.shared_retry_at = Some(Instant::now() + RETRY_DELAY);
                }
            }
            return;
        };
        let Some(slot) = self.slots.get_mut(tp) else {
            return;
        };
        if slot.run.producer != Producer::Requested {
            return; // reset meanwhile: the next request asks again
        }
        match result {
            Ok(p) => {
                slot.run.producer = Producer::Id {
                    id: p.producer_id,
                    epoch: p.producer_epoch,
                    next_seq: 0,
                    confirmed: false,
                };
            }
            Err(e) => {
                tracing::debug!(partition = %tp, error = %e, "InitProducerId failed; retrying");
                crate::metrics::count_retry(e.class());
                slot.run.producer = Producer::Needed;
                slot.retry_at = Some(Instant::now() + RETRY_DELAY);
            }
        }
    }

    pub(super) async fn on_produced(
        &mut self,
        tickets: Vec<(TopicPartition, u64)>,
        mut results: PartitionResults<ProduceAck>,
    ) -> Result<(), MirrorError> {
        self.produce_in_flight -= 1;
        for (tp, ticket) in tickets {
            let r = results
                .remove(&(tp.topic.clone(), tp.partition))
                .unwrap_or_else(|| {
                    Err(Error::Protocol {
                        broker: String::new(),
                        api: "Produce",
                        message: format!("the response has no result for {tp}"),
                    })
                });
            let Some(slot) = self.slots.get_mut(&tp) else {
                if r.is_ok() {
                    self.stacking.acked(&tp, ticket);
                } else {
                    self.stacking.failed(&tp, ticket, 0, false);
                }
                continue;
            };
            match r {
                Ok(ack) => {
                    let learned = self.stacking.acked(&tp, ticket);
                    report_learned(learned, &tp, &self.stacking, &self.status);
                    observe_delays(slot.run.sent_under(ticket));
                    if slot.run.on_ack(ticket, ack.base_offset) {
                        slot.last_ack = Instant::now();
                    }
                }
                Err(e) => {
                    // A write of several batches refused outright, as its partition's only
                    // write in flight (the stacking probe): nothing was written and the
                    // target's sequence state is unchanged, so the batches are sent again
                    // one per request; no reconcile.
                    let several = slot.run.batches_under(ticket);
                    if e.code() == Some(87) && several > 1 && slot.run.take_back_refused(ticket) {
                        let learned = self.stacking.failed(&tp, ticket, several, true);
                        report_learned(learned, &tp, &self.stacking, &self.status);
                        continue;
                    }
                    let failed = slot.run.on_failed(ticket);
                    let batches = failed.as_ref().map_or(0, |f| f.batches);
                    let learned = self
                        .stacking
                        .failed(&tp, ticket, batches, e.code() == Some(87));
                    report_learned(learned, &tp, &self.stacking, &self.status);
                    let Some(failed) = failed else {
                        continue; // stale: from before a reset
                    };
                    match e.retry() {
                        // Apache Kafka takes one batch per partition per request and refuses
                        // more with INVALID_RECORD (here only when it was not the lone
                        // probe, say a target that changed kind): from now on one per
                        // request (`stacking` learned it above). Nothing was written; the
                        // reconcile below confirms it.
                        _ if e.code() == Some(87) && failed.batches > 1 => {}
                        // Apache Kafka refuses batches whose records skip offsets (compacted
                        // data): from now on such batches are re-encoded with contiguous
                        // offsets. Nothing was written; the reconcile below confirms it.
                        _ if e.code() == Some(87) && failed.gapped && !slot.run.reencode_gapped => {
                            tracing::info!(partition = %tp, "target refuses batches with offset gaps; re-encoding compacted batches densely");
                            slot.run.reencode_gapped = true;
                        }
                        Retry::No => {
                            self.fail(&tp, format!("the target refused a batch: {e}"))?;
                            continue;
                        }
                        // The write may or may not have happened (or a predecessor's did
                        // not): read the target's tail before writing again, so nothing is
                        // doubled or reordered.
                        _ => {
                            tracing::debug!(partition = %tp, error = %e, "produce failed; reconciling with the target tail");
                            crate::metrics::count_retry(e.class());
                        }
                    }
                }
            }
            self.settle(&tp).await?;
            self.reconcile_if_drained(&tp);
        }
        Ok(())
    }

    /// A broken partition whose writes in flight have all answered reads the target's tail.
    fn reconcile_if_drained(&mut self, tp: &TopicPartition) {
        let Some(slot) = self.slots.get_mut(tp) else {
            return;
        };
        if slot.run.broken && slot.run.in_flight == 0 && !slot.awaiting_tail {
            slot.awaiting_tail = true;
            slot.retry_at = Some(Instant::now() + RETRY_DELAY);
            self.spawn_tail(tp);
        }
    }

    /// Records, in queue order, every acknowledged batch at the front of the partition's queue
    /// (and the skips between them), then persists them in one write.
    async fn settle(&mut self, tp: &TopicPartition) -> Result<(), MirrorError> {
        let mut entries: Vec<MapEntry> = Vec::new();
        let mut skipped = false;
        loop {
            let Some(slot) = self.slots.get_mut(tp) else {
                return Ok(());
            };
            match slot.run.apply_skips() {
                Ok(moved) => skipped |= moved,
                Err(e) => return self.fail(tp, e.to_string()),
            }
            let Some((base, p)) = slot.run.front_acked() else {
                break;
            };
            let dense = match &p.present {
                Some(present) => Some(present.clone()),
                None if is_gapped(&p.source) => self.target_layout(tp, base).await,
                None => None,
            };
            match self.apply_write(tp, base, dense)? {
                Some(entry) => push_entry(&mut entries, entry),
                None => return Ok(()), // the partition stopped
            }
        }
        self.persist(tp, &entries, skipped)
    }

    /// For a source batch with offset gaps, how the target stored it: `None` if it kept the
    /// gaps, else the present offset deltas (the target renumbered the records densely).
    async fn target_layout(&self, tp: &TopicPartition, base: i64) -> Option<Vec<u32>> {
        let slot = self.slots.get(tp)?;
        let source = &slot.run.front_acked()?.1.source;
        let f = self.target.fetch_at(&tp.topic, tp.partition, base).await?;
        let stored = batch::split(f.records).ok()?.batches.into_iter().next()?;
        if stored.header().last_offset_delta == source.header().last_offset_delta {
            return None;
        }
        let recs = records::decode(source).ok()?;
        Some(
            recs.iter()
                .map(|r| (r.offset - source.header().base_offset) as u32)
                .collect(),
        )
    }

    /// Applies the front batch's write to the in-memory map and the status view; the caller
    /// persists. `None` if the target did not hold what was expected (the partition stopped).
    fn apply_write(
        &mut self,
        tp: &TopicPartition,
        base: i64,
        dense: Option<Vec<u32>>,
    ) -> Result<Option<MapEntry>, MirrorError> {
        let Some(slot) = self.slots.get_mut(tp) else {
            return Ok(None);
        };
        match slot.run.on_written(base, dense) {
            Ok((entry, written)) => {
                self.budget_used -= written.bytes();
                let h = written.source.header();
                slot.view.records_mirrored += h.record_count.max(0) as u64;
                slot.view.bytes_mirrored += written.bytes() as u64;
                slot.view.last_mirrored_timestamp = h.max_timestamp;
                Ok(Some(entry))
            }
            Err(WriteMismatch(msg)) => {
                self.fail(tp, msg)?;
                Ok(None)
            }
        }
    }

    /// Queues the map entries recorded since the last call, and the partition's new cursors
    /// (if entries were recorded or skips moved them), for the next progress write
    /// ([`Engine::flush_progress`]), then publishes the status.
    ///
    /// Writing progress a little later than the target acknowledged it loses nothing: after a
    /// crash, the batches past the stored checkpoint are found in the target's tail and
    /// matched, as for any write whose acknowledgement was lost.
    fn persist(
        &mut self,
        tp: &TopicPartition,
        entries: &[MapEntry],
        skipped: bool,
    ) -> Result<(), MirrorError> {
        if !self.slots.contains_key(tp) {
            return Ok(());
        }
        if !entries.is_empty() || skipped {
            self.note_progress(tp, entries);
        }
        self.publish(tp);
        Ok(())
    }

    /// Matches queued batches against a pending target tail (no I/O).
    pub(super) fn match_tails(&mut self) -> Result<(), MirrorError> {
        let pending: Vec<TopicPartition> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.run.target_tail.is_empty() && !s.awaiting_tail)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in pending {
            let mut entries = Vec::new();
            let mut skipped = false;
            while let Some(slot) = self.slots.get_mut(&tp) {
                // Skipped source ranges have nothing on the target: they never match a tail
                // batch, so they are applied as they come.
                match slot.run.apply_skips() {
                    Ok(moved) => skipped |= moved,
                    Err(e) => {
                        self.fail(&tp, e.to_string())?;
                        break;
                    }
                }
                match slot.run.match_tail() {
                    None => break,
                    Some(Ok(base)) => match self.apply_write(&tp, base, None)? {
                        Some(entry) => push_entry(&mut entries, entry),
                        None => break,
                    },
                    Some(Err(WriteMismatch(msg))) => {
                        self.fail(&tp, msg)?;
                        break;
                    }
                }
            }
            self.persist(&tp, &entries, skipped)?;
        }
        Ok(())
    }
}

/// Adds `entry` to the entries to persist: a batch merged into the previous entry replaces
/// it (same key, longer range).
pub(super) fn push_entry(entries: &mut Vec<MapEntry>, entry: MapEntry) {
    match entries.last_mut() {
        Some(last) if last.source_first == entry.source_first => *last = entry,
        _ => entries.push(entry),
    }
}

/// Logs what an answer taught about batches per request, and shows it in the status.
fn report_learned(
    learned: Learned,
    tp: &TopicPartition,
    stacking: &super::stacking::Stacking,
    status: &super::StatusHandle,
) {
    match learned {
        Learned::Nothing => return,
        Learned::Accepted => {
            tracing::info!(partition = %tp, "the target takes several batches of a partition per request");
        }
        Learned::Refused => {
            tracing::info!(partition = %tp, "the target refuses several batches of a partition per request; sending one");
        }
    }
    let limit = stacking.learned_limit();
    status.update(|s| s.target_batches_per_request = limit);
}

/// Records each acknowledged batch's delay: from its newest record's timestamp (the
/// producer's clock, or the source broker's for LogAppendTime) to now.
fn observe_delays<'a>(batches: impl Iterator<Item = &'a crate::batch::RawBatch>) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for b in batches {
        let newest = b.header().max_timestamp;
        if newest > 0 {
            let ms = u64::try_from(now_ms - newest).unwrap_or(0); // a clock ahead of ours: 0
            crate::metrics::observe_mirror_delay(Duration::from_millis(ms));
        }
    }
}
