//! Self-tests of the broker harness against real Kafka and tansu processes.
//!
//! Clients are Python's confluent-kafka (tests/testkit/python/kcheck.py), independent of
//! strait's own Kafka client.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use strait_testkit::{
    Broker, BrokerKind, KafkaOptions, SaslMechanism, TansuStorage, kafka_source, kafka_target,
    python, python_scripts_dir, scripts_dir, start_kafka, start_tansu, tansu_target, unique,
};

/// Result of one kcheck.py run.
#[derive(Debug)]
struct Check {
    code: Option<i32>,
    output: String,
}

impl Check {
    fn assert_ok(&self, what: &str) {
        assert_eq!(self.code, Some(0), "{what} failed:\n{}", self.output);
    }
}

/// Waits for `child` up to `timeout`, killing it when it takes longer; returns its exit code
/// and combined output.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> Check {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let output = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    Check {
        code: status.and_then(|s| s.code()),
        output,
    }
}

/// `kcheck.py ARGS` with the broker's client settings (plus `sasl`) appended.
fn kcheck(broker: &Broker, sasl: Option<(SaslMechanism, &str, &str)>, args: &[&str]) -> Check {
    let mut cmd = Command::new(python());
    cmd.arg(python_scripts_dir().join("kcheck.py"));
    cmd.arg(args[0]).arg(broker.bootstrap()).args(&args[1..]);
    for (key, value) in broker.client_config(sasl) {
        if key != "bootstrap.servers" {
            cmd.arg(format!("{key}={value}"));
        }
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    wait_with_timeout(child, Duration::from_secs(120))
}

fn assert_accepts_connections(broker: &Broker) {
    TcpStream::connect(broker.bootstrap())
        .unwrap_or_else(|e| panic!("{} does not accept connections: {e}", broker.bootstrap()));
}

/// Whether `pid` runs (a zombie waiting to be reaped does not count).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        })
        .unwrap_or(false)
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("pid")
}

#[test]
fn shared_kafka_brokers_round_trip() {
    let source = kafka_source();
    let target = kafka_target();
    assert_eq!(source.kind(), BrokerKind::Kafka);
    assert_ne!(source.bootstrap(), target.bootstrap());
    assert!(
        std::ptr::eq(source, kafka_source()),
        "one shared source per binary"
    );
    for broker in [source, target] {
        assert_accepts_connections(broker);
        assert!(broker.log_path().exists());
        let port: u16 = broker
            .bootstrap()
            .rsplit_once(':')
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert!(
            (20_000..32_768).contains(&port),
            "port {port} outside 20000..32768"
        );
        kcheck(broker, None, &["roundtrip", &unique("selftest")]).assert_ok("round-trip");
    }
}

#[test]
fn shared_tansu_round_trip() {
    let tansu = tansu_target();
    assert_eq!(tansu.kind(), BrokerKind::Tansu);
    assert_accepts_connections(tansu);
    kcheck(tansu, None, &["roundtrip", &unique("selftest")]).assert_ok("tansu round-trip");
}

#[test]
fn sasl_ssl_scram_with_authorizer() {
    let broker = start_kafka(
        KafkaOptions::new()
            .user("admin", "admin-secret")
            .user("alice", "alice-secret")
            .tls()
            .authorizer("admin"),
    );
    assert_eq!(broker.security_protocol(), "SASL_SSL");
    let ca = broker.tls_ca_pem().expect("TLS broker has a CA");
    assert!(ca.exists(), "{}", ca.display());

    for mechanism in [
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
        SaslMechanism::Plain,
    ] {
        kcheck(
            &broker,
            Some((mechanism, "alice", "alice-secret")),
            &["auth"],
        )
        .assert_ok(&format!("{mechanism:?} with the right password"));
        let wrong = kcheck(&broker, Some((mechanism, "alice", "wrong")), &["auth"]);
        assert_eq!(
            wrong.code,
            Some(3),
            "{mechanism:?} wrong password: {wrong:?}"
        );
        assert!(wrong.output.contains("auth-failed"), "{wrong:?}");
    }

    let topic = unique("acl");
    kcheck(
        &broker,
        Some((SaslMechanism::ScramSha512, "admin", "admin-secret")),
        &["roundtrip", &topic],
    )
    .assert_ok("super user round-trip");
    // alice authenticates but has no ACLs: the authorizer must refuse her.
    let denied = kcheck(
        &broker,
        Some((SaslMechanism::ScramSha256, "alice", "alice-secret")),
        &["consume", &topic, "3"],
    );
    assert_eq!(denied.code, Some(1), "{denied:?}");
    assert!(denied.output.contains("AUTHORIZATION_FAILED"), "{denied:?}");
}

