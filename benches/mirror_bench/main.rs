//! Benchmark: strait's mirror against the brokers' ceiling, a naive rdkafka mirror and
//! MirrorMaker 2, on real brokers, in one run so the ratios are fair.
//!
//! ```text
//!  for each target (Kafka, tansu memory://): warm it up (warm.rs: 3 GB of raw produce, then
//!  strait and the naive mirror copy twice each; tansu: a fresh, warmed broker for every
//!  workload and for the latency run, see `Target::fresh_per_row`), then for each workload
//!  (1KB, 1KB-zstd, 100B, 1KB x 1000p, 1KB x 1000p with 90% of the bytes in 8 partitions):
//!    load backlog on source (strait client, 16 KiB batches) ─► raw fetch  (ceiling, source)
//!                                                         └─► raw produce of the same batches
//!                                                             to a scratch topic, 1 and 2
//!                                                             connections (ceiling, target:
//!                                                             the faster, and again after
//!                                                             strait's copy)
//!    strait run (release binary, own process) ─► time first→last record on target, VmHWM
//!    naive rdkafka mirror (consume + produce each record, fetch.wait.max.ms=10) ─► time
//!    MirrorMaker 2, dedicated mode, identity policy (Kafka target only) ─► time
//!  latency: 1 KiB records at half the 1KB ceiling, strait mirroring, source vs target readers
//!  group sync delay: read from target/bench/group_sync_delay.json (its own bench)
//!  cutover write pause: `strait scenario run benches/playbooks/write-pause-<target>.yaml`
//! ```
//!
//! `cargo bench --bench mirror -- [--mb N] [--large-mb N] [--large-partitions N]
//!  [--targets kafka,tansu] [--workloads 1kb,1kb-zstd,100b,1000p,1000p-skew]
//!  [--no-mm2] [--no-naive]
//!  [--latency-secs N] [--latency-mb-s N] [--latency-partitions N] [--latency-no-readers]
//!  [--budget-mib N] [--warm-up-mb N] [--no-write-pause]
//!  [--brokers-on-disk] [--pin-brokers [--pin-bench]]`; `scripts/bench.sh` runs it with the group-sync
//! bench. Prints a table, writes target/bench/mirror.json and target/bench/mirror.svg.

mod data;
mod latency;
mod pause;
mod report;
mod systems;
mod warm;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use strait_linker::client::{ClientConfig, KafkaClient};
use strait_testkit::{Broker, KafkaOptions, TansuStorage};

use data::Workload;
use report::{Report, Row};

#[derive(Debug)]
struct Args {
    mb: usize,
    large_mb: usize,
    large_partitions: i32,
    targets: Vec<String>,
    workloads: Vec<String>,
    mm2: bool,
    naive: bool,
    latency_secs: u64,
    /// Latency load in MB/s instead of half the pair's 1 KB ceiling.
    latency_mb_s: Option<f64>,
    /// Partitions of the latency topic.
    latency_partitions: i32,
    /// No readers in the latency run: only the source broker's and strait's CPU matter.
    latency_readers: bool,
    budget_mib: u64,
    write_pause: bool,
    /// Keep the brokers' logs on disk instead of a tmpfs.
    brokers_on_disk: bool,
    /// Pin the source broker to CPU 0 and the targets (and MirrorMaker 2's target) to CPU 1,
    /// the nearest this 2-core machine comes to brokers on their own hosts: the ceiling and
    /// every copy then see the target broker with the same one core, instead of a target
    /// that takes 120-130% of the machine alone and 108-116% beside the source broker.
    /// strait, the naive mirror, MirrorMaker 2 and the load stay unpinned.
    pin_brokers: bool,
    /// With `pin_brokers`, also pin this process, and so everything it starts (strait, MM2,
    /// the naive mirror, the raw client, the load), to CPU 0 beside the source broker: the
    /// target broker has CPU 1 to itself, as a target on its own host would.
    pin_bench: bool,
    /// The raw produce again after strait's copy, with the first connection count: a
    /// Kafka target kept warming after the warm-up, and the produce after the copy was
    /// 5-25% faster than the one before it in 11 of 12 runs (docs/benchmarks.md, item 25),
    /// so a ceiling measured only before the copy flattered /ceil. It joins the ceiling,
    /// which can only rise. On by default since session 25; `STRAIT_BENCH_RAW_AFTER=0`
    /// measures the ceiling before the copy only, as every run before did.
    raw_after: bool,
    /// MB written to each target by the raw client before anything is measured
    /// (`--warm-up-mb N`, default 3,072; at least two passes of the backlog). See
    /// [`warm::warm_up`].
    warm_up_mb: u64,
}

