//! Data-path operations: Produce taking raw record blobs, ListOffsets and log bounds; Fetch
//! lives in `fetch.rs` (its types are re-exported here). Records are never decoded here.
//!
//! Each call groups its partitions by leader and sends one request per leader, concurrently,
//! so many partitions cost one round trip per broker. Partition-level errors are returned per
//! partition (the mirror decides per partition what to do); a NOT_LEADER-style error also
//! drops the topic's cached leadership so the next call routes afresh.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, ProduceRequest, ProduceResponse};

use super::error::{Context, Error, Result, Retry};
pub use super::fetch::{
    AbortedTransaction, FetchOptions, FetchPosition, FetchSessions, FetchedPartition,
};
pub use super::produce_body::ProduceRecords;
use super::produce_body::produce_body;
use super::{KafkaClient, topic_name};

/// Transaction isolation for Fetch and ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// See everything up to the high watermark, including open and aborted transactions.
    ReadUncommitted,
    /// See only up to the last stable offset; the response lists aborted transactions.
    #[default]
    ReadCommitted,
}

impl Isolation {
    pub(super) fn code(self) -> i8 {
        match self {
            Isolation::ReadUncommitted => 0,
            Isolation::ReadCommitted => 1,
        }
    }
}

/// One partition's records to produce: one record batch (Apache Kafka takes no more), or
/// several consecutive ones where the target takes them.
#[derive(Debug, Clone)]
pub struct ProduceItem {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The record batches, bytes as they will be stored (`Bytes::into` for one buffer).
    pub records: ProduceRecords,
}

/// What the broker said about one produced batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAck {
    /// Offset assigned to the batch's first record.
    pub base_offset: i64,
    /// Log start offset after the append (-1 when not reported).
    pub log_start_offset: i64,
}

/// Where a partition's log starts and ends ([`KafkaClient::log_bounds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// Log start offset.
    pub start: i64,
    /// High watermark (the end of the log).
    pub end: i64,
}

/// Which offset ListOffsets should find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The end of the log (high watermark, or LSO with read_committed).
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn code(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// A ListOffsets answer for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset found (-1 when no record matches a timestamp).
    pub offset: i64,
    /// Timestamp of that record, for timestamp lookups (-1 otherwise).
    pub timestamp: i64,
}

/// Per-partition results keyed by (topic, partition).
pub type PartitionResults<T> = BTreeMap<(String, i32), Result<T>>;

impl KafkaClient {
    /// Produces one batch per partition, one request per leader, concurrently, with
    /// `acks` (-1 = all in-sync replicas) and a broker-side `timeout`.
    pub async fn produce(
        &self,
        items: Vec<ProduceItem>,
        acks: i16,
        timeout: Duration,
    ) -> PartitionResults<ProduceAck> {
        // Queued on every leader first, then awaited: the requests run concurrently.
        self.queue_produce(items, acks, timeout, 0..1).await.await
    }

