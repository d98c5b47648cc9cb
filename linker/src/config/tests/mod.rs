//! Loading, parsing and validation tests; secrets, values and the reference have their own
//! files. Environment variables come from maps, never from the process environment.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::client::config::SaslMechanism;

mod fuzz;
mod reference;
mod secrets;
mod values;

const EXAMPLE: &str = include_str!("../../../../strait.example.toml");

/// A password distinctive enough that finding it anywhere means it leaked.
const SECRET: &str = "Zq9-hunter2-DO-NOT-LEAK";

const MINIMAL: &str = r#"
[source]
bootstrap_servers = "src:9092"

[target]
bootstrap_servers = "dst:9092"

[mirror]
topics = ["orders"]

[state]
dir = "/var/lib/strait"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<StraitConfig, ConfigError> {
    StraitConfig::from_toml_str_with_env(text, "strait.toml", &no_env)
}

fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<StraitConfig, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    StraitConfig::from_toml_str_with_env(text, "strait.toml", &|name| vars.get(name).cloned())
}

/// MINIMAL with `lines` added to `table` (appended as a new table when MINIMAL lacks it).
fn with(table: &str, lines: &str) -> String {
    let header = format!("[{table}]\n");
    match MINIMAL.find(&header) {
        Some(at) => {
            let at = at + header.len();
            format!("{}{lines}\n{}", &MINIMAL[..at], &MINIMAL[at..])
        }
        None => format!("{MINIMAL}\n{header}{lines}\n"),
    }
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_error(text: &str, needles: &[&str]) {
    let message = error(text);
    for needle in needles {
        assert!(
            message.contains(needle),
            "error `{message}` lacks `{needle}`"
        );
    }
    assert!(
        !message.contains('\n'),
        "error is not one line: {message:?}"
    );
}

#[test]
fn example_file_loads() {
    let config = parse(EXAMPLE).unwrap();
    assert_eq!(
        config.source.bootstrap_servers,
        "127.0.0.1:9092,127.0.0.1:9093"
    );
    assert_eq!(
        config.source.client_config().bootstrap,
        vec!["127.0.0.1:9092", "127.0.0.1:9093"]
    );
    let selector = config.mirror.selector();
    assert!(selector.matches("orders.eu"));
    assert!(!selector.matches("orders.tmp1"));
    assert!(selector.matches("payments"));
    assert_eq!(config.api.listen, Some("127.0.0.1:8088".parse().unwrap()));
    assert_eq!(config.api.token_file, None);
}

/// Keeps the example complete as keys are added: every key of the reference appears in it,
/// set or commented out.
#[test]
fn example_file_mentions_every_key() {
    let reference = reference_markdown();
    for line in reference.lines().filter(|l| l.starts_with("| `")) {
        let key = line.split('`').nth(1).unwrap();
        assert!(
            EXAMPLE.contains(&format!("{key} = ")),
            "strait.example.toml does not show `{key}`"
        );
    }
}

#[test]
fn minimal_config_takes_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.source.client_id, "strait");
    assert_eq!(config.source.security, ClusterSecurity::default());
    let mirror = &config.mirror;
    assert!(mirror.exclude.is_empty());
    assert_eq!(mirror.start, StartPosition::Earliest);
    assert_eq!(mirror.topic_refresh_interval.get(), Duration::from_secs(5));
    assert_eq!(mirror.config_sync_interval.get(), Duration::from_secs(60));
    assert_eq!(mirror.fetch_max_wait.get(), Duration::from_millis(10));
    assert_eq!(mirror.fetch_idle_max_wait.get(), Duration::from_millis(500));
    assert!(mirror.fetch_sessions);
    assert_eq!(mirror.max_in_flight_bytes.bytes(), 256 << 20);
    assert_eq!(mirror.fetch_max_bytes.bytes(), 50 << 20);
    assert_eq!(mirror.partition_fetch_max_bytes.bytes(), 8 << 20);
    assert_eq!(mirror.fetch_min_bytes.bytes(), 1);
    assert_eq!(mirror.max_in_flight_per_partition, 5);
    assert_eq!(mirror.target_connections_per_broker, 2);
    assert_eq!(mirror.max_batches_per_request, 8);
    assert!(!mirror.include_internal);
    assert_eq!(config.groups, GroupsConfig::default());
    assert!(config.groups.selector().matches("any-group"));
    assert_eq!(config.groups.interval.get(), Duration::from_secs(1));
    assert_eq!(config.api, ApiConfig::default());
    assert_eq!(config.api.listen, None, "no API unless [api] listen is set");
    assert_eq!(config.log, LogConfig::default());
    assert_eq!(config.log.format, LogFormat::Text);
}

