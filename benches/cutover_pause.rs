//! Benchmark: the cutover's write pause against the size of the wave. The pause (fenced to
//! promoted) is what a migration's applications live through; a wave of many topics must not
//! pay for them one round trip at a time.
//!
//! ```text
//!  source Kafka (own broker, 1.5 GiB heap): N topics x P partitions, one 10-record batch each
//!  for each target (Kafka, tansu memory://) and each N:
//!    `strait run` (its own process, fresh state) mirrors them ─► all acknowledged
//!    POST /v1/cutovers (every topic, manual fence, 500 ms quiet period)
//!    POST advance to promoted ─► fence (quiet check) ─► drain (mirrored, verified, tail
//!                                 batches compared) ─► promote (held, ends read, recorded)
//!    stage log ─► write pause = fenced..promoted, split fenced..drained and drained..promoted
//!    one batch per partition written to the promoted target, then POST rollback
//!      ─► failback: target quiet (fenced) ─► copied back ─► groups ─► source primary
//!    failback pause = target fenced..rolled back (neither side takes writes)
//! ```
//!
//! `cargo bench --bench cutover_pause -- [--topics 10,200] [--partitions P]
//!  [--targets kafka,tansu] [--brokers-on-disk]`. Prints a table and writes
//! target/bench/cutover_pause.json.
//!
//! The Kafka brokers' logs go on a tmpfs unless `--brokers-on-disk` (see
//! `data::broker_storage`: on this VM's disk, Kafka's index writes at thousands of
//! partitions made runs swing up to 2x). strait's own state stays on disk, as in production.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strait_linker::client::data::ProduceItem;
use strait_linker::client::{ClientConfig, KafkaClient};

mod common;
use common::load_topics;

#[path = "mirror_bench/data.rs"]
#[allow(dead_code)]
mod data;

const RECORDS: usize = 10;
const TOKEN: &str = "bench";

struct Args {
    topics: Vec<usize>,
    partitions: i32,
    targets: Vec<String>,
    brokers_on_disk: bool,
}

fn args() -> Args {
    let mut a = Args {
        topics: vec![10, 200],
        partitions: 5,
        targets: vec!["kafka".into(), "tansu".into()],
        brokers_on_disk: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let list = |v: &str| -> Vec<String> { v.split(',').map(|s| s.trim().to_owned()).collect() };
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--topics" => {
                a.topics = list(&v)
                    .iter()
                    .map(|n| n.parse().expect("--topics N[,N..]"))
                    .collect()
            }
            "--partitions" => a.partitions = v.parse().expect("--partitions P"),
            "--targets" => a.targets = list(&v),
            "--brokers-on-disk" => {
                a.brokers_on_disk = true;
                i -= 1; // a flag: no value
            }
            _ => i -= 1, // `--bench` and anything else cargo passes
        }
        i += 2;
    }
    for t in &a.targets {
        assert!(
            ["kafka", "tansu"].contains(&t.as_str()),
            "--targets: unknown name {t:?} (known: kafka, tansu)"
        );
    }
    a
}

