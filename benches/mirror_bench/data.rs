//! Workload data: JSON-like records encoded into record batches the way a Java producer with
//! default settings would batch them (16 KiB), loading a backlog, and the raw ceiling (fetch
//! everything with strait's client; produce the same batches to the target).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strait_linker::client::admin::NewTopic;
use strait_linker::client::data::{
    FetchOptions, FetchPosition, Isolation, PartitionResults, ProduceAck, ProduceItem,
};
use strait_linker::client::{KafkaClient, Retry};

/// Producer batch size the workloads are cut into (the Java client's default `batch.size`).
pub const BATCH_BYTES: usize = 16 << 10;

/// The Java producer's margin on its compressed-size estimate
/// (`MemoryRecordsBuilder.COMPRESSION_RATE_ESTIMATION_FACTOR`).
const COMPRESSION_ESTIMATE_FACTOR: f64 = 1.05;

/// Most records one generated batch may hold (keeps the search in
/// [`records_per_batch`] bounded for very compressible values).
const MAX_RECORDS_PER_BATCH: usize = 1 << 14;

/// Connections per broker the raw produce ceiling is measured with, in this order; the
/// ceiling is the faster. One and strait's default `target_connections_per_broker` (two):
/// neither is always faster on a Kafka target (one request per connection at a time; one
/// was faster on 256 MB copies, neither on 1 GB: docs/benchmarks.md, item 24), so the
/// higher figure is taken, never the one that flatters /ceil. `STRAIT_BENCH_RAW_LANES=N`
/// measures N only. The first count is the one the warm-up and the load use.
pub fn raw_lanes() -> Vec<usize> {
    if let Some(n) = env_positive("STRAIT_BENCH_RAW_LANES") {
        return vec![n];
    }
    let default = strait_linker::mirror::MirrorSettings::new(std::sync::Arc::new(|_: &str| true))
        .produce_connections;
    let mut lanes = vec![1, default];
    lanes.dedup();
    lanes
}

/// A positive whole number from the environment variable `name`, or `None` when it is not
/// set. Anything else stops the bench naming the variable: a mistyped knob must not
/// silently measure the default.
pub fn env_positive(name: &str) -> Option<usize> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Some(n),
        _ => panic!("{name} must be a whole number above 0, got {v:?}"),
    }
}

/// Whether the environment variable `name` is `1` (`0`: no; unset: `default`). Anything
/// else stops the bench naming the variable, as `env_positive` does.
pub fn env_flag(name: &str, default: bool) -> bool {
    match std::env::var(name).as_deref().map(str::trim) {
        Err(_) => default,
        Ok("0") => false,
        Ok("1") => true,
        Ok(v) => panic!("{name} must be 0 or 1, got {v:?}"),
    }
}

/// One workload: a topic shape and record shape.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    pub record_bytes: usize,
    pub partitions: i32,
    pub zstd: bool,
    /// Uncompressed payload bytes to load.
    pub total_bytes: usize,
    /// 0: batches spread evenly over the partitions. N: nine batches in ten go to
    /// partitions `0..N` (the hot ones), the tenth to the others in turn, so most cold
    /// partitions hold one batch or none: a skewed topic, where a fetch's bytes must go to
    /// the few partitions still behind, not be split over all of them.
    pub hot_partitions: i32,
}

/// A loaded backlog: the batches per partition, exactly as stored on the source.
#[derive(Debug)]
pub struct Backlog {
    pub topic: String,
    pub batches: Vec<Vec<Bytes>>,
    pub records: u64,
    /// Records per batch.
    pub per_batch: u64,
    /// Bytes of record batches (as stored, compressed when zstd).
    pub wire_bytes: u64,
    /// Sum of the partitions' end offsets.
    pub end_offsets: i64,
}

const WORDS: [&str; 16] = [
    "order",
    "customer",
    "payment",
    "shipped",
    "pending",
    "EUR",
    "USD",
    "warehouse",
    "berlin",
    "lisbon",
    "priority",
    "express",
    "standard",
    "refund",
    "invoice",
    "sku",
];

/// Distinct values per record size; records cycle through them (generating JSON per
/// record would cost more CPU than the brokers' work and distort the paced latency run).
const POOL: u64 = 509;

