//! Helpers shared by the integration test binaries: an independent client (rdkafka) to
//! produce and consume, strait's own client to fetch raw batches, and record comparison.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub mod cutover;
mod faults;
mod load;
pub mod mirror;
mod process;

pub use faults::*;
pub use load::*;
pub use process::*;

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use strait_linker::batch::{self, RawBatch};
use strait_linker::client::admin::NewTopic;
use strait_linker::client::data::{FetchOptions, FetchPosition, Isolation};
use strait_linker::client::{ClientConfig, KafkaClient};
use strait_linker::records;
use strait_testkit::Broker;

/// A record as a test sends it and expects to read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: i64,
}

/// Records covering the cases a byte-faithful mirror must keep: null keys, tombstones,
/// duplicate header keys, null and empty header values, binary bytes, explicit timestamps.
pub fn sample_records(n: usize, tag: &str) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            key: (i % 5 != 0).then(|| format!("key-{}", i % 7).into_bytes()),
            value: (i % 7 != 3).then(|| {
                let mut v = format!("{{\"tag\":\"{tag}\",\"i\":{i},\"pad\":\"").into_bytes();
                v.extend(std::iter::repeat_n(b'x', 50 + (i * 37) % 400));
                v.extend_from_slice(b"\"}");
                v
            }),
            headers: vec![
                ("h".into(), Some(b"1".to_vec())),
                ("h".into(), Some(b"2".to_vec())),
                ("null".into(), None),
                ("empty".into(), Some(Vec::new())),
                ("bin".into(), Some(vec![0, 0xff, i as u8, 0x80, 0])),
            ],
            timestamp: recent_base() + (i as i64) * 13,
        })
        .collect()
}

/// A timestamp base an hour in the past: old enough to be distinct from append times, recent
/// enough that Kafka's time-based retention (7 days by default) never deletes test data.
pub fn recent_base() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    now.as_millis() as i64 - 3_600_000
}

/// An rdkafka producer with `extra` settings on top of sane test defaults.
pub fn producer(broker: &Broker, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = RdConfig::new();
    for (k, v) in broker.client_config(None) {
        cfg.set(k, v);
    }
    cfg.set("linger.ms", "20")
        .set("message.timeout.ms", "30000")
        .set("acks", "all");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("rdkafka producer")
}

/// Sends `recs` to `topic`/`partition` and waits for every delivery; returns their offsets.
pub async fn send_all(p: &FutureProducer, topic: &str, partition: i32, recs: &[Rec]) -> Vec<i64> {
    let mut pending = Vec::new();
    for r in recs {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(partition)
            .timestamp(r.timestamp)
            .headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        pending.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
    }
    let mut offsets = Vec::new();
    for d in pending {
        let delivery = d
            .await
            .expect("delivery future")
            .map_err(|(e, _)| e)
            .expect("delivered");
        offsets.push(delivery.offset);
    }
    offsets
}

