//! The mirror end to end on real brokers: Apache Kafka -> Apache Kafka and Apache Kafka ->
//! tansu. Data is written by rdkafka, mirrored by strait, and checked by `verify` (through the
//! offset map) and by an rdkafka consumer on each side.

mod support;

use std::time::{Duration, Instant};

use strait_linker::client::KafkaClient;
use strait_linker::client::data::{Isolation, ProduceItem};
use strait_linker::mirror::{MirrorSettings, PartitionState, verify};
use strait_linker::offset::TopicPartition;
use strait_linker::state::StateStore;
use strait_testkit::{Broker, kafka_source, kafka_target, tansu_target, unique};
use support::mirror::*;
use support::*;

/// The data matrix: every codec, headers, null keys, tombstones, a record near 1 MB, an
/// idempotent producer and (Kafka targets) committed and aborted transactions.
async fn data_matrix(target: &Broker) {
    use rdkafka::producer::Producer as _;
    let source = kafka_source();
    let sc = client(source).await;
    let topic = unique("mirror-matrix");
    // Kafka's default limit (1 MiB + 12): the ~1 MB record below sits just under it.
    create_topic(&sc, &topic, 1, &[("max.message.bytes", "1048588")]).await;
    let mut expected = Vec::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let recs = sample_records(12, codec);
        send_all(
            &producer(
                source,
                &[("compression.type", codec), ("batch.num.messages", "5")],
            ),
            &topic,
            0,
            &recs,
        )
        .await;
        expected.extend(recs);
    }
    let mut big = sample_records(1, "big");
    big[0].value = Some(vec![7u8; 1_040_000]);
    send_all(
        &producer(
            source,
            &[
                ("message.max.bytes", "1048588"),
                ("compression.type", "none"),
            ],
        ),
        &topic,
        0,
        &big,
    )
    .await;
    expected.extend(big);
    let idem = sample_records(10, "idem");
    send_all(
        &producer(source, &[("enable.idempotence", "true")]),
        &topic,
        0,
        &idem,
    )
    .await;
    expected.extend(idem);
    let p = producer(source, &[("transactional.id", &unique("tx"))]);
    let t = Duration::from_secs(30);
    p.init_transactions(t).unwrap();
    for (i, tag) in ["tx-commit", "tx-abort", "tx-commit-2"]
        .into_iter()
        .enumerate()
    {
        let recs = sample_records(4, tag);
        p.begin_transaction().unwrap();
        send_all(&p, &topic, 0, &recs).await;
        if i == 1 {
            p.abort_transaction(t).unwrap();
        } else {
            p.commit_transaction(t).unwrap();
            expected.extend(recs);
        }
    }
    wait_stable(&sc, &topic, 0).await;
    let end = source_end(&sc, &topic, 0).await;

    let m = start_mirror(source, target, &[&topic], |_| {}).await;
    wait_caught_up(&m.status, &topic, &[end]).await;
    let (store, _dir) = m.stop().await;
    assert_verified(source, target, &store, &topic).await;
    let theirs = consume_n(target, &topic, 0, expected.len(), false);
    assert_same("rdkafka on the target", &recs(&theirs), &expected);
    // Up to the first transaction marker, target offsets equal source offsets.
    let src_offsets: Vec<i64> = consume_n(source, &topic, 0, 71, true)
        .iter()
        .map(|(o, _)| *o)
        .collect();
    let tgt_offsets: Vec<i64> = theirs.iter().take(71).map(|(o, _)| *o).collect();
    assert_eq!(
        src_offsets, tgt_offsets,
        "contiguous source data keeps its offsets"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn data_matrix_mirrors_identically_kafka_to_kafka() {
    data_matrix(kafka_target()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn data_matrix_mirrors_identically_kafka_to_tansu() {
    data_matrix(tansu_target()).await;
}

/// Writes spread over several connections to the target broker: each partition keeps to one,
/// so with five batches in flight per partition every batch still lands in order at the
/// source's offsets. The target sits behind a proxy, which counts strait's connections.
/// Six partitions of many small batches (several in flight at once, idempotent at the
/// source so a retry cannot reorder it), mirrored to `target` through a connection-counting
/// proxy with `tune`'s settings: exact records at exact offsets, and verify agrees. Returns
/// how many connections the proxy saw.
async fn many_small_batches_mirror_exactly(
    target: &'static Broker,
    name: &str,
    tune: impl FnOnce(&mut MirrorSettings),
) -> (u64, Option<usize>) {
    let source = kafka_source();
    let sc = client(source).await;
    let topic = unique(name);
    create_topic(&sc, &topic, 6, &[]).await;
    let p = producer(
        source,
        &[
            ("batch.num.messages", "7"),
            ("linger.ms", "0"),
            ("enable.idempotence", "true"),
        ],
    );
    let mut expected = Vec::new();
    for partition in 0..6 {
        let recs = sample_records(140, &format!("{name}-{partition}"));
        send_all(&p, &topic, partition, &recs).await;
        expected.push(recs);
    }
    let mut ends = Vec::new();
    for partition in 0..6 {
        ends.push(source_end(&sc, &topic, partition).await);
    }
    let proxy = strait_testkit::FaultProxy::start(&target.bootstrap());
    let via = KafkaClient::connect(strait_linker::client::ClientConfig::new(&proxy.bootstrap()))
        .await
        .unwrap();
    let m = start_mirror_between(sc.clone(), via, &[&topic], |s| {
        s.max_in_flight_per_partition = 5;
        tune(s);
    })
    .await;
    wait_caught_up(&m.status, &topic, &ends).await;
    let learned = m.status.snapshot().target_batches_per_request;
    let (store, _dir) = m.stop().await;
    assert_verified(source, target, &store, &topic).await;
    for (partition, want) in expected.iter().enumerate() {
        let theirs = consume_n(target, &topic, partition as i32, want.len(), false);
        assert_same(&format!("partition {partition}"), &recs(&theirs), want);
        let offsets: Vec<i64> = theirs.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            (0..want.len() as i64).collect::<Vec<_>>(),
            "partition {partition}: target offsets equal source offsets"
        );
    }
    (proxy.stats().connections, learned)
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_spread_over_several_target_connections_stay_in_order() {
    let (connections, _) = many_small_batches_mirror_exactly(kafka_target(), "mirror-lanes", |s| {
        s.produce_connections = 3;
    })
    .await;
    // Bootstrap, then the broker's connection and two more lanes.
    assert!(
        connections >= 4,
        "expected writes over 3 connections to the broker (+ bootstrap): {connections}"
    );
}

/// Several batches of a partition per produce request: tansu takes them; Apache Kafka
/// refuses (INVALID_RECORD) and the mirror falls back to one per request. Exact either way.
#[tokio::test(flavor = "multi_thread")]
async fn several_batches_per_request_to_tansu_and_back_to_one_on_kafka() {
    // The default (8): learned from the target, not configured per kind.
    let stack = |s: &mut MirrorSettings| assert_eq!(s.batches_per_request, 8);
    let (_, learned) =
        many_small_batches_mirror_exactly(tansu_target(), "mirror-stack-tansu", stack).await;
    assert_eq!(learned, Some(8), "tansu takes several batches per request");
    let (_, learned) =
        many_small_batches_mirror_exactly(kafka_target(), "mirror-stack-kafka", stack).await;
    assert_eq!(learned, Some(1), "Apache Kafka takes one");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_topics_and_partition_growth_are_picked_up_within_10s() {
    let (source, target) = (kafka_source(), kafka_target());
    let sc = client(source).await;
    let (first, second) = (unique("grow-a"), unique("grow-b"));
    create_topic(&sc, &first, 1, &[]).await;
    send_all(&producer(source, &[]), &first, 0, &sample_records(5, "a")).await;
    let m = start_mirror(source, target, &[&first, &second], |s| {
        s.topic_refresh = Duration::from_secs(5)
    })
    .await;
    wait_caught_up(&m.status, &first, &[5]).await;

    create_topic(&sc, &second, 2, &[]).await;
    send_all(&producer(source, &[]), &second, 1, &sample_records(3, "b")).await;
    let t0 = Instant::now();
    wait_caught_up(&m.status, &second, &[0, 3]).await;
    println!("new topic mirrored after {:?}", t0.elapsed());
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "new topic took {:?}",
        t0.elapsed()
    );

    sc.create_partitions(&first, 3, Duration::from_secs(30))
        .await
        .unwrap();
    // Producers learn of the new partition from metadata: wait until the broker shows it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        sc.invalidate_topic(&first);
        if let Ok(Some(t)) = sc.topic(&first).await
            && t.partitions.len() == 3
            && t.partitions.iter().all(|p| p.leader >= 0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partition growth not visible on the source"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send_all(&producer(source, &[]), &first, 2, &sample_records(4, "a2")).await;
    let t0 = Instant::now();
    wait_caught_up(&m.status, &first, &[5, 0, 4]).await;
    println!("partition growth mirrored after {:?}", t0.elapsed());
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "partition growth took {:?}",
        t0.elapsed()
    );
    let tc = client(target).await;
    assert_eq!(tc.topic(&first).await.unwrap().unwrap().partitions.len(), 3);
    let (store, _dir) = m.stop().await;
    assert_verified(source, target, &store, &first).await;
    assert_verified(source, target, &store, &second).await;
}

/// Topic listings are read beside the mirror's coordinator: while the source answers every
/// Metadata request only after 5 s, new records still reach the target at once, a hold is
/// answered at once, and topics released meanwhile restart when the listing lands.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_topic_listing_stands_neither_data_nor_holds_still() {
    const METADATA: i16 = 3;
    const STALL: Duration = Duration::from_secs(5);
    let (source, target) = (kafka_source(), kafka_target());
    let sc = client(source).await;
    let topic = unique("slow-listing");
    create_topic(&sc, &topic, 1, &[]).await;
    let p = producer(source, &[]);
    send_all(&p, &topic, 0, &sample_records(5, "before")).await;
    let proxy = strait_testkit::FaultProxy::start(&source.bootstrap());
    let via = KafkaClient::connect(strait_linker::client::ClientConfig::new(&proxy.bootstrap()))
        .await
        .unwrap();
    let m = start_mirror_between(via, client(target).await, &[&topic], |s| {
        s.topic_refresh = Duration::from_millis(200);
    })
    .await;
    wait_caught_up(&m.status, &topic, &[5]).await;

    // A listing goes out and hangs.
    proxy.delay_responses(METADATA, STALL);
    let asked = proxy.requests(METADATA);
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.requests(METADATA) == asked {
        assert!(Instant::now() < deadline, "no discovery listed the topics");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listing_out = Instant::now();
    send_all(&p, &topic, 0, &sample_records(5, "during")).await;
    wait_caught_up(&m.status, &topic, &[10]).await;
    let moved = listing_out.elapsed();
    let held = Instant::now();
    m.handle
        .hold_topics(std::slice::from_ref(&topic), "test hold")
        .await
        .unwrap();
    let hold_took = held.elapsed();
    assert!(
        listing_out.elapsed() < STALL,
        "the listing out should still hang (records after {moved:?}, hold {hold_took:?})"
    );
    // The same records with the listing inside the coordinator waited up to the whole stall.
    assert!(
        moved < STALL / 2,
        "records waited {moved:?} behind a hanging listing"
    );
    assert!(
        hold_took < Duration::from_secs(1),
        "a hold waited {hold_took:?} behind a hanging listing"
    );

    // Released while that listing is still out: the partition restarts once it lands.
    send_all(&p, &topic, 0, &sample_records(3, "held")).await;
    m.handle
        .release_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
    proxy.delay_responses(METADATA, Duration::ZERO);
    wait_caught_up(&m.status, &topic, &[13]).await;
    let (store, _dir) = m.stop().await;
    assert_verified(source, target, &store, &topic).await;
}

/// Once every partition is caught up, each empty fetch doubles the next one's wait at the
/// source (up to `fetch_idle_max_wait`) instead of asking every `fetch_max_wait`; a record
/// written during a long wait still reaches the target at once (Kafka answers a waiting
/// fetch when a record arrives).
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_mirror_asks_the_source_rarely_and_still_copies_at_once() {
    const FETCH: i16 = 1;
    let (source, target) = (kafka_source(), kafka_target());
    let topic = unique("idle-fetch");
    create_topic(&client(source).await, &topic, 4, &[]).await;
    let p = producer(source, &[]);
    send_all(&p, &topic, 0, &sample_records(3, "before")).await;
    let proxy = strait_testkit::FaultProxy::start(&source.bootstrap());
    let via = KafkaClient::connect(strait_linker::client::ClientConfig::new(&proxy.bootstrap()))
        .await
        .unwrap();
    let m = start_mirror_between(via, client(target).await, &[&topic], |s| {
        s.fetch_idle_max_wait = Duration::from_secs(8);
    })
    .await;
    wait_caught_up(&m.status, &topic, &[3, 0, 0, 0]).await;
    // 6 s idle: every 10 ms that would be hundreds of fetches; doubling from 10 ms, about 10.
    let before = proxy.requests(FETCH);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let idle_fetches = proxy.requests(FETCH) - before;
    assert!(idle_fetches <= 15, "{idle_fetches} fetches in 6 s idle");
    // The fetch out now waits 5-8 s at the source; the new records do not.
    let sent = Instant::now();
    send_all(&p, &topic, 2, &sample_records(2, "after")).await;
    wait_caught_up(&m.status, &topic, &[3, 0, 2, 0]).await;
    let took = sent.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "records after idling took {took:?}"
    );
    let (store, _dir) = m.stop().await;
    assert_verified(source, target, &store, &topic).await;
}

/// A backlog larger than the in-flight budget is read round every partition: Kafka fills a
/// fetch response in the order the request names partitions, so without rotating that order
/// the first partitions would be served each time and the last ones only once those were
/// done. Here a fetch holds two partitions' worth and the target is slowed to 300 KB/s.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_backlog_is_read_round_every_partition() {
    let (source, target) = (kafka_source(), kafka_target());
    let sc = client(source).await;
    let topic = unique("round");
    create_topic(&sc, &topic, 8, &[]).await;
    let p = producer(source, &[("batch.size", "16384")]);
    let mut ends = Vec::new();
    for partition in 0..8 {
        send_all(&p, &topic, partition, &sample_records(600, "r")).await;
        ends.push(source_end(&sc, &topic, partition).await);
    }
    let proxy = strait_testkit::FaultProxy::start(&target.bootstrap());
    proxy.set_bandwidth(Some(300_000));
    let via = KafkaClient::connect(strait_linker::client::ClientConfig::new(&proxy.bootstrap()))
        .await
        .unwrap();
    let m = start_mirror_between(sc.clone(), via, &[&topic], |s| {
        s.partition_fetch_max_bytes = 32 << 10;
        s.fetch_max_bytes = 64 << 10;
        s.max_in_flight_bytes = 128 << 10;
    })
    .await;
    let total: i64 = ends.iter().sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    let copied = loop {
        let s = m.status.snapshot();
        let copied: Vec<i64> = (0..8)
            .map(|p| {
                s.partitions
                    .get(&TopicPartition::new(&topic, p))
                    .map_or(0, |v| v.next_source)
            })
            .collect();
        if copied.iter().sum::<i64>() * 10 >= total * 3 {
            break copied;
        }
        assert!(Instant::now() < deadline, "the copy stalled at {copied:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        copied.iter().all(|c| *c > 0),
        "at 30% copied some partitions had nothing: {copied:?} of {ends:?}"
    );
    proxy.set_bandwidth(None);
    wait_caught_up(&m.status, &topic, &ends).await;
    let (store, _dir) = m.stop().await;
    assert_verified(source, target, &store, &topic).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_write_to_a_mirror_topic_stops_that_partition() {
    let (source, target) = (kafka_source(), kafka_target());
    let sc = client(source).await;
    let topic = unique("foreign");
    create_topic(&sc, &topic, 2, &[]).await;
    send_all(&producer(source, &[]), &topic, 0, &sample_records(5, "f")).await;
    let m = start_mirror(source, target, &[&topic], |_| {}).await;
    wait_caught_up(&m.status, &topic, &[5, 0]).await;
    // Someone else writes to partition 0 of the mirror topic.
    send_all(
        &producer(target, &[]),
        &topic,
        0,
        &sample_records(1, "intruder"),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = m.status.snapshot();
        let p0 = s
            .partitions
            .iter()
            .find(|(tp, _)| tp.topic == topic && tp.partition == 0)
            .unwrap()
            .1
            .clone();
        if let PartitionState::Error { message } = &p0.state {
            assert!(message.contains("another producer wrote"), "{message}");
            let p1 = s
                .partitions
                .iter()
                .find(|(tp, _)| tp.topic == topic && tp.partition == 1)
                .unwrap()
                .1;
            assert!(p1.state.is_running(), "the other partition keeps running");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "foreign write not detected: {p0:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // More source data is not written to the stopped partition.
    send_all(
        &producer(source, &[]),
        &topic,
        0,
        &sample_records(2, "more"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (store, _dir) = m.stop().await;
    let tc = client(target).await;
    let f = fetch_all(&tc, &topic, 0, Isolation::ReadUncommitted).await;
    assert_eq!(f.end, 6, "5 mirrored + 1 foreign record, nothing more");

    // verify sees what lies past the mirrored end. Partition 1: the next source records,
    // as a write strait made just before it stopped would leave them (not a difference).
    let next = sample_records(3, "next");
    send_all(&producer(source, &[]), &topic, 1, &next).await;
    send_all(&producer(target, &[]), &topic, 1, &next).await;
    let report = verify::verify(&sc, &tc, &store, |t| t == topic)
        .await
        .unwrap();
    let part = |p: i32| report.partitions.iter().find(|r| r.partition == p).unwrap();
    assert!(!report.identical, "{report:#?}");
    assert_eq!(part(0).matched, 5, "{report:#?}");
    assert_eq!(part(0).differences, 1, "{report:#?}");
    assert!(
        part(0).details[0].contains("target offset 5 past the mirrored end (5)"),
        "{report:#?}"
    );
    assert_eq!(part(1).differences, 0, "{report:#?}");
    assert_eq!(part(1).unrecorded, 3, "{report:#?}");
}

/// One discovery meets four new topics: three are created on the target together (one
/// CreateTopics), each with its own partition count and configs, and mirrored; the fourth
/// already exists on the target with foreign data and is refused without holding up the rest.
async fn topics_created_together(target: &Broker, tansu: bool) {
    let source = kafka_source();
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("occupied");
    create_topic(&sc, &topic, 1, &[]).await;
    create_topic(&tc, &topic, 1, &[]).await;
    send_all(&producer(source, &[]), &topic, 0, &sample_records(3, "s")).await;
    send_all(
        &producer(target, &[]),
        &topic,
        0,
        &sample_records(2, "already-there"),
    )
    .await;
    let shapes = [
        (unique("together-a"), 1, Some("3600000")),
        (unique("together-b"), 3, Some("7200000")),
        (unique("together-c"), 7, None),
    ];
    for (name, partitions, retention) in &shapes {
        let configs: Vec<(&str, &str)> = retention.iter().map(|r| ("retention.ms", *r)).collect();
        create_topic(&sc, name, *partitions, &configs).await;
        send_all(&producer(source, &[]), name, 0, &sample_records(4, name)).await;
    }
    let mut all: Vec<&str> = shapes.iter().map(|(n, _, _)| n.as_str()).collect();
    all.push(&topic);
    let m = start_mirror(source, target, &all, |_| {}).await;
    for (name, partitions, retention) in &shapes {
        let mut ends = vec![0; *partitions as usize];
        ends[0] = 4;
        wait_caught_up(&m.status, name, &ends).await;
        tc.invalidate_topic(name);
        let t = tc.topic(name).await.unwrap().expect("target topic exists");
        assert_eq!(t.partitions.len(), *partitions as usize, "{name}");
        let described = tc
            .describe_topic_configs(std::slice::from_ref(name))
            .await
            .unwrap();
        let entries = described[name].as_ref().unwrap();
        // tansu lists only the keys set on a topic, each marked as a default
        // (tansu-eval.md): there every listed key is the topic's own.
        let copied = entries
            .iter()
            .find(|e| e.name == "retention.ms" && (e.is_topic_override() || tansu))
            .and_then(|e| e.value.as_deref());
        assert_eq!(copied, *retention, "{name}: retention.ms");
    }
    let s = m.status.snapshot();
    let problem = s.topic_problems.iter().find(|p| p.topic == topic);
    let problem = problem.expect("occupied target reported");
    assert!(
        problem.message.contains("data strait did not write"),
        "{}",
        problem.message
    );
    assert!(
        !s.partitions.keys().any(|tp| tp.topic == topic),
        "nothing mirrored"
    );
    assert_eq!(s.topic_problems.len(), 1, "{:?}", s.topic_problems);
    m.stop().await;
    let f = fetch_all(&tc, &topic, 0, Isolation::ReadUncommitted).await;
    assert_eq!(f.end, 2, "nothing appended to the occupied topic");
    let _ = ProduceItem {
        topic,
        partition: 0,
        records: Default::default(),
    };
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_created_together_keep_their_shapes_and_an_occupied_one_is_refused_on_kafka() {
    topics_created_together(kafka_target(), false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_created_together_keep_their_shapes_and_an_occupied_one_is_refused_on_tansu() {
    topics_created_together(tansu_target(), true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_source_topics_stop_and_config_changes_are_resynced() {
    use strait_linker::client::admin::AlterOp;
    let (source, target) = (kafka_source(), kafka_target());
    let (sc, tc) = (client(source).await, client(target).await);
    let (kept, doomed) = (unique("resync"), unique("doomed"));
    create_topic(&sc, &kept, 1, &[("retention.ms", "86400000")]).await;
    create_topic(&sc, &doomed, 1, &[]).await;
    send_all(&producer(source, &[]), &doomed, 0, &sample_records(3, "d")).await;
    let m = start_mirror(source, target, &[&kept, &doomed], |s| {
        s.config_sync = Duration::from_secs(1)
    })
    .await;
    wait_caught_up(&m.status, &doomed, &[3]).await;
    let retention = |c: KafkaClient, t: String| async move {
        let cfg = c
            .describe_topic_configs(std::slice::from_ref(&t))
            .await
            .unwrap();
        cfg[&t]
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == "retention.ms")
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        retention(tc.clone(), kept.clone()).await.as_deref(),
        Some("86400000"),
        "copied at creation"
    );

    // A config change on the source reaches the target at the next re-sync.
    let mut change = std::collections::BTreeMap::new();
    change.insert("retention.ms".to_owned(), AlterOp::Set("3600000".into()));
    sc.alter_topic_configs(&kept, &change, false).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while retention(tc.clone(), kept.clone()).await.as_deref() != Some("3600000") {
        assert!(Instant::now() < deadline, "config change not re-synced");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleting the source topic stops its mirror; the target topic stays.
    let conn = sc.any_connection().await.unwrap();
    let name = kafka_protocol::messages::TopicName(
        kafka_protocol::protocol::StrBytes::from_string(doomed.clone()),
    );
    // v0-5 name topics in topic_names, v6+ in topics; the encoder uses the negotiated one.
    let req = kafka_protocol::messages::DeleteTopicsRequest::default()
        .with_topic_names(vec![name.clone()])
        .with_topics(vec![
            kafka_protocol::messages::delete_topics_request::DeleteTopicState::default()
                .with_name(Some(name)),
        ])
        .with_timeout_ms(30_000);
    conn.send(&req).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = m.status.snapshot();
        if let Some((_, v)) = s.partitions.iter().find(|(tp, _)| tp.topic == doomed)
            && let PartitionState::Stopped { reason } = &v.state
        {
            assert!(reason.contains("source topic deleted"), "{reason}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deletion not reported: {:?}",
            s.partitions.iter().find(|(tp, _)| tp.topic == doomed)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        tc.topic(&doomed).await.unwrap().is_some(),
        "the target topic is kept"
    );
    assert_eq!(
        fetch_all(&tc, &doomed, 0, Isolation::ReadUncommitted)
            .await
            .end,
        3
    );

    // Re-created under the same name (a new topic id): reported, not appended to the old mirror.
    let recreate = strait_linker::client::admin::NewTopic {
        name: doomed.clone(),
        partitions: 1,
        replication_factor: 1,
        configs: Default::default(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sc
        .create_topics(
            std::slice::from_ref(&recreate),
            Duration::from_secs(30),
            false,
        )
        .await
        .unwrap()[&doomed]
        .is_err()
    {
        assert!(Instant::now() < deadline, "cannot re-create the topic");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    while sc.leader(&doomed, 0).await.is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send_all(
        &producer(source, &[]),
        &doomed,
        0,
        &sample_records(2, "reborn"),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = m.status.snapshot();
        if let Some(p) = s.topic_problems.iter().find(|p| p.topic == doomed) {
            assert!(p.message.contains("re-created"), "{}", p.message);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "re-creation not reported: {:?}",
            s.topic_problems
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        fetch_all(&tc, &doomed, 0, Isolation::ReadUncommitted)
            .await
            .end,
        3,
        "nothing appended"
    );
    m.stop().await;
}

/// `[mirror] start`: every new partition starts at the first record at or after the
/// timestamp (read for all partitions of a topic at once), and at the end where no record is
/// that new; the target holds exactly the records from there on.
#[tokio::test(flavor = "multi_thread")]
async fn new_partitions_start_where_the_start_position_says() {
    use strait_linker::mirror::Start;
    let (source, target) = (kafka_source(), kafka_target());
    let sc = client(source).await;
    let tc = client(target).await;
    let one_per_batch = producer(source, &[("batch.num.messages", "1"), ("linger.ms", "0")]);
    let sent = sample_records(10, "start"); // timestamps recent_base() + 13 * i
    let (middle, future) = (unique("start-ts"), unique("start-future"));
    for topic in [&middle, &future] {
        create_topic(&sc, topic, 3, &[]).await;
        for p in 0..3 {
            // One record at a time, each delivered before the next is sent: the start
            // offsets below follow the records' order. Sent together, a retried first batch
            // (the new topic's leader not known yet) landed after the ones behind it; an
            // idempotent producer lost two records there instead (both seen in CI).
            for (i, rec) in sent.iter().enumerate() {
                let at = send_all(&one_per_batch, topic, p, std::slice::from_ref(rec)).await;
                assert_eq!(
                    at,
                    [i as i64],
                    "setup: {topic}-{p} took record {i} out of order"
                );
            }
        }
    }

    // At record 4's timestamp + 1: the first record at or after it is record 5.
    let at = sent[4].timestamp + 1;
    let m = start_mirror(source, target, &[&middle], |s| {
        s.start = Start::Timestamp(at)
    })
    .await;
    wait_caught_up(&m.status, &middle, &[10, 10, 10]).await;
    // The empty Kafka target is aligned (filler, then DeleteRecords): its log is 5..10.
    let (store, _dir) = m.stop().await;
    assert_target_logs(&sc, &tc, &store, &middle, &[(5, 10); 3], 15).await;

    // After every record: nothing old is copied; a record written later is.
    let later = sent[9].timestamp + 3_600_000;
    let m = start_mirror(source, target, &[&future], |s| {
        s.start = Start::Timestamp(later)
    })
    .await;
    wait_caught_up(&m.status, &future, &[10, 10, 10]).await;
    let extra = sample_records(1, "later");
    send_all(&one_per_batch, &future, 1, &extra).await;
    wait_caught_up(&m.status, &future, &[10, 11, 10]).await;
    let (store, _dir) = m.stop().await;
    let logs = [(10, 10), (10, 11), (10, 10)];
    assert_target_logs(&sc, &tc, &store, &future, &logs, 1).await;
}

/// Asserts that partition p of `topic` on the target holds offsets `logs[p]` (start, end)
/// and that verify finds the mirrored records identical, `matched` of them.
async fn assert_target_logs(
    sc: &KafkaClient,
    tc: &KafkaClient,
    store: &StateStore,
    topic: &str,
    logs: &[(i64, i64)],
    matched: u64,
) {
    let keys: Vec<(String, i32)> = (0..logs.len() as i32)
        .map(|p| (topic.to_owned(), p))
        .collect();
    for ((_, p), bounds) in tc.log_bounds(&keys).await {
        let b = bounds.unwrap();
        assert_eq!((b.start, b.end), logs[p as usize], "{topic}-{p}");
    }
    let report = verify::verify(sc, tc, store, |t| t == topic).await.unwrap();
    assert!(report.identical, "{report:#?}");
    let found: u64 = report.partitions.iter().map(|p| p.matched).sum();
    assert_eq!(found, matched, "records verified identical");
}
