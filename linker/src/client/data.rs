//! Data-path operations: Fetch returning raw record blobs, Produce taking raw record blobs,
//! and ListOffsets. Records are never decoded here.
//!
//! Each call groups its partitions by leader and sends one request per leader, concurrently,
//! so many partitions cost one round trip per broker. Partition-level errors are returned per
//! partition (the mirror decides per partition what to do); a NOT_LEADER-style error also
//! drops the topic's cached leadership so the next call routes afresh.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, ProduceRequest, ProduceResponse,
};
use tokio::task::JoinSet;

use super::error::{Context, Error, Result, Retry};
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
    fn code(self) -> i8 {
        match self {
            Isolation::ReadUncommitted => 0,
            Isolation::ReadCommitted => 1,
        }
    }
}

/// Fetch request settings.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// How long the broker may wait for `min_bytes`. Keep small: some brokers hold every
    /// fetch for a large part of this even when data is ready.
    pub max_wait: Duration,
    /// Bytes the broker should gather before answering early.
    pub min_bytes: i32,
    /// Upper bound on the whole response (the first batch is always returned whole).
    pub max_bytes: i32,
    /// Transaction isolation.
    pub isolation: Isolation,
    /// Connection lane to each leader: 0 (control) unless the caller is the data path
    /// ([`super::DATA_LANE`]).
    pub lane: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_millis(10),
            min_bytes: 1,
            max_bytes: 64 << 20,
            isolation: Isolation::ReadCommitted,
            lane: 0,
        }
    }
}

/// Where to fetch one partition from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPosition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset wanted.
    pub offset: i64,
    /// Per-partition byte limit.
    pub max_bytes: i32,
}

/// A transaction aborted within the fetched range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    /// The producer whose transaction aborted.
    pub producer_id: i64,
    /// The first offset of the aborted transaction.
    pub first_offset: i64,
}

/// One partition's fetch result.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The offset that was asked for.
    pub fetch_offset: i64,
    /// Partition error, if any (records are then empty).
    pub error: Option<Error>,
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset (-1 when the broker does not report it).
    pub last_stable_offset: i64,
    /// Log start offset (-1 when the broker does not report it).
    pub log_start_offset: i64,
    /// Aborted transactions overlapping the returned records (read_committed only).
    pub aborted: Vec<AbortedTransaction>,
    /// The raw records blob: zero or more record batches, possibly ending in a partial one.
    pub records: Bytes,
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
    /// Fetches raw record blobs for `positions`, one request per leader, concurrently.
    pub async fn fetch(
        &self,
        positions: &[FetchPosition],
        opts: FetchOptions,
    ) -> Vec<FetchedPartition> {
        let (by_leader, mut out) = self
            .group_by_leader(positions, |p| (&p.topic, p.partition))
            .await;
        let mut set = JoinSet::new();
        for (leader, ps) in by_leader {
            let client = self.clone();
            set.spawn(async move {
                let r = client.fetch_from(leader, &ps, opts).await;
                (ps, r)
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((ps, r)) = joined else { continue };
            match r {
                Ok(fetched) => out.extend(fetched),
                Err(e) => out.extend(ps.iter().map(|p| failed_fetch(p, e.clone()))),
            }
        }
        for f in &out {
            if let Some(e) = &f.error {
                self.note_partition_error(e);
            }
        }
        out
    }

    /// Fetches from one broker. Partition errors are reported per partition.
    pub async fn fetch_from(
        &self,
        node: i32,
        positions: &[FetchPosition],
        opts: FetchOptions,
    ) -> Result<Vec<FetchedPartition>> {
        let conn = self.broker_connection_on(node, opts.lane).await?;
        // Topics in the order `positions` first names them, partitions in theirs: a broker
        // fills the response in request order until `max_bytes`, so the order is the
        // caller's to choose (the mirror rotates it).
        let mut topics: Vec<(&str, Vec<FetchPartition>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for p in positions {
            let i = *index.entry(&p.topic).or_insert_with(|| {
                topics.push((&p.topic, Vec::new()));
                topics.len() - 1
            });
            topics[i].1.push(
                FetchPartition::default()
                    .with_partition(p.partition)
                    .with_fetch_offset(p.offset)
                    .with_partition_max_bytes(p.max_bytes),
            );
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(i32::try_from(opts.max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(opts.min_bytes)
            .with_max_bytes(opts.max_bytes)
            .with_isolation_level(opts.isolation.code())
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        FetchTopic::default()
                            .with_topic(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let started = Instant::now();
        let resp = conn.send_with_extra_time(&req, opts.max_wait).await?;
        crate::metrics::observe_fetch(self.cluster(), started.elapsed());
        if resp.error_code != 0 {
            return Err(Error::broker(
                "Fetch",
                resp.error_code,
                Context::default(),
                None::<String>,
            ));
        }
        let asked: BTreeMap<(&str, i32), i64> = positions
            .iter()
            .map(|p| ((p.topic.as_str(), p.partition), p.offset))
            .collect();
        let mut out = Vec::with_capacity(positions.len());
        for t in resp.responses {
            let topic = t.topic.0.to_string();
            for p in t.partitions {
                let fetch_offset = asked
                    .get(&(topic.as_str(), p.partition_index))
                    .copied()
                    .unwrap_or(-1);
                let error = (p.error_code != 0).then(|| {
                    Error::broker(
                        "Fetch",
                        p.error_code,
                        Context::partition(&topic, p.partition_index).at_offset(fetch_offset),
                        None::<String>,
                    )
                });
                out.push(FetchedPartition {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    fetch_offset,
                    error,
                    high_watermark: p.high_watermark,
                    last_stable_offset: p.last_stable_offset,
                    log_start_offset: p.log_start_offset,
                    aborted: p
                        .aborted_transactions
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| AbortedTransaction {
                            producer_id: a.producer_id.0,
                            first_offset: a.first_offset,
                        })
                        .collect(),
                    records: p.records.unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

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

    /// The batch at `offset` of `topic`/`partition` and whatever follows it in one small
    /// response: a Fetch for 1 byte (brokers still return the whole first batch), read
    /// uncommitted, without waiting. `None` if the response has no entry for the partition.
    pub async fn fetch_at(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Option<FetchedPartition> {
        let pos = FetchPosition {
            topic: topic.to_owned(),
            partition,
            offset,
            max_bytes: 1,
        };
        let opts = FetchOptions {
            max_wait: Duration::ZERO,
            isolation: Isolation::ReadUncommitted,
            ..FetchOptions::default()
        };
        self.fetch(&[pos], opts).await.pop()
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
    fn note_partition_error(&self, e: &Error) {
        if matches!(e.retry(), Retry::RefreshMetadata | Retry::Reconnect) {
            self.refresh_for(e);
        }
    }
}

fn failed_fetch(p: &FetchPosition, error: Error) -> FetchedPartition {
    FetchedPartition {
        topic: p.topic.clone(),
        partition: p.partition,
        fetch_offset: p.offset,
        error: Some(error),
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        aborted: Vec::new(),
        records: Bytes::new(),
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
