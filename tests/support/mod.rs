//! Helpers shared by the integration test binaries: an independent client (rdkafka) to
//! produce and consume, strait's own client to fetch raw batches, and record comparison.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use strait_linker::batch::{self, RawBatch};
use strait_linker::client::admin::NewTopic;
use strait_linker::client::data::{FetchOptions, FetchPosition, Isolation};
use strait_linker::client::{ClientConfig, KafkaClient};
use strait_linker::records;
use strait_testkit::Broker;

/// A record as a test sends it and expects to read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: i64,
}

/// Records covering the cases a byte-faithful mirror must keep: null keys, tombstones,
/// duplicate header keys, null and empty header values, binary bytes, explicit timestamps.
pub fn sample_records(n: usize, tag: &str) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            key: (i % 5 != 0).then(|| format!("key-{}", i % 7).into_bytes()),
            value: (i % 7 != 3).then(|| {
                let mut v = format!("{{\"tag\":\"{tag}\",\"i\":{i},\"pad\":\"").into_bytes();
                v.extend(std::iter::repeat_n(b'x', 50 + (i * 37) % 400));
                v.extend_from_slice(b"\"}");
                v
            }),
            headers: vec![
                ("h".into(), Some(b"1".to_vec())),
                ("h".into(), Some(b"2".to_vec())),
                ("null".into(), None),
                ("empty".into(), Some(Vec::new())),
                ("bin".into(), Some(vec![0, 0xff, i as u8, 0x80, 0])),
            ],
            timestamp: recent_base() + (i as i64) * 13,
        })
        .collect()
}

/// A timestamp base an hour in the past: old enough to be distinct from append times, recent
/// enough that Kafka's time-based retention (7 days by default) never deletes test data.
pub fn recent_base() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    now.as_millis() as i64 - 3_600_000
}

/// An rdkafka producer with `extra` settings on top of sane test defaults.
pub fn producer(broker: &Broker, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = RdConfig::new();
    for (k, v) in broker.client_config(None) {
        cfg.set(k, v);
    }
    cfg.set("linger.ms", "20")
        .set("message.timeout.ms", "30000")
        .set("acks", "all");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("rdkafka producer")
}

/// Sends `recs` to `topic`/`partition` and waits for every delivery; returns their offsets.
pub async fn send_all(p: &FutureProducer, topic: &str, partition: i32, recs: &[Rec]) -> Vec<i64> {
    let mut pending = Vec::new();
    for r in recs {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(partition)
            .timestamp(r.timestamp)
            .headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        pending.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
    }
    let mut offsets = Vec::new();
    for d in pending {
        let delivery = d
            .await
            .expect("delivery future")
            .map_err(|(e, _)| e)
            .expect("delivered");
        offsets.push(delivery.offset);
    }
    offsets
}

