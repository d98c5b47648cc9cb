//! `strait plan` end to end on real brokers: the dry run leaves both clusters exactly as they
//! were and creates no state directory; conflicts and unreachable clusters are blockers
//! (exit 1); `--probe` reports tansu's known gaps and a Kafka target with an authorizer as
//! fully capable, and removes its scratch topic.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use strait_linker::client::data::{Isolation, OffsetSpec, ProduceItem};
use strait_linker::client::groups::CommittedOffset;
use strait_linker::client::{ClientConfig, KafkaClient, SaslConfig, SaslMechanism, Secret};
use strait_linker::offset::{SourceOffset, TargetOffset, TopicPartition};
use strait_linker::state::{PartitionCheckpoint, PartitionStatus, StateStore};
use strait_testkit::{KafkaOptions, kafka_source, kafka_target, start_kafka, tansu_target, unique};
use support::*;

const T: Duration = Duration::from_secs(30);

/// A config mirroring topics and groups that start with `prefix`, state in `dir/state`.
fn write_config(
    dir: &Path,
    source: &str,
    target: &str,
    target_extra: &str,
    prefix: &str,
) -> std::path::PathBuf {
    let path = dir.join("strait.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nbootstrap_servers = \"{source}\"\n\n\
             [target]\nbootstrap_servers = \"{target}\"\n{target_extra}\n\
             [mirror]\ntopics = ['{prefix}.*']\n\n\
             [groups]\ninclude = ['{prefix}.*']\n\n\
             [state]\ndir = \"{}\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    path
}

fn strait_plan(config: &Path, extra: &[&str]) -> Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
        .arg("plan")
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .expect("strait runs");
    eprintln!(
        "strait plan {extra:?}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON document")
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

/// Everything a dry run could change on a cluster, read with read-only requests.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    topics: Vec<(String, bool, String, usize)>,
    offsets: BTreeMap<(String, i32), (i64, i64)>,
    configs: BTreeMap<String, Vec<(String, Option<String>, i8)>>,
    groups: Vec<(String, String, String)>,
    committed: BTreeMap<String, BTreeMap<(String, i32), i64>>,
}

async fn snapshot(c: &KafkaClient, config_topics: &[&str]) -> Snapshot {
    let listed = c.list_topics().await.unwrap();
    let topics = listed
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.internal,
                t.id.to_string(),
                t.partitions.len(),
            )
        })
        .collect();
    let parts: Vec<(String, i32)> = listed
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.index)))
        .collect();
    let earliest = c
        .list_offsets(&parts, OffsetSpec::Earliest, Isolation::ReadUncommitted)
        .await;
    let latest = c
        .list_offsets(&parts, OffsetSpec::Latest, Isolation::ReadUncommitted)
        .await;
    let offsets = parts
        .iter()
        .map(|k| {
            let e = earliest[k].as_ref().unwrap().offset;
            let l = latest[k].as_ref().unwrap().offset;
            (k.clone(), (e, l))
        })
        .collect();
    let names: Vec<String> = config_topics
        .iter()
        .filter(|t| listed.iter().any(|l| l.name == **t))
        .map(|t| (*t).to_owned())
        .collect();
    let configs = if names.is_empty() {
        BTreeMap::new()
    } else {
        c.describe_topic_configs(&names)
            .await
            .unwrap()
            .into_iter()
            .map(|(t, r)| {
                let mut es: Vec<_> = r
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.name, e.value, e.source))
                    .collect();
                es.sort();
                (t, es)
            })
            .collect()
    };
    let groups: Vec<(String, String, String)> = c
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.group_id, g.protocol_type, g.state))
        .collect();
    let mut committed = BTreeMap::new();
    for (g, _, _) in &groups {
        let offs = c.offset_fetch(g, None).await.unwrap();
        committed.insert(
            g.clone(),
            offs.into_iter().map(|(k, v)| (k, v.offset)).collect(),
        );
    }
    Snapshot {
        topics,
        offsets,
        configs,
        groups,
        committed,
    }
}

