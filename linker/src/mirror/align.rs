//! Offset alignment: when a new partition's source log starts above 0 (DeleteRecords,
//! retention) and its target partition is empty, strait brings the target's log to the same
//! start, so that every mirrored record keeps its offset and the map stays the identity.
//!
//! ```text
//!  source   [deleted 0..b)  b ─────────── end        b: base of the batch holding the log start
//!  target   [filler 0..b)   b ─────────── end        filler: empty records, then DeleteRecords(b)
//!                           └ log start = b on both sides
//! ```
//!
//! Crash safety: the checkpoint `(log start, b)` is written before the first filler record.
//! A partition whose checkpoint has no map entries and a non-zero target cursor is therefore
//! an alignment in progress: the next start tops the filler up to `b` (never past it: each
//! produce must land exactly at the expected end) and deletes it. Filler is never visible
//! after alignment; nothing is mirrored until it is done.
//!
//! Only targets that honour DeleteRecords are aligned. Support is learnt once per process
//! with a no-op DeleteRecords (before offset 0) on the empty partition: tansu advertises the
//! API but closes the connection, so there the map covers the difference instead.

use std::time::Duration;

use super::engine::Engine;
use crate::batch::RawBatch;
use crate::client::Error;
use crate::client::data::ProduceItem;
use crate::offset::TopicPartition;
use crate::records;

/// Most filler offsets strait writes to align one partition (about 9 bytes each).
pub(super) const MAX_ALIGN_OFFSETS: i64 = 10_000_000;
/// Filler records per produced batch (about 90 KB, below every broker's message limit).
const FILLER_PER_BATCH: i64 = 10_000;

impl Engine {
    /// Whether the target honours DeleteRecords (asked once, on an empty partition).
    pub(super) async fn target_deletes(&mut self, tp: &TopicPartition) -> bool {
        if let Some(known) = self.target_deletes {
            return known;
        }
        let key = (tp.topic.clone(), tp.partition);
        let r = self
            .target
            .delete_records(&[(key.clone(), 0)], Duration::from_secs(10))
            .await;
        let ok = matches!(r.get(&key), Some(Ok(_)));
        if !ok {
            tracing::info!(error = ?r.get(&key), "the target does not honour DeleteRecords: offsets of partitions whose source log starts above 0 are mapped, not aligned");
        }
        self.target_deletes = Some(ok);
        ok
    }

    /// The base offset of the source batch holding `start` (a batch is mirrored whole), or
    /// `start` when there is no data there.
    pub(super) async fn first_batch_base(
        &self,
        tp: &TopicPartition,
        start: i64,
    ) -> Result<i64, Error> {
        let f = self.source.fetch_at(&tp.topic, tp.partition, start).await;
        let Some(f) = f else { return Ok(start) };
        if let Some(e) = f.error {
            return Err(e);
        }
        let split = crate::batch::split(f.records).map_err(|e| Error::Protocol {
            broker: String::new(),
            api: "Fetch",
            message: e.to_string(),
        })?;
        Ok(split
            .batches
            .iter()
            .find(|b| b.header().last_offset() >= start)
            .map_or(start, |b| b.header().base_offset.min(start)))
    }

    /// Writes filler records until the target partition ends at `to`, then deletes
    /// everything before `to`. Idempotent; refuses to write if the target's end is not where
    /// the filler so far says it is.
    pub(super) async fn fill_and_delete(&self, tp: &TopicPartition, to: i64) -> Result<(), Error> {
        let mut end = self.target_bounds(tp).await?.end;
        if end > to {
            return Err(Error::Protocol {
                broker: String::new(),
                api: "Produce",
                message: format!(
                    "target end {end} of {tp} is past the alignment point {to}: another \
                     producer wrote to the mirror topic"
                ),
            });
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        while end < to {
            let n = (to - end).min(FILLER_PER_BATCH) as i32;
            let batch: RawBatch = records::filler_batch(n, now).map_err(|e| Error::Protocol {
                broker: String::new(),
                api: "Produce",
                message: e.to_string(),
            })?;
            let item = ProduceItem {
                topic: tp.topic.clone(),
                partition: tp.partition,
                records: batch.into_bytes().into(),
            };
            let mut r = self
                .target
                .produce(vec![item], -1, Duration::from_secs(30))
                .await;
            let ack =
                r.remove(&(tp.topic.clone(), tp.partition))
                    .unwrap_or(Err(Error::NoLeader {
                        context: crate::client::Context::partition(&tp.topic, tp.partition),
                    }))?;
            if ack.base_offset != end {
                return Err(Error::Protocol {
                    broker: String::new(),
                    api: "Produce",
                    message: format!(
                        "filler for {tp} landed at {} instead of {end}: another producer wrote \
                         to the mirror topic",
                        ack.base_offset
                    ),
                });
            }
            end += i64::from(n);
        }
        let key = (tp.topic.clone(), tp.partition);
        let mut r = self
            .target
            .delete_records(&[(key.clone(), to)], Duration::from_secs(30))
            .await;
        let low = r.remove(&key).unwrap_or(Err(Error::NoLeader {
            context: crate::client::Context::partition(&tp.topic, tp.partition),
        }))?;
        tracing::info!(topic = %tp.topic, partition = tp.partition, log_start = low, "target offsets aligned with the source");
        Ok(())
    }
}
