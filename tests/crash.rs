//! Crash safety: the `strait` binary is killed with SIGKILL at random moments while a
//! producer keeps writing; after a final clean run the target must equal the source exactly,
//! with no duplicate and no gap, on Apache Kafka and on tansu targets. And the producer ids
//! strait leaves on the target: one across restarts, one for a slow InitProducerId.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use strait_linker::client::KafkaClient;
use strait_linker::client::data::Isolation;
use strait_testkit::{Broker, kafka_source, kafka_target, tansu_target, unique};
use support::*;

/// Kills in the loop; the issue asks for at least 20.
const KILLS: usize = 20;
const PARTITIONS: i32 = 3;

/// strait's config for mirroring `topic`, with the defaults an operator gets: up to 8
/// batches of a partition per request, which tansu takes and Apache Kafka refuses once per
/// start (the crash tests cover both the stacked writes and that refusal).
fn write_config(dir: &Path, source: &Broker, target: &Broker, topic: &str) -> std::path::PathBuf {
    let path = dir.join("strait.toml");
    let toml = format!(
        r#"[source]
bootstrap_servers = "{}"
[target]
bootstrap_servers = "{}"
[mirror]
topics = ["{topic}"]
topic_refresh_interval = "1s"
[state]
dir = "{}"
[log]
level = "info"
"#,
        source.bootstrap(),
        target.bootstrap(),
        dir.join("state").display()
    );
    std::fs::write(&path, toml).unwrap();
    path
}

fn spawn_strait(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("strait starts")
}

async fn crash_loop(target: &'static Broker) {
    let source = kafka_source();
    let sc = client(source).await;
    let topic = unique("crash");
    create_topic(&sc, &topic, PARTITIONS, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), source, target, &topic);
    let log = dir.path().join("strait.log");

    // A producer that keeps writing numbered records until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, topic) = (Arc::clone(&stop), topic.clone());
        tokio::spawn(async move {
            let p = producer(
                source,
                &[("enable.idempotence", "true"), ("linger.ms", "5")],
            );
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                for part in 0..PARTITIONS {
                    let mut recs = sample_records(20, "crash");
                    for (i, r) in recs.iter_mut().enumerate() {
                        r.key = Some(format!("{part}-{}", n + i).into_bytes());
                    }
                    send_all(&p, &topic, part, &recs).await;
                }
                n += 20;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        })
    };

    // Random lifetimes, drawn up front (the thread-local RNG must not live across awaits).
    let lifetimes: Vec<u64> = {
        let mut rng = rand::rng();
        (0..KILLS).map(|_| rng.random_range(150..1500)).collect()
    };
    for (i, ms) in lifetimes.into_iter().enumerate() {
        let mut child = spawn_strait(&config, &log);
        let alive = Duration::from_millis(ms);
        tokio::time::sleep(alive).await;
        child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(!status.success(), "kill {i}: strait was killed, not exited");
    }
    stop.store(true, Ordering::Relaxed);
    let per_partition = writer.await.unwrap();
    final_run_and_check(target, &topic, &config, &log, per_partition).await;
}

/// A final clean run until the target has everything, a graceful stop, then independent
/// checks: `strait verify`, no error logged, and every partition `p` holds exactly the
/// records keyed `p-0`..`p-{per_partition}`, once each and in order, and nothing more.
async fn final_run_and_check(
    target: &'static Broker,
    topic: &str,
    config: &Path,
    log: &Path,
    per_partition: usize,
) {
    let (sc, tc) = (client(kafka_source()).await, client(target).await);
    let mut child = spawn_strait(config, log);
    let ends = wait_mirrored(&sc, &tc, topic, &mut child, log).await;
    terminate(&mut child);

    // Independent checks: strait verify, then an rdkafka consumer on the target.
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["verify", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "verify failed: {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Errors the runs logged (a partition that stopped), shown with any failure below.
    let errors: String = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ERROR"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        errors.is_empty(),
        "a partition stopped with an error:\n{errors}"
    );
    for p in 0..PARTITIONS {
        let want = per_partition;
        let got = consume_n(target, topic, p, want, false);
        let keys: Vec<String> = got
            .iter()
            .map(|(_, r)| String::from_utf8(r.key.clone().unwrap()).unwrap())
            .collect();
        let unique_keys: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(
            unique_keys.len(),
            keys.len(),
            "partition {p}: duplicates on the target; errors logged:\n{errors}"
        );
        let expected: Vec<String> = (0..want).map(|n| format!("{p}-{n}")).collect();
        assert_eq!(
            keys, expected,
            "partition {p}: every record once, in order; errors logged:\n{errors}"
        );
        assert_eq!(
            fetch_all(&tc, topic, p, Isolation::ReadUncommitted)
                .await
                .end,
            ends[p as usize],
            "partition {p}: nothing beyond the source end"
        );
    }
    // How often a restart found batches on the target past its checkpoint (written just
    // before a kill) and matched them instead of writing them again.
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let reconciled = text.matches("matching them with the source").count();
    // How many producer ids the target holds state for: one per start before restarts
    // continued under the checkpoint's id.
    let mut ids = BTreeSet::new();
    for p in 0..PARTITIONS {
        ids.extend(producers_from(&tc, topic, p, 0).await);
    }
    println!(
        "{per_partition} records per partition mirrored exactly; {reconciled} tail reconciliations; {} producer ids on the target",
        ids.len()
    );
}

