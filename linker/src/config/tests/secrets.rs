//! Password resolution, and secrets never leaking into Debug, serialized output or errors.

use super::*;

const SASL_SOURCE: &str = "mechanism = \"SCRAM-SHA-256\"\nusername = \"u\"";

#[test]
fn password_env_is_resolved_from_the_environment() {
    let text = with(
        "source.security.sasl",
        &format!("{SASL_SOURCE}\npassword_env = \"SRC_PW\""),
    );
    let config = parse_env(&text, &[("SRC_PW", SECRET)]).unwrap();
    let sasl = config.source.client_config().security.sasl.unwrap();
    assert_eq!(sasl.password.expose(), SECRET);

    let unset = parse(&text).unwrap_err();
    let message = unset.to_string();
    assert_eq!(
        message,
        r#"source.security.sasl.password_env: environment variable "SRC_PW" is not set"#
    );
    assert!(
        matches!(unset, ConfigError::Invalid { ref field, .. } if field == "source.security.sasl.password_env")
    );

    let empty = parse_env(&text, &[("SRC_PW", "")]).unwrap_err().to_string();
    assert!(
        empty.contains(r#"environment variable "SRC_PW" is empty"#),
        "{empty}"
    );
}

#[test]
fn password_sources_are_exclusive_and_one_is_required() {
    let both = with(
        "source.security.sasl",
        &format!("{SASL_SOURCE}\npassword = \"{SECRET}\"\npassword_env = \"X\""),
    );
    let message = parse_env(&both, &[("X", "y")]).unwrap_err().to_string();
    assert_eq!(
        message,
        "source.security.sasl: set either password or password_env, not both"
    );

    let neither = with("target.security.sasl", SASL_SOURCE);
    let message = error(&neither);
    assert!(
        message.starts_with("target.security.sasl: no password"),
        "{message}"
    );
    assert!(message.contains("STRAIT_TARGET_SASL_PASSWORD"), "{message}");

    let empty = with(
        "source.security.sasl",
        &format!("{SASL_SOURCE}\npassword = \"\""),
    );
    assert_eq!(error(&empty), "source.security.sasl.password: is empty");
}

#[test]
fn override_variables_win() {
    let file = with(
        "source.security.sasl",
        &format!("{SASL_SOURCE}\npassword = \"from-file\""),
    );
    let overridden = parse_env(&file, &[("STRAIT_SOURCE_SASL_PASSWORD", "from-override")]).unwrap();
    let sasl = overridden.source.client_config().security.sasl.unwrap();
    assert_eq!(sasl.password.expose(), "from-override");
    // Empty means unset.
    let kept = parse_env(&file, &[("STRAIT_SOURCE_SASL_PASSWORD", "")]).unwrap();
    assert_eq!(
        kept.source
            .client_config()
            .security
            .sasl
            .unwrap()
            .password
            .expose(),
        "from-file"
    );

    // The override stands in for an unset password_env variable, and for no password at all.
    let env_file = with(
        "target.security.sasl",
        &format!("{SASL_SOURCE}\npassword_env = \"UNSET\""),
    );
    let config = parse_env(&env_file, &[("STRAIT_TARGET_SASL_PASSWORD", "t")]).unwrap();
    assert_eq!(
        config
            .target
            .client_config()
            .security
            .sasl
            .unwrap()
            .password
            .expose(),
        "t"
    );
    let bare = with("target.security.sasl", SASL_SOURCE);
    assert!(parse_env(&bare, &[("STRAIT_TARGET_SASL_PASSWORD", "t")]).is_ok());
    // The source override does not apply to the target.
    assert!(parse_env(&bare, &[("STRAIT_SOURCE_SASL_PASSWORD", "t")]).is_err());
}

#[test]
fn secrets_never_leak() {
    let config = parse_env(FULL, &[("TARGET_PW", SECRET)]).unwrap();
    let debug = format!("{config:?}");
    let pretty = format!("{config:#?}");
    let toml_text = toml::to_string(&config).unwrap();
    let json = serde_json::to_string(&config).unwrap();
    for (what, text) in [
        ("Debug", &debug),
        ("pretty Debug", &pretty),
        ("TOML", &toml_text),
        ("JSON", &json),
    ] {
        assert!(!text.contains(SECRET), "{what} leaks the secret: {text}");
    }
    assert!(toml_text.contains("<redacted>"), "{toml_text}");
    assert!(
        toml_text.contains("password_env = \"TARGET_PW\""),
        "{toml_text}"
    );

    // Errors raised after the secret was read, or about the secret itself.
    let overridden = [
        ("STRAIT_SOURCE_SASL_PASSWORD", SECRET),
        ("TARGET_PW", SECRET),
    ];
    let broken = [
        FULL.replace("[::1]:19092", "nohost"),
        FULL.replace(
            "password_env = \"TARGET_PW\"",
            &format!("password_env = \"TARGET_PW\"\npassword = \"{SECRET}\""),
        ),
        FULL.replace(&format!("password = \"{SECRET}\""), "password = 20240501"),
        FULL.replace(
            &format!("password = \"{SECRET}\""),
            &format!("password = [\"{SECRET}\"]"),
        ),
        FULL.replace(
            &format!("password = \"{SECRET}\""),
            &format!("password = {{ x = \"{SECRET}\" }}"),
        ),
        FULL.replace(
            &format!("password = \"{SECRET}\""),
            &format!("passwrd = \"{SECRET}\""),
        ),
        FULL.replace(
            &format!("password = \"{SECRET}\""),
            &format!("password = \"{SECRET}"),
        ),
    ];
    for text in &broken {
        for env in [&overridden[..], &overridden[1..]] {
            let err = parse_env(text, env).unwrap_err();
            for rendered in [err.to_string(), format!("{err:?}")] {
                assert!(
                    !rendered.contains(SECRET),
                    "error leaks the secret: {rendered}"
                );
                assert!(
                    !rendered.contains("20240501"),
                    "error leaks the secret: {rendered}"
                );
            }
        }
    }
}
