//! Apache Kafka brokers: shared plain ones and dedicated ones with SASL/TLS/ACLs.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::broker::{self, Broker, BrokerKind};
use crate::{paths, ports, tls};

const INSTALL_HINT: &str = "Install the Kafka jars with `scripts/kafka.sh install` \
    (or run `scripts/test.sh`, which installs everything), or point STRAIT_KAFKA_LIBS at them.";

/// A SASL user; the broker accepts it with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
/// Names and passwords may only use `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslUser {
    pub name: String,
    pub password: String,
}

/// Options for a dedicated Kafka broker ([`start_kafka`]). The default is a PLAINTEXT broker
/// like the shared ones.
///
/// The client listener's protocol follows from the options: `PLAINTEXT`, `SSL` (tls),
/// `SASL_PLAINTEXT` (users) or `SASL_SSL` (users + tls). The broker itself authenticates as the
/// reserved super user `broker` (PLAIN), so no user may be called that.
#[derive(Debug, Clone, Default)]
pub struct KafkaOptions {
    /// SASL users (PLAIN + SCRAM-SHA-256 + SCRAM-SHA-512 each). Any user enables SASL.
    pub users: Vec<SaslUser>,
    /// TLS on the client listener, with a fresh test CA ([`Broker::tls_ca_pem`]) and a server
    /// certificate for `127.0.0.1` and `localhost`.
    pub tls: bool,
    /// `StandardAuthorizer` with `allow.everyone.if.no.acl.found=false`; needs users.
    pub authorizer: bool,
    /// Extra super users (names of `users`), meaningful with `authorizer`.
    pub super_users: Vec<String>,
    /// Extra `server.properties` lines, applied last (they override the testkit's defaults).
    pub config: Vec<(String, String)>,
    /// JVM max heap (`-Xmx`), default `512m`.
    pub heap: Option<String>,
}

impl KafkaOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a SASL user (usable with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push(SaslUser {
            name: name.to_owned(),
            password: password.to_owned(),
        });
        self
    }

    /// Enables TLS on the client listener.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Enables the StandardAuthorizer with `super_user` (which must also be a [`user`](Self::user)).
    pub fn authorizer(mut self, super_user: &str) -> Self {
        self.authorizer = true;
        self.super_users.push(super_user.to_owned());
        self
    }

    /// Adds a `server.properties` setting.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets the JVM max heap, e.g. `"1g"`.
    pub fn heap(mut self, heap: &str) -> Self {
        self.heap = Some(heap.to_owned());
        self
    }

    fn security_protocol(&self) -> &'static str {
        match (self.users.is_empty(), self.tls) {
            (true, false) => "PLAINTEXT",
            (true, true) => "SSL",
            (false, false) => "SASL_PLAINTEXT",
            (false, true) => "SASL_SSL",
        }
    }
}

/// The shared source cluster: a PLAINTEXT Kafka started once per test binary.
pub fn kafka_source() -> &'static Broker {
    static BROKER: OnceLock<Result<Broker, String>> = OnceLock::new();
    shared(&BROKER, "kafka-source")
}

/// The shared target cluster: a second PLAINTEXT Kafka started once per test binary.
pub fn kafka_target() -> &'static Broker {
    static BROKER: OnceLock<Result<Broker, String>> = OnceLock::new();
    shared(&BROKER, "kafka-target")
}

fn shared(cell: &'static OnceLock<Result<Broker, String>>, name: &str) -> &'static Broker {
    let result = cell.get_or_init(|| {
        let broker = try_start(&KafkaOptions::default(), name, true)?;
        broker::register_shared(&broker);
        Ok(broker)
    });
    match result {
        Ok(broker) => broker,
        Err(e) => panic!("strait-testkit: shared Kafka `{name}` is not available: {e}"),
    }
}

/// Starts a dedicated Kafka broker (killed when the returned [`Broker`] is dropped).
///
/// Panics if Kafka cannot be started (e.g. the jars are not installed; the message names the
/// install command).
pub fn start_kafka(opts: KafkaOptions) -> Broker {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = format!("kafka-{}", COUNTER.fetch_add(1, Ordering::Relaxed) + 1);
    try_start(&opts, &name, false).unwrap_or_else(|e| panic!("strait-testkit: {e}"))
}

fn try_start(opts: &KafkaOptions, name: &str, shared: bool) -> Result<Broker, String> {
    let libs = paths::kafka_libs();
    if !libs.join(".installed").exists() {
        return Err(format!(
            "Kafka {} jars not found in {}. {INSTALL_HINT}",
            paths::KAFKA_VERSION,
            libs.display()
        ));
    }
    if opts.authorizer && opts.users.is_empty() {
        return Err("KafkaOptions: the authorizer needs at least one SASL user".to_owned());
    }
    let dir = paths::run_dir().join(name);
    let owner = std::process::id().to_string();
    let mut tls_files = None;
    let bootstrap = broker::start_with_retries(BrokerKind::Kafka, &dir, INSTALL_HINT, || {
        let mut args: Vec<String> = vec![
            "start".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--port".into(),
            ports::free_port().to_string(),
            "--controller-port".into(),
            ports::free_port().to_string(),
            "--owner".into(),
            owner.clone(),
        ];
        for user in &opts.users {
            args.push("--user".into());
            args.push(format!("{}:{}", user.name, user.password));
        }
        if opts.tls {
            // Generated outside the broker dir (the script refuses to start in a used dir)
            // and copied into it by the script.
            let files = tls::generate(&paths::run_dir().join(format!("{name}-tls")));
            args.extend([
                "--tls-pem".into(),
                files.server_pem.display().to_string(),
                "--tls-ca".into(),
                files.ca_pem.display().to_string(),
            ]);
            tls_files = Some(files);
        }
        if opts.authorizer {
            args.push("--authorizer".into());
        }
        for user in &opts.super_users {
            args.push("--super-user".into());
            args.push(user.clone());
        }
        for (key, value) in &opts.config {
            args.push("--config".into());
            args.push(format!("{key}={value}"));
        }
        if let Some(heap) = &opts.heap {
            args.push("--heap".into());
            args.push(heap.clone());
        }
        args
    })?;
    if let Some(files) = tls_files {
        let _ = std::fs::remove_dir_all(files.dir);
    }
    Ok(Broker {
        kind: BrokerKind::Kafka,
        name: name.to_owned(),
        tls_ca: opts.tls.then(|| dir.join("tls").join("ca.pem")),
        dir,
        bootstrap,
        security_protocol: opts.security_protocol(),
        shared,
        running: true,
    })
}
