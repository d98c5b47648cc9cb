//! `strait verify`: an independent check that the target holds exactly what the source holds,
//! through the offset map.
//!
//! For each mirrored partition, two record streams are read side by side: the source from the
//! map's start to the mirrored end (read_committed, control and aborted data dropped, as the
//! mirror does), and the target over the same range. Every record must match (key, value,
//! headers in order, timestamp), every batch CRC must verify on both sides, and the map must
//! translate each source offset to the target offset that actually holds the record.
//!
//! Past the mapped end, the target must hold nothing but the next source records, in order:
//! batches strait wrote just before it stopped without recording them (a crash; the next start
//! matches and records them). Anything else there (a second copy of mapped records, another
//! producer's writes) is a difference that a check through the map alone would never see.
//! Partitions stopped on purpose (held, promoted) are not checked past their end: after a
//! promotion the target's own producers write there.
//!
//! ```text
//!  source  [map start ........ next_source) [next_source ...........)
//!             │ compared record by record,      │ compared by content only
//!             │ offsets through the map         │ (`unrecorded`)
//!  target  [map start ........ next_target) [next_target .. target end)
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use super::partition::TxnFilter;
use crate::batch;
use crate::client::data::{FetchOptions, FetchPosition, Isolation, OffsetSpec};
use crate::client::{Error, KafkaClient};
use crate::offset::{SourceOffset, TargetOffset, TopicPartition};
use crate::records::{self, Record};
use crate::state::{Lookup, OffsetMap, PartitionStatus, StateError, StateStore};

/// Differences reported per partition before the rest are only counted.
const MAX_DETAILS: usize = 10;

/// What verify found for one partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Records compared and found identical.
    pub matched: u64,
    /// Records that differ, are missing on one side, or sit at the wrong target offset.
    pub differences: u64,
    /// The first few differences, for a human.
    pub details: Vec<String>,
    /// Source records not yet mirrored (source end − mirrored end), -1 if unknown.
    pub lag_records: i64,
    /// The partition's mirror status (`active`, or why it stopped).
    pub status: String,
    /// Records on the target past the mapped end that are the next source records: written,
    /// not yet recorded (strait stopped before it could); the next start records them.
    pub unrecorded: u64,
}

/// The whole verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Per partition.
    pub partitions: Vec<PartitionReport>,
    /// True when every mirrored record is identical and correctly mapped.
    pub identical: bool,
}

/// Verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A cluster could not be read.
    #[error("{side} cluster: {error}")]
    Cluster {
        /// `source` or `target`.
        side: &'static str,
        /// The error.
        error: Error,
    },
    /// The state store could not be read.
    #[error("state store: {0}")]
    State(#[from] StateError),
}

/// Verifies every mirrored partition whose topic `filter` accepts.
pub async fn verify(
    source: &KafkaClient,
    target: &KafkaClient,
    store: &StateStore,
    filter: impl Fn(&str) -> bool,
) -> Result<VerifyReport, VerifyError> {
    verify_each(source, target, store, filter, |_, _, _| {}).await
}

/// [`verify`], calling `progress(done, total, report)` after each partition (for a progress
/// bar).
pub async fn verify_each(
    source: &KafkaClient,
    target: &KafkaClient,
    store: &StateStore,
    filter: impl Fn(&str) -> bool,
    mut progress: impl FnMut(usize, usize, &PartitionReport),
) -> Result<VerifyReport, VerifyError> {
    let mut partitions = Vec::new();
    let selected: Vec<_> = store
        .partitions()?
        .into_iter()
        .filter(|(tp, _)| filter(&tp.topic))
        .collect();
    let total = selected.len();
    for (tp, cp) in selected {
        let Some((_, map)) = store.load_partition(&tp)? else {
            continue;
        };
        // Held and promoted partitions' targets are written by others past the mirrored end.
        let past_end = !matches!(cp.status, PartitionStatus::Stopped { .. });
        let mut report = verify_partition(source, target, &tp, &map, past_end).await?;
        report.status = match cp.status {
            PartitionStatus::Active => "active".to_owned(),
            PartitionStatus::Stopped { reason } => format!("stopped: {reason}"),
            PartitionStatus::Error { message } => format!("error: {message}"),
        };
        progress(partitions.len() + 1, total, &report);
        partitions.push(report);
    }
    let identical = partitions.iter().all(|p| p.differences == 0);
    Ok(VerifyReport {
        partitions,
        identical,
    })
}

