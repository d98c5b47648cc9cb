//! [`Broker`]: a running broker process, driven through `scripts/kafka.sh` / `scripts/tansu.sh`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;

use crate::paths;

/// Which broker implementation a [`Broker`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrokerKind {
    /// Apache Kafka 4.3.1, a single KRaft node (broker + controller).
    Kafka,
    /// tansu 0.6.0.
    Tansu,
}

impl BrokerKind {
    fn script(self) -> &'static str {
        match self {
            BrokerKind::Kafka => "kafka.sh",
            BrokerKind::Tansu => "tansu.sh",
        }
    }
}

impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BrokerKind::Kafka => "kafka",
            BrokerKind::Tansu => "tansu",
        })
    }
}

/// SASL mechanisms the testkit's Kafka brokers accept (for every configured user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// The name used by Kafka and librdkafka (`sasl.mechanism`).
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A running broker process (plus, for tansu on S3, its moto server).
///
/// Shared brokers ([`crate::kafka_source`] …) are `&'static` and live until the test binary
/// exits. Dedicated brokers ([`crate::start_kafka`], [`crate::start_tansu`]) are killed on
/// drop; their directory is deleted unless the test is panicking, in which case it is kept
/// and its path printed.
pub struct Broker {
    pub(crate) kind: BrokerKind,
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) bootstrap: String,
    pub(crate) security_protocol: &'static str,
    pub(crate) tls_ca: Option<PathBuf>,
    pub(crate) shared: bool,
    pub(crate) running: bool,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("bootstrap", &self.bootstrap)
            .field("security_protocol", &self.security_protocol)
            .field("dir", &self.dir)
            .field("running", &self.running)
            .finish()
    }
}

