//! The drain's tail comparison: the last batch strait mirrored of each partition, read on
//! both clusters and compared byte for byte (records section, count, max timestamp).
//!
//! ```text
//!  store: last map entry per partition ──► TailCache: same entry compared Ok < 5 s ago? reuse
//!        │ the rest, 64 partitions per Fetch, 4 reads at a time
//!        ▼
//!  source Fetch at the entry's last offset ──► the batch holding it ──► where it landed
//!        ──► target Fetch there ──► judge ──► Ok(detail) / Err(detail)
//!  a partition the batched reads did not answer whole ──► compare_tail, alone
//! ```
//!
//! Public so that the integration tests can run it against real brokers.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use strait_linker::batch;
use strait_linker::client::KafkaClient;
use strait_linker::client::data::{FetchOptions, FetchPosition, Isolation};
use strait_linker::offset::TopicPartition;
use strait_linker::state::{Layout, MapEntry, StateStore};
use tokio::task::JoinSet;

/// Tail comparisons already made in one cutover step, by partition and the map entry they
/// compared. The drain compares the wave's tails while its first drained check runs (at
/// 5,000 partitions each takes about half a second, one after the other they were the
/// drain); the comparison after the check then reads again only the partitions whose last
/// entry moved meanwhile, or whose comparison is older than [`TAIL_REUSE`].
///
/// Only equal tails are kept: a difference or an error is always read again.
#[derive(Debug, Default)]
pub struct TailCache {
    equal: HashMap<TopicPartition, (MapEntry, Instant, String)>,
}

/// How old a comparison may be and still stand for the partition's tail (its map entry
/// unchanged). The check is a point-in-time one; this bounds how far before the drained
/// point that time may lie.
pub const TAIL_REUSE: Duration = Duration::from_secs(5);

impl TailCache {
    /// The detail of an equal comparison of `tp` at `entry`, made at most [`TAIL_REUSE`]
    /// before `now`.
    fn reuse(&self, tp: &TopicPartition, entry: &MapEntry, now: Instant) -> Option<String> {
        let (seen, at, detail) = self.equal.get(tp)?;
        (seen == entry && now.saturating_duration_since(*at) <= TAIL_REUSE).then(|| detail.clone())
    }

    fn keep(
        &mut self,
        tp: &TopicPartition,
        entry: &MapEntry,
        at: Instant,
        r: &Result<String, String>,
    ) {
        match r {
            Ok(detail) => {
                self.equal
                    .insert(tp.clone(), (entry.clone(), at, detail.clone()));
            }
            Err(_) => {
                self.equal.remove(tp);
            }
        }
    }
}

/// Compares the last batch strait mirrored of `tp` on both clusters: `Ok(detail)` when equal
/// (or nothing to compare), `Err(detail)` when they differ.
pub async fn compare_tail(
    source: &KafkaClient,
    target: &KafkaClient,
    store: &StateStore,
    tp: &TopicPartition,
) -> Result<String, String> {
    let last = match last_entry(store, tp)? {
        Ok(last) => last,
        Err(nothing) => return Ok(nothing),
    };
    // The source batch holding the entry's last offset (Kafka returns a batch from inside).
    let src = fetch_first(source, tp, last.source_last.0).await?;
    let Some(src) = src
        .into_iter()
        .rfind(|b| b.header().base_offset <= last.source_last.0)
    else {
        return Ok(format!(
            "{tp}: source batch at {} no longer readable (retention)",
            last.source_last
        ));
    };
    let target_base = target_base(&last, &src);
    // A batch boundary on the target, so targets that cannot fetch from inside a batch work.
    let tgt = fetch_first(target, tp, target_base).await?;
    let Some(tgt) = tgt.into_iter().next() else {
        return Err(format!("{tp}: no batch at target offset {target_base}"));
    };
    judge(tp, &last, &src, &tgt, target_base)
}

/// Partitions whose tails one Fetch reads on each side in [`compare_tails`], the bytes it
/// asks per partition (enough for the batches producers write, 16 KiB to 1 MiB: an answer of
/// at most 64 MiB), and how many such reads run at once.
const TAILS_PER_FETCH: usize = 64;
const TAIL_BYTES: i32 = 1 << 20;
const TAIL_FETCHES_IN_FLIGHT: usize = 4;

