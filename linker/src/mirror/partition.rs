//! One partition's mirror: which fetched batches are written, in what order, and what the
//! offset map records for each. Pure logic: the engine does the I/O and feeds results in.
//!
//! ```text
//!  fetched blob ─► accept_fetch ─► queue: [Write(batch) | Skip(to)] ─► next_produce ─► produce
//!                   (CRC, control,                                          │
//!                    aborted txns)          target tail (after a crash) ◄──┤ match instead of write
//!                                                                           ▼
//!                                                        on_written ─► MapEntry + checkpoint
//! ```
//!
//! Control batches (transaction markers) and aborted transactional data never reach the
//! target; the map simply has no entry for those source offsets, so a consumer offset that
//! points into them translates to the next mirrored record.
//!
//! Producer identity on the target ([`Producer`]): the source's producer ids mean nothing
//! there (and targets reject foreign ids), so they are never passed on. With an idempotent
//! producer id of strait's own, up to `depth` writes per partition are in flight at once and
//! each carries strait's id and the next sequence number: the target refuses a write whose
//! predecessor did not land (OUT_OF_ORDER_SEQUENCE_NUMBER), so pipelined writes can never be
//! stored out of order. Without one (`Plain`: the target cannot, or the operator chose depth 1),
//! one write is in flight and batches without a producer id go out byte for byte, CRC
//! unchanged. Either way the records section is never touched.
//!
//! Writes go out in queue order and are acknowledged in any order; [`PartitionRun::front_acked`]
//! hands them to the map strictly in order. A failed write marks the partition `broken`: nothing
//! more is sent, and once every write in flight has answered, the engine reconciles with the
//! target's tail and the partition continues under a fresh producer id (so no sequence number
//! is ever reused for different bytes).
//!
//! Across restarts the id carries over: each recorded batch leaves the producer state it
//! created on the target (`settled_producer`, persisted with the checkpoint). A restart
//! matches the tail past the checkpoint, and if every tail batch carries that id it continues
//! at the sequence after the last one ([`PartitionRun::take_resume`]): exactly the state the
//! target holds, since the target's producer state follows its log. Anything else (a batch
//! under another id or none, a failed write) means a fresh id.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::batch::{self, BatchError, BatchHeader, RawBatch, attr};
use crate::client::data::{AbortedTransaction, ProduceRecords};
use crate::offset::{SourceOffset, TargetOffset, TopicPartition};
use crate::state::{MapEntry, OffsetMap, ProducerCursor};

/// Something the partition must do to the target, in source order.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Write this batch.
    Write(Box<Pending>),
    /// Advance the source position over offsets that produce no target data.
    Skip(SourceOffset),
}

/// A source batch waiting to be written.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The batch as fetched (CRC verified).
    pub source: RawBatch,
    /// The batch to produce, before its producer identity and base offset are set at send
    /// time ([`RawBatch::produce_chunks`]): the fetched batch itself (no copy), or, for a gapped
    /// batch on a target that refuses gaps, a re-encoding with contiguous offsets.
    pub written: RawBatch,
    /// Set when `written` was re-encoded: the source offset deltas of its records, in order.
    pub present: Option<Vec<u32>>,
    /// The ticket of the produce carrying this batch, once sent.
    pub ticket: Option<u64>,
    /// Where the target stored it, once acknowledged (the map records it in queue order).
    pub acked: Option<i64>,
    /// When it was fetched, until its first write is sent (then observed as its queue time).
    pub fetched: Option<Instant>,
    /// The target's producer state for the partition once this batch is stored: strait's id
    /// and the sequence after the batch's (set when sent, or from the target's copy when a
    /// tail batch matched it); `None` without a producer id.
    pub producer_after: Option<ProducerCursor>,
}

impl Pending {
    fn new(source: RawBatch, reencode_gapped: bool) -> Result<Self, BatchError> {
        let (written, present) = if reencode_gapped && is_gapped(&source) {
            let (dense, deltas) = crate::records::reencode_contiguous(&source)?;
            (dense, Some(deltas))
        } else {
            (source.clone(), None)
        };
        Ok(Self {
            source,
            written,
            present,
            ticket: None,
            acked: None,
            fetched: Some(Instant::now()),
            producer_after: None,
        })
    }

