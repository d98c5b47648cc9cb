//! Real brokers for strait's integration tests.
//!
//! Integration tests talk to **real** Apache Kafka 4.3.1 and tansu 0.6.0 processes on loopback
//! ports, never to fakes. This crate starts them through the shell scripts in `scripts/`
//! (`kafka.sh`, `tansu.sh`), which are also usable by hand and by benchmarks.
//!
//! # How it works
//!
//! * **Installation** is not done here: `scripts/test.sh` installs everything that is missing
//!   (Kafka jars from Maven Central via `scripts/kafka.sh install`, tansu via
//!   `scripts/tansu.sh install` = `cargo install`, the Python venv via `scripts/python-env.sh`)
//!   into `${STRAIT_CACHE:-$HOME/.cache/strait}`. If something is missing, starting a broker
//!   **panics** with a message naming the install command; tests are never skipped silently.
//! * **Locations** come from env vars, defaulting to the cache: `STRAIT_KAFKA_LIBS`,
//!   `STRAIT_TANSU_BIN`, `STRAIT_PYTHON`, `STRAIT_SCRIPTS` (the scripts dir; default: the
//!   checkout's `scripts/`), `STRAIT_CACHE`, and `STRAIT_TEST_BROKERS_DIR` (where broker
//!   directories go; default `<target>/strait-test-brokers`).
//! * **Ports** are picked at random in 20000–32000 (below Linux's ephemeral range), checked
//!   with a bind, and a start that still finds its port taken (another test binary won the
//!   race) is retried with new ports.
//! * **Processes**: each broker gets a directory
//!   `<target>/strait-test-brokers/<test-binary>-<pid>/<name>/` with its config, data and logs.
//!   The scripts start the broker in the background, wait until it is ready and return; a
//!   watchdog process per broker polls the test process (the *owner*) once a second and stops
//!   the broker when the test binary exits, however it exits (panic, abort, SIGKILL). The
//!   scripts only ever signal pids they recorded in the broker dir and that still carry the
//!   dir in their environment.
//! * **Shared brokers** ([`kafka_source`], [`kafka_target`], [`tansu_target`]) are started lazily,
//!   once per test binary, and live until the binary exits (the watchdog stops them). Their
//!   directories are never deleted by the testkit: `scripts/test.sh` clears
//!   `target/strait-test-brokers` when it starts, and the testkit removes run directories of
//!   dead test processes older than a day. While a shared broker exists, every panic also
//!   prints the shared brokers' log paths.
//! * **Dedicated brokers** ([`start_kafka`], [`start_tansu`]) belong to one test; dropping the
//!   [`Broker`] kills it. If the test is panicking at that moment, the directory (with logs)
//!   is kept and its path printed; otherwise it is deleted.
//!
//! The API is synchronous (std::process + std::thread); calling it from `#[tokio::test]`
//! functions is fine — startup blocks the test's thread for a few seconds.

mod broker;
mod kafka;
mod paths;
mod ports;
mod proxy;
mod tansu;
mod tls;

use std::path::PathBuf;

pub use broker::{Broker, BrokerKind, SaslMechanism};
pub use kafka::{KafkaOptions, SaslUser, kafka_source, kafka_target, start_kafka};
pub use paths::set_brokers_root;
pub use ports::free_port;
pub use proxy::{FaultProxy, ProxyStats};
pub use tansu::{TansuStorage, start_tansu, tansu_target};

/// A random name starting with `prefix`, valid as a Kafka topic, group or transactional id:
/// characters outside `[A-Za-z0-9._-]` in `prefix` become `-`.
pub fn unique(prefix: &str) -> String {
    let clean: String = prefix
        .chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let id = uuid::Uuid::new_v4().simple().to_string();
    if clean.is_empty() {
        format!("t-{}", &id[..12])
    } else {
        format!("{clean}-{}", &id[..12])
    }
}

/// The Python interpreter of the test venv (confluent-kafka, kafka-python, moto, boto3):
/// `$STRAIT_PYTHON`, else `${STRAIT_CACHE:-~/.cache/strait}/venv/bin/python`.
///
/// Panics, naming the install command, if it does not exist.
pub fn python() -> PathBuf {
    let py = paths::python();
    assert!(
        py.exists(),
        "strait-testkit: the test Python venv is missing ({}). Install it with \
         `scripts/python-env.sh` (or run `scripts/test.sh`, which installs everything).",
        py.display()
    );
    py
}

/// The `scripts/` directory (`kafka.sh`, `tansu.sh`, …): `$STRAIT_SCRIPTS` or the checkout's.
pub fn scripts_dir() -> PathBuf {
    paths::scripts_dir()
}

/// `tests/testkit/python/`: small Python client scripts used by the testkit's self-tests
/// (`kcheck.py`: round-trip, produce, consume and authentication checks with confluent-kafka).
pub fn python_scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}

#[cfg(test)]
mod tests {
    use super::unique;

    #[test]
    fn unique_names_are_valid_kafka_names() {
        let a = unique("mirror topic/ä");
        let b = unique("mirror topic/ä");
        assert_ne!(a, b);
        assert!(a.starts_with("mirror-topic--"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        );
        assert!(unique("").starts_with("t-"));
        assert!(unique(&"x".repeat(400)).len() < 249);
    }
}
