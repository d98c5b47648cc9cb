//! A whole cutover and its failback driven over HTTP against the real `strait run` binary,
//! which is killed with SIGKILL and restarted on the same state directory between every pair
//! of stages, right after each request was accepted (so the kill lands in the middle of a
//! step). Producers and a consumer group move source → target → source; every acknowledged
//! record must be consumed exactly once, every interrupted operation must be resumed (and say
//! so in the timeline), and the mirror must carry on afterwards.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strait_linker::client::KafkaClient;
use strait_linker::client::data::{Isolation, OffsetSpec};
use strait_testkit::{kafka_source, kafka_target, unique};
use support::*;

const TOKEN: &str = "kill-t0ken-DO-NOT-LEAK";

/// One `strait run` process; SIGKILLed when dropped.
struct Strait {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Strait {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Strait {
    /// Starts `strait run` with `config`, logging to a new file in `dir`, and waits for its API.
    async fn start(dir: &Path, config: &Path, n: usize) -> Self {
        let log = dir.join(format!("strait-{n}.log"));
        let child = strait_cmd()
            .env("STRAIT_API_TOKEN", TOKEN)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("strait starts");
        let addr = wait_for_listen(&log).await;
        Self {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    /// SIGKILL (`Child::kill`), and the time just before it (ms since the epoch).
    fn kill(mut self) -> u64 {
        let at = now_ms();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        at
    }

    async fn get(&self, path: &str) -> Value {
        let r = api_request(&self.base, "GET", path, Some(TOKEN), &[], None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.json()
    }

    async fn post(&self, path: &str, body: &Value) -> ApiReply {
        api_request(
            &self.base,
            "POST",
            path,
            Some(TOKEN),
            &[],
            Some(&body.to_string()),
        )
        .await
    }

    /// POSTs and asserts 202 Accepted.
    async fn accepted(&self, path: &str, body: &Value) {
        let r = self.post(path, body).await;
        assert_eq!(r.status, 202, "POST {path}: {}", r.text);
    }

    /// Waits until no operation runs and asserts the stage; returns the cutover.
    async fn settle(&self, id: &str, stage: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let c = self.get(&format!("/v1/cutovers/{id}")).await;
            if c["operation"].is_null() {
                assert_eq!(c["stage"], stage, "timeline: {:#}", c["events"]);
                return c;
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "still {} after {secs}s; timeline: {:#}\nlog tail (newest first):\n{}",
                    c["operation"],
                    c["events"],
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until both partitions of `topic` are caught up with no lag.
    async fn wait_caught_up(&self, topic: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.get("/v1/status").await;
            let parts: Vec<&Value> = status["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["topic"] == topic)
                .collect();
            if parts.len() == 2
                && parts
                    .iter()
                    .all(|p| p["state"] == "caught_up" && p["lag_records"] == 0)
            {
                return;
            }
            assert!(Instant::now() < deadline, "not caught up: {status:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn write_config(dir: &Path, topic: &str, group: &str) -> PathBuf {
    let path = dir.join("strait.toml");
    let toml = strait_toml(
        &kafka_source().bootstrap(),
        &kafka_target().bootstrap(),
        topic,
        Some(group),
        &dir.join("state"),
    );
    std::fs::write(&path, toml).unwrap();
    path
}

/// After a kill at `kill_ms` and a restart: whether the kill interrupted the operation (its
/// completion event, `kind` with `message`, was not persisted before the kill), and if so,
/// that the restarted strait recorded a `resumed` event; if not, that it recorded none.
fn check_resumed(c: &Value, kill_ms: u64, kind: &str, message: &str) -> bool {
    let events = c["events"].as_array().unwrap();
    let at = |e: &Value| e["at_ms"].as_u64().unwrap();
    let finished_before = events
        .iter()
        .any(|e| e["kind"] == kind && e["message"] == message && at(e) <= kill_ms);
    let resumed = events
        .iter()
        .filter(|e| e["kind"] == "resumed" && at(e) > kill_ms)
        .count();
    if finished_before {
        assert_eq!(resumed, 0, "nothing to resume: {events:#?}");
    } else {
        assert_eq!(
            resumed, 1,
            "no `resumed` event after the restart: {events:#?}"
        );
    }
    !finished_before
}

async fn ends(c: &KafkaClient, topic: &str) -> Vec<i64> {
    let tps: Vec<(String, i32)> = (0..2).map(|p| (topic.to_owned(), p)).collect();
    let found = c
        .list_offsets(&tps, OffsetSpec::Latest, Isolation::ReadUncommitted)
        .await;
    tps.iter()
        .map(|tp| found[tp].as_ref().map_or(-1, |o| o.offset))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_between_every_pair_of_stages_loses_and_doubles_nothing() {
    let (source, target) = (kafka_source(), kafka_target());
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("kill");
    let group = unique("kill-group");
    create_topic(&sc, &topic, 2, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &topic, &group);
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut starts = 1;
    let mut restart = |s: Strait| {
        starts += 1;
        let n = starts;
        let kill_ms = s.kill();
        let (dir, config) = (dir.path().to_owned(), config.clone());
        async move { (kill_ms, Strait::start(&dir, &config, n).await) }
    };

    // Phase 1: producers and the consumer group on the source.
    let load = Load::start(source, &topic, Arc::clone(&next), Arc::clone(&acked));
    let reader = Reader::start(source, &topic, &group, Arc::clone(&seen));
    let mut s = Strait::start(dir.path(), &config, 1).await;
    let create = json!({
        "name": unique("kill-wave"), "topics": [topic], "groups": [group],
        "fence": { "mode": "manual", "failback_mode": "manual", "quiet_period_ms": 1000 },
        "max_lag_records": 1_000_000,
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        // 409 until the mirror has discovered the topic.
        let r = s.post("/v1/cutovers", &create).await;
        if r.status == 201 {
            break r.json()["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "create: {}", r.text);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let path = |what: &str| format!("/v1/cutovers/{id}/{what}");
    let mut interrupted = Vec::new();

    // The operator stops the producers, then fences; strait dies during the quiet period.
    load.stop().await;
    s.accepted(&path("advance"), &json!({ "to": "fenced" }))
        .await;
    let (kill_ms, s2) = restart(s).await;
    s = s2;
    let c = s.settle(&id, "fenced", 60).await;
    assert!(
        check_resumed(&c, kill_ms, "stage_reached", "stage fenced reached"),
        "the kill must land within the 1 s quiet period: {:#}",
        c["events"]
    );
    interrupted.push("fenced");
    read_all(&seen, &acked, "source consumer").await;
    reader.stop();

    s.accepted(&path("advance"), &json!({ "to": "drained" }))
        .await;
    let (kill_ms, s2) = restart(s).await;
    s = s2;
    let c = s.settle(&id, "drained", 60).await;
    if check_resumed(&c, kill_ms, "stage_reached", "stage drained reached") {
        interrupted.push("drained");
    }
    assert!(
        c["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["ok"] == true),
        "{:#}",
        c["checks"]
    );

    s.accepted(&path("advance"), &json!({ "to": "promoted" }))
        .await;
    let (kill_ms, s2) = restart(s).await;
    s = s2;
    let c = s.settle(&id, "promoted", 60).await;
    if check_resumed(&c, kill_ms, "stage_reached", "stage promoted reached") {
        interrupted.push("promoted");
    }
    let point = c["cutover_point"].as_array().unwrap();
    assert_eq!(point.len(), 2, "{c:#}");
    for p in point {
        assert_eq!(p["source_end"], p["target_end"], "Kafka keeps offsets: {p}");
    }

    // Phase 2: producers and the consumer on the target; the consumer stops first, leaving
    // records it has not read.
    let load = Load::start(target, &topic, Arc::clone(&next), Arc::clone(&acked));
    let reader = Reader::start(target, &topic, &group, Arc::clone(&seen));
    tokio::time::sleep(Duration::from_secs(2)).await;
    reader.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.stop().await;
    let unread = acked.lock().unwrap().len() - seen.lock().unwrap().len();
    assert!(unread > 0, "the consumer must stop with records left");

    // Failback; strait dies while it waits for the target to go quiet.
    s.accepted(&path("rollback"), &json!({})).await;
    let (kill_ms, s2) = restart(s).await;
    s = s2;
    let c = s.settle(&id, "rolled_back", 120).await;
    assert!(
        check_resumed(
            &c,
            kill_ms,
            "rolled_back",
            "failback complete: the source is the primary again; mirroring resumed"
        ),
        "the kill must land within the failback's 1 s quiet period: {:#}",
        c["events"]
    );
    interrupted.push("rolled_back");
    assert!(
        c["failback"]["group_offsets"].get(&group).is_some(),
        "{:#}",
        c["failback"]
    );
    eprintln!("kills that interrupted an operation: {interrupted:?}");

    // Phase 3: back on the source. The consumer resumes exactly where it stopped on the
    // target, and the new records are mirrored to the target again.
    let load = Load::start(source, &topic, Arc::clone(&next), Arc::clone(&acked));
    let reader = Reader::start(source, &topic, &group, Arc::clone(&seen));
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await;
    read_all(&seen, &acked, "source consumer after the failback").await;
    reader.stop();
    assert_exactly_once(&seen.lock().unwrap(), &acked.lock().unwrap());
    let source_ends = ends(&sc, &topic).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let target_ends = ends(&tc, &topic).await;
        if target_ends == source_ends {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror did not resume: source ends {source_ends:?}, target ends {target_ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    s.wait_caught_up(&topic).await;
}
