//! Property tests of the config parser on bad input: random text, randomly damaged text and
//! structurally mutated configs (a value replaced by one of any type, a key removed, an
//! unknown key added). Loading never panics; every error is one line, names the key that is
//! wrong, and never repeats the SASL password.

use proptest::prelude::*;
use toml::{Table, Value};

use super::*;

/// A config that sets every key, both SASL password sources and API TLS.
fn base() -> String {
    format!(
        r#"
[source]
bootstrap_servers = "127.0.0.1:9092,127.0.0.1:9093"
client_id = "strait"

[source.security.tls]
ca_file = "/etc/strait/ca.pem"
server_name = "kafka.example.com"

[source.security.sasl]
mechanism = "SCRAM-SHA-512"
username = "strait"
password = "{SECRET}"

[target]
bootstrap_servers = "127.0.0.1:19092"

[target.security.sasl]
mechanism = "PLAIN"
username = "strait"
password_env = "TARGET_PW"

[mirror]
topics = ['orders\..*', 'payments']
exclude = ['orders\.tmp.*']
start = "earliest"
topic_refresh_interval = "5s"
config_sync_interval = "60s"
max_in_flight_bytes = "256MiB"
fetch_max_wait = "10ms"
fetch_idle_max_wait = "500ms"
fetch_sessions = true
fetch_max_bytes = "64MiB"
partition_fetch_max_bytes = "8MiB"
fetch_min_bytes = "1B"
include_internal = false
protect_principals = ["User:*"]

[state]
dir = "/var/lib/strait"

[groups]
include = ['.*']
exclude = []
interval = "1s"

[api]
listen = "127.0.0.1:8088"
token_file = "/etc/strait/tokens"
tls_cert = "/etc/strait/cert.pem"
tls_key = "/etc/strait/key.pem"

[log]
format = "text"
level = "info"
"#
    )
}

fn load(text: &str) -> Result<StraitConfig, ConfigError> {
    parse_env(text, &[("TARGET_PW", "target-password")])
}

fn base_table() -> Table {
    toml::from_str(&base()).expect("the base config is valid TOML")
}

/// Every key path of `table` (tables and leaves), e.g. `["source", "security"]`.
fn paths(table: &Table, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for (key, value) in table {
        let mut path = prefix.to_vec();
        path.push(key.clone());
        out.push(path.clone());
        if let Value::Table(inner) = value {
            paths(inner, &path, out);
        }
    }
}

fn all_paths() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    paths(&base_table(), &[], &mut out);
    out
}

/// The table holding the last element of `path`.
fn parent_mut<'t>(table: &'t mut Table, path: &[String]) -> &'t mut Table {
    let mut current = table;
    for key in &path[..path.len() - 1] {
        current = match current.get_mut(key) {
            Some(Value::Table(inner)) => inner,
            _ => unreachable!("paths only descend into tables"),
        };
    }
    current
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("0".to_owned()),
        Just("-1s".to_owned()),
        Just("0ms".to_owned()),
        Just("1B".to_owned()),
        Just("99999999999GiB".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("latest".to_owned()),
        Just("2024-13-01T00:00:00Z".to_owned()),
        Just("PLAIN".to_owned()),
        Just("127.0.0.1:0".to_owned()),
        Just("[::1]:65536".to_owned()),
        Just("(".to_owned()),
        Just("\\".to_owned()),
        Just("a{99999999}".to_owned()),
        Just("host:".to_owned()),
        Just(",,,".to_owned()),
        "\\PC{0,24}",
        "[\\x00-\\x1f\"'\\\\]{1,6}",
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        prop_oneof![Just(0i64), Just(-1), Just(i64::MAX), Just(1 << 31)].prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        string_value().prop_map(Value::String),
        Just(Value::Datetime(
            "1979-05-27T07:32:00Z".parse().expect("a TOML datetime")
        )),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Table(m.into_iter().collect())),
        ]
    })
}

/// Checks what every error must satisfy and returns its text.
fn check_error(err: &ConfigError) -> String {
    let text = err.to_string();
    assert!(!text.contains('\n'), "error spans lines: {text:?}");
    assert!(!text.contains(SECRET), "error repeats the password: {text}");
    assert!(!format!("{err:?}").contains(SECRET), "Debug repeats it");
    if let ConfigError::Invalid { field, .. } = err {
        assert!(!field.is_empty(), "Invalid without a field: {text}");
    }
    text
}

