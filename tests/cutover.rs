//! Staged cutovers on real brokers, driven through the cutover service with rdkafka producers
//! and consumers running: a full cutover and failback with strait restarted between stages,
//! rollback from every stage before promotion, a fence deadline that expires, the `acl`
//! fence on a SASL Kafka with the StandardAuthorizer, and the failback copy of many
//! partitions at once.

mod support;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use strait_control_api::cutover::cluster::compare_tails;
use strait_control_api::cutover::{AdvanceRequest, FenceMode, Outcome, RollbackRequest, Stage};
use strait_linker::client::KafkaClient;
use strait_linker::client::data::Isolation;
use strait_linker::mirror::failback::{CopyIo, copy_back};
use strait_linker::offset::{TargetOffset, TopicPartition};
use strait_linker::state::StateStore;
use strait_testkit::{Broker, kafka_source, kafka_target, unique};
use support::cutover::*;
use support::*;
use tokio_util::sync::CancellationToken;

/// The whole move and back: producers and a consumer group run on the source, the wave is
/// fenced (manual), drained and promoted with strait restarted after every stage; producers
/// and the consumer move to the target and run there; then a failback returns everything to
/// the source, where the consumer resumes. Every record is consumed exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn cutover_and_failback_move_consumers_exactly_across_restarts_kafka() {
    cutover_and_failback(kafka_target()).await;
}

/// The same on tansu, the shared-storage target (every record is its own batch here: tansu
/// cannot fetch from inside a batch, see tansu-eval.md).
#[tokio::test(flavor = "multi_thread")]
async fn cutover_and_failback_move_consumers_exactly_across_restarts_tansu() {
    cutover_and_failback(strait_testkit::tansu_target()).await;
}

