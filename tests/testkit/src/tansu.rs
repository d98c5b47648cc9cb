//! tansu brokers (memory:// or s3:// against a local moto server).
//!
//! tansu 0.6.0 quirks tests must live with: consumers need `fetch.wait.max.ms` <= 10; fetching
//! from an offset in the middle of a batch skips records; ListOffsets "latest" is wrong; no
//! transactions, DeleteRecords, ACLs (CreateAcls crashes librdkafka) or SASL on these
//! storages; `memory://` storage loses everything on restart.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::broker::{self, Broker, BrokerKind};
use crate::{paths, ports};

const INSTALL_HINT: &str = "Install tansu with `scripts/tansu.sh install` (about 11 minutes; \
    or run `scripts/test.sh`, which installs everything), or point STRAIT_TANSU_BIN at a tansu 0.6.0 binary.";

/// Where a tansu broker keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TansuStorage {
    /// `memory://`: fast; data is lost when tansu stops or restarts.
    #[default]
    Memory,
    /// `s3://`: a moto S3 server (from the test venv) is started next to tansu and owned by the
    /// same [`Broker`]; data survives tansu restarts while moto runs.
    S3,
}

/// The shared tansu target: `memory://` storage, started once per test binary.
pub fn tansu_target() -> &'static Broker {
    static BROKER: OnceLock<Result<Broker, String>> = OnceLock::new();
    let result = BROKER.get_or_init(|| {
        let broker = try_start(TansuStorage::Memory, "tansu-target", true)?;
        broker::register_shared(&broker);
        Ok(broker)
    });
    match result {
        Ok(broker) => broker,
        Err(e) => panic!("strait-testkit: shared tansu `tansu-target` is not available: {e}"),
    }
}

/// Starts a dedicated tansu broker (killed, with its moto server, when dropped).
///
/// Panics if tansu (or, for S3, the Python venv with moto) is not installed; the message names
/// the install command.
pub fn start_tansu(storage: TansuStorage) -> Broker {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = format!("tansu-{}", COUNTER.fetch_add(1, Ordering::Relaxed) + 1);
    try_start(storage, &name, false).unwrap_or_else(|e| panic!("strait-testkit: {e}"))
}

fn try_start(storage: TansuStorage, name: &str, shared: bool) -> Result<Broker, String> {
    let bin = paths::tansu_bin();
    if !bin.exists() {
        return Err(format!(
            "tansu {} not found at {}. {INSTALL_HINT}",
            paths::TANSU_VERSION,
            bin.display()
        ));
    }
    if storage == TansuStorage::S3 && !paths::python().exists() {
        return Err(format!(
            "tansu on S3 needs moto from the test venv, which is missing ({}). Install it with \
             `scripts/python-env.sh` (or run `scripts/test.sh`).",
            paths::python().display()
        ));
    }
    let dir = paths::run_dir().join(name);
    let owner = std::process::id().to_string();
    // Cluster id / memory namespace / bucket: unique so parallel runs never share a bucket.
    let cluster = crate::unique(name).to_lowercase();
    let bootstrap = broker::start_with_retries(BrokerKind::Tansu, &dir, INSTALL_HINT, || {
        let mut args: Vec<String> = vec![
            "start".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--port".into(),
            ports::free_port().to_string(),
            "--name".into(),
            cluster.clone(),
            "--owner".into(),
            owner.clone(),
        ];
        if storage == TansuStorage::S3 {
            args.extend([
                "--storage".into(),
                "s3".into(),
                "--moto-port".into(),
                ports::free_port().to_string(),
            ]);
        }
        args
    })?;
    Ok(Broker {
        kind: BrokerKind::Tansu,
        name: name.to_owned(),
        dir,
        bootstrap,
        security_protocol: "PLAINTEXT",
        tls_ca: None,
        shared,
        running: true,
    })
}
