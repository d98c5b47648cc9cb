//! strait against Apache Kafka with SASL_SSL listeners and a certificate generated in the test
//! (rcgen, through the testkit): the mirror and the group sync of a real `strait run` with
//! SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over TLS on both sides (records byte-exact,
//! group offsets synced); a wrong password or an untrusted CA stops strait at once with an
//! error naming the cluster, and a bad config file stops it naming the key. Then the secrets
//! check: a `strait run` at debug level with a SASL password and API tokens, its control API
//! served over HTTPS, exercised with good and failing calls, plus a run that fails
//! authentication; neither the password nor a token may appear in any output, answer or
//! metric.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use strait_linker::client::groups::CommittedOffset;
use strait_linker::client::{
    ClientConfig, KafkaClient, SaslConfig, SaslMechanism as Mechanism, Secret, TlsConfig,
};
use strait_testkit::{Broker, KafkaOptions, SaslMechanism, start_kafka, unique};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "strait";
/// The SASL password on both clusters; finding it in any output means it leaked.
const PASSWORD: &str = "sasl-pw-DO-NOT-LEAK-7f3a";
/// A wrong password strait is given on purpose; it must not be echoed either.
const WRONG: &str = "wrong-pw-DO-NOT-LEAK-91c2";
const TOKEN: &str = "sec-t0ken-DO-NOT-LEAK";
const ENV_TOKEN: &str = "env-t0ken-DO-NOT-LEAK";

/// Two SASL_SSL Kafka brokers, each with its own test CA, shared by this binary's tests.
struct Clusters {
    source: Broker,
    target: Broker,
}

fn clusters() -> &'static Clusters {
    static CLUSTERS: OnceLock<Clusters> = OnceLock::new();
    CLUSTERS.get_or_init(|| {
        let start = || start_kafka(KafkaOptions::new().user(USER, PASSWORD).tls());
        std::thread::scope(|s| {
            let source = s.spawn(start);
            let target = s.spawn(start);
            Clusters {
                source: source.join().unwrap(),
                target: target.join().unwrap(),
            }
        })
    })
}

fn ca(broker: &Broker) -> PathBuf {
    broker.tls_ca_pem().expect("a TLS broker")
}

fn mechanism_name(m: Mechanism) -> &'static str {
    m.name()
}

async fn secure_client(broker: &Broker, mechanism: Mechanism) -> KafkaClient {
    let mut config = ClientConfig::new(&broker.bootstrap());
    config.security.tls = Some(TlsConfig {
        ca_file: ca(broker),
        server_name: None,
    });
    config.security.sasl = Some(SaslConfig {
        mechanism,
        username: USER.to_owned(),
        password: Secret::new(PASSWORD),
    });
    KafkaClient::connect(config)
        .await
        .expect("test client connects over SASL_SSL")
}

/// Produces `n` records (keys, headers, null values) to each of `partitions` partitions of
/// `topic` with confluent-kafka from the test venv (this build's rdkafka has no OpenSSL);
/// partition 1 is lz4-compressed, so byte-exactness covers compressed batches too.
fn produce(broker: &Broker, topic: &str, partitions: i32, n: usize) {
    let mut config: BTreeMap<String, String> = broker
        .client_config(Some((SaslMechanism::ScramSha512, USER, PASSWORD)))
        .into_iter()
        .collect();
    config.insert("linger.ms".into(), "50".into());
    config.insert("acks".into(), "all".into());
    let script = r#"
import json, sys
from confluent_kafka import Producer
config, topic, partitions, n = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
failed = []
for p in range(partitions):
    producer = Producer(dict(config, **({"compression.type": "lz4"} if p == 1 else {})))
    for i in range(n):
        producer.produce(topic, partition=p, key=None if i % 5 == 0 else b"key-%d" % (i % 7),
                         value=None if i % 7 == 3 else (b"v-%d-" % i) + bytes(range(256)) * (i % 4),
                         headers=[("h", b"1"), ("h", None), ("bin", bytes([0, 255, i % 256]))],
                         on_delivery=lambda err, msg: err and failed.append(str(err)))
    producer.flush(60)
if failed:
    sys.exit("delivery failed: %s" % failed[:3])
"#;
    let config = serde_json::to_string(&config).unwrap();
    let output = std::process::Command::new(strait_testkit::python())
        .args([
            "-c",
            script,
            &config,
            topic,
            &partitions.to_string(),
            &n.to_string(),
        ])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "producing to {topic} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// How strait reaches one cluster in a test config.
#[derive(Clone)]
struct Side<'a> {
    broker: &'a Broker,
    mechanism: Mechanism,
    /// Written as `password = ...` when set; otherwise strait gets it from `password_env`.
    password_in_file: Option<&'a str>,
    ca_file: PathBuf,
}

