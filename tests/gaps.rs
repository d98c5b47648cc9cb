//! Sources whose offsets are not contiguous: a compacted topic with real cleaner holes, and a
//! log start raised by DeleteRecords. The mirror must copy them identically and its offset
//! map must translate every offset, including those inside holes, exactly.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use strait_linker::client::Retry;
use strait_linker::client::data::Isolation;
use strait_linker::mirror::{Mirror, MirrorSettings, PartitionState, verify};
use strait_linker::offset::{SourceOffset, TargetOffset, TopicPartition};
use strait_linker::state::{Lookup, StateStore};
use strait_testkit::{Broker, kafka_source, kafka_target, tansu_target, unique};
use support::*;
use tokio_util::sync::CancellationToken;

/// Mirrors `topic` (one partition) until the target holds the source end; returns the store.
async fn mirror_until_caught_up(
    source: &Broker,
    target: &Broker,
    topic: &str,
    end: i64,
) -> (Arc<StateStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = mirror_in(dir.path(), source, target, topic, end).await;
    (store, dir)
}

/// [`mirror_until_caught_up`] on an existing state directory.
async fn mirror_in(
    dir: &std::path::Path,
    source: &Broker,
    target: &Broker,
    topic: &str,
    end: i64,
) -> Arc<StateStore> {
    let store = Arc::new(StateStore::open(dir).unwrap());
    let t = topic.to_owned();
    let mirror = Mirror::new(
        client(source).await,
        client(target).await,
        Arc::clone(&store),
        MirrorSettings::new(Arc::new(move |n: &str| n == t)),
    );
    let status = mirror.status();
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let c = cancel.clone();
        async move { mirror.run(c).await.unwrap() }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status.snapshot();
        let v = s.partitions.get(&TopicPartition::new(topic, 0)).cloned();
        if let Some(v) = &v {
            if let PartitionState::Error { message } = &v.state {
                panic!("mirror failed: {message}");
            }
            if v.next_source >= end && v.state == PartitionState::CaughtUp {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not caught up: {v:?} {:?}",
            s.topic_problems
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    task.await.unwrap();
    store
}

/// Writes rounds of the same keys to a compacting topic until the cleaner has left holes.
async fn compacted_source(broker: &Broker) -> (String, Vec<i64>, i64) {
    let c = client(broker).await;
    let topic = unique("compacted");
    create_topic(
        &c,
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", "0"),
            ("delete.retention.ms", "100"),
        ],
    )
    .await;
    let p = producer(broker, &[("batch.num.messages", "4")]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut round = 0;
    loop {
        let mut recs = sample_records(12, &format!("round-{round}"));
        for (i, r) in recs.iter_mut().enumerate() {
            r.key = Some(format!("key-{}", i % 6).into_bytes()); // 6 keys, rewritten every round
        }
        send_all(&p, &topic, 0, &recs).await;
        round += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let f = fetch_all(&c, &topic, 0, Isolation::ReadCommitted).await;
        let offsets: Vec<i64> = data_records(&f, true).iter().map(|(o, _)| *o).collect();
        // Offsets the cleaner removed, from the start of the log (compaction keeps it at 0).
        let holes = (0..f.end).filter(|o| !offsets.contains(o)).count();
        let gapped_batches = f
            .batches
            .iter()
            .filter(|b| {
                i64::from(b.header().record_count) != i64::from(b.header().last_offset_delta) + 1
            })
            .count();
        if round >= 4 && holes > 10 && gapped_batches > 0 {
            // Stop the cleaner so the source holds still while it is mirrored and compared.
            let mut stop = std::collections::BTreeMap::new();
            stop.insert(
                "cleanup.policy".to_owned(),
                strait_linker::client::admin::AlterOp::Set("delete".into()),
            );
            c.alter_topic_configs(&topic, &stop, false).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let f = fetch_all(&c, &topic, 0, Isolation::ReadCommitted).await;
            let offsets: Vec<i64> = data_records(&f, true).iter().map(|(o, _)| *o).collect();
            println!(
                "compacted source after {round} rounds: {} records over offsets 0..{}, {holes} holes, {gapped_batches} batches with inner gaps",
                offsets.len(),
                f.end
            );
            return (topic, offsets, f.end);
        }
        assert!(
            Instant::now() < deadline,
            "the log cleaner left no holes (rounds {round}, holes {holes}, gapped batches {gapped_batches})"
        );
    }
}

async fn compacted_mirrors_exactly(target: &Broker) {
    let source = kafka_source();
    let (topic, present, end) = compacted_source(source).await;
    let (store, _dir) = mirror_until_caught_up(source, target, &topic, end).await;
    let report = verify::verify(&client(source).await, &client(target).await, &store, |t| {
        t == topic
    })
    .await
    .unwrap();
    assert!(report.identical, "{report:#?}");
    assert_eq!(
        report.partitions[0].matched as usize,
        present.len(),
        "every surviving record compared"
    );
    // Every offset, hole or not, translates to the target offset of the first record at or
    // after it, as a consumer committed there would resume.
    let (_, map) = store
        .load_partition(&TopicPartition::new(&topic, 0))
        .unwrap()
        .unwrap();
    let tc = client(target).await;
    let target_offsets: Vec<i64> = data_records(
        &fetch_all(&tc, &topic, 0, Isolation::ReadUncommitted).await,
        false,
    )
    .iter()
    .map(|(o, _)| *o)
    .collect();
    assert_eq!(target_offsets.len(), present.len());
    for s in 0..end {
        let want = match present.iter().position(|o| *o >= s) {
            Some(i) => target_offsets[i],
            None => map.next_target().0,
        };
        let got = map.target_for(SourceOffset(s));
        // A Shifted entry answers a hole with its own (equally empty) target offset; both
        // resume at the same record, so compare by the record a consumer reads next.
        let Lookup::Mapped(TargetOffset(t)) = got else {
            panic!("offset {s} not mapped: {got:?}")
        };
        let resumes_at = target_offsets
            .iter()
            .copied()
            .find(|o| *o >= t)
            .unwrap_or(map.next_target().0);
        assert_eq!(resumes_at, want, "source offset {s}: map says {t}");
    }
    assert_eq!(
        map.target_for(SourceOffset(end)),
        Lookup::Mapped(map.next_target())
    );
    assert_eq!(
        map.target_for(SourceOffset(end + 1)),
        Lookup::NotYetMirrored
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compacted_source_with_cleaner_holes_mirrors_exactly_to_kafka() {
    compacted_mirrors_exactly(kafka_target()).await;
}

/// tansu stores gapped batches as they are; its fetch has a duplicate-batch bug with gaps
/// (see tansu-eval), which strait's reader skips, so verify still compares exactly.
#[tokio::test(flavor = "multi_thread")]
async fn compacted_source_with_cleaner_holes_mirrors_exactly_to_tansu() {
    compacted_mirrors_exactly(tansu_target()).await;
}

/// A source whose log start was raised by DeleteRecords: the map starts there and translates
/// exactly; offsets below the start resume at the first mirrored record. On a Kafka target the
/// offsets are aligned (identical on both sides); tansu cannot DeleteRecords, so there the
/// map covers the difference.
async fn raised_log_start(target: &Broker) {
    let source = kafka_source();
    let sc = client(source).await;
    let topic = unique("logstart");
    create_topic(&sc, &topic, 1, &[]).await;
    let sent = sample_records(20, "ls");
    send_all(
        &producer(source, &[("batch.num.messages", "3")]),
        &topic,
        0,
        &sent,
    )
    .await;
    let low = sc
        .delete_records(&[((topic.clone(), 0), 8)], Duration::from_secs(30))
        .await;
    assert_eq!(*low[&(topic.clone(), 0)].as_ref().unwrap(), 8);
    let (store, _dir) = mirror_until_caught_up(source, target, &topic, 20).await;
    let report = verify::verify(&sc, &client(target).await, &store, |t| t == topic)
        .await
        .unwrap();
    assert!(report.identical, "{report:#?}");
    // The batch holding offset 8 may start before it: the whole batch is mirrored.
    let (_, map) = store
        .load_partition(&TopicPartition::new(&topic, 0))
        .unwrap()
        .unwrap();
    let first_src = map.entries()[0].source_first.0;
    assert!(first_src <= 8);
    let theirs = consume_n(target, &topic, 0, (20 - first_src) as usize, false);
    assert_same(
        "records from the log start",
        &recs(&theirs[(8 - first_src) as usize..]),
        &sent[8..],
    );
    let Lookup::Mapped(t8) = map.target_for(SourceOffset(8)) else {
        panic!()
    };
    assert_eq!(
        theirs.iter().find(|(o, _)| *o == t8.0).map(|(_, r)| r),
        Some(&sent[8]),
        "offset 8 maps to its record"
    );
    assert_eq!(
        map.target_for(SourceOffset(2)),
        Lookup::Mapped(map.entries()[0].target_first),
        "below the start: the first mirrored record"
    );
    if target.kind() == strait_testkit::BrokerKind::Kafka {
        // Kafka honours DeleteRecords: the target's log was aligned with the source's, so
        // every record kept its offset and the filler is gone.
        assert_eq!(
            map.entries()[0].target_first.0,
            first_src,
            "{:?}",
            map.entries()
        );
        assert_eq!(t8.0, 8);
        assert_eq!(
            theirs[0].0, first_src,
            "the target's first record is the source's"
        );
        for (o, r) in &theirs {
            assert_eq!(Some(r), sent.get(*o as usize), "target offset {o}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raised_source_log_start_maps_exactly_to_kafka() {
    raised_log_start(kafka_target()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn raised_source_log_start_maps_exactly_to_tansu() {
    raised_log_start(tansu_target()).await;
}

/// An alignment interrupted by a crash (its checkpoint written, part of the filler on the
/// target) is finished at the next start: offsets identical, no filler left.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_alignment_is_finished_at_the_next_start() {
    use strait_linker::client::data::ProduceItem;
    use strait_linker::state::{PartitionCheckpoint, PartitionStatus};
    let (source, target) = (kafka_source(), kafka_target());
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("align");
    create_topic(&sc, &topic, 1, &[]).await;
    let sent = sample_records(12, "al");
    let one_per_batch = producer(source, &[("batch.num.messages", "1"), ("linger.ms", "0")]);
    send_all(&one_per_batch, &topic, 0, &sent).await;
    let low = sc
        .delete_records(&[((topic.clone(), 0), 8)], Duration::from_secs(30))
        .await;
    assert_eq!(*low[&(topic.clone(), 0)].as_ref().unwrap(), 8);
    // What a strait killed in the middle of aligning leaves behind.
    create_topic(&tc, &topic, 1, &[]).await;
    let filler = strait_linker::records::filler_batch(3, recent_base()).unwrap();
    // A topic just created can refuse writes for a moment (its leader is in the metadata
    // before it takes them): retry what is retriable.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ack = loop {
        let mut acks = tc
            .produce(
                vec![ProduceItem {
                    topic: topic.clone(),
                    partition: 0,
                    records: filler.bytes().clone().into(),
                }],
                -1,
                Duration::from_secs(30),
            )
            .await;
        match acks
            .remove(&(topic.clone(), 0))
            .expect("an answer for the partition")
        {
            Err(e) if e.retry() != Retry::No && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => break r.expect("the filler is written"),
        }
    };
    assert_eq!(ack.base_offset, 0);
    let dir = tempfile::tempdir().unwrap();
    {
        let store = StateStore::open(dir.path()).unwrap();
        let id = sc.topic(&topic).await.unwrap().unwrap().id.to_string();
        let cp = PartitionCheckpoint {
            topic_id: Some(id),
            next_source: SourceOffset(8),
            next_target: TargetOffset(8),
            status: PartitionStatus::Active,
            producer: None,
        };
        store
            .record_batch_written(&TopicPartition::new(&topic, 0), None, &cp)
            .unwrap();
    }
    let store = mirror_in(dir.path(), source, target, &topic, 12).await;
    let (_, map) = store
        .load_partition(&TopicPartition::new(&topic, 0))
        .unwrap()
        .unwrap();
    assert_eq!(map.entries()[0].target_first, TargetOffset(8), "{map:?}");
    let theirs = consume_n(target, &topic, 0, 4, false);
    let offsets: Vec<i64> = theirs.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, [8, 9, 10, 11], "filler gone, offsets identical");
    assert_same("aligned records", &recs(&theirs), &sent[8..]);
}
