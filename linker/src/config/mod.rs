//! strait's configuration file (`strait run --config strait.toml`): the types it deserializes
//! into, loading, secret resolution and validation.
//!
//! Loading happens in three steps, each reporting errors that name the offending key:
//! 1. **Parse** ([`ConfigError::Parse`]): TOML syntax, unknown keys (every table denies them,
//!    so a typo is an error rather than a silently ignored setting), types, and values that
//!    must parse (regexes, durations, byte sizes, the start position). Messages carry the
//!    file, line, column and key path.
//! 2. **Secrets** ([`ConfigError::Invalid`]): SASL passwords come from the file, from a named
//!    environment variable (`password_env`), or from the `STRAIT_{SOURCE,TARGET}_SASL_PASSWORD`
//!    override. Secret values never appear in errors, `Debug` or serialized output.
//! 3. **Validation** ([`StraitConfig::validate`]): ranges and cross-field rules.
//!
//! The doc comments on these types are the operator documentation: `docs/configuration.md`
//! is generated from them by [`reference_markdown`], and a test keeps the two in sync.

mod error;
mod mirror;
mod reference;
mod values;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::client::config::{
    ClientConfig, SaslConfig, SaslMechanism, Secret, Security, TlsConfig, parse_bootstrap,
    validate_broker_address,
};

pub use error::ConfigError;
pub use mirror::MirrorConfig;
pub use reference::reference_markdown;
pub use values::{
    ByteSize, GroupSelector, HumanDuration, NameSelector, Pattern, StartPosition, TopicSelector,
};

/// strait reads one TOML file, given with `strait run --config strait.toml`. Every table
/// rejects keys it does not know, so a misspelt setting is an error instead of being
/// silently ignored. `[source]`, `[target]`, `[mirror]` and `[state]` are required;
/// `[groups]`, `[api]` and `[log]` may be left out to take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StraitConfig {
    /// The cluster topics are mirrored from: where it is and how to authenticate.
    pub source: ClusterConfig,
    /// The cluster topics are mirrored to. Same keys as `[source]`.
    pub target: ClusterConfig,
    /// Which topics are mirrored and how data moves. Only `topics` is required.
    pub mirror: MirrorConfig,
    /// Where strait keeps its persistent state (mirror progress, offset mappings, cutover
    /// stages).
    pub state: StateConfig,
    /// Consumer-group offset sync: committed offsets of the selected source groups are
    /// translated and committed on the target, so consumers can switch clusters without
    /// reprocessing or skipping records.
    #[serde(default)]
    pub groups: GroupsConfig,
    /// The REST control API, used to follow progress and run staged cutovers.
    #[serde(default)]
    pub api: ApiConfig,
    /// Logging to standard error.
    #[serde(default)]
    pub log: LogConfig,
}

/// How to reach one Kafka cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Brokers to bootstrap from, in Kafka's `bootstrap.servers` syntax: comma-separated
    /// `host:port` entries. strait discovers the rest of the cluster from these.
    /// Example: `bootstrap_servers = "kafka-1:9092,kafka-2:9092"`.
    pub bootstrap_servers: String,
    /// Client id sent with every request; shows up in broker logs, quotas and metrics.
    /// Example: `client_id = "strait-eu-migration"`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// TLS and SASL for connections to this cluster. The two sub-tables are independent:
    /// TLS alone, SASL alone (over plaintext: only on trusted networks) or both. Leave the
    /// table out for plaintext without authentication.
    #[serde(default)]
    pub security: ClusterSecurity,
}

fn default_client_id() -> String {
    "strait".to_owned()
}

/// How connections to the cluster are secured. Both sub-tables are optional and independent:
/// TLS alone, SASL alone (over plaintext: only for trusted networks) or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterSecurity {
    /// TLS: when this table is present, every connection to the cluster is encrypted and
    /// broker certificates are verified against `ca_file`. Absent means plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// SASL authentication; absent means none. Give exactly one of `password` and
    /// `password_env`. The environment variable `STRAIT_SOURCE_SASL_PASSWORD` (for
    /// `[source]`) or `STRAIT_TARGET_SASL_PASSWORD` (for `[target]`), when set and not
    /// empty, overrides both and may stand in for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslSettings>,
}

