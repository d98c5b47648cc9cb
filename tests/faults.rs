//! The fault suite (issue #8): strait keeps its exactly-once promises when things break.
//!
//! Every scenario runs the real `strait run` binary against real brokers, breaks something,
//! and ends with the same checks: `strait verify` (strait stopped) says the target is
//! identical; every acknowledged source record is on the target exactly once (`lost` and
//! `duplicated` are counted from the target's records, and must be 0); and a consumer group
//! resumes exactly: its translated offsets on the target point at the record it would read
//! next on the source, and a consumer moved to the target reads every remaining record once.
//!
//! Faults come from [`FaultProxy`] (between strait and each cluster; see its docs for how
//! Metadata is rewritten so every connection goes through it), from killing and restarting
//! dedicated brokers, from SIGKILLing strait, and from a full tmpfs under the state directory.
//! Each scenario appends rows to `target/fault-report.jsonl` ([`record_fault`]) and the last
//! test to finish prints a summary table of the run to stderr.
//!
//! `STRAIT_LONG_FAULTS=1` runs the long variants (50 SIGKILLs instead of 5).

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strait_linker::client::data::Isolation;
use strait_linker::client::{ClientConfig, KafkaClient};
use strait_testkit::{Broker, FaultProxy, KafkaOptions, start_kafka, unique};
use support::*;

#[path = "faults/scenarios.rs"]
mod scenarios;

const TOKEN: &str = "faults-t0ken-DO-NOT-LEAK";
const PARTITIONS: i32 = 2;

fn long() -> bool {
    std::env::var("STRAIT_LONG_FAULTS").is_ok_and(|v| v == "1")
}

// ---------------------------------------------------------------------------------------------
// The summary table: printed (to the real stderr, not captured) by the last test to finish.

static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Held by every test; the last one dropped prints the run's summary.
struct Reporting;

impl Reporting {
    fn begin() -> Self {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Reporting
    }
}