#[test]
fn kafka_kill_and_restart_keep_data() {
    let mut broker = start_kafka(KafkaOptions::default());
    let bootstrap = broker.bootstrap();
    let topic = unique("durable");
    kcheck(&broker, None, &["produce", &topic, "5"]).assert_ok("produce");

    broker.kill();
    // SIGKILL is asynchronous: the socket closes when the kernel has torn the process down.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while TcpStream::connect(&bootstrap).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "killed broker still listens"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    broker.restart();
    assert_eq!(broker.bootstrap(), bootstrap);
    kcheck(&broker, None, &["consume", &topic, "5"]).assert_ok("consume after kill");

    broker.stop();
    broker.restart();
    kcheck(&broker, None, &["consume", &topic, "5"]).assert_ok("consume after stop");
}

#[test]
fn tansu_s3_round_trip_survives_restart() {
    let mut broker = start_tansu(TansuStorage::S3);
    let topic = unique("s3");
    kcheck(&broker, None, &["produce", &topic, "4"]).assert_ok("produce to tansu on s3");
    kcheck(&broker, None, &["consume", &topic, "4"]).assert_ok("consume from tansu on s3");
    broker.kill();
    broker.restart();
    kcheck(&broker, None, &["consume", &topic, "4"]).assert_ok("consume after restart");
}

#[test]
fn watchdog_stops_broker_when_owner_dies() {
    let mut owner = Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    let dir = std::env::temp_dir().join(unique("strait-watchdog"));
    let mut started = false;
    for attempt in 0..10u16 {
        let port = 20_000 + ((std::process::id() as u16 % 1_000) * 11 + attempt * 997) % 12_000;
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("bash")
            .arg(scripts_dir().join("tansu.sh"))
            .args(["start", "--dir"])
            .arg(&dir)
            .args([
                "--port",
                &port.to_string(),
                "--owner",
                &owner.id().to_string(),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run tansu.sh");
        if out.status.code() == Some(3) {
            continue; // port in use, try another
        }
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        started = true;
        break;
    }
    assert!(started, "no free port for the watchdog check");
    let tansu = read_pid(&dir.join("pids").join("tansu.pid"));
    let watchdog = read_pid(&dir.join("pids").join("watchdog.pid"));
    assert!(alive(tansu) && alive(watchdog));

    owner.kill().expect("kill owner");
    owner.wait().expect("reap owner");
    let deadline = Instant::now() + Duration::from_secs(20);
    while (alive(tansu) || alive(watchdog)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(tansu), "tansu {tansu} survived its owner");
    assert!(!alive(watchdog), "watchdog {watchdog} did not exit");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Run by `missing_tansu_panics_with_install_hint` in a child process with a bogus
/// STRAIT_TANSU_BIN; does nothing when run any other way.
#[test]
#[ignore = "helper, run in a child process by missing_tansu_panics_with_install_hint"]
fn child_start_tansu_without_binary() {
    if std::env::var_os("STRAIT_TESTKIT_SELFTEST_CHILD").is_some() {
        let _broker = start_tansu(TansuStorage::Memory);
    }
}

#[test]
fn missing_tansu_panics_with_install_hint() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_start_tansu_without_binary",
            "--nocapture",
        ])
        .env("STRAIT_TESTKIT_SELFTEST_CHILD", "1")
        .env("STRAIT_TANSU_BIN", "/nonexistent/tansu")
        .stdin(Stdio::null())
        .output()
        .expect("run child test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "must fail, not skip:\n{text}");
    assert!(text.contains("scripts/test.sh"), "{text}");
    assert!(text.contains("scripts/tansu.sh install"), "{text}");
}
