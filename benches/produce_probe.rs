//! Benchmark: what a target broker's produce path costs, by batch size and by number of
//! connections, with strait's own client. It answers where the Kafka-target ceiling of the
//! mirror bench comes from (one appended batch per partition per request, one request per
//! connection at a time) and whether spreading partitions over connections lifts it.
//!
//! ```text
//!  for each target (Kafka, tansu) x batch size (16 KiB .. 1 MiB) x connections (1, 2, 4):
//!    (first a warm-up write: a fresh JVM broker takes writes at half speed until its JIT
//!    has compiled the produce path)
//!    fresh 8-partition topic; 1 KiB JSON-like records pre-encoded into batches;
//!    rounds of one batch per partition, 8 rounds in flight, each spread over C connections
//!    (a partition always on the same one, as the mirror writes)  ─► MB/s of record payload
//!    plain (no producer id) and idempotent (one InitProducerId, consecutive sequences per
//!    partition, rounds queued in order: the way strait writes)
//!    --stack S: S consecutive batches of a partition in one request's records (Kafka
//!    refuses more than one; tansu takes them), to see what a target's per-request cost is
//! ```
//!
//! `cargo bench --bench produce_probe -- [--mb N] [--targets kafka,tansu]
//!  [--batch-kib 16,64,256,1024] [--connections 1,2,4] [--modes plain,idempotent]
//!  [--stack 1,8,64] [--partitions N] [--brokers-on-disk] [--pin]`
//!
//! Each line also gives the broker's CPU time per MB of payload over the write (read from
//! `/proc` before and after); `--pin` pins the broker to CPU 1 (as the mirror bench's
//! `--pin-brokers` pins a target), so that it writes on one core.
//!
//! The brokers' logs go on a tmpfs unless `--brokers-on-disk` (see `data::broker_storage`).

#[path = "mirror_bench/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "mirror_bench/systems.rs"]
#[allow(dead_code)]
mod systems;

use anyhow::Result;
use bytes::Bytes;
use strait_linker::client::{ClientConfig, KafkaClient};
use strait_testkit::{KafkaOptions, TansuStorage};

const RECORD: usize = 1024;

struct Args {
    mb: usize,
    targets: Vec<String>,
    batch_kib: Vec<usize>,
    connections: Vec<usize>,
    modes: Vec<String>,
    stack: Vec<usize>,
    partitions: i32,
    brokers_on_disk: bool,
    pin: bool,
}