/// Reads `topic`/`partition` from the beginning with rdkafka until `n` records arrive.
pub fn consume_n(
    broker: &Broker,
    topic: &str,
    partition: i32,
    n: usize,
    committed_only: bool,
) -> Vec<(i64, Rec)> {
    let mut cfg = RdConfig::new();
    for (k, v) in broker.client_config(None) {
        cfg.set(k, v);
    }
    cfg.set("group.id", strait_testkit::unique("verify"))
        .set("enable.auto.commit", "false")
        // Some brokers hold every fetch for much of the wait, even with data ready.
        .set("fetch.wait.max.ms", "10")
        .set(
            "isolation.level",
            if committed_only {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        );
    let consumer: BaseConsumer = cfg.create().expect("rdkafka consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "consumed only {} of {n} records from {topic}",
            out.len()
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("consume");
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        out.push((
            m.offset(),
            Rec {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
                timestamp: m.timestamp().to_millis().unwrap_or(-1),
            },
        ));
    }
    out
}

/// strait's own client for a test broker.
pub async fn client(broker: &Broker) -> KafkaClient {
    KafkaClient::connect(ClientConfig::new(&broker.bootstrap()))
        .await
        .expect("strait client connects")
}

/// Creates a topic and waits until its leader is known.
pub async fn create_topic(c: &KafkaClient, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let t = NewTopic {
        name: name.to_owned(),
        partitions,
        replication_factor: 1,
        configs: configs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let r = c
        .create_topics(&[t], Duration::from_secs(30), false)
        .await
        .expect("CreateTopics");
    r[name].as_ref().expect("topic created");
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.leader(name, partitions - 1).await.is_err() {
        assert!(Instant::now() < deadline, "no leader for {name}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no transaction is open on `topic`/`partition`: its last stable offset equals its
/// high watermark. A producer's commit/abort returns before the coordinator has written the
/// markers into every partition, so read_committed reads right after it can stop short.
pub async fn wait_stable(c: &KafkaClient, topic: &str, partition: i32) {
    use strait_linker::client::data::OffsetSpec;
    let key = (topic.to_owned(), partition);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lso = c
            .list_offsets(
                std::slice::from_ref(&key),
                OffsetSpec::Latest,
                Isolation::ReadCommitted,
            )
            .await;
        let hw = c
            .list_offsets(
                std::slice::from_ref(&key),
                OffsetSpec::Latest,
                Isolation::ReadUncommitted,
            )
            .await;
        if let (Some(Ok(l)), Some(Ok(h))) = (lso.get(&key), hw.get(&key))
            && l.offset == h.offset
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}-{partition}: a transaction stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything fetched from one partition: raw batches (every CRC verified) and the aborted
/// transactions the broker listed.
#[derive(Debug, Default)]
pub struct Fetched {
    pub batches: Vec<RawBatch>,
    pub aborted: Vec<(i64, i64)>,
    pub end: i64,
}

/// Fetches `topic`/`partition` from offset 0 to its end with strait's client. Every batch's
/// CRC is verified; a partial batch at the end of a response is fetched again next round.
pub async fn fetch_all(
    c: &KafkaClient,
    topic: &str,
    partition: i32,
    isolation: Isolation,
) -> Fetched {
    let mut out = Fetched::default();
    let mut offset = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "fetch of {topic} did not reach its end"
        );
        let opts = FetchOptions {
            isolation,
            ..FetchOptions::default()
        };
        let pos = FetchPosition {
            topic: topic.to_owned(),
            partition,
            offset,
            max_bytes: 8 << 20,
        };
        let mut r = c.fetch(&[pos], opts).await;
        let f = r.pop().expect("one partition");
        if let Some(e) = &f.error {
            if e.retry() != strait_linker::client::Retry::No {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            panic!("fetch {topic}-{partition}@{offset}: {e}");
        }
        let end = match isolation {
            Isolation::ReadCommitted if f.last_stable_offset >= 0 => f.last_stable_offset,
            _ => f.high_watermark,
        };
        out.aborted
            .extend(f.aborted.iter().map(|a| (a.producer_id, a.first_offset)));
        let split = batch::split_verified(f.records)
            .expect("every fetched batch is whole and its CRC verifies");
        for b in split.batches {
            // A broker may return a batch that starts before the fetch offset.
            if b.header().last_offset() >= offset {
                offset = b.header().next_offset();
                out.batches.push(b);
            }
        }
        if offset >= end {
            out.end = end;
            out.aborted.sort_unstable();
            out.aborted.dedup();
            return out;
        }
    }
}

/// Decodes the data records of `batches`, skipping control batches and, when `aborted` is
/// given, the data of aborted transactions (as a read_committed consumer would).
pub fn data_records(f: &Fetched, skip_aborted: bool) -> Vec<(i64, Rec)> {
    let mut out = Vec::new();
    let mut aborted_open: Vec<i64> = Vec::new();
    let mut starts = f.aborted.clone();
    starts.sort_by_key(|(_, first)| *first);
    let mut next_start = 0;
    for b in &f.batches {
        let h = b.header();
        while next_start < starts.len() && starts[next_start].1 <= h.last_offset() {
            aborted_open.push(starts[next_start].0);
            next_start += 1;
        }
        if h.is_control() {
            // A control marker ends that producer's transaction (commit or abort).
            aborted_open.retain(|p| *p != h.producer_id);
            continue;
        }
        if skip_aborted && h.is_transactional() && aborted_open.contains(&h.producer_id) {
            continue;
        }
        for r in records::decode(b).expect("records decode") {
            out.push((r.offset, to_rec(&r)));
        }
    }
    out
}

pub fn to_rec(r: &records::Record) -> Rec {
    Rec {
        key: r.key.as_ref().map(|k| k.to_vec()),
        value: r.value.as_ref().map(|v| v.to_vec()),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8(k.to_vec()).expect("utf-8 header key"),
                    v.as_ref().map(|b| b.to_vec()),
                )
            })
            .collect(),
        timestamp: r.timestamp,
    }
}

/// Asserts two record lists are equal, naming the first difference.
pub fn assert_same(what: &str, got: &[Rec], want: &[Rec]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} records, expected {}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: record {i} differs");
    }
}

