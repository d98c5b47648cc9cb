//! Fetch: raw record blobs per partition, one request per leader, in incremental fetch
//! sessions where the caller keeps them ([`FetchSessions`]). Records are never decoded here.
//!
//! ```text
//!  fetch / fetch_in_sessions ─► group_by_leader ─► fetch_node per leader, concurrently
//!        (full request, or the session's changes) ─► send_fetch ─► fetched: per partition,
//!        the offset asked (from the request, or the session), error, ends, records
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use tokio::task::JoinSet;

use super::data::Isolation;
use super::error::{Context, Error, Result};
pub use super::fetch_session::FetchSessions;
use super::fetch_session::{FetchSession, is_session_error};
use super::{Connection, KafkaClient, topic_name};

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

impl KafkaClient {
    /// Fetches raw record blobs for `positions`, one request per leader, concurrently.
    pub async fn fetch(
        &self,
        positions: &[FetchPosition],
        opts: FetchOptions,
    ) -> Vec<FetchedPartition> {
        self.fetch_grouped(positions, opts, None).await
    }

    /// Like [`fetch`](Self::fetch), in incremental fetch sessions with each leader
    /// ([`FetchSessions`]): a partition whose offset and byte limit are as last time is not
    /// named again, and the answer lists only partitions with something new. A partition
    /// absent from the answer had nothing new.
    pub async fn fetch_in_sessions(
        &self,
        positions: &[FetchPosition],
        opts: FetchOptions,
        sessions: &mut FetchSessions,
    ) -> Vec<FetchedPartition> {
        self.fetch_grouped(positions, opts, Some(sessions)).await
    }

    async fn fetch_grouped(
        &self,
        positions: &[FetchPosition],
        opts: FetchOptions,
        mut sessions: Option<&mut FetchSessions>,
    ) -> Vec<FetchedPartition> {
        let (by_leader, mut out) = self
            .group_by_leader(positions, |p| (&p.topic, p.partition))
            .await;
        let mut set = JoinSet::new();
        for (leader, ps) in by_leader {
            let client = self.clone();
            let mut session = sessions.as_deref_mut().map(|s| s.take(leader));
            set.spawn(async move {
                let r = client.fetch_node(leader, &ps, opts, session.as_mut()).await;
                (leader, ps, session, r)
            });
        }
        while let Some(joined) = set.join_next().await {
            // A fetch task that panicked takes its session with it: the next one is new.
            let Ok((leader, ps, session, r)) = joined else {
                continue;
            };
            if let (Some(sessions), Some(session)) = (sessions.as_deref_mut(), session) {
                sessions.put(leader, session);
            }
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

    /// Fetches from one broker (partition errors are reported per partition), in `session`
    /// where there is one and the broker's Fetch version has sessions (7 and up). A session
    /// error (an evicted session, a lost answer seen by the broker) is answered at once
    /// with a full fetch in a new session.
    async fn fetch_node(
        &self,
        node: i32,
        positions: &[FetchPosition],
        opts: FetchOptions,
        mut session: Option<&mut FetchSession>,
    ) -> Result<Vec<FetchedPartition>> {
        let conn = self.broker_connection_on(node, opts.lane).await?;
        if conn.version_for::<FetchRequest>()? < 7 {
            session = None;
        }
        let mut retried = false;
        loop {
            let Some(s) = session.as_deref_mut() else {
                let req = fetch_request(positions.iter(), &[], opts);
                let resp = self.send_fetch(&conn, &req, opts).await?;
                let asked: HashMap<(&str, i32), i64> = positions
                    .iter()
                    .map(|p| ((p.topic.as_str(), p.partition), p.offset))
                    .collect();
                return Ok(fetched(resp, |t, p| asked.get(&(t, p)).copied()));
            };
            let plan = s.plan(positions);
            let req = fetch_request(plan.send.iter().copied(), &plan.forget, opts)
                .with_session_id(plan.session_id)
                .with_session_epoch(plan.epoch);
            match self.send_fetch(&conn, &req, opts).await {
                Ok(resp) => {
                    s.answered(resp.session_id);
                    return Ok(fetched(resp, |t, p| s.fetch_offset(t, p)));
                }
                Err(e) => {
                    s.failed(e.code());
                    match e.code() {
                        Some(c) if is_session_error(c) && !retried => retried = true,
                        _ => return Err(e),
                    }
                }
            }
        }
    }

    /// Sends one Fetch and checks its top-level error.
    async fn send_fetch(
        &self,
        conn: &Connection,
        req: &FetchRequest,
        opts: FetchOptions,
    ) -> Result<FetchResponse> {
        let started = Instant::now();
        let resp = conn.send_with_extra_time(req, opts.max_wait).await?;
        crate::metrics::observe_fetch(self.cluster(), started.elapsed());
        if resp.error_code != 0 {
            return Err(Error::broker(
                "Fetch",
                resp.error_code,
                Context::default(),
                None::<String>,
            ));
        }
        Ok(resp)
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
}

/// A Fetch request naming `send` (topics in the order they first appear, partitions in
/// theirs: a broker fills the response in request order until `max_bytes`, so the order is
/// the caller's to choose) and dropping `forget` from the session.
fn fetch_request<'a>(
    send: impl Iterator<Item = &'a FetchPosition>,
    forget: &[(String, i32)],
    opts: FetchOptions,
) -> FetchRequest {
    let mut topics: Vec<(&str, Vec<FetchPartition>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for p in send {
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
    let mut forgotten: Vec<ForgottenTopic> = Vec::new();
    for (topic, partition) in forget {
        match forgotten.last_mut() {
            Some(f) if f.topic.0.as_str() == topic => f.partitions.push(*partition),
            _ => forgotten.push(
                ForgottenTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    FetchRequest::default()
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
        )
        .with_forgotten_topics_data(forgotten)
}

/// The partitions of a Fetch answer; `asked` gives the offset each was fetched from.
fn fetched(resp: FetchResponse, asked: impl Fn(&str, i32) -> Option<i64>) -> Vec<FetchedPartition> {
    let mut out = Vec::new();
    for t in resp.responses {
        let topic = t.topic.0.to_string();
        for p in t.partitions {
            let fetch_offset = asked(&topic, p.partition_index).unwrap_or(-1);
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
    out
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

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::Encodable;

    use super::*;

    /// The bytes of a Fetch request for 1,000 partitions of one topic at strait's Fetch
    /// version (11): in full, and in a session where nothing changed.
    #[test]
    fn a_session_fetch_of_unchanged_partitions_is_a_few_bytes() {
        let positions: Vec<FetchPosition> = (0..1000)
            .map(|p| FetchPosition {
                topic: "orders".into(),
                partition: p,
                offset: 1_000_000,
                max_bytes: 8 << 20,
            })
            .collect();
        let opts = FetchOptions::default();
        let size = |plan: super::super::fetch_session::Plan<'_>| {
            fetch_request(plan.send.iter().copied(), &plan.forget, opts)
                .with_session_id(plan.session_id)
                .with_session_epoch(plan.epoch)
                .compute_size(11)
                .unwrap()
        };
        let mut session = FetchSession::default();
        let full = size(session.plan(&positions));
        session.answered(9);
        let unchanged = size(session.plan(&positions));
        session.answered(9);
        let mut moved = positions.clone();
        for p in moved.iter_mut().take(10) {
            p.offset += 16;
        }
        let ten_moved = size(session.plan(&moved));
        assert_eq!(full, 28_047, "28 bytes a partition");
        assert_eq!(unchanged, 35);
        assert_eq!(ten_moved, 327);
    }
}
