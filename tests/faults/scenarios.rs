//! The scenarios of the fault suite (tests/faults.rs): each breaks something while strait
//! mirrors, syncs a group or runs a cutover, then checks with [`Scenario::finish`] (or the
//! cutover's own ending) that nothing was lost or doubled, and records report rows.

use super::*;
use serde_json::{Value, json};
use strait_testkit::{kafka_source, kafka_target};

fn shared() -> (B, B) {
    (B::Shared(kafka_source()), B::Shared(kafka_target()))
}

/// Proxies in front of the shared source and target.
fn proxies() -> (FaultProxy, FaultProxy, Endpoints) {
    proxies_to(&B::Shared(kafka_target()))
}

/// Proxies in front of the shared source and `target`.
fn proxies_to(target: &B) -> (FaultProxy, FaultProxy, Endpoints) {
    let sp = FaultProxy::start(&kafka_source().bootstrap());
    let tp = FaultProxy::start(&target.bootstrap());
    let via = Endpoints {
        source: sp.bootstrap(),
        target: tp.bootstrap(),
    };
    (sp, tp, via)
}

/// strait really went through both proxies: it connected and its Metadata was rewritten.
fn assert_proxied(sp: &FaultProxy, tp: &FaultProxy) {
    for (side, p) in [("source", sp), ("target", tp)] {
        let st = p.stats();
        assert!(
            st.connections > 1 && st.rewrites > 0 && st.responses > 10,
            "strait did not use the {side} proxy: {st:?}"
        );
    }
}

/// Blocking testkit calls (broker restarts) from an async test.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

// ---------------------------------------------------------------------------------------------

/// Every proxy fault on both clusters in turn while producers write and a group consumes.
pub(crate) async fn proxy_faults_during_mirroring() {
    mirroring_faults("mirroring", B::Shared(kafka_target()), "").await;
}

/// The same sequence with the shared tansu (memory) target; it is never killed or restarted
/// (a memory tansu comes back empty). The checks are the same and hold as they are: strait
/// writes whole batches and the target is only ever read from batch starts (strait's tail
/// reads start at its map's next target offset; the test's reads start at 0; the group's
/// committed offsets fall between the load's one-record batches), so tansu's failure to fetch
/// from inside a batch is never met, and nothing here relies on its ListOffsets latest.
/// The flipped byte stays on source fetches only, as with Kafka.
pub(crate) async fn proxy_faults_during_mirroring_to_tansu() {
    let target = B::Shared(strait_testkit::tansu_target());
    mirroring_faults("mirroring_tansu", target, "target tansu (memory); ").await;
}