async fn cutover_and_failback(target: &Broker) {
    let source = kafka_source();
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("cut");
    let group = unique("cut-group");
    // Room for the 1.5 MB batch written to the target before the failback.
    create_topic(&sc, &topic, 2, &[("max.message.bytes", "4000000")]).await;
    let dir = tempfile::tempdir().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));

    // Phase 1: everything on the source, starting with batches of many records (a target
    // whose ListOffsets misreports batch ends, like tansu, must still drain exactly).
    let batching = producer(source, &[("linger.ms", "100")]);
    for part in 0..2 {
        let recs: Vec<Rec> = (0..25)
            .map(|i| Rec {
                key: None,
                value: Some(format!("b-{part}-{i}").into_bytes()),
                headers: Vec::new(),
                timestamp: recent_base() + i,
            })
            .collect();
        send_all(&batching, &topic, part, &recs).await;
        let mut a = acked.lock().unwrap();
        a.extend((0..25).map(|i| format!("b-{part}-{i}")));
    }
    let load = Load::start(source, &topic, Arc::clone(&next), Arc::clone(&acked));
    let reader = Reader::start(source, &topic, &group, Arc::clone(&seen));
    let mut s = Strait::start(&sc, &tc, dir.path(), &topic, &group).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = create(&s, create_req(&topic, &group, spec(FenceMode::Manual))).await;
    // A dry run changes nothing.
    let dry = s
        .svc
        .advance(
            &c.id,
            AdvanceRequest {
                to: Stage::Promoted,
                dry_run: true,
                version: None,
            },
            None,
            "test",
        )
        .await
        .unwrap();
    let Outcome::DryRun(d) = dry else {
        panic!("{dry:?}")
    };
    assert!(d.actions.len() >= 5 && d.blockers.is_empty(), "{d:#?}");
    assert_eq!(s.svc.get(&c.id).await.unwrap(), c);

    // The operator stops the producers; strait verifies quiescence.
    load.stop().await;
    advance(&s, &c.id, Stage::Fenced).await;
    settle(&s, &c.id, Stage::Fenced, 30).await;
    read_all(&seen, &acked, "source consumer").await;
    reader.stop();
    s.stop().await;
    s = Strait::start(&sc, &tc, dir.path(), &topic, &group).await;

    advance(&s, &c.id, Stage::Drained).await;
    let drained = settle(&s, &c.id, Stage::Drained, 60).await;
    assert!(drained.checks.iter().all(|k| k.ok), "{:#?}", drained.checks);
    let tails = drained
        .checks
        .iter()
        .find(|k| k.name == "tail_batches_equal");
    assert!(
        tails.is_some_and(|k| k
            .detail
            .starts_with("2 partitions: last mirrored batch identical")),
        "{:#?}",
        drained.checks
    );
    s.stop().await;
    s = Strait::start(&sc, &tc, dir.path(), &topic, &group).await;

    advance(&s, &c.id, Stage::Promoted).await;
    let promoted = settle(&s, &c.id, Stage::Promoted, 60).await;
    assert_eq!(promoted.cutover_point.len(), 2);
    for p in &promoted.cutover_point {
        assert_eq!(
            p.source_end, p.target_end,
            "Kafka target keeps offsets: {p:?}"
        );
    }
    assert!(promoted.promoted_ms.unwrap() >= promoted.fenced_ms.unwrap());
    s.stop().await;
    s = Strait::start(&sc, &tc, dir.path(), &topic, &group).await;

    // Phase 2: producers and the consumer on the target. The consumer stops before the
    // producer, leaving records it has not read. First on each partition, a batch larger than
    // a failback copy's first fetch (1 MiB): the copies start there together, their fetches
    // share a request, and a broker returns only part of an oversized batch past the first
    // partition of a response. The failback must still copy them whole.
    let p = producer(target, &[("message.max.bytes", "4000000")]);
    for part in 0..2 {
        let big = format!("big-{part}-{}", "x".repeat(1_500_000));
        let rec = Rec {
            key: None,
            value: Some(big.clone().into_bytes()),
            headers: Vec::new(),
            timestamp: recent_base(),
        };
        send_all(&p, &topic, part, &[rec]).await;
        acked.lock().unwrap().push(big);
    }
    let load = Load::start(target, &topic, Arc::clone(&next), Arc::clone(&acked));
    let reader = Reader::start(target, &topic, &group, Arc::clone(&seen));
    tokio::time::sleep(Duration::from_secs(2)).await;
    reader.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.stop().await;
    let unread = acked.lock().unwrap().len() - seen.lock().unwrap().len();
    assert!(
        unread > 0,
        "the consumer must stop with records left to read"
    );

    // Failback, with a restart in the middle of it.
    rollback(&s, &c.id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.stop().await;
    s = Strait::start(&sc, &tc, dir.path(), &topic, &group).await;
    let back = settle(&s, &c.id, Stage::RolledBack, 90).await;
    let fb = back.failback.clone().unwrap();
    assert!(
        fb.records_copied > 0 || back.events.iter().any(|e| e.kind == "failback_copied"),
        "{back:#?}"
    );
    assert!(fb.group_offsets.contains_key(&group), "{fb:?}");

    // Phase 3: back on the source; the consumer resumes exactly, new writes flow again and
    // are mirrored to the target once more.
    let load = Load::start(source, &topic, Arc::clone(&next), Arc::clone(&acked));
    let reader = Reader::start(source, &topic, &group, Arc::clone(&seen));
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await;
    read_all(&seen, &acked, "source consumer after failback").await;
    reader.stop();
    assert_exactly_once(&seen.lock().unwrap(), &acked.lock().unwrap());
    wait_no_lag(&s.mirror, &topic, 2).await;
    s.stop().await;
}