/// Reads `topic`/`partition` from the beginning with rdkafka until `n` records arrive.
pub fn consume_n(
    broker: &Broker,
    topic: &str,
    partition: i32,
    n: usize,
    committed_only: bool,
) -> Vec<(i64, Rec)> {
    let mut cfg = RdConfig::new();
    for (k, v) in broker.client_config(None) {
        cfg.set(k, v);
    }
    cfg.set("group.id", strait_testkit::unique("verify"))
        .set("enable.auto.commit", "false")
        // Some brokers hold every fetch for much of the wait, even with data ready.
        .set("fetch.wait.max.ms", "10")
        .set(
            "isolation.level",
            if committed_only {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        );
    let consumer: BaseConsumer = cfg.create().expect("rdkafka consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "consumed only {} of {n} records from {topic}",
            out.len()
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("consume");
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        out.push((
            m.offset(),
            Rec {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
                timestamp: m.timestamp().to_millis().unwrap_or(-1),
            },
        ));
    }
    out
}

/// strait's own client for a test broker.
pub async fn client(broker: &Broker) -> KafkaClient {
    KafkaClient::connect(ClientConfig::new(&broker.bootstrap()))
        .await
        .expect("strait client connects")
}

/// Creates a topic and waits until its leader is known.
pub async fn create_topic(c: &KafkaClient, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let t = NewTopic {
        name: name.to_owned(),
        partitions,
        replication_factor: 1,
        configs: configs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let r = c
        .create_topics(&[t], Duration::from_secs(30), false)
        .await
        .expect("CreateTopics");
    r[name].as_ref().expect("topic created");
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.leader(name, partitions - 1).await.is_err() {
        assert!(Instant::now() < deadline, "no leader for {name}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no transaction is open on `topic`/`partition`: its last stable offset equals its
/// high watermark. A producer's commit/abort returns before the coordinator has written the
/// markers into every partition, so read_committed reads right after it can stop short.
pub async fn wait_stable(c: &KafkaClient, topic: &str, partition: i32) {
    use strait_linker::client::data::OffsetSpec;
    let key = (topic.to_owned(), partition);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lso = c
            .list_offsets(
                std::slice::from_ref(&key),
                OffsetSpec::Latest,
                Isolation::ReadCommitted,
            )
            .await;
        let hw = c
            .list_offsets(
                std::slice::from_ref(&key),
                OffsetSpec::Latest,
                Isolation::ReadUncommitted,
            )
            .await;
        if let (Some(Ok(l)), Some(Ok(h))) = (lso.get(&key), hw.get(&key))
            && l.offset == h.offset
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}-{partition}: a transaction stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything fetched from one partition: raw batches (every CRC verified) and the aborted
/// transactions the broker listed.
#[derive(Debug, Default)]
pub struct Fetched {
    pub batches: Vec<RawBatch>,
    pub aborted: Vec<(i64, i64)>,
    pub end: i64,
}

/// Fetches `topic`/`partition` from offset 0 to its end with strait's client. Every batch's
/// CRC is verified; a partial batch at the end of a response is fetched again next round.
pub async fn fetch_all(
    c: &KafkaClient,
    topic: &str,
    partition: i32,
    isolation: Isolation,
) -> Fetched {
    let mut out = Fetched::default();
    let mut offset = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "fetch of {topic} did not reach its end"
        );
        let opts = FetchOptions {
            isolation,
            ..FetchOptions::default()
        };
        let pos = FetchPosition {
            topic: topic.to_owned(),
            partition,
            offset,
            max_bytes: 8 << 20,
        };
        let mut r = c.fetch(&[pos], opts).await;
        let f = r.pop().expect("one partition");
        if let Some(e) = &f.error {
            if e.retry() != strait_linker::client::Retry::No {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            panic!("fetch {topic}-{partition}@{offset}: {e}");
        }
        let end = match isolation {
            Isolation::ReadCommitted if f.last_stable_offset >= 0 => f.last_stable_offset,
            _ => f.high_watermark,
        };
        out.aborted
            .extend(f.aborted.iter().map(|a| (a.producer_id, a.first_offset)));
        let split = batch::split_verified(f.records)
            .expect("every fetched batch is whole and its CRC verifies");
        for b in split.batches {
            // A broker may return a batch that starts before the fetch offset.
            if b.header().last_offset() >= offset {
                offset = b.header().next_offset();
                out.batches.push(b);
            }
        }
        if offset >= end {
            out.end = end;
            out.aborted.sort_unstable();
            out.aborted.dedup();
            return out;
        }
    }
}

/// Decodes the data records of `batches`, skipping control batches and, when `aborted` is
/// given, the data of aborted transactions (as a read_committed consumer would).
pub fn data_records(f: &Fetched, skip_aborted: bool) -> Vec<(i64, Rec)> {
    let mut out = Vec::new();
    let mut aborted_open: Vec<i64> = Vec::new();
    let mut starts = f.aborted.clone();
    starts.sort_by_key(|(_, first)| *first);
    let mut next_start = 0;
    for b in &f.batches {
        let h = b.header();
        while next_start < starts.len() && starts[next_start].1 <= h.last_offset() {
            aborted_open.push(starts[next_start].0);
            next_start += 1;
        }
        if h.is_control() {
            // A control marker ends that producer's transaction (commit or abort).
            aborted_open.retain(|p| *p != h.producer_id);
            continue;
        }
        if skip_aborted && h.is_transactional() && aborted_open.contains(&h.producer_id) {
            continue;
        }
        for r in records::decode(b).expect("records decode") {
            out.push((r.offset, to_rec(&r)));
        }
    }
    out
}

pub fn to_rec(r: &records::Record) -> Rec {
    Rec {
        key: r.key.as_ref().map(|k| k.to_vec()),
        value: r.value.as_ref().map(|v| v.to_vec()),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8(k.to_vec()).expect("utf-8 header key"),
                    v.as_ref().map(|b| b.to_vec()),
                )
            })
            .collect(),
        timestamp: r.timestamp,
    }
}

/// Asserts two record lists are equal, naming the first difference.
pub fn assert_same(what: &str, got: &[Rec], want: &[Rec]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} records, expected {}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: record {i} differs");
    }
}

pub fn recs(v: &[(i64, Rec)]) -> Vec<Rec> {
    v.iter().map(|(_, r)| r.clone()).collect()
}