    /// The bytes to produce without a producer id: base offset 0 (brokers require it; it is
    /// outside the CRC), producer identity and transactional bit cleared if present. A batch
    /// that had no producer id at the source goes out with its exact header and CRC.
    pub fn to_write(&self) -> Bytes {
        self.written.for_produce(None).into_bytes()
    }

    /// Size counted against the in-flight byte budget.
    pub fn bytes(&self) -> usize {
        self.source.bytes().len()
    }
}

/// Outcome of feeding a fetch response to the partition.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// Batches (possibly none) were queued; bytes queued.
    Queued(usize),
    /// A batch failed its CRC: nothing after it was queued; fetch again from `at`.
    CrcFailure { at: i64, error: String },
}

/// Which producer identity a partition's writes carry on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Producer {
    /// No producer id: one write in flight at a time.
    Plain,
    /// An idempotent producer id is needed before the next write: at start, and after every
    /// reset, so that sequence numbers restart at 0 and none is ever reused.
    Needed,
    /// Requested; the answer is pending.
    Requested,
    /// strait's own idempotent producer id on the target, and the next sequence number.
    /// `confirmed`: the target acknowledged a write under this id recently, so it holds the
    /// id's sequence state for the partition. Until then only one write is in flight: Kafka
    /// accepts any first sequence from a producer it has no state for, so a second write
    /// could land before a first that failed.
    Id {
        id: i64,
        epoch: i16,
        next_seq: i32,
        confirmed: bool,
    },
}

