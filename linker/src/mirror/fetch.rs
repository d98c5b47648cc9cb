//! The engine's read side: fetch rounds from the source and what their answers do, and how
//! long the next fetch may wait at the source.
//!
//! ```text
//!  start_fetch: one Fetch in flight, every running partition that may take more data
//!        │ (not held, not reconciling or retrying, under its per-partition queue limit),
//!        │ from after `fetch_cursor`, wrapping round (`rotated`);
//!        │ max_bytes = the in-flight budget left, shared among the partitions behind
//!        │ (fair_share, partition_limit); max_wait = FetchWait::start;
//!        │ min_bytes = fetch_min_bytes at the base wait, else 1 (FetchWait::min_bytes)
//!        ▼
//!  on_fetched ─► FetchWait::answered (empty? the next full fetch may wait longer)
//!             ├► fetch_cursor = the last partition asked that brought records
//!             └► per partition: CRC-checked batches queued (PartitionRun::accept_fetch),
//!                 source end noted, errors: retry later or stop the partition
//! ```
//!
//! Why the wait grows: a Kafka broker answers a waiting fetch as soon as one of its
//! partitions has a record, so the wait costs no latency there; but each empty answer costs
//! the broker work for every partition asked. An idle, caught-up mirror of 1,000 partitions
//! asking every 10 ms (the default `fetch_max_wait`) took 44-62% of a core of the source
//! broker on the 2-core bench machine (and 15% for strait itself); with the default
//! `fetch_idle_max_wait` of 500 ms, 5-6% (and under 1%).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::engine::{Engine, Event, MirrorError};
use super::partition::Accepted;
use super::produce::RETRY_DELAY;
use crate::client::data::{FetchOptions, FetchPosition, FetchedPartition, Isolation};
use crate::client::{DATA_LANE, Retry};
use crate::offset::TopicPartition;

/// How long the next fetch may wait at the source for new records.
///
/// `fetch_max_wait` normally. After an empty answer to a fetch that asked for every running
/// partition (the whole mirror is caught up), the next such fetch waits twice as long, up to
/// `fetch_idle_max_wait`. Any records or error, or a fetch that left a partition out (one
/// reconciling, retrying or with a full queue, which must not wait long for its turn), go
/// back to `fetch_max_wait`.
#[derive(Debug, Clone)]
pub(super) struct FetchWait {
    base: Duration,
    max: Duration,
    /// The wait of the next fetch that asks for every running partition.
    idle: Duration,
    /// Whether the fetch out asked for every running partition.
    out_covers_all: bool,
}

impl FetchWait {
    /// `base` is `fetch_max_wait`, `max` is `fetch_idle_max_wait` (never below `base`).
    pub(super) fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            idle: base,
            out_covers_all: false,
        }
    }

    /// The wait of a fetch about to go out; `covers_all`: it asks for every running partition.
    pub(super) fn start(&mut self, covers_all: bool) -> Duration {
        self.out_covers_all = covers_all;
        if covers_all { self.idle } else { self.base }
    }

    /// The `min_bytes` of a fetch that waits `wait`: `configured` (`fetch_min_bytes`) at
    /// the base wait, 1 for a caught-up mirror's longer wait, which must end at the first
    /// new record.
    pub(super) fn min_bytes(&self, wait: Duration, configured: i32) -> i32 {
        if wait > self.base { 1 } else { configured }
    }

    /// The fetch out was answered; `empty`: no partition brought a record or an error.
    pub(super) fn answered(&mut self, empty: bool) {
        self.idle = if empty && self.out_covers_all {
            self.idle.saturating_mul(2).min(self.max)
        } else {
            self.base
        };
    }
}

/// The values of `slots` in key order, starting after `cursor` and wrapping round: each
/// once, whatever the cursor (which need not be a key any more).
///
/// Kafka fills a fetch response in the order the request names partitions, until
/// `max_bytes`; asked always in the same order, the first partitions would be served first
/// every time and the last ones only once those are caught up. Each fetch starts after the
/// last partition the one before served (the rotation KIP-74 asks of clients), so a backlog
/// larger than the in-flight budget is read round all its partitions.
fn rotated<'a, V>(
    slots: &'a BTreeMap<TopicPartition, V>,
    cursor: Option<&TopicPartition>,
) -> impl Iterator<Item = &'a V> {
    let (after, upto) = match cursor {
        Some(c) => (Bound::Excluded(c), Bound::Included(c)),
        None => (Bound::Unbounded, Bound::Unbounded),
    };
    let wrap = if cursor.is_some() { usize::MAX } else { 0 };
    slots
        .range::<TopicPartition, _>((after, Bound::Unbounded))
        .chain(
            slots
                .range::<TopicPartition, _>((Bound::Unbounded, upto))
                .take(wrap),
        )
        .map(|(_, v)| v)
}

