//! Mirror topics are protected on a target that enforces ACLs (`[mirror] protect_principals`):
//! while strait mirrors a topic, an application allowed to write everywhere is refused on the
//! mirror topic (strait, a super user, keeps mirroring); once a cutover promotes the topic,
//! the application can write to it. A target that refuses the protection (no authorizer, or
//! no ACLs at all) gets one request per discovery, each topic its own problem, and the mirror
//! goes on.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use strait_linker::client::admin::{Acl, AclOperation, AclPattern, AclPermission, AclResource};
use strait_linker::client::{ClientConfig, KafkaClient, SaslConfig, SaslMechanism, Secret};
use strait_linker::mirror::{Mirror, MirrorSettings, PartitionState};
use strait_linker::state::StateStore;
use strait_testkit::{
    Broker, FaultProxy, KafkaOptions, kafka_source, kafka_target, start_kafka, tansu_target, unique,
};
use support::*;
use tokio_util::sync::CancellationToken;

const ADMIN_PW: &str = "admin-pw-protect-1";
const APP_PW: &str = "app-pw-protect-2";
const TOKEN: &str = "protect-test-token";

async fn write(app: &FutureProducer, topic: &str) -> Result<(), KafkaError> {
    let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(0).payload(b"app");
    app.send(rec, Duration::from_secs(10))
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

async fn post(base: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let r = api_request(
        base,
        "POST",
        path,
        Some(TOKEN),
        &[("content-type", "application/json")],
        Some(&body.to_string()),
    )
    .await;
    assert!(r.status < 300, "{path}: {} {}", r.status, r.text);
    r.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_topics_refuse_other_writers_until_promoted() {
    let target = start_kafka(
        KafkaOptions::new()
            .user("admin", ADMIN_PW)
            .user("app", APP_PW)
            .authorizer("admin"),
    );
    let mut cfg = ClientConfig::new(&target.bootstrap());
    cfg.security.sasl = Some(SaslConfig {
        mechanism: SaslMechanism::ScramSha512,
        username: "admin".into(),
        password: Secret::new(ADMIN_PW),
    });
    let admin = KafkaClient::connect(cfg).await.unwrap();
    // The application may do anything on every topic of the target...
    admin
        .create_acls(&[Acl {
            resource: AclResource::Topic,
            name: "*".into(),
            pattern: AclPattern::Literal,
            principal: "User:app".into(),
            host: "*".into(),
            operation: AclOperation::All,
            permission: AclPermission::Allow,
        }])
        .await
        .unwrap();
    let other = unique("app-own");
    create_topic(&admin, &other, 1, &[]).await;

    let topic = unique("protected");
    let source = client(kafka_source()).await;
    create_topic(&source, &topic, 1, &[]).await;
    let p = producer(kafka_source(), &[]);
    send_all(&p, &topic, 0, &sample_records(10, "p")).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strait.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nbootstrap_servers = \"{}\"\n\
             [target]\nbootstrap_servers = \"{}\"\n\
             [target.security.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"admin\"\n\
             password = \"{ADMIN_PW}\"\n\
             [mirror]\ntopics = [\"{topic}\"]\ntopic_refresh_interval = \"1s\"\n\
             protect_principals = [\"User:*\"]\n\
             [state]\ndir = \"{}\"\n[groups]\ninclude = []\n\
             [api]\nlisten = \"127.0.0.1:0\"\n[log]\nformat = \"json\"\nlevel = \"info\"\n",
            kafka_source().bootstrap(),
            target.bootstrap(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let strait = StraitRun::start(&config, &dir.path().join("strait.log"), TOKEN).await;

    // strait (a super user) mirrors all 10 records despite the DENY.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = api_request(&strait.base, "GET", "/v1/status", Some(TOKEN), &[], None).await;
        let st = s.json();
        let done = st["partitions"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["topic"] == topic.as_str() && p["records_mirrored"] == 10)
        });
        if done && st["topic_problems"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "not mirrored: {st}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let mut pc = rdkafka::ClientConfig::new();
    for (k, v) in target.client_config(Some((strait_testkit::SaslMechanism::Plain, "app", APP_PW)))
    {
        pc.set(k, v);
    }
    pc.set("message.timeout.ms", "8000").set("linger.ms", "0");
    let app: FutureProducer = pc.create().unwrap();
    write(&app, &other)
        .await
        .expect("the app may write elsewhere");
    match write(&app, &topic).await {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)) => {}
        other => panic!("a write to the mirror topic must be refused, got {other:?}"),
    }

    // Promotion lifts the protection: the target is the primary now.
    let c = post(
        &strait.base,
        "/v1/cutovers",
        json!({ "name": "protect", "topics": [topic],
                "fence": { "mode": "manual", "quiet_period_ms": 500 } }),
    )
    .await;
    let id = c["id"].as_str().unwrap().to_owned();
    post(
        &strait.base,
        &format!("/v1/cutovers/{id}/advance"),
        json!({ "to": "promoted" }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = api_request(
            &strait.base,
            "GET",
            &format!("/v1/cutovers/{id}"),
            Some(TOKEN),
            &[],
            None,
        )
        .await
        .json();
        if r["operation"].is_null() {
            assert_eq!(r["stage"], "promoted", "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "not promoted: {r}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match write(&app, &topic).await {
            Ok(()) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the app still cannot write after promotion: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    strait.kill();
}

/// CreateAcls' API key, as the proxy counts requests.
const CREATE_ACLS: i16 = 30;

/// `target` refuses the DENY WRITE protection: each of 20 topics must carry its own problem
/// (with the broker's reason, `expect`), every record must still be mirrored, and each
/// discovery must ask the target once for all topics (it used to ask again topic by topic, a
/// round trip each, at every discovery while the refusal lasted).
async fn refused_protection(target: &Broker, expect: &str) {
    let proxy = FaultProxy::start(&target.bootstrap());
    let source = client(kafka_source()).await;
    let topics: Vec<String> = (0..20)
        .map(|i| unique(&format!("unprotectable-{i}")))
        .collect();
    let p = producer(kafka_source(), &[]);
    for t in &topics {
        create_topic(&source, t, 1, &[]).await;
        send_all(&p, t, 0, &sample_records(3, t)).await;
    }
    let via = KafkaClient::connect(ClientConfig::new(&proxy.bootstrap()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(dir.path()).unwrap());
    let wanted = topics.clone();
    let mut settings = MirrorSettings::new(Arc::new(move |t: &str| wanted.iter().any(|w| w == t)));
    settings.topic_refresh = Duration::from_millis(500);
    settings.config_sync = Duration::from_secs(1);
    settings.protect_principals = vec!["User:*".into()];
    let mirror = Mirror::new(source, via, store, settings);
    let status = mirror.status();
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let task = tokio::spawn(async move { mirror.run(token).await.expect("mirror runs") });

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status.snapshot();
        let mirrored = topics.iter().all(|t| {
            s.partitions.iter().any(|(tp, v)| {
                &tp.topic == t && v.next_source >= 3 && v.state == PartitionState::CaughtUp
            })
        });
        let reported = topics.iter().all(|t| {
            s.topic_problems.iter().any(|p| {
                &p.topic == t && p.message.contains("cannot protect") && p.message.contains(expect)
            })
        });
        if mirrored && reported {
            assert_eq!(
                s.topic_problems.len(),
                topics.len(),
                "{:?}",
                s.topic_problems
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not mirrored with a problem per topic: {:?} {:?}",
            s.partitions,
            s.topic_problems
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Discoveries run every 500 ms and each asks again (the refusal may be lifted): about
    // five requests in 2.5 s, where asking per topic would be 20 or more per discovery.
    let before = proxy.requests(CREATE_ACLS);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let asked = proxy.requests(CREATE_ACLS) - before;
    assert!(
        (1..topics.len() as u64).contains(&asked),
        "{asked} CreateAcls requests in 2.5 s for {} topics",
        topics.len()
    );
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn protection_refused_by_kafka_without_an_authorizer_is_a_problem_per_topic() {
    // Kafka answers every binding with SECURITY_DISABLED (54).
    refused_protection(kafka_target(), "(54)").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn protection_refused_by_tansu_without_acls_is_a_problem_per_topic() {
    // tansu's CreateAcls is a no-op whose answer has a null results array (tansu-eval):
    // the whole request fails to decode.
    refused_protection(tansu_target(), "CreateAcls protocol error").await;
}