fn args() -> Args {
    let mut a = Args {
        mb: 128,
        large_mb: 100,
        large_partitions: 1000,
        targets: vec!["kafka".into(), "tansu".into()],
        workloads: ["1kb", "1kb-zstd", "100b", "1000p", "1000p-skew"]
            .map(String::from)
            .to_vec(),
        mm2: true,
        naive: true,
        latency_secs: 15,
        latency_mb_s: None,
        latency_partitions: 8,
        latency_readers: true,
        budget_mib: 256,
        write_pause: true,
        brokers_on_disk: false,
        pin_brokers: false,
        pin_bench: false,
        raw_after: data::env_flag("STRAIT_BENCH_RAW_AFTER", true),
        warm_up_mb: 3072,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let list = |s: &str| s.split(',').map(|x| x.trim().to_lowercase()).collect();
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--mb" => a.mb = v.parse().expect("--mb N"),
            "--large-mb" => a.large_mb = v.parse().expect("--large-mb N"),
            "--large-partitions" => a.large_partitions = v.parse().expect("--large-partitions N"),
            "--targets" => a.targets = list(&v),
            "--workloads" => a.workloads = list(&v),
            "--latency-secs" => a.latency_secs = v.parse().expect("--latency-secs N"),
            "--latency-mb-s" => a.latency_mb_s = Some(v.parse().expect("--latency-mb-s N")),
            "--latency-partitions" => {
                a.latency_partitions = v.parse().expect("--latency-partitions N")
            }
            "--latency-no-readers" => {
                a.latency_readers = false;
                i -= 1;
            }
            "--budget-mib" => a.budget_mib = v.parse().expect("--budget-mib N"),
            "--warm-up-mb" => a.warm_up_mb = v.parse().expect("--warm-up-mb N"),
            "--brokers-on-disk" => {
                a.brokers_on_disk = true;
                i -= 1;
            }
            "--pin-brokers" => {
                a.pin_brokers = true;
                i -= 1;
            }
            "--pin-bench" => {
                a.pin_bench = true;
                i -= 1;
            }
            "--no-write-pause" => {
                a.write_pause = false;
                i -= 1;
            }
            "--no-mm2" => {
                a.mm2 = false;
                i -= 1;
            }
            "--no-naive" => {
                a.naive = false;
                i -= 1;
            }
            _ => i -= 1, // `--bench` and anything else cargo passes
        }
        i += 2;
    }
    assert!(
        a.pin_brokers || !a.pin_bench,
        "--pin-bench goes with --pin-brokers"
    );
    // A misspelt name would otherwise just measure less than asked for.
    let known = |names: &[String], valid: &[&str], flag: &str| {
        for n in names {
            assert!(
                valid.contains(&n.as_str()),
                "{flag}: unknown name {n:?} (known: {})",
                valid.join(", ")
            );
        }
    };
    known(&a.targets, &["kafka", "tansu"], "--targets");
    known(
        &a.workloads,
        &["1kb", "1kb-zstd", "100b", "1000p", "1000p-skew", "none"],
        "--workloads",
    );
    a
}

fn workloads(a: &Args) -> Vec<Workload> {
    let mb = a.mb << 20;
    let large = a.large_mb << 20;
    let all = [
        ("1kb", 1024, 8, false, mb, 0),
        ("1kb-zstd", 1024, 8, true, mb, 0),
        ("100b", 100, 8, false, mb / 2, 0),
        ("1000p", 1024, a.large_partitions, false, large, 0),
        // 90% of the bytes in 8 partitions, the rest one batch or none per partition.
        ("1000p-skew", 1024, a.large_partitions, false, large, 8),
    ];
    all.into_iter()
        .filter(|w| a.workloads.iter().any(|n| n == w.0))
        .map(
            |(name, record_bytes, partitions, zstd, total_bytes, hot_partitions)| Workload {
                name,
                record_bytes,
                partitions,
                zstd,
                total_bytes,
                hot_partitions,
            },
        )
        .collect()
}