    /// [`produce`](Self::produce) in two steps, for a caller that keeps several produces in
    /// flight and needs the brokers to see them in order: when this returns, every request is
    /// queued on its leader's connection, behind those queued by earlier calls; the returned
    /// future waits for the answers. Call it from one task, one call after the other.
    ///
    /// `lanes` spreads the partitions over those connections per broker (`0..1` = the
    /// control connection only; the mirror writes over lanes from [`super::DATA_LANE`] up).
    /// A partition always goes over the same lane
    /// ([`produce_lane`]), so its writes still reach the broker in call order; Kafka handles
    /// one request per connection at a time, so lanes let it append for several requests at
    /// once.
    ///
    /// Cancel safety: dropping the returned future abandons the answers, not the writes.
    pub async fn queue_produce(
        &self,
        items: Vec<ProduceItem>,
        acks: i16,
        timeout: Duration,
        lanes: std::ops::Range<usize>,
    ) -> impl std::future::Future<Output = PartitionResults<ProduceAck>> + Send + 'static {
        let (by_leader, failed) = self
            .group_by_leader(&items, |i| (&i.topic, i.partition))
            .await;
        let mut out: PartitionResults<ProduceAck> = failed
            .into_iter()
            .map(|f| {
                (
                    (f.topic, f.partition),
                    Err(f.error.expect("grouping failure has an error")),
                )
            })
            .collect();
        let count = lanes.len().max(1);
        let mut by_lane: BTreeMap<(i32, usize), Vec<ProduceItem>> = BTreeMap::new();
        for (leader, batch) in by_leader {
            for item in batch {
                let lane = lanes.start + produce_lane(&item.topic, item.partition, count);
                by_lane.entry((leader, lane)).or_default().push(item);
            }
        }
        let mut queued = Vec::new();
        for ((leader, lane), batch) in by_lane {
            let keys: Vec<(String, i32)> = batch
                .iter()
                .map(|i| (i.topic.clone(), i.partition))
                .collect();
            let items = batch
                .into_iter()
                .map(|i| (i.topic, i.partition, i.records))
                .collect();
            let inflight = match self.broker_connection_on(leader, lane).await {
                Ok(conn) => {
                    conn.queue_body_with_extra_time::<ProduceRequest>(
                        |version| produce_body(items, acks, timeout, version),
                        timeout,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            queued.push((keys, inflight));
        }
        let client = self.clone();
        let started = Instant::now();
        async move {
            for (keys, inflight) in queued {
                let r = match inflight {
                    Ok(f) => f.response().await.map(|resp| {
                        crate::metrics::observe_produce(client.cluster(), started.elapsed());
                        produce_results(resp)
                    }),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(results) => out.extend(results),
                    Err(e) => out.extend(keys.into_iter().map(|k| (k, Err(e.clone())))),
                }
            }
            for e in out.values().filter_map(|r| r.as_ref().err()) {
                client.note_partition_error(e);
            }
            out
        }
    }
    /// Where each partition's log starts and ends (high watermark), read with a 1-byte Fetch
    /// at offset 0.
    ///
    /// This is the one place that works around brokers whose ListOffsets(latest) is wrong:
    /// tansu 0.6.0 answers the last batch's base offset + 1 (tansu-eval.md), which would
    /// make an empty-looking or short target. Fetch reports the true high watermark and log
    /// start everywhere. Where offset 0 is below the log start (out of range), the log was
    /// truncated by DeleteRecords or retention, which tansu cannot do, so ListOffsets
    /// earliest/latest answer instead.
    pub async fn log_bounds(&self, partitions: &[(String, i32)]) -> PartitionResults<LogBounds> {
        let positions: Vec<FetchPosition> = partitions
            .iter()
            .map(|(t, p)| FetchPosition {
                topic: t.clone(),
                partition: *p,
                offset: 0,
                max_bytes: 1,
            })
            .collect();
        let opts = FetchOptions {
            max_wait: Duration::ZERO,
            min_bytes: 1,
            max_bytes: 1,
            isolation: Isolation::ReadUncommitted,
            lane: 0,
        };
        let mut out: PartitionResults<LogBounds> = BTreeMap::new();
        let mut truncated = Vec::new();
        for f in self.fetch(&positions, opts).await {
            let key = (f.topic.clone(), f.partition);
            match f.error {
                None => {
                    let bounds = LogBounds {
                        start: f.log_start_offset.max(0),
                        end: f.high_watermark,
                    };
                    out.insert(key, Ok(bounds));
                }
                Some(e) if e.code() == Some(1) => truncated.push(key),
                Some(e) => {
                    out.insert(key, Err(e));
                }
            }
        }
        if !truncated.is_empty() {
            let mut starts = self
                .list_offsets(&truncated, OffsetSpec::Earliest, Isolation::ReadUncommitted)
                .await;
            let mut ends = self
                .list_offsets(&truncated, OffsetSpec::Latest, Isolation::ReadUncommitted)
                .await;
            for key in truncated {
                let missing = || {
                    Err(Error::NoLeader {
                        context: Context::partition(&key.0, key.1),
                    })
                };
                let start = starts.remove(&key).unwrap_or_else(missing);
                let end = ends.remove(&key).unwrap_or_else(missing);
                let bounds = start.and_then(|s| {
                    end.map(|e| LogBounds {
                        start: s.offset,
                        end: e.offset,
                    })
                });
                out.insert(key, bounds);
            }
        }
        for (t, p) in partitions {
            out.entry((t.clone(), *p)).or_insert_with(|| {
                Err(Error::NoLeader {
                    context: Context::partition(t, *p),
                })
            });
        }
        out
    }

    /// Looks up offsets for partitions, one request per leader.
    pub async fn list_offsets(
        &self,
        partitions: &[(String, i32)],
        spec: OffsetSpec,
        isolation: Isolation,
    ) -> PartitionResults<ListedOffset> {
        let (by_leader, failed) = self.group_by_leader(partitions, |(t, p)| (t, *p)).await;
        let mut out: PartitionResults<ListedOffset> = failed
            .into_iter()
            .map(|f| {
                (
                    (f.topic, f.partition),
                    Err(f.error.expect("grouping failure has an error")),
                )
            })
            .collect();
        for (leader, ps) in by_leader {
            match self.list_offsets_from(leader, &ps, spec, isolation).await {
                Ok(r) => out.extend(r),
                Err(e) => out.extend(ps.into_iter().map(|k| (k, Err(e.clone())))),
            }
        }
        for e in out.values().filter_map(|r| r.as_ref().err()) {
            self.note_partition_error(e);
        }
        out
    }

    /// ListOffsets against one broker.
    pub async fn list_offsets_from(
        &self,
        node: i32,
        partitions: &[(String, i32)],
        spec: OffsetSpec,
        isolation: Isolation,
    ) -> Result<PartitionResults<ListedOffset>> {
        let conn = self.broker_connection(node).await?;
        let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(*p)
                    .with_timestamp(spec.code()),
            );
        }
        let req = ListOffsetsRequest::default()
            // -1: a consumer, not a follower replica (the crate's default is 0).
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation.code())
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp = conn.send(&req).await?;
        let mut out = BTreeMap::new();
        for t in resp.topics {
            let topic = t.name.0.to_string();
            for p in t.partitions {
                let r = if p.error_code == 0 {
                    Ok(ListedOffset {
                        offset: p.offset,
                        timestamp: p.timestamp,
                    })
                } else {
                    Err(Error::broker(
                        "ListOffsets",
                        p.error_code,
                        Context::partition(&topic, p.partition_index),
                        None::<String>,
                    ))
                };
                out.insert((topic.clone(), p.partition_index), r);
            }
        }
        Ok(out)
    }

    /// Groups items by partition leader. Items whose leader is unknown come back as failed
    /// fetch results carrying a `NoLeader` (or metadata) error.
    pub(crate) async fn group_by_leader<'a, T: Clone + Sync, F>(
        &self,
        items: &'a [T],
        key: F,
    ) -> (BTreeMap<i32, Vec<T>>, Vec<FetchedPartition>)
    where
        F: Fn(&'a T) -> (&'a String, i32) + Sync,
    {
        let mut by_leader: BTreeMap<i32, Vec<T>> = BTreeMap::new();
        let mut failed = Vec::new();
        for item in items {
            let (topic, partition) = key(item);
            match self.leader(topic, partition).await {
                Ok(l) => by_leader.entry(l).or_default().push(item.clone()),
                Err(e) => failed.push(FetchedPartition {
                    topic: topic.clone(),
                    partition,
                    fetch_offset: -1,
                    error: Some(e),
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                    aborted: Vec::new(),
                    records: Bytes::new(),
                }),
            }
        }
        (by_leader, failed)
    }

    /// Drops cached routing that a partition error shows to be stale.
    pub(super) fn note_partition_error(&self, e: &Error) {
        if matches!(e.retry(), Retry::RefreshMetadata | Retry::Reconnect) {
            self.refresh_for(e);
        }
    }
}

