//! Selectors, start positions, byte sizes and durations, and never panicking on any input.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

#[test]
fn selectors_are_anchored_and_exclusion_wins() {
    let patterns = |list: &[&str]| {
        list.iter()
            .map(|p| Pattern::new(p).unwrap())
            .collect::<Vec<_>>()
    };
    let exact = NameSelector::new(&patterns(&["orders"]), &[], false);
    assert!(exact.matches("orders"));
    assert!(!exact.matches("orders2"));
    assert!(!exact.matches("my-orders"));

    let prefix = NameSelector::new(&patterns(&["orders.*"]), &patterns(&["orders-tmp"]), false);
    assert!(prefix.matches("orders"));
    assert!(prefix.matches("orders2"));
    assert!(!prefix.matches("orders-tmp"));
    assert!(prefix.matches("orders-tmp2"));

    let alternation = NameSelector::new(&patterns(&["a|b"]), &[], false);
    assert!(alternation.matches("a") && alternation.matches("b"));
    assert!(
        !alternation.matches("ab"),
        "alternation must be anchored as a whole"
    );

    let all = NameSelector::new(&patterns(&[".*"]), &[], false);
    assert!(all.matches("payments"));
    assert!(!all.matches("__consumer_offsets"));
    assert!(!all.matches("__transaction_state"));
    assert!(all.matches("_schemas"));
    let internal = NameSelector::new(
        &patterns(&[".*"]),
        &patterns(&["__transaction_state"]),
        true,
    );
    assert!(internal.matches("__consumer_offsets"));
    assert!(!internal.matches("__transaction_state"));

    let config = parse(&with("mirror", "include_internal = true")).unwrap();
    assert!(!config.mirror.selector().matches("__orders"));
    let config = parse(&MINIMAL.replace(
        r#"topics = ["orders"]"#,
        "topics = ['__.*']\ninclude_internal = true",
    ))
    .unwrap();
    assert!(config.mirror.selector().matches("__consumer_offsets"));
}

#[test]
fn start_positions() {
    assert_eq!(
        StartPosition::parse("earliest"),
        Ok(StartPosition::Earliest)
    );
    assert_eq!(StartPosition::parse("latest"), Ok(StartPosition::Latest));
    assert_eq!(
        StartPosition::parse("1970-01-01T00:00:01Z"),
        Ok(StartPosition::Timestamp(1000))
    );
    assert_eq!(
        StartPosition::parse("1970-01-01t00:00:01.5z"),
        Ok(StartPosition::Timestamp(1500))
    );
    assert_eq!(
        StartPosition::parse("1970-01-01 01:00:00+01:00"),
        Ok(StartPosition::Timestamp(0))
    );
    assert_eq!(
        StartPosition::parse("1970-01-01T00:00:00-00:30"),
        Ok(StartPosition::Timestamp(1_800_000))
    );
    assert!(StartPosition::parse("1970-01-01T00:00:00+24:00").is_err());
    assert!(StartPosition::parse("Earliest").is_err());
    assert!(StartPosition::parse("é").is_err());
    assert!(StartPosition::parse("2024-05-01T00:00:00Zé+01:00").is_err());
    assert_eq!(
        StartPosition::Timestamp(1500).to_string(),
        "1970-01-01T00:00:01.500Z"
    );

    // An unquoted TOML datetime is accepted too.
    let config = parse(&with("mirror", "start = 2024-05-01T10:00:00Z")).unwrap();
    assert_eq!(
        config.mirror.start,
        StartPosition::Timestamp(1_714_557_600_000)
    );
    assert_error(
        &with("mirror", "start = 2024-05-01T10:00:00"),
        &["mirror.start:", "UTC offset"],
    );
    assert_error(
        &with("mirror", "start = 5"),
        &["mirror.start: invalid type: integer `5`"],
    );
}

#[test]
fn byte_sizes_and_durations_keep_what_was_written() {
    for (text, bytes) in [
        ("1", 1),
        ("1B", 1),
        ("2 KB", 2_000),
        ("3KiB", 3 << 10),
        ("4MB", 4_000_000),
        ("5MiB", 5 << 20),
        ("6GB", 6_000_000_000),
        ("7GiB", 7 << 30),
    ] {
        assert_eq!(ByteSize::parse(text).unwrap().bytes(), bytes, "{text}");
    }
    for bad in ["", "MiB", "1.5MiB", "1 mib", "-1", "1 MiB extra", "١٢"] {
        assert!(ByteSize::parse(bad).is_err(), "{bad}");
    }
    assert!(HumanDuration::parse("5 parsecs").is_err());
    assert_eq!(
        HumanDuration::from_duration(Duration::from_millis(1500)).as_str(),
        "1s 500ms"
    );

    let config = parse(EXAMPLE).unwrap();
    let text = toml::to_string(&config).unwrap();
    assert!(text.contains(r#"max_in_flight_bytes = "256MiB""#), "{text}");
    assert!(text.contains(r#"fetch_max_wait = "10ms""#), "{text}");
    assert!(text.contains(r#"start = "earliest""#), "{text}");
    assert_eq!(
        parse(&text).unwrap(),
        config,
        "serialized config reads back equal"
    );

    let config = parse(&with("mirror", "max_in_flight_bytes = 1073741824")).unwrap();
    let text = toml::to_string(&config).unwrap();
    assert!(text.contains("max_in_flight_bytes = 1073741824"), "{text}");
}

fn arbitrary_config_fragment() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[\\[\\]{}=\",.'\\\\\n #a-z0-9_:-]{0,200}",]
}

/// Edits applied to the example: (position, kind, character).
fn mutations() -> impl Strategy<Value = Vec<(usize, u8, char)>> {
    let chars = prop_oneof![
        Just('['),
        Just(']'),
        Just('{'),
        Just('}'),
        Just('='),
        Just('"'),
        Just('\''),
        Just('\\'),
        Just('\n'),
        Just('#'),
        Just('.'),
        Just(','),
        Just('0'),
        Just('-'),
        Just('é'),
        any::<char>(),
    ];
    proptest::collection::vec((any::<usize>(), 0u8..3, chars), 1..12)
}

fn mutate(text: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(position, kind, c) in edits {
        let at = position % (chars.len() + 1);
        match kind {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 if at < chars.len() => chars[at] = c,
            _ => chars.insert(at, c),
        }
    }
    chars.into_iter().collect()
}

fn some_env(name: &str) -> Option<String> {
    name.len()
        .is_multiple_of(2)
        .then(|| format!("value-of-{name}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_input_never_panics(text in arbitrary_config_fragment()) {
        let _ = StraitConfig::from_toml_str_with_env(&text, "fuzz.toml", &some_env);
    }

    #[test]
    fn mutated_configs_never_panic(edits in mutations(), base in 0usize..2) {
        let full = FULL.to_owned();
        let text = mutate(if base == 0 { EXAMPLE } else { &full }, &edits);
        if let Err(e) = StraitConfig::from_toml_str_with_env(&text, "fuzz.toml", &some_env) {
            let message = e.to_string();
            prop_assert!(!message.contains('\n'), "multi-line error: {message:?}");
        }
    }
}