const TIMEOUT: Duration = Duration::from_secs(900);

fn mb_s(records: u64, record_bytes: usize, d: Duration) -> f64 {
    records as f64 * record_bytes as f64 / 1e6 / d.as_secs_f64()
}

async fn connect(b: &Broker) -> Result<KafkaClient> {
    Ok(KafkaClient::connect(ClientConfig::new(&b.bootstrap())).await?)
}

/// Deletes topics we no longer need (frees the disk and tansu's memory); best effort.
async fn drop_topics(c: &KafkaClient, topics: &[String]) {
    let _ = c.delete_topics(topics, Duration::from_secs(30)).await;
}

#[allow(clippy::too_many_arguments)]
async fn one_workload(
    a: &Args,
    w: &Workload,
    pair: &str,
    (source, target): (&Broker, &Broker),
    (sc, tc): (&KafkaClient, &KafkaClient),
    mm2_target: Option<(&Broker, &KafkaClient)>,
    scratch: &std::path::Path,
) -> Result<Row> {
    let topic = strait_testkit::unique(&format!("bench-{}", w.name));
    eprintln!(
        "[{pair} {}] loading {} MB into {topic}",
        w.name,
        w.total_bytes >> 20
    );
    let backlog = data::load(sc, w, &topic).await?;
    let records = backlog.records;
    let batches: usize = backlog.batches.iter().map(Vec::len).sum();
    eprintln!(
        "[{pair} {}] {} records per batch, {:.1} KiB per batch as stored",
        w.name,
        backlog.per_batch,
        backlog.wire_bytes as f64 / batches.max(1) as f64 / 1024.0
    );
    let mut row = Row {
        pair: pair.into(),
        workload: w.name.into(),
        partitions: w.partitions,
        records,
        payload_mb: records as f64 * w.record_bytes as f64 / 1e6,
        stored_mb: backlog.wire_bytes as f64 / 1e6,
        ..Row::default()
    };

    eprintln!("[{pair} {}] raw fetch", w.name);
    let (fetch, _) = data::raw_fetch(sc, &backlog).await?;
    row.raw_fetch_mb_s = mb_s(records, w.record_bytes, fetch);
    let payload_mb = row.payload_mb;
    let raw = |lanes: usize, after_strait: bool| {
        raw_produce(
            pair,
            w,
            (tc, target),
            &topic,
            (&backlog, payload_mb),
            lanes,
            after_strait,
        )
    };
    for lanes in data::raw_lanes() {
        row.add_raw(raw(lanes, false).await?);
    }

    eprintln!("[{pair} {}] strait", w.name);
    let (mut cpu, mut source_cpu) = (BrokerCpu(None), BrokerCpu(None));
    let (mut proc, copy) = warm::strait_copy(
        a,
        (source, target),
        tc,
        (&topic, w.partitions, backlog.end_offsets),
        || (cpu, source_cpu) = (BrokerCpu::start(target), BrokerCpu::start(source)),
    )
    .await?;
    row.target_cpu_ms_per_mb_strait = cpu.ms_per_mb(row.payload_mb);
    row.source_cpu_ms_per_mb_strait = source_cpu.ms_per_mb(row.payload_mb);
    row.strait_produce_requests = proc
        .metrics()
        .and_then(|m| systems::histogram(&m, "strait_produce_latency_seconds{cluster=\"target\""))
        .ok()
        .and_then(|h| h.last().map(|&(_, n)| n));
    row.strait_batches_per_request = row
        .strait_produce_requests
        .map(|n| batches as f64 / n.max(1) as f64);
    eprintln!(
        "[{pair} {}] strait: target broker {}, source broker {}, {} produce requests, {} batches each",
        w.name,
        BrokerCpu::show(row.target_cpu_ms_per_mb_strait),
        BrokerCpu::show(row.source_cpu_ms_per_mb_strait),
        row.strait_produce_requests
            .map_or("?".into(), |n| n.to_string()),
        row.strait_batches_per_request
            .map_or("?".into(), |b| format!("{b:.2}"))
    );
    row.strait_peak_rss_mib = proc.peak_rss()? as f64 / (1 << 20) as f64;
    row.strait_cpu_s_per_gb = proc.cpu_seconds()? / (records as f64 * w.record_bytes as f64 / 1e9);
    proc.stop()?;
    row.strait_mb_s = mb_s(records, w.record_bytes, copy.copy);
    row.strait_records_s = records as f64 / copy.copy.as_secs_f64();
    row.strait_startup_s = copy.startup.as_secs_f64();
    drop_topics(tc, std::slice::from_ref(&topic)).await;
    if a.raw_after {
        row.add_raw(raw(data::raw_lanes()[0], true).await?);
    }

    if a.naive {
        eprintln!("[{pair} {}] naive rdkafka", w.name);
        let to = format!("{topic}.naive");
        let mut cpu = BrokerCpu(None);
        let copy = warm::naive_copy(
            (source, target),
            tc,
            (&topic, &to),
            w,
            (records, backlog.end_offsets),
            || cpu = BrokerCpu::start(target),
        )
        .await?;
        row.target_cpu_ms_per_mb_naive = cpu.ms_per_mb(row.payload_mb);
        eprintln!(
            "[{pair} {}] naive: target broker {}",
            w.name,
            BrokerCpu::show(row.target_cpu_ms_per_mb_naive)
        );
        row.naive_mb_s = Some(mb_s(records, w.record_bytes, copy.copy));
        drop_topics(tc, &[to]).await;
    }

    if let Some((mm2_broker, mc)) = mm2_target {
        eprintln!("[{pair} {}] MirrorMaker 2", w.name);
        let started = Instant::now();
        let mut child = systems::spawn_mm2(
            &source.bootstrap(),
            &mm2_broker.bootstrap(),
            &topic,
            scratch,
        )?;
        let copy = systems::wait_for_target(
            mc,
            &topic,
            w.partitions,
            backlog.end_offsets,
            started,
            TIMEOUT,
            || {},
        )
        .await;
        let _ = child.kill();
        let _ = child.wait();
        let copy = copy.with_context(|| format!("MM2 log in {}", scratch.display()))?;
        row.mm2_mb_s = Some(mb_s(records, w.record_bytes, copy.copy));
        row.mm2_startup_s = Some(copy.startup.as_secs_f64());
        drop_topics(mc, std::slice::from_ref(&topic)).await;
    }
    drop_topics(sc, &[topic]).await;
    Ok(row)
}

