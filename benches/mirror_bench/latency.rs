//! End-to-end latency at a steady rate: a paced producer writes 1 KiB JSON-like records in
//! 16 KiB batches to a source topic of 8 partitions (`--latency-partitions`) while `strait
//! run` mirrors it. Two readers
//! (strait's client, 10 ms fetch wait) follow the source and the target topic; each batch's
//! latency is the time it became readable minus its first timestamp (stamped just before
//! the produce into one of a pool of batches encoded up front). The source reader gives the brokers' own
//! produce-to-fetch latency, the target reader strait's end-to-end latency. Both readers
//! fetch in fetch sessions, as a Kafka consumer does; `--latency-no-readers` leaves them
//! out, so that the source broker's CPU time over the load (`source_broker_cpu_pct`) is the
//! producer's and strait's alone. The CPU time of the source broker, the target broker,
//! strait and this process (the paced producer and the readers) over the load is reported
//! beside the machine's cores: on a small machine the four share them, and a queue in strait
//! with quick answers from the target is a machine with no core to spare.
//!
//! strait's own view comes with it: `strait_mirror_delay_seconds` (each batch's newest
//! record timestamp to the target's acknowledgement), scraped from its `/metrics` before
//! and after the load; percentiles interpolated within its buckets. On tansu the target
//! reader is left out (`read_target` false): tansu lists a partition's objects on every
//! Fetch and ListOffsets, so a reader following a topic that grows by thousands of objects
//! a second takes tansu's CPU from the writes it measures. There the acknowledgement is
//! the measure: tansu acknowledges a write once it is stored, and readable.

use std::time::{Duration, Instant};

use anyhow::Result;
use strait_linker::client::KafkaClient;
use strait_linker::client::data::{
    FetchOptions, FetchPosition, FetchSessions, Isolation, ProduceItem,
};

use crate::data::{self, BATCH_BYTES};

const RECORD: usize = 1024;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub rate_mb_s: f64,
    pub seconds: u64,
    pub batches: usize,
    pub broker_p50_ms: f64,
    pub broker_p99_ms: f64,
    /// From the target reader (NaN without one).
    pub strait_p50_ms: f64,
    pub strait_p99_ms: f64,
    /// From strait's acknowledgement histogram (bucket-interpolated).
    pub strait_ack_p50_ms: f64,
    pub strait_ack_p99_ms: f64,
    /// Time batches waited in strait, fetch response to the send of their write.
    pub strait_queue_p50_ms: f64,
    pub strait_queue_p99_ms: f64,
    /// strait's Fetch requests to the source, send to response (p99, bucket-interpolated;
    /// includes the fetch wait when the source has nothing new).
    pub source_fetch_p99_ms: f64,
    /// strait's Produce requests to the target, send to response: how much of the delay is
    /// the target answering.
    pub target_produce_p50_ms: f64,
    pub target_produce_p99_ms: f64,
    /// strait's Fetch and Produce requests per second over the load.
    pub source_fetches_per_s: f64,
    pub target_produces_per_s: f64,
    /// Time from the last produce on the source until the target's high watermarks held
    /// every record.
    pub copied_after_ms: f64,
    pub strait_peak_rss_mib: f64,
    /// Partitions of the latency topic.
    pub partitions: i32,
    /// The source broker's CPU time over the load, in % of one core.
    pub source_broker_cpu_pct: f64,
    /// strait's CPU time over the load, in % of one core.
    pub strait_cpu_pct: f64,
    /// The target broker's CPU time over the load, in % of one core.
    pub target_broker_cpu_pct: f64,
    /// This bench process's CPU time over the load (the paced producer and the readers),
    /// in % of one core.
    pub bench_cpu_pct: f64,
    /// The machine's cores: the four figures above share `100 x cores` %.
    pub cores: usize,
}