/// The sequence `records` before `seq` (the inverse of [`next_sequence`]).
fn previous_sequence(seq: i32, records: i64) -> i32 {
    let m = i64::from(i32::MAX) + 1;
    (i64::from(seq) - records).rem_euclid(m) as i32
}

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
fn next_sequence(seq: i32, records: i32) -> i32 {
    // i64 so that the sum cannot overflow; the result is below 2^31 by construction.
    ((i64::from(seq) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32
}

/// The live state of one partition's mirror.
#[derive(Debug)]
pub(crate) struct PartitionRun {
    pub tp: TopicPartition,
    /// The persisted map (advanced only on confirmed writes).
    pub map: OffsetMap,
    /// Next source offset to fetch (ahead of `map.next_source()` by what is queued).
    pub fetch_offset: i64,
    /// Steps not yet applied to the target.
    pub queue: VecDeque<Step>,
    /// Bytes of queued `Write` steps.
    pub queued_bytes: usize,
    /// Writes sent and not yet answered.
    pub in_flight: usize,
    /// A write failed: send nothing more until the writes in flight have answered and the
    /// target's tail has been reconciled ([`Self::reset_to_map`] clears it).
    pub broken: bool,
    /// The producer identity writes carry.
    pub producer: Producer,
    /// Target batches found past the checkpoint (written before a crash, or by an uncertain
    /// produce) that the next source batches must match instead of being written again.
    pub target_tail: VecDeque<RawBatch>,
    /// Drops control batches and aborted transactional data, as read_committed consumers do.
    txn: TxnFilter,
    /// Consecutive CRC failures at the same offset.
    pub crc_streak: u32,
    /// Per-partition fetch size, raised when a single batch does not fit.
    pub fetch_max_bytes: i32,
    /// The target refuses batches with offset gaps (Apache Kafka): re-encode them densely.
    pub reencode_gapped: bool,
    /// The target's producer state after the last batch the map recorded (persisted with
    /// the checkpoint, see [`crate::state::PartitionCheckpoint::producer`]).
    pub settled_producer: Option<ProducerCursor>,
    /// A producer to continue under instead of asking for a new id: the checkpoint's, kept
    /// while every tail batch matched carries it (its sequence moved past each), dropped at
    /// the first that does not or at any failed write. Taken by [`Self::take_resume`].
    resume: Option<ProducerCursor>,
}

impl PartitionRun {
    /// A partition starting at the map's position. `idempotent`: write with strait's own
    /// producer id (requested before the first write), else [`Producer::Plain`].
    pub fn new(tp: TopicPartition, map: OffsetMap, fetch_max_bytes: i32, idempotent: bool) -> Self {
        let fetch_offset = map.next_source().0;
        Self {
            tp,
            map,
            fetch_offset,
            queue: VecDeque::new(),
            queued_bytes: 0,
            in_flight: 0,
            broken: false,
            producer: if idempotent {
                Producer::Needed
            } else {
                Producer::Plain
            },
            target_tail: VecDeque::new(),
            txn: TxnFilter::default(),
            crc_streak: 0,
            fetch_max_bytes,
            reencode_gapped: false,
            settled_producer: None,
            resume: None,
        }
    }

    /// Starts from a checkpoint that recorded strait's producer on the target: once the
    /// target's tail is matched, the partition continues under it if the target's last batch
    /// still carries it ([`Self::take_resume`]). No effect on a partition without producer ids.
    pub fn resume_from(&mut self, cursor: Option<ProducerCursor>) {
        if self.producer == Producer::Needed {
            self.settled_producer = cursor;
            self.resume = cursor;
        }
    }

    /// Continues under the checkpoint's producer (see [`Self::resume_from`]) if the partition
    /// needs an id and its tail is matched: true if it did. Once only; the first write goes
    /// alone (`confirmed: false`), so a target that forgot the id cannot take a second one
    /// ahead of it.
    pub fn take_resume(&mut self) -> bool {
        if self.producer != Producer::Needed || !self.target_tail.is_empty() {
            return false;
        }
        let Some(c) = self.resume.take() else {
            return false;
        };
        self.producer = Producer::Id {
            id: c.id,
            epoch: c.epoch,
            next_seq: c.next_sequence,
            confirmed: false,
        };
        true
    }

    /// Queues what a fetch at `self.fetch_offset` returned.
    pub fn accept_fetch(
        &mut self,
        records: Bytes,
        aborted: &[AbortedTransaction],
    ) -> Result<Accepted, BatchError> {
        self.txn.note_aborted(aborted);
        let split = batch::split(records)?;
        let mut queued = 0;
        for b in split.batches {
            let h = *b.header();
            if h.last_offset() < self.fetch_offset {
                continue; // fully before our position (a fetch may start mid-batch)
            }
            let b = match b.checked() {
                Ok(b) => b,
                Err(e) => {
                    self.crc_streak += 1;
                    return Ok(Accepted::CrcFailure {
                        at: h.base_offset,
                        error: e.to_string(),
                    });
                }
            };
            self.crc_streak = 0;
            let next = h.next_offset();
            if self.map.entries().is_empty()
                && self.queue.is_empty()
                && h.base_offset < self.map.next_source().0
            {
                // The start position lies inside this batch (a raised log start, or a start
                // by timestamp). A batch is indivisible: mirror it whole and start the map at
                // its base, so every byte written is accounted for.
                self.map = OffsetMap::new(SourceOffset(h.base_offset), self.map.next_target());
            }
            // A batch the cleaner emptied is kept by Kafka only to remember its producer's
            // last sequence; it holds no record, and brokers refuse to be sent one.
            if self.txn.keep(&h) && h.record_count > 0 {
                let p = Pending::new(b, self.reencode_gapped)?;
                queued += p.bytes();
                self.queued_bytes += p.bytes();
                self.queue.push_back(Step::Write(Box::new(p)));
            } else {
                self.queue.push_back(Step::Skip(SourceOffset(next)));
            }
            self.fetch_offset = next;
        }
        Ok(Accepted::Queued(queued))
    }

    /// Applies leading `Skip` steps to the map; returns true if the map changed.
    pub fn apply_skips(&mut self) -> Result<bool, crate::state::MapError> {
        let mut changed = false;
        while let Some(Step::Skip(to)) = self.queue.front() {
            let to = *to;
            self.map.skip_source(to)?;
            self.queue.pop_front();
            changed = true;
        }
        Ok(changed)
    }

    /// The front batch, if the front step is a write and none is in flight (the failback's
    /// one-at-a-time writer).
    pub fn next_write(&self) -> Option<&Pending> {
        if self.in_flight > 0 {
            return None;
        }
        match self.queue.front() {
            Some(Step::Write(p)) => Some(p),
            _ => None,
        }
    }

    /// Whether a write could be sent now, with at most `depth` in flight per partition
    /// (1 without a producer id). Needs a producer id first if [`Producer::Needed`].
    pub fn can_send(&self, depth: usize) -> bool {
        let depth = match self.producer {
            Producer::Plain
            | Producer::Id {
                confirmed: false, ..
            } => 1,
            Producer::Id { .. } => depth.max(1),
            Producer::Needed | Producer::Requested => return false,
        };
        !self.broken && self.in_flight < depth && self.first_unsent().is_some()
    }

    /// Whether something is queued to write (used to ask for a producer id only when needed).
    pub fn has_writes(&self) -> bool {
        self.queue.iter().any(|s| matches!(s, Step::Write(_)))
    }

    fn first_unsent(&self) -> Option<usize> {
        self.queue
            .iter()
            .position(|s| matches!(s, Step::Write(p) if p.ticket.is_none()))
    }

    /// Marks the next unsent batch as sent under `ticket` and returns the bytes to produce:
    /// with strait's producer id and the next sequence number, or as prepared if `Plain`.
    /// Call only when [`Self::can_send`] said yes.
    #[cfg(test)]
    pub fn send_next(&mut self, ticket: u64) -> Option<ProduceRecords> {
        self.send_run(ticket, 1)
    }

    /// [`Self::send_next`] for up to `max` consecutive unsent batches, one after the other in
    /// one records blob (one write to the target, for targets that take several batches of a
    /// partition per request). Until the target confirmed the producer id, one batch: a
    /// target without state for the id would take any first sequence.
    pub fn send_run(&mut self, ticket: u64, max: usize) -> Option<ProduceRecords> {
        let first = self.first_unsent()?;
        let max = match self.producer {
            Producer::Id {
                confirmed: false, ..
            } => 1,
            Producer::Needed | Producer::Requested => return None,
            _ => max.max(1),
        };
        // Up to `max` unsent batches in a row (skipped source ranges write nothing, so the
        // batches around them go together). No record is copied: each batch goes as its
        // rewritten header (the write's headers share one buffer, grown if a write holds
        // more than 8) and its records section as fetched.
        let mut headers = BytesMut::with_capacity(max.min(8) * batch::HEADER_LEN);
        let mut records = ProduceRecords::new();
        let mut taken = 0;
        for step in self.queue.iter_mut().skip(first) {
            if taken == max {
                break;
            }
            let Step::Write(p) = step else { continue };
            if p.ticket.is_some() {
                break;
            }
            let producer = match &mut self.producer {
                Producer::Plain => None,
                Producer::Id {
                    id,
                    epoch,
                    next_seq,
                    ..
                } => {
                    let seq = *next_seq;
                    *next_seq = next_sequence(seq, p.written.header().last_offset_delta + 1);
                    p.producer_after = Some(ProducerCursor {
                        id: *id,
                        epoch: *epoch,
                        next_sequence: *next_seq,
                    });
                    Some((*id, *epoch, seq))
                }
                Producer::Needed | Producer::Requested => unreachable!("checked above"),
            };
            for chunk in p.written.produce_chunks(producer, &mut headers) {
                records.push(chunk);
            }
            p.ticket = Some(ticket);
            if let Some(at) = p.fetched.take() {
                crate::metrics::observe_mirror_queue(at.elapsed());
            }
            taken += 1;
        }
        self.in_flight += 1;
        Some(records)
    }

    /// How many batches the write `ticket` carries (0 if none in flight has it).
    pub fn batches_under(&self, ticket: u64) -> usize {
        self.sent_under(ticket).count()
    }

    /// The batches of the write `ticket` still waiting for its answer, in order.
    ///
    /// A write's batches are consecutive in the queue (`send_run` takes them in a row;
    /// skipped ranges between them hold no batch), so the walk stops after them instead of
    /// reading the rest of the queue: it runs for every write sent and answered.
    pub fn sent_under(&self, ticket: u64) -> impl Iterator<Item = &RawBatch> {
        self.queue
            .iter()
            .filter_map(|s| match s {
                Step::Write(p) => Some(&**p),
                Step::Skip(_) => None,
            })
            .skip_while(move |p| p.ticket != Some(ticket))
            .take_while(move |p| p.ticket == Some(ticket))
            .filter(|p| p.acked.is_none())
            .map(|p| &p.written)
    }

    /// [`Self::sent_under`], for changing them.
    fn sent_under_mut(&mut self, ticket: u64) -> impl Iterator<Item = &mut Pending> {
        self.queue
            .iter_mut()
            .filter_map(|s| match s {
                Step::Write(p) => Some(&mut **p),
                Step::Skip(_) => None,
            })
            .skip_while(move |p| p.ticket != Some(ticket))
            .take_while(move |p| p.ticket == Some(ticket))
            .filter(|p| p.acked.is_none())
    }

    /// The target acknowledged the write `ticket` at `target_base`: its batches lie one
    /// after the other from there, each taking its offset span (`last_offset_delta + 1`, as
    /// a target assigns offsets). False if no write in flight has that ticket (a stale answer
    /// from before a reset).
    pub fn on_ack(&mut self, ticket: u64, target_base: i64) -> bool {
        let mut base = target_base;
        let mut found = false;
        for p in self.sent_under_mut(ticket) {
            p.acked = Some(base);
            base += i64::from(p.written.header().last_offset_delta) + 1;
            found = true;
        }
        if !found {
            return false;
        }
        self.in_flight -= 1;
        if let Producer::Id { confirmed, .. } = &mut self.producer {
            *confirmed = true;
        }
        true
    }

    /// Forgets that the target holds this producer id's state (after a long idle time: Kafka
    /// expires the state of idle producers), so the next write goes alone again.
    pub fn unconfirm(&mut self) {
        if let Producer::Id { confirmed, .. } = &mut self.producer {
            *confirmed = false;
        }
    }

    /// The target refused the write `ticket` outright (INVALID_RECORD: nothing of it was
    /// written) and it is the partition's only write in flight: its batches go back to
    /// unsent and the producer's next sequence back to the first of them, so they are sent
    /// again under the same sequence numbers, which the target still expects. False (and
    /// nothing changed) if another write is in flight or none has that ticket: then the
    /// failure takes the usual way ([`Self::on_failed`], reconcile).
    pub fn take_back_refused(&mut self, ticket: u64) -> bool {
        if self.in_flight != 1 {
            return false;
        }
        let mut span = 0i64;
        let mut found = false;
        for p in self.sent_under_mut(ticket) {
            p.ticket = None;
            span += i64::from(p.written.header().last_offset_delta) + 1;
            found = true;
        }
        if !found {
            return false;
        }
        if let Producer::Id { next_seq, .. } = &mut self.producer {
            *next_seq = previous_sequence(*next_seq, span);
        }
        self.in_flight = 0;
        true
    }

    /// The write `ticket` failed: the partition is broken until reconciled. `None` if no
    /// write in flight has that ticket (a stale answer from before a reset).
    pub fn on_failed(&mut self, ticket: u64) -> Option<FailedWrite> {
        let mut failed = FailedWrite {
            gapped: false,
            batches: 0,
        };
        for p in self.sent_under_mut(ticket) {
            p.ticket = None;
            failed.gapped |= is_gapped(&p.source);
            failed.batches += 1;
        }
        if failed.batches == 0 {
            return None;
        }
        self.in_flight -= 1;
        self.broken = true;
        // The target's sequence state is in doubt: the reconcile asks for a fresh id.
        self.resume = None;
        Some(failed)
    }

    /// The front batch and where the target stored it, if it is acknowledged (acks may come
    /// out of order; the map takes them in order).
    pub fn front_acked(&self) -> Option<(i64, &Pending)> {
        match self.queue.front() {
            Some(Step::Write(p)) => p.acked.map(|base| (base, &**p)),
            _ => None,
        }
    }

    /// Records that the front batch now lives at `target_base` on the target.
    /// `target_span`: the target's offset span for it (`None` = same layout as the source).
    pub fn on_written(
        &mut self,
        target_base: i64,
        dense_present: Option<Vec<u32>>,
    ) -> Result<(MapEntry, Pending), WriteMismatch> {
        let Some(Step::Write(p)) = self.queue.front() else {
            return Err(WriteMismatch("no batch was waiting to be written".into()));
        };
        let expected = self.map.next_target().0;
        if target_base != expected {
            return Err(WriteMismatch(format!(
                "target end of {} moved from {expected} to {target_base}: another producer wrote to the mirror topic",
                self.tp
            )));
        }
        let h = p.source.header();
        let entry = match dense_present {
            None => MapEntry::shifted(
                SourceOffset(h.base_offset),
                SourceOffset(h.last_offset()),
                TargetOffset(target_base),
            ),
            Some(present) => MapEntry::dense(
                SourceOffset(h.base_offset),
                SourceOffset(h.last_offset()),
                TargetOffset(target_base),
                present,
            ),
        };
        self.map
            .push(entry.clone())
            .map_err(|e| WriteMismatch(e.to_string()))?;
        let Some(Step::Write(p)) = self.queue.pop_front() else {
            unreachable!("front was a write")
        };
        self.queued_bytes -= p.bytes();
        self.settled_producer = p.producer_after;
        let stored = self.map.last_entry().cloned().unwrap_or(entry);
        Ok((stored, *p))
    }

    /// When a target tail is pending, checks the front batch against it. `Some(Ok(base))`: it
    /// is already on the target at `base`; `Some(Err)`: the tail is not ours.
    pub fn match_tail(&mut self) -> Option<Result<i64, WriteMismatch>> {
        let tail = self.target_tail.front()?;
        let Some(Step::Write(p)) = self.queue.front_mut() else {
            return None;
        };
        let (s, t) = (p.written.header(), tail.header());
        let same = tail.records_section() == p.written.records_section()
            && s.record_count == t.record_count
            && s.last_offset_delta == t.last_offset_delta
            && s.max_timestamp == t.max_timestamp
            && (s.attributes & attr::COMPRESSION_MASK) == (t.attributes & attr::COMPRESSION_MASK);
        let base = t.base_offset;
        if same {
            // The target's copy says which producer wrote it. While the batches past the
            // checkpoint carry the checkpoint's id, the restart may continue under it, at the
            // sequence after each; a batch under any other id ends that (an id strait is not
            // sure it owns is never written under again), and then none is recorded.
            let after = (t.producer_id >= 0 && t.base_sequence >= 0).then(|| ProducerCursor {
                id: t.producer_id,
                epoch: t.producer_epoch,
                next_sequence: next_sequence(t.base_sequence, t.last_offset_delta + 1),
            });
            self.resume = match (self.resume, after) {
                (Some(r), Some(a)) if (r.id, r.epoch) == (a.id, a.epoch) => Some(a),
                _ => None,
            };
            p.producer_after = self.resume;
        }
        self.target_tail.pop_front();
        Some(if same {
            Ok(base)
        } else {
            Err(WriteMismatch(format!(
                "target offset {base} of {} holds a batch strait did not write (expected source offsets {}..={})",
                self.tp,
                p.source.header().base_offset,
                p.source.header().last_offset()
            )))
        })
    }

    /// Drops queued work so fetching restarts from the map position (after an error or a
    /// reconcile), returning the bytes released from the budget. Writes sent under the current
    /// producer id may have landed, so an idempotent partition needs a fresh id.
    pub fn reset_to_map(&mut self) -> usize {
        let freed = self.queued_bytes;
        self.queue.clear();
        self.queued_bytes = 0;
        self.in_flight = 0;
        self.broken = false;
        if self.producer != Producer::Plain {
            self.producer = Producer::Needed;
        }
        self.fetch_offset = self.map.next_source().0;
        self.txn = TxnFilter::default();
        freed
    }
}

/// Tells, batch by batch in log order, which batches a read_committed consumer sees: not
/// control batches (transaction markers), not the data of aborted transactions. Fed with the
/// aborted-transaction lists that read_committed fetches return.
#[derive(Debug, Default, Clone)]
pub(crate) struct TxnFilter {
    /// Aborted transactions listed by fetches and not yet reached.
    pending: Vec<AbortedTransaction>,
    /// Producers whose aborted transaction is open at the current position.
    open: Vec<i64>,
}

impl TxnFilter {
    /// Adds the aborted transactions a fetch response listed (duplicates are ignored).
    pub fn note_aborted(&mut self, aborted: &[AbortedTransaction]) {
        for a in aborted {
            if !self.pending.contains(a) {
                self.pending.push(*a);
            }
        }
    }

    /// Whether the batch with header `h` (the next one in log order) carries data a
    /// read_committed consumer reads.
    pub fn keep(&mut self, h: &BatchHeader) -> bool {
        // Aborted transactions that start at or before this batch become open.
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].first_offset <= h.last_offset() {
                let a = self.pending.swap_remove(i);
                self.open.push(a.producer_id);
            } else {
                i += 1;
            }
        }
        if h.is_control() {
            // A marker ends its producer's transaction, committed or aborted.
            self.open.retain(|p| *p != h.producer_id);
            return false;
        }
        !(h.is_transactional() && self.open.contains(&h.producer_id))
    }
}

/// True when the batch's records do not occupy every offset of its range (compaction holes).
pub(crate) fn is_gapped(b: &RawBatch) -> bool {
    let h = b.header();
    i64::from(h.record_count) != i64::from(h.last_offset_delta) + 1
}

/// What a failed write carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FailedWrite {
    /// One of its batches has offset gaps (compacted).
    pub gapped: bool,
    /// How many batches it carried.
    pub batches: usize,
}

/// The target does not hold what strait expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteMismatch(pub String);

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
