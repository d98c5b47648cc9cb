//! Running a playbook: clusters up, topics created, then each step in order; the first step
//! that fails ends the steps, the workload and strait are stopped, and every assertion is
//! judged and reported either way.
//!
//! ```text
//!  Env::start ─▶ create topics ─▶ steps (workload, strait, cutover API, faults)
//!      ─▶ finish (stop workload, read cutover reports, stop strait, strait verify)
//!      ─▶ verdict (asserts over the ledger) ─▶ RunReport
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use strait_control_api::cutover::{Cutover, Stage};
use strait_linker::client::admin::NewTopic;

use super::env::Env;
use super::playbook::{AdvanceSpec, Assertion, CreateSpec, Playbook, Side, Step};
use super::verdict::{self, CutoverRecord, Facts, RunReport, StepRecord};
use super::workload::{self, ConsumerRunner, ProducerRunner, ProducerSetup, SharedLedger};

/// The state of one run.
struct Runner<'a> {
    book: &'a Playbook,
    env: Env,
    ledger: SharedLedger,
    producers: BTreeMap<String, ProducerRunner>,
    consumers: BTreeMap<String, ConsumerRunner>,
    /// Where the clients work now, and how many switches happened.
    side: Side,
    epoch: u32,
    /// Producers are writing (not paused).
    producing: bool,
    pause_started: Option<Instant>,
    longest_pause: Option<Duration>,
    cutovers: Vec<String>,
    loads: u32,
}

/// Runs `book` with its work files in `work` and returns the report (`Err` only when the
/// run could not start: clusters or topics).
pub async fn run(book: &Playbook, work: std::path::PathBuf) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let env = Env::start(book, work).await?;
    let mut r = Runner {
        book,
        env,
        ledger: Arc::new(Mutex::new(workload::Ledger::default())),
        producers: BTreeMap::new(),
        consumers: BTreeMap::new(),
        side: Side::Source,
        epoch: 0,
        producing: false,
        pause_started: None,
        longest_pause: None,
        cutovers: Vec::new(),
        loads: 0,
    };
    r.create_topics().await?;
    let mut steps = Vec::new();
    let mut failed = false;
    for (i, step) in book.steps.iter().enumerate() {
        let t = Instant::now();
        tracing::info!(step = i + 1, what = %describe(step), "scenario step");
        let outcome = r.step(step).await;
        let note = match &outcome {
            Ok(note) => note.clone(),
            Err(e) => format!("{e:#}"),
        };
        steps.push(StepRecord {
            n: i + 1,
            step: describe(step),
            ok: outcome.is_ok(),
            took_ms: ms(t.elapsed()),
            note,
        });
        if outcome.is_err() {
            failed = true;
            break;
        }
    }
    let facts = r.finish(failed).await;
    let ledger = r.ledger.lock().expect("ledger");
    let groups = verdict::groups(book, &ledger);
    let asserts = verdict::judge(book, &groups, &facts);
    let passed = !failed && asserts.iter().all(|a| a.passed);
    Ok(RunReport {
        scenario: book.name.clone(),
        description: book.description.trim().to_owned(),
        run_id: r.env.run_id.clone(),
        passed,
        took_ms: ms(started.elapsed()),
        source: r.env.bootstrap[&Side::Source].clone(),
        target: r.env.bootstrap[&Side::Target].clone(),
        steps,
        acknowledged: ledger.acked.len(),
        aborted: ledger.aborted.len(),
        uncertain: ledger.uncertain.len(),
        produce_errors: ledger.produce_errors,
        first_produce_error: ledger.first_produce_error.clone(),
        groups,
        cutovers: facts.cutovers,
        producer_pause_ms: facts.producer_pause.map(ms),
        strait_starts: r.env.strait_starts,
        asserts,
        work_dir: r.env.work.display().to_string(),
    })
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A step as written in the playbook, on one line.
fn describe(step: &Step) -> String {
    match step {
        Step::SwitchClients(s) => format!("switch_clients: {s}"),
        Step::Load(l) => format!("load: {} x {}", l.producer, l.records),
        Step::Advance(a) if a.wait => format!("advance: {}", a.to),
        Step::Advance(a) => format!("advance: {} (no wait)", a.to),
        Step::WaitStage(s) => format!("wait_stage: {s}"),
        Step::WaitConsumed(_) => "wait_consumed".into(),
        Step::RestartBroker(s) => format!("restart_broker: {s}"),
        Step::Sleep(d) => format!("sleep: {}", humantime::format_duration(*d)),
        Step::CreateCutover(c) => match &c.fence {
            Some(f) => format!("create_cutover (fence {f:?})").to_lowercase(),
            None => "create_cutover".into(),
        },
        Step::StartWorkload => "start_workload".into(),
        Step::StopWorkload => "stop_workload".into(),
        Step::PauseProducers => "pause_producers".into(),
        Step::ResumeProducers => "resume_producers".into(),
        Step::StopConsumers => "stop_consumers".into(),
        Step::StartStrait => "start_strait".into(),
        Step::StopStrait => "stop_strait".into(),
        Step::KillStrait => "kill_strait".into(),
        Step::WaitMirrored(_) => "wait_mirrored".into(),
        Step::Rollback(_) => "rollback".into(),
    }
}

