//! The target's tail: after a crash (or a reset), the batches a partition's target holds past
//! the checkpoint, read with every CRC checked and matched with the source before anything
//! new is written.
//!
//! ```text
//!  engine ─(spawn_tail)─► tails_due ─(start_tails, once per loop turn)─► task per 500:
//!        one Fetch per leader for all of them (read_tails, 1 MiB each, from map.next_target)
//!          ├─ tail read to the end in that answer ─────────────────────────► Event::Tail
//!          └─ more, a CRC failure, an error, no answer ─► read_tail_from, alone ─► Event::Tail
//!  engine ◄─ on_tail: tail into the partition's run (match_tails), or retry / fail
//! ```
//! [`read_tail`] also reads the source's tail in a failback.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;

use super::engine::{Engine, Event, MirrorError};
use crate::batch::{self, BatchError, RawBatch};
use crate::client::data::{FetchOptions, FetchPosition, FetchedPartition, Isolation};
use crate::client::{Error, KafkaClient, Retry};
use crate::offset::TopicPartition;

/// Partitions one batched tail read asks for (one Fetch per leader among them).
const TAIL_BATCH: usize = 500;
/// Bytes per partition in a batched tail read; a longer tail is read on alone.
const TAIL_BATCH_PARTITION_BYTES: i32 = 1 << 20;

impl Engine {
    /// Reads the target partition from the expected end to its actual end: queued, and read
    /// with the others queued in the same turn of the engine's loop ([`Self::start_tails`]).
    /// At a restart every partition reads its tail; one request each, on one connection,
    /// cost tansu 0.6 2.7 ms apiece, 2.7 s before the last of 1,000 partitions could write.
    pub(super) fn spawn_tail(&mut self, tp: &TopicPartition) {
        self.tails_due.insert(tp.clone());
    }

    /// Starts the tail reads queued by [`Self::spawn_tail`]: one task per [`TAIL_BATCH`]
    /// partitions, each position taken now (the partitions wait for their tail, so their
    /// maps do not move meanwhile).
    pub(super) fn start_tails(&mut self, tx: &mpsc::Sender<Event>) {
        if self.tails_due.is_empty() {
            return;
        }
        let due: Vec<(TopicPartition, i64)> = std::mem::take(&mut self.tails_due)
            .into_iter()
            .filter_map(|tp| {
                let slot = self.slots.get(&tp)?;
                let from = slot.run.map.next_target().0;
                slot.awaiting_tail.then_some((tp, from))
            })
            .collect();
        for chunk in due.chunks(TAIL_BATCH) {
            let (client, tx, chunk) = (self.target.clone(), tx.clone(), chunk.to_vec());
            tokio::spawn(read_tails(client, chunk, tx));
        }
    }

    /// Reads one partition's tail by itself after `delay` (a retry).
    pub(super) fn spawn_tail_after(
        &self,
        tp: &TopicPartition,
        delay: Duration,
        tx: &mpsc::Sender<Event>,
    ) {
        let Some(slot) = self.slots.get(tp) else {
            return;
        };
        let from = slot.run.map.next_target().0;
        let (client, tx) = (self.target.clone(), tx.clone());
        read_alone(client, tx, tp.clone(), (from, Vec::new(), 0), delay);
    }

    pub(super) fn on_tail(
        &mut self,
        tp: TopicPartition,
        result: Result<Vec<RawBatch>, Error>,
        crc_failures: u32,
        tx: &mpsc::Sender<Event>,
    ) -> Result<(), MirrorError> {
        let Some(slot) = self.slots.get_mut(&tp) else {
            return Ok(());
        };
        slot.view.crc_failures += u64::from(crc_failures);
        match result {
            Ok(tail) => {
                if !tail.is_empty() {
                    tracing::info!(partition = %tp, batches = tail.len(), "target holds batches past the checkpoint; matching them with the source");
                }
                slot.run.target_tail = tail.into();
                slot.awaiting_tail = false;
                let freed = slot.run.reset_to_map();
                self.budget_used -= freed;
                self.publish(&tp);
            }
            // A tail that is unreadable for good (a batch that fails its CRC on every read,
            // data that does not parse) stops the partition: retrying cannot help, and
            // writing past it would build on bytes nobody can check.
            Err(e) if e.retry() == Retry::No => {
                self.fail(&tp, format!("cannot read the target's tail: {e}"))?;
            }
            Err(e) => {
                tracing::warn!(partition = %tp, error = %e, "cannot read the target tail; retrying");
                crate::metrics::count_retry(e.class());
                self.spawn_tail_after(&tp, Duration::from_secs(1), tx);
            }
        }
        Ok(())
    }
}

