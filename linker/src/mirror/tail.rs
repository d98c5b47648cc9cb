//! The target's tail: after a crash (or a reset), the batches a partition's target holds past
//! the checkpoint, read with every CRC checked and matched with the source before anything
//! new is written.
//!
//! ```text
//!  engine ─(spawn_tail)─► task: read_tail(target, from = map.next_target) ─► Event::Tail
//!  engine ◄─ on_tail: tail into the partition's run (match_tails), or retry / fail
//! ```
//! [`read_tail`] also reads the source's tail in a failback.

use std::time::Duration;

use tokio::sync::mpsc;

use super::engine::{Engine, Event, MirrorError};
use crate::batch::{self, RawBatch};
use crate::client::data::{FetchOptions, FetchPosition, FetchedPartition, Isolation};
use crate::client::{Error, KafkaClient, Retry};
use crate::offset::TopicPartition;

impl Engine {
    /// Reads the target partition from the expected end to its actual end.
    pub(super) fn spawn_tail(&self, tp: &TopicPartition, tx: &mpsc::Sender<Event>) {
        self.spawn_tail_after(tp, Duration::ZERO, tx);
    }

    /// [`Self::spawn_tail`] after `delay` (a retry).
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
        let (client, tx, tp) = (self.target.clone(), tx.clone(), tp.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut crc_failures = 0;
            let result = read_tail(&client, &tp, from, &mut crc_failures).await;
            let _ = tx
                .send(Event::Tail {
                    tp,
                    result,
                    crc_failures,
                })
                .await;
        });
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
    let mut out = Vec::new();
    let mut offset = from;
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
        if let Some(e) = f.error {
            return Err(e);
        }
        let split = batch::split(f.records).map_err(|e| Error::Protocol {
            broker: String::new(),
            api: "Fetch",
            message: e.to_string(),
        })?;
        let mut advanced = false;
        let mut corrupt = None;
        for b in split.batches {
            if b.header().last_offset() >= offset {
                if let Err(e) = b.verify_crc() {
                    corrupt = Some(e);
                    break;
                }
                offset = b.header().next_offset();
                out.push(b);
                advanced = true;
            }
        }
        if let Some(e) = corrupt {
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
            continue;
        }
        crc_streak = 0;
        if offset >= f.high_watermark || !advanced {
            return Ok(out);
        }
    }
}