/// Writes the backlog's batches to a scratch topic on the target with strait's client alone
/// (`lanes` connections per broker): one raw produce ceiling.
async fn raw_produce(
    pair: &str,
    w: &Workload,
    (tc, target): (&KafkaClient, &Broker),
    topic: &str,
    (backlog, payload_mb): (&data::Backlog, f64),
    lanes: usize,
    after_strait: bool,
) -> Result<report::RawProduce> {
    let when = if after_strait { " after strait" } else { "" };
    eprint!(
        "[{pair} {}] raw produce{when}, {lanes} connection(s) per broker: ",
        w.name
    );
    let raw_topic = format!("{topic}.raw{lanes}{}", if after_strait { "a" } else { "" });
    data::create_topic(tc, &raw_topic, w.partitions).await?;
    let cpu = BrokerCpu::start(target);
    let produce = data::produce_all(tc, &raw_topic, &backlog.batches, 8, lanes).await?;
    let cpu = cpu.ms_per_mb(payload_mb);
    let rate = mb_s(backlog.records, w.record_bytes, produce);
    eprintln!("{rate:.1} MB/s, target broker {}", BrokerCpu::show(cpu));
    drop_topics(tc, &[raw_topic]).await;
    Ok(report::RawProduce {
        lanes,
        after_strait,
        mb_s: rate,
        target_cpu_ms_per_mb: cpu,
    })
}

/// A broker's CPU time over one phase, read from `/proc` before and after (no
/// sampler running beside the copy: item 24's sampler slowed it).
struct BrokerCpu(Option<(u32, f64)>);