/// `strait run` mirroring every topic named `PREFIX-...`, its API on a free port.
struct Strait {
    child: Child,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Strait {
    fn spawn(source: &str, target: &str, prefix: &str) -> Strait {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("strait.toml");
        let api = format!("127.0.0.1:{}", strait_testkit::free_port());
        let level = std::env::var("STRAIT_BENCH_LOG_LEVEL").unwrap_or_else(|_| "warn".into());
        std::fs::write(
            &cfg,
            format!(
                "[source]\nbootstrap_servers = \"{source}\"\n\
                 [target]\nbootstrap_servers = \"{target}\"\n\
                 [mirror]\ntopics = ['{prefix}-.*']\ntopic_refresh_interval = \"1s\"\n\
                 [state]\ndir = \"{}\"\n\
                 [groups]\ninclude = ['strait-bench-no-such-group']\n\
                 [api]\nlisten = \"{api}\"\n\
                 [log]\nlevel = \"{level}\"\n",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        // STRAIT_BENCH_LOG_DIR=DIR keeps each run's log as DIR/strait-<prefix>.log (level
        // STRAIT_BENCH_LOG_LEVEL, default warn).
        let log = match std::env::var("STRAIT_BENCH_LOG_DIR") {
            Ok(d) => std::path::Path::new(&d).join(format!("strait-{prefix}.log")),
            Err(_) => dir.path().join("strait.log"),
        };
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_strait"))
            .env("STRAIT_API_TOKEN", TOKEN)
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting strait run");
        Strait {
            child,
            base: format!("http://{api}"),
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Waits until every one of `partitions` partitions shows `RECORDS` records mirrored.
    async fn wait_mirrored(&self, partitions: usize) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(r) = self
                .http
                .get(format!("{}/v1/status", self.base))
                .bearer_auth(TOKEN)
                .send()
                .await
                && let Ok(st) = r.json::<Value>().await
            {
                let done = st["partitions"].as_array().map_or(0, |ps| {
                    ps.iter()
                        .filter(|p| p["records_mirrored"].as_i64() >= Some(RECORDS as i64))
                        .count()
                });
                if done >= partitions {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "not all mirrored in 300 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Strait {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One cutover of a whole wave: its timings in ms.
#[derive(Debug, serde::Serialize)]
struct Pause {
    target: String,
    topics: usize,
    partitions: usize,
    /// Fenced to promoted: the write pause strait reports.
    write_pause_ms: u64,
    /// Fenced to drained (mirrored, verified, tail batches compared).
    drain_ms: u64,
    /// Drained to promoted (held, ends read, cutover point recorded).
    promote_ms: u64,
    /// From the advance request to promoted, the quiet-period check included.
    advance_ms: u64,
    /// Failback: from the target fenced (quiet) to rolled back, with one batch per partition
    /// copied back; neither side takes writes meanwhile.
    failback_pause_ms: u64,
    /// From the rollback request to rolled back, the target's quiet check included.
    rollback_ms: u64,
}

fn stage_at(c: &Value, stage: &str) -> u64 {
    c["stage_log"]
        .as_array()
        .and_then(|l| l.iter().rev().find(|r| r["stage"] == stage))
        .and_then(|r| r["at_ms"].as_u64())
        .unwrap_or_else(|| panic!("no {stage} in the stage log: {c}"))
}

async fn cutover(strait: &Strait, names: &[String]) -> (String, (u64, u64, u64, u64)) {
    let c = strait
        .post(
            "/v1/cutovers",
            json!({ "name": "bench-wave", "topics": names,
                    "fence": { "mode": "manual", "quiet_period_ms": 500 } }),
        )
        .await;
    let id = c["id"].as_str().expect("cutover id").to_owned();
    let asked = Instant::now();
    strait
        .post(
            &format!("/v1/cutovers/{id}/advance"),
            json!({ "to": "promoted" }),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(600);
    let c = loop {
        let c = strait.get(&format!("/v1/cutovers/{id}")).await;
        if c["operation"].is_null() {
            assert_eq!(c["stage"], "promoted", "the cutover did not promote: {c}");
            break c;
        }
        assert!(Instant::now() < deadline, "not promoted in 600 s: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let advance = asked.elapsed().as_millis() as u64;
    let (f, d, p) = (
        stage_at(&c, "fenced"),
        stage_at(&c, "drained"),
        stage_at(&c, "promoted"),
    );
    (id, (p - f, d - f, p - d, advance))
}

/// Writes one batch of `RECORDS` records to every partition of `keys` on the promoted target
/// (what the applications wrote there), then rolls the cutover back: the failback fences the
/// target (manual: a quiet check), copies those writes back to the source and makes the source
/// the primary again. Returns (ms from the target fenced to rolled back: neither side takes
/// writes meanwhile, ms from the rollback request to rolled back).
async fn failback(
    strait: &Strait,
    tc: &KafkaClient,
    id: &str,
    keys: &[(String, i32)],
) -> (u64, u64) {
    let b = common::batch(RECORDS);
    let items: Vec<ProduceItem> = keys
        .iter()
        .map(|(t, p)| ProduceItem {
            topic: t.clone(),
            partition: *p,
            records: b.clone().into(),
        })
        .collect();
    for (k, r) in tc.produce(items, -1, Duration::from_secs(60)).await {
        r.unwrap_or_else(|e| panic!("writing to the promoted target {k:?}: {e}"));
    }
    let asked = Instant::now();
    strait
        .post(&format!("/v1/cutovers/{id}/rollback"), json!({}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(1_200);
    let c = loop {
        let c = strait.get(&format!("/v1/cutovers/{id}")).await;
        if c["operation"].is_null() {
            assert_eq!(
                c["stage"], "rolled_back",
                "the failback did not finish: {c}"
            );
            break c;
        }
        assert!(Instant::now() < deadline, "not rolled back in 1,200 s: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let total = asked.elapsed().as_millis() as u64;
    let copied = c["failback"]["records_copied"].as_u64().unwrap_or(0);
    assert_eq!(
        copied,
        (keys.len() * RECORDS) as u64,
        "records copied back: {c}"
    );
    let fenced = c["failback"]["target_fenced_ms"]
        .as_u64()
        .expect("target fenced");
    let back = stage_at(&c, "rolled_back");
    // Where the pause went: each event after the fence, in ms from it.
    if std::env::var_os("STRAIT_BENCH_EVENTS").is_some() {
        for e in c["events"].as_array().into_iter().flatten() {
            let at = e["at_ms"].as_u64().unwrap_or(0);
            if at >= fenced {
                eprintln!("  +{:>6} ms {} {}", at - fenced, e["kind"], e["message"]);
            }
        }
    }
    (back - fenced, total)
}

#[tokio::main]
async fn main() {
    let a = args();
    let storage = data::broker_storage(a.brokers_on_disk);
    eprintln!("brokers' logs: {}", storage.describe());
    // Own Kafka brokers with a larger heap: the shared ones (512 MiB) ran out of heap at
    // 5,000 partitions.
    let big = || strait_testkit::start_kafka(strait_testkit::KafkaOptions::new().heap("1536m"));
    let source = big();
    let kafka_target = a.targets.iter().any(|t| t == "kafka").then(big);
    let sc = KafkaClient::connect(ClientConfig::new(&source.bootstrap()))
        .await
        .unwrap();
    let mut rows = Vec::new();
    for target in &a.targets {
        let broker = match (target.as_str(), &kafka_target) {
            ("kafka", Some(k)) => k,
            _ => strait_testkit::tansu_target(),
        };
        let tc = KafkaClient::connect(ClientConfig::new(&broker.bootstrap()))
            .await
            .unwrap();
        for &n in &a.topics {
            let prefix = strait_testkit::unique("wave");
            let keys = load_topics(&sc, &prefix, n, a.partitions, RECORDS).await;
            let mut names: Vec<String> = keys.iter().map(|(t, _)| t.clone()).collect();
            names.dedup();
            let strait = Strait::spawn(&source.bootstrap(), &broker.bootstrap(), &prefix);
            strait.wait_mirrored(keys.len()).await;
            let (id, (pause, drain, promote, advance)) = cutover(&strait, &names).await;
            let (failback_pause, rollback) = failback(&strait, &tc, &id, &keys).await;
            eprintln!(
                "[{target}] {n} topics x {}: write pause {pause} ms (drain {drain}, promote \
                 {promote}), advance {advance} ms; failback pause {failback_pause} ms, \
                 rollback {rollback} ms",
                a.partitions
            );
            rows.push(Pause {
                target: target.clone(),
                topics: n,
                partitions: keys.len(),
                write_pause_ms: pause,
                drain_ms: drain,
                promote_ms: promote,
                advance_ms: advance,
                failback_pause_ms: failback_pause,
                rollback_ms: rollback,
            });
            drop(strait);
            // Thousands of partitions are more than a 512 MiB broker holds: drop this wave's.
            for chunk in names.chunks(100) {
                for c in [&sc, &tc] {
                    let _ = c.delete_topics(chunk, Duration::from_secs(60)).await;
                }
            }
        }
    }
    println!(
        "cutover write pause by wave size ({RECORDS} records per partition, no load, brokers {}):",
        storage.describe()
    );
    println!(
        "  {:<8} {:>7} {:>11} {:>16} {:>8} {:>8} {:>8} {:>15} {:>9}",
        "target",
        "topics",
        "partitions",
        "write pause (ms)",
        "drain",
        "promote",
        "advance",
        "failback pause",
        "rollback"
    );
    for r in &rows {
        println!(
            "  {:<8} {:>7} {:>11} {:>16} {:>8} {:>8} {:>8} {:>15} {:>9}",
            r.target,
            r.topics,
            r.partitions,
            r.write_pause_ms,
            r.drain_ms,
            r.promote_ms,
            r.advance_ms,
            r.failback_pause_ms,
            r.rollback_ms
        );
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join("cutover_pause.json");
    std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    println!("wrote {}", path.display());
}