async fn commit(c: &KafkaClient, group: &str, topic: &str, partition: i32, offset: i64) {
    let offsets = BTreeMap::from([(
        (topic.to_owned(), partition),
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: Some("plan-test".into()),
        },
    )]);
    // A fresh cluster has no group coordinator for a moment.
    c.retrying("OffsetCommit", || c.offset_commit(group, &offsets))
        .await
        .unwrap();
}

/// Writes `n` records to `topic`/`partition` with strait's client (one batch).
async fn put(c: &KafkaClient, topic: &str, partition: i32, n: usize) {
    let batch = batch_of(&sample_records(n, topic));
    // A new topic's leadership settles for a moment: retry what is retriable.
    c.retrying("Produce", || async {
        let item = ProduceItem {
            topic: topic.to_owned(),
            partition,
            records: batch.clone().into(),
        };
        let r = c.produce(vec![item], -1, T).await;
        r.into_values().next().expect("one partition").map(drop)
    })
    .await
    .unwrap();
}

/// One uncompressed batch of `recs` (keys, values, timestamps; headers left out).
fn batch_of(recs: &[Rec]) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1 + i as i32,
            timestamp: r.timestamp,
            key: r.key.clone().map(bytes::Bytes::from),
            value: r.value.clone().map(bytes::Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Test 1: a plan on a source with topics and groups leaves both clusters unchanged, reports
/// the topics, partitions, groups and the initial copy, and creates no state directory.
#[tokio::test(flavor = "multi_thread")]
async fn plan_is_read_only_and_reports_topics_groups_and_initial_copy() {
    // Dedicated clusters: nothing else may write to them between the two snapshots.
    let (source, target) = (
        start_kafka(KafkaOptions::new()),
        start_kafka(KafkaOptions::new()),
    );
    let (sc, tc) = (client(&source).await, client(&target).await);
    let prefix = unique("plan");
    let (orders, payments, other) = (
        format!("{prefix}.orders"),
        format!("{prefix}.payments"),
        unique("unselected"),
    );
    create_topic(&sc, &orders, 3, &[("retention.ms", "86400000")]).await;
    create_topic(&sc, &payments, 1, &[]).await;
    create_topic(&sc, &other, 1, &[]).await;
    for p in 0..3 {
        put(&sc, &orders, p, 10 + p as usize).await;
    }
    put(&sc, &payments, 0, 7).await;
    put(&sc, &other, 0, 4).await;
    let group = format!("{prefix}.billing");
    commit(&sc, &group, &orders, 1, 5).await;
    commit(&sc, &group, &other, 0, 2).await;
    commit(&sc, &unique("ignored"), &orders, 0, 1).await;
    // The target has data and a group of its own, unrelated to the mirror.
    let foreign = unique("foreign");
    create_topic(&tc, &foreign, 2, &[]).await;
    put(&tc, &foreign, 1, 3).await;
    commit(&tc, &unique("tgroup"), &foreign, 1, 2).await;

    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &source.bootstrap(),
        &target.bootstrap(),
        "",
        &prefix,
    );
    let watched = [
        orders.as_str(),
        payments.as_str(),
        other.as_str(),
        foreign.as_str(),
    ];
    let before = (snapshot(&sc, &watched).await, snapshot(&tc, &watched).await);

    let out = strait_plan(&config, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "ready");
    let report = json(&out);
    assert_eq!(report["ready"], true);
    let f = &report["figures"];
    assert_eq!(f["topic_count"], 2);
    assert_eq!(f["partition_count"], 4);
    assert_eq!(f["initial_copy_records"], 10 + 11 + 12 + 7);
    assert!(f["initial_copy_bytes"].as_u64().unwrap() > 0, "{f:#}");
    let topics: Vec<(String, u64, String, u64)> = f["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["partitions"].as_u64().unwrap(),
                t["target"].as_str().unwrap().to_owned(),
                t["initial_copy_records"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        topics,
        vec![
            (orders.clone(), 3, "absent".into(), 33),
            (payments.clone(), 1, "absent".into(), 7)
        ]
    );
    let groups = f["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["group_id"], group.as_str());
    assert_eq!(groups[0]["mirrored_topics"], serde_json::json!([orders]));
    assert_eq!(groups[0]["other_topics"], serde_json::json!([other]));
    assert_eq!(
        check(&report, "group offsets not synced")["severity"],
        "warning"
    );
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["severity"] != "blocker")
    );

    // Human output: one line per check and the verdict.
    let human = strait_plan(&config, &[]);
    assert_eq!(human.status.code(), Some(0));
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(
        text.contains("ok      source connection: connected to the source cluster"),
        "{text}"
    );
    assert!(text.lines().last() == Some("READY"), "{text}");

    let after = (snapshot(&sc, &watched).await, snapshot(&tc, &watched).await);
    assert_eq!(before.0, after.0, "the source changed");
    assert_eq!(before.1, after.1, "the target changed");
    assert!(
        !tmp.path().join("state").exists(),
        "plan created the state directory"
    );
}