/// Rollback from `mirroring`, `fenced` and `drained` while a producer and a consumer group
/// work on the source: the cutover ends rolled back, mirroring continues, and the consumer
/// reads every record exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_before_promotion_from_each_stage() {
    let (source, target) = (kafka_source(), kafka_target());
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("rb");
    let group = unique("rb-group");
    create_topic(&sc, &topic, 2, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Strait::start(&sc, &tc, dir.path(), &topic, &group).await;
    // A producer and a consumer group keep working on the source throughout.
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = Reader::start(source, &topic, &group, Arc::clone(&seen));
    for stage in [Stage::Mirroring, Stage::Fenced, Stage::Drained] {
        let load = Load::start(source, &topic, Arc::clone(&next), Arc::clone(&acked));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let c = create(&s, create_req(&topic, &group, spec(FenceMode::Manual))).await;
        // Manual fence: the operator stops the producer before fencing.
        load.stop().await;
        if stage != Stage::Mirroring {
            advance(&s, &c.id, stage).await;
            settle(&s, &c.id, stage, 60).await;
        }
        rollback(&s, &c.id).await;
        let done = settle(&s, &c.id, Stage::RolledBack, 30).await;
        assert!(
            done.events.iter().any(|e| e.kind == "rolled_back"),
            "{:#?}",
            done.events
        );
        // Repeating the rollback changes nothing.
        let again = s
            .svc
            .rollback(&c.id, RollbackRequest::default(), None, "test")
            .await
            .unwrap();
        assert!(
            matches!(again, Outcome::Unchanged(ref x) if x.version == done.version),
            "{again:?}"
        );
        // Producers resume on the source and mirroring continues.
        let load = Load::start(source, &topic, Arc::clone(&next), Arc::clone(&acked));
        tokio::time::sleep(Duration::from_millis(500)).await;
        load.stop().await;
        wait_no_lag(&s.mirror, &topic, 2).await;
    }
    read_all(&seen, &acked, "source consumer").await;
    reader.stop();
    assert_exactly_once(&seen.lock().unwrap(), &acked.lock().unwrap());
    s.stop().await;
}

/// A manual fence whose producers never stop expires: the wave is back in `mirroring`, with a
/// `deadline_expired` event naming the partitions still written.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_fence_deadline_rolls_back_to_mirroring() {
    let (source, target) = (kafka_source(), kafka_target());
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("dl");
    let group = unique("dl-group");
    create_topic(&sc, &topic, 2, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Strait::start(&sc, &tc, dir.path(), &topic, &group).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let load = Load::start(
        source,
        &topic,
        Arc::new(AtomicU64::new(0)),
        Arc::clone(&acked),
    );
    let mut req = create_req(&topic, &group, spec(FenceMode::Manual));
    req.deadlines.fence_ms = 4_000;
    let c = create(&s, req).await;
    advance(&s, &c.id, Stage::Promoted).await;
    let back = settle(&s, &c.id, Stage::Mirroring, 30).await;
    let expired = back
        .events
        .iter()
        .find(|e| e.kind == "deadline_expired")
        .unwrap_or_else(|| panic!("{:#?}", back.events));
    assert!(expired.message.contains("did not go quiet"), "{expired:?}");
    load.stop().await;
    // The wave can be advanced again once the producers are stopped.
    advance(&s, &c.id, Stage::Fenced).await;
    settle(&s, &c.id, Stage::Fenced, 30).await;
    rollback(&s, &c.id).await;
    settle(&s, &c.id, Stage::RolledBack, 30).await;
    s.stop().await;
}

