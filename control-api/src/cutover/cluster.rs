//! What the cutover asks of the clusters: end offsets, fences (ACLs), producer activity and
//! the tail comparison. Each function is one idempotent question or action. Public so that
//! the integration tests can ask the same questions of real brokers.

use std::collections::BTreeMap;
use std::time::Duration;

use strait_linker::batch;
use strait_linker::client::admin::Acl;
use strait_linker::client::data::{FetchOptions, FetchPosition, Isolation, OffsetSpec};
use strait_linker::client::{Error, KafkaClient, Retry};
use strait_linker::offset::TopicPartition;
use strait_linker::state::{Layout, MapEntry, StateStore};
use tokio::task::JoinSet;

/// Attempts of [`partitions`]' metadata request when the error is transient.
const METADATA_ATTEMPTS: u64 = 5;

/// The partitions of `topics` on `client`'s cluster. A transient error (a dropped or reset
/// connection, a timeout) is retried a few times with a short backoff, so one network blip
/// does not fail a cutover step.
pub async fn partitions(
    client: &KafkaClient,
    topics: &[String],
) -> Result<Vec<TopicPartition>, String> {
    let mut attempt = 1;
    let meta = loop {
        match client.refresh_metadata(Some(topics)).await {
            Ok(meta) => break meta,
            Err(e) if e.retry() != Retry::No && attempt < METADATA_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(format!("metadata: {e}")),
        }
    };
    let mut out = Vec::new();
    for t in topics {
        let m = meta
            .iter()
            .find(|m| &m.name == t)
            .ok_or_else(|| format!("topic {t} does not exist"))?;
        if m.partitions.is_empty() {
            return Err(format!("topic {t} has no partitions"));
        }
        out.extend(m.partitions.iter().map(|p| TopicPartition::new(t, p.index)));
    }
    out.sort();
    Ok(out)
}

/// End offsets: the high watermark with read_uncommitted (from
/// [`KafkaClient::log_bounds`], since tansu answers ListOffsets latest with the last batch's
/// base + 1 and a drain would wait forever), the last stable offset with read_committed.
pub async fn ends(
    client: &KafkaClient,
    tps: &[TopicPartition],
    isolation: Isolation,
) -> Result<BTreeMap<TopicPartition, i64>, String> {
    if isolation == Isolation::ReadCommitted {
        return list_latest(client, tps, isolation).await;
    }
    let parts: Vec<(String, i32)> = tps
        .iter()
        .map(|tp| (tp.topic.clone(), tp.partition))
        .collect();
    let mut out = BTreeMap::new();
    for ((t, p), r) in client.log_bounds(&parts).await {
        let tp = TopicPartition::new(&t, p);
        let b = r.map_err(|e| format!("end offset of {tp}: {e}"))?;
        out.insert(tp, b.end);
    }
    Ok(out)
}

async fn list_latest(
    client: &KafkaClient,
    tps: &[TopicPartition],
    isolation: Isolation,
) -> Result<BTreeMap<TopicPartition, i64>, String> {
    let parts: Vec<(String, i32)> = tps
        .iter()
        .map(|tp| (tp.topic.clone(), tp.partition))
        .collect();
    let mut out = BTreeMap::new();
    for ((t, p), r) in client
        .list_offsets(&parts, OffsetSpec::Latest, isolation)
        .await
    {
        let tp = TopicPartition::new(&t, p);
        let o = r.map_err(|e| format!("end offset of {tp}: {e}"))?;
        out.insert(tp, o.offset);
    }
    Ok(out)
}

/// The DENY WRITE ACLs that fence `topics` for `principals`.
pub fn fence_acls(topics: &[String], principals: &[String]) -> Vec<Acl> {
    strait_linker::mirror::protect::protection_acls(topics, principals)
}

/// Adds the fence ACLs (creating an ACL that exists is a no-op in Kafka).
pub async fn apply_fence(client: &KafkaClient, acls: &[Acl]) -> Result<(), String> {
    client
        .create_acls(acls)
        .await
        .map_err(|e| format!("creating DENY WRITE ACLs: {e}"))
}

/// Removes exactly the fence ACLs strait added, in one request per thousand; returns how
/// many were removed.
pub async fn lift_fence(client: &KafkaClient, acls: &[Acl]) -> Result<usize, String> {
    client
        .delete_acls(acls)
        .await
        .map_err(|e| format!("deleting DENY WRITE ACLs: {e}"))
}

/// Producers the broker saw writing since `since_ms`, per partition; `None` when the broker
/// cannot tell (no DescribeProducers).
pub async fn recent_producers(
    client: &KafkaClient,
    tps: &[TopicPartition],
    since_ms: i64,
) -> Option<BTreeMap<TopicPartition, Vec<i64>>> {
    let parts: Vec<(String, i32)> = tps
        .iter()
        .map(|tp| (tp.topic.clone(), tp.partition))
        .collect();
    let mut out = BTreeMap::new();
    for ((t, p), r) in client.describe_producers(&parts).await {
        match r {
            Ok(producers) => {
                let ids: Vec<i64> = producers
                    .iter()
                    .filter(|a| a.last_timestamp >= since_ms || a.current_txn_start_offset >= 0)
                    .map(|a| a.producer_id)
                    .collect();
                out.insert(TopicPartition::new(&t, p), ids);
            }
            Err(Error::UnsupportedApi { .. }) => return None,
            Err(_) => return None,
        }
    }
    Some(out)
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
/// by [`compare_tail`].
pub async fn compare_tails(
    source: &KafkaClient,
    target: &KafkaClient,
    store: &StateStore,
    tps: &[TopicPartition],
) -> Vec<Result<String, String>> {
    let mut out: Vec<Option<Result<String, String>>> = tps.iter().map(|_| None).collect();
    let mut pending = Vec::new();
    for (i, tp) in tps.iter().enumerate() {
        match last_entry(store, tp) {
            Ok(Ok(last)) => pending.push((i, tp.clone(), last)),
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
            out[i] = Some(r);
        }
    }
    let mut done = Vec::with_capacity(tps.len());
    for (tp, r) in tps.iter().zip(out) {
        done.push(match r {
            Some(r) => r,
            None => compare_tail(source, target, store, tp).await,
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