/// Test 2: a target topic that already holds data strait did not write is a blocker.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_topic_with_foreign_data_blocks() {
    let (source, target) = (kafka_source(), kafka_target());
    let (sc, tc) = (client(source).await, client(target).await);
    let prefix = unique("plan-conflict");
    let topic = format!("{prefix}.orders");
    create_topic(&sc, &topic, 2, &[]).await;
    put(&sc, &topic, 0, 5).await;
    create_topic(&tc, &topic, 2, &[]).await;
    put(&tc, &topic, 1, 3).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &source.bootstrap(),
        &target.bootstrap(),
        "",
        &prefix,
    );
    let out = strait_plan(&config, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let line =
        format!("BLOCKER target topic {topic}: already holds 3 records strait did not write");
    assert!(text.lines().any(|l| l == line), "{text}");
    assert!(text.contains("NOT READY: 1 blocker(s)"), "{text}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("target topic {topic}")),
        "{stderr}"
    );
    assert!(!tmp.path().join("state").exists());
}

/// Test 3: an unreachable target is a blocker naming the target side.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_target_blocks_naming_the_side() {
    let source = kafka_source();
    // A port nothing listens on: bound once, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique("plan-unreachable");
    let config = write_config(tmp.path(), &source.bootstrap(), &closed, "", &prefix);
    let out = strait_plan(&config, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["ready"], false);
    let c = check(&report, "target connection");
    assert_eq!(c["severity"], "blocker");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("cannot connect to the target cluster at {closed}")),
        "{detail}"
    );
    assert_eq!(check(&report, "source connection")["ok"], true);
    assert!(!tmp.path().join("state").exists());
}

