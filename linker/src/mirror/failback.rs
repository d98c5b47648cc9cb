//! Failback: copying what producers wrote to a promoted target back to the source, so that
//! the source can become the primary again with nothing lost and nothing doubled.
//!
//! ```text
//!  target (fenced)  T_cut ─────────────► until        read_committed, CRC-checked
//!                     │ batch by batch (a PartitionRun with the roles reversed)
//!                     ▼
//!  source (held)    S_cut ─────────────► S_new        acks=all, producer fields stripped
//!                     │ each ack: the inverse entry (S ↔ T) is pushed into the
//!                     ▼ partition's *forward* map and persisted atomically
//!  forward map: ... ─ T_cut ↔ S_cut ─ [copied batches] ─ cursors (S_new, until)
//! ```
//!
//! Recording the copy in the forward map is what makes the rest exact: consumer offsets on
//! the target translate back through [`super::MirrorHandle::to_source`], and when the forward
//! mirror is released it resumes at `(S_new, until)` without copying anything twice.
//!
//! The partition must be held ([`super::MirrorHandle::hold_topics`]) for the whole copy: the
//! copier is then the only writer of its map. Crash safety is the mirror's own: before
//! writing, the source's tail past the checkpoint is read and matched batch by batch against
//! the target batches that follow, so a write whose acknowledgement was lost is recorded,
//! not repeated, and anything else on the source (a straggler) stops the copy.

use std::time::Duration;

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::partition::{Accepted, PartitionRun, WriteMismatch};
use super::tail::read_tail;
use crate::client::data::{FetchPosition, ProduceItem};
use crate::client::{DATA_LANE, Error, Retry};
use crate::offset::{SourceOffset, TargetOffset, TopicPartition};
use crate::state::{MapEntry, OffsetMap, PartitionCheckpoint, StateError, StateStore};

mod io;
pub use io::CopyIo;

/// Consecutive CRC failures on one batch before the copy gives up.
const MAX_CRC_RETRIES: u32 = 5;
/// Pause before retrying after a retriable error.
const RETRY_DELAY: Duration = Duration::from_millis(300);
/// The pause after an empty answer from the target.
const EMPTY_FETCH_DELAY: Duration = Duration::from_millis(200);
/// What a copy's fetch asks of its partition at first (the rollback runs many copies at once:
/// this times their number bounds the bytes they hold), doubled up to
/// [`MAX_COPY_FETCH_BYTES`] while the next batch does not fit.
const COPY_FETCH_BYTES: i32 = 1 << 20;
const MAX_COPY_FETCH_BYTES: i32 = 256 << 20;
/// The connections the copies' requests ([`CopyIo`]) go over, on both clusters. Kafka answers
/// one request per connection at a time, so they use a few connections of their own: not
/// lane 0, where they would queue with control requests, nor [`DATA_LANE`], where the forward
/// mirror of other topics long-polls its source fetches.
const COPY_LANES: std::ops::Range<usize> = DATA_LANE + 1..DATA_LANE + 5;

/// Why a failback copy stopped.
#[derive(Debug, Error)]
pub enum FailbackError {
    /// A cluster call failed for a reason that retrying will not fix.
    #[error("{tp}: {side} cluster: {error}")]
    Cluster {
        /// The partition.
        tp: TopicPartition,
        /// `source` or `target`.
        side: &'static str,
        /// The error.
        error: Error,
    },
    /// The data cannot be copied back exactly (a straggler on the source, a corrupt batch).
    #[error("{tp}: {message}")]
    Data {
        /// The partition.
        tp: TopicPartition,
        /// What is wrong.
        message: String,
    },
    /// The partition was never mirrored.
    #[error("{tp}: strait has no offset map for this partition")]
    NotMirrored {
        /// The partition.
        tp: TopicPartition,
    },
    /// The state store failed.
    #[error("state store: {0}")]
    State(#[from] StateError),
    /// Cancelled; the copy resumes exactly where it stopped on the next call.
    #[error("cancelled")]
    Cancelled,
}

/// What one call copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyBack {
    /// Batches written to the source by this call.
    pub batches: u64,
    /// Data records in them.
    pub records: u64,
    /// Batches found already on the source (written before a crash) and recorded.
    pub reconciled: u64,
    /// The partition's forward cursors afterwards: (source end, target end).
    pub next_source: i64,
    /// See `next_source`.
    pub next_target: i64,
}