const FULL: &str = r#"
[source]
bootstrap_servers = " k1:9092 , k2:9093 "
client_id = "strait-eu"
[source.security.tls]
ca_file = "/etc/strait/ca.pem"
server_name = "kafka.example.com"
[source.security.sasl]
mechanism = "SCRAM-SHA-512"
username = "strait"
password = "Zq9-hunter2-DO-NOT-LEAK"

[target]
bootstrap_servers = "[::1]:19092"
[target.security.sasl]
mechanism = "PLAIN"
username = "alice"
password_env = "TARGET_PW"

[mirror]
topics = ['orders\..*', "payments"]
exclude = ['orders\.tmp.*']
start = "2024-05-01T12:00:00+02:00"
topic_refresh_interval = "2s"
config_sync_interval = "5m"
max_in_flight_bytes = 1073741824
fetch_max_wait = "250ms"
fetch_max_bytes = "100 MB"
partition_fetch_max_bytes = "1MiB"
max_in_flight_per_partition = 1
target_connections_per_broker = 3
max_batches_per_request = 4
include_internal = true

[state]
dir = "/data/strait"

[groups]
include = ["billing-.*"]
exclude = ["billing-test"]
interval = "500ms"

[api]
listen = "0.0.0.0:9000"
token_file = "/etc/strait/tokens"

[log]
format = "json"
level = "info,strait_linker=debug"
"#;

#[test]
fn full_config_parses_and_maps_to_client_configs() {
    let config = parse_env(FULL, &[("TARGET_PW", "target-secret")]).unwrap();

    let source = config.source.client_config();
    assert_eq!(source.bootstrap, vec!["k1:9092", "k2:9093"]);
    assert_eq!(source.client_id, "strait-eu");
    let tls = source.security.tls.unwrap();
    assert_eq!(tls.ca_file, Path::new("/etc/strait/ca.pem"));
    assert_eq!(tls.server_name.as_deref(), Some("kafka.example.com"));
    let sasl = source.security.sasl.unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
    assert_eq!(sasl.username, "strait");
    assert_eq!(sasl.password.expose(), SECRET);

    let target = config.target.client_config();
    assert_eq!(target.bootstrap, vec!["[::1]:19092"]);
    assert_eq!(target.client_id, "strait");
    assert!(target.security.tls.is_none());
    let sasl = target.security.sasl.unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::Plain);
    assert_eq!(sasl.password.expose(), "target-secret");

    let mirror = &config.mirror;
    // 12:00 at +02:00 is 10:00 UTC.
    assert_eq!(mirror.start, StartPosition::Timestamp(1_714_557_600_000));
    assert_eq!(mirror.config_sync_interval.get(), Duration::from_secs(300));
    assert_eq!(mirror.max_in_flight_bytes.bytes(), 1 << 30);
    assert_eq!(mirror.fetch_max_bytes.bytes(), 100_000_000);
    assert_eq!(mirror.partition_fetch_max_bytes.bytes(), 1 << 20);
    assert_eq!(mirror.max_in_flight_per_partition, 1);
    assert_eq!(mirror.target_connections_per_broker, 3);
    assert_eq!(mirror.max_batches_per_request, 4);
    assert!(!mirror.selector().matches("__consumer_offsets"));
    let groups = config.groups.selector();
    assert!(groups.matches("billing-eu"));
    assert!(!groups.matches("billing-test"));
    assert!(!groups.matches("shipping"));
    assert_eq!(config.api.listen, Some("0.0.0.0:9000".parse().unwrap()));
    assert_eq!(
        config.api.token_file.as_deref(),
        Some(Path::new("/etc/strait/tokens"))
    );
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn load_reads_files_and_reports_read_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strait.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let config = StraitConfig::load(&path).unwrap();
    assert_eq!(config.state.dir, Path::new("/var/lib/strait"));

    let missing = dir.path().join("missing.toml");
    let err = StraitConfig::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    let message = err.to_string();
    assert!(message.contains("missing.toml"), "{message}");
    assert!(message.starts_with("cannot read config file"), "{message}");

    std::fs::write(&path, "[source]\nbogus = 1\n").unwrap();
    let message = StraitConfig::load(&path).unwrap_err().to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("bogus"), "{message}");
}