/// SASL settings as written in the file. The password is resolved at load (from `password`,
/// `password_env` or the override variable) and kept apart, so serializing the config shows
/// what was written, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaslSettings {
    /// Mechanism: `"PLAIN"`, `"SCRAM-SHA-256"` or `"SCRAM-SHA-512"`. PLAIN sends
    /// the password as is, so use it only together with TLS.
    /// Example: `mechanism = "SCRAM-SHA-512"`.
    pub mechanism: SaslMechanism,
    /// SASL username. Example: `username = "strait"`.
    pub username: String,
    /// The password, written in the file. Never logged, printed or returned by the API.
    /// Prefer `password_env` so the file holds no secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Name of an environment variable holding the password, read once at startup.
    /// Example: `password_env = "SOURCE_KAFKA_PASSWORD"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// The password in effect after loading (from the file, `password_env` or the override).
    #[serde(skip)]
    #[schemars(skip)]
    resolved: Option<Secret>,
}

impl SaslSettings {
    /// Settings with the password given directly (for configs built in code).
    pub fn new(mechanism: SaslMechanism, username: impl Into<String>, password: Secret) -> Self {
        Self {
            mechanism,
            username: username.into(),
            password: Some(password.clone()),
            password_env: None,
            resolved: Some(password),
        }
    }

    /// The password in effect: resolved at load, else the one written in the file.
    pub fn effective_password(&self) -> Option<&Secret> {
        self.resolved.as_ref().or(self.password.as_ref())
    }
}

// Defaults are literals known to parse; a typo in one fails every config test at once.
fn duration(text: &str) -> HumanDuration {
    HumanDuration::parse(text).expect("default duration parses")
}
fn size(text: &str) -> ByteSize {
    ByteSize::parse(text).expect("default byte size parses")
}

/// strait's persistent state (mirror progress, offset mappings, cutover stages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the embedded state database; created if missing. Only one strait
    /// process can use a directory at a time (it is locked). Keep it across restarts:
    /// losing it means mirroring restarts from `mirror.start`.
    /// Example: `dir = "/var/lib/strait"`.
    pub dir: PathBuf,
}

/// Consumer-group offset sync: committed offsets of selected source groups are translated
/// and committed on the target, so consumers can move without reprocessing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupsConfig {
    /// Groups to sync, as regular expressions matched against the whole group id.
    /// Example: `include = ["billing-.*"]`.
    #[serde(
        default = "default_groups_include",
        deserialize_with = "values::deserialize_patterns"
    )]
    pub include: Vec<Pattern>,
    /// Groups never to sync, even when they match `include`.
    /// Example: `exclude = ["console-consumer-.*"]`.
    #[serde(default, deserialize_with = "values::deserialize_patterns")]
    pub exclude: Vec<Pattern>,
    /// How often offsets are synced.
    #[serde(default = "default_groups_interval")]
    pub interval: HumanDuration,
}

fn default_groups_include() -> Vec<Pattern> {
    vec![Pattern::new(".*").expect("default pattern compiles")]
}
fn default_groups_interval() -> HumanDuration {
    duration("1s")
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self {
            include: default_groups_include(),
            exclude: Vec::new(),
            interval: default_groups_interval(),
        }
    }
}

impl GroupsConfig {
    /// The group selector: `include` minus `exclude`. Group ids starting with `__` are not
    /// special, so nothing is excluded implicitly.
    pub fn selector(&self) -> GroupSelector {
        NameSelector::new(&self.include, &self.exclude, true)
    }
}