impl Drop for Reporting {
    fn drop(&mut self) {
        if RUNNING.fetch_sub(1, Ordering::SeqCst) == 1 {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\nfault suite summary\n{}",
                fault_summary()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Proxy faults.

/// The proxy faults, each applied for a while (or armed once) and then cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Latency,
    Drop,
    Reset,
    Blackhole,
    Bandwidth,
    Corrupt,
}

impl Fault {
    pub(crate) const ALL: [Fault; 6] = [
        Fault::Latency,
        Fault::Drop,
        Fault::Reset,
        Fault::Blackhole,
        Fault::Bandwidth,
        Fault::Corrupt,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::Latency => "latency 150ms",
            Fault::Drop => "drop all connections",
            Fault::Reset => "reset mid-response x2",
            Fault::Blackhole => "blackhole 3s",
            Fault::Bandwidth => "bandwidth 32KiB/s",
            Fault::Corrupt => "flipped byte in fetch x2 (source)",
        }
    }

    /// Turns the fault on: on both proxies, except corruption (source fetches only).
    pub(crate) fn inject(self, source: &FaultProxy, target: &FaultProxy) {
        for (p, is_source) in [(source, true), (target, false)] {
            match self {
                Fault::Latency => p.set_latency(Duration::from_millis(150)),
                Fault::Drop => {
                    p.drop_connections();
                }
                Fault::Reset => {
                    p.reset_next_response();
                    p.reset_next_response();
                }
                Fault::Blackhole => p.blackhole(Duration::from_secs(3)),
                Fault::Bandwidth => p.set_bandwidth(Some(32 << 10)),
                Fault::Corrupt if is_source => p.corrupt_next_fetches(2),
                Fault::Corrupt => {}
            }
        }
    }

    /// How long the fault stays on before [`clear`](Self::clear).
    pub(crate) fn hold(self) -> Duration {
        match self {
            Fault::Blackhole => Duration::from_millis(3500),
            _ => Duration::from_millis(2500),
        }
    }

    /// How many injections actually happened between two counter snapshots of both proxies
    /// (timed faults count one per proxy).
    pub(crate) fn injected(
        self,
        before: &[strait_testkit::ProxyStats],
        after: &[strait_testkit::ProxyStats],
    ) -> u64 {
        let d = |f: fn(&strait_testkit::ProxyStats) -> u64| -> u64 {
            after.iter().zip(before).map(|(a, b)| f(a) - f(b)).sum()
        };
        match self {
            Fault::Latency | Fault::Bandwidth => 2,
            Fault::Blackhole => d(|s| s.blackholes),
            Fault::Drop => d(|s| s.dropped),
            Fault::Reset => d(|s| s.resets),
            Fault::Corrupt => d(|s| s.corrupted),
        }
    }
}

pub(crate) fn clear(proxies: &[&FaultProxy]) {
    for p in proxies {
        p.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// A scenario: one topic, one group, a strait config and state directory, producers and
// consumers that count every record.

/// A broker of a scenario: a shared one, or a dedicated one the test kills and restarts.
#[derive(Clone)]
pub(crate) enum B {
    Shared(&'static Broker),
    Owned(Arc<Mutex<Broker>>),
}

impl B {
    pub(crate) fn owned(broker: Broker) -> Self {
        B::Owned(Arc::new(Mutex::new(broker)))
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&Broker) -> R) -> R {
        match self {
            B::Shared(b) => f(b),
            B::Owned(m) => f(&m.lock().unwrap()),
        }
    }

    /// SIGKILLs a dedicated broker.
    pub(crate) fn kill(&self) {
        match self {
            B::Shared(b) => panic!("cannot kill the shared {}", b.name()),
            B::Owned(m) => m.lock().unwrap().kill(),
        }
    }

    /// Starts a dedicated broker again (same port, same data).
    pub(crate) fn restart(&self) {
        match self {
            B::Shared(b) => panic!("cannot restart the shared {}", b.name()),
            B::Owned(m) => m.lock().unwrap().restart(),
        }
    }

    pub(crate) fn bootstrap(&self) -> String {
        match self {
            B::Shared(b) => b.bootstrap(),
            B::Owned(m) => m.lock().unwrap().bootstrap(),
        }
    }
}

pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) source: B,
    pub(crate) target: B,
    pub(crate) sc: KafkaClient,
    pub(crate) tc: KafkaClient,
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) config: PathBuf,
    pub(crate) next: Arc<AtomicU64>,
    pub(crate) acked: Arc<Mutex<Vec<String>>>,
    pub(crate) seen: Arc<Mutex<Vec<String>>>,
    starts: usize,
    started: Instant,
}

/// Where strait connects: the brokers themselves or proxies in front of them.
pub(crate) struct Endpoints {
    pub(crate) source: String,
    pub(crate) target: String,
}

impl Scenario {
    /// A new topic (2 partitions) on `source`, a group name and a strait config that mirrors
    /// the topic and syncs the group through `via` (the brokers when `None`), with its state
    /// in `state_dir` (default: inside the scenario's temp dir).
    pub(crate) async fn new(
        name: &'static str,
        source: B,
        target: B,
        via: Option<&Endpoints>,
        state_dir: Option<&Path>,
    ) -> Self {
        let connect = |b: &B| KafkaClient::connect(ClientConfig::new(&b.bootstrap()));
        let (sc, tc) = (
            connect(&source).await.expect("source client"),
            connect(&target).await.expect("target client"),
        );
        let topic = unique(&format!("f-{name}"));
        let group = unique(&format!("g-{name}"));
        create_topic(&sc, &topic, PARTITIONS, &[]).await;
        let dir = tempfile::tempdir().unwrap();
        let state = state_dir.map_or_else(|| dir.path().join("state"), Path::to_owned);
        let (src, tgt) = match via {
            Some(e) => (e.source.clone(), e.target.clone()),
            None => (source.bootstrap(), target.bootstrap()),
        };
        let config = dir.path().join("strait.toml");
        std::fs::write(
            &config,
            strait_toml(&src, &tgt, &topic, Some(&group), &state),
        )
        .unwrap();
        Self {
            name,
            dir,
            source,
            target,
            sc,
            tc,
            topic,
            group,
            config,
            next: Arc::new(AtomicU64::new(0)),
            acked: Arc::new(Mutex::new(Vec::new())),
            seen: Arc::new(Mutex::new(Vec::new())),
            starts: 0,
            started: Instant::now(),
        }
    }