/// Where [`read_tail`] reads: one partition per call, read uncommitted (every batch on the
/// log is matched, whatever its transaction's outcome), without waiting.
pub(super) trait TailFetch: Sync {
    /// The fetch of `pos`; `None` if the answer left the partition out.
    fn fetch_tail(
        &self,
        pos: FetchPosition,
    ) -> impl std::future::Future<Output = Option<FetchedPartition>> + Send;
}

/// The mirror's own reads of the target's tail after a restart: one request each, on the
/// control connection (rare, and they must not wait behind the data path).
impl TailFetch for KafkaClient {
    async fn fetch_tail(&self, pos: FetchPosition) -> Option<FetchedPartition> {
        let opts = FetchOptions {
            max_wait: Duration::ZERO,
            isolation: Isolation::ReadUncommitted,
            ..FetchOptions::default()
        };
        self.fetch(&[pos], opts).await.pop()
    }
}

/// Consecutive CRC failures [`read_tail`] re-reads before it returns an error (the engine
/// then retries the whole read a second later; a failback fails).
const TAIL_CRC_RETRIES: u32 = 5;

/// The tails of `due` (partition, first offset) on the target, read together: one Fetch
/// per leader, and each tail that answer holds to the partition's end is done. The rest (a
/// longer tail, a CRC failure, an error or no answer for it) go on alone with
/// [`read_tail_from`], from where the batched read stopped, in tasks of their own.
async fn read_tails(client: KafkaClient, due: Vec<(TopicPartition, i64)>, tx: mpsc::Sender<Event>) {
    let positions: Vec<FetchPosition> = due
        .iter()
        .map(|(tp, from)| FetchPosition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset: *from,
            max_bytes: TAIL_BATCH_PARTITION_BYTES,
        })
        .collect();
    let opts = FetchOptions {
        max_wait: Duration::ZERO,
        isolation: Isolation::ReadUncommitted,
        ..FetchOptions::default()
    };
    let mut answers: HashMap<(String, i32), FetchedPartition> = client
        .fetch(&positions, opts)
        .await
        .into_iter()
        .map(|f| ((f.topic.clone(), f.partition), f))
        .collect();
    for (tp, from) in due {
        let mut out = Vec::new();
        let mut offset = from;
        let mut crc_failures = 0;
        let whole = match answers.remove(&(tp.topic.clone(), tp.partition)) {
            Some(f) if f.error.is_none() => {
                let end = f.high_watermark;
                match absorb(f, &mut offset, &mut out) {
                    Ok(Absorbed::Read | Absorbed::Empty) => offset >= end,
                    Ok(Absorbed::Corrupt(e)) => {
                        crc_failures += 1;
                        tracing::warn!(partition = %tp, offset, error = %e, "CRC mismatch reading the tail; re-reading");
                        false
                    }
                    Err(_) => false, // the read alone meets it again and reports it
                }
            }
            _ => false,
        };
        if whole {
            let _ = tx
                .send(Event::Tail {
                    tp,
                    result: Ok(out),
                    crc_failures,
                })
                .await;
            continue;
        }
        let (client, tx) = (client.clone(), tx.clone());
        read_alone(client, tx, tp, (offset, out, crc_failures), Duration::ZERO);
    }
}