/// The control API (status, metrics, cutover stages).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address and port the API listens on, as `IP:port` (no host names). Unset by default:
    /// no API is served. `127.0.0.1:8088` only accepts local connections; `0.0.0.0:8088`
    /// listens on every interface. When set, at least one token must be configured (with
    /// `token_file` or `STRAIT_API_TOKEN`), or `strait run` refuses to start.
    /// Example: `listen = "127.0.0.1:8088"`.
    #[serde(
        default,
        deserialize_with = "deserialize_listen",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub listen: Option<SocketAddr>,
    /// File of API bearer tokens: one `NAME:TOKEN` per line; blank lines and lines starting
    /// with `#` are ignored. `NAME` is recorded as the actor of every change made with the
    /// token. A token can also be given in the environment variable `STRAIT_API_TOKEN`
    /// (its name is `env`). Every `/v1` request needs `Authorization: Bearer TOKEN`;
    /// `/healthz`, `/readyz` and `/metrics` are open. Unset by default.
    /// Example: `token_file = "/etc/strait/tokens"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// PEM file with the API's TLS certificate, followed by any intermediate certificates
    /// (the chain clients need). When set together with `tls_key`, the API serves HTTPS
    /// only: plain HTTP requests are refused. Both or neither must be set. Unset by default:
    /// plain HTTP, fit only for loopback or a trusted network, since bearer tokens travel in
    /// every request. The files are read once at startup.
    /// Example: `tls_cert = "/etc/strait/api-cert.pem"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1). Never logged.
    /// Example: `tls_key = "/etc/strait/api-key.pem"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl ApiConfig {
    /// The certificate and key files when API TLS is configured (both set).
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("api.token_file", &self.token_file),
            ("api.tls_cert", &self.tls_cert),
            ("api.tls_key", &self.tls_key),
        ] {
            if value.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                let hint = match field {
                    "api.token_file" => " (leave it out to use only STRAIT_API_TOKEN)",
                    _ => " (leave it out to serve plain HTTP)",
                };
                return Err(ConfigError::invalid(
                    field,
                    format!("must not be empty{hint}"),
                ));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err(ConfigError::invalid(
                "api.tls_key",
                "must be set when api.tls_cert is (the certificate's private key)",
            )),
            (None, Some(_)) => Err(ConfigError::invalid(
                "api.tls_cert",
                "must be set when api.tls_key is (the certificate for the key)",
            )),
            _ => Ok(()),
        }
    }
}

// serde's own SocketAddr error ("invalid socket address syntax") does not say what was
// written nor what is expected.
/// Kafka principals, `Type:name` (`User:alice`, `User:*`).
fn deserialize_principals<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    for p in &list {
        let valid = p
            .split_once(':')
            .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty());
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "{} is not a Kafka principal (Type:name, e.g. \"User:*\" or \"User:alice\")",
                error::quote(p)
            )));
        }
    }
    Ok(list)
}

fn deserialize_listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "{} is not an IP socket address (IP:port, e.g. \"127.0.0.1:8088\")",
            error::quote(&text)
        ))
    })
}

/// Logging to standard error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Line format: `"text"` for people, `"json"` for log pipelines.
    #[serde(default)]
    pub format: LogFormat,
    /// Which events are logged, as a tracing `EnvFilter` directive: a level (`"debug"`) or
    /// per-module levels (`"info,strait_linker=debug"`).
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: default_log_level(),
        }
    }
}

/// Log line format.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Reads environment variables; [`std::env::var`] in production, a map in tests (the
/// process environment cannot be changed safely in a multi-threaded test run).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl StraitConfig {
    /// Reads, parses, resolves secrets from the environment, and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses `text`, resolves secrets from the process environment, and validates.
    /// `origin` (usually the file path) prefixes parse errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::from_toml_str_with_env(text, origin, &process_env)
    }

    /// [`from_toml_str`](Self::from_toml_str) with environment variables read through `env`.
    pub fn from_toml_str_with_env(
        text: &str,
        origin: &str,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: error::describe_toml_error(text, &e),
        })?;
        config.resolve_secrets(env)?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_secrets(&mut self, env: EnvLookup<'_>) -> Result<(), ConfigError> {
        for (name, cluster) in [("source", &mut self.source), ("target", &mut self.target)] {
            if let Some(sasl) = &mut cluster.security.sasl {
                sasl.resolved = Some(resolve_password(name, sasl, env)?);
            }
        }
        Ok(())
    }

    /// Checks ranges and cross-field rules that parsing alone cannot; returns the first
    /// problem found. [`load`](Self::load) calls it; call it on configs built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.source.validate("source")?;
        self.target.validate("target")?;
        self.mirror.validate()?;
        if self.state.dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("state.dir", "must not be empty"));
        }
        positive("groups.interval", &self.groups.interval)?;
        self.api.validate()?;
        if self.log.level.trim().is_empty() {
            return Err(ConfigError::invalid(
                "log.level",
                "must not be empty (e.g. \"info\")",
            ));
        }
        Ok(())
    }
}