impl<'a> Side<'a> {
    fn new(broker: &'a Broker, mechanism: Mechanism) -> Self {
        Self {
            broker,
            mechanism,
            password_in_file: Some(PASSWORD),
            ca_file: ca(broker),
        }
    }

    fn toml(&self, name: &str) -> String {
        let password = match self.password_in_file {
            Some(p) => format!("password = \"{p}\""),
            None => format!("password_env = \"{}_PW\"", name.to_uppercase()),
        };
        format!(
            "[{name}]\nbootstrap_servers = \"{}\"\n[{name}.security.tls]\nca_file = \"{}\"\n\
             [{name}.security.sasl]\nmechanism = \"{}\"\nusername = \"{USER}\"\n{password}\n",
            self.broker.bootstrap(),
            self.ca_file.display(),
            mechanism_name(self.mechanism),
        )
    }
}

fn write_config(
    dir: &Path,
    source: &Side<'_>,
    target: &Side<'_>,
    topic: &str,
    extra: &str,
) -> PathBuf {
    let path = dir.join("strait.toml");
    let text = format!(
        "{}{}[mirror]\ntopics = [\"{topic}\"]\ntopic_refresh_interval = \"1s\"\n\
         [groups]\ninterval = \"200ms\"\n[state]\ndir = \"{}\"\n{extra}",
        source.toml("source"),
        target.toml("target"),
        dir.join("state").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `strait run`; killed when dropped.
struct Strait {
    child: Child,
    stderr: PathBuf,
    stdout: PathBuf,
}

impl Drop for Strait {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &Path, env: &[(&str, &str)]) -> Strait {
    let dir = config.parent().unwrap();
    let (stdout, stderr) = (dir.join("stdout.log"), dir.join("stderr.log"));
    let mut cmd = strait_cmd();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .args(["run", "--config"])
        .arg(config)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("strait starts");
    Strait {
        child,
        stderr,
        stdout,
    }
}

/// Runs `strait run` that is expected to fail; returns its output (fails after 60 s).
fn run_to_failure(config: &Path, env: &[(&str, &str)]) -> Output {
    let mut strait = spawn(config, env);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = strait.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "strait hangs instead of failing:\n{}",
            std::fs::read_to_string(&strait.stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "strait run succeeded");
    Output {
        status,
        stdout: std::fs::read(&strait.stdout).unwrap(),
        stderr: std::fs::read(&strait.stderr).unwrap(),
    }
}

/// One mirror run over SASL_SSL with the given mechanisms: 2 partitions of records and a
/// group commit on the source arrive on the target, the batches byte for byte.
async fn mirror_with(source_mech: Mechanism, target_mech: Mechanism, env_password: bool) {
    let c = clusters();
    let topic = unique("sec");
    let group = unique("sec-group");
    let src = secure_client(&c.source, source_mech).await;
    let tgt = secure_client(&c.target, target_mech).await;
    create_topic(&src, &topic, 2, &[]).await;
    produce(&c.source, &topic, 2, 25);

    let dir = tempfile::tempdir().unwrap();
    let source = Side::new(&c.source, source_mech);
    let mut target = Side::new(&c.target, target_mech);
    let mut env = Vec::new();
    if env_password {
        target.password_in_file = None;
        env.push(("TARGET_PW", PASSWORD));
    }
    let config = write_config(dir.path(), &source, &target, &topic, "");
    let strait = spawn(&config, &env);

    let committed: BTreeMap<(String, i32), CommittedOffset> = [(0, 10), (1, 25)]
        .into_iter()
        .map(|(p, o)| {
            let offset = CommittedOffset {
                offset: o,
                leader_epoch: -1,
                metadata: None,
            };
            ((topic.clone(), p), offset)
        })
        .collect();
    src.retrying("commit", || src.offset_commit(&group, &committed))
        .await
        .unwrap();

    let label = format!("{} -> {}", source_mech.name(), target_mech.name());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let synced = tgt.offset_fetch(&group, None).await.unwrap_or_default();
        let offsets: Vec<i64> = [0, 1]
            .iter()
            .map(|p| synced.get(&(topic.clone(), *p)).map_or(-1, |c| c.offset))
            .collect();
        if offsets == [10, 25] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: group offsets not synced (target has {offsets:?}):\n{}",
            std::fs::read_to_string(&strait.stderr).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for p in 0..2 {
        let want = fetch_all(
            &src,
            &topic,
            p,
            strait_linker::client::data::Isolation::ReadUncommitted,
        )
        .await;
        let got = fetch_all(
            &tgt,
            &topic,
            p,
            strait_linker::client::data::Isolation::ReadUncommitted,
        )
        .await;
        assert_eq!(got.end, want.end, "{label}: partition {p} end");
        assert_eq!(
            got.batches.len(),
            want.batches.len(),
            "{label}: batch count"
        );
        for (g, w) in got.batches.iter().zip(&want.batches) {
            assert_eq!(g.header().base_offset, w.header().base_offset, "{label}");
            // The records section is byte-exact, and so is every header field a consumer
            // sees. The producer id, epoch and sequence are strait's own on the target (and
            // the CRC follows them); the partition leader epoch is the target broker's.
            assert_eq!(
                g.records_section(),
                w.records_section(),
                "{label}: records differ"
            );
            let (gh, wh) = (g.header(), w.header());
            assert_eq!(
                (
                    gh.attributes,
                    gh.last_offset_delta,
                    gh.base_timestamp,
                    gh.max_timestamp
                ),
                (
                    wh.attributes,
                    wh.last_offset_delta,
                    wh.base_timestamp,
                    wh.max_timestamp
                ),
                "{label}: batch header differs"
            );
            assert_eq!(gh.record_count, wh.record_count, "{label}");
            g.verify_crc().expect("the target batch's CRC holds");
        }
    }
    drop(strait);
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_and_group_sync_over_sasl_ssl_with_every_mechanism() {
    // Each mechanism on each side at least once; one run reads its password from the
    // environment (`password_env`).
    tokio::join!(
        mirror_with(Mechanism::Plain, Mechanism::ScramSha512, false),
        mirror_with(Mechanism::ScramSha256, Mechanism::Plain, true),
        mirror_with(Mechanism::ScramSha512, Mechanism::ScramSha256, false),
    );
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_wrong_password_is_an_authentication_error_naming_the_cluster() {
    let c = clusters();
    for (mechanism, wrong_side) in [
        (Mechanism::Plain, "source"),
        (Mechanism::ScramSha256, "target"),
        (Mechanism::ScramSha512, "source"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut source = Side::new(&c.source, mechanism);
        let mut target = Side::new(&c.target, mechanism);
        let side = if wrong_side == "source" {
            &mut source
        } else {
            &mut target
        };
        side.password_in_file = Some(WRONG);
        let config = write_config(dir.path(), &source, &target, "never", "");
        let started = Instant::now();
        let output = run_to_failure(&config, &[]);
        let all = text(&output);
        assert!(
            all.contains(&format!("cannot reach the {wrong_side} cluster at")),
            "{mechanism:?}: {all}"
        );
        assert!(all.contains("authentication with"), "{mechanism:?}: {all}");
        assert!(
            all.to_lowercase().contains("invalid username or password")
                || all.contains("Authentication failed"),
            "{all}"
        );
        assert!(
            !all.contains(WRONG) && !all.contains(PASSWORD),
            "a password in: {all}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn an_untrusted_ca_is_a_tls_error_naming_the_cluster() {
    let c = clusters();
    let dir = tempfile::tempdir().unwrap();
    // The target's CA did not sign the source's certificate.
    let mut source = Side::new(&c.source, Mechanism::ScramSha512);
    source.ca_file = ca(&c.target);
    let target = Side::new(&c.target, Mechanism::ScramSha512);
    let config = write_config(dir.path(), &source, &target, "never", "");
    let all = text(&run_to_failure(&config, &[]));
    assert!(all.contains("cannot reach the source cluster at"), "{all}");
    assert!(all.contains("TLS: invalid peer certificate"), "{all}");
    assert!(!all.contains(PASSWORD), "{all}");
}

// ---------------------------------------------------------------------------------------------
// Secrets: never in logs, metrics, API answers or errors.

/// One answer of the control API over HTTPS: status, and the whole raw response.
struct Answer {
    status: u16,
    body: String,
    raw: String,
}

/// An HTTPS client of strait's API trusting `ca`: one connection per request, HTTP/1.1.
async fn https(
    addr: &str,
    ca: &Path,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Answer {
    use strait_linker::client::Security;
    let security = Security {
        tls: Some(TlsConfig {
            ca_file: ca.to_owned(),
            server_name: None,
        }),
        sasl: None,
    };
    let mut stream = strait_linker::client::transport::connect(addr, &security)
        .await
        .expect("HTTPS connection to the API");
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if let Some(auth) = auth {
        request.push_str(&format!("authorization: {auth}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        request.push_str("content-type: application/json\r\n");
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Answer { status, body, raw }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Every form a secret could take in a log line: as is, as the bytes of a Debug-printed
/// buffer, and inside a base64 SASL PLAIN message.
fn leak_forms(secret: &str) -> Vec<String> {
    let bytes = format!("{:?}", secret.as_bytes());
    vec![
        secret.to_owned(),
        bytes[1..bytes.len() - 1].to_owned(),
        base64(format!("\0{USER}\0{secret}").as_bytes()),
        base64(secret.as_bytes()),
    ]
}

/// Standard base64 with padding (enough for the leak check; no dependency needed).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [PASSWORD, WRONG, TOKEN, ENV_TOKEN] {
        for form in leak_forms(secret) {
            assert!(
                !text.contains(&form),
                "{what} contains the secret {secret:?} (as {form:?}):\n{text}"
            );
        }
    }
}

/// Method, path, `Authorization` header, body, expected status.
type Call<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, u16);

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_appear_in_logs_metrics_answers_or_errors() {
    let c = clusters();
    let topic = unique("sec-leak");
    let src = secure_client(&c.source, Mechanism::ScramSha512).await;
    create_topic(&src, &topic, 1, &[]).await;
    produce(&c.source, &topic, 1, 10);

    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("alice:{TOKEN}\n")).unwrap();
    // The API serves HTTPS with the source broker's certificate and key (one PEM file).
    let server_pem = c.source.dir().join("tls").join("server.pem");
    let api = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
         [log]\nformat = \"json\"\nlevel = \"debug\"\n",
        tokens.display(),
        server_pem.display(),
        server_pem.display(),
    );
    let mut source = Side::new(&c.source, Mechanism::ScramSha512);
    source.password_in_file = None;
    let target = Side::new(&c.target, Mechanism::Plain);
    let config = write_config(dir.path(), &source, &target, &topic, &api);
    let strait = spawn(
        &config,
        &[("SOURCE_PW", PASSWORD), ("STRAIT_API_TOKEN", ENV_TOKEN)],
    );
    let addr = wait_for_listen(&strait.stderr).await;
    let ca = ca(&c.source);
    let bearer = format!("Bearer {TOKEN}");
    let env_bearer = format!("Bearer {ENV_TOKEN}");

    // Wait until the topic is mirrored, so status and metrics have something to say.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = https(&addr, &ca, "GET", "/v1/status", Some(&bearer), None).await;
        if status.status == 200 && status.body.contains(&topic) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let dry = format!(
        r#"{{"name":"leak","topics":["{topic}"],"fence":{{"mode":"manual"}},"dry_run":true}}"#
    );
    let wave = format!(r#"{{"name":"leak","topics":["{topic}"],"fence":{{"mode":"manual"}}}}"#);
    let wrong_bearer = format!("Bearer {PASSWORD}");
    let basic = format!("Basic {TOKEN}");
    let calls: Vec<Call<'_>> = vec![
        ("GET", "/healthz", None, None, 200),
        ("GET", "/readyz", None, None, 200),
        ("GET", "/v1/status", Some(&bearer), None, 200),
        ("GET", "/v1/status", Some(&env_bearer), None, 200),
        ("GET", "/v1/status", None, None, 401),
        ("GET", "/v1/status", Some(&wrong_bearer), None, 401),
        ("GET", "/v1/status", Some(&basic), None, 401),
        ("GET", "/v1/openapi.json", Some(&bearer), None, 200),
        ("GET", "/v1/cutovers", Some(&bearer), None, 200),
        (
            "POST",
            "/v1/cutovers",
            Some(&bearer),
            Some("{not json"),
            400,
        ),
        (
            "POST",
            "/v1/cutovers",
            Some(&bearer),
            Some(r#"{"topics":[]}"#),
            400,
        ),
        ("POST", "/v1/cutovers", Some(&bearer), Some(&dry), 200),
        ("POST", "/v1/cutovers", Some(&env_bearer), Some(&wave), 201),
        ("GET", "/v1/cutovers/nope", Some(&bearer), None, 404),
        (
            "POST",
            "/v1/cutovers/nope/advance",
            Some(&bearer),
            Some(r#"{"to":"fenced"}"#),
            404,
        ),
        ("DELETE", "/v1/status", Some(&bearer), None, 405),
        ("GET", "/nope", None, None, 404),
        ("GET", "/metrics", None, None, 200),
    ];
    let mut everything = String::new();
    for (method, path, auth, body, want) in calls {
        let answer = https(&addr, &ca, method, path, auth, body).await;
        assert_eq!(answer.status, want, "{method} {path}: {}", answer.body);
        assert_no_secret(&format!("the answer to {method} {path}"), &answer.raw);
        everything.push_str(&answer.raw);
    }
    // The cutover records the token's name (`env`) as its actor, never the token.
    assert!(
        everything.contains("\"env\""),
        "no actor name:\n{everything}"
    );
    let metrics = https(&addr, &ca, "GET", "/metrics", None, None).await;
    assert!(metrics.body.contains("strait_"), "{}", metrics.body);
    assert_no_secret("/metrics", &metrics.raw);
    // `strait cutover` reaches the HTTPS API when told which CA to trust, and not otherwise.
    let cli = |ca_file: Option<&Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strait"));
        cmd.args(["cutover", "status", "--api", &format!("https://{addr}")])
            .env("STRAIT_API_TOKEN", TOKEN)
            .env_remove("STRAIT_API_URL")
            .env_remove("STRAIT_API_CA_FILE");
        if let Some(f) = ca_file {
            cmd.arg("--api-ca-file").arg(f);
        }
        cmd.output().unwrap()
    };
    let trusted = cli(Some(&ca));
    assert!(trusted.status.success(), "{}", text(&trusted));
    assert!(text(&trusted).contains("leak"), "{}", text(&trusted));
    assert_no_secret("strait cutover status", &text(&trusted));
    let untrusted = cli(None);
    assert!(!untrusted.status.success(), "{}", text(&untrusted));
    assert_no_secret("strait cutover status (untrusted)", &text(&untrusted));
    // Plain HTTP on the HTTPS port gets nothing.
    {
        let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut answer)).await;
        assert!(!answer.starts_with(b"HTTP/"), "plain HTTP answered");
    }
    // A clean stop, then read everything strait wrote.
    let pid = strait.child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let mut strait = strait;
    let deadline = Instant::now() + Duration::from_secs(30);
    while strait.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = format!(
        "{}{}",
        std::fs::read_to_string(&strait.stdout).unwrap(),
        std::fs::read_to_string(&strait.stderr).unwrap()
    );
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "not a debug log:\n{logs}"
    );
    assert!(logs.contains("\"tls\":true"), "{logs}");
    assert_no_secret("strait's output at debug level", &logs);

    // A run whose authentication fails, at debug level: its output names the cluster and
    // holds neither the wrong password nor the right one.
    let failing = tempfile::tempdir().unwrap();
    let mut target = Side::new(&c.target, Mechanism::ScramSha256);
    target.password_in_file = Some(WRONG);
    let config = write_config(
        failing.path(),
        &source,
        &target,
        &topic,
        "[log]\nlevel = \"debug\"\n",
    );
    let output = run_to_failure(&config, &[("SOURCE_PW", PASSWORD)]);
    let all = text(&output);
    assert!(all.contains("cannot reach the target cluster"), "{all}");
    assert_no_secret("a failed authentication's output", &all);
}

/// `strait run` with a bad config exits non-zero and names the problem.
#[test]
fn bad_configs_exit_nonzero_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let base = |extra_mirror: &str, bootstrap: &str| {
        format!(
            "[source]\nbootstrap_servers = \"{bootstrap}\"\n[target]\nbootstrap_servers = \"127.0.0.1:1\"\n[mirror]\ntopics = [\"a\"]\n{extra_mirror}\n[state]\ndir = \"{}\"\n",
            dir.path().join("state").display()
        )
    };
    let cases = [
        (base("colour = \"blue\"", "127.0.0.1:1"), "colour"),
        (
            base("exclude = [\"(\"]", "127.0.0.1:1"),
            "mirror.exclude[0]",
        ),
        (base("", "not-an-address"), "source.bootstrap_servers"),
        (base("", "127.0.0.1:1"), "cannot reach the source cluster"),
    ];
    for (i, (toml, expect)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&path, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
            .args(["run", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} should fail");
        assert!(
            stderr.contains(expect),
            "case {i}: expected `{expect}` in: {stderr}"
        );
    }
    // `verify --topic` with a bad regex fails before touching state or clusters.
    let state = dir.path().join("state-verify");
    let path = dir.path().join("verify.toml");
    std::fs::write(
        &path,
        base("", "127.0.0.1:1").replace(
            &dir.path().join("state").display().to_string(),
            &state.display().to_string(),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["verify", "--topic", "(", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--topic: invalid regex"), "{stderr}");
    assert!(!state.exists(), "no state directory was created");
}
