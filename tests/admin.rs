//! Admin, group and security operations of strait's client against real brokers: offsets,
//! DeleteRecords, topics and configs, groups and commits, producer ids and producers, ACLs,
//! and SASL (PLAIN, SCRAM-SHA-256/512) over TLS. tansu gaps are asserted where they matter
//! to strait, so a test fails if tansu changes underneath us.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strait_linker::client::admin::{
    Acl, AclOperation, AclPattern, AclPermission, AclResource, AlterOp,
};
use strait_linker::client::data::{Isolation, OffsetSpec, ProduceItem};
use strait_linker::client::groups::CommittedOffset;
use strait_linker::client::{
    ClientConfig, Error, KafkaClient, SaslConfig, SaslMechanism, Secret, TlsConfig,
};
use strait_testkit::{KafkaOptions, kafka_source, start_kafka, tansu_target, unique};
use support::*;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn list_offsets_and_delete_records_on_kafka() {
    let broker = kafka_source();
    let c = client(broker).await;
    let topic = unique("offsets");
    create_topic(&c, &topic, 2, &[]).await;
    let sent = sample_records(10, "offsets");
    // One request in flight: a retried first batch cannot land after a later one, so the
    // timestamp lookup below finds the records in the order they were sent.
    let ordered = producer(broker, &[("max.in.flight.requests.per.connection", "1")]);
    send_all(&ordered, &topic, 1, &sent).await;
    let parts = [(topic.clone(), 0), (topic.clone(), 1)];
    let latest = c
        .list_offsets(&parts, OffsetSpec::Latest, Isolation::ReadCommitted)
        .await;
    assert_eq!(latest[&(topic.clone(), 0)].as_ref().unwrap().offset, 0);
    assert_eq!(latest[&(topic.clone(), 1)].as_ref().unwrap().offset, 10);
    // Timestamp lookup uses record CreateTime: record 4 has timestamp base + 4*13.
    let by_ts = c
        .list_offsets(
            &parts[1..],
            OffsetSpec::Timestamp(sent[4].timestamp - 1),
            Isolation::ReadCommitted,
        )
        .await;
    let hit = by_ts[&(topic.clone(), 1)].as_ref().unwrap();
    assert_eq!((hit.offset, hit.timestamp), (4, sent[4].timestamp));

    let low = c.delete_records(&[((topic.clone(), 1), 4)], T).await;
    assert_eq!(*low[&(topic.clone(), 1)].as_ref().unwrap(), 4);
    let earliest = c
        .list_offsets(&parts[1..], OffsetSpec::Earliest, Isolation::ReadCommitted)
        .await;
    assert_eq!(
        earliest[&(topic.clone(), 1)].as_ref().unwrap().offset,
        4,
        "log start raised"
    );
    // A fetch below the log start is OFFSET_OUT_OF_RANGE, reported with its context.
    let f = c
        .fetch(
            &[strait_linker::client::data::FetchPosition {
                topic: topic.clone(),
                partition: 1,
                offset: 0,
                max_bytes: 1 << 20,
            }],
            Default::default(),
        )
        .await;
    let err = f[0].error.as_ref().expect("out of range");
    assert_eq!(err.code(), Some(1));
    assert!(
        err.to_string()
            .contains(&format!("topic={topic} partition=1 offset=0")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_partitions_and_configs_on_kafka() {
    let c = client(kafka_source()).await;
    let topic = unique("admin");
    create_topic(
        &c,
        &topic,
        1,
        &[("retention.ms", "3600000"), ("cleanup.policy", "compact")],
    )
    .await;
    // Creating it again reports TOPIC_ALREADY_EXISTS for that topic.
    let again = c
        .create_topics(
            &[strait_linker::client::admin::NewTopic {
                name: topic.clone(),
                partitions: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
            }],
            T,
            false,
        )
        .await
        .unwrap();
    assert_eq!(again[&topic].as_ref().unwrap_err().code(), Some(36));

    c.create_partitions(&topic, 3, T).await.unwrap();
    let deadline = Instant::now() + T;
    while c.topic(&topic).await.unwrap().map(|t| t.partitions.len()) != Some(3) {
        assert!(Instant::now() < deadline, "partition growth not visible");
        c.invalidate_topic(&topic);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let cfgs = c
        .describe_topic_configs(std::slice::from_ref(&topic))
        .await
        .unwrap();
    let entries = cfgs[&topic].as_ref().unwrap();
    let get = |name: &str| entries.iter().find(|e| e.name == name).cloned().unwrap();
    assert_eq!(get("retention.ms").value.as_deref(), Some("3600000"));
    assert!(get("retention.ms").is_topic_override());
    assert!(
        !get("segment.bytes").is_topic_override(),
        "defaults are listed too"
    );

    let mut changes = BTreeMap::new();
    changes.insert("retention.ms".to_owned(), AlterOp::Delete);
    changes.insert(
        "max.message.bytes".to_owned(),
        AlterOp::Set("2000000".into()),
    );
    c.alter_topic_configs(&topic, &changes, false)
        .await
        .unwrap();
    // Config changes reach the broker's metadata asynchronously (KRaft): poll.
    let deadline = Instant::now() + T;
    loop {
        let cfgs = c
            .describe_topic_configs(std::slice::from_ref(&topic))
            .await
            .unwrap();
        let entries = cfgs[&topic].as_ref().unwrap().clone();
        let retention_reset = !entries
            .iter()
            .find(|e| e.name == "retention.ms")
            .unwrap()
            .is_topic_override();
        let max_set = entries
            .iter()
            .find(|e| e.name == "max.message.bytes")
            .unwrap()
            .value
            .as_deref()
            == Some("2000000");
        if retention_reset && max_set {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "config changes not visible: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `metadata_kept`: whether the broker stores the commit metadata string. tansu 0.6.0 drops
/// it (librdkafka reads it back as null too), so offset sync cannot preserve metadata there.
async fn groups_round_trip(c: &KafkaClient, metadata_kept: bool) {
    let topic = unique("grp-topic");
    create_topic(c, &topic, 2, &[]).await;
    let group = unique("grp");
    let mut offsets = BTreeMap::new();
    offsets.insert(
        (topic.clone(), 0),
        CommittedOffset {
            offset: 7,
            leader_epoch: -1,
            metadata: Some("from source: 7".into()),
        },
    );
    offsets.insert(
        (topic.clone(), 1),
        CommittedOffset {
            offset: 0,
            leader_epoch: -1,
            metadata: None,
        },
    );
    // A fresh cluster creates __consumer_offsets on first use: coordinator errors are
    // retriable and the client's retry policy rides them out.
    c.retrying("commit", || c.offset_commit(&group, &offsets))
        .await
        .unwrap();
    let back = c
        .retrying("fetch", || c.offset_fetch(&group, None))
        .await
        .unwrap();
    assert_eq!(back[&(topic.clone(), 0)].offset, 7);
    let want_meta = metadata_kept.then_some("from source: 7");
    assert_eq!(back[&(topic.clone(), 0)].metadata.as_deref(), want_meta);
    assert_eq!(back[&(topic.clone(), 1)].offset, 0);
    let some = c
        .offset_fetch(&group, Some(&[(topic.clone(), 0)]))
        .await
        .unwrap();
    assert_eq!(some.len(), 1);
    let d = c.describe_group(&group).await.unwrap();
    assert!(
        !d.is_active(),
        "an offsets-only group has no members: {d:?}"
    );
    let listed = c.list_groups().await.unwrap();
    assert!(
        listed.iter().any(|g| g.group_id == group),
        "ListGroups shows {group}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn group_offsets_commit_and_fetch_on_kafka() {
    groups_round_trip(&client(kafka_source()).await, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn group_offsets_commit_and_fetch_on_tansu() {
    groups_round_trip(&client(tansu_target()).await, false).await;
}

/// A group with a live rdkafka member is reported active, and Kafka refuses strait's
/// non-member commit to it: strait can never overwrite a consuming group's position.
#[tokio::test(flavor = "multi_thread")]
async fn an_active_group_is_seen_and_protected_on_kafka() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let broker = kafka_source();
    let c = client(broker).await;
    let topic = unique("active");
    create_topic(&c, &topic, 1, &[]).await;
    let group = unique("active-grp");
    let mut cfg = rdkafka::config::ClientConfig::new();
    cfg.set("bootstrap.servers", broker.bootstrap())
        .set("group.id", &group)
        .set("session.timeout.ms", "10000");
    let consumer: BaseConsumer = cfg.create().unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + T;
    loop {
        consumer.poll(Duration::from_millis(100));
        if let Ok(d) = c.describe_group(&group).await
            && d.is_active()
            && d.state == "Stable"
        {
            break;
        }
        assert!(Instant::now() < deadline, "group never became active");
    }
    let mut offsets = BTreeMap::new();
    offsets.insert(
        (topic.clone(), 0),
        CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: None,
        },
    );
    let err = c.offset_commit(&group, &offsets).await.unwrap_err();
    assert!(
        matches!(err.code(), Some(22 | 25)),
        "ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID, got {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_ids_and_active_producers_on_kafka() {
    let broker = kafka_source();
    let c = client(broker).await;
    let pid = c
        .retrying("init", || c.init_producer_id(None, T))
        .await
        .unwrap();
    assert!(pid.producer_id >= 0 && pid.producer_epoch >= 0);
    let topic = unique("producers");
    create_topic(&c, &topic, 1, &[]).await;
    send_all(
        &producer(broker, &[("enable.idempotence", "true")]),
        &topic,
        0,
        &sample_records(3, "p"),
    )
    .await;
    let ps = c.describe_producers(&[(topic.clone(), 0)]).await;
    let active = ps[&(topic.clone(), 0)].as_ref().unwrap();
    assert_eq!(
        active.len(),
        1,
        "the idempotent producer is listed: {active:?}"
    );
    assert_eq!(active[0].last_sequence, 2);
}

/// tansu 0.6.0 does not offer DescribeProducers or CreatePartitions; strait reports that
/// before sending (tansu would close the connection) and the connection stays usable.
#[tokio::test(flavor = "multi_thread")]
async fn unsupported_apis_on_tansu_are_reported_without_breaking_the_connection() {
    let c = client(tansu_target()).await;
    let topic = unique("tansu-unsupported");
    create_topic(&c, &topic, 1, &[]).await;
    let ps = c.describe_producers(&[(topic.clone(), 0)]).await;
    let err = ps[&(topic.clone(), 0)].as_ref().unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedApi {
                api: "DescribeProducers",
                ..
            }
        ),
        "{err}"
    );
    let err = c.create_partitions(&topic, 2, T).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedApi {
                api: "CreatePartitions",
                ..
            }
        ),
        "{err}"
    );
    assert!(!c.any_connection().await.unwrap().is_poisoned());
    assert!(c.topic(&topic).await.unwrap().is_some());
}

fn secure_config(
    broker: &strait_testkit::Broker,
    mechanism: SaslMechanism,
    user: &str,
    password: &str,
) -> ClientConfig {
    let mut cfg = ClientConfig::new(&broker.bootstrap());
    cfg.security.tls = Some(TlsConfig {
        ca_file: broker.tls_ca_pem().expect("TLS broker"),
        server_name: None,
    });
    cfg.security.sasl = Some(SaslConfig {
        mechanism,
        username: user.into(),
        password: Secret::new(password),
    });
    cfg.connect_timeout = Duration::from_secs(20);
    cfg
}

/// SASL_SSL on a dedicated Kafka with the StandardAuthorizer: every mechanism authenticates
/// over TLS, a wrong password fails without echoing it, and ACLs are created, enforced,
/// described and deleted.
#[tokio::test(flavor = "multi_thread")]
async fn sasl_over_tls_and_acls_on_kafka() {
    const ADMIN_PW: &str = "admin-secret-pw-1";
    const ALICE_PW: &str = "alice-secret-pw-2";
    let broker = start_kafka(
        KafkaOptions::new()
            .user("admin", ADMIN_PW)
            .user("alice", ALICE_PW)
            .tls()
            .authorizer("admin"),
    );
    for mechanism in [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ] {
        let c = KafkaClient::connect(secure_config(&broker, mechanism, "admin", ADMIN_PW)).await;
        assert!(c.is_ok(), "{mechanism:?}: {:?}", c.err());
    }
    for mechanism in [SaslMechanism::Plain, SaslMechanism::ScramSha512] {
        let err = KafkaClient::connect(secure_config(
            &broker,
            mechanism,
            "alice",
            "wrong-password-xyz",
        ))
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Auth { .. }), "{mechanism:?}: {err}");
        assert!(!err.to_string().contains("wrong-password-xyz"), "{err}");
        assert!(!format!("{err:?}").contains("wrong-password-xyz"));
    }
    let cfg = secure_config(&broker, SaslMechanism::ScramSha256, "admin", ADMIN_PW);
    assert!(
        !format!("{cfg:?}").contains(ADMIN_PW),
        "config Debug redacts the password"
    );
    let admin = KafkaClient::connect(cfg).await.unwrap();
    let topic = unique("acl");
    create_topic(&admin, &topic, 1, &[]).await;
    let allow = Acl {
        resource: AclResource::Topic,
        name: topic.clone(),
        pattern: AclPattern::Literal,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: AclOperation::All,
        permission: AclPermission::Allow,
    };
    let deny_write = Acl {
        operation: AclOperation::Write,
        permission: AclPermission::Deny,
        ..allow.clone()
    };
    admin
        .create_acls(std::slice::from_ref(&allow))
        .await
        .unwrap();

    let alice = KafkaClient::connect(secure_config(
        &broker,
        SaslMechanism::ScramSha512,
        "alice",
        ALICE_PW,
    ))
    .await
    .unwrap();
    let batch = || {
        let raw = fetchable_batch();
        vec![ProduceItem {
            topic: topic.clone(),
            partition: 0,
            records: raw.into(),
        }]
    };
    let ok = wait_for_produce(&alice, batch, true).await;
    assert!(ok.is_ok(), "alice may write: {ok:?}");

    admin
        .create_acls(std::slice::from_ref(&deny_write))
        .await
        .unwrap();
    let denied = wait_for_produce(&alice, batch, false).await.unwrap_err();
    assert_eq!(
        denied.code(),
        Some(29),
        "TOPIC_AUTHORIZATION_FAILED, got {denied}"
    );

    let listed = admin
        .describe_acls(&Acl {
            principal: "User:alice".into(),
            host: String::new(),
            operation: AclOperation::Any,
            permission: AclPermission::Any,
            ..allow.clone()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        admin
            .delete_acls(std::slice::from_ref(&deny_write))
            .await
            .unwrap(),
        1
    );
    assert!(
        wait_for_produce(&alice, batch, true).await.is_ok(),
        "writes work again after the DENY is removed"
    );

    // Several filters in one DeleteAcls: each removes its own match, one matching nothing
    // counts nothing, and an ACL no filter names stays.
    let deny = |name: &str| Acl {
        name: name.to_owned(),
        ..deny_write.clone()
    };
    let names = [unique("acl-a"), unique("acl-b"), unique("acl-c")];
    let made: Vec<Acl> = names.iter().map(|n| deny(n)).collect();
    admin.create_acls(&made).await.unwrap();
    let filters = [deny(&names[0]), deny(&unique("acl-none")), deny(&names[2])];
    assert_eq!(admin.delete_acls(&filters).await.unwrap(), 2);
    for (n, left) in names.iter().zip([0, 1, 0]) {
        let listed = admin.describe_acls(&deny(n)).await.unwrap();
        assert_eq!(listed.len(), left, "{n}: {listed:?}");
    }

    // Several bindings in one CreateAcls: each gets its own answer, in order; a binding the
    // broker refuses (an empty topic name) does not take the others down with it.
    let kept = unique("acl-d");
    let each = admin
        .create_acls_each(&[deny(""), deny(&kept)])
        .await
        .unwrap();
    assert_eq!(each.len(), 2);
    assert!(each[0].is_err(), "an empty name is refused: {each:?}");
    assert!(each[1].is_ok(), "{each:?}");
    assert_eq!(admin.describe_acls(&deny(&kept)).await.unwrap().len(), 1);
    assert!(admin.create_acls(&[deny(""), deny(&kept)]).await.is_err());
}

/// A valid single-record batch built with kafka-protocol's encoder.
fn fetchable_batch() -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let rec = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(bytes::Bytes::from_static(b"k")),
        value: Some(bytes::Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&rec],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// ACL changes propagate asynchronously: retry until the produce outcome is `want_ok`.
async fn wait_for_produce(
    c: &KafkaClient,
    items: impl Fn() -> Vec<ProduceItem>,
    want_ok: bool,
) -> Result<(), Error> {
    let deadline = Instant::now() + T;
    loop {
        let r = c.produce(items(), -1, T).await;
        let outcome = r.into_values().next().expect("one result").map(|_| ());
        if outcome.is_ok() == want_ok || Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