/// [`compare_tail`] for every partition of `tps`, in order, reading the tails of up to
/// [`TAILS_PER_FETCH`] partitions per Fetch on each side, a few reads at a time. It runs
/// inside the write pause, where two round trips per partition, one partition after the
/// other, cost a wave of 1,000 partitions 12 s. A partition the batched read does not answer
/// with a whole batch (a larger one, an error, a log moved by retention) is compared alone,
/// by [`compare_tail`]. Equal tails in `cache` are not read again (see [`TailCache`]).
///
/// Cancel-safe: it only reads; comparisons finished before it was dropped stay in `cache`.
pub async fn compare_tails(
    source: &KafkaClient,
    target: &KafkaClient,
    store: &StateStore,
    tps: &[TopicPartition],
    cache: &mut TailCache,
) -> Vec<Result<String, String>> {
    let mut out: Vec<Option<Result<String, String>>> = tps.iter().map(|_| None).collect();
    let mut pending = Vec::new();
    let mut entries: Vec<Option<MapEntry>> = tps.iter().map(|_| None).collect();
    let now = Instant::now();
    for (i, tp) in tps.iter().enumerate() {
        match last_entry(store, tp) {
            Ok(Ok(last)) => {
                if let Some(detail) = cache.reuse(tp, &last, now) {
                    out[i] = Some(Ok(detail));
                    continue;
                }
                entries[i] = Some(last.clone());
                pending.push((i, tp.clone(), last));
            }
            Ok(Err(nothing)) => out[i] = Some(Ok(nothing)),
            Err(e) => out[i] = Some(Err(e)),
        }
    }
    let mut chunks = pending.chunks(TAILS_PER_FETCH).map(<[_]>::to_vec);
    let mut set = JoinSet::new();
    loop {
        while set.len() < TAIL_FETCHES_IN_FLIGHT
            && let Some(chunk) = chunks.next()
        {
            let (source, target) = (source.clone(), target.clone());
            set.spawn(async move { compare_chunk(&source, &target, chunk).await });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        // A chunk whose task failed leaves its partitions to the one-by-one comparison.
        for (i, r) in joined.unwrap_or_default() {
            if let Some(entry) = &entries[i] {
                cache.keep(&tps[i], entry, now, &r);
            }
            out[i] = Some(r);
        }
    }
    let mut done = Vec::with_capacity(tps.len());
    for (i, (tp, r)) in tps.iter().zip(out).enumerate() {
        done.push(match r {
            Some(r) => r,
            None => {
                let r = compare_tail(source, target, store, tp).await;
                if let Some(entry) = &entries[i] {
                    cache.keep(tp, entry, now, &r);
                }
                r
            }
        });
    }
    done
}

/// One batched comparison: the source tails of `chunk` (index, partition, last map entry) in
/// one read, then the target batches where they landed in another. Partitions either read
/// did not answer with a whole batch are left out.
async fn compare_chunk(
    source: &KafkaClient,
    target: &KafkaClient,
    chunk: Vec<(usize, TopicPartition, MapEntry)>,
) -> Vec<(usize, Result<String, String>)> {
    let at: Vec<(usize, &TopicPartition, i64)> = chunk
        .iter()
        .map(|(i, tp, last)| (*i, tp, last.source_last.0))
        .collect();
    let src = fetch_tails(source, &at).await;
    let mut found = Vec::new();
    for (i, tp, last) in &chunk {
        let batch = src.get(i).and_then(|bs| {
            bs.iter()
                .rfind(|b| b.header().base_offset <= last.source_last.0)
        });
        if let Some(b) = batch {
            found.push((*i, tp, last, b, target_base(last, b)));
        }
    }
    let at: Vec<(usize, &TopicPartition, i64)> = found
        .iter()
        .map(|(i, tp, _, _, base)| (*i, *tp, *base))
        .collect();
    let tgt = fetch_tails(target, &at).await;
    found
        .into_iter()
        .filter_map(|(i, tp, last, src, base)| {
            let t = tgt.get(&i)?.first()?;
            Some((i, judge(tp, last, src, t, base)))
        })
        .collect()
}

/// The last entry of `tp`'s offset map; `Ok(Err(detail))` when there is nothing to compare.
fn last_entry(store: &StateStore, tp: &TopicPartition) -> Result<Result<MapEntry, String>, String> {
    if store.checkpoint(tp).map_err(|e| e.to_string())?.is_none() {
        return Err(format!("{tp}: no offset map"));
    }
    Ok(store
        .last_entry(tp)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{tp}: nothing mirrored")))
}

/// Where the target copy of source batch `src` (within map entry `last`) starts.
fn target_base(last: &MapEntry, src: &batch::RawBatch) -> i64 {
    match &last.layout {
        Layout::Shifted => last.target_first.0 + (src.header().base_offset - last.source_first.0),
        Layout::Dense { .. } => last.target_first.0,
    }
}

/// Whether source batch `src` and target batch `tgt` (at `target_base`) are the same batch.
fn judge(
    tp: &TopicPartition,
    last: &MapEntry,
    src: &batch::RawBatch,
    tgt: &batch::RawBatch,
    target_base: i64,
) -> Result<String, String> {
    let (h, t) = (src.header(), tgt.header());
    let same = src.records_section() == tgt.records_section()
        && h.record_count == t.record_count
        && h.max_timestamp == t.max_timestamp;
    let dense_ok = matches!(last.layout, Layout::Dense { .. });
    if same || dense_ok && h.record_count == t.record_count {
        Ok(format!(
            "{tp}: source batch {}..={} equals target batch at {target_base}",
            h.base_offset,
            h.last_offset()
        ))
    } else {
        Err(format!(
            "{tp}: source batch {}..={} differs from target batch at {target_base}",
            h.base_offset,
            h.last_offset()
        ))
    }
}

/// The whole batches read at `at` (index, partition, offset) in one Fetch per leader, read
/// uncommitted, without waiting; a partition that answered with an error or no whole batch
/// is left out.
async fn fetch_tails(
    client: &KafkaClient,
    at: &[(usize, &TopicPartition, i64)],
) -> BTreeMap<usize, Vec<batch::RawBatch>> {
    if at.is_empty() {
        return BTreeMap::new();
    }
    let positions: Vec<FetchPosition> = at
        .iter()
        .map(|(_, tp, offset)| FetchPosition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset: *offset,
            max_bytes: TAIL_BYTES,
        })
        .collect();
    let opts = FetchOptions {
        max_wait: Duration::ZERO,
        isolation: Isolation::ReadUncommitted,
        ..FetchOptions::default()
    };
    let index: BTreeMap<(&str, i32, i64), usize> = at
        .iter()
        .map(|(i, tp, offset)| ((tp.topic.as_str(), tp.partition, *offset), *i))
        .collect();
    let mut out = BTreeMap::new();
    for f in client.fetch(&positions, opts).await {
        let Some(&i) = index.get(&(f.topic.as_str(), f.partition, f.fetch_offset)) else {
            continue;
        };
        if f.error.is_some() {
            continue;
        }
        // CRC-checked: a batch damaged on the way is compared alone, read again, rather
        // than reported as a difference between the clusters.
        if let Ok(split) = batch::split_verified(f.records)
            && !split.batches.is_empty()
        {
            out.insert(i, split.batches);
        }
    }
    out
}

async fn fetch_first(
    client: &KafkaClient,
    tp: &TopicPartition,
    offset: i64,
) -> Result<Vec<batch::RawBatch>, String> {
    // A batch that fails its CRC check was damaged on the way (the log's copy is checked by
    // the broker): read it again, a few times, before calling the comparison off.
    let mut attempt = 1;
    loop {
        let f = client
            .fetch_at(&tp.topic, tp.partition, offset)
            .await
            .ok_or_else(|| format!("{tp}: empty fetch response"))?;
        if let Some(e) = f.error {
            return Err(format!("{tp}: fetch at {offset}: {e}"));
        }
        match batch::split_verified(f.records) {
            Ok(split) => return Ok(split.batches),
            Err(e) if attempt < TAIL_READ_ATTEMPTS => {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, offset, "tail read again: {e}");
                attempt += 1;
            }
            Err(e) => {
                return Err(format!(
                    "{tp}: fetch at {offset}: {e} ({TAIL_READ_ATTEMPTS} reads)"
                ));
            }
        }
    }
}

