//! What the cutover asks of the clusters: end offsets, fences (ACLs) and producer activity
//! (the tail comparison is in [`super::tails`]). Each function is one idempotent question or
//! action. Public so that the integration tests can ask the same questions of real brokers.

use std::collections::BTreeMap;
use std::time::Duration;

use strait_linker::client::admin::Acl;
use strait_linker::client::data::{Isolation, OffsetSpec};
use strait_linker::client::{Error, KafkaClient, Retry};
use strait_linker::offset::TopicPartition;

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