    /// Starts `strait run` (a new log file each time).
    pub(crate) async fn strait(&mut self) -> StraitRun {
        self.starts += 1;
        let log = self.dir.path().join(format!("strait-{}.log", self.starts));
        StraitRun::start(&self.config, &log, TOKEN).await
    }

    /// Producers on the source (numbered records, acknowledged ones remembered).
    pub(crate) fn load(&self) -> Load {
        self.source.with(|b| {
            Load::start(
                b,
                &self.topic,
                Arc::clone(&self.next),
                Arc::clone(&self.acked),
            )
        })
    }

    /// The group's consumer on `broker`, resuming from its committed offsets there.
    pub(crate) fn reader(&self, on_target: bool) -> Reader {
        let b = if on_target {
            &self.target
        } else {
            &self.source
        };
        b.with(|b| Reader::start(b, &self.topic, &self.group, Arc::clone(&self.seen)))
    }

    pub(crate) fn acked_len(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Records on the target per value (partition by partition).
    async fn target_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in 0..PARTITIONS {
            let f = fetch_all(&self.tc, &self.topic, p, Isolation::ReadUncommitted).await;
            for (_, r) in data_records(&f, false) {
                out.push(String::from_utf8(r.value.unwrap_or_default()).unwrap());
            }
        }
        out
    }

    /// (mirrored, lost, duplicated): the target's records against every acknowledged one.
    pub(crate) async fn tally(&self) -> (u64, u64, u64) {
        let values = self.target_values().await;
        let mut counts: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for v in &values {
            *counts.entry(v.as_str()).or_default() += 1;
        }
        let acked = self.acked.lock().unwrap();
        let lost = acked
            .iter()
            .filter(|v| !counts.contains_key(v.as_str()))
            .count() as u64;
        let duplicated = counts.values().map(|n| n - 1).sum();
        (values.len() as u64, lost, duplicated)
    }