/// The next target batch did not fit the copy's fetch: doubles the fetch size, up to
/// [`MAX_COPY_FETCH_BYTES`]. False, and nothing changed, when it is there already.
fn grow_fetch(run: &mut PartitionRun) -> bool {
    if run.fetch_max_bytes >= MAX_COPY_FETCH_BYTES {
        return false;
    }
    run.fetch_max_bytes = run
        .fetch_max_bytes
        .saturating_mul(2)
        .min(MAX_COPY_FETCH_BYTES);
    tracing::debug!(partition = %run.tp, offset = run.fetch_offset, bytes = run.fetch_max_bytes, "next target batch larger than the copy's fetch; asking for more");
    true
}

/// Copies target offsets `[forward map's next_target, until)` of `tp` back to the source,
/// recording each batch in the forward map. `until` is the target's end offset after it was
/// fenced. Idempotent: a repeated call continues (or confirms) the copy.
///
/// Cancel safety: cancelling (the token or dropping the future) at any point is safe; a
/// produce whose outcome was not recorded is reconciled from the source's tail next time.
pub async fn copy_back(
    io: &CopyIo,
    store: &StateStore,
    tp: &TopicPartition,
    until: TargetOffset,
    cancel: &CancellationToken,
) -> Result<CopyBack, FailbackError> {
    let (mut cp, mut forward) = store
        .load_partition(tp)?
        .ok_or_else(|| FailbackError::NotMirrored { tp: tp.clone() })?;
    let mut out = CopyBack::default();
    let cluster = |side, error| FailbackError::Cluster {
        tp: tp.clone(),
        side,
        error,
    };
    let data = |message: String| FailbackError::Data {
        tp: tp.clone(),
        message,
    };
    // The reversed run: its "source" is the target cluster, its "target" the source cluster.
    let reversed = OffsetMap::new(
        SourceOffset(forward.next_target().0),
        TargetOffset(forward.next_source().0),
    );
    // One write at a time, without a producer id: a failback writes little and stops on any
    // doubt.
    let mut run = PartitionRun::new(tp.clone(), reversed, COPY_FETCH_BYTES, false);
    let mut reconcile = true;
    let mut crc_failures = 0;
    while run.map.next_source().0 < until.0 {
        if cancel.is_cancelled() {
            return Err(FailbackError::Cancelled);
        }
        if reconcile {
            run.reset_to_map();
            // Re-reads of the source's tail are not counted: the metric is the forward
            // mirror's, per partition it runs.
            let tail = read_tail(&io.source_tail(), tp, run.map.next_target().0, &mut 0)
                .await
                .map_err(|e| cluster("source", e))?;
            run.target_tail = tail.into();
            reconcile = false;
        }
        let pos = FetchPosition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset: run.fetch_offset,
            max_bytes: run.fetch_max_bytes,
        };
        let Some(f) = io.fetch_target(pos).await else {
            tokio::time::sleep(RETRY_DELAY).await;
            continue;
        };
        if let Some(e) = f.error {
            if e.retry() == Retry::No {
                return Err(cluster("target", e));
            }
            io.target().refresh_for(&e);
            tokio::time::sleep(RETRY_DELAY).await;
            continue;
        }
        let readable_end = if f.last_stable_offset >= 0 {
            f.last_stable_offset
        } else {
            f.high_watermark
        };
        if f.records.is_empty() {
            // Readable data that did not come back: its first batch is larger than the
            // partition's limit (a broker returns an oversized batch only for the first
            // partition of a response, and the copies share their fetches). Ask for more.
            if readable_end > run.fetch_offset && grow_fetch(&mut run) {
                continue;
            }
            // Nothing readable yet below `until` (an open transaction on the target keeps
            // read_committed short of it): ask again in a moment, not in a tight loop.
            tokio::time::sleep(EMPTY_FETCH_DELAY).await;
            continue;
        }
        let before = run.fetch_offset;
        match run.accept_fetch(f.records, &f.aborted) {
            Ok(Accepted::Queued(_)) => {
                crc_failures = 0;
                if run.fetch_offset == before && run.queue.is_empty() {
                    // Only part of the next batch came back: ask for more, as above.
                    if !grow_fetch(&mut run) {
                        tokio::time::sleep(EMPTY_FETCH_DELAY).await;
                    }
                    continue;
                }
            }
            Ok(Accepted::CrcFailure { at, error }) => {
                crc_failures += 1;
                if crc_failures > MAX_CRC_RETRIES {
                    return Err(data(format!(
                        "target batch at {at} failed its CRC {crc_failures} times: {error}"
                    )));
                }
                continue;
            }
            Err(e) => return Err(data(format!("unreadable target data: {e}"))),
        }
        // Write (or match) everything queued, in order.
        loop {
            run.apply_skips()
                .map_err(|e| data(format!("offset map: {e}")))?;
            if run.map.next_source().0 >= until.0 {
                break;
            }
            let Some(pending) = run.next_write() else {
                break;
            };
            if pending.source.header().base_offset >= until.0 {
                // Written after the target was fenced: not part of this failback.
                return Err(data(format!(
                    "the target holds data at {} past its fenced end {until}: a straggler \
                     wrote to the fenced target",
                    pending.source.header().base_offset
                )));
            }
            let base = if !run.target_tail.is_empty() {
                match run.match_tail() {
                    Some(Ok(base)) => {
                        out.reconciled += 1;
                        base
                    }
                    Some(Err(WriteMismatch(msg))) => {
                        return Err(data(format!(
                            "the source holds data strait did not copy back (a straggler \
                             wrote to the fenced source?): {msg}"
                        )));
                    }
                    None => break,
                }
            } else {
                let item = ProduceItem {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    records: pending.to_write().into(),
                };
                match io.produce(item).await {
                    Some(Ok(ack)) => {
                        out.batches += 1;
                        out.records += pending.source.header().record_count.max(0) as u64;
                        ack.base_offset
                    }
                    Some(Err(e)) if e.code() == Some(87) => {
                        return Err(data(format!(
                            "the source refuses target batch {}..={}: its records skip \
                             offsets (compacted on the target), which a failback cannot copy \
                             byte for byte",
                            pending.source.header().base_offset,
                            pending.source.header().last_offset()
                        )));
                    }
                    Some(Err(e)) if e.retry() == Retry::No => {
                        return Err(cluster("source", e));
                    }
                    Some(Err(e)) => {
                        // Maybe written, maybe not: read the source tail before writing again.
                        tracing::debug!(partition = %tp, error = %e, "failback produce failed; reconciling");
                        io.source().refresh_for(&e);
                        tokio::time::sleep(RETRY_DELAY).await;
                        reconcile = true;
                        break;
                    }
                    None => {
                        reconcile = true;
                        break;
                    }
                }
            };
            let (_, written) = run
                .on_written(base, None)
                .map_err(|WriteMismatch(msg)| data(msg))?;
            // The inverse entry, from the batch itself (the reversed map may have merged it).
            let h = written.source.header();
            let entry = MapEntry::shifted(
                SourceOffset(base),
                SourceOffset(base + i64::from(h.last_offset_delta)),
                TargetOffset(h.base_offset),
            );
            forward
                .push(entry)
                .map_err(|e| data(format!("offset map: {e}")))?;
            cp = checkpoint(&cp, &forward);
            store.record_batch_written(tp, forward.last_entry(), &cp)?;
        }
    }
    // Target offsets at the end that hold no data (transaction markers) are passed over, so
    // the forward mirror resumes exactly at the fenced end.
    if forward.next_target() < until {
        forward
            .skip_target(until)
            .map_err(|e| data(format!("offset map: {e}")))?;
        cp = checkpoint(&cp, &forward);
        store.record_batch_written(tp, None, &cp)?;
    }
    out.next_source = forward.next_source().0;
    out.next_target = forward.next_target().0;
    Ok(out)
}

fn checkpoint(old: &PartitionCheckpoint, map: &OffsetMap) -> PartitionCheckpoint {
    PartitionCheckpoint {
        topic_id: old.topic_id.clone(),
        next_source: map.next_source(),
        next_target: map.next_target(),
        status: old.status.clone(),
        // The batches copied back were written to the target by the applications, not by
        // strait: the forward mirror's next write takes a fresh producer id.
        producer: None,
    }
}