async fn mirroring_faults(name: &'static str, target: B, note: &str) {
    let (sp, tp, via) = proxies_to(&target);
    let source = B::Shared(kafka_source());
    let mut s = Scenario::new(name, source, target, Some(&via), None).await;
    let strait = s.strait().await;
    let load = s.load();
    let reader = s.reader(false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut rows = Vec::new();
    for f in Fault::ALL {
        let before = [sp.stats(), tp.stats()];
        let produced = s.acked_len();
        f.inject(&sp, &tp);
        tokio::time::sleep(f.hold()).await;
        clear(&[&sp, &tp]);
        let injected = f.injected(&before, &[sp.stats(), tp.stats()]);
        assert!(injected > 0, "{}: never injected", f.name());
        rows.push((f, injected, s.acked_len() - produced));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    load.stop().await;
    assert_proxied(&sp, &tp);
    strait
        .wait_caught_up(&[&s.topic], PARTITIONS as usize, 120)
        .await;
    let crc = strait.metric_sum("strait_crc_failures_total").await;
    let corrupted = sp.stats().corrupted;
    assert!(
        crc >= corrupted as f64,
        "{corrupted} corrupted fetches, strait_crc_failures_total {crc}"
    );
    let tally = s.finish(strait, Some(reader)).await;
    for (f, injected, produced) in rows {
        let note = format!("{note}{produced} records produced while on");
        s.record(f.name(), injected, tally, &note);
    }
    assert_clean("faults during mirroring", tally);
}

/// Every proxy fault (except corruption: group sync moves no record batches) while a slow
/// consumer keeps committing on the source and strait syncs its offsets to the target; the
/// consumer then stops half-way and moves to the target.
pub(crate) async fn proxy_faults_during_group_sync() {
    let (sp, tp, via) = proxies();
    let (source, target) = shared();
    let mut s = Scenario::new("group_sync", source, target, Some(&via), None).await;
    let strait = s.strait().await;
    send_burst(
        &kafka_source().client_config(None),
        &s.topic,
        4000,
        &s.next,
        &s.acked,
    )
    .await;
    strait
        .wait_caught_up(&[&s.topic], PARTITIONS as usize, 60)
        .await;
    let reader = Reader::start_paced(
        kafka_source(),
        &s.topic,
        &s.group,
        Arc::clone(&s.seen),
        Duration::from_millis(10),
    );
    let mut rows = Vec::new();
    for f in Fault::ALL.into_iter().filter(|f| *f != Fault::Corrupt) {
        let before = [sp.stats(), tp.stats()];
        let read = s.seen.lock().unwrap().len();
        f.inject(&sp, &tp);
        tokio::time::sleep(f.hold()).await;
        clear(&[&sp, &tp]);
        let injected = f.injected(&before, &[sp.stats(), tp.stats()]);
        assert!(injected > 0, "{}: never injected", f.name());
        rows.push((f, injected, s.seen.lock().unwrap().len() - read));
    }
    reader.stop();
    let read = s.seen.lock().unwrap().len();
    assert!(
        read < s.acked_len(),
        "the consumer must stop with records left ({read} of {})",
        s.acked_len()
    );
    assert_proxied(&sp, &tp);
    let tally = s.finish(strait, None).await;
    for (f, injected, commits) in rows {
        let note = format!("{commits} source commits while on");
        s.record(f.name(), injected, tally, &note);
    }
    assert_clean("faults during group sync", tally);
}

/// Waits until a cutover has no operation running and asserts its stage.
async fn settle(strait: &StraitRun, id: &str, stage: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = strait.get(&format!("/v1/cutovers/{id}")).await;
        if c["operation"].is_null() {
            assert_eq!(c["stage"], stage, "timeline: {:#}", c["events"]);
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after {secs}s; timeline: {:#}",
            c["operation"],
            c["events"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// For each fault, one cutover (manual fence) with the fault injected at the start of every
/// stage: fenced, drained, promoted. The group's consumer then moves to the target.
pub(crate) async fn proxy_faults_during_cutover_stages() {
    let (sp, tp, via) = proxies();
    let mut total = (0, 0, 0);
    for f in Fault::ALL {
        let (source, target) = shared();
        let mut s = Scenario::new("cutover", source, target, Some(&via), None).await;
        let strait = s.strait().await;
        let load = s.load();
        let reader = s.reader(false);
        let create = json!({
            "name": unique("fault-wave"), "topics": [s.topic], "groups": [s.group],
            "fence": { "mode": "manual", "failback_mode": "manual", "quiet_period_ms": 1000 },
            "max_lag_records": 1_000_000,
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let id = loop {
            let r = strait.post("/v1/cutovers", &create).await;
            if r.status == 201 {
                break r.json()["id"].as_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "create: {}", r.text);
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        load.stop().await;
        let mut reader = Some(reader);
        let mut injected = 0;
        for stage in ["fenced", "drained", "promoted"] {
            if stage == "drained" {
                read_all(&s.seen, &s.acked, "source consumer").await;
                reader.take().unwrap().stop();
            }
            let before = [sp.stats(), tp.stats()];
            f.inject(&sp, &tp);
            let r = strait
                .post(
                    &format!("/v1/cutovers/{id}/advance"),
                    &json!({ "to": stage }),
                )
                .await;
            assert_eq!(r.status, 202, "advance to {stage}: {}", r.text);
            if matches!(f, Fault::Latency | Fault::Bandwidth | Fault::Blackhole) {
                tokio::time::sleep(f.hold()).await;
            }
            let c = settle(&strait, &id, stage, 120).await;
            clear(&[&sp, &tp]);
            injected += f.injected(&before, &[sp.stats(), tp.stats()]);
            if stage == "drained" {
                let checks = c["checks"].as_array().unwrap();
                assert!(checks.iter().all(|k| k["ok"] == true), "{checks:#?}");
            }
        }
        let tally = s.finish_promoted(strait).await;
        s.record(f.name(), injected, tally, "fenced, drained, promoted");
        assert_clean(&format!("cutover with {}", f.name()), tally);
        total = (total.0 + tally.0, total.1 + tally.1, total.2 + tally.2);
    }
    assert_proxied(&sp, &tp);
}

impl Scenario {
    /// The ending after a promotion: the drain already checked the target caught up and
    /// synced the group. Stop strait, verify, count, and move the consumer to the target.
    async fn finish_promoted(&mut self, strait: StraitRun) -> (u64, u64, u64) {
        self.wait_group_resumes_exactly().await;
        let status = strait.terminate();
        assert!(status.success(), "strait exited with {status} on SIGTERM");
        strait_verify(&self.config);
        let tally = self.tally().await;
        let moved = self.reader(true);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        moved.stop();
        assert_exactly_once(&self.seen.lock().unwrap(), &self.acked.lock().unwrap());
        tally
    }
}

/// Corrupted fetches from the source: strait counts the CRC failure, fetches again and never
/// writes the bad batch (verify, CRC checks of every target batch, exact record counts).
pub(crate) async fn corrupt_batch() {
    let sp = FaultProxy::start(&kafka_source().bootstrap());
    let via = Endpoints {
        source: sp.bootstrap(),
        target: kafka_target().bootstrap(),
    };
    let (source, target) = shared();
    let mut s = Scenario::new("corrupt_batch", source, target, Some(&via), None).await;
    send_burst(
        &kafka_source().client_config(None),
        &s.topic,
        500,
        &s.next,
        &s.acked,
    )
    .await;
    sp.corrupt_next_fetches(3);
    let strait = s.strait().await;
    let reader = s.reader(false);
    strait
        .wait_caught_up(&[&s.topic], PARTITIONS as usize, 60)
        .await;
    // More data after the first catch-up, corrupted again.
    sp.corrupt_next_fetches(2);
    send_burst(
        &kafka_source().client_config(None),
        &s.topic,
        500,
        &s.next,
        &s.acked,
    )
    .await;
    strait
        .wait_caught_up(&[&s.topic], PARTITIONS as usize, 60)
        .await;
    let corrupted = sp.stats().corrupted;
    assert_eq!(corrupted, 5, "every armed corruption hit a batch");
    let crc = strait.metric_sum("strait_crc_failures_total").await;
    assert!(
        crc >= corrupted as f64,
        "strait_crc_failures_total {crc} < {corrupted}"
    );
    let status = strait.get("/v1/status").await;
    let failures: u64 = status["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == s.topic.as_str())
        .map(|p| p["crc_failures"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        failures >= corrupted,
        "status crc_failures {failures}: {status:#}"
    );
    let warnings = strait.log_text().matches("CRC mismatch on fetch").count();
    assert!(
        warnings as u64 >= corrupted,
        "{warnings} CRC warnings logged"
    );
    let tally = s.finish(strait, Some(reader)).await;
    let note = format!("metric {crc}, {warnings} warnings, refetched");
    s.record("flipped byte in fetch (source)", corrupted, tally, &note);
    assert_clean("corrupt batches", tally);
}

/// Every strait log of the scenario so far (one file per start).
fn all_logs(s: &Scenario) -> String {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

/// A scenario on the shared clusters whose strait reaches the target through a fault proxy.
async fn behind_target_proxy(name: &'static str) -> (FaultProxy, Scenario) {
    let tp = FaultProxy::start(&kafka_target().bootstrap());
    let via = Endpoints {
        source: kafka_source().bootstrap(),
        target: tp.bootstrap(),
    };
    let (source, target) = shared();
    let s = Scenario::new(name, source, target, Some(&via), None).await;
    (tp, s)
}

/// SIGKILLs strait under load until a restart's tail read got a corrupted response: its last
/// checkpoints are lost, so the target holds batches past them, and `per_restart` target
/// Fetch responses that carry a batch are corrupted after each restart (the restart's tail
/// reads: strait's other target fetches read at the end and carry none). Returns the running
/// strait, the kills, and how many responses had been corrupted when it started.
async fn kill_until_tail_corrupted(
    s: &mut Scenario,
    tp: &FaultProxy,
    per_restart: u32,
) -> (StraitRun, u32, u64) {
    let mut strait = s.strait().await;
    let mut kills = 0;
    let mut at_start = 0;
    // Until a start's tail read was damaged, which strait counts. A kill leaves no tail now
    // and then (the checkpoints were flushed): kill again. The proxy's own count is not
    // enough: with no tail to read, the armed corruptions land on the target-ends watch,
    // whose reads take nothing from the records (seen in CI).
    loop {
        if kills > 0 && tail_damage_counted(&strait).await {
            break;
        }
        assert!(
            kills < 10,
            "{kills} restarts and no corrupted tail read: {:?}",
            tp.stats()
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        strait.kill();
        kills += 1;
        let armed = tp.pending().1;
        tp.corrupt_next_fetches(per_restart.saturating_sub(armed));
        at_start = tp.stats().corrupted;
        strait = s.strait().await;
    }
    (strait, kills, at_start)
}

/// Whether `strait` counts a CRC failure within a few seconds of its start (a damaged tail
/// read: only target reads are damaged here).
async fn tail_damage_counted(strait: &StraitRun) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if strait.metric_sum("strait_crc_failures_total").await > 0.0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Corrupted fetches from the TARGET while strait reads its tail
/// ([`kill_until_tail_corrupted`], two corrupted responses per restart). The tail's batches
/// must be CRC-checked and read again, counted in `strait_crc_failures_total`, never taken for
/// a foreign write, and matched with the source so nothing is written twice.
pub(crate) async fn corrupt_target_tail() {
    let (tp, mut s) = behind_target_proxy("corrupt_target_tail").await;
    let load = s.load();
    let reader = s.reader(false);
    let (strait, kills, at_start) = kill_until_tail_corrupted(&mut s, &tp, 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    tp.clear();
    load.stop().await;
    let corrupted = tp.stats().corrupted;
    let status = strait.get("/v1/status").await;
    let failed: Vec<&Value> = status["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == s.topic.as_str() && p["state"] == "error")
        .collect();
    assert!(
        failed.is_empty(),
        "partitions stopped after a corrupted tail read: {failed:#?}\nlog:\n{}",
        strait.log_text()
    );
    let logs = all_logs(&s);
    assert!(
        !logs.contains("did not write"),
        "a corrupted tail read was taken for a foreign write"
    );
    let rereads = logs.matches("CRC mismatch reading the tail").count();
    assert!(
        rereads as u64 >= corrupted,
        "{corrupted} corrupted tail fetches, {rereads} CRC warnings"
    );
    // The running strait counts the re-reads of its own tail reads.
    let counted = strait.metric_sum("strait_crc_failures_total").await;
    assert!(
        counted >= (corrupted - at_start) as f64,
        "{} corrupted tail fetches since the last start, strait_crc_failures_total {counted}",
        corrupted - at_start
    );
    let matched = logs
        .matches("target holds batches past the checkpoint")
        .count();
    let tally = s.finish(strait, Some(reader)).await;
    let note = format!(
        "after strait SIGKILL x{kills}; {rereads} CRC warnings, re-read; {matched} tails matched"
    );
    s.record(
        "flipped byte in fetch (target tail)",
        corrupted,
        tally,
        &note,
    );
    assert_clean("corrupt target tail", tally);
}

/// A target tail that never reads clean (every response corrupted, more times than strait
/// re-reads a batch) stops that partition with an error saying so, instead of retrying for
/// ever or taking the tail for a foreign write.
pub(crate) async fn target_tail_never_clean() {
    let (tp, mut s) = behind_target_proxy("target_tail_never_clean").await;
    let load = s.load();
    let (strait, kills, _) = kill_until_tail_corrupted(&mut s, &tp, 100).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let status = strait.get("/v1/status").await;
        let failed: Vec<Value> = status["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["topic"] == s.topic.as_str() && p["state"] == "error")
            .cloned()
            .collect();
        if !failed.is_empty() {
            break failed;
        }
        assert!(
            Instant::now() < deadline,
            "no partition stopped on a tail that never reads clean: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    tp.clear();
    load.stop().await;
    let text = failed[0].to_string();
    assert!(
        text.contains("cannot read the target's tail") && text.contains("failed its CRC"),
        "{failed:#?}"
    );
    let counted = strait.metric_sum("strait_crc_failures_total").await;
    assert!(
        counted >= 6.0,
        "strait_crc_failures_total {counted}: {failed:#?}"
    );
    let logs = strait.log_text();
    assert!(
        !logs.contains("did not write"),
        "a corrupted tail read was taken for a foreign write"
    );
    let corrupted = tp.stats().corrupted;
    strait.kill();
    s.record(
        "flipped byte in every fetch (target tail)",
        corrupted,
        (0, 0, 0),
        &format!(
            "after strait SIGKILL x{kills}; {} partition(s) stopped with a clear error",
            failed.len()
        ),
    );
}

/// A dedicated source or target broker SIGKILLed mid-mirror and restarted on the same port
/// and data; strait reconnects and carries on.
pub(crate) async fn broker_restart(dedicated: B, source_side: bool) {
    let (name, source, target) = if source_side {
        (
            "source_restart",
            dedicated.clone(),
            B::Shared(kafka_target()),
        )
    } else {
        (
            "target_restart",
            B::Shared(kafka_source()),
            dedicated.clone(),
        )
    };
    let mut s = Scenario::new(name, source, target, None, None).await;
    let strait = s.strait().await;
    let load = s.load();
    let reader = s.reader(false);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (load, reader) = if source_side {
        // Producers and the consumer need the source: they stop, and a burst leaves strait
        // with work in flight when the broker dies.
        load.stop().await;
        reader.stop();
        let cfg = s.source.with(|b| b.client_config(None));
        send_burst(&cfg, &s.topic, 5000, &s.next, &s.acked).await;
        (None, None)
    } else {
        (Some(load), Some(reader))
    };
    blocking(|| dedicated.kill());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restart_started = Instant::now();
    blocking(|| dedicated.restart());
    let restart_secs = restart_started.elapsed().as_secs_f64();
    let (load, reader) = match (load, reader) {
        (Some(l), Some(r)) => (l, r),
        _ => (s.load(), s.reader(false)),
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await;
    let tally = s.finish(strait, Some(reader)).await;
    let fault = if source_side {
        "source broker SIGKILL + restart"
    } else {
        "target broker SIGKILL + restart"
    };
    s.record(
        fault,
        1,
        tally,
        &format!("broker back in {restart_secs:.1}s"),
    );
    assert_clean(fault, tally);
}

/// strait SIGKILLed `kills` times at random moments while producers write and a group
/// consumes; then one clean run.
pub(crate) async fn sigkill_loop(kills: usize) {
    use rand::Rng;
    let (source, target) = shared();
    let mut s = Scenario::new("sigkill_loop", source, target, None, None).await;
    let load = s.load();
    let reader = s.reader(false);
    let lifetimes: Vec<u64> = {
        let mut rng = rand::rng();
        (0..kills).map(|_| rng.random_range(100..1500)).collect()
    };
    for ms in lifetimes {
        let strait = s.strait().await;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        strait.kill();
    }
    let strait = s.strait().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    load.stop().await;
    let tally = s.finish(strait, Some(reader)).await;
    s.record(
        &format!("strait SIGKILL x{kills}"),
        kills as u64,
        tally,
        "random lifetimes 0.1-1.5 s after the API is up",
    );
    assert_clean("SIGKILL loop", tally);
}

/// A small tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("fs");
        std::fs::create_dir(&mnt).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the disk-full scenario mounts a tmpfs and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { mnt, _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mnt)
            .status();
    }
}

/// Fills the file system at `dir` with one file until it is full; returns its size.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
    written
}

/// The state directory's file system fills up while strait mirrors: strait must stop with a
/// clear error (no silent loss), and once space returns a restart resumes with nothing lost
/// or doubled.
pub(crate) async fn disk_full() {
    let fs = Tmpfs::mount("64m");
    let state = fs.mnt.join("state");
    let (source, target) = shared();
    let mut s = Scenario::new("disk_full", source, target, None, Some(&state)).await;
    let mut strait = s.strait().await;
    let load = s.load();
    let reader = s.reader(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let filler = fs.mnt.join("filler");
    let filled = fill(&filler);
    // strait must notice and stop on its own.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = strait.child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let status = strait.get("/v1/status").await;
            panic!(
                "strait kept running with a full state disk for 60 s: {status:#}\nlog:\n{}",
                strait.log_text()
            );
        }
        // Keep the disk full: sled may free space it had reserved.
        let _ = fill(
            &fs.mnt
                .join(format!("filler-{}", Instant::now().elapsed().as_nanos())),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = strait.log_text();
    assert!(!status.success(), "strait exited 0 on a full disk:\n{log}");
    let error = log
        .lines()
        .rev()
        .take(20)
        .find(|l| l.contains("No space left on device"))
        .unwrap_or_else(|| panic!("no clear disk-full error in the log:\n{log}"))
        .to_owned();
    eprintln!("strait on a full disk: {status}, {error}");
    drop(strait);
    // Space returns; strait resumes where it stopped.
    for e in std::fs::read_dir(&fs.mnt).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("filler")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let strait = s.strait().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await;
    let tally = s.finish(strait, Some(reader)).await;
    let message = serde_json::from_str::<Value>(&error)
        .ok()
        .and_then(|v| v["fields"]["message"].as_str().map(str::to_owned))
        .unwrap_or(error);
    let note = format!(
        "64 MiB tmpfs filled ({} MiB); strait: {status}: {}",
        filled >> 20,
        message.chars().take(160).collect::<String>()
    );
    s.record("state disk full", 1, tally, &note);
    assert_clean("disk full", tally);
}