impl Runner<'_> {
    fn topic_names(&self) -> Vec<String> {
        self.book
            .topics
            .iter()
            .map(|t| self.env.name(&t.name))
            .collect()
    }

    fn group_names(&self) -> Vec<String> {
        self.book
            .workload
            .consumers
            .iter()
            .map(|c| self.env.name(&c.group))
            .collect()
    }

    fn partitions(&self, logical: &str) -> i32 {
        self.book
            .topics
            .iter()
            .find(|t| t.name == logical)
            .map_or(1, |t| t.partitions)
    }

    async fn create_topics(&mut self) -> anyhow::Result<()> {
        let c = self.env.client(Side::Source).await?;
        let topics: Vec<NewTopic> = self
            .book
            .topics
            .iter()
            .map(|t| NewTopic {
                name: self.env.name(&t.name),
                partitions: t.partitions,
                replication_factor: -1,
                configs: t.config.clone(),
            })
            .collect();
        let made = c
            .create_topics(&topics, Duration::from_secs(30), false)
            .await
            .context("creating the playbook's topics on the source")?;
        for (name, r) in made {
            r.with_context(|| format!("creating topic {name}"))?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for t in &topics {
            while c.leader(&t.name, t.partitions - 1).await.is_err() {
                if Instant::now() > deadline {
                    bail!("topic {} has no leader after 30 s", t.name);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    fn setup(&self, name: &str) -> anyhow::Result<ProducerSetup> {
        let spec = self
            .book
            .workload
            .producers
            .iter()
            .find(|p| p.name() == name)
            .with_context(|| format!("no producer {name}"))?;
        Ok(ProducerSetup {
            spec: spec.clone(),
            topic: self.env.name(&spec.topic),
            partitions: self.partitions(&spec.topic),
            txn_prefix: self.env.name("txn"),
            bootstrap: self.env.bootstrap.clone(),
        })
    }

    /// Runs one step; `Ok` carries a note for the report.
    async fn step(&mut self, step: &Step) -> anyhow::Result<String> {
        match step {
            Step::StartWorkload => self.start_workload().await,
            Step::StopWorkload => self.stop_workload(true).await,
            Step::PauseProducers => {
                self.pause_producers().await?;
                Ok(String::new())
            }
            Step::ResumeProducers => self.resume_producers().await,
            Step::SwitchClients(side) => self.switch(*side).await,
            Step::WaitConsumed(w) => {
                self.wait_consumed(w.timeout).await?;
                Ok(String::new())
            }
            Step::StopConsumers => {
                self.stop_consumers()?;
                Ok(String::new())
            }
            Step::Load(l) => {
                self.loads += 1;
                let setup = self.setup(&l.producer)?;
                let tag = format!("load{}", self.loads);
                workload::load(&setup, &self.ledger, self.side, self.epoch, l.records, &tag)
                    .await?;
                Ok(format!(
                    "{} records acknowledged on the {}",
                    l.records, self.side
                ))
            }
            Step::StartStrait => {
                if self.env.strait_starts == 0 {
                    let (topics, groups) = (self.topic_names(), self.group_names());
                    self.env.write_config(
                        &topics,
                        &groups,
                        self.book.strait.group_sync_interval,
                    )?;
                }
                self.env.start_strait().await?;
                Ok(format!("start #{}", self.env.strait_starts))
            }
            Step::StopStrait => Ok(format!("exited: {}", self.env.stop_strait(true).await?)),
            Step::KillStrait => Ok(format!("killed: {}", self.env.stop_strait(false).await?)),
            Step::WaitMirrored(w) => self.wait_mirrored(w.timeout).await,
            Step::CreateCutover(c) => self.create_cutover(c).await,
            Step::Advance(a) => self.advance(a).await,
            Step::Rollback(w) => {
                let id = self.current_cutover()?;
                let path = format!("/v1/cutovers/{id}/rollback");
                self.env
                    .api()?
                    .call(reqwest::Method::POST, &path, Some(json!({})), None)
                    .await?;
                let c = self.settle(&id, w.timeout).await?;
                expect_stage(&c, Stage::RolledBack)
            }
            Step::WaitStage(stage) => {
                let id = self.current_cutover()?;
                let c = self.settle(&id, Duration::from_secs(120)).await?;
                expect_stage(&c, *stage)
            }
            Step::RestartBroker(side) => {
                self.env.restart_broker(*side).await?;
                Ok(String::new())
            }
            Step::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Ok(String::new())
            }
        }
    }

    async fn start_workload(&mut self) -> anyhow::Result<String> {
        for p in &self.book.workload.producers {
            let name = p.name();
            if !self.producers.contains_key(&name) {
                let mut runner =
                    ProducerRunner::spawn(self.setup(&name)?, Arc::clone(&self.ledger), self.side);
                runner.switch(self.side, self.epoch).await?;
                self.producers.insert(name, runner);
            }
        }
        self.resume_producers().await?;
        self.start_consumers()?;
        Ok(format!(
            "{} producer(s), {} group(s) on the {}",
            self.producers.len(),
            self.consumers.len(),
            self.side
        ))
    }

    fn start_consumers(&mut self) -> anyhow::Result<()> {
        for c in &self.book.workload.consumers {
            if self.consumers.contains_key(&c.group) {
                continue;
            }
            let runner = ConsumerRunner::start(
                c,
                &self.env.name(&c.group),
                &self.env.name(&c.topic),
                self.partitions(&c.topic),
                &self.env.bootstrap[&self.side],
                self.side,
                Arc::clone(&self.ledger),
            )?;
            self.consumers.insert(c.group.clone(), runner);
        }
        Ok(())
    }

    fn stop_consumers(&mut self) -> anyhow::Result<()> {
        for (_, c) in std::mem::take(&mut self.consumers) {
            c.stop()?;
        }
        Ok(())
    }

    async fn pause_producers(&mut self) -> anyhow::Result<()> {
        for p in self.producers.values_mut() {
            p.pause().await?;
        }
        if self.producing {
            self.pause_started = Some(Instant::now());
        }
        self.producing = false;
        Ok(())
    }

    async fn resume_producers(&mut self) -> anyhow::Result<String> {
        for p in self.producers.values_mut() {
            p.resume().await?;
        }
        self.producing = true;
        Ok(match self.pause_started.take() {
            Some(t) => {
                let d = t.elapsed();
                self.longest_pause = Some(self.longest_pause.map_or(d, |l| l.max(d)));
                format!("writes were paused for {:.1} s", d.as_secs_f64())
            }
            None => String::new(),
        })
    }

    /// Moves the clients: producers pause (in-flight writes acknowledged), consumers stop
    /// (their last read committed), then both start on `side`.
    async fn switch(&mut self, side: Side) -> anyhow::Result<String> {
        let was_running = !self.producers.is_empty();
        if self.producing {
            self.pause_producers().await?;
        }
        self.stop_consumers()?;
        self.side = side;
        self.epoch += 1;
        for p in self.producers.values_mut() {
            p.switch(side, self.epoch).await?;
        }
        self.start_consumers()?;
        let note = if was_running {
            self.resume_producers().await?
        } else {
            String::new()
        };
        Ok(format!("clients on the {side}. {note}").trim().to_owned())
    }

    /// Stops the producers, waits until every group has read everything it should (when
    /// `drain`), then stops the consumers.
    async fn stop_workload(&mut self, drain: bool) -> anyhow::Result<String> {
        if self.producing {
            self.pause_producers().await?;
            // Stopping is not a write pause.
            self.pause_started = None;
        }
        for (_, p) in std::mem::take(&mut self.producers) {
            p.stop().await?;
        }
        let mut note = String::new();
        if drain
            && !self.consumers.is_empty()
            && let Err(e) = self.wait_consumed(Duration::from_secs(90)).await
        {
            note = format!("{e:#}");
        }
        self.stop_consumers()?;
        Ok(note)
    }

    async fn wait_consumed(&self, timeout: Duration) -> anyhow::Result<()> {
        if self.consumers.is_empty() {
            bail!("no consumer is running");
        }
        let deadline = Instant::now() + timeout;
        loop {
            let missing = self.missing_reads();
            if missing == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{missing} records still unread after {}",
                    humantime::format_duration(timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many records the groups should still read (judged like `no_loss`).
    fn missing_reads(&self) -> usize {
        let l = self.ledger.lock().expect("ledger");
        verdict::groups(self.book, &l).iter().map(|g| g.lost).sum()
    }

    async fn wait_mirrored(&mut self, timeout: Duration) -> anyhow::Result<String> {
        let topics = self.topic_names();
        let groups = self.group_names();
        let want: usize = self.book.topics.iter().map(|t| t.partitions as usize).sum();
        let deadline = Instant::now() + timeout;
        loop {
            let last;
            match self.env.api()?.get("/v1/status").await {
                Ok(a) => match mirrored(&a.body, &topics, &groups, want) {
                    Ok(note) => return Ok(note),
                    Err(why) => last = why,
                },
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() > deadline {
                bail!(
                    "not mirrored after {}: {last}",
                    humantime::format_duration(timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn create_cutover(&mut self, c: &CreateSpec) -> anyhow::Result<String> {
        let fence = c.fence.unwrap_or(self.book.strait.fence);
        let body = json!({
            "name": self.env.name(c.name.as_deref().unwrap_or(&self.book.name)),
            "topics": self.topic_names(),
            "groups": self.group_names(),
            "fence": {
                "mode": fence,
                "failback_mode": "manual",
                "quiet_period_ms": ms(self.book.strait.quiet_period),
            },
        });
        // The mirror may not know the topics yet right after a start: retried for 30 s.
        let deadline = Instant::now() + Duration::from_secs(30);
        let answer = loop {
            match self
                .env
                .api()?
                .call(
                    reqwest::Method::POST,
                    "/v1/cutovers",
                    Some(body.clone()),
                    None,
                )
                .await
            {
                Ok(a) => break a,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %format!("{e:#}"), "create cutover; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let cutover: Cutover = answer.parse()?;
        self.cutovers.push(cutover.id.clone());
        Ok(format!("cutover {}", cutover.id))
    }

    fn current_cutover(&self) -> anyhow::Result<String> {
        self.cutovers
            .last()
            .cloned()
            .context("no cutover yet (create_cutover first)")
    }

    async fn advance(&mut self, a: &AdvanceSpec) -> anyhow::Result<String> {
        let id = self.current_cutover()?;
        let path = format!("/v1/cutovers/{id}/advance");
        self.env
            .api()?
            .call(
                reqwest::Method::POST,
                &path,
                Some(json!({ "to": a.to })),
                None,
            )
            .await?;
        if !a.wait {
            return Ok("accepted".into());
        }
        let c = self.settle(&id, a.timeout).await?;
        expect_stage(&c, a.to)
    }

    /// Polls the cutover until no operation runs (strait restarts are waited out).
    async fn settle(&self, id: &str, timeout: Duration) -> anyhow::Result<Cutover> {
        let deadline = Instant::now() + timeout;
        loop {
            let current = match self.env.api()?.cutover(id).await {
                Ok(c) if c.operation.is_none() => return Ok(c),
                Ok(c) => format!(
                    "stage {}, working on {:?}",
                    c.stage,
                    c.operation.map(|o| o.working_on)
                ),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() > deadline {
                bail!(
                    "cutover {id} did not settle within {}: {current}",
                    humantime::format_duration(timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Ends the run: workload stopped (drained unless a step failed), cutover reports read,
    /// strait stopped, `strait verify` when asked for.
    async fn finish(&mut self, failed: bool) -> Facts {
        let mut facts = Facts::default();
        if let Err(e) = self.stop_workload(!failed).await {
            tracing::warn!(error = %format!("{e:#}"), "stopping the workload");
        }
        facts.producer_pause = self.longest_pause;
        if self.env.strait_running() {
            for id in &self.cutovers {
                let path = format!("/v1/cutovers/{id}/report");
                if let Ok(api) = self.env.api()
                    && let Ok(a) = api.get(&path).await
                {
                    facts.cutovers.push(CutoverRecord {
                        id: id.clone(),
                        stage: a.body["stage"].as_str().unwrap_or("?").to_owned(),
                        result: a.body["result"].as_str().unwrap_or("?").to_owned(),
                        write_pause_ms: a.body["write_pause_ms"].as_u64(),
                    });
                }
            }
        }
        self.env.shutdown().await;
        if self
            .book
            .asserts
            .iter()
            .any(|a| matches!(a, Assertion::Verify))
            && self.env.strait_starts > 0
        {
            facts.verify = Some(match self.env.verify().await {
                Ok(v) => v,
                Err(e) => (false, format!("{e:#}")),
            });
        }
        facts
    }
}

fn expect_stage(c: &Cutover, want: Stage) -> anyhow::Result<String> {
    if c.stage == want {
        return Ok(format!("stage {want} (version {})", c.version));
    }
    let why = c
        .events
        .last()
        .map(|e| format!(" (last event: {}: {})", e.kind, e.message))
        .unwrap_or_default();
    bail!("cutover {} settled at {}, not {want}{why}", c.id, c.stage)
}

/// Whether `/v1/status` shows every partition caught up and every group's offsets
/// translated; `Err` says what is still missing.
fn mirrored(
    status: &Value,
    topics: &[String],
    groups: &[String],
    want: usize,
) -> Result<String, String> {
    let parts: Vec<&Value> = status["partitions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| topics.iter().any(|t| p["topic"] == t.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if parts.len() < want {
        return Err(format!(
            "{} of {want} partitions known to the mirror",
            parts.len()
        ));
    }
    let behind: Vec<String> = parts
        .iter()
        .filter(|p| p["state"] != "caught_up" || p["lag_records"].as_i64() != Some(0))
        .map(|p| {
            format!(
                "{}-{} {} lag {}",
                p["topic"].as_str().unwrap_or("?"),
                p["partition"],
                p["state"],
                p["lag_records"]
            )
        })
        .collect();
    if !behind.is_empty() {
        return Err(behind.join(", "));
    }
    let gs: Vec<&Value> = status["groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|g| groups.iter().any(|n| g["group"] == n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let waiting: Vec<String> = gs
        .iter()
        .filter(|g| {
            g["state"] == "error"
                || g["waiting_for_mirror"]
                    .as_array()
                    .is_some_and(|w| !w.is_empty())
                || (g["last_source_commit"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty())
                    && g["last_target_commit"]
                        .as_object()
                        .is_none_or(|m| m.is_empty()))
        })
        .map(|g| {
            format!(
                "group {} {}",
                g["group"].as_str().unwrap_or("?"),
                g["state"]
            )
        })
        .collect();
    if !waiting.is_empty() {
        return Err(waiting.join(", "));
    }
    let records: u64 = parts
        .iter()
        .filter_map(|p| p["records_mirrored"].as_u64())
        .sum();
    Ok(format!(
        "{} partitions caught up ({records} records mirrored), {} groups synced",
        parts.len(),
        gs.len()
    ))
}