fn args() -> Args {
    let mut a = Args {
        mb: 64,
        targets: vec!["kafka".into(), "tansu".into()],
        batch_kib: vec![16, 64, 256, 1024],
        connections: vec![1, 2, 4],
        modes: vec!["plain".into(), "idempotent".into()],
        stack: vec![1],
        partitions: 8,
        brokers_on_disk: false,
        pin: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let list = |s: &str| -> Vec<String> { s.split(',').map(|x| x.trim().to_owned()).collect() };
    let nums = |s: &str| -> Vec<usize> {
        list(s)
            .iter()
            .map(|x| x.parse().expect("a list of numbers"))
            .collect()
    };
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--mb" => a.mb = v.parse().expect("--mb N"),
            "--targets" => a.targets = list(&v),
            "--batch-kib" => a.batch_kib = nums(&v),
            "--connections" => a.connections = nums(&v),
            "--modes" => a.modes = list(&v),
            "--stack" => a.stack = nums(&v),
            "--partitions" => a.partitions = v.parse().expect("--partitions N"),
            "--brokers-on-disk" => {
                a.brokers_on_disk = true;
                i += 1;
                continue;
            }
            "--pin" => {
                a.pin = true;
                i += 1;
                continue;
            }
            // cargo bench passes --bench; ignore what is not ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// Batches of about `batch_bytes` of 1 KiB records, round-robin over the partitions.
fn generate(total: usize, batch_bytes: usize, partitions: i32) -> Vec<Vec<Bytes>> {
    let per_batch = (batch_bytes / RECORD).max(1);
    let batches = total.div_ceil(per_batch * RECORD);
    let mut out = vec![Vec::new(); partitions as usize];
    let ts = data::now_ms();
    for b in 0..batches {
        out[b % partitions as usize].push(data::encode_batch(
            (b * per_batch) as u64,
            per_batch,
            RECORD,
            false,
            ts,
        ));
    }
    out
}

/// Each partition's batches in runs of `stack`, concatenated: one request's records.
fn stacked(batches: &[Vec<Bytes>], stack: usize) -> Vec<Vec<Bytes>> {
    batches
        .iter()
        .map(|bs| {
            bs.chunks(stack.max(1))
                .map(|run| Bytes::from(run.concat()))
                .collect()
        })
        .collect()
}

/// Like `data::produce_all` (which writes plain batches), but under one producer id with consecutive sequence numbers per
/// partition, rounds queued on the connections in order from this task (as the mirror's
/// `send_rounds` does), `window` rounds in flight.
async fn produce_idempotent(
    c: &KafkaClient,
    topic: &str,
    batches: &[Vec<Bytes>],
    window: usize,
    lanes: usize,
    stack: usize,
) -> Result<std::time::Duration> {
    use strait_linker::batch::RawBatch;
    // A fresh broker answers COORDINATOR_LOAD_IN_PROGRESS for a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let id = loop {
        match c
            .init_producer_id(None, std::time::Duration::from_secs(60))
            .await
        {
            Ok(id) => break id,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("InitProducerId: {e}; again");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    // Stamped before the clock starts: the mirror stamps as it sends, but the copy is the
    // same for both modes' comparison only if it is left out of both.
    let mut seq = vec![0i32; batches.len()];
    let stamped: Vec<Vec<Bytes>> = batches
        .iter()
        .enumerate()
        .map(|(p, bs)| {
            bs.iter()
                .map(|b| {
                    let raw = RawBatch::from_bytes(b.clone()).expect("own batch");
                    let n = raw.header().record_count;
                    let out = raw
                        .for_produce(Some((id.producer_id, id.producer_epoch, seq[p])))
                        .into_bytes();
                    seq[p] += n;
                    out
                })
                .collect()
        })
        .collect();
    let stamped = stacked(&stamped, stack);
    // Until every partition takes writes (a new topic's leaders may not yet), with a plain
    // write that is not timed: the idempotent rounds below cannot be retried one by one.
    let warm = data::round(topic, batches, 0);
    data::produce_retrying(c, warm, lanes).await?;
    let rounds = stamped.iter().map(Vec::len).max().unwrap_or(0);
    let started = std::time::Instant::now();
    let mut inflight = std::collections::VecDeque::new();
    for r in 0..rounds {
        let items = data::round(topic, &stamped, r);
        if inflight.len() >= window {
            check_round(inflight.pop_front().expect("non-empty")).await?;
        }
        let answers = c
            .queue_produce(items, -1, std::time::Duration::from_secs(60), 0..lanes)
            .await;
        inflight.push_back(tokio::spawn(answers));
    }
    while let Some(h) = inflight.pop_front() {
        check_round(h).await?;
    }
    Ok(started.elapsed())
}

/// Records stored in `topic` (the sum of its partitions' end offsets; -1 if unknown).
async fn stored(c: &KafkaClient, topic: &str, partitions: i32) -> i64 {
    let parts: Vec<(String, i32)> = (0..partitions).map(|p| (topic.to_owned(), p)).collect();
    c.log_bounds(&parts)
        .await
        .into_values()
        .map(|b| b.map_or(-1, |b| b.end))
        .sum()
}

async fn check_round(
    h: tokio::task::JoinHandle<
        strait_linker::client::data::PartitionResults<strait_linker::client::data::ProduceAck>,
    >,
) -> Result<()> {
    for ((t, p), r) in h.await? {
        if let Err(e) = r {
            anyhow::bail!("idempotent produce to {t}-{p}: {e}");
        }
    }
    Ok(())
}

async fn probe(broker: &strait_testkit::Broker, a: &Args, target: &str) -> Result<()> {
    let admin = KafkaClient::connect(ClientConfig::new(&broker.bootstrap())).await?;
    let pid = systems::broker_pid(broker);
    let cpu = || pid.and_then(|p| systems::cpu_seconds(p).ok());
    let warm = format!("probe-warm-{}", data::now_ms());
    data::create_topic(&admin, &warm, a.partitions).await?;
    let started = std::time::Instant::now();
    data::produce_all(
        &admin,
        &warm,
        &generate(a.mb << 20, 16 << 10, a.partitions),
        8,
        1,
    )
    .await?;
    eprintln!("{target}: warm-up write took {:?}", started.elapsed());
    let _ = admin
        .delete_topics(&[warm], std::time::Duration::from_secs(30))
        .await;
    for &kib in &a.batch_kib {
        let batches = generate(a.mb << 20, kib << 10, a.partitions);
        let records: usize = batches.iter().flatten().count() * ((kib << 10) / RECORD).max(1);
        for (&conns, mode, &stack) in a.connections.iter().flat_map(|c| {
            a.modes
                .iter()
                .flat_map(move |m| a.stack.iter().map(move |s| (c, m, s)))
        }) {
            let topic = format!("probe-{kib}k-{conns}c-{mode}-{stack}s-{}", data::now_ms());
            data::create_topic(&admin, &topic, a.partitions).await?;
            let cpu_before = cpu();
            let elapsed = match mode.as_str() {
                "plain" => {
                    data::produce_all(&admin, &topic, &stacked(&batches, stack), 8, conns).await?
                }
                "idempotent" => {
                    produce_idempotent(&admin, &topic, &batches, 8, conns, stack).await?
                }
                other => anyhow::bail!("unknown mode {other}"),
            };
            let cpu_ms_per_mb = cpu_before.zip(cpu()).map_or("?".into(), |(b, e)| {
                format!("{:.2}", (e - b) * 1e3 / ((records * RECORD) as f64 / 1e6))
            });
            let secs = elapsed.as_secs_f64();
            let end = stored(&admin, &topic, a.partitions).await;
            println!(
                "{target:6} batch {kib:5} KiB  stack {stack:3}  connections {conns}  {mode:10}  {:8.1} MB/s  {:9.0} rec/s  broker {cpu_ms_per_mb} CPU ms/MB  stored {end} of {records}",
                (records * RECORD) as f64 / 1e6 / secs,
                records as f64 / secs
            );
            let _ = admin
                .delete_topics(&[topic], std::time::Duration::from_secs(30))
                .await;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let a = args();
    let storage = data::broker_storage(a.brokers_on_disk);
    eprintln!("brokers' logs: {}", storage.describe());
    for t in a.targets.clone() {
        let broker = match t.as_str() {
            "kafka" => strait_testkit::start_kafka(KafkaOptions::new().heap("1g")),
            "tansu" => strait_testkit::start_tansu(TansuStorage::Memory),
            other => anyhow::bail!("unknown target {other}"),
        };
        if a.pin {
            systems::pin(&broker, 1)?;
        }
        probe(&broker, &a, &t).await?;
    }
    Ok(())
}