/// The `acl` fence on a SASL Kafka with the StandardAuthorizer: a producer that did not stop
/// gets an authorization error once the wave is fenced, and none after the rollback.
#[tokio::test(flavor = "multi_thread")]
async fn acl_fence_stops_a_running_producer_and_rollback_lifts_it() {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::FutureProducer;
    use strait_linker::client::admin::{Acl, AclOperation, AclPattern, AclPermission, AclResource};
    use strait_linker::client::{ClientConfig, SaslConfig, SaslMechanism, Secret};
    use strait_testkit::{KafkaOptions, start_kafka};
    const ADMIN_PW: &str = "admin-pw-fence-1";
    const APP_PW: &str = "app-pw-fence-2";
    let broker = start_kafka(
        KafkaOptions::new()
            .user("admin", ADMIN_PW)
            .user("app", APP_PW)
            .authorizer("admin"),
    );
    let mut cfg = ClientConfig::new(&broker.bootstrap());
    cfg.security.sasl = Some(SaslConfig {
        mechanism: SaslMechanism::ScramSha512,
        username: "admin".into(),
        password: Secret::new(ADMIN_PW),
    });
    let sc = KafkaClient::connect(cfg).await.unwrap();
    let tc = client(kafka_target()).await;
    let topic = unique("acl-fence");
    let group = unique("acl-group");
    create_topic(&sc, &topic, 2, &[]).await;
    sc.create_acls(&[Acl {
        resource: AclResource::Topic,
        name: topic.clone(),
        pattern: AclPattern::Literal,
        principal: "User:app".into(),
        host: "*".into(),
        operation: AclOperation::All,
        permission: AclPermission::Allow,
    }])
    .await
    .unwrap();
    let mut pc = rdkafka::ClientConfig::new();
    for (k, v) in broker.client_config(Some((strait_testkit::SaslMechanism::Plain, "app", APP_PW)))
    {
        pc.set(k, v);
    }
    pc.set("message.timeout.ms", "5000").set("linger.ms", "0");
    let app: FutureProducer = pc.create().unwrap();
    let send = |n: usize| {
        let (app, topic) = (app.clone(), topic.clone());
        async move {
            let value = format!("r-{n}");
            let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
                .partition(0)
                .payload(value.as_bytes());
            app.send(rec, Duration::from_secs(10))
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }
    };
    // Writes succeed until strait fences (ACL propagation may take a moment).
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = send(0).await {
        assert!(
            Instant::now() < deadline,
            "the app cannot write before the fence: {e}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Strait::start(&sc, &tc, dir.path(), &topic, &group).await;
    wait_no_lag(&s.mirror, &topic, 2).await;
    let c = create(&s, create_req(&topic, &group, spec(FenceMode::Acl))).await;
    advance(&s, &c.id, Stage::Fenced).await;
    let fenced = settle(&s, &c.id, Stage::Fenced, 30).await;
    assert!(
        fenced.events.iter().any(|e| e.kind == "fence_applied"),
        "{:#?}",
        fenced.events
    );
    let denied = send(1).await.unwrap_err();
    assert!(
        matches!(
            denied,
            KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)
        ),
        "expected TOPIC_AUTHORIZATION_FAILED after the fence, got {denied:?}"
    );
    // A super user is not stopped by DENY ACLs: its write is a straggler, and reported.
    let mut ac = rdkafka::ClientConfig::new();
    for (k, v) in broker.client_config(Some((
        strait_testkit::SaslMechanism::Plain,
        "admin",
        ADMIN_PW,
    ))) {
        ac.set(k, v);
    }
    let admin: FutureProducer = ac.create().unwrap();
    let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).partition(1).payload(b"late");
    admin
        .send(rec, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let late = loop {
        let c = s.svc.get(&c.id).await.unwrap();
        if let Some(st) = c.stragglers.first() {
            break st.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no straggler reported: {:#?}",
            c.events
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!((late.topic.as_str(), late.partition), (topic.as_str(), 1));
    assert_eq!(late.seen_end, late.fenced_end + 1, "{late:?}");
    rollback(&s, &c.id).await;
    settle(&s, &c.id, Stage::RolledBack, 30).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = send(2).await {
        assert!(
            Instant::now() < deadline,
            "the app still cannot write after the rollback: {e}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Only strait's ACLs were removed: the app's ALLOW is still there.
    let left = sc
        .describe_acls(&Acl {
            resource: AclResource::Topic,
            name: topic.clone(),
            pattern: AclPattern::Any,
            principal: String::new(),
            host: String::new(),
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    s.stop().await;
}

/// The drain's tail comparison reads a wave's tails together and still compares every
/// partition: a small batch, a batch larger than the batched read asks per partition (1 MiB),
/// and a partition with nothing written. A target whose tail was replaced by other records at
/// the same offsets (the topic recreated by someone) is caught.
#[tokio::test(flavor = "multi_thread")]
async fn tail_comparison_reads_the_wave_together_and_catches_a_replaced_tail() {
    let (source, target) = (kafka_source(), kafka_target());
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("tails");
    let big_topic = [("max.message.bytes", "4000000")];
    create_topic(&sc, &topic, 3, &big_topic).await;
    let p = producer(
        source,
        &[("linger.ms", "50"), ("message.max.bytes", "4000000")],
    );
    send_all(&p, &topic, 0, &sample_records(10, "small")).await;
    let big = Rec {
        key: None,
        value: Some(vec![b'x'; 1_500_000]),
        headers: Vec::new(),
        timestamp: recent_base(),
    };
    send_all(&p, &topic, 1, &[big]).await;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(dir.path()).unwrap());
    let (handle, cancel, task) = spawn_mirror(&sc, &tc, &store, &topic, |s| {
        s.topic_refresh = Duration::from_millis(500);
    });
    wait_no_lag(&handle, &topic, 3).await;
    cancel.cancel();
    task.await.unwrap();

    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
    let r = compare_tails(&sc, &tc, &store, &tps).await;
    assert_eq!(r.len(), 3);
    for (p, r) in r.iter().take(2).enumerate() {
        let detail = r.as_ref().unwrap_or_else(|e| panic!("partition {p}: {e}"));
        assert!(detail.contains("equals target batch at 0"), "{detail}");
    }
    assert!(
        r[2].is_ok(),
        "nothing to compare on partition 2: {:?}",
        r[2]
    );

    // A batch damaged on the way from the source (a flipped byte, CRC-checked) is read again,
    // not reported as a difference: both damaged reads hit tails, and every tail compares.
    let proxy = strait_testkit::FaultProxy::start(&source.bootstrap());
    let via = KafkaClient::connect(strait_linker::client::ClientConfig::new(&proxy.bootstrap()))
        .await
        .unwrap();
    proxy.corrupt_next_fetches(2);
    let r = compare_tails(&via, &tc, &store, &tps).await;
    assert_eq!(
        proxy.stats().corrupted,
        2,
        "both armed corruptions hit a read"
    );
    for (p, r) in r.iter().take(2).enumerate() {
        let detail = r
            .as_ref()
            .unwrap_or_else(|e| panic!("damaged read, partition {p}: {e}"));
        assert!(detail.contains("equals target batch at 0"), "{detail}");
    }

    // Someone recreates the target topic and writes 10 other records to partition 0: same
    // offsets, other content.
    tc.delete_topics(std::slice::from_ref(&topic), Duration::from_secs(30))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let made = tc
            .create_topics(
                &[strait_linker::client::admin::NewTopic {
                    name: topic.clone(),
                    partitions: 3,
                    replication_factor: 1,
                    configs: Default::default(),
                }],
                Duration::from_secs(30),
                false,
            )
            .await
            .unwrap();
        if made[&topic].is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "not recreated: {made:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tc.invalidate_topic(&topic);
    let other = producer(target, &[("linger.ms", "50")]);
    send_all(&other, &topic, 0, &sample_records(10, "other")).await;
    let r = compare_tails(&sc, &tc, &store, &tps).await;
    let e = r[0].as_ref().expect_err("a replaced tail differs");
    assert!(e.contains("differs from target batch at 0"), "{e}");
    let e = r[1]
        .as_ref()
        .expect_err("the big batch is gone from the target");
    assert!(e.contains("no batch at target offset 0"), "{e}");
}

/// The mirror's data path has connections of its own: a control request over the same
/// client (a cutover's end read, a group sync, discovery) does not queue behind the mirror's
/// long-poll fetch, which Kafka holds for `fetch_max_wait` on an idle source and answers in
/// order with the requests behind it.
#[tokio::test(flavor = "multi_thread")]
async fn control_requests_do_not_wait_behind_the_mirrors_long_poll() {
    let (source, target) = (kafka_source(), kafka_target());
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("lanes");
    create_topic(&sc, &topic, 1, &[]).await;
    send_all(&producer(source, &[]), &topic, 0, &sample_records(3, "l")).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(dir.path()).unwrap());
    let (handle, cancel, task) = spawn_mirror(&sc, &tc, &store, &topic, |s| {
        s.topic_refresh = Duration::from_secs(30);
        s.fetch_max_wait = Duration::from_secs(3);
    });
    wait_no_lag(&handle, &topic, 1).await;
    // Caught up and idle: the mirror's fetch now waits 3 s at a time on the source.
    let tps = [TopicPartition::new(&topic, 0)];
    for _ in 0..5 {
        let asked = Instant::now();
        let ends = strait_control_api::cutover::cluster::ends(
            &sc,
            &tps,
            strait_linker::client::data::Isolation::ReadUncommitted,
        )
        .await
        .unwrap();
        assert_eq!(ends[&tps[0]], 3);
        assert!(
            asked.elapsed() < Duration::from_millis(1_500),
            "an end read waited {:?} behind the mirror's fetch",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    cancel.cancel();
    task.await.unwrap();
}

/// The failback copy itself, on many partitions at once: every partition's copies share their
/// requests ([`CopyIo`]), and each starts at a batch larger than a copy's first fetch (1 MiB),
/// which a broker returns whole only for the first partition of a response. Everything
/// written to the target after the mirror stopped reaches the source exactly once, in order,
/// byte for byte; the forward map ends at the target's end; a second copy copies nothing.
#[tokio::test(flavor = "multi_thread")]
async fn failback_copies_many_partitions_together_with_oversized_batches() {
    const PARTITIONS: i32 = 12;
    let (source, target) = (kafka_source(), kafka_target());
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("copyback");
    create_topic(&sc, &topic, PARTITIONS, &[("max.message.bytes", "4000000")]).await;
    let sp = producer(source, &[]);
    for p in 0..PARTITIONS {
        send_all(&sp, &topic, p, &sample_records(5, &format!("src-{p}"))).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(dir.path()).unwrap());
    let (handle, cancel, task) = spawn_mirror(&sc, &tc, &store, &topic, |s| {
        s.topic_refresh = Duration::from_millis(500);
    });
    wait_no_lag(&handle, &topic, PARTITIONS).await;
    cancel.cancel();
    task.await.unwrap();

    // What the applications wrote to the target after the cutover: a big batch first.
    let tp_ = producer(target, &[("message.max.bytes", "4000000")]);
    for p in 0..PARTITIONS {
        let big = Rec {
            key: Some(format!("big-{p}").into_bytes()),
            value: Some(vec![b'a' + p as u8; 1_500_000]),
            headers: Vec::new(),
            timestamp: recent_base(),
        };
        send_all(&tp_, &topic, p, &[big]).await;
        send_all(&tp_, &topic, p, &sample_records(3, &format!("tgt-{p}"))).await;
    }

    let io = Arc::new(CopyIo::new(tc.clone(), sc.clone()));
    let never = CancellationToken::new();
    let mut ends = Vec::new();
    let mut copies = tokio::task::JoinSet::new();
    for p in 0..PARTITIONS {
        let end = fetch_all(&tc, &topic, p, Isolation::ReadCommitted)
            .await
            .end;
        ends.push(end);
        let (io, store, never) = (Arc::clone(&io), Arc::clone(&store), never.clone());
        let tp = TopicPartition::new(&topic, p);
        copies.spawn(async move {
            let r = copy_back(&io, &store, &tp, TargetOffset(end), &never).await;
            (p, r)
        });
    }
    while let Some(joined) = copies.join_next().await {
        let (p, r) = joined.unwrap();
        let r = r.unwrap_or_else(|e| panic!("copy of partition {p}: {e}"));
        assert_eq!(r.records, 4, "partition {p}: {r:?}");
        assert_eq!(
            (r.next_source, r.next_target),
            (ends[p as usize], ends[p as usize])
        );
    }

    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(&topic, p);
        let on_target = data_records(
            &fetch_all(&tc, &topic, p, Isolation::ReadCommitted).await,
            true,
        );
        let on_source = data_records(
            &fetch_all(&sc, &topic, p, Isolation::ReadCommitted).await,
            true,
        );
        assert_eq!(
            on_source.len(),
            9,
            "partition {p}: 5 mirrored + 4 copied back"
        );
        assert_same(
            &format!("partition {p} on the source after the failback"),
            &recs(&on_source),
            &recs(&on_target),
        );
        let cp = store.checkpoint(&tp).unwrap().expect("checkpoint");
        assert_eq!(cp.next_target.0, ends[p as usize], "partition {p}");
        // Idempotent: nothing left to copy.
        let again = copy_back(&io, &store, &tp, TargetOffset(ends[p as usize]), &never)
            .await
            .unwrap();
        assert_eq!(
            again.batches + again.reconciled,
            0,
            "partition {p}: {again:?}"
        );
    }
}
