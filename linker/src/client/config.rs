//! Client configuration: where the cluster is and how to authenticate to it.
//!
//! These types double as the `[source]` / `[target]` sections of strait's TOML configuration,
//! so every field's doc comment is operator documentation. Secrets are wrapped in [`Secret`],
//! which never prints its contents (Debug, Display and serialization all redact).

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A secret value (SASL password). Its contents are never logged, printed or serialized.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where the value goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

// Manual impl: the derive would describe the private field; the config reference only needs
// to say "a string that is never shown back".
impl schemars::JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "title": "secret string",
            "writeOnly": true,
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum SaslMechanism {
    /// `PLAIN`: username and password in clear text; use only over TLS.
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The mechanism name as sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL authentication settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// Mechanism: `"PLAIN"`, `"SCRAM-SHA-256"` or `"SCRAM-SHA-512"`.
    pub mechanism: SaslMechanism,
    /// SASL username.
    pub username: String,
    /// SASL password. Never logged or returned by the API.
    pub password: Secret,
}

/// TLS settings. When this table is present, every connection to the cluster is encrypted
/// and the brokers' certificates are verified; when it is absent, connections are plaintext.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) that signed the brokers' certificates. Required:
    /// strait does not trust a system store implicitly, so a cluster's trust root is explicit.
    /// Example: `ca_file = "/etc/strait/ca.pem"`.
    pub ca_file: PathBuf,
    /// Name to verify every broker certificate against, instead of each broker's own host
    /// name. Unset by default (each broker is verified against the host it was reached at).
    /// Example: `server_name = "kafka.internal.example.com"`.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// How to secure connections to a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// TLS settings; absent means plaintext.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// SASL settings; absent means no authentication.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
}

/// Everything a [`KafkaClient`](super::KafkaClient) needs to reach a cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bootstrap brokers as `host:port`.
    pub bootstrap: Vec<String>,
    /// Client id sent in every request header.
    pub client_id: String,
    /// TLS and SASL.
    pub security: Security,
    /// Time allowed to open a connection, including TLS and SASL.
    pub connect_timeout: Duration,
    /// Time allowed for one request's response (a Fetch adds its own max wait on top).
    pub request_timeout: Duration,
    /// Largest response frame accepted, in bytes; a larger frame poisons the connection.
    pub max_response_bytes: usize,
    /// Total time a retriable operation keeps retrying before it gives up.
    pub retry_budget: Duration,
}

impl ClientConfig {
    /// A config for `bootstrap` (a comma-separated `host:port` list) with defaults.
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: parse_bootstrap(bootstrap),
            client_id: "strait".to_owned(),
            security: Security::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 256 << 20,
            retry_budget: Duration::from_secs(30),
        }
    }
}

/// Splits a Kafka `bootstrap.servers` string into `host:port` entries.
pub fn parse_bootstrap(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks one `host:port` entry, returning a message naming what is wrong.
pub fn validate_broker_address(addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("`{addr}` is not host:port"));
    };
    if host.is_empty() {
        return Err(format!("`{addr}` has an empty host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("`{addr}` has an invalid port `{port}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let sasl = SaslConfig {
            mechanism: SaslMechanism::ScramSha512,
            username: "alice".into(),
            password: Secret::new("hunter2-very-secret"),
        };
        let debug = format!("{sasl:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"));
        let json = serde_json::to_string(&sasl).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("<redacted>"), "{json}");
        let back: SaslConfig =
            serde_json::from_str(r#"{"mechanism":"SCRAM-SHA-256","username":"u","password":"pw"}"#)
                .unwrap();
        assert_eq!(back.password.expose(), "pw");
        assert!(
            serde_json::from_str::<SaslConfig>(
                r#"{"mechanism":"PLAIN","username":"u","password":"p","x":1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn bootstrap_parsing_and_validation() {
        assert_eq!(parse_bootstrap(" a:1, b:2 ,,"), vec!["a:1", "b:2"]);
        assert!(validate_broker_address("127.0.0.1:9092").is_ok());
        assert!(validate_broker_address("[::1]:9092").is_ok());
        assert!(
            validate_broker_address("nohost")
                .unwrap_err()
                .contains("host:port")
        );
        assert!(validate_broker_address("h:0").is_err());
        assert!(validate_broker_address("h:x").is_err());
        assert!(validate_broker_address(":1").is_err());
    }
}