/// A task that reads the rest of one partition's tail by itself, after `delay`, from
/// `offset` on after the batches already read (`out`, with `crc_failures` counted so far),
/// and hands it to the engine.
fn read_alone(
    client: KafkaClient,
    tx: mpsc::Sender<Event>,
    tp: TopicPartition,
    (offset, out, mut crc_failures): (i64, Vec<RawBatch>, u32),
    delay: Duration,
) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let result = read_tail_from(&client, &tp, offset, out, &mut crc_failures).await;
        let _ = tx
            .send(Event::Tail {
                tp,
                result,
                crc_failures,
            })
            .await;
    });
}

/// What one fetch answer added to a tail being read.
enum Absorbed {
    /// Batches past the offset (the offset moved past them).
    Read,
    /// Nothing past the offset.
    Empty,
    /// A batch failed its CRC: the batches before it were taken, the offset is at it.
    Corrupt(BatchError),
}

/// Takes the batches of `f` at or past `offset` into `out`, each CRC checked, moving
/// `offset` past them.
fn absorb(
    f: FetchedPartition,
    offset: &mut i64,
    out: &mut Vec<RawBatch>,
) -> Result<Absorbed, Error> {
    if let Some(e) = f.error {
        return Err(e);
    }
    let split = batch::split(f.records).map_err(|e| Error::Protocol {
        broker: String::new(),
        api: "Fetch",
        message: e.to_string(),
    })?;
    let mut advanced = false;
    for b in split.batches {
        if b.header().last_offset() >= *offset {
            if let Err(e) = b.verify_crc() {
                return Ok(Absorbed::Corrupt(e));
            }
            *offset = b.header().next_offset();
            out.push(b);
            advanced = true;
        }
    }
    Ok(if advanced {
        Absorbed::Read
    } else {
        Absorbed::Empty
    })
}

/// Every batch of a partition from `from` to its end (the target's tail after a crash; the
/// source's in a failback). Every batch's CRC is checked, like a source fetch's: a batch that
/// fails is read again (up to [`TAIL_CRC_RETRIES`] times in a row), so a byte flipped on the
/// way is never taken for a batch strait did not write. Each such re-read is counted in
/// `crc_failures`. A batch that fails on every read is a [`Error::Protocol`] (not retriable).
pub(super) async fn read_tail(
    client: &impl TailFetch,
    tp: &TopicPartition,
    from: i64,
    crc_failures: &mut u32,
) -> Result<Vec<RawBatch>, Error> {
    read_tail_from(client, tp, from, Vec::new(), crc_failures).await
}

/// [`read_tail`] from `offset` on, after the batches already read (`out`).
async fn read_tail_from(
    client: &impl TailFetch,
    tp: &TopicPartition,
    mut offset: i64,
    mut out: Vec<RawBatch>,
    crc_failures: &mut u32,
) -> Result<Vec<RawBatch>, Error> {
    let mut crc_streak = 0;
    loop {
        let pos = FetchPosition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset,
            max_bytes: 8 << 20,
        };
        let f = client
            .fetch_tail(pos)
            .await
            .ok_or_else(|| Error::NoLeader {
                context: crate::client::Context::partition(&tp.topic, tp.partition),
            })?;
        let end = f.high_watermark;
        match absorb(f, &mut offset, &mut out)? {
            Absorbed::Corrupt(e) => {
                // Batches before the bad one are kept; the read resumes at the bad one.
                crc_streak += 1;
                *crc_failures += 1;
                tracing::warn!(partition = %tp, offset, error = %e, "CRC mismatch reading the tail; re-reading");
                if crc_streak > TAIL_CRC_RETRIES {
                    return Err(Error::Protocol {
                        broker: String::new(),
                        api: "Fetch",
                        message: format!(
                            "batch at offset {offset} failed its CRC {crc_streak} times in a row: {e}"
                        ),
                    });
                }
            }
            Absorbed::Empty => return Ok(out),
            Absorbed::Read if offset >= end => return Ok(out),
            Absorbed::Read => crc_streak = 0,
        }
    }
}