/// Of the partitions in `results` that brought records, the one asked for last by a fetch
/// that went out in [`rotated`] order from `cursor`: the next fetch starts after it.
fn last_served<'a>(
    cursor: Option<&TopicPartition>,
    results: &'a [FetchedPartition],
) -> Option<&'a FetchedPartition> {
    // Asked for after the wrap (at or before the cursor) means asked for later.
    let order = |f: &'a FetchedPartition| {
        let key = (f.topic.as_str(), f.partition);
        let wrapped = cursor.is_some_and(|c| key <= (c.topic.as_str(), c.partition));
        (wrapped, key)
    };
    results
        .iter()
        .filter(|f| !f.records.is_empty())
        .max_by_key(|f| order(f))
}

/// The least a partition is asked for when a fetch's bytes are shared out: below this, a
/// backlog of many partitions would be read in small pieces, one round trip each.
const MIN_PARTITION_SHARE: usize = 1 << 20;

/// Each partition's share of a fetch of `max_bytes` that `behind` partitions (with records
/// to read, or not known yet) are asked for in: an equal part, at least
/// [`MIN_PARTITION_SHARE`], at most `max_bytes`.
///
/// Why: a broker fills a response in the order the request names partitions, and stops at
/// the request's `max_bytes` or at its own cap (Kafka's broker `fetch.max.bytes`, 55 MiB by
/// default), whichever is less. Asked for `partition_fetch_max_bytes` each, the partitions
/// named last get nothing while the others get their full part. A Kafka target takes one
/// batch per partition per produce request, so a partition that starts a backlog one fetch
/// late never catches up: it is written alone, one batch a request, once the others are
/// done. Measured (Kafka to Kafka, 8 partitions of 32 MiB of 1 KiB records, one write
/// connection): the first fetch of 64 MiB came back with 55 MiB over 7 partitions and
/// none for the 8th; 197 rounds of 7 batches, then 196 produce requests of one batch at the
/// end: 2,250 requests, 7.3 batches each, against 2,054 and 7.98 with equal parts.
fn fair_share(max_bytes: usize, behind: usize) -> usize {
    (max_bytes / behind.max(1)).clamp(MIN_PARTITION_SHARE.min(max_bytes), max_bytes.max(1))
}

/// A partition's `max_bytes` in a fetch: its limit (`partition_fetch_max_bytes`, or more once
/// a batch larger than that came back cut), at most `share` unless it was raised for such a
/// batch: a batch larger than the share must still come back whole.
fn partition_limit(limit: i32, configured: i32, share: usize) -> i32 {
    if limit > configured {
        return limit;
    }
    limit.min(i32::try_from(share).unwrap_or(i32::MAX))
}

impl Engine {
    /// Sends the next fetch to the source unless one is out: every running partition that
    /// may take more data, within the in-flight budget.
    pub(super) fn start_fetch(&mut self, tx: &mpsc::Sender<Event>) {
        if self.fetch_in_flight {
            return;
        }
        let brokers = self.source.brokers().len().max(1);
        let free = self
            .settings
            .max_in_flight_bytes
            .saturating_sub(self.budget_used);
        let per_request = (free / brokers).min(self.settings.fetch_max_bytes as usize);
        if per_request < 64 << 10 {
            return; // the budget is spent: a slow target slows fetching
        }
        let now = Instant::now();
        let mut running = 0;
        let asked: Vec<_> = rotated(&self.slots, self.fetch_cursor.as_ref())
            .filter(|s| s.view.state.is_running() && s.hold.is_none())
            .inspect(|_| running += 1)
            .filter(|s| !s.awaiting_tail && s.retry_at.is_none_or(|t| t <= now))
            .filter(|s| s.run.queued_bytes < s.run.fetch_max_bytes as usize)
            .collect();
        // Behind, or not known yet (no answer since start): the partitions the fetch's
        // bytes are shared among. The fetch goes to every source broker, `per_request` to
        // each, so the bytes to share are all of theirs (leaders taken as spread evenly):
        // one broker's bytes over every broker's partitions would ask each broker for a
        // fraction of what it may send.
        let behind = asked
            .iter()
            .filter(|s| s.view.source_end < 0 || s.view.source_end > s.run.fetch_offset)
            .count();
        let share = fair_share(per_request * brokers, behind);
        let configured = self.settings.partition_fetch_max_bytes;
        let positions: Vec<FetchPosition> = asked
            .into_iter()
            .map(|s| FetchPosition {
                topic: s.run.tp.topic.clone(),
                partition: s.run.tp.partition,
                offset: s.run.fetch_offset,
                max_bytes: partition_limit(s.run.fetch_max_bytes, configured, share)
                    .min(per_request as i32),
            })
            .collect();
        if positions.is_empty() {
            return;
        }
        let reserved = per_request * brokers;
        self.budget_used += reserved;
        self.fetch_in_flight = true;
        let max_wait = self.fetch_wait.start(positions.len() == running);
        let opts = FetchOptions {
            max_wait,
            min_bytes: self
                .fetch_wait
                .min_bytes(max_wait, self.settings.fetch_min_bytes),
            max_bytes: per_request as i32,
            isolation: Isolation::ReadCommitted,
            // Its own connection: a control request to the source (a cutover's checks, a
            // group sync, discovery) does not wait behind this long poll.
            lane: DATA_LANE,
        };
        let (client, tx) = (self.source.clone(), tx.clone());
        let sessions = self
            .settings
            .fetch_sessions
            .then(|| std::mem::take(&mut self.fetch_sessions));
        tokio::spawn(async move {
            let (results, sessions) = match sessions {
                Some(mut s) => {
                    let results = client.fetch_in_sessions(&positions, opts, &mut s).await;
                    (results, Some(s))
                }
                None => (client.fetch(&positions, opts).await, None),
            };
            let _ = tx
                .send(Event::Fetched {
                    reserved,
                    results,
                    sessions,
                })
                .await;
        });
    }

