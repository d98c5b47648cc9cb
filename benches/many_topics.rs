//! Benchmark: how long a many-topic migration takes to get going. A migration rarely moves
//! one big topic; it moves hundreds of small ones, and every one of them needs a target topic
//! (with the source's configs) and a start position before its first record moves.
//!
//! ```text
//!  source Kafka: N topics x P partitions, one 10-record batch per partition, 2 config overrides
//!  for each target (Kafka, tansu memory://):
//!    strait mirror (in process, fresh sled state) ─► time until strait's status shows every
//!                                                     partition's 10 records acknowledged,
//!                                                     then each partition's end checked on
//!                                                     the target
//!    then 11 s steady: a discovery every 2 s, each starting a re-sync of every topic's configs
//!                      ─► mean discovery time (the coordinator moves no data meanwhile)
//!
//!  fences: a Kafka broker with an authorizer; DENY WRITE ACLs for N topics created
//!          (one request), then deleted one request per ACL (as strait did before) and
//!          in one request (as it does now), the step inside the write pause
//!          (protection lifted at promotion) and at rollback (the source unfenced)
//! ```
//!
//! `cargo bench --bench many_topics -- [--topics N] [--partitions P] [--targets kafka,tansu]
//!  [--no-acls]`.
//! Prints a table and writes target/bench/many_topics.json.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strait_linker::client::admin::{Acl, AclOperation, AclPattern, AclPermission, AclResource};
use strait_linker::client::{ClientConfig, KafkaClient, SaslConfig, SaslMechanism, Secret};
use strait_linker::mirror::{Mirror, MirrorSettings};
use strait_linker::state::StateStore;
use tokio_util::sync::CancellationToken;

mod common;
use common::load_topics;

const RECORDS: i64 = 10;
/// Discovery interval in the steady phase, and how long that phase lasts.
const STEADY_DISCOVERY: Duration = Duration::from_secs(2);
const STEADY: Duration = Duration::from_secs(11);

struct Args {
    topics: usize,
    partitions: i32,
    targets: Vec<String>,
    acls: bool,
}

fn args() -> Args {
    let mut a = Args {
        topics: 200,
        partitions: 5,
        targets: vec!["kafka".into(), "tansu".into()],
        acls: true,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--topics" => a.topics = v.parse().expect("--topics N"),
            "--partitions" => a.partitions = v.parse().expect("--partitions P"),
            "--targets" => a.targets = v.split(',').map(|s| s.trim().to_owned()).collect(),
            "--no-acls" => {
                a.acls = false;
                i -= 1;
            }
            _ => i -= 1, // `--bench` and anything else cargo passes
        }
        i += 2;
    }
    for t in &a.targets {
        assert!(
            ["kafka", "tansu"].contains(&t.as_str()),
            "--targets: unknown name {t:?} (known: kafka, tansu)"
        );
    }
    a
}

/// Time from the mirror's start until every key holds `RECORDS` records on the target.
async fn run(sc: &KafkaClient, tc: &KafkaClient, prefix: &str, keys: &[(String, i32)]) -> Timing {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(dir.path()).unwrap());
    let p = format!("{prefix}-");
    let mut settings = MirrorSettings::new(Arc::new(move |n: &str| n.starts_with(&p)));
    // Every discovery of the steady phase starts a re-sync of every topic's configs.
    settings.topic_refresh = STEADY_DISCOVERY;
    settings.config_sync = Duration::from_millis(500);
    let mirror = Mirror::new(sc.clone(), tc.clone(), store, settings);
    let status = mirror.status();
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let m = tokio::spawn({
        let c = cancel.clone();
        async move { mirror.run(c).await }
    });
    // Progress from strait's status (acknowledged writes): polling 5,000 partitions' logs on
    // the target every 50 ms would load the broker that strait is timed against.
    let deadline = started + Duration::from_secs(600);
    loop {
        assert!(
            Instant::now() < deadline,
            "the mirror did not finish in 600 s"
        );
        let s = status.snapshot();
        let done = s
            .partitions
            .values()
            .filter(|v| v.next_source >= RECORDS)
            .count();
        if done == keys.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    // Steady phase: nothing new, discoveries with a config re-sync every STEADY_DISCOVERY;
    // the coordinator moves no data while one runs.
    let h = strait_linker::metrics::discovery_duration();
    let (n0, s0) = (h.count(), h.sum_seconds());
    tokio::time::sleep(STEADY).await;
    let (n, secs) = (h.count() - n0, h.sum_seconds() - s0);
    let discovery_ms = if n == 0 {
        f64::NAN
    } else {
        secs * 1000.0 / n as f64
    };
    cancel.cancel();
    m.await.unwrap().unwrap();
    // What the status says was acknowledged is on the target.
    let bounds = tc.log_bounds(keys).await;
    for k in keys {
        match bounds.get(k) {
            Some(Ok(b)) => assert_eq!(b.end, RECORDS, "{k:?} on the target"),
            other => panic!("{k:?} on the target: {other:?}"),
        }
    }
    Timing {
        took,
        discovery_ms,
        discoveries: n,
    }
}