impl BrokerCpu {
    fn start(broker: &Broker) -> Self {
        Self(
            systems::broker_pid(broker)
                .and_then(|pid| Some((pid, systems::cpu_seconds(pid).ok()?))),
        )
    }

    /// CPU milliseconds per MB of `payload_mb`, or `None` when the broker's threads could
    /// not be read.
    fn ms_per_mb(&self, payload_mb: f64) -> Option<f64> {
        let (pid, before) = self.0?;
        let after = systems::cpu_seconds(pid).ok()?;
        Some((after - before) * 1e3 / payload_mb)
    }

    fn show(ms: Option<f64>) -> String {
        ms.map_or("CPU unknown".into(), |m| format!("{m:.2} CPU ms/MB"))
    }
}

/// A target broker (and MirrorMaker 2's own Kafka target), pinned, connected and warmed up.
struct Target {
    broker: Broker,
    client: KafkaClient,
    mm2: Option<(Broker, KafkaClient)>,
}

impl Target {
    async fn start(
        a: &Args,
        t: &str,
        pair: &str,
        (source, sc): (&Broker, &KafkaClient),
    ) -> Result<Self> {
        let (broker, mm2) = match t {
            "kafka" => (
                strait_testkit::start_kafka(kafka_options()),
                a.mm2.then(|| strait_testkit::start_kafka(kafka_options())),
            ),
            "tansu" => (strait_testkit::start_tansu(TansuStorage::Memory), None),
            other => anyhow::bail!("unknown target {other}"),
        };
        if a.pin_brokers {
            systems::pin(&broker, 1)?;
            if let Some(m) = &mm2 {
                systems::pin(m, 1)?;
            }
        }
        let client = connect(&broker).await?;
        let mm2 = match mm2 {
            Some(b) => {
                let c = connect(&b).await?;
                Some((b, c))
            }
            None => None,
        };
        let mc = mm2.as_ref().map(|(_, c)| c);
        warm::warm_up(a, pair, (source, &broker), (sc, &client), mc).await?;
        Ok(Self {
            broker,
            client,
            mm2,
        })
    }

    /// Whether each row (and the latency run) gets a target of its own. tansu 0.6 keeps
    /// every idempotent producer's sequence numbers, for every partition it ever wrote, in
    /// one metadata object that it reads, updates and writes again for every idempotent
    /// batch, and never expires them (`DynoStore::produce`): each strait run leaves a
    /// producer with a sequence per partition behind, and every later idempotent write
    /// pays for it. After the 1,000-partition row, the skewed row cost tansu 4.14 CPU ms
    /// per MB of strait's writes against 2.75 on a fresh tansu (230 against 283 MB/s), so
    /// a shared tansu measured the rows before a row as much as the row. Kafka keeps
    /// producer state per partition and needs minutes of warming: it is shared.
    /// `STRAIT_BENCH_SHARED_TANSU=1` shares one tansu too, as every run before session 27.
    fn fresh_per_row(&self) -> bool {
        self.broker.kind() == strait_testkit::BrokerKind::Tansu
            && !data::env_flag("STRAIT_BENCH_SHARED_TANSU", false)
    }
}

