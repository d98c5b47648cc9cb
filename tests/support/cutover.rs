//! An in-process strait for the cutover tests (tests/cutover.rs): mirror, group sync and the
//! cutover service over one state directory, and the calls a playbook makes on the service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strait_control_api::cutover::{
    AdvanceRequest, CreateCutover, Cutover, CutoverContext, CutoverService, Deadlines, FenceMode,
    FenceSpec, Outcome, RollbackRequest, Stage,
};
use strait_linker::client::KafkaClient;
use strait_linker::mirror::{Mirror, MirrorHandle, MirrorSettings, PartitionState};
use strait_linker::offset::TopicPartition;
use strait_linker::state::StateStore;
use strait_offset_sync::GroupSync;
use strait_testkit::unique;
use tokio_util::sync::CancellationToken;

/// strait in-process: mirror, group sync and the cutover service over one state directory.
pub struct Strait {
    pub svc: CutoverService,
    pub mirror: MirrorHandle,
    pub cancel: CancellationToken,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// An in-process mirror of `topic` alone over `store`, running until the returned token is
/// cancelled; `tune` adjusts its settings.
pub fn spawn_mirror(
    sc: &KafkaClient,
    tc: &KafkaClient,
    store: &Arc<StateStore>,
    topic: &str,
    tune: impl FnOnce(&mut MirrorSettings),
) -> (MirrorHandle, CancellationToken, tokio::task::JoinHandle<()>) {
    let t = topic.to_string();
    let mut settings = MirrorSettings::new(Arc::new(move |n: &str| n == t));
    tune(&mut settings);
    let mirror = Mirror::new(sc.clone(), tc.clone(), Arc::clone(store), settings);
    let handle = mirror.handle();
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let c = cancel.clone();
        async move { mirror.run(c).await.unwrap() }
    });
    (handle, cancel, task)
}

impl Strait {
    pub async fn start(
        sc: &KafkaClient,
        tc: &KafkaClient,
        dir: &std::path::Path,
        topic: &str,
        group: &str,
    ) -> Self {
        let store = Arc::new(StateStore::open(dir).unwrap());
        let (handle, cancel, mirror_task) = spawn_mirror(sc, tc, &store, topic, |s| {
            s.topic_refresh = Duration::from_secs(1);
        });
        let g = group.to_string();
        let groups = GroupSync::new(
            sc.clone(),
            tc.clone(),
            handle.clone(),
            &store,
            Arc::new(move |n: &str| n == g),
            Duration::from_millis(300),
        )
        .unwrap();
        let mut tasks = vec![mirror_task];
        tasks.push(tokio::spawn({
            let (c, g) = (cancel.clone(), groups.clone());
            async move { g.run(c).await }
        }));
        let ctx = CutoverContext {
            source: sc.clone(),
            target: tc.clone(),
            mirror: handle.clone(),
            groups,
            store,
        };
        let svc = CutoverService::start(ctx, cancel.clone()).unwrap();
        Self {
            svc,
            mirror: handle,
            cancel,
            tasks,
        }
    }

    /// Stops everything and waits (the state directory is released).
    pub async fn stop(self) {
        self.cancel.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
        drop(self.svc);
        // Driver tasks hold the store until they notice the cancellation.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
}

pub fn spec(mode: FenceMode) -> FenceSpec {
    FenceSpec {
        mode,
        failback_mode: Some(FenceMode::Manual),
        principals: vec!["User:*".into()],
        quiet_period_ms: 1_000,
    }
}

pub fn create_req(topic: &str, group: &str, fence: FenceSpec) -> CreateCutover {
    CreateCutover {
        name: unique("wave"),
        topics: vec![topic.to_string()],
        groups: vec![group.to_string()],
        fence,
        deadlines: Deadlines::default(),
        max_lag_records: 1_000_000,
        dry_run: false,
    }
}

pub async fn create(s: &Strait, req: CreateCutover) -> Cutover {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match s.svc.create(req.clone(), "test").await {
            Ok(Outcome::Accepted(c)) => return c,
            Err(e) if Instant::now() < deadline => {
                // The mirror may not have discovered the topic yet.
                eprintln!("create: {e:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => panic!("create: {other:?}"),
        }
    }
}

pub async fn advance(s: &Strait, id: &str, to: Stage) {
    let req = AdvanceRequest {
        to,
        dry_run: false,
        version: None,
    };
    match s.svc.advance(id, req, None, "test").await {
        Ok(Outcome::Accepted(_) | Outcome::Unchanged(_)) => {}
        other => panic!("advance to {to}: {other:?}"),
    }
}

pub async fn rollback(s: &Strait, id: &str) {
    match s
        .svc
        .rollback(id, RollbackRequest::default(), None, "test")
        .await
    {
        Ok(Outcome::Accepted(_) | Outcome::Unchanged(_)) => {}
        other => panic!("rollback: {other:?}"),
    }
}

/// Waits until no operation is in progress and returns the cutover; panics with the
/// timeline if it does not end at `stage`.
pub async fn settle(s: &Strait, id: &str, stage: Stage, secs: u64) -> Cutover {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = s.svc.get(id).await.unwrap();
        if c.operation.is_none() {
            assert_eq!(c.stage, stage, "timeline: {:#?}", c.events);
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "still {:?} after {secs}s; timeline: {:#?}",
            c.operation,
            c.events
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until partitions `0..partitions` of `topic` are caught up with no lag left (against
/// the source ends the mirror last saw; `support::mirror::wait_caught_up` waits for given
/// ends instead).
pub async fn wait_no_lag(m: &MirrorHandle, topic: &str, partitions: i32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = m.status().snapshot();
        let done = (0..partitions).all(|p| {
            s.partitions
                .get(&TopicPartition::new(topic, p))
                .is_some_and(|v| v.state == PartitionState::CaughtUp && v.lag_records == 0)
        });
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "mirror not caught up: {s:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
