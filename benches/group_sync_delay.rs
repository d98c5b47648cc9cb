//! Benchmark: delay from a consumer-group commit on the source to the translated commit on
//! the target, with strait's default 1 s sync interval, over real Kafka brokers.
//!
//! `cargo bench --bench group_sync_delay` starts two Kafka brokers (strait-testkit), mirrors
//! a topic, runs the group sync, and commits new offsets for 50 groups per round for 20
//! rounds (1,000 commits); each commit's delay is the time until the target shows the
//! translated offset. Prints p50/p90/p99/max and writes target/bench/group_sync_delay.json.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strait_linker::client::admin::NewTopic;
use strait_linker::client::data::ProduceItem;
use strait_linker::client::groups::CommittedOffset;
use strait_linker::client::{ClientConfig, KafkaClient};
use strait_linker::mirror::{Mirror, MirrorSettings};
use strait_linker::state::StateStore;
use strait_offset_sync::GroupSync;
use tokio_util::sync::CancellationToken;

mod common;
use common::batch;

const GROUPS: usize = 50;
const ROUNDS: usize = 20;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let (source, target) = (
        strait_testkit::kafka_source(),
        strait_testkit::kafka_target(),
    );
    let sc = KafkaClient::connect(ClientConfig::new(&source.bootstrap()))
        .await
        .unwrap();
    let tc = KafkaClient::connect(ClientConfig::new(&target.bootstrap()))
        .await
        .unwrap();
    let topic = strait_testkit::unique("delay");
    let t = NewTopic {
        name: topic.clone(),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::new(),
    };
    sc.create_topics(&[t], Duration::from_secs(30), false)
        .await
        .unwrap();
    while sc.leader(&topic, 0).await.is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let items = vec![ProduceItem {
        topic: topic.clone(),
        partition: 0,
        records: batch(1000).into(),
    }];
    sc.produce(items, -1, Duration::from_secs(30)).await[&(topic.clone(), 0)]
        .as_ref()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(dir.path()).unwrap());
    let name = topic.clone();
    let mirror = Mirror::new(
        sc.clone(),
        tc.clone(),
        Arc::clone(&store),
        MirrorSettings::new(Arc::new(move |n: &str| n == name)),
    );
    let prefix = strait_testkit::unique("delay-grp");
    let p2 = prefix.clone();
    let sync = GroupSync::new(
        sc.clone(),
        tc.clone(),
        mirror.handle(),
        &store,
        Arc::new(move |g: &str| g.starts_with(&p2)),
        Duration::from_secs(1),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let m = tokio::spawn({
        let c = cancel.clone();
        async move { mirror.run(c).await.unwrap() }
    });
    let s = tokio::spawn({
        let (c, sync) = (cancel.clone(), sync.clone());
        async move { sync.run(c).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await; // mirror catches up

    let groups: Vec<String> = (0..GROUPS).map(|i| format!("{prefix}-{i}")).collect();
    let mut delays = Vec::with_capacity(GROUPS * ROUNDS);
    for round in 0..ROUNDS {
        let offset = 10 + (round as i64) * 37;
        // Commits run in their own task while this loop measures, so a group committed
        // early in the round is timed from its own commit (not from the round's last one).
        let committed_at: Arc<std::sync::Mutex<BTreeMap<String, Instant>>> = Arc::default();
        let committer = tokio::spawn({
            let (sc, groups, topic, committed_at) = (
                sc.clone(),
                groups.clone(),
                topic.clone(),
                Arc::clone(&committed_at),
            );
            async move {
                for g in &groups {
                    let mut o = BTreeMap::new();
                    o.insert(
                        (topic.clone(), 0),
                        CommittedOffset {
                            offset,
                            leader_epoch: -1,
                            metadata: None,
                        },
                    );
                    sc.retrying("commit", || sc.offset_commit(g, &o))
                        .await
                        .unwrap();
                    committed_at
                        .lock()
                        .unwrap()
                        .insert(g.clone(), Instant::now());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut measured = 0;
        while measured < groups.len() {
            assert!(
                Instant::now() < deadline,
                "round {round}: {} groups never synced",
                groups.len() - measured
            );
            // Check every waiting group at once, so measuring adds little to the delay.
            let waiting: Vec<(String, Instant)> = committed_at
                .lock()
                .unwrap()
                .iter()
                .map(|(g, at)| (g.clone(), *at))
                .collect();
            let mut checks = tokio::task::JoinSet::new();
            for (g, at) in waiting {
                let (tc, topic) = (tc.clone(), topic.clone());
                checks.spawn(async move {
                    let synced = tc
                        .offset_fetch(&g, None)
                        .await
                        .ok()
                        .and_then(|o| o.get(&(topic, 0)).map(|c| c.offset))
                        == Some(offset);
                    (g, synced.then(|| at.elapsed()))
                });
            }
            while let Some(Ok((g, delay))) = checks.join_next().await {
                if let Some(d) = delay {
                    delays.push(d);
                    committed_at.lock().unwrap().remove(&g);
                    measured += 1;
                }
            }
            // Polling faster loads the brokers that strait itself is timed against (two
            // cores for both brokers, strait and this loop): 20 ms adds at most 20 ms.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        committer.await.unwrap();
    }
    // The cutover's barrier: a forced sync of every group at once (`sync_now`, run by the
    // drain inside the write pause). Groups already in sync still cost their reads.
    let barrier = Instant::now();
    let outcomes = sync.sync_now(&groups, false).await.unwrap();
    let barrier = barrier.elapsed();
    assert_eq!(outcomes.len(), groups.len());
    cancel.cancel();
    let _ = (m.await, s.await);

    delays.sort();
    let pct = |p: f64| {
        delays[((delays.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(delays.len() - 1)]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p90, p99, max) = (pct(0.50), pct(0.90), pct(0.99), *delays.last().unwrap());
    println!(
        "group sync delay over {} commits (interval 1 s, {GROUPS} groups x {ROUNDS} rounds):",
        delays.len()
    );
    println!(
        "  p50 {:>7.1} ms   p90 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max)
    );
    println!(
        "  goal p99 <= 1000 ms: {}",
        if p99 <= Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  forced sync of all {GROUPS} groups (the cutover barrier): {:.1} ms",
        ms(barrier)
    );
    let json = format!(
        "{{\"commits\":{},\"interval_ms\":1000,\"p50_ms\":{:.1},\"p90_ms\":{:.1},\"p99_ms\":{:.1},\"max_ms\":{:.1},\"barrier_ms\":{:.1}}}\n",
        delays.len(),
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max),
        ms(barrier)
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("group_sync_delay.json"), json).unwrap();
}
