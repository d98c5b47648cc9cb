//! The probe's log checks on the scratch topic: fetch from inside a batch, ListOffsets latest
//! and by timestamp, and DeleteRecords (run last: some brokers advertise it and close the
//! connection when it arrives).

use std::time::Duration;

use super::probe::{Guarantee, Outcome, Probe, encode, guarantee, missing, now_ms};
use crate::batch;
use crate::client::Error;
use crate::client::data::{Isolation, OffsetSpec};

/// Offsets of the probe records written by [`Probe::write_data`].
#[derive(Debug)]
pub(super) struct Layout {
    /// The single-record batch: (offset, timestamp).
    single: (i64, i64),
    /// The 3-record batch: base offset and its records' timestamps.
    base: i64,
    timestamps: [i64; 3],
}

impl Layout {
    pub(super) fn last(&self) -> i64 {
        self.base + 2
    }
}

impl Probe<'_> {
    /// A 1-record batch, then a 3-record batch (last, so that ListOffsets latest must see
    /// past its base offset), with CreateTime timestamps an hour in the past.
    pub(super) async fn write_data(&self) -> Result<Layout, Error> {
        let t0 = (now_ms() - 3_600_000) / 1000 * 1000;
        let single = self.produce(encode(&[t0], None, false)).await?;
        let timestamps = [t0 + 10_000, t0 + 10_001, t0 + 10_002];
        let base = self.produce(encode(&timestamps, None, false)).await?;
        Ok(Layout {
            single: (single, t0),
            base,
            timestamps,
        })
    }

    pub(super) async fn fetch_inside_batch(&self, l: &Layout) -> Guarantee {
        let id = "fetch_inside_batch";
        let at = l.base + 1;
        let f = self
            .fetch(at, Isolation::ReadUncommitted, Duration::from_millis(200))
            .await;
        let batch_text = format!("inside the batch {}..={}", l.base, l.last());
        if let Some(e) = f.error {
            return guarantee(
                id,
                Outcome::NotHeld,
                format!("fetch at offset {at} ({batch_text}) failed: {e}"),
            );
        }
        let first = batch::split(f.records)
            .ok()
            .and_then(|s| s.batches.first().map(|b| *b.header()));
        match first {
            Some(h) if h.base_offset <= at && at <= h.last_offset() => guarantee(
                id,
                Outcome::Held,
                format!(
                    "fetch at offset {at} returned the batch {}..={} that contains it",
                    h.base_offset,
                    h.last_offset()
                ),
            ),
            Some(h) => guarantee(
                id,
                Outcome::NotHeld,
                format!(
                    "fetch at offset {at} ({batch_text}) returned a batch starting at {}: \
                     records {at}..={} were skipped",
                    h.base_offset,
                    l.last()
                ),
            ),
            None => guarantee(
                id,
                Outcome::NotHeld,
                format!(
                    "fetch at offset {at} ({batch_text}) returned no records although the \
                     high watermark is {}",
                    f.high_watermark
                ),
            ),
        }
    }

    pub(super) async fn list_offsets_latest(&self, l: &Layout) -> Guarantee {
        let id = "list_offsets_latest";
        let hw = match self.high_watermark().await {
            Ok(hw) => hw,
            Err(e) => {
                return guarantee(
                    id,
                    Outcome::Untested,
                    format!("cannot read the high watermark: {e}"),
                );
            }
        };
        match self.list_offset(OffsetSpec::Latest).await {
            Ok(latest) if latest == hw && hw == l.last() + 1 => guarantee(
                id,
                Outcome::Held,
                format!("ListOffsets latest returned {latest}, the high watermark"),
            ),
            Ok(latest) => guarantee(
                id,
                Outcome::NotHeld,
                format!(
                    "ListOffsets latest returned {latest}, but the high watermark is {hw} (the \
                     last batch holds offsets {}..={})",
                    l.base,
                    l.last()
                ),
            ),
            Err(e) => guarantee(
                id,
                Outcome::NotHeld,
                format!("ListOffsets latest failed: {e}"),
            ),
        }
    }

    pub(super) async fn list_offsets_timestamp(&self, l: &Layout) -> Guarantee {
        let id = "list_offsets_timestamp";
        let future = now_ms() + 86_400_000;
        let queries = [
            (l.single.1, l.single.0, "the single record"),
            (l.timestamps[0], l.base, "the batch's first record"),
            (l.timestamps[1], l.base + 1, "the batch's second record"),
            (future, -1, "a day ahead (no record)"),
        ];
        let mut seen = Vec::new();
        let mut held = true;
        for (ts, want, what) in queries {
            match self.list_offset(OffsetSpec::Timestamp(ts)).await {
                Ok(got) => {
                    held &= got == want;
                    seen.push(format!("{what}: {got} (expected {want})"));
                }
                Err(e) => {
                    return guarantee(
                        id,
                        Outcome::NotHeld,
                        format!("ListOffsets by timestamp failed for {what}: {e}"),
                    );
                }
            }
        }
        let outcome = if held {
            Outcome::Held
        } else {
            Outcome::NotHeld
        };
        guarantee(
            id,
            outcome,
            format!("offsets found by CreateTime: {}", seen.join("; ")),
        )
    }

    pub(super) async fn delete_records(&self) -> Guarantee {
        let id = "delete_records";
        if let Some(gone) = missing(&self.versions, &[(21, "DeleteRecords")]) {
            return guarantee(
                id,
                Outcome::NotHeld,
                format!("the target does not offer {gone}"),
            );
        }
        let r = self
            .client
            .delete_records(&[(self.key(), 1)], Duration::from_secs(10))
            .await
            .remove(&self.key());
        match r {
            Some(Ok(low)) => {
                let earliest = self.list_offset(OffsetSpec::Earliest).await;
                let below = self
                    .fetch(0, Isolation::ReadUncommitted, Duration::ZERO)
                    .await
                    .error
                    .and_then(|e| e.code());
                match earliest {
                    Ok(1) if low == 1 => guarantee(
                        id,
                        Outcome::Held,
                        format!(
                            "deleting before offset 1 moved the log start to 1 (ListOffsets \
                             earliest = 1; a fetch at 0 answers {})",
                            below.map_or_else(
                                || "without error".to_owned(),
                                |c| match kafka_protocol::ResponseError::try_from_code(c) {
                                    Some(e) => format!("{e} ({c})"),
                                    None => format!("error {c}"),
                                }
                            )
                        ),
                    ),
                    other => guarantee(
                        id,
                        Outcome::NotHeld,
                        format!(
                            "DeleteRecords before offset 1 reported log start {low}, ListOffsets \
                             earliest then gave {other:?}"
                        ),
                    ),
                }
            }
            Some(Err(e @ Error::Connection { .. })) => guarantee(
                id,
                Outcome::NotHeld,
                format!(
                    "the target advertises DeleteRecords but closed the connection on it ({e})"
                ),
            ),
            Some(Err(e)) => guarantee(id, Outcome::NotHeld, format!("DeleteRecords failed: {e}")),
            None => guarantee(id, Outcome::Untested, "DeleteRecords returned no result"),
        }
    }
}
