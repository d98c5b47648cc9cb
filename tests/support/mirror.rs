//! An in-process mirror for the integration tests (tests/mirror.rs): started with its own
//! state directory, watched through its status, checked with `verify`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strait_linker::client::KafkaClient;
use strait_linker::client::data::{Isolation, OffsetSpec};
use strait_linker::mirror::{
    Mirror, MirrorHandle, MirrorSettings, MirrorStatus, PartitionState, StatusHandle, verify,
};
use strait_linker::state::StateStore;
use strait_testkit::Broker;
use tokio_util::sync::CancellationToken;

use super::client;

/// A mirror of exactly `topics`, running in this process with its own state directory.
pub struct Running {
    pub status: StatusHandle,
    pub handle: MirrorHandle,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    store: Arc<StateStore>,
    /// Removed when the test is done with the store ([`Running::stop`] hands it over).
    dir: tempfile::TempDir,
}

pub async fn start_mirror(
    source: &Broker,
    target: &Broker,
    topics: &[&str],
    tune: impl FnOnce(&mut MirrorSettings),
) -> Running {
    start_mirror_between(client(source).await, client(target).await, topics, tune).await
}

/// [`start_mirror`] with given clients (for example one that reaches the target through a
/// proxy).
pub async fn start_mirror_between(
    source: KafkaClient,
    target: KafkaClient,
    topics: &[&str],
    tune: impl FnOnce(&mut MirrorSettings),
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(dir.path()).unwrap());
    restart_mirror_between(source, target, (store, dir), topics, tune).await
}

/// [`start_mirror_between`] on the state a [`Running::stop`] handed back: a restart.
pub async fn restart_mirror_between(
    source: KafkaClient,
    target: KafkaClient,
    (store, dir): (Arc<StateStore>, tempfile::TempDir),
    topics: &[&str],
    tune: impl FnOnce(&mut MirrorSettings),
) -> Running {
    let wanted: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    let mut settings = MirrorSettings::new(Arc::new(move |t: &str| wanted.iter().any(|w| w == t)));
    settings.topic_refresh = Duration::from_millis(500);
    tune(&mut settings);
    let mirror = Mirror::new(source, target, Arc::clone(&store), settings);
    let status = mirror.status();
    let handle = mirror.handle();
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let task = tokio::spawn(async move { mirror.run(token).await.expect("mirror runs") });
    Running {
        status,
        handle,
        cancel,
        task,
        store,
        dir,
    }
}

impl Running {
    pub async fn stop(self) -> (Arc<StateStore>, tempfile::TempDir) {
        self.cancel.cancel();
        self.task.await.unwrap();
        (self.store, self.dir)
    }
}

/// Waits until every partition of `topic` (with `partitions` partitions) has mirrored up to
/// the source end `ends[p]`.
pub async fn wait_caught_up(status: &StatusHandle, topic: &str, ends: &[i64]) -> MirrorStatus {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = status.snapshot();
        let done = ends.iter().enumerate().all(|(p, end)| {
            s.partitions.iter().any(|(tp, v)| {
                tp.topic == topic
                    && tp.partition == p as i32
                    && v.next_source >= *end
                    && v.state == PartitionState::CaughtUp
            })
        });
        if done {
            return s;
        }
        for (tp, v) in &s.partitions {
            if let PartitionState::Error { message } = &v.state {
                panic!("{tp} failed: {message}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "mirror of {topic} did not catch up: {:#?} {:?}",
            s.partitions,
            s.topic_problems
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn source_end(c: &KafkaClient, topic: &str, partition: i32) -> i64 {
    let key = (topic.to_owned(), partition);
    c.list_offsets(
        std::slice::from_ref(&key),
        OffsetSpec::Latest,
        Isolation::ReadCommitted,
    )
    .await
    .remove(&key)
    .unwrap()
    .unwrap()
    .offset
}

pub async fn assert_verified(source: &Broker, target: &Broker, store: &StateStore, topic: &str) {
    let report = verify::verify(&client(source).await, &client(target).await, store, |t| {
        t == topic
    })
    .await
    .unwrap();
    assert!(report.identical, "verify found differences: {report:#?}");
    assert!(
        report.partitions.iter().map(|p| p.matched).sum::<u64>() > 0,
        "verify compared records"
    );
}
