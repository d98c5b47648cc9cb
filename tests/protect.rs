//! Mirror topics are protected on a target that enforces ACLs (`[mirror] protect_principals`):
//! while strait mirrors a topic, an application allowed to write everywhere is refused on the
//! mirror topic (strait, a super user, keeps mirroring); once a cutover promotes the topic,
//! the application can write to it.

mod support;

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use strait_linker::client::admin::{Acl, AclOperation, AclPattern, AclPermission, AclResource};
use strait_linker::client::{ClientConfig, KafkaClient, SaslConfig, SaslMechanism, Secret};
use strait_testkit::{KafkaOptions, kafka_source, start_kafka, unique};
use support::*;

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