/// The bench's Kafka brokers: a 1 GB heap, and a deleted topic's files removed at once
/// instead of a minute later (`file.delete.delay.ms`, default 60 s), so that the bench's
/// own clean-up of one phase does not land, as a burst of deletions, on a later phase.
fn kafka_options() -> KafkaOptions {
    KafkaOptions::new()
        .heap("1g")
        .config("file.delete.delay.ms", "0")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let a = args();
    eprintln!("{a:?}");
    let storage = data::broker_storage(a.brokers_on_disk);
    eprintln!("brokers' logs: {}", storage.describe());
    let scratch = tempfile::tempdir()?;
    let source = strait_testkit::start_kafka(kafka_options());
    if a.pin_bench {
        systems::pin_pid(std::process::id(), 0, "the bench")?;
    }
    if a.pin_brokers {
        systems::pin(&source, 0)?;
    }
    let sc = connect(&source).await?;
    let mut report = Report {
        machine: format!(
            "{} cores, Kafka 4.3.1 source, brokers' logs {}{}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            storage.describe(),
            match (a.pin_brokers, a.pin_bench) {
                (true, true) => ", targets pinned to CPU 1, all else to CPU 0",
                (true, false) => ", source broker pinned to CPU 0, targets to CPU 1",
                _ => "",
            }
        ),
        budget_mib: a.budget_mib,
        ..Report::default()
    };
    for t in a.targets.clone() {
        let pair = format!("kafka->{t}");
        let mut tg = Target::start(&a, &t, &pair, (&source, &sc)).await?;
        for (i, w) in workloads(&a).into_iter().enumerate() {
            if i > 0 && tg.fresh_per_row() {
                drop(tg);
                tg = Target::start(&a, &t, &pair, (&source, &sc)).await?;
            }
            let (target, tc) = (&tg.broker, &tg.client);
            let mm2_target = tg.mm2.as_ref().map(|(b, c)| (b, c));
            match one_workload(
                &a,
                &w,
                &pair,
                (&source, target),
                (&sc, tc),
                mm2_target,
                scratch.path(),
            )
            .await
            {
                Ok(row) => {
                    eprint!(
                        "{}",
                        report::table(&Report {
                            rows: vec![row.clone()],
                            budget_mib: a.budget_mib,
                            ..Report::default()
                        })
                    );
                    report.rows.push(row);
                }
                Err(e) => eprintln!("[{pair} {}] FAILED: {e:#}", w.name),
            }
        }
        if a.latency_secs > 0 && tg.fresh_per_row() && !workloads(&a).is_empty() {
            drop(tg);
            tg = Target::start(&a, &t, &pair, (&source, &sc)).await?;
        }
        let (target, tc) = (&tg.broker, &tg.client);
        // Latency at half the 1 KB ceiling of this pair.
        if a.latency_secs > 0 {
            let ceiling = report
                .rows
                .iter()
                .find(|r| r.pair == pair && r.workload == "1kb")
                .map_or(20e6, |r| r.ceiling() * 1e6);
            let ceiling = a.latency_mb_s.map_or(ceiling, |r| 2.0 * r * 1e6);
            eprintln!("[{pair}] latency at {:.1} MB/s", ceiling / 2e6);
            match latency::run(
                &sc,
                tc,
                (&source.bootstrap(), &target.bootstrap()),
                latency::Setup {
                    rate: ceiling / 2.0,
                    secs: a.latency_secs,
                    budget_mib: a.budget_mib,
                    read_target: t == "kafka",
                    read_source: a.latency_readers,
                    partitions: a.latency_partitions,
                    source_pid: systems::broker_pid(&source),
                    target_pid: systems::broker_pid(target),
                },
            )
            .await
            {
                Ok(l) => report.latency.push((pair.clone(), l)),
                Err(e) => eprintln!("[{pair}] latency FAILED: {e:#}"),
            }
        }
    }
    if a.write_pause {
        let mut lines = Vec::new();
        for t in &a.targets {
            eprintln!("[kafka->{t}] cutover write pause (benches/playbooks/write-pause-{t}.yaml)");
            match pause::run(t, &storage) {
                Ok(p) => {
                    lines.push(format!(
                        "{} {} ms (fenced to promoted; producers paused {} ms; {} records acknowledged)",
                        p.pair,
                        p.strait_ms,
                        p.producers_ms.map_or("?".into(), |m| m.to_string()),
                        p.records
                    ));
                    report.write_pauses.push(p);
                }
                Err(e) => eprintln!("[kafka->{t}] write pause FAILED: {e:#}"),
            }
        }
        if !lines.is_empty() {
            report.cutover_write_pause = Some(lines.join("; "));
        }
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out)?;
    report.group_sync = std::fs::read_to_string(out.join("group_sync_delay.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let table = report::table(&report);
    println!("{table}");
    std::fs::write(
        out.join("mirror.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(out.join("mirror.svg"), report::svg(&report))?;
    std::fs::write(out.join("mirror.txt"), table)?;
    println!("wrote {}/mirror.{{json,svg,txt}}", out.display());
    Ok(())
}