/// A JSON-like value of about `size` bytes (compressible like real events), from a pool.
pub fn json_value(i: u64, size: usize) -> Bytes {
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<BTreeMap<usize, Vec<Bytes>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let mut cache = cache.lock().expect("value cache");
    let pool = cache
        .entry(size)
        .or_insert_with(|| (0..POOL).map(|k| make_json(k, size)).collect());
    pool[(i % POOL) as usize].clone()
}

fn make_json(i: u64, size: usize) -> Bytes {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = format!(
        "{{\"id\":{i},\"ts\":{},\"user\":\"u-{}\",\"amount\":{}.{:02},\"tags\":[",
        1_700_000_000_000u64 + i,
        next() % 100_000,
        next() % 10_000,
        next() % 100
    );
    while s.len() + 16 < size {
        let w = WORDS[(next() % 16) as usize];
        s.push_str(&format!("\"{w}-{}\",", next() % 1000));
    }
    s.truncate(size.saturating_sub(2).max(1));
    s.push_str("]}");
    Bytes::from(s)
}

/// Encodes records `first..first+n` into one batch with timestamp `ts`.
pub fn encode_batch(first: u64, n: usize, record_bytes: usize, zstd: bool, ts: i64) -> Bytes {
    let recs: Vec<Record> = (0..n as u64)
        .map(|k| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: k as i64,
            // offset - sequence must be constant or the encoder starts a new batch; with
            // no producer id this yields base sequence -1.
            sequence: k as i32 - 1,
            timestamp: ts,
            key: Some(Bytes::from(format!("key-{}", first + k))),
            value: Some(json_value(first + k, record_bytes)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: if zstd {
                Compression::Zstd
            } else {
                Compression::None
            },
        },
    )
    .expect("encoding a record batch");
    buf.freeze()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Creates `topic` and waits until every partition has a leader.
pub async fn create_topic(c: &KafkaClient, topic: &str, partitions: i32) -> Result<()> {
    let t = NewTopic {
        name: topic.to_owned(),
        partitions,
        replication_factor: 1,
        configs: BTreeMap::new(),
    };
    let r = c
        .create_topics(&[t], Duration::from_secs(60), false)
        .await?;
    if let Some(Err(e)) = r.get(topic) {
        bail!("creating {topic}: {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ready = true;
        for p in 0..partitions {
            if c.leader(topic, p).await.is_err() {
                c.invalidate_topic(topic);
                ready = false;
                break;
            }
        }
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{topic} has no leaders after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Records per batch for `w`, cut the way a Java producer with default settings cuts them.
///
/// Uncompressed, `batch.size` bounds the batch's bytes: 16 records of 1 KiB. Compressed, it
/// bounds the *estimated compressed* size (`MemoryRecordsBuilder.isFull` compares
/// `uncompressed x estimated ratio x 1.05` with the limit, and the producer's per-topic
/// ratio estimate converges on the observed ratio), so a steadily written zstd topic holds
/// batches of about 16 KiB *compressed* (checked in kafka-clients 4.3.1). For the 1 KiB
/// JSON values that is 59 records (15.2 KiB stored) where uncompressed it is 16. Cutting
/// zstd batches at 16 KiB of uncompressed records, as this bench did before, made them
/// 3.7x smaller than a Java producer writes them, and a target that pays per batch (Kafka)
/// correspondingly slower for strait, which passes batches through as they are.
pub fn records_per_batch(w: &Workload) -> usize {
    let plain = (BATCH_BYTES / w.record_bytes).max(1);
    if !w.zstd {
        return plain;
    }
    let limit = (BATCH_BYTES as f64 / COMPRESSION_ESTIMATE_FACTOR) as usize;
    let fits = |n: usize| encode_batch(0, n, w.record_bytes, true, 0).len() <= limit;
    // The largest n that fits: compressed size grows with n, so bisect.
    let (mut lo, mut hi) = (plain, MAX_RECORDS_PER_BATCH);
    if !fits(lo) {
        return plain;
    }
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// The partition batch `b` of a workload goes to: round-robin, or for a skewed workload
/// nine in ten round-robin over the hot partitions and the tenth over the cold ones.
pub fn partition_of(w: &Workload, b: usize) -> usize {
    let (parts, hot) = (w.partitions as usize, w.hot_partitions as usize);
    if hot == 0 || hot >= parts {
        b % parts
    } else if !b.is_multiple_of(10) {
        b % hot
    } else {
        hot + (b / 10) % (parts - hot)
    }
}

/// Generates the workload's batches of `per_batch` records (see [`partition_of`]).
pub fn generate(w: &Workload, per_batch: usize) -> Vec<Vec<Bytes>> {
    let batches = w.total_bytes.div_ceil(per_batch * w.record_bytes);
    let mut out = vec![Vec::new(); w.partitions as usize];
    let ts = now_ms();
    for b in 0..batches {
        let first = (b * per_batch) as u64;
        out[partition_of(w, b)].push(encode_batch(first, per_batch, w.record_bytes, w.zstd, ts));
    }
    out
}

/// Produces `batches` to `topic`: each round carries one batch per partition (Kafka takes
/// no more), spread over `lanes` connections per broker, `window` rounds in flight. Rounds
/// are queued on the connections in order from this task, as strait's mirror does (spawning
/// a task per round measured about a third slower into Kafka); a partition whose write
/// fails (a new topic's leader may not take writes yet) is written again. Returns the
/// elapsed time.
pub async fn produce_all(
    c: &KafkaClient,
    topic: &str,
    batches: &[Vec<Bytes>],
    window: usize,
    lanes: usize,
) -> Result<Duration> {
    let rounds = batches.iter().map(Vec::len).max().unwrap_or(0);
    let started = Instant::now();
    let mut inflight = std::collections::VecDeque::new();
    for r in 0..rounds {
        let items = round(topic, batches, r);
        if inflight.len() >= window {
            let (items, answers) = inflight.pop_front().expect("non-empty");
            settle(c, items, answers, lanes).await?;
        }
        let answers = c
            .queue_produce(items.clone(), -1, Duration::from_secs(60), 0..lanes)
            .await;
        inflight.push_back((items, tokio::spawn(answers)));
    }
    while let Some((items, answers)) = inflight.pop_front() {
        settle(c, items, answers, lanes).await?;
    }
    Ok(started.elapsed())
}

/// Round `r` of `batches` (per partition): the `r`-th batch of every partition that has one.
pub fn round(topic: &str, batches: &[Vec<Bytes>], r: usize) -> Vec<ProduceItem> {
    batches
        .iter()
        .enumerate()
        .filter_map(|(p, bs)| {
            bs.get(r).map(|b| ProduceItem {
                topic: topic.to_owned(),
                partition: p as i32,
                records: b.clone().into(),
            })
        })
        .collect()
}

/// Awaits one round of [`produce_all`] and writes its failed partitions again.
async fn settle(
    c: &KafkaClient,
    items: Vec<ProduceItem>,
    answers: tokio::task::JoinHandle<PartitionResults<ProduceAck>>,
    lanes: usize,
) -> Result<()> {
    let results = answers.await?;
    let again: Vec<ProduceItem> = items
        .into_iter()
        .filter(|i| !matches!(results.get(&(i.topic.clone(), i.partition)), Some(Ok(_))))
        .collect();
    if again.is_empty() {
        return Ok(());
    }
    produce_retrying(c, again, lanes).await
}

/// Produces `items`, retrying partitions that fail with a retriable error (a new topic's
/// leader may not accept writes yet) for up to 30 s.
pub async fn produce_retrying(
    c: &KafkaClient,
    mut items: Vec<ProduceItem>,
    lanes: usize,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let results = c
            .queue_produce(items.clone(), -1, Duration::from_secs(60), 0..lanes)
            .await
            .await;
        let mut again = Vec::new();
        for i in items {
            match &results[&(i.topic.clone(), i.partition)] {
                Ok(_) => {}
                Err(e) if e.retry() != Retry::No && Instant::now() < deadline => {
                    c.refresh_for(e);
                    again.push(i);
                }
                Err(e) => bail!("producing to {}-{}: {e}", i.topic, i.partition),
            }
        }
        if again.is_empty() {
            return Ok(());
        }
        items = again;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Loads the workload into a new source topic.
pub async fn load(c: &KafkaClient, w: &Workload, topic: &str) -> Result<Backlog> {
    create_topic(c, topic, w.partitions).await?;
    let per_batch = records_per_batch(w);
    let batches = generate(w, per_batch);
    produce_all(c, topic, &batches, 8, raw_lanes()[0]).await?;
    let per_batch = per_batch as u64;
    let n: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let wire_bytes = batches.iter().flatten().map(|b| b.len() as u64).sum();
    Ok(Backlog {
        topic: topic.to_owned(),
        batches,
        records: n * per_batch,
        per_batch,
        wire_bytes,
        end_offsets: (n * per_batch) as i64,
    })
}

/// Reads the whole backlog with strait's client, one Fetch in flight (as the mirror does),
/// 8 MiB per partition, 64 MiB per response. Returns the elapsed time and bytes read.
pub async fn raw_fetch(c: &KafkaClient, b: &Backlog) -> Result<(Duration, u64)> {
    let parts = b.batches.len();
    let mut offsets = vec![0i64; parts];
    let ends: Vec<i64> = b
        .batches
        .iter()
        .map(|bs| (bs.len() as u64 * b.per_batch) as i64)
        .collect();
    let opts = FetchOptions {
        max_wait: Duration::from_millis(10),
        min_bytes: 1,
        max_bytes: 64 << 20,
        isolation: Isolation::ReadCommitted,
        lane: 0,
    };
    let started = Instant::now();
    let mut bytes = 0u64;
    while offsets.iter().zip(&ends).any(|(o, e)| o < e) {
        let positions: Vec<FetchPosition> = (0..parts)
            .filter(|p| offsets[*p] < ends[*p])
            .map(|p| FetchPosition {
                topic: b.topic.clone(),
                partition: p as i32,
                offset: offsets[p],
                max_bytes: 8 << 20,
            })
            .collect();
        for f in c.fetch(&positions, opts).await {
            if let Some(e) = f.error {
                bail!("raw fetch: {e}");
            }
            bytes += f.records.len() as u64;
            // Advance by whole batches only (no decoding: headers are enough).
            let split = strait_linker::batch::split(f.records)?;
            if let Some(last) = split.batches.last() {
                offsets[f.partition as usize] = last.header().next_offset();
            }
        }
    }
    Ok((started.elapsed(), bytes))
}

/// Where the benchmark's brokers keep their logs.
#[derive(Debug, Clone)]
pub enum BrokerStorage {
    /// Under this directory on a tmpfs.
    Tmpfs(std::path::PathBuf),
    /// The testkit's default (`target/strait-test-brokers`, or `$STRAIT_TEST_BROKERS_DIR`).
    Disk(&'static str),
}

impl BrokerStorage {
    pub fn describe(&self) -> String {
        match self {
            Self::Tmpfs(root) => format!("on tmpfs ({})", root.display()),
            Self::Disk(why) => format!("on disk ({why})"),
        }
    }
}

/// Free space a tmpfs needs before the brokers' logs go there.
const TMPFS_MIN_FREE: u64 = 4 << 30;

/// Puts the brokers' logs on `/dev/shm` unless `on_disk`, `$STRAIT_TEST_BROKERS_DIR` is set,
/// or it has less than 4 GiB free. Call before the first broker starts.
///
/// Why: Kafka appends an index entry per batch through memory-mapped index files, and on a
/// VM disk (this machine: ext4 on virtio) the first write to each index page and every write
/// to a page under writeback wait for the disk. At 1,000 partitions that made Kafka take
/// 2-3 MB/s of 16 KiB batches on disk against 46 MB/s on a tmpfs (`produce_probe
/// --partitions 1000`), so every system measured was timing the VM's disk, and systems that
/// write more (smaller) batches were hit harder. The ratios on a tmpfs compare the mirrors.
pub fn broker_storage(on_disk: bool) -> BrokerStorage {
    if on_disk {
        return BrokerStorage::Disk("--brokers-on-disk");
    }
    if std::env::var_os("STRAIT_TEST_BROKERS_DIR").is_some() {
        return BrokerStorage::Disk("STRAIT_TEST_BROKERS_DIR");
    }
    let shm = std::path::Path::new("/dev/shm");
    if tmpfs_free(shm).is_none_or(|free| free < TMPFS_MIN_FREE) {
        return BrokerStorage::Disk("no tmpfs with 4 GiB free at /dev/shm");
    }
    let root = shm.join("strait-bench-brokers");
    if strait_testkit::set_brokers_root(root.clone()) {
        BrokerStorage::Tmpfs(root)
    } else {
        BrokerStorage::Disk("a broker had already started")
    }
}

/// Free bytes of the tmpfs mounted at `dir` (`None` if it is not a tmpfs).
fn tmpfs_free(dir: &std::path::Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .args(["-k", "--output=fstype,avail"])
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.lines().nth(1)?.split_whitespace();
    let (fstype, avail) = (fields.next()?, fields.next()?);
    (fstype == "tmpfs").then_some(avail.parse::<u64>().ok()? * 1024)
}