impl Latency {
    /// strait's p50 and p99: the target reader's where there is one, else from its
    /// acknowledgements.
    pub fn strait_view(&self) -> (f64, f64) {
        if self.strait_p99_ms.is_finite() {
            (self.strait_p50_ms, self.strait_p99_ms)
        } else {
            (self.strait_ack_p50_ms, self.strait_ack_p99_ms)
        }
    }
}

pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// One latency run's load and what to measure.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Bytes/s of record payload.
    pub rate: f64,
    pub secs: u64,
    pub budget_mib: u64,
    /// Follow the target with a reader (not on tansu, see above).
    pub read_target: bool,
    /// Follow the source with a reader (the brokers' own latency). Without one, the source
    /// broker's CPU time is the producer's and strait's alone.
    pub read_source: bool,
    pub partitions: i32,
    /// The source broker's process, for its CPU time.
    pub source_pid: Option<u32>,
    /// The target broker's process, for its CPU time.
    pub target_pid: Option<u32>,
}

/// Runs the latency measurement at `rate` bytes/s for `secs` seconds.
pub async fn run(
    source: &KafkaClient,
    target: &KafkaClient,
    bootstraps: (&str, &str),
    setup: Setup,
) -> Result<Latency> {
    let Setup {
        rate,
        secs,
        budget_mib,
        read_target,
        read_source,
        partitions,
        source_pid,
        target_pid,
    } = setup;
    let topic = strait_testkit::unique("latency");
    data::create_topic(source, &topic, partitions).await?;
    let mut proc =
        crate::systems::StraitProc::spawn(bootstraps.0, bootstraps.1, &topic, budget_mib)?;
    // strait creates the target topic; wait until it can be read.
    let keys: Vec<(String, i32)> = (0..partitions).map(|p| (topic.clone(), p)).collect();
    let ready_by = Instant::now() + Duration::from_secs(60);
    while target.log_bounds(&keys).await.values().any(Result::is_err) {
        target.invalidate_topic(&topic);
        anyhow::ensure!(Instant::now() < ready_by, "strait did not create {topic}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let per_batch = BATCH_BYTES / RECORD;
    let total = ((rate * secs as f64) / BATCH_BYTES as f64) as usize;
    // Readers on their own connections: a held Fetch must not delay the producer's requests.
    let (src_read, tgt_read) = (
        KafkaClient::connect(source.config().clone()).await?,
        KafkaClient::connect(target.config().clone()).await?,
    );
    let src_reader =
        read_source.then(|| tokio::spawn(follow(src_read, topic.clone(), partitions, total)));
    let tgt_reader = (read_target && read_source)
        .then(|| tokio::spawn(follow(tgt_read, topic.clone(), partitions, total)));
    proc.wait_api(Duration::from_secs(30))?;
    let before = Stages::scrape(&proc)?;
    // Every process on the machine that takes part, so the figures account for the cores.
    let cpu = |pid: Option<u32>| pid.and_then(|pid| crate::systems::cpu_seconds(pid).ok());
    let own_pid = Some(std::process::id());
    let cpu_before = (cpu(source_pid), cpu(target_pid), cpu(own_pid));
    let strait_cpu_before = proc.cpu_seconds()?;

    // Encoded up front and only re-stamped when sent: encoding 1 KiB records at this rate
    // took a good part of a core, which the brokers and strait then lacked.
    let pool: Vec<bytes::Bytes> = (0..64)
        .map(|b| data::encode_batch((b * per_batch) as u64, per_batch, RECORD, false, 0))
        .collect();
    let started = Instant::now();
    let mut sent = 0usize;
    let mut set = tokio::task::JoinSet::new();
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * rate) / BATCH_BYTES as f64) as usize;
        let due = due.min(total);
        while sent < due {
            let n = (due - sent).min(partitions as usize);
            let ts = data::now_ms();
            let items: Vec<ProduceItem> = (0..n)
                .map(|k| ProduceItem {
                    topic: topic.clone(),
                    partition: ((sent + k) % partitions as usize) as i32,
                    records: restamp(&pool[(sent + k) % pool.len()], ts).into(),
                })
                .collect();
            sent += n;
            let c = source.clone();
            set.spawn(async move { crate::data::produce_retrying(&c, items, 1).await });
            while set.len() > 32 {
                set.join_next().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    while set.join_next().await.is_some() {}
    let load_done = Instant::now();
    let elapsed = started.elapsed().as_secs_f64();
    let pct = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(a), Some(b)) => 100.0 * (b - a) / elapsed,
        _ => f64::NAN,
    };
    let source_broker_cpu_pct = pct(cpu_before.0, cpu(source_pid));
    let target_broker_cpu_pct = pct(cpu_before.1, cpu(target_pid));
    let bench_cpu_pct = pct(cpu_before.2, cpu(own_pid));
    let strait_cpu_pct = 100.0 * (proc.cpu_seconds()? - strait_cpu_before) / elapsed;
    // When the target's high watermarks hold everything: strait's own delivery, apart from
    // how fast a reader can fetch it back from the target (tansu lists a partition's objects
    // on every Fetch, which a follower at hundreds of MB/s cannot keep up with).
    let want = (total * per_batch) as i64;
    let copied_after_ms = loop {
        let hw: i64 = target
            .log_bounds(&keys)
            .await
            .values()
            .filter_map(|b| b.as_ref().ok().map(|b| b.end))
            .sum();
        if hw >= want {
            break load_done.elapsed().as_secs_f64() * 1e3;
        }
        anyhow::ensure!(
            load_done.elapsed() < Duration::from_secs(600),
            "strait did not copy the latency load within 600 s ({hw} of {want} records)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stages = Stages::scrape(&proc)?.since(&before);
    let mut broker = match src_reader {
        Some(r) => r.await??,
        None => Vec::new(),
    };
    let mut strait = match tgt_reader {
        Some(r) => r.await??,
        None => Vec::new(),
    };
    let rss = proc.peak_rss()? as f64 / (1 << 20) as f64;
    proc.stop()?;
    Ok(Latency {
        rate_mb_s: rate / 1e6,
        seconds: secs,
        batches: strait.len(),
        broker_p50_ms: percentile(&mut broker, 0.5),
        broker_p99_ms: percentile(&mut broker, 0.99),
        strait_p50_ms: percentile(&mut strait, 0.5),
        strait_p99_ms: percentile(&mut strait, 0.99),
        strait_ack_p50_ms: bucket_percentile(&stages.delay, 0.5) * 1e3,
        strait_ack_p99_ms: bucket_percentile(&stages.delay, 0.99) * 1e3,
        strait_queue_p50_ms: bucket_percentile(&stages.queue, 0.5) * 1e3,
        strait_queue_p99_ms: bucket_percentile(&stages.queue, 0.99) * 1e3,
        source_fetch_p99_ms: bucket_percentile(&stages.fetch, 0.99) * 1e3,
        target_produce_p50_ms: bucket_percentile(&stages.produce, 0.5) * 1e3,
        target_produce_p99_ms: bucket_percentile(&stages.produce, 0.99) * 1e3,
        source_fetches_per_s: stages.fetch.last().map_or(0, |b| b.1) as f64 / secs as f64,
        target_produces_per_s: stages.produce.last().map_or(0, |b| b.1) as f64 / secs as f64,
        copied_after_ms,
        strait_peak_rss_mib: rss,
        partitions,
        source_broker_cpu_pct,
        strait_cpu_pct,
        target_broker_cpu_pct,
        bench_cpu_pct,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// strait's histograms that split its delay into stages, as cumulative bucket counts.
struct Stages {
    delay: Vec<(f64, u64)>,
    queue: Vec<(f64, u64)>,
    fetch: Vec<(f64, u64)>,
    produce: Vec<(f64, u64)>,
}

impl Stages {
    /// All four from one `/metrics` scrape, so they describe the same moment.
    fn scrape(proc: &crate::systems::StraitProc) -> Result<Self> {
        use crate::systems::{DELAY, histogram};
        let text = proc.metrics()?;
        Ok(Self {
            delay: histogram(&text, DELAY)?,
            queue: histogram(&text, "strait_mirror_queue_seconds")?,
            fetch: histogram(&text, "strait_fetch_latency_seconds{cluster=\"source\"")?,
            produce: histogram(&text, "strait_produce_latency_seconds{cluster=\"target\"")?,
        })
    }

    /// The counts added since `before`.
    fn since(&self, before: &Self) -> Self {
        Self {
            delay: bucket_diff(&self.delay, &before.delay),
            queue: bucket_diff(&self.queue, &before.queue),
            fetch: bucket_diff(&self.fetch, &before.fetch),
            produce: bucket_diff(&self.produce, &before.produce),
        }
    }
}

/// Cumulative bucket counts `after - before` (same bounds).
fn bucket_diff(after: &[(f64, u64)], before: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|(b, _)| *b == le).map_or(0, |(_, c)| *c);
            (le, n.saturating_sub(was))
        })
        .collect()
}

/// The `p` quantile (seconds) of cumulative buckets, interpolated linearly within the bucket
/// it falls in (as Prometheus' `histogram_quantile`); NaN if empty; the last finite bound if
/// it falls in `+Inf`.
pub fn bucket_percentile(cumulative: &[(f64, u64)], p: f64) -> f64 {
    let Some(&(_, total)) = cumulative.last() else {
        return f64::NAN;
    };
    if total == 0 {
        return f64::NAN;
    }
    let rank = p * total as f64;
    let (mut lo, mut below) = (0.0, 0u64);
    for &(le, n) in cumulative {
        if n as f64 >= rank {
            if le.is_infinite() {
                return lo;
            }
            let inside = (n - below) as f64;
            return lo + (le - lo) * ((rank - below as f64) / inside.max(1.0));
        }
        (lo, below) = (le, n);
    }
    lo
}

/// `batch` (records with timestamp delta 0) with first and max timestamp `ts` and the CRC
/// to match. Layout: CRC at 17..21 covering 21..end, first timestamp at 27, max at 35.
fn restamp(batch: &bytes::Bytes, ts: i64) -> bytes::Bytes {
    let mut b = batch.to_vec();
    b[27..35].copy_from_slice(&ts.to_be_bytes());
    b[35..43].copy_from_slice(&ts.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes::Bytes::from(b)
}

/// Reads `topic` from offset 0 until `batches` batches were seen; returns each batch's
/// latency in ms.
async fn follow(
    c: KafkaClient,
    topic: String,
    partitions: i32,
    batches: usize,
) -> Result<Vec<f64>> {
    let mut offsets = vec![0i64; partitions as usize];
    let mut sessions = FetchSessions::default();
    let mut out = Vec::with_capacity(batches);
    let opts = FetchOptions {
        max_wait: Duration::from_millis(10),
        min_bytes: 1,
        max_bytes: 64 << 20,
        isolation: Isolation::ReadUncommitted,
        lane: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while out.len() < batches {
        anyhow::ensure!(Instant::now() < deadline, "latency reader timed out");
        let positions: Vec<FetchPosition> = (0..partitions)
            .map(|p| FetchPosition {
                topic: topic.clone(),
                partition: p,
                offset: offsets[p as usize],
                max_bytes: 8 << 20,
            })
            .collect();
        for f in c.fetch_in_sessions(&positions, opts, &mut sessions).await {
            if f.error.is_some() {
                continue;
            }
            let now = data::now_ms();
            for b in strait_linker::batch::split(f.records)?.batches {
                let h = b.header();
                if h.last_offset() < offsets[f.partition as usize] {
                    continue;
                }
                offsets[f.partition as usize] = h.next_offset();
                out.push((now - h.base_timestamp) as f64);
            }
        }
    }
    Ok(out)
}