impl Broker {
    /// `127.0.0.1:PORT` of the client listener.
    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// The testkit's name for this broker (`kafka-source`, `kafka-3`, …); also its directory name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The broker's directory: config, data, logs, pid files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The broker's main log: `logs/server.log` (Kafka) or `tansu.log` (tansu).
    pub fn log_path(&self) -> PathBuf {
        match self.kind {
            BrokerKind::Kafka => self.dir.join("logs").join("server.log"),
            BrokerKind::Tansu => self.dir.join("tansu.log"),
        }
    }

    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub fn security_protocol(&self) -> &'static str {
        self.security_protocol
    }

    /// The CA certificate (PEM) clients must trust when the broker uses TLS.
    pub fn tls_ca_pem(&self) -> Option<PathBuf> {
        self.tls_ca.clone()
    }

    /// librdkafka-style client settings for this broker (`bootstrap.servers`,
    /// `security.protocol`, `ssl.ca.location`, `sasl.*`), usable with rdkafka and with Python's
    /// confluent-kafka. `sasl` is `(mechanism, user, password)`.
    pub fn client_config(
        &self,
        sasl: Option<(SaslMechanism, &str, &str)>,
    ) -> Vec<(String, String)> {
        let mut cfg = vec![
            ("bootstrap.servers".to_owned(), self.bootstrap.clone()),
            (
                "security.protocol".to_owned(),
                self.security_protocol.to_owned(),
            ),
        ];
        if let Some(ca) = &self.tls_ca {
            cfg.push(("ssl.ca.location".to_owned(), ca.display().to_string()));
        }
        if let Some((mechanism, user, password)) = sasl {
            cfg.push(("sasl.mechanism".to_owned(), mechanism.as_str().to_owned()));
            cfg.push(("sasl.username".to_owned(), user.to_owned()));
            cfg.push(("sasl.password".to_owned(), password.to_owned()));
        }
        cfg
    }

    /// Whether the testkit believes the broker process is running (false after
    /// [`stop`](Self::stop) / [`kill`](Self::kill) until [`restart`](Self::restart)).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Graceful stop (SIGTERM; SIGKILL after 30 s for Kafka, 10 s for tansu). For tansu on S3
    /// the moto server keeps running, so a [`restart`](Self::restart) finds the data again.
    pub fn stop(&mut self) {
        self.assert_dedicated("stop");
        self.script(&["stop"]);
        self.running = false;
    }

    /// SIGKILL the broker process (moto, for tansu on S3, keeps running).
    pub fn kill(&mut self) {
        self.assert_dedicated("kill");
        self.script(&["kill"]);
        self.running = false;
    }

    /// Stop the broker if it runs, then start it again on the same port with the same
    /// directory. Kafka keeps its data (and config, users, ACLs). tansu with `memory://`
    /// storage starts EMPTY again; tansu on S3 keeps its data (moto keeps running).
    pub fn restart(&mut self) {
        self.assert_dedicated("restart");
        let owner = std::process::id().to_string();
        let out = run_script(
            self.kind,
            &["restart", "--dir", &self.dir_str(), "--owner", &owner],
        )
        .unwrap_or_else(|e| panic!("strait-testkit: restarting {} failed: {e}", self.name));
        assert_eq!(
            out, self.bootstrap,
            "strait-testkit: {} came back on a different address",
            self.name
        );
        self.running = true;
    }

    fn assert_dedicated(&self, what: &str) {
        assert!(
            !self.shared,
            "strait-testkit: cannot {what} the shared broker {}; use a dedicated one (start_kafka/start_tansu)",
            self.name
        );
    }

    fn dir_str(&self) -> String {
        self.dir.display().to_string()
    }

    fn script(&self, args: &[&str]) {
        let dir = self.dir_str();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--dir", &dir]);
        if let Err(e) = run_script(self.kind, &all) {
            panic!(
                "strait-testkit: `{} {}` failed: {e}",
                self.kind.script(),
                all.join(" ")
            );
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.shared {
            return;
        }
        let dir = self.dir_str();
        let args: &[&str] = match self.kind {
            BrokerKind::Kafka => &["kill", "--dir", &dir],
            BrokerKind::Tansu => &["kill", "--dir", &dir, "--all"],
        };
        if let Err(e) = run_script(self.kind, args) {
            eprintln!("strait-testkit: stopping {} failed: {e}", self.name);
        }
        if std::thread::panicking() {
            eprintln!(
                "strait-testkit: test failed; keeping {} broker `{}` directory {} (log: {})",
                self.kind,
                self.name,
                self.dir.display(),
                self.log_path().display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// How a script run failed.
#[derive(Debug)]
pub(crate) struct ScriptError {
    /// Exit code: 2 usage, 3 port in use, 4 not installed, 1 anything else.
    pub(crate) code: Option<i32>,
    pub(crate) message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "exit code {code}\n{}", self.message),
            None => write!(f, "killed by a signal\n{}", self.message),
        }
    }
}

pub(crate) const EXIT_PORT_IN_USE: i32 = 3;
pub(crate) const EXIT_NOT_INSTALLED: i32 = 4;

/// Runs `bash scripts/<kind>.sh ARGS`, returning the last stdout line (the bootstrap address
/// for start/restart). Passes the testkit's idea of every location to the script.
pub(crate) fn run_script(kind: BrokerKind, args: &[&str]) -> Result<String, ScriptError> {
    let script = paths::scripts_dir().join(kind.script());
    let output = Command::new("bash")
        .arg(&script)
        .args(args)
        .env("STRAIT_CACHE", paths::cache_dir())
        .env("STRAIT_KAFKA_LIBS", paths::kafka_libs())
        .env("STRAIT_TANSU_BIN", paths::tansu_bin())
        .env("STRAIT_PYTHON", paths::python())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ScriptError {
            code: Some(1),
            message: format!("cannot run bash {}: {e}", script.display()),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        Ok(stdout.lines().last().unwrap_or_default().trim().to_owned())
    } else {
        Err(ScriptError {
            code: output.status.code(),
            message: format!("{}{}", stdout, String::from_utf8_lossy(&output.stderr)),
        })
    }
}

/// Starts a broker with fresh ports until it does not hit a port already in use.
/// `make_args()` returns the script arguments, with newly picked ports on every call.
pub(crate) fn start_with_retries(
    kind: BrokerKind,
    dir: &Path,
    install_hint: &str,
    mut make_args: impl FnMut() -> Vec<String>,
) -> Result<String, String> {
    const ATTEMPTS: usize = 5;
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let _ = fs::remove_dir_all(dir);
        let args = make_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match run_script(kind, &args) {
            Ok(bootstrap) => return Ok(bootstrap),
            Err(e) if e.code == Some(EXIT_PORT_IN_USE) => last = e.to_string(),
            Err(e) if e.code == Some(EXIT_NOT_INSTALLED) => {
                return Err(format!("{kind} is not installed. {install_hint}\n{e}"));
            }
            Err(e) => {
                return Err(format!(
                    "starting {kind} in {} failed: {e}\nbroker directory kept: {}",
                    dir.display(),
                    dir.display()
                ));
            }
        }
    }
    Err(format!(
        "{kind}: ports kept being taken after {ATTEMPTS} attempts: {last}"
    ))
}

/// Registry of shared brokers, printed by a panic hook so failing tests show their logs.
pub(crate) fn register_shared(broker: &Broker) {
    use std::sync::Mutex;
    static SHARED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static HOOK: Once = Once::new();
    SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(format!(
            "{} {} ({}): {}",
            broker.kind,
            broker.name,
            broker.bootstrap,
            broker.log_path().display()
        ));
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            if let Ok(shared) = SHARED.try_lock() {
                eprintln!("strait-testkit: shared broker logs (kept after the run):");
                for line in shared.iter() {
                    eprintln!("  {line}");
                }
            }
        }));
    });
}