    /// Waits until the group's committed offsets on the target point at the same next record
    /// as on the source (the target must already hold everything the source has).
    pub(crate) async fn wait_group_resumes_exactly(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let src = self
                .source
                .with(|b| committed_offsets(b, &self.group, &self.topic, PARTITIONS));
            let tgt = self
                .target
                .with(|b| committed_offsets(b, &self.group, &self.topic, PARTITIONS));
            let mut same = true;
            for p in 0..PARTITIONS {
                let (s, t) = (src[p as usize], tgt[p as usize]);
                // Both -1: nothing committed anywhere; both consumers start at the beginning.
                same &= (s >= 0 && t >= 0 || s == t) && self.rest_from(p, s, t).await;
            }
            if same {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: group offsets never matched: source {src:?}, target {tgt:?}",
                self.group
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Whether the records a consumer reads from `s` on the source equal those it reads from
    /// `t` on the target.
    async fn rest_from(&self, p: i32, s: i64, t: i64) -> bool {
        let src = fetch_all(&self.sc, &self.topic, p, Isolation::ReadCommitted).await;
        let tgt = fetch_all(&self.tc, &self.topic, p, Isolation::ReadCommitted).await;
        let rest = |f: &Fetched, from: i64| -> Vec<Rec> {
            data_records(f, true)
                .into_iter()
                .filter(|(o, _)| *o >= from)
                .map(|(_, r)| r)
                .collect()
        };
        rest(&src, s) == rest(&tgt, t)
    }

    /// The end of every scenario: stop strait, `strait verify`, count lost and duplicated
    /// records, check the group resumes exactly on the target and that a consumer moved there
    /// reads every acknowledged record exactly once. `reader` is the group's consumer on the
    /// source, stopped here after it has read everything. Returns (mirrored, lost, duplicated).
    pub(crate) async fn finish(
        &mut self,
        strait: StraitRun,
        reader: Option<Reader>,
    ) -> (u64, u64, u64) {
        if let Some(reader) = reader {
            read_all(&self.seen, &self.acked, "source consumer").await;
            reader.stop();
        }
        strait
            .wait_caught_up(&[&self.topic], PARTITIONS as usize, 120)
            .await;
        self.wait_group_resumes_exactly().await;
        let status = strait.terminate();
        assert!(status.success(), "strait exited with {status} on SIGTERM");
        strait_verify(&self.config);
        let tally = self.tally().await;
        // The consumer moves to the target: it must read nothing twice and miss nothing.
        let moved = self.reader(true);
        // Records produced after the reader stopped on the source are read on the target.
        read_all(&self.seen, &self.acked, "consumer moved to the target").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        moved.stop();
        assert_exactly_once(&self.seen.lock().unwrap(), &self.acked.lock().unwrap());
        tally
    }

    /// Appends a report row for this scenario.
    pub(crate) fn record(&self, fault: &str, injected: u64, tally: (u64, u64, u64), note: &str) {
        record_fault(FaultRow {
            test: self.name.to_owned(),
            fault: fault.to_owned(),
            injected,
            mirrored: tally.0,
            lost: tally.1,
            duplicated: tally.2,
            secs: self.started.elapsed().as_secs_f64(),
            note: note.to_owned(),
        });
    }
}

/// Asserts the tally has no loss and no duplicate.
pub(crate) fn assert_clean(what: &str, tally: (u64, u64, u64)) {
    assert_eq!(tally.1, 0, "{what}: lost records");
    assert_eq!(tally.2, 0, "{what}: duplicated records");
    assert!(tally.0 > 0, "{what}: nothing was mirrored");
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread")]
async fn proxy_faults_during_mirroring() {
    let _report = Reporting::begin();
    scenarios::proxy_faults_during_mirroring().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_faults_during_mirroring_to_tansu() {
    let _report = Reporting::begin();
    scenarios::proxy_faults_during_mirroring_to_tansu().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_faults_during_group_sync() {
    let _report = Reporting::begin();
    scenarios::proxy_faults_during_group_sync().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_faults_during_each_cutover_stage() {
    let _report = Reporting::begin();
    scenarios::proxy_faults_during_cutover_stages().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_batch_is_never_written_and_is_refetched() {
    let _report = Reporting::begin();
    scenarios::corrupt_batch().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_target_tail_is_re_read_not_taken_for_a_foreign_write() {
    let _report = Reporting::begin();
    scenarios::corrupt_target_tail().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_tail_that_never_reads_clean_stops_the_partition() {
    let _report = Reporting::begin();
    scenarios::target_tail_never_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn source_broker_killed_and_restarted_mid_mirror() {
    let _report = Reporting::begin();
    scenarios::broker_restart(B::owned(start_kafka(KafkaOptions::new())), true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn target_broker_killed_and_restarted_mid_mirror() {
    let _report = Reporting::begin();
    scenarios::broker_restart(B::owned(start_kafka(KafkaOptions::new())), false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn strait_sigkilled_in_a_loop() {
    let _report = Reporting::begin();
    let kills = if long() { 50 } else { 5 };
    scenarios::sigkill_loop(kills).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn state_disk_full_stops_cleanly_and_resumes() {
    let _report = Reporting::begin();
    scenarios::disk_full().await;
}