/// One Produce request: each item's batch for its partition.
/// Each partition's outcome in a Produce response.
fn produce_results(resp: ProduceResponse) -> PartitionResults<ProduceAck> {
    let mut out = BTreeMap::new();
    for t in resp.responses {
        let topic = t.name.0.to_string();
        for p in t.partition_responses {
            let r = if p.error_code == 0 {
                Ok(ProduceAck {
                    base_offset: p.base_offset,
                    log_start_offset: p.log_start_offset,
                })
            } else {
                let mut msg = p.error_message.as_ref().map(|m| m.to_string());
                if let Some(re) = p.record_errors.first()
                    && let Some(m) = &re.batch_index_error_message
                {
                    msg = Some(format!(
                        "{}; record {}: {m}",
                        msg.unwrap_or_default(),
                        re.batch_index
                    ));
                }
                Err(Error::broker(
                    "Produce",
                    p.error_code,
                    Context::partition(&topic, p.index),
                    msg,
                ))
            };
            out.insert((topic.clone(), p.index), r);
        }
    }
    out
}

/// The connection lane (`0..lanes`) that `topic`/`partition` is produced over: fixed for the
/// life of the process, and consecutive partitions of a topic go to consecutive lanes so a
/// topic's partitions spread evenly.
pub fn produce_lane(topic: &str, partition: i32, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    // FNV-1a: stable across runs and platforms (the std hasher is not promised to be).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let lanes = lanes as u64;
    ((h % lanes + u64::from(partition.unsigned_abs()) % lanes) % lanes) as usize
}

#[cfg(test)]
mod tests {
    use super::produce_lane;

    #[test]
    fn a_topics_partitions_spread_evenly_over_lanes_and_keep_their_lane() {
        assert_eq!(produce_lane("orders", 7, 1), 0);
        for lanes in 2..=5 {
            let mut count = vec![0; lanes];
            for p in 0..(lanes as i32 * 4) {
                let lane = produce_lane("orders", p, lanes);
                assert!(lane < lanes);
                assert_eq!(lane, produce_lane("orders", p, lanes), "stable");
                count[lane] += 1;
            }
            assert!(count.iter().all(|c| *c == 4), "{lanes} lanes: {count:?}");
        }
        // Consecutive partitions take consecutive lanes, cycling.
        assert_eq!(
            (0..6)
                .map(|p| produce_lane("orders", p, 3))
                .collect::<Vec<_>>(),
            (0..6)
                .map(|p| produce_lane("orders", p + 3, 3))
                .collect::<Vec<_>>()
        );
    }
}
