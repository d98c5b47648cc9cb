//! The mirrors under test: `strait run` as a separate process (so its RSS is its own), a
//! naive rdkafka mirror (consume each record, produce it again), and MirrorMaker 2 in
//! dedicated mode. Each is timed the same way, by watching the target topic's end offsets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use strait_linker::client::KafkaClient;

/// strait's per-batch mirror delay histogram (newest record timestamp to the target's ack).
pub const DELAY: &str = "strait_mirror_delay_seconds";

/// When the first and the last record reached the target.
#[derive(Debug, Clone, Copy)]
pub struct Copy {
    /// From the start of the system (process spawn) to the first record on the target.
    pub startup: Duration,
    /// From the first record on the target to the last.
    pub copy: Duration,
}

/// Polls the target's end offsets every 20 ms (`STRAIT_BENCH_POLL_MS=N`: every N ms) until
/// they sum to `end_total`. tansu lists a partition's objects for each ListOffsets, so the
/// polls cost it more the more batches it holds (docs/benchmarks.md, item 24).
/// `on_first` runs once, when the first record is seen: where a per-copy reading (CPU
/// time) starts, so that start-up (topic creation) is not counted in it.
pub async fn wait_for_target(
    c: &KafkaClient,
    topic: &str,
    partitions: i32,
    end_total: i64,
    started: Instant,
    timeout: Duration,
    mut on_first: impl FnMut(),
) -> Result<Copy> {
    let keys: Vec<(String, i32)> = (0..partitions).map(|p| (topic.to_owned(), p)).collect();
    let poll = Duration::from_millis(
        crate::data::env_positive("STRAIT_BENCH_POLL_MS").map_or(20, |ms| ms as u64),
    );
    let mut first: Option<Instant> = None;
    loop {
        let bounds = c.log_bounds(&keys).await;
        let sum: i64 = bounds
            .values()
            .filter_map(|r| r.as_ref().ok())
            .map(|b| b.end)
            .sum();
        let now = Instant::now();
        if sum > 0 && first.is_none() {
            first = Some(now);
            on_first();
        }
        if sum >= end_total {
            let f = first.unwrap_or(now);
            return Ok(Copy {
                startup: f - started,
                copy: (now - f).max(Duration::from_millis(1)),
            });
        }
        if bounds.values().any(Result::is_err) {
            c.invalidate_topic(topic); // not created yet: look again next round
        }
        if now - started > timeout {
            bail!("{topic}: target holds {sum} of {end_total} offsets after {timeout:?}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// A `strait run` child process with its own state directory.
#[derive(Debug)]
pub struct StraitProc {
    pub child: Child,
    pub started: Instant,
    /// `127.0.0.1:PORT` of its control API (for `/metrics`).
    pub api: String,
    _dir: tempfile::TempDir,
}

impl StraitProc {
    /// Starts `strait run` mirroring exactly `topic`, with `budget` in-flight bytes.
    pub fn spawn(source: &str, target: &str, topic: &str, budget_mib: u64) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("strait.toml");
        let api = format!("127.0.0.1:{}", strait_testkit::free_port());
        let level = std::env::var("STRAIT_BENCH_LOG_LEVEL").unwrap_or_else(|_| "warn".into());
        // STRAIT_BENCH_MIRROR='key = value; ...' adds settings to [mirror], to compare them.
        let extra = std::env::var("STRAIT_BENCH_MIRROR")
            .unwrap_or_default()
            .replace(';', "\n");
        std::fs::write(
            &cfg,
            format!(
                "[source]\nbootstrap_servers = \"{source}\"\n\
                 [target]\nbootstrap_servers = \"{target}\"\n\
                 [mirror]\ntopics = ['{topic}']\nmax_in_flight_bytes = \"{budget_mib}MiB\"\n{extra}\n\
                 [state]\ndir = \"{}\"\n\
                 [groups]\ninclude = ['strait-bench-no-such-group']\n\
                 [api]\nlisten = \"{api}\"\n\
                 [log]\nlevel = \"{level}\"\n",
                dir.path().join("state").display()
            ),
        )?;
        // STRAIT_BENCH_LOG_DIR=DIR keeps each run's log as DIR/strait-<topic>.log (the state
        // directory is deleted); STRAIT_BENCH_LOG_LEVEL sets its level (default warn).
        let log = match std::env::var("STRAIT_BENCH_LOG_DIR") {
            Ok(d) => std::fs::File::create(Path::new(&d).join(format!("strait-{topic}.log")))?,
            Err(_) => std::fs::File::create(dir.path().join("strait.log"))?,
        };
        // STRAIT_BENCH_PERF=DIR: run strait under `perf record -g` (for profiling only: the
        // RSS measured is then perf's).
        let mut cmd = match std::env::var("STRAIT_BENCH_PERF") {
            Ok(out) => {
                let mut c = Command::new("perf");
                c.args(["record", "-F", "1999", "-g", "-o"])
                    .arg(Path::new(&out).join(format!("perf-{topic}.data")))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_strait"));
                c
            }
            Err(_) => Command::new(env!("CARGO_BIN_EXE_strait")),
        };
        let child = cmd
            .env("STRAIT_API_TOKEN", "bench")
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting strait run")?;
        Ok(Self {
            child,
            started: Instant::now(),
            api,
            _dir: dir,
        })
    }

    /// The text of strait's `/metrics` (open, no token).
    pub fn metrics(&self) -> Result<String> {
        use std::io::{Read as _, Write as _};
        let mut conn = std::net::TcpStream::connect(&self.api)
            .with_context(|| format!("strait's API at {}", self.api))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            conn,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.api
        )?;
        let mut text = String::new();
        conn.read_to_string(&mut text)?;
        Ok(text)
    }

    /// Waits until the API answers (strait has started).
    pub fn wait_api(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.metrics().and_then(|text| histogram(&text, DELAY)) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Peak resident set size so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        peak_rss(self.child.id())
    }

    /// CPU time used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.child.id())
    }

    /// SIGINT (as Ctrl-C; perf forwards it), then wait: strait drains and exits.
    pub fn stop(&mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    pub fn log(&self) -> PathBuf {
        self._dir.path().join("strait.log")
    }
}

/// Cumulative counts of the histogram series `series` (e.g. `strait_mirror_delay_seconds`
/// or `strait_produce_latency_seconds{cluster="target"`, without the `le` label) by upper
/// bound (`+Inf` as infinity), from the text of a `/metrics` scrape.
pub fn histogram(metrics: &str, series: &str) -> Result<Vec<(f64, u64)>> {
    // `name_bucket{le="..."}` without other labels, `name_bucket{a="b",le="..."}` with.
    let prefix = match series.split_once('{') {
        Some((name, labels)) => format!("{name}_bucket{{{labels},le=\""),
        None => format!("{series}_bucket{{le=\""),
    };
    let out: Vec<(f64, u64)> = metrics
        .lines()
        .filter_map(|l| {
            let (le, count) = l.strip_prefix(&prefix)?.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    anyhow::ensure!(!out.is_empty(), "no {series} in strait's /metrics");
    Ok(out)
}

impl Drop for StraitProc {
    /// A benchmark that fails half-way must not leave a mirror running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The pid of a broker started by the testkit (recorded in its directory), if it runs.
pub fn broker_pid(broker: &strait_testkit::Broker) -> Option<u32> {
    let pids = broker.dir().join("pids");
    ["broker.pid", "tansu.pid"].iter().find_map(|f| {
        let pid: u32 = std::fs::read_to_string(pids.join(f))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        std::path::Path::new(&format!("/proc/{pid}"))
            .exists()
            .then_some(pid)
    })
}

/// Pins every thread of `broker`'s process to `cpu`.
pub fn pin(broker: &strait_testkit::Broker, cpu: usize) -> Result<()> {
    let pid = broker_pid(broker).with_context(|| format!("no pid for {}", broker.name()))?;
    pin_pid(pid, cpu, broker.name())
}

/// Pins every thread of process `pid` to `cpu` (`taskset -a -p -c`); threads it starts
/// later, and processes it spawns, inherit the mask.
pub fn pin_pid(pid: u32, cpu: usize, name: &str) -> Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .output()
        .context("taskset (util-linux)")?;
    anyhow::ensure!(
        out.status.success(),
        "taskset -a -p -c {cpu} {pid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{name} (pid {pid}) pinned to CPU {cpu}");
    Ok(())
}

/// CPU time of a process's threads, in seconds: the sum of each live thread's time on a CPU
/// (`/proc/PID/task/*/schedstat`, nanoseconds). `/proc/PID/stat` counts in clock ticks
/// (10 ms), too coarse for a copy that costs strait a tenth of a second; a thread that
/// already exited is not counted (strait's workers and sled's threads live until exit).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        ns += stat
            .split_whitespace()
            .next()
            .context("empty schedstat")?
            .parse::<u64>()?;
    }
    Ok(ns as f64 / 1e9)
}

/// VmHWM of a process, in bytes.
pub fn peak_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?;
    Ok(kb * 1024)
}

/// The mirror a user would write in an afternoon with rdkafka: consume each record from the
/// source (fetch.wait.max.ms = 10, otherwise librdkafka defaults), produce it again to the
/// same partition with the same key, value and timestamp (compressing with zstd when the
/// source is zstd). Blocks until `records` were consumed and the producer is flushed.
pub fn naive_mirror(
    source: &str,
    target: &str,
    (topic, to_topic): (&str, &str),
    partitions: i32,
    records: u64,
    zstd: bool,
) -> Result<()> {
    let consumer: BaseConsumer = RdConfig::new()
        .set("bootstrap.servers", source)
        .set("group.id", format!("naive-{topic}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let producer: BaseProducer = RdConfig::new()
        .set("bootstrap.servers", target)
        .set("compression.type", if zstd { "zstd" } else { "none" })
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut consumed = 0u64;
    let deadline = Instant::now() + Duration::from_secs(900);
    while consumed < records {
        if Instant::now() > deadline {
            bail!("naive mirror: {consumed} of {records} records after 900 s");
        }
        producer.poll(Duration::ZERO);
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m?;
        let mut rec = BaseRecord::<[u8], [u8]>::to(to_topic).partition(m.partition());
        if let Some(k) = m.key() {
            rec = rec.key(k);
        }
        if let Some(v) = m.payload() {
            rec = rec.payload(v);
        }
        if let Some(ts) = m.timestamp().to_millis() {
            rec = rec.timestamp(ts);
        }
        let mut rec = rec;
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    producer.poll(Duration::from_millis(5));
                    rec = r;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        consumed += 1;
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// MirrorMaker 2 in dedicated mode (`connect-mirror-maker`), identity replication policy,
/// replicating exactly `topic` from `source` to `target`.
pub fn spawn_mm2(source: &str, target: &str, topic: &str, dir: &Path) -> Result<Child> {
    let cache = std::env::var("STRAIT_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/strait",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let libs = format!("{cache}/kafka-4.3.1/mm2-libs");
    if !Path::new(&libs).is_dir() {
        bail!("{libs} is missing: run `bash scripts/kafka.sh install-mm2` (see tests/README.md)");
    }
    let props = dir.join(format!("mm2-{topic}.properties"));
    std::fs::write(
        &props,
        format!(
            "clusters = src, dst\n\
             src.bootstrap.servers = {source}\n\
             dst.bootstrap.servers = {target}\n\
             src->dst.enabled = true\n\
             src->dst.topics = {topic}\n\
             dst->src.enabled = false\n\
             replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy\n\
             replication.factor = 1\n\
             checkpoints.topic.replication.factor = 1\n\
             heartbeats.topic.replication.factor = 1\n\
             offset-syncs.topic.replication.factor = 1\n\
             offset.storage.replication.factor = 1\n\
             status.storage.replication.factor = 1\n\
             config.storage.replication.factor = 1\n\
             emit.heartbeats.enabled = false\n\
             emit.checkpoints.enabled = false\n\
             sync.group.offsets.enabled = false\n\
             sync.topic.acls.enabled = false\n\
             refresh.topics.interval.seconds = 2\n\
             tasks.max = 2\n"
        ),
    )?;
    let log = std::fs::File::create(dir.join(format!("mm2-{topic}.log")))?;
    let child = Command::new("java")
        .args(["-Xmx1g", "-cp", &format!("{libs}/*")])
        .arg("org.apache.kafka.connect.mirror.MirrorMaker")
        .arg(&props)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting MirrorMaker 2")?;
    Ok(child)
}