/// A new partition's first checkpoint must be on disk before its first write: killed the
/// moment the first records appear on the target (well inside sled's background flush
/// interval), a restart must neither take the target's end for the start and write the
/// records again, nor refuse the topic as holding data strait did not write.
async fn killed_at_the_first_write(target: &'static Broker) {
    let source = kafka_source();
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("first-write");
    create_topic(&sc, &topic, PARTITIONS, &[]).await;
    let per_partition = 300;
    let p = producer(source, &[("enable.idempotence", "true")]);
    for part in 0..PARTITIONS {
        let mut recs = sample_records(per_partition, "first");
        for (i, r) in recs.iter_mut().enumerate() {
            r.key = Some(format!("{part}-{i}").into_bytes());
        }
        send_all(&p, &topic, part, &recs).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), source, target, &topic);
    let log = dir.path().join("strait.log");
    let mut child = spawn_strait(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    'written: loop {
        for part in 0..PARTITIONS {
            let key = (topic.clone(), part);
            if let Some(Ok(b)) = tc.log_bounds(std::slice::from_ref(&key)).await.remove(&key)
                && b.end > 0
            {
                break 'written;
            }
        }
        assert!(Instant::now() < deadline, "strait wrote nothing in 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    final_run_and_check(target, &topic, &config, &log, per_partition).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_the_first_write_kafka() {
    killed_at_the_first_write(kafka_target()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_the_first_write_tansu() {
    killed_at_the_first_write(tansu_target()).await;
}

/// The producer ids (and epochs) the batches of `topic`'s partition `p` on the target carry,
/// from `from` on, in log order.
async fn producers_from(c: &KafkaClient, topic: &str, p: i32, from: i64) -> Vec<(i64, i16)> {
    fetch_all(c, topic, p, Isolation::ReadUncommitted)
        .await
        .batches
        .iter()
        .map(|b| b.header())
        .filter(|h| h.base_offset >= from)
        .map(|h| (h.producer_id, h.producer_epoch))
        .collect()
}

/// Waits until every partition of `topic` on the target reaches the source's end (read
/// once: the source is not written meanwhile) while `child` (logging to `log`) runs; returns
/// those ends.
async fn wait_mirrored(
    sc: &KafkaClient,
    tc: &KafkaClient,
    topic: &str,
    child: &mut Child,
    log: &Path,
) -> Vec<i64> {
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        ends.push(fetch_all(sc, topic, p, Isolation::ReadCommitted).await.end);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut done = true;
        for (p, end) in ends.iter().enumerate() {
            done &= fetch_all(tc, topic, p as i32, Isolation::ReadUncommitted)
                .await
                .end
                >= *end;
        }
        if done {
            return ends;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "strait exited early; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(
            Instant::now() < deadline,
            "target did not catch up; log: {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Restarts (graceful and SIGKILL, the latter before the last progress write is on disk)
/// continue under the producer id the first run wrote with: every batch written after the
/// first run carries the id of the partition's last batch before it, so the target keeps one
/// producer's state per partition however often strait restarts; and the records arrive
/// exactly once.
async fn restarts_keep_the_producer_id(target: &'static Broker) {
    let source = kafka_source();
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("same-pid");
    create_topic(&sc, &topic, PARTITIONS, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), source, target, &topic);
    let log = dir.path().join("strait.log");
    let p = producer(source, &[("enable.idempotence", "true")]);
    let per_round = 200;
    let mut written = 0;
    let mut first_run: Vec<(i64, (i64, i16))> = Vec::new();
    for round in 0..4 {
        for part in 0..PARTITIONS {
            let mut recs = sample_records(per_round, "pid");
            for (i, r) in recs.iter_mut().enumerate() {
                r.key = Some(format!("{part}-{}", written + i).into_bytes());
            }
            send_all(&p, &topic, part, &recs).await;
        }
        written += per_round;
        let mut child = spawn_strait(&config, &log);
        wait_mirrored(&sc, &tc, &topic, &mut child, &log).await;
        if round % 2 == 0 {
            terminate(&mut child);
        } else {
            child.kill().expect("SIGKILL");
            child.wait().unwrap();
        }
        if round == 0 {
            for part in 0..PARTITIONS {
                let f = fetch_all(&tc, &topic, part, Isolation::ReadUncommitted).await;
                let last = f.batches.last().expect("the first run wrote").header();
                assert!(last.producer_id >= 0, "strait writes with a producer id");
                first_run.push((f.end, (last.producer_id, last.producer_epoch)));
            }
        }
    }
    final_run_and_check(target, &topic, &config, &log, written).await;
    for (part, (end, id)) in first_run.iter().enumerate() {
        let later = producers_from(&tc, &topic, part as i32, *end).await;
        assert!(later.len() >= 3, "partition {part}: later runs wrote");
        assert!(
            later.iter().all(|p| p == id),
            "partition {part}: the batches after the first run carry {later:?}, not only the first run's {id:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restarts_keep_the_producer_id_kafka() {
    restarts_keep_the_producer_id(kafka_target()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restarts_keep_the_producer_id_tansu() {
    restarts_keep_the_producer_id(tansu_target()).await;
}

/// A target slow to answer InitProducerId is asked once for the mirror's shared id, not again
/// every 200 ms while the answer is out: each answer is a new id, partitions that became ready
/// at different times took different ones, and the target keeps every one's state (measured
/// with `benches/restart_cost.rs`: two ids per start at 1,000 partitions on Kafka).
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_init_producer_id_is_asked_once() {
    const INIT_PRODUCER_ID: i16 = 22;
    let (source, target) = (kafka_source(), kafka_target());
    let sc = client(source).await;
    let topic = unique("slow-pid");
    create_topic(&sc, &topic, PARTITIONS, &[]).await;
    let p = producer(source, &[]);
    for part in 0..PARTITIONS {
        send_all(&p, &topic, part, &sample_records(50, "slow")).await;
    }
    // A target just started answers its first InitProducerIds with
    // COORDINATOR_LOAD_IN_PROGRESS (retried, rightly): ask until it gives ids.
    let tc = client(target).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = tc.init_producer_id(None, Duration::from_secs(30)).await {
        assert!(
            Instant::now() < deadline,
            "the target gives no producer id: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let proxy = strait_testkit::FaultProxy::start(&target.bootstrap());
    proxy.delay_responses(INIT_PRODUCER_ID, Duration::from_secs(2));
    let via = KafkaClient::connect(strait_linker::client::ClientConfig::new(&proxy.bootstrap()))
        .await
        .unwrap();
    let m = support::mirror::start_mirror_between(sc, via, &[&topic], |_| {}).await;
    support::mirror::wait_caught_up(&m.status, &topic, &[50; PARTITIONS as usize]).await;
    m.stop().await;
    assert_eq!(
        proxy.requests(INIT_PRODUCER_ID),
        1,
        "one InitProducerId for the shared id"
    );
    let mut ids = BTreeSet::new();
    for part in 0..PARTITIONS {
        ids.extend(producers_from(&tc, &topic, part, 0).await);
    }
    assert_eq!(ids.len(), 1, "every partition under the one id: {ids:?}");
}

/// A restart reads every partition's target tail in one Fetch for all, not one each: at
/// 1,000 partitions on tansu one each took 2.7 s before the last partition could write
/// (`benches/restart_cost.rs`). The copy after the restart is then verified exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_reads_the_tails_together() {
    const FETCH: i16 = 1;
    const MANY: i32 = 24;
    let (source, target) = (kafka_source(), kafka_target());
    let sc = client(source).await;
    let topic = unique("tails");
    create_topic(&sc, &topic, MANY, &[]).await;
    let p = producer(source, &[]);
    for part in 0..MANY {
        send_all(&p, &topic, part, &sample_records(20, "tails")).await;
    }
    let m = support::mirror::start_mirror(source, target, &[&topic], |_| {}).await;
    support::mirror::wait_caught_up(&m.status, &topic, &[20; MANY as usize]).await;
    let state = m.stop().await;
    for part in 0..MANY {
        send_all(&p, &topic, part, &sample_records(20, "more")).await;
    }
    let proxy = strait_testkit::FaultProxy::start(&target.bootstrap());
    let via = KafkaClient::connect(strait_linker::client::ClientConfig::new(&proxy.bootstrap()))
        .await
        .unwrap();
    let m = support::mirror::restart_mirror_between(sc, via, state, &[&topic], |_| {}).await;
    support::mirror::wait_caught_up(&m.status, &topic, &[40; MANY as usize]).await;
    let fetches = proxy.requests(FETCH);
    let (store, _dir) = m.stop().await;
    assert!(
        fetches < MANY as u64 / 2,
        "{fetches} Fetch requests to the target for {MANY} tails (and the end watch)"
    );
    support::mirror::assert_verified(source, target, &store, &topic).await;
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "strait did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_loop_leaves_kafka_target_identical() {
    crash_loop(kafka_target()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_loop_leaves_tansu_target_identical() {
    crash_loop(tansu_target()).await;
}