/// Outcomes by guarantee id.
fn outcomes(report: &Value) -> BTreeMap<String, String> {
    report["probe"]["guarantees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().to_owned(),
                g["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn assert_probe_topic_gone(c: &KafkaClient, report: &Value) {
    let probe = &report["probe"];
    let scratch = probe["scratch_topic"]
        .as_str()
        .expect("a scratch topic was used");
    assert!(scratch.starts_with("strait-probe-"), "{scratch}");
    assert_eq!(probe["scratch_topic_deleted"], true, "{probe:#}");
    let names: Vec<String> = c
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        !names.iter().any(|n| n == scratch),
        "{scratch} still exists: {names:?}"
    );
}

/// Test 4: the probe reports tansu 0.6's known gaps (tansu-eval.md) and deletes its topic.
#[tokio::test(flavor = "multi_thread")]
async fn probe_reports_tansus_known_gaps() {
    let (source, target) = (kafka_source(), tansu_target());
    let sc = client(source).await;
    let prefix = unique("plan-tansu");
    create_topic(&sc, &format!("{prefix}.orders"), 1, &[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &source.bootstrap(),
        &target.bootstrap(),
        "",
        &prefix,
    );
    let out = strait_plan(&config, &["--probe", "--json"]);
    assert_eq!(out.status.code(), Some(0), "gaps are not blockers");
    let report = json(&out);
    let not_held = |id: &str| (id.to_owned(), "not_held".to_owned());
    let expected: BTreeMap<String, String> = [
        not_held("fetch_inside_batch"),
        not_held("list_offsets_latest"),
        not_held("list_offsets_timestamp"),
        not_held("transactions"),
        not_held("delete_records"),
        not_held("acl_enforcement"),
        ("idempotent_producer".to_owned(), "held".to_owned()),
    ]
    .into_iter()
    .collect();
    assert_eq!(outcomes(&report), expected, "{:#}", report["probe"]);
    for g in report["probe"]["guarantees"].as_array().unwrap() {
        assert_eq!(g["affects"].is_string(), g["outcome"] != "held", "{g:#}");
    }
    let detail = |id: &str| -> String {
        report["probe"]["guarantees"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == id)
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        detail("transactions").contains("EndTxn (26)"),
        "{}",
        detail("transactions")
    );
    assert!(detail("acl_enforcement").contains("DeleteAcls (31)"));
    assert!(detail("delete_records").contains("closed the connection"));
    assert!(detail("idempotent_producer").contains("DUPLICATE_SEQUENCE_NUMBER (46)"));
    let acl = report["probe"]["guarantees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "acl_enforcement")
        .unwrap();
    assert!(acl["affects"].as_str().unwrap().contains("`manual`"));
    assert_probe_topic_gone(&client(target).await, &report).await;
}

/// Test 5: Apache Kafka with the StandardAuthorizer (strait's user a super user) holds every
/// guarantee.
#[tokio::test(flavor = "multi_thread")]
async fn probe_finds_a_kafka_target_with_an_authorizer_fully_capable() {
    const PW: &str = "strait-probe-pw-7";
    let source = kafka_source();
    let target = start_kafka(KafkaOptions::new().user("strait", PW).authorizer("strait"));
    let sc = client(source).await;
    let prefix = unique("plan-kafka");
    create_topic(&sc, &format!("{prefix}.orders"), 1, &[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let sasl = format!(
        "[target.security.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"strait\"\npassword = \"{PW}\"\n"
    );
    let config = write_config(
        tmp.path(),
        &source.bootstrap(),
        &target.bootstrap(),
        &sasl,
        &prefix,
    );
    let out = strait_plan(&config, &["--probe", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    let all = outcomes(&report);
    assert_eq!(all.len(), 7);
    assert!(all.values().all(|o| o == "held"), "{:#}", report["probe"]);
    assert!(
        check(&report, "target connection")["detail"]
            .as_str()
            .unwrap()
            .contains("authenticated as strait (SCRAM-SHA-512)")
    );
    let mut cfg = ClientConfig::new(&target.bootstrap());
    cfg.security.sasl = Some(SaslConfig {
        mechanism: SaslMechanism::ScramSha512,
        username: "strait".into(),
        password: Secret::new(PW),
    });
    let tc = KafkaClient::connect(cfg).await.unwrap();
    assert_probe_topic_gone(&tc, &report).await;
    // No probe ACL is left behind.
    let acls = tc
        .describe_acls(&strait_linker::client::admin::Acl {
            resource: strait_linker::client::admin::AclResource::Any,
            name: String::new(),
            pattern: strait_linker::client::admin::AclPattern::Any,
            principal: String::new(),
            host: String::new(),
            operation: strait_linker::client::admin::AclOperation::Any,
            permission: strait_linker::client::admin::AclPermission::Any,
        })
        .await
        .unwrap();
    assert!(acls.is_empty(), "{acls:?}");
}

/// A state directory held by a running strait is reported (info), read from a copy, and its
/// checkpoints make the target topic strait's own: no conflict, and the initial copy is only
/// what is left. The directory's files are not changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_directory_in_use_is_read_without_being_touched() {
    let (source, target) = (kafka_source(), kafka_target());
    let (sc, tc) = (client(source).await, client(target).await);
    let prefix = unique("plan-state");
    let topic = format!("{prefix}.orders");
    create_topic(&sc, &topic, 1, &[]).await;
    put(&sc, &topic, 0, 5).await;
    create_topic(&tc, &topic, 1, &[]).await;
    put(&tc, &topic, 0, 2).await; // as if strait had mirrored the first two
    let src_id = sc.topic(&topic).await.unwrap().unwrap().id.to_string();
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &source.bootstrap(),
        &target.bootstrap(),
        "",
        &prefix,
    );
    let store = StateStore::open(&tmp.path().join("state")).unwrap();
    store
        .record_batch_written(
            &TopicPartition::new(&topic, 0),
            None,
            &PartitionCheckpoint {
                topic_id: Some(src_id),
                next_source: SourceOffset(2),
                next_target: TargetOffset(2),
                status: PartitionStatus::Active,
                producer: None,
            },
        )
        .unwrap();
    store.flush().unwrap();
    let files = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(p.display().to_string(), std::fs::read(&p).unwrap());
                }
            }
        }
        out
    };
    let before = files(&tmp.path().join("state"));
    let out = strait_plan(&config, &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    let state = check(&report, "state directory");
    assert_eq!(state["ok"], true);
    assert_eq!(state["severity"], "info");
    assert!(
        state["detail"].as_str().unwrap().starts_with(&format!(
            "state directory in use by a running strait (pid {})",
            std::process::id()
        )),
        "{state:#}"
    );
    let t = &report["figures"]["topics"][0];
    assert_eq!(t["target"], "mirrored");
    assert_eq!(t["initial_copy_records"], 3);
    assert_eq!(files(&tmp.path().join("state")), before);
    drop(store);
}

/// A target topic with a smaller `max.message.bytes` than the source's, and one with fewer
/// partitions on a target that cannot add partitions (tansu), are blockers.
#[tokio::test(flavor = "multi_thread")]
async fn target_topics_that_cannot_take_the_source_data_block() {
    let source = kafka_source();
    let sc = client(source).await;
    let tmp = tempfile::tempdir().unwrap();

    let prefix = unique("plan-size");
    let topic = format!("{prefix}.big");
    create_topic(&sc, &topic, 1, &[]).await;
    let kafka = kafka_target();
    create_topic(
        &client(kafka).await,
        &topic,
        1,
        &[("max.message.bytes", "1000")],
    )
    .await;
    let config = write_config(
        tmp.path(),
        &source.bootstrap(),
        &kafka.bootstrap(),
        "",
        &prefix,
    );
    let out = strait_plan(&config, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let c = check(&report, &format!("message size {topic}"));
    assert_eq!(c["severity"], "blocker");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("is 1000, smaller than the source's"),
        "{c:#}"
    );
    assert_eq!(report["figures"]["topics"][0]["target"], "empty");

    let prefix = unique("plan-parts");
    let topic = format!("{prefix}.wide");
    create_topic(&sc, &topic, 2, &[]).await;
    let tansu = tansu_target();
    create_topic(&client(tansu).await, &topic, 1, &[]).await;
    let config = write_config(
        tmp.path(),
        &source.bootstrap(),
        &tansu.bootstrap(),
        "",
        &prefix,
    );
    let out = strait_plan(&config, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let c = check(&report, &format!("target topic {topic}"));
    assert_eq!(c["severity"], "blocker");
    assert_eq!(
        c["detail"],
        "has 1 partition(s), the source 2, and the target cannot add partitions (no \
         CreatePartitions)"
    );
}

/// Without an authorizer Kafka refuses CreateAcls with SECURITY_DISABLED: ACL enforcement is
/// not held, explained, and everything else holds.
#[tokio::test(flavor = "multi_thread")]
async fn probe_on_kafka_without_an_authorizer_reports_acls_not_enforced() {
    let (source, target) = (kafka_source(), kafka_target());
    let prefix = unique("plan-noauth");
    create_topic(&client(source).await, &format!("{prefix}.orders"), 1, &[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &source.bootstrap(),
        &target.bootstrap(),
        "",
        &prefix,
    );
    let out = strait_plan(&config, &["--probe", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    for (id, outcome) in outcomes(&report) {
        let want = if id == "acl_enforcement" {
            "not_held"
        } else {
            "held"
        };
        assert_eq!(outcome, want, "{id}: {:#}", report["probe"]);
    }
    let acl = report["probe"]["guarantees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "acl_enforcement")
        .unwrap();
    assert!(
        acl["detail"]
            .as_str()
            .unwrap()
            .contains("SECURITY_DISABLED (54)"),
        "{acl:#}"
    );
    assert_probe_topic_gone(&client(target).await, &report).await;
}