    /// Queues what a fetch brought (CRC-checked, in offset order) and settles its errors.
    pub(super) fn on_fetched(
        &mut self,
        reserved: usize,
        results: Vec<FetchedPartition>,
    ) -> Result<(), MirrorError> {
        self.fetch_in_flight = false;
        self.budget_used -= reserved;
        self.fetch_wait.answered(
            results
                .iter()
                .all(|f| f.records.is_empty() && f.error.is_none()),
        );
        if let Some(f) = last_served(self.fetch_cursor.as_ref(), &results) {
            self.fetch_cursor = Some(TopicPartition::new(&f.topic, f.partition));
        }
        for f in results {
            let tp = TopicPartition::new(&f.topic, f.partition);
            let Some(slot) = self.slots.get_mut(&tp) else {
                continue;
            };
            if f.fetch_offset != slot.run.fetch_offset || !slot.view.state.is_running() {
                continue; // stale: the partition was reset while this fetch was in flight
            }
            if let Some(err) = &f.error {
                match (err.code(), err.retry()) {
                    (Some(1), _) => {
                        let msg = format!(
                            "source offset {} of {tp} is no longer available at the source (log start {}): records were deleted before strait mirrored them",
                            f.fetch_offset, f.log_start_offset
                        );
                        self.fail(&tp, msg)?;
                    }
                    (_, Retry::No) => {
                        self.fail(&tp, format!("fetching from the source failed: {err}"))?
                    }
                    _ => {
                        crate::metrics::count_retry(err.class());
                        slot.retry_at = Some(Instant::now() + RETRY_DELAY);
                    }
                }
                continue;
            }
            slot.view.source_end = if f.last_stable_offset >= 0 {
                f.last_stable_offset
            } else {
                f.high_watermark
            };
            let had_data = !f.records.is_empty();
            let before = slot.run.fetch_offset;
            match slot.run.accept_fetch(f.records, &f.aborted) {
                Ok(Accepted::Queued(bytes)) => {
                    self.budget_used += bytes;
                    if had_data && slot.run.fetch_offset == before && slot.run.queue.is_empty() {
                        // Only a partial batch came back: the next batch is larger than the
                        // per-partition limit. Ask for more next time.
                        slot.run.fetch_max_bytes = slot.run.fetch_max_bytes.saturating_mul(2);
                    }
                }
                Ok(Accepted::CrcFailure { at, error }) => {
                    slot.view.crc_failures += 1;
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, offset = at, error = %error, "CRC mismatch on fetch; re-fetching");
                    if slot.run.crc_streak > self.settings.max_crc_retries {
                        let msg = format!(
                            "batch at source offset {at} failed its CRC {} times in a row: {error}",
                            slot.run.crc_streak
                        );
                        self.fail(&tp, msg)?;
                        continue;
                    }
                }
                Err(e) => {
                    self.fail(
                        &tp,
                        format!("unreadable data at source offset {before}: {e}"),
                    )?;
                    continue;
                }
            }
            self.apply_skips(&tp)?;
            self.publish(&tp);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn a_fetch_is_shared_equally_among_the_partitions_behind() {
        // 8 partitions behind in a 50 MiB fetch: 6.25 MiB each, so all 8 fit in it.
        assert_eq!(fair_share(50 * MIB, 8), 50 * MIB / 8);
        assert_eq!(
            partition_limit(8 << 20, 8 << 20, fair_share(50 * MIB, 8)),
            (50 << 20) / 8
        );
        // Few behind: the partition limit holds.
        assert_eq!(
            partition_limit(8 << 20, 8 << 20, fair_share(50 * MIB, 2)),
            8 << 20
        );
        // None known behind (all caught up): the whole fetch is the share.
        assert_eq!(fair_share(50 * MIB, 0), 50 * MIB);
    }

    #[test]
    fn a_share_never_goes_below_the_floor_nor_above_the_fetch() {
        assert_eq!(fair_share(50 * MIB, 1000), MIN_PARTITION_SHARE);
        // A fetch smaller than the floor (little budget left) is the whole share.
        assert_eq!(fair_share(256 << 10, 1000), 256 << 10);
    }

    #[test]
    fn a_limit_raised_for_a_large_batch_is_not_cut_by_the_share() {
        // The next batch did not fit in 8 MiB: the limit was doubled to 16 MiB, and a share
        // of 1 MiB must not cut it again (the batch would come back partial for ever).
        assert_eq!(
            partition_limit(16 << 20, 8 << 20, MIN_PARTITION_SHARE),
            16 << 20
        );
        assert_eq!(
            partition_limit(8 << 20, 8 << 20, MIN_PARTITION_SHARE),
            1 << 20
        );
    }

    const BASE: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_millis(500);

    #[test]
    fn empty_answers_to_full_fetches_double_the_wait_up_to_the_max() {
        let mut w = FetchWait::new(BASE, MAX);
        let waits: Vec<u128> = (0..9)
            .map(|_| {
                let wait = w.start(true);
                w.answered(true);
                wait.as_millis()
            })
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 500, 500, 500]);
    }

    #[test]
    fn records_or_an_error_go_back_to_the_base_wait() {
        let mut w = FetchWait::new(BASE, MAX);
        for _ in 0..5 {
            w.start(true);
            w.answered(true);
        }
        assert_eq!(w.start(true), Duration::from_millis(320));
        w.answered(false); // records (or an error) came back
        assert_eq!(w.start(true), BASE);
    }

    #[test]
    fn a_fetch_that_leaves_a_partition_out_waits_the_base_and_resets() {
        let mut w = FetchWait::new(BASE, MAX);
        for _ in 0..4 {
            w.start(true);
            w.answered(true);
        }
        // A partition is reconciling or retrying: it must not wait long for its turn.
        assert_eq!(w.start(false), BASE);
        w.answered(true);
        assert_eq!(w.start(true), BASE, "the backoff starts over");
    }

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn fetches_ask_round_the_partitions_from_after_the_last_served() {
        let slots: BTreeMap<TopicPartition, i32> = (0..5).map(|p| (tp(p), p)).collect();
        let order = |c: Option<TopicPartition>| -> Vec<i32> {
            rotated(&slots, c.as_ref()).copied().collect()
        };
        assert_eq!(order(None), [0, 1, 2, 3, 4]);
        assert_eq!(order(Some(tp(1))), [2, 3, 4, 0, 1]);
        assert_eq!(order(Some(tp(4))), [0, 1, 2, 3, 4]);
        // A cursor that is no longer a partition (stopped, or its topic deleted).
        assert_eq!(order(Some(TopicPartition::new("s", 9))), [0, 1, 2, 3, 4]);
        assert_eq!(order(Some(tp(7))), [0, 1, 2, 3, 4]);

        // Asked from after 1 (2, 3, 4, 0, 1): 4 and 0 brought records, 3 only an error.
        let answer = |p: i32, records: &'static [u8]| FetchedPartition {
            topic: "t".into(),
            partition: p,
            fetch_offset: 0,
            error: None,
            high_watermark: 0,
            last_stable_offset: 0,
            log_start_offset: 0,
            aborted: Vec::new(),
            records: bytes::Bytes::from_static(records),
        };
        let results = [
            answer(3, b""),
            answer(0, b"x"),
            answer(4, b"x"),
            answer(2, b""),
        ];
        let last =
            |c: Option<TopicPartition>| last_served(c.as_ref(), &results).map(|f| f.partition);
        assert_eq!(last(Some(tp(1))), Some(0));
        assert_eq!(last(None), Some(4));
        assert_eq!(
            last_served(Some(&tp(1)), &results[..1]).map(|f| f.partition),
            None
        );
    }

    #[test]
    fn min_bytes_apply_at_the_base_wait_only() {
        let mut w = FetchWait::new(BASE, MAX);
        let wait = w.start(true);
        assert_eq!(w.min_bytes(wait, 1 << 20), 1 << 20);
        w.answered(true);
        let longer = w.start(true);
        assert_eq!(longer, 2 * BASE);
        assert_eq!(
            w.min_bytes(longer, 1 << 20),
            1,
            "caught up: the first record ends it"
        );
    }

    #[test]
    fn an_idle_max_below_the_base_is_the_base() {
        let mut w = FetchWait::new(Duration::from_secs(3), MAX);
        for _ in 0..3 {
            assert_eq!(w.start(true), Duration::from_secs(3));
            w.answered(true);
        }
    }
}
