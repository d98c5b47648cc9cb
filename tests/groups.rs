//! Consumer-group offset sync on real brokers: groups commit on the source (at batch
//! boundaries, inside aborted transactions, on transaction markers, at the end), strait
//! translates and commits, and an rdkafka consumer in the same group on the target starts at
//! exactly the record the source consumer would have read next.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use strait_linker::client::KafkaClient;
use strait_linker::client::data::Isolation;
use strait_linker::client::groups::CommittedOffset;
use strait_linker::mirror::{Mirror, MirrorHandle, MirrorSettings, PartitionState};
use strait_linker::offset::{TargetOffset, TopicPartition};
use strait_linker::state::StateStore;
use strait_offset_sync::{GroupSync, SyncState};
use strait_testkit::{Broker, kafka_source, kafka_target, unique};
use support::*;
use tokio_util::sync::CancellationToken;

struct Setup {
    topic: String,
    sc: KafkaClient,
    tc: KafkaClient,
    handle: MirrorHandle,
    sync: GroupSync,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// A 2-partition topic with plain data, a committed and an aborted transaction spanning both
/// partitions, and more plain data; mirrored to `target` until caught up.
async fn setup(target: &Broker) -> Setup {
    use rdkafka::producer::Producer as _;
    let source = kafka_source();
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("groups");
    create_topic(&sc, &topic, 2, &[]).await;
    for p in 0..2 {
        send_all(
            &producer(source, &[("batch.num.messages", "4")]),
            &topic,
            p,
            &sample_records(10, "before"),
        )
        .await;
    }
    let tx = producer(source, &[("transactional.id", &unique("gtx"))]);
    let t = Duration::from_secs(30);
    tx.init_transactions(t).unwrap();
    for (i, tag) in ["txn-ok", "txn-aborted"].into_iter().enumerate() {
        tx.begin_transaction().unwrap();
        for p in 0..2 {
            send_all(&tx, &topic, p, &sample_records(5, tag)).await;
        }
        if i == 0 {
            tx.commit_transaction(t).unwrap()
        } else {
            tx.abort_transaction(t).unwrap()
        }
    }
    // Kafka answers EndTxn before the markers are written: without this wait the "after"
    // records can land before a partition's abort marker, which then ends the partition with
    // no record after it for the "just after the abort marker" position to resume at.
    for p in 0..2 {
        wait_stable(&sc, &topic, p).await;
    }
    for p in 0..2 {
        send_all(
            &producer(source, &[]),
            &topic,
            p,
            &sample_records(6, "after"),
        )
        .await;
    }
    for p in 0..2 {
        wait_stable(&sc, &topic, p).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(dir.path()).unwrap());
    let t2 = topic.clone();
    let mirror = Mirror::new(
        sc.clone(),
        tc.clone(),
        Arc::clone(&store),
        MirrorSettings::new(Arc::new(move |n: &str| n == t2)),
    );
    let handle = mirror.handle();
    let sync = GroupSync::new(
        sc.clone(),
        tc.clone(),
        handle.clone(),
        &store,
        Arc::new(|_: &str| false),
        Duration::from_millis(200),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let c = cancel.clone();
        async move { mirror.run(c).await.unwrap() }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = handle.status().snapshot();
        let done = (0..2).all(|p| {
            s.partitions
                .get(&TopicPartition::new(&topic, p))
                .is_some_and(|v| v.state == PartitionState::CaughtUp && v.lag_records == 0)
        });
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "mirror not caught up: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Setup {
        topic,
        sc,
        tc,
        handle,
        sync,
        cancel,
        task,
        _dir: dir,
    }
}

/// The first record (offset, record) a consumer of `group` on `broker` receives per
/// partition, starting from the group's committed offsets.
fn first_records(
    broker: &Broker,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> BTreeMap<i32, (i64, Rec)> {
    let mut cfg = rdkafka::config::ClientConfig::new();
    cfg.set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", "10")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = cfg.create().unwrap();
    // Assigned partitions start at the group's committed offsets (Offset::Stored).
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, rdkafka::Offset::Stored)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = BTreeMap::new();
    // Generous: under heavy machine load a consumer's first fetches can take a while.
    let deadline = Instant::now() + Duration::from_secs(40);
    while out.len() < partitions.len() {
        if Instant::now() > deadline {
            return out; // the caller reports which partition is missing, with context
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        out.entry(m.partition()).or_insert_with(|| {
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            (
                m.offset(),
                Rec {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                    timestamp: m.timestamp().to_millis().unwrap(),
                },
            )
        });
    }
    out
}

async fn commit(c: &KafkaClient, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let map = offsets
        .iter()
        .map(|(p, o)| {
            (
                (topic.to_owned(), *p),
                CommittedOffset {
                    offset: *o,
                    leader_epoch: -1,
                    metadata: Some(format!("src@{o}")),
                },
            )
        })
        .collect();
    c.retrying("commit", || c.offset_commit(group, &map))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_resume_at_exactly_the_next_record_kafka_to_kafka() {
    resume_exactly(kafka_target(), false).await;
}

/// tansu 0.6 skips the rest of a batch when a fetch starts inside it (see tansu-eval), so a
/// committed offset is only honoured there at batch boundaries: shown at data-batch starts,
/// on transaction markers, inside aborted data (all of which resume at a batch start), and
/// at the last batch. tansu also drops commit metadata, so that is not checked here.
#[tokio::test(flavor = "multi_thread")]
async fn groups_resume_at_exactly_the_next_record_kafka_to_tansu_at_batch_boundaries() {
    resume_exactly(strait_testkit::tansu_target(), true).await;
}

async fn resume_exactly(target: &'static Broker, boundaries_only: bool) {
    let s = setup(target).await;
    // What a read_committed consumer sees on the source, per partition.
    let mut visible = BTreeMap::new();
    let mut ends = BTreeMap::new();
    let mut positions: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for p in 0..2 {
        let f = fetch_all(&s.sc, &s.topic, p, Isolation::ReadCommitted).await;
        visible.insert(p, data_records(&f, true));
        ends.insert(p, f.end);
        let markers: Vec<i64> = f
            .batches
            .iter()
            .filter(|b| b.header().is_control())
            .map(|b| b.header().base_offset)
            .collect();
        assert_eq!(
            markers.len(),
            2,
            "a commit and an abort marker per partition"
        );
        // Per partition (markers may sit at different offsets): start, mid batch, inside the
        // committed transaction, on the commit marker, inside the aborted data, on the abort
        // marker, just after it, the last record.
        let (commit_marker, abort_marker) = (markers[0], markers[1]);
        let last = visible[&p].last().unwrap().0;
        let data_bases: Vec<i64> = f
            .batches
            .iter()
            .filter(|b| !b.header().is_control() && !b.header().is_transactional())
            .map(|b| b.header().base_offset)
            .collect();
        let mut at = if boundaries_only {
            vec![
                0,
                data_bases[1],
                commit_marker,
                commit_marker + 2,
                abort_marker,
                *data_bases.last().unwrap(),
            ]
        } else {
            vec![
                0,
                3,
                commit_marker - 2,
                commit_marker,
                commit_marker + 2,
                abort_marker,
                abort_marker + 1,
                last,
            ]
        };
        at.truncate(8);
        positions.insert(p, at);
    }
    let pairs: Vec<(i64, i64)> = positions[&0]
        .iter()
        .copied()
        .zip(positions[&1].iter().copied())
        .collect();
    // One group per position pair, all synced by one forced sync (groups run concurrently
    // there, as in the cutover's barrier).
    let groups: Vec<String> = (0..pairs.len())
        .map(|i| unique(&format!("resume-{i}")))
        .collect();
    for (group, (c0, c1)) in groups.iter().zip(&pairs) {
        commit(&s.sc, group, &s.topic, &[(0, *c0), (1, *c1)]).await;
    }
    let outcome = s.sync.sync_now(&groups, false).await.unwrap();
    assert_eq!(outcome.len(), groups.len(), "an outcome per group");
    for (i, (group, &(c0, c1))) in groups.iter().zip(&pairs).enumerate() {
        let group = group.clone();
        assert_eq!(outcome[&group].state, SyncState::Syncing);
        assert_eq!(
            outcome[&group].committed.len(),
            2,
            "position {i} ({c0}, {c1}): both partitions translated: {:?}",
            outcome[&group]
        );
        let got = first_records(target, &group, &s.topic, &[0, 1]);
        for p in 0..2 {
            let c = &positions[&p][i];
            if !got.contains_key(&p) {
                let f = fetch_all(&s.tc, &s.topic, p, Isolation::ReadUncommitted).await;
                let headers: Vec<_> = f.batches.iter().map(|b| *b.header()).collect();
                let committed = s.tc.offset_fetch(&group, None).await.unwrap();
                panic!(
                    "committed {c}: no record on target partition {p}; committed there {committed:?}; target end {}; batches {headers:#?}",
                    f.end
                );
            }
            let want = visible[&p]
                .iter()
                .find(|(o, _)| *o >= *c)
                .map(|(_, r)| r.clone())
                .expect("a record follows");
            assert_eq!(
                got[&p].1, want,
                "committed {c} on partition {p}: target resumes at the wrong record"
            );
        }
        // Metadata is carried over (tansu 0.6 drops it).
        let back = s.tc.offset_fetch(&group, None).await.unwrap();
        assert_eq!(
            back[&(s.topic.clone(), 0)].metadata.as_deref(),
            (!boundaries_only).then(|| format!("src@{c0}")).as_deref()
        );
    }
    // The source end maps to the target end when the mirror is caught up.
    let group = unique("resume-end");
    commit(&s.sc, &group, &s.topic, &[(0, ends[&0]), (1, ends[&1])]).await;
    let outcome = s
        .sync
        .sync_now(std::slice::from_ref(&group), false)
        .await
        .unwrap();
    let tgt_end = fetch_all(&s.tc, &s.topic, 0, Isolation::ReadUncommitted)
        .await
        .end;
    assert_eq!(
        outcome[&group].committed[&TopicPartition::new(&s.topic, 0)],
        TargetOffset(tgt_end)
    );
    s.cancel.cancel();
    s.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn active_target_groups_are_never_written_and_split_groups_are_reported() {
    let s = setup(kafka_target()).await;
    // Moved: live on the target, idle on the source.
    let moved = unique("moved");
    commit(&s.sc, &moved, &s.topic, &[(0, 5)]).await;
    let target_member = member(kafka_target(), &moved, &s.topic);
    wait_active(&s.tc, &moved).await;
    let before = s.tc.offset_fetch(&moved, None).await.unwrap();
    let out = s
        .sync
        .sync_now(std::slice::from_ref(&moved), false)
        .await
        .unwrap();
    assert_eq!(out[&moved].state, SyncState::Moved);
    assert_eq!(
        s.tc.offset_fetch(&moved, None).await.unwrap(),
        before,
        "nothing written to an active target group"
    );
    drop(target_member);
    // Split: live on both.
    let split = unique("split");
    let (_a, _b) = (
        member(kafka_source(), &split, &s.topic),
        member(kafka_target(), &split, &s.topic),
    );
    wait_active(&s.sc, &split).await;
    wait_active(&s.tc, &split).await;
    let out = s
        .sync
        .sync_now(std::slice::from_ref(&split), false)
        .await
        .unwrap();
    assert_eq!(out[&split].state, SyncState::Split);
    assert_eq!(
        s.sync.status().snapshot()[&split].state,
        SyncState::Split,
        "reported in status"
    );
    // A stopped group stays stopped even when its target members leave.
    drop(_b);
    let out = s
        .sync
        .sync_now(std::slice::from_ref(&split), false)
        .await
        .unwrap();
    assert_eq!(out[&split].state, SyncState::Split);
    s.cancel.cancel();
    s.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_never_run_ahead_of_mirrored_data_nor_backwards() {
    let s = setup(kafka_target()).await;
    // Pause the mirror: from now on translation uses its persisted map.
    s.cancel.cancel();
    s.task.await.unwrap();
    let mirrored_end = fetch_all(&s.sc, &s.topic, 0, Isolation::ReadCommitted)
        .await
        .end;
    send_all(
        &producer(kafka_source(), &[]),
        &s.topic,
        0,
        &sample_records(10, "unmirrored"),
    )
    .await;
    let g = unique("ahead");
    commit(&s.sc, &g, &s.topic, &[(0, mirrored_end + 5)]).await;
    let out = s
        .sync
        .sync_now(std::slice::from_ref(&g), false)
        .await
        .unwrap();
    assert_eq!(
        out[&g].waiting,
        vec![TopicPartition::new(&s.topic, 0)],
        "beyond the mirror: not committed"
    );
    assert!(s.tc.offset_fetch(&g, None).await.unwrap().is_empty());
    // At the mirrored end it maps to the target end.
    commit(&s.sc, &g, &s.topic, &[(0, mirrored_end)]).await;
    let out = s
        .sync
        .sync_now(std::slice::from_ref(&g), false)
        .await
        .unwrap();
    let tgt_end = fetch_all(&s.tc, &s.topic, 0, Isolation::ReadUncommitted)
        .await
        .end;
    assert_eq!(
        out[&g].committed[&TopicPartition::new(&s.topic, 0)],
        TargetOffset(tgt_end)
    );
    // The periodic sync never moves the target backwards; an explicit request can.
    commit(&s.sc, &g, &s.topic, &[(0, 3)]).await;
    s.sync
        .sync_now(std::slice::from_ref(&g), false)
        .await
        .unwrap();
    assert_eq!(
        s.tc.offset_fetch(&g, None).await.unwrap()[&(s.topic.clone(), 0)].offset,
        tgt_end
    );
    s.sync
        .sync_now(std::slice::from_ref(&g), true)
        .await
        .unwrap();
    assert_eq!(
        s.tc.offset_fetch(&g, None).await.unwrap()[&(s.topic.clone(), 0)].offset,
        3
    );
    // Reverse translation (for rollback) takes target offsets back to source offsets.
    let back = s
        .handle
        .to_source(vec![(TopicPartition::new(&s.topic, 0), TargetOffset(3))])
        .await
        .unwrap();
    assert_eq!(
        back,
        vec![strait_linker::mirror::Translation::Mapped(
            strait_linker::offset::SourceOffset(3)
        )]
    );
}

/// A live group member: a consumer polled by a background thread until dropped.
struct Member {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn member(broker: &Broker, group: &str, topic: &str) -> Member {
    let mut cfg = rdkafka::config::ClientConfig::new();
    cfg.set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("session.timeout.ms", "10000")
        .set("fetch.wait.max.ms", "10");
    let c: BaseConsumer = cfg.create().unwrap();
    c.subscribe(&[topic]).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            c.poll(Duration::from_millis(50));
        }
        c.unsubscribe(); // leave the group promptly
    });
    Member {
        stop,
        thread: Some(thread),
    }
}

async fn wait_active(c: &KafkaClient, group: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(d) = c.describe_group(group).await
            && d.is_active()
            && d.state == "Stable"
        {
            return;
        }
        assert!(Instant::now() < deadline, "{group} never became active");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The periodic sync (`GroupSync::run`, what `strait run` starts): new groups and new commits
/// of known groups reach the target without a forced sync, every group on its own, and the
/// loop ends once cancelled.
#[tokio::test(flavor = "multi_thread")]
async fn the_periodic_sync_follows_every_groups_commits_and_stops_when_cancelled() {
    let s = setup(kafka_target()).await;
    let prefix = unique("periodic");
    let p2 = prefix.clone();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let sync = GroupSync::new(
        s.sc.clone(),
        s.tc.clone(),
        s.handle.clone(),
        &store,
        Arc::new(move |g: &str| g.starts_with(&p2)),
        Duration::from_millis(400),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let (sync, cancel) = (sync.clone(), cancel.clone());
        async move { sync.run(cancel).await }
    });
    let groups: Vec<String> = (0..6).map(|i| format!("{prefix}-{i}")).collect();
    // Each group at its own positions; the target must show each one's own translation.
    let expect = |round: i64, i: usize| [(0, 2 + i as i64 + round), (1, 1 + round)];
    for round in 0..2 {
        for (i, g) in groups.iter().enumerate() {
            commit(&s.sc, g, &s.topic, &expect(round, i)).await;
        }
        for (i, g) in groups.iter().enumerate() {
            let want: BTreeMap<(String, i32), i64> = mapped_target(&s, &expect(round, i)).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let got: BTreeMap<(String, i32), i64> =
                    s.tc.offset_fetch(g, None)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, c)| (k, c.offset))
                        .collect();
                if got == want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "round {round}: {g} on the target {got:?}, want {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the periodic sync ends once cancelled")
        .unwrap();
    s.cancel.cancel();
    s.task.await.unwrap();
}

/// The target offsets the mirror's map gives for source `offsets` of the setup's topic.
async fn mapped_target(s: &Setup, offsets: &[(i32, i64)]) -> BTreeMap<(String, i32), i64> {
    let items = offsets
        .iter()
        .map(|(p, o)| {
            (
                TopicPartition::new(&s.topic, *p),
                strait_linker::offset::SourceOffset(*o),
            )
        })
        .collect::<Vec<_>>();
    let mapped = s.handle.to_target(items).await.unwrap();
    offsets
        .iter()
        .zip(mapped)
        .map(|((p, _), t)| match t {
            strait_linker::mirror::Translation::Mapped(t) => ((s.topic.clone(), *p), t.0),
            other => panic!("partition {p}: {other:?}"),
        })
        .collect()
}