pub fn recs(v: &[(i64, Rec)]) -> Vec<Rec> {
    v.iter().map(|(_, r)| r.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// `strait` as a process, and its control API.

/// Test tokens contain this, so a test can check that no answer or log repeats a token.
pub const TOKEN_MARK: &str = "t0ken-DO-NOT-LEAK";

/// A `strait` command with the API's environment variables and RUST_LOG cleared.
pub fn strait_cmd() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strait"));
    cmd.env_remove("STRAIT_API_TOKEN")
        .env_remove("STRAIT_API_URL")
        .env_remove("RUST_LOG");
    cmd
}

/// The address from the "control API listening" event of a JSON log (waits up to 60 s).
pub async fn wait_for_listen(log: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && v["fields"]["message"] == "control API listening"
            {
                return v["fields"]["addr"].as_str().unwrap().to_owned();
            }
        }
        assert!(Instant::now() < deadline, "the API did not start:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An answer of the control API.
#[derive(Debug)]
pub struct ApiReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl ApiReply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {:?}", self.text))
    }

    /// Asserts an `ApiError` body with this status and code (and no token in it).
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        assert!(v["message"].is_string() && v["details"].is_object(), "{v}");
        assert!(!self.text.contains(TOKEN_MARK), "a token in an answer");
        v
    }
}