async fn verify_partition(
    source: &KafkaClient,
    target: &KafkaClient,
    tp: &TopicPartition,
    map: &OffsetMap,
    past_end: bool,
) -> Result<PartitionReport, VerifyError> {
    let src_cluster = |error| VerifyError::Cluster {
        side: "source",
        error,
    };
    let tgt_cluster = |error| VerifyError::Cluster {
        side: "target",
        error,
    };
    let (mut src_from, mut tgt_from) = match map.entries().first() {
        Some(e) => (e.source_first.0, e.target_first.0),
        None => (map.next_source().0, map.next_target().0),
    };
    // A batch straddling the source's log start is mirrored whole, but the source no longer
    // serves its records below the log start: compare from the log start on both sides.
    let key = (tp.topic.clone(), tp.partition);
    if let Some(Ok(start)) = source
        .list_offsets(
            std::slice::from_ref(&key),
            OffsetSpec::Earliest,
            Isolation::ReadCommitted,
        )
        .await
        .remove(&key)
        && start.offset > src_from
        && let Lookup::Mapped(t) = map.target_for(SourceOffset(start.offset))
    {
        src_from = start.offset;
        tgt_from = t.0;
    }
    let mut src = Stream::new(
        source,
        tp,
        src_from,
        src_from,
        map.next_source().0,
        Isolation::ReadCommitted,
    );
    // The target is read from a batch boundary: some targets (tansu 0.6) skip the rest of a
    // batch when a fetch starts inside it. Records before `tgt_from` are dropped client-side.
    let boundary = map
        .entries()
        .first()
        .map_or(tgt_from, |e| e.target_first.0.min(tgt_from));
    let mut tgt = Stream::new(
        target,
        tp,
        boundary,
        tgt_from,
        map.next_target().0,
        Isolation::ReadUncommitted,
    );
    let mut report = PartitionReport {
        topic: tp.topic.clone(),
        partition: tp.partition,
        matched: 0,
        differences: 0,
        details: Vec::new(),
        lag_records: -1,
        status: String::new(),
        unrecorded: 0,
    };
    let note = |report: &mut PartitionReport, d: String| {
        report.differences += 1;
        if report.details.len() < MAX_DETAILS {
            report.details.push(d);
        }
    };
    loop {
        let s = src.next().await.map_err(src_cluster)?;
        let t = tgt.next().await.map_err(tgt_cluster)?;
        match (s, t) {
            (None, None) => break,
            (Some(s), None) => note(
                &mut report,
                format!("source offset {} is missing on the target", s.offset),
            ),
            (None, Some(t)) => note(
                &mut report,
                format!("target offset {} has no source record", t.offset),
            ),
            (Some(s), Some(t)) => {
                let mapped = map.target_for(SourceOffset(s.offset));
                if mapped != Lookup::Mapped(TargetOffset(t.offset)) {
                    note(
                        &mut report,
                        format!(
                            "source offset {} maps to {mapped:?} but the record is at target offset {}",
                            s.offset, t.offset
                        ),
                    );
                } else if let Some(field) = first_difference(&s, &t) {
                    note(
                        &mut report,
                        format!(
                            "source offset {} / target offset {}: {field} differs",
                            s.offset, t.offset
                        ),
                    );
                } else {
                    report.matched += 1;
                }
            }
        }
    }
    if past_end {
        // Both streams go on from the mapped end: every target record there must be the next
        // source record (offsets may differ: a re-encoded batch is denser on the target).
        let mut src = Stream::new(
            source,
            tp,
            map.next_source().0,
            map.next_source().0,
            i64::MAX,
            Isolation::ReadCommitted,
        );
        let mut tgt = Stream::new(
            target,
            tp,
            map.next_target().0,
            map.next_target().0,
            i64::MAX,
            Isolation::ReadUncommitted,
        );
        while let Some(t) = tgt.next().await.map_err(tgt_cluster)? {
            match src.next().await.map_err(src_cluster)? {
                Some(s) if first_difference(&s, &t).is_none() => report.unrecorded += 1,
                Some(s) => note(
                    &mut report,
                    format!(
                        "target offset {} past the mirrored end ({}) is not the next source record (source offset {}): a second copy, or another producer's write",
                        t.offset,
                        map.next_target().0,
                        s.offset
                    ),
                ),
                None => note(
                    &mut report,
                    format!(
                        "target offset {} past the mirrored end ({}) has no source record",
                        t.offset,
                        map.next_target().0
                    ),
                ),
            }
        }
    }
    if let Some(Ok(end)) = source
        .list_offsets(
            std::slice::from_ref(&key),
            OffsetSpec::Latest,
            Isolation::ReadCommitted,
        )
        .await
        .remove(&key)
    {
        report.lag_records = (end.offset - map.next_source().0).max(0);
    }
    Ok(report)
}