/// Reads of one partition's tail in [`compare_tail`] before a damaged answer counts as an
/// error.
const TAIL_READ_ATTEMPTS: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use strait_linker::offset::{SourceOffset, TargetOffset};

    fn entry(last: i64) -> MapEntry {
        MapEntry::shifted(SourceOffset(0), SourceOffset(last), TargetOffset(0))
    }

    #[test]
    fn an_equal_tail_is_reused_only_for_the_same_entry_and_while_recent() {
        let tp = TopicPartition::new("t", 0);
        let other = TopicPartition::new("t", 1);
        let t0 = Instant::now();
        let mut cache = TailCache::default();
        cache.keep(&tp, &entry(9), t0, &Ok("equal".into()));
        assert_eq!(cache.reuse(&tp, &entry(9), t0), Some("equal".into()));
        assert_eq!(
            cache.reuse(&tp, &entry(9), t0 + TAIL_REUSE),
            Some("equal".into())
        );
        assert_eq!(
            cache.reuse(&tp, &entry(9), t0 + TAIL_REUSE + Duration::from_millis(1)),
            None,
            "too old"
        );
        assert_eq!(cache.reuse(&tp, &entry(12), t0), None, "the map moved");
        assert_eq!(
            cache.reuse(&other, &entry(9), t0),
            None,
            "another partition"
        );
        // A difference is never kept, and it drops the earlier equal comparison.
        cache.keep(&tp, &entry(9), t0, &Err("differs".into()));
        assert_eq!(cache.reuse(&tp, &entry(9), t0), None);
    }
}