/// Times lifting DENY WRITE ACLs of `topics` topics: one DeleteAcls per ACL (what strait
/// did before) against one request for all; returns (per ACL, together) seconds.
async fn acl_lift(topics: usize) -> (f64, f64) {
    const PW: &str = "bench-admin-pw";
    let broker = strait_testkit::start_kafka(
        strait_testkit::KafkaOptions::new()
            .user("admin", PW)
            .authorizer("admin"),
    );
    let mut cfg = ClientConfig::new(&broker.bootstrap());
    cfg.security.sasl = Some(SaslConfig {
        mechanism: SaslMechanism::ScramSha512,
        username: "admin".into(),
        password: Secret::new(PW),
    });
    let admin = KafkaClient::connect(cfg).await.unwrap();
    let prefix = strait_testkit::unique("fence");
    let acls: Vec<Acl> = (0..topics)
        .map(|i| Acl {
            resource: AclResource::Topic,
            name: format!("{prefix}-{i:04}"),
            pattern: AclPattern::Literal,
            principal: "User:*".into(),
            host: "*".into(),
            operation: AclOperation::Write,
            permission: AclPermission::Deny,
        })
        .collect();
    let mut times = [0.0; 2];
    for (i, together) in [false, true].into_iter().enumerate() {
        admin.create_acls(&acls).await.unwrap();
        let started = Instant::now();
        let removed = if together {
            admin.delete_acls(&acls).await.unwrap()
        } else {
            let mut n = 0;
            for acl in &acls {
                n += admin.delete_acls(std::slice::from_ref(acl)).await.unwrap();
            }
            n
        };
        times[i] = started.elapsed().as_secs_f64();
        assert_eq!(removed, topics, "every ACL removed");
    }
    (times[0], times[1])
}

/// What one target's run measured.
struct Timing {
    /// Seconds from the mirror's start until every record was acknowledged.
    took: f64,
    /// Mean duration of a steady-phase discovery, in ms.
    discovery_ms: f64,
    discoveries: u64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let source = strait_testkit::kafka_source();
    let sc = KafkaClient::connect(ClientConfig::new(&source.bootstrap()))
        .await
        .unwrap();
    let mut rows = Vec::new();
    for target in &a.targets {
        let broker = match target.as_str() {
            "kafka" => strait_testkit::kafka_target(),
            _ => strait_testkit::tansu_target(),
        };
        let tc = KafkaClient::connect(ClientConfig::new(&broker.bootstrap()))
            .await
            .unwrap();
        let prefix = strait_testkit::unique("many");
        let loaded = Instant::now();
        let keys = load_topics(&sc, &prefix, a.topics, a.partitions, RECORDS as usize).await;
        eprintln!(
            "[{target}] loaded {} topics x {} partitions in {:.1} s",
            a.topics,
            a.partitions,
            loaded.elapsed().as_secs_f64()
        );
        let timing = run(&sc, &tc, &prefix, &keys).await;
        rows.push((target.clone(), timing));
        // 10,000 partitions are more than a 512 MiB source broker holds: drop this run's.
        let mut names: Vec<String> = keys.into_iter().map(|(t, _)| t).collect();
        names.dedup();
        for chunk in names.chunks(100) {
            for c in [&sc, &tc] {
                let _ = c.delete_topics(chunk, Duration::from_secs(60)).await;
            }
        }
    }
    println!(
        "many-topic start ({} topics x {} partitions, {RECORDS} records each):",
        a.topics, a.partitions
    );
    println!(
        "  {:<8} {:>10} {:>14} {:>26}",
        "target", "all on (s)", "ms per topic", "steady discovery (ms, n)"
    );
    for (t, r) in &rows {
        println!(
            "  {:<8} {:>10.2} {:>14.1} {:>21.1} ({})",
            t,
            r.took,
            r.took * 1000.0 / a.topics as f64,
            r.discovery_ms,
            r.discoveries
        );
    }
    let acl = if a.acls {
        let (each, together) = acl_lift(a.topics).await;
        println!(
            "lifting DENY WRITE ACLs of {} topics: one request per ACL {:.2} s, one request {:.3} s ({:.0}x)",
            a.topics,
            each,
            together,
            each / together
        );
        format!(",\"acl_lift\":{{\"per_acl_s\":{each:.3},\"together_s\":{together:.3}}}")
    } else {
        String::new()
    };
    let json: Vec<String> = rows
        .iter()
        .map(|(t, r)| {
            let steady = if r.discoveries == 0 {
                "null".to_owned() // JSON has no NaN
            } else {
                format!("{:.1}", r.discovery_ms)
            };
            format!(
                "{{\"target\":\"{t}\",\"seconds\":{:.3},\"steady_discovery_ms\":{steady}}}",
                r.took
            )
        })
        .collect();
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("many_topics.json"),
        format!(
            "{{\"topics\":{},\"partitions\":{},\"rows\":[{}]{acl}}}\n",
            a.topics,
            a.partitions,
            json.join(",")
        ),
    )
    .unwrap();
}
