//! Benchmark: what each restart of strait costs the target afterwards. Every start that asks
//! the target for a new idempotent producer id leaves that producer's sequence state behind
//! on every partition it writes; tansu 0.6 keeps all of it for good and rewrites all of it
//! for each idempotent batch (docs/benchmarks.md, item 28), so its cost per write grows with
//! every start. Since 366054a a restart continues under the id its checkpoint recorded.
//!
//! ```text
//!  source Kafka: one topic of P partitions (default 1,000)
//!  for each target (tansu memory://, a fresh one per mode; or the shared Kafka target)
//!    for each mode:  resume  (strait as built: the checkpoint's producer id carries over)
//!                    fresh   (the checkpoint's producer cursor removed before each start,
//!                             so every start asks for a new id, as before 366054a)
//!      a new topic; N starts (default 6), each:
//!        B batches of R records (100-byte values) to every source partition
//!        strait mirror in process on the same state ─► caught up ─► stopped (cancelled)
//!        ─► target CPU per 1,000 batches during that start, copy time, producer ids seen
//! ```
//!
//! `cargo bench --bench restart_cost -- [--partitions P] [--starts N] [--batches B]
//!  [--records R] [--targets tansu,kafka] [--modes resume,fresh]`.
//! Prints a table and writes target/bench/restart_cost.json.

mod common;
#[path = "mirror_bench/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "mirror_bench/systems.rs"]
#[allow(dead_code)]
mod systems;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use strait_linker::client::admin::NewTopic;
use strait_linker::client::{ClientConfig, KafkaClient};
use strait_linker::mirror::{Mirror, MirrorSettings};
use strait_linker::state::{PartitionCheckpoint, StateStore};
use strait_testkit::{Broker, TansuStorage};
use tokio_util::sync::CancellationToken;

struct Args {
    partitions: i32,
    starts: usize,
    batches: usize,
    records: usize,
    targets: Vec<String>,
    modes: Vec<String>,
}

fn args() -> Args {
    let mut a = Args {
        partitions: 1000,
        starts: 6,
        batches: 8,
        records: 64,
        targets: vec!["tansu".into()],
        modes: vec!["resume".into(), "fresh".into()],
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        let list = |v: &str| v.split(',').map(|s| s.trim().to_owned()).collect();
        match argv[i].as_str() {
            "--partitions" => a.partitions = v.parse().expect("--partitions P"),
            "--starts" => a.starts = v.parse().expect("--starts N"),
            "--batches" => a.batches = v.parse().expect("--batches B"),
            "--records" => a.records = v.parse().expect("--records R"),
            "--targets" => a.targets = list(&v),
            "--modes" => a.modes = list(&v),
            _ => i -= 1, // `--bench` and anything else cargo passes
        }
        i += 2;
    }
    for (what, names, known) in [
        ("--targets", &a.targets, &["tansu", "kafka"]),
        ("--modes", &a.modes, &["resume", "fresh"]),
    ] {
        for n in names {
            assert!(
                known.contains(&n.as_str()),
                "{what}: unknown name {n:?} (known: {known:?})"
            );
        }
    }
    a
}

#[derive(serde::Serialize)]
struct Row {
    target: String,
    mode: String,
    start: usize,
    batches: usize,
    copy_s: f64,
    target_cpu_ms_per_1000_batches: f64,
    /// Distinct producer ids on the target over the partitions sampled (every 100th).
    producer_ids: usize,
}

/// Writes `batches` batches of `records` records to every partition of `topic`.
async fn load(sc: &KafkaClient, topic: &str, a: &Args) {
    let keys: Vec<(String, i32)> = (0..a.partitions).map(|p| (topic.to_owned(), p)).collect();
    let b = common::batch(a.records);
    for _ in 0..a.batches {
        common::write_to_all(sc, &keys, &b).await;
    }
}