/// The password for one cluster's SASL settings. Errors name fields and variables, never
/// values.
fn resolve_password(
    cluster: &str,
    sasl: &SaslSettings,
    env: EnvLookup<'_>,
) -> Result<Secret, ConfigError> {
    let field = format!("{cluster}.security.sasl");
    let override_var = format!("STRAIT_{}_SASL_PASSWORD", cluster.to_uppercase());
    if sasl.password.is_some() && sasl.password_env.is_some() {
        return Err(ConfigError::invalid(
            field,
            "set either password or password_env, not both",
        ));
    }
    // Empty counts as unset: orchestrators often define a variable with no value.
    if let Some(value) = env(&override_var).filter(|v| !v.is_empty()) {
        return Ok(Secret::new(value));
    }
    match (&sasl.password, &sasl.password_env) {
        (Some(password), _) if password.expose().is_empty() => Err(ConfigError::invalid(
            format!("{field}.password"),
            "is empty",
        )),
        (Some(password), _) => Ok(password.clone()),
        (None, Some(var)) => match env(var) {
            Some(value) if !value.is_empty() => Ok(Secret::new(value)),
            Some(_) => Err(ConfigError::invalid(
                format!("{field}.password_env"),
                format!("environment variable {} is empty", error::quote(var)),
            )),
            None => Err(ConfigError::invalid(
                format!("{field}.password_env"),
                format!("environment variable {} is not set", error::quote(var)),
            )),
        },
        (None, None) => Err(ConfigError::invalid(
            field,
            format!(
                "no password: set password, password_env, or the {override_var} environment variable"
            ),
        )),
    }
}

impl ClusterConfig {
    /// The wire client configuration for this cluster (timeouts at their defaults).
    pub fn client_config(&self) -> ClientConfig {
        // `new` splits the bootstrap list with `parse_bootstrap`.
        let mut config = ClientConfig::new(&self.bootstrap_servers);
        config.client_id = self.client_id.clone();
        config.security = Security {
            tls: self.security.tls.clone(),
            sasl: self.security.sasl.as_ref().map(|s| SaslConfig {
                mechanism: s.mechanism,
                username: s.username.clone(),
                password: s.effective_password().cloned().unwrap_or_default(),
            }),
        };
        config
    }

    fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let field = format!("{name}.bootstrap_servers");
        let brokers = parse_bootstrap(&self.bootstrap_servers);
        if brokers.is_empty() {
            return Err(ConfigError::invalid(
                field,
                "must list at least one host:port (e.g. \"kafka-1:9092,kafka-2:9092\")",
            ));
        }
        for broker in &brokers {
            // Quote the address the way every other config error quotes values.
            validate_broker_address(broker)
                .map_err(|e| ConfigError::invalid(&field, e.replace('`', "\"")))?;
        }
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                format!("{name}.client_id"),
                "must not be empty",
            ));
        }
        if let Some(tls) = &self.security.tls
            && tls.ca_file.as_os_str().is_empty()
        {
            return Err(ConfigError::invalid(
                format!("{name}.security.tls.ca_file"),
                "must not be empty",
            ));
        }
        if let Some(sasl) = &self.security.sasl
            && sasl.username.is_empty()
        {
            return Err(ConfigError::invalid(
                format!("{name}.security.sasl.username"),
                "must not be empty",
            ));
        }
        Ok(())
    }
}

fn positive(field: &str, value: &HumanDuration) -> Result<(), ConfigError> {
    if value.get().is_zero() {
        return Err(ConfigError::invalid(
            field,
            format!("{value} must be greater than 0"),
        ));
    }
    Ok(())
}