fn render(table: &Table) -> String {
    toml::to_string(table).expect("a TOML table serializes")
}

#[test]
fn base_config_is_valid() {
    let config = load(&base()).unwrap();
    assert!(config.api.tls_files().is_some());
    assert_eq!(
        config
            .source
            .client_config()
            .security
            .sasl
            .unwrap()
            .password
            .expose(),
        SECRET
    );
    // And it round-trips through the table the mutations start from.
    load(&render(&base_table())).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// One value (a leaf or a whole table) replaced by a value of any type: either the config
    /// still loads, or the error names that key.
    #[test]
    fn a_replaced_value_is_named(index in any::<prop::sample::Index>(), value in any_value()) {
        let paths = all_paths();
        let path = &paths[index.index(paths.len())];
        let mut table = base_table();
        let key = path.last().unwrap().clone();
        parent_mut(&mut table, path).insert(key, value.clone());
        if let Err(err) = load(&render(&table)) {
            let text = check_error(&err);
            let dotted = path.join(".");
            prop_assert!(
                text.contains(&dotted),
                "setting {dotted} = {value} gave an error that does not name it: {text}"
            );
        }
    }

    /// A key removed: a default applies, or the error names the missing key.
    #[test]
    fn a_removed_key_is_named(index in any::<prop::sample::Index>()) {
        let paths = all_paths();
        let path = &paths[index.index(paths.len())];
        let mut table = base_table();
        let key = path.last().unwrap();
        parent_mut(&mut table, path).remove(key);
        if let Err(err) = load(&render(&table)) {
            let text = check_error(&err);
            prop_assert!(text.contains(key.as_str()), "removing {path:?}: {text}");
        }
    }

    /// An unknown key in any table is an error naming its full path.
    #[test]
    fn an_unknown_key_is_named(
        index in any::<prop::sample::Index>(),
        key in "[a-z][a-z_]{0,10}",
        value in any_value(),
    ) {
        let tables: Vec<Vec<String>> = std::iter::once(Vec::new())
            .chain(all_paths().into_iter().filter(|p| {
                let mut t = base_table();
                matches!(parent_mut(&mut t, p).get(p.last().unwrap()), Some(Value::Table(_)))
            }))
            .collect();
        let at = &tables[index.index(tables.len())];
        let mut table = base_table();
        let mut full = at.clone();
        full.push(key.clone());
        let holder = if at.is_empty() { &mut table } else {
            match parent_mut(&mut table, at).get_mut(at.last().unwrap()) {
                Some(Value::Table(inner)) => inner,
                _ => unreachable!(),
            }
        };
        prop_assume!(!holder.contains_key(&key));
        holder.insert(key, value);
        let err = load(&render(&table)).expect_err("an unknown key is refused");
        let text = check_error(&err);
        prop_assert!(text.contains(&full.join(".")), "{full:?}: {text}");
        prop_assert!(text.contains("unknown field"), "{text}");
    }

    /// The text damaged at random (bytes deleted, inserted, replaced): never a panic, and
    /// any error is one line.
    #[test]
    fn damaged_text_never_panics(
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), 0usize..4, any::<u8>(), 0usize..3),
            1..6,
        ),
    ) {
        let mut bytes = base().into_bytes();
        for (at, len, byte, op) in edits {
            let at = at.index(bytes.len() + 1);
            let end = (at + len).min(bytes.len());
            match op {
                0 => { bytes.drain(at..end); }
                1 => bytes.splice(at..at, std::iter::repeat_n(byte, len.max(1))).for_each(drop),
                _ => bytes.splice(at..end, [byte]).for_each(drop),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Err(err) = load(&text) {
            let message = err.to_string();
            prop_assert!(!message.contains('\n'), "{message:?}");
        }
    }

    /// Arbitrary text, including TOML-ish punctuation: never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in "(\\PC|[\\[\\]{}=\"'.,\\n#])*") {
        if let Err(err) = load(&text) {
            prop_assert!(!err.to_string().contains('\n'));
        }
    }
}