fn first_difference(s: &Record, t: &Record) -> Option<&'static str> {
    if s.key != t.key {
        Some("key")
    } else if s.value != t.value {
        Some("value")
    } else if s.headers != t.headers {
        Some("headers")
    } else if s.timestamp != t.timestamp {
        Some("timestamp")
    } else {
        None
    }
}

/// Records of one partition in `[from, end)`, as a read_committed consumer sees them, with
/// every batch CRC verified.
struct Stream<'a> {
    client: &'a KafkaClient,
    tp: &'a TopicPartition,
    offset: i64,
    /// Records below this offset are not part of the comparison.
    from: i64,
    end: i64,
    isolation: Isolation,
    buffer: VecDeque<Record>,
    txn: TxnFilter,
}

impl<'a> Stream<'a> {
    /// Reads from `fetch_from` (a batch boundary or the exact start), keeping records in
    /// `[from, end)`.
    fn new(
        client: &'a KafkaClient,
        tp: &'a TopicPartition,
        fetch_from: i64,
        from: i64,
        end: i64,
        isolation: Isolation,
    ) -> Self {
        Self {
            client,
            tp,
            offset: fetch_from,
            from,
            end,
            isolation,
            buffer: VecDeque::new(),
            txn: TxnFilter::default(),
        }
    }

    async fn next(&mut self) -> Result<Option<Record>, Error> {
        while self.buffer.is_empty() && self.offset < self.end {
            self.fill().await?;
        }
        Ok(self.buffer.pop_front())
    }

    async fn fill(&mut self) -> Result<(), Error> {
        let pos = FetchPosition {
            topic: self.tp.topic.clone(),
            partition: self.tp.partition,
            offset: self.offset,
            max_bytes: 8 << 20,
        };
        let opts = FetchOptions {
            max_wait: Duration::from_millis(10),
            isolation: self.isolation,
            ..FetchOptions::default()
        };
        let f = self
            .client
            .fetch(&[pos], opts)
            .await
            .pop()
            .ok_or_else(|| Error::Config("fetch returned nothing".into()))?;
        if let Some(e) = f.error {
            return Err(e);
        }
        self.txn.note_aborted(&f.aborted);
        let bad = |e: batch::BatchError| Error::Protocol {
            broker: String::new(),
            api: "Fetch",
            message: format!("{}: {e}", self.tp),
        };
        let split = batch::split(f.records).map_err(bad)?;
        if split.batches.is_empty() {
            // Nothing more is readable (the end moved back, or a broker quirk): stop here so
            // the missing records are reported instead of looping.
            self.end = self.offset;
            return Ok(());
        }
        for b in split.batches {
            let h = *b.header();
            if h.last_offset() < self.offset {
                continue;
            }
            b.verify_crc().map_err(bad)?;
            self.offset = h.next_offset();
            if self.txn.keep(&h) {
                for r in records::decode(&b).map_err(bad)? {
                    if r.offset >= self.end {
                        break;
                    }
                    if r.offset >= self.from {
                        self.buffer.push_back(r);
                    }
                }
            }
        }
        Ok(())
    }
}