/// One start of the mirror on `store`: runs until every partition reached `end`, then stops.
async fn run_once(
    sc: &KafkaClient,
    tc: &KafkaClient,
    store: &Arc<StateStore>,
    topic: &str,
    (partitions, end): (i32, i64),
) -> Result<Duration> {
    let t = topic.to_owned();
    let settings = MirrorSettings::new(Arc::new(move |n: &str| n == t));
    let mirror = Mirror::new(sc.clone(), tc.clone(), Arc::clone(store), settings);
    let status = mirror.status();
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn({
        let c = cancel.clone();
        async move { mirror.run(c).await }
    });
    let deadline = started + Duration::from_secs(600);
    loop {
        let s = status.snapshot();
        let done = s
            .partitions
            .iter()
            .filter(|(tp, v)| tp.topic == topic && v.next_source >= end)
            .count();
        if done == partitions as usize {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the mirror did not catch up in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    cancel.cancel();
    task.await?.context("mirror run")?;
    Ok(took)
}

/// Removes the producer cursor from every checkpoint: the next start asks for a new id, as
/// strait did before it kept them.
fn forget_producers(store: &StateStore) -> Result<()> {
    let cps: Vec<_> = store
        .partitions()?
        .into_iter()
        .map(|(tp, cp)| {
            let cp = PartitionCheckpoint {
                producer: None,
                ..cp
            };
            (tp, cp)
        })
        .collect();
    store.record_partitions_written(cps.iter().map(|(tp, cp)| (tp, &[][..], cp)))?;
    Ok(())
}

/// Distinct producer ids in the target batches of every 100th partition.
async fn producer_ids(tc: &KafkaClient, topic: &str, partitions: i32) -> usize {
    let mut ids = BTreeSet::new();
    for p in (0..partitions).step_by(100) {
        let mut offset = 0;
        loop {
            let Some(f) = tc.fetch_at(topic, p, offset).await else {
                break;
            };
            let Ok(split) = strait_linker::batch::split(f.records) else {
                break;
            };
            let before = offset;
            for b in split.batches {
                let h = b.header();
                if h.last_offset() >= offset {
                    ids.insert(h.producer_id);
                    offset = h.next_offset();
                }
            }
            if offset == before || offset >= f.high_watermark {
                break;
            }
        }
    }
    ids.len()
}

async fn measure(
    target: &str,
    mode: &str,
    broker: &Broker,
    sc: &KafkaClient,
    a: &Args,
) -> Result<Vec<Row>> {
    let tc = KafkaClient::connect(ClientConfig::new(&broker.bootstrap())).await?;
    let pid = systems::broker_pid(broker).context("target pid")?;
    let topic = strait_testkit::unique(&format!("restart-{mode}"));
    let new = NewTopic {
        name: topic.clone(),
        partitions: a.partitions,
        replication_factor: 1,
        configs: Default::default(),
    };
    for (t, r) in sc
        .create_topics(&[new], Duration::from_secs(60), false)
        .await?
    {
        r.with_context(|| format!("creating {t}"))?;
    }
    let dir = tempfile::tempdir()?;
    let store = Arc::new(StateStore::open(dir.path())?);
    let mut rows = Vec::new();
    for start in 0..a.starts {
        load(sc, &topic, a).await;
        let end = ((start + 1) * a.batches * a.records) as i64;
        if mode == "fresh" {
            forget_producers(&store)?;
        }
        let cpu = systems::cpu_seconds(pid)?;
        let took = run_once(sc, &tc, &store, &topic, (a.partitions, end)).await?;
        let cpu = systems::cpu_seconds(pid)? - cpu;
        let batches = a.batches * a.partitions as usize;
        let row = Row {
            target: target.into(),
            mode: mode.into(),
            start,
            batches,
            copy_s: took.as_secs_f64(),
            target_cpu_ms_per_1000_batches: cpu * 1e3 / (batches as f64 / 1e3),
            producer_ids: producer_ids(&tc, &topic, a.partitions).await,
        };
        eprintln!(
            "[{target} {mode}] start {start}: {batches} batches in {:.2} s, target {:.0} CPU ms per 1,000 batches, {} producer ids",
            row.copy_s, row.target_cpu_ms_per_1000_batches, row.producer_ids
        );
        rows.push(row);
    }
    Ok(rows)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let a = args();
    let source = strait_testkit::kafka_source();
    let sc = KafkaClient::connect(ClientConfig::new(&source.bootstrap())).await?;
    let mut rows = Vec::new();
    for target in &a.targets {
        for mode in &a.modes {
            // A fresh tansu per mode: what one mode leaves there would weigh on the other.
            let own =
                (target == "tansu").then(|| strait_testkit::start_tansu(TansuStorage::Memory));
            let broker: &Broker = match &own {
                Some(b) => b,
                None => strait_testkit::kafka_target(),
            };
            rows.extend(measure(target, mode, broker, &sc, &a).await?);
        }
    }
    println!(
        "\n{} partitions, {} batches of {} records per partition per start\n",
        a.partitions, a.batches, a.records
    );
    println!("| target | mode | start | copy s | target CPU ms / 1,000 batches | producer ids |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {} |",
            r.target, r.mode, r.start, r.copy_s, r.target_cpu_ms_per_1000_batches, r.producer_ids
        );
    }
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/restart_cost.json",
        serde_json::to_vec_pretty(&rows)?,
    )?;
    println!("\nwrote target/bench/restart_cost.json");
    Ok(())
}
