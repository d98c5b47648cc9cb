//! What several benchmarks share (each uses part of it).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strait_linker::client::KafkaClient;
use strait_linker::client::admin::NewTopic;
use strait_linker::client::data::ProduceItem;

/// One record batch of `n` uncompressed records (keys `k0`.., 100-byte values), stamped now.
pub fn batch(n: usize) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let recs: Vec<Record> = (0..n as i64)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(bytes::Bytes::from(format!("k{i}"))),
            value: Some(bytes::Bytes::from(vec![b'x'; 100])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Creates `topics` topics `PREFIX-0000`.. of `partitions` partitions on the source (two
/// config overrides each, for the target to copy) and writes one batch of `records` records
/// to each partition; returns every (topic, partition).
pub async fn load_topics(
    sc: &KafkaClient,
    prefix: &str,
    topics: usize,
    partitions: i32,
    records: usize,
) -> Vec<(String, i32)> {
    let names: Vec<String> = (0..topics).map(|i| format!("{prefix}-{i:04}")).collect();
    let mut configs = BTreeMap::new();
    configs.insert("retention.ms".to_owned(), "604800001".to_owned());
    configs.insert("max.message.bytes".to_owned(), "2000000".to_owned());
    for chunk in names.chunks(100) {
        let new: Vec<NewTopic> = chunk
            .iter()
            .map(|n| NewTopic {
                name: n.clone(),
                partitions,
                replication_factor: 1,
                configs: configs.clone(),
            })
            .collect();
        for (t, r) in sc
            .create_topics(&new, Duration::from_secs(60), false)
            .await
            .unwrap()
        {
            r.unwrap_or_else(|e| panic!("creating {t}: {e}"));
        }
    }
    let keys: Vec<(String, i32)> = names
        .iter()
        .flat_map(|n| (0..partitions).map(move |p| (n.clone(), p)))
        .collect();
    write_to_all(sc, &keys, &batch(records)).await;
    keys
}

/// Writes `batch` once to every partition of `keys`, retrying the ones not acknowledged (a
/// new topic's leaders may not be known yet) for up to 120 s.
pub async fn write_to_all(sc: &KafkaClient, keys: &[(String, i32)], batch: &bytes::Bytes) {
    let mut pending = keys.to_vec();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last_error = None;
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "source load did not finish: {} partitions left, last error {last_error:?}",
            pending.len()
        );
        let items = pending
            .iter()
            .map(|(t, p)| ProduceItem {
                topic: t.clone(),
                partition: *p,
                records: batch.clone().into(),
            })
            .collect();
        let acks = sc.produce(items, -1, Duration::from_secs(30)).await;
        pending.retain(|k| match acks.get(k) {
            Some(Ok(_)) => false,
            other => {
                last_error = Some(format!("{k:?}: {other:?}"));
                true
            }
        });
        if !pending.is_empty() {
            let topics: std::collections::BTreeSet<&String> =
                pending.iter().map(|(t, _)| t).collect();
            for t in topics {
                sc.invalidate_topic(t);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