/// One request to the control API at `base` (`http://IP:PORT`).
pub async fn api_request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> ApiReply {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = req.send().await.expect("the API answers");
    ApiReply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// Producers and consumers that count every record, for exactly-once checks across cutovers.

/// Produces uniquely numbered records (`v-N`, partition N % 2) until stopped; remembers what
/// was acknowledged.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(
        broker: &Broker,
        topic: &str,
        next: std::sync::Arc<std::sync::atomic::AtomicU64>,
        acked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let p = producer(broker, &[("linger.ms", "0")]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (topic, s) = (topic.to_string(), std::sync::Arc::clone(&stop));
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let value = format!("v-{n}");
                let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
                    .partition((n % 2) as i32)
                    .payload(value.as_bytes());
                match p.send(rec, Duration::from_secs(10)).await {
                    Ok(_) => acked.lock().unwrap().push(value),
                    Err((e, _)) => panic!("produce v-{n}: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

/// A consumer in `group` reading partitions 0 and 1 from the group's committed offsets
/// (assigned, not subscribed: the group has no live members), committing after every
/// record, until stopped.
pub struct Reader {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Reader {
    pub fn start(
        broker: &Broker,
        topic: &str,
        group: &str,
        seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Self {
        Self::start_paced(broker, topic, group, seen, Duration::ZERO)
    }

    /// Like [`Reader::start`], but pausing `pause` after each record: a slow consumer whose
    /// committed offsets keep moving for a while (for faults during group sync).
    pub fn start_paced(
        broker: &Broker,
        topic: &str,
        group: &str,
        seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        pause: Duration,
    ) -> Self {
        use rdkafka::consumer::CommitMode;
        let mut cfg = RdConfig::new();
        for (k, v) in broker.client_config(None) {
            cfg.set(k, v);
        }
        cfg.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "10");
        let consumer: BaseConsumer = cfg.create().unwrap();
        // The group's committed offsets are read (with retries) and assigned explicitly:
        // assigning `Offset::Stored` leaves librdkafka waiting forever when its own offset
        // fetch meets NOT_COORDINATOR on a busy broker (seen in CI).
        let mut tpl = TopicPartitionList::new();
        for (p, c) in committed_offsets(broker, group, topic, 2)
            .iter()
            .enumerate()
        {
            let at = if *c >= 0 {
                Offset::Offset(*c)
            } else {
                Offset::Beginning
            };
            tpl.add_partition_offset(topic, p as i32, at).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(m) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                // librdkafka reports transient conditions (a just-created topic's leader not
                // known yet, ...) through poll; they are not records.
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("consumer: {e}");
                        continue;
                    }
                };
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
                consumer.commit_message(&m, CommitMode::Sync).unwrap();
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
            }
        });
        Self { stop, thread }
    }

    pub fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

/// Waits (up to 60 s) until `seen` holds at least as many records as `acked`.
pub async fn read_all(
    seen: &std::sync::Mutex<Vec<String>>,
    acked: &std::sync::Mutex<Vec<String>>,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, a) = (seen.lock().unwrap().len(), acked.lock().unwrap().len());
        if s >= a {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: consumed {s} of {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged record consumed exactly once, and nothing else consumed.
pub fn assert_exactly_once(seen: &[String], acked: &[String]) {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for v in seen {
        *counts.entry(v).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    let lost: Vec<_> = acked
        .iter()
        .filter(|v| !counts.contains_key(v.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "lost {} records, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(
        seen.len(),
        acked.len(),
        "consumed records that were never acknowledged"
    );
}

// ---------------------------------------------------------------------------------------------
// `strait run` as a child process with its control API, group offsets, and the fault report
// (used by tests/faults.rs).

/// One `strait run` process with its API on a random port; SIGKILLed when dropped.
pub struct StraitRun {
    pub child: std::process::Child,
    pub base: String,
    pub log: std::path::PathBuf,
    token: String,
}

impl Drop for StraitRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl StraitRun {
    /// Starts `strait run --config CONFIG` with `STRAIT_API_TOKEN=token`, logging (JSON, per
    /// the config) to `log`, and waits until its API listens. The config must set
    /// `[api] listen` and `[log] format = "json"`.
    pub async fn start(config: &std::path::Path, log: &std::path::Path, token: &str) -> Self {
        let child = strait_cmd()
            .env("STRAIT_API_TOKEN", token)
            .args(["run", "--config"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("strait starts");
        let addr = wait_for_listen(log).await;
        Self {
            child,
            base: format!("http://{addr}"),
            log: log.to_owned(),
            token: token.to_owned(),
        }
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits (up to 30 s) for the exit; panics if strait does not stop.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "strait did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let r = api_request(&self.base, "GET", path, Some(&self.token), &[], None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.json()
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> ApiReply {
        let body = body.to_string();
        api_request(
            &self.base,
            "POST",
            path,
            Some(&self.token),
            &[],
            Some(&body),
        )
        .await
    }

    /// The sum of every series of a Prometheus metric on `/metrics` (0 if absent).
    pub async fn metric_sum(&self, name: &str) -> f64 {
        let r = api_request(&self.base, "GET", "/metrics", None, &[], None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.text
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until every partition of `topics` (`partitions` of them in all) is caught up with
    /// no lag; panics with the status and the log's tail after `secs`.
    pub async fn wait_caught_up(&self, topics: &[&str], partitions: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let status = self.get("/v1/status").await;
            let parts: Vec<&serde_json::Value> = status["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| topics.iter().any(|t| p["topic"] == *t))
                .collect();
            if parts.len() == partitions
                && parts
                    .iter()
                    .all(|p| p["state"] == "caught_up" && p["lag_records"] == 0)
            {
                return;
            }
            if Instant::now() >= deadline {
                let log = self.log_text();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "not caught up after {secs}s: {status:#}\nlog tail (newest first):\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs `strait verify --json` on `config` (strait must be stopped) and asserts it exits 0
/// with `identical: true`; returns the report.
pub fn strait_verify(config: &std::path::Path) -> serde_json::Value {
    let out = strait_cmd()
        .args(["verify", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "strait verify failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("verify --json output: {e}: {stdout}"));
    assert_eq!(report["identical"], true, "{report:#}");
    report
}

/// A group's committed offsets on `broker` for `topic` partitions `0..partitions` (-1 where
/// nothing is committed), read with retries.
pub fn committed_offsets(broker: &Broker, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let mut cfg = RdConfig::new();
    for (k, v) in broker.client_config(None) {
        cfg.set(k, v);
    }
    cfg.set("group.id", group)
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create().unwrap();
    let mut want = TopicPartitionList::new();
    for p in 0..partitions {
        want.add_partition(topic, p);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let committed = loop {
        match consumer.committed_offsets(want.clone(), Duration::from_secs(5)) {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot read {group}'s offsets: {e}"
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    };
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// One row of the fault report (`target/fault-report.jsonl`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultRow {
    pub test: String,
    pub fault: String,
    /// How many times the fault was actually injected (proxy counters, kills, ...).
    pub injected: u64,
    /// Records on the target for the scenario's topics at the end.
    pub mirrored: u64,
    /// Acknowledged source records missing on the target (must be 0).
    pub lost: u64,
    /// Records present more than once on the target (must be 0).
    pub duplicated: u64,
    pub secs: f64,
    pub note: String,
}

/// The fault report file: `$STRAIT_FAULT_REPORT`, else `<checkout>/target/fault-report.jsonl`.
pub fn fault_report_path() -> std::path::PathBuf {
    std::env::var_os("STRAIT_FAULT_REPORT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fault-report.jsonl")
        })
}

/// Rows appended by this process, for the summary table.
static FAULT_ROWS: std::sync::Mutex<Vec<FaultRow>> = std::sync::Mutex::new(Vec::new());

/// Appends `row` to the report file (one JSON object per line, with the run's pid and time).
pub fn record_fault(row: FaultRow) {
    use std::io::Write;
    let path = fault_report_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut v = serde_json::to_value(&row).unwrap();
    v["pid"] = std::process::id().into();
    v["at_ms"] = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64)
        .into();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "{v}").unwrap();
    FAULT_ROWS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(row);
}

/// The rows this process recorded, as a text table.
pub fn fault_summary() -> String {
    let rows = FAULT_ROWS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = format!(
        "{:<36} {:<34} {:>8} {:>9} {:>5} {:>5} {:>7}  note\n",
        "test", "fault", "injected", "mirrored", "lost", "dup", "secs"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<36} {:<34} {:>8} {:>9} {:>5} {:>5} {:>7.1}  {}\n",
            r.test, r.fault, r.injected, r.mirrored, r.lost, r.duplicated, r.secs, r.note
        ));
    }
    let (lost, dup): (u64, u64) = rows
        .iter()
        .fold((0, 0), |(l, d), r| (l + r.lost, d + r.duplicated));
    out.push_str(&format!(
        "{} rows, {} faults injected, lost {lost}, duplicated {dup}; report: {}\n",
        rows.len(),
        rows.iter().map(|r| r.injected).sum::<u64>(),
        fault_report_path().display()
    ));
    out
}

/// Sends `n` numbered records (`v-N`, partition N % 2, numbers from `next`) to `topic` at once
/// and remembers them as acknowledged (like [`Load`], but as one quick burst).
/// `client` is the broker's client config ([`Broker::client_config`]).
pub async fn send_burst(
    client: &[(String, String)],
    topic: &str,
    n: usize,
    next: &std::sync::atomic::AtomicU64,
    acked: &std::sync::Mutex<Vec<String>>,
) {
    let mut cfg = RdConfig::new();
    for (k, v) in client {
        cfg.set(k, v);
    }
    cfg.set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("acks", "all");
    let p: FutureProducer = cfg.create().expect("rdkafka producer");
    let mut pending = Vec::new();
    for _ in 0..n {
        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let value = format!("v-{k}");
        let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition((k % 2) as i32)
            .payload(value.as_bytes());
        let d = p.send_result(rec).map_err(|(e, _)| e).expect("enqueue");
        pending.push((value, d));
    }
    for (value, d) in pending {
        d.await
            .expect("delivery future")
            .map_err(|(e, _)| e)
            .expect("delivered");
        acked.lock().unwrap().push(value);
    }
}

/// A `strait run` config (TOML) mirroring `topic` from `source` to `target` (bootstrap lists)
/// and syncing `group` every 300 ms (`None`: no group), with its state in `state`, the API on
/// a free loopback port and JSON logs (what [`StraitRun::start`] needs).
pub fn strait_toml(
    source: &str,
    target: &str,
    topic: &str,
    group: Option<&str>,
    state: &std::path::Path,
) -> String {
    let include = group.map_or(String::new(), |g| format!("\"{g}\""));
    format!(
        r#"[source]
bootstrap_servers = "{source}"
[target]
bootstrap_servers = "{target}"
[mirror]
topics = ["{topic}"]
topic_refresh_interval = "1s"
[groups]
include = [{include}]
interval = "300ms"
[state]
dir = "{}"
[api]
listen = "127.0.0.1:0"
[log]
format = "json"
level = "info"
"#,
        state.display()
    )
}