#[test]
fn regex_errors_name_field_and_index() {
    assert_error(
        &MINIMAL.replace(r#"topics = ["orders"]"#, r#"topics = ["a", "b", "("]"#),
        &[
            "strait.toml: line",
            r#"mirror.topics[2]: invalid regex "(": "#,
            "unclosed group",
        ],
    );
    assert_error(
        &with("mirror", r#"exclude = ["[z-a]"]"#),
        &["mirror.exclude[0]: invalid regex"],
    );
    assert_error(
        &with("groups", r#"include = ["ok", "*"]"#),
        &["groups.include[1]: invalid regex"],
    );
    assert_error(
        &with("groups", r#"exclude = ["("]"#),
        &["groups.exclude[0]: invalid regex"],
    );
}

#[test]
fn validation_errors_name_their_field() {
    let cases: &[(String, &[&str])] = &[
        (
            MINIMAL.replace(r#"topics = ["orders"]"#, "topics = []"),
            &["mirror.topics: must list at least one"],
        ),
        (
            MINIMAL.replace("src:9092", "nohost"),
            &[r#"source.bootstrap_servers: "nohost" is not host:port"#],
        ),
        (
            MINIMAL.replace("dst:9092", "dst:9092,dst:99999"),
            &["target.bootstrap_servers:", "invalid port"],
        ),
        (
            MINIMAL.replace("src:9092", " , "),
            &["source.bootstrap_servers: must list at least one host:port"],
        ),
        (
            with("mirror", r#"start = "yesterday""#),
            &[r#"mirror.start: "yesterday" is not "earliest", "latest" or an RFC 3339 timestamp"#],
        ),
        (
            with("mirror", r#"start = "2024-05-01T00:00:00""#),
            &["mirror.start:", "UTC offset"],
        ),
        (
            with("mirror", r#"start = "1969-12-31T23:59:59Z""#),
            &["mirror.start:", "before 1970"],
        ),
        (
            with("mirror", r#"topic_refresh_interval = "0s""#),
            &["mirror.topic_refresh_interval: 0s must be greater than 0"],
        ),
        (
            with("mirror", r#"topic_refresh_interval = "30s""#),
            &["mirror.topic_refresh_interval: 30s is longer than the maximum of 10s"],
        ),
        (
            with("mirror", r#"config_sync_interval = "0ms""#),
            &["mirror.config_sync_interval:", "greater than 0"],
        ),
        (
            with("mirror", r#"fetch_max_wait = "0s""#),
            &["mirror.fetch_max_wait:", "greater than 0"],
        ),
        (
            with("mirror", r#"fetch_max_wait = "1000 days""#),
            &[
                "mirror.fetch_max_wait:",
                "longer than Kafka's Fetch request allows",
            ],
        ),
        (
            with("mirror", r#"fetch_idle_max_wait = "0s""#),
            &["mirror.fetch_idle_max_wait:", "greater than 0"],
        ),
        (
            with("mirror", r#"fetch_idle_max_wait = "1000 days""#),
            &[
                "mirror.fetch_idle_max_wait:",
                "longer than Kafka's Fetch request allows",
            ],
        ),
        (
            with("mirror", r#"fetch_sessions = "yes""#),
            &[
                "mirror.fetch_sessions",
                "invalid type: string \"yes\", expected a boolean",
            ],
        ),
        (
            with("mirror", r#"fetch_max_wait = "5 parsecs""#),
            &["mirror.fetch_max_wait: invalid duration \"5 parsecs\""],
        ),
        (
            with("mirror", "fetch_max_wait = 5"),
            &["mirror.fetch_max_wait:", "line 9"],
        ),
        (
            with("groups", r#"interval = "0s""#),
            &["groups.interval:", "greater than 0"],
        ),
        (
            with("mirror", "max_in_flight_bytes = 0"),
            &["mirror.max_in_flight_bytes: must be greater than 0"],
        ),
        (
            with("mirror", r#"fetch_max_bytes = "0MiB""#),
            &["mirror.fetch_max_bytes: must be greater than 0"],
        ),
        (
            with("mirror", r#"partition_fetch_max_bytes = "0""#),
            &["mirror.partition_fetch_max_bytes: must be greater than 0"],
        ),
        (
            with("mirror", r#"fetch_min_bytes = "0B""#),
            &["mirror.fetch_min_bytes: must be greater than 0"],
        ),
        (
            with("mirror", r#"fetch_min_bytes = "65MiB""#),
            &["mirror.fetch_min_bytes: 65MiB is larger than mirror.fetch_max_bytes (50MiB)"],
        ),
        (
            with("mirror", "max_in_flight_bytes = -1"),
            &["mirror.max_in_flight_bytes:", "must not be negative"],
        ),
        (
            with("mirror", r#"fetch_max_bytes = "12XB""#),
            &["mirror.fetch_max_bytes:", r#"unknown unit "XB""#],
        ),
        (
            with("mirror", r#"fetch_max_bytes = "MiB""#),
            &["mirror.fetch_max_bytes:", "invalid byte size"],
        ),
        (
            with("mirror", r#"fetch_max_bytes = "99999999999999GiB""#),
            &["mirror.fetch_max_bytes:", "too large"],
        ),
        (
            with(
                "mirror",
                r#"fetch_max_bytes = "3GiB"
max_in_flight_bytes = "4GiB""#,
            ),
            &["mirror.fetch_max_bytes: 3GiB exceeds Kafka's limit"],
        ),
        (
            with("mirror", "max_in_flight_per_partition = 6"),
            &["mirror.max_in_flight_per_partition: 6 is outside 1..=5"],
        ),
        (
            with("mirror", "max_in_flight_per_partition = 0"),
            &["mirror.max_in_flight_per_partition: 0 is outside 1..=5"],
        ),
        (
            with("mirror", "target_connections_per_broker = 0"),
            &["mirror.target_connections_per_broker: 0 is outside 1..=16"],
        ),
        (
            with("mirror", "target_connections_per_broker = 17"),
            &["mirror.target_connections_per_broker: 17 is outside 1..=16"],
        ),
        (
            with("mirror", "max_batches_per_request = 0"),
            &["mirror.max_batches_per_request: 0 is outside 1..=64"],
        ),
        (
            with("mirror", "max_batches_per_request = 65"),
            &["mirror.max_batches_per_request: 65 is outside 1..=64"],
        ),
        (
            with("mirror", r#"partition_fetch_max_bytes = "65MiB""#),
            &[
                "mirror.partition_fetch_max_bytes: 65MiB is larger than mirror.fetch_max_bytes (50MiB)",
            ],
        ),
        (
            with("mirror", r#"max_in_flight_bytes = "32MiB""#),
            &["mirror.fetch_max_bytes: 50MiB is larger than mirror.max_in_flight_bytes (32MiB)"],
        ),
        (
            with("mirror", r#"protect_principals = ["alice"]"#),
            &[r#"mirror.protect_principals: "alice" is not a Kafka principal"#],
        ),
        (
            with("mirror", r#"protect_principals = ["User:"]"#),
            &["mirror.protect_principals:"],
        ),
        (
            with("api", r#"listen = "localhost:8088""#),
            &[r#"api.listen: "localhost:8088" is not an IP socket address"#],
        ),
        (with("api", r#"listen = "127.0.0.1""#), &["api.listen:"]),
        (
            with("api", r#"token_file = """#),
            &["api.token_file: must not be empty"],
        ),
        (
            with("api", r#"tls_cert = "/etc/strait/cert.pem""#),
            &["api.tls_key: must be set when api.tls_cert is"],
        ),
        (
            with("api", r#"tls_key = "/etc/strait/key.pem""#),
            &["api.tls_cert: must be set when api.tls_key is"],
        ),
        (
            with("api", "tls_cert = \"\"\ntls_key = \"k.pem\""),
            &["api.tls_cert: must not be empty"],
        ),
        (
            with("api", "tls_cert = 3"),
            &["api.tls_cert: invalid type: integer `3`, expected"],
        ),
        (
            MINIMAL.replace(r#"dir = "/var/lib/strait""#, r#"dir = """#),
            &["state.dir: must not be empty"],
        ),
        (
            with("log", r#"format = "xml""#),
            &["log.format: unknown variant `xml`, expected `text` or `json`"],
        ),
        (
            with("log", r#"level = " ""#),
            &["log.level: must not be empty"],
        ),
        (
            with("source", r#"client_id = """#),
            &["source.client_id: must not be empty"],
        ),
        (
            with("source.security.tls", r#"ca_file = """#),
            &["source.security.tls.ca_file: must not be empty"],
        ),
        (
            with("source.security.tls", ""),
            &["source.security.tls: missing field `ca_file`"],
        ),
        (
            with(
                "target.security.sasl",
                "mechanism = \"PLAIN\"\nusername = \"\"\npassword = \"x\"",
            ),
            &["target.security.sasl.username: must not be empty"],
        ),
        (
            with(
                "target.security.sasl",
                "mechanism = \"GSSAPI\"\nusername = \"u\"\npassword = \"x\"",
            ),
            &["target.security.sasl.mechanism: unknown variant `GSSAPI`"],
        ),
        (
            MINIMAL.replace("[state]\ndir = \"/var/lib/strait\"", ""),
            &["strait.toml: missing field `state`"],
        ),
        (
            MINIMAL.replace("topics = [\"orders\"]", ""),
            &["mirror: missing field `topics`"],
        ),
        (
            with("mirror", "topics = [\"dup\"]"),
            &["line", "duplicate key"],
        ),
        (
            MINIMAL.replace(r#"topics = ["orders"]"#, "topics = [1]"),
            &["mirror.topics[0]: invalid type: integer `1`"],
        ),
        ("[source\n".to_owned(), &["strait.toml: line 1"]),
    ];
    for (text, needles) in cases {
        assert_error(text, needles);
    }
}

#[test]
fn unknown_fields_are_rejected_in_every_table() {
    let tables = [
        ("source", "source.bogus_key", "line 3"),
        ("target", "target.bogus_key", "line 6"),
        ("mirror", "mirror.bogus_key", "line 9"),
        ("state", "state.bogus_key", "line 12"),
        ("groups", "groups.bogus_key", "line 15"),
        ("api", "api.bogus_key", "line 15"),
        ("log", "log.bogus_key", "line 15"),
        ("source.security", "source.security.bogus_key", "line 15"),
        (
            "target.security.tls",
            "target.security.tls.bogus_key",
            "line 15",
        ),
        (
            "source.security.sasl",
            "source.security.sasl.bogus_key",
            "line 15",
        ),
    ];
    for (table, path, line) in tables {
        let text = with(table, "bogus_key = 1");
        assert_error(
            &text,
            &["strait.toml: ", line, path, "unknown field `bogus_key`"],
        );
    }
    assert_error(
        &format!("{MINIMAL}\n[mirrors]\ntopics = []\n"),
        &["line 14", "unknown field `mirrors`"],
    );
    assert_error(
        &MINIMAL.replace(
            "[source]",
            "source = { bootstrap_servers = \"a:1\", extra = 1 }\n[x]",
        ),
        &["source.extra", "unknown field `extra`"],
    );
}
