//! Client errors, and the one place that decides what is retriable.
//!
//! Every error carries the context an operator needs to act on it: the broker, the API, and
//! where it applies the topic, partition and offset. [`Error::retry`] is the only function in
//! the crate that decides whether an error is worth retrying and what must be refreshed first;
//! callers never match on error codes themselves to make that decision.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;

/// Result alias for client operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What must happen before a failed operation is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Not retriable: surface the error.
    No,
    /// Try again after a backoff delay; nothing to refresh.
    Backoff,
    /// Partition leadership or topic existence changed: refresh metadata, then try again.
    RefreshMetadata,
    /// The group coordinator moved or is loading: look it up again, then try again.
    RefreshCoordinator,
    /// The connection failed: reconnect (and refresh metadata), then try again.
    Reconnect,
    /// The broker's sequence state for this idempotent producer no longer matches the writer's
    /// (out-of-order or duplicate sequence, unknown or fenced producer id): find out what
    /// landed, then continue under a fresh producer id. Never a plain resend.
    NewProducer,
}

/// Where in the cluster an error applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Topic the failed request concerned, if any.
    pub topic: Option<String>,
    /// Partition the failed request concerned, if any.
    pub partition: Option<i32>,
    /// Offset the failed request concerned, if any.
    pub offset: Option<i64>,
    /// Consumer group the failed request concerned, if any.
    pub group: Option<String>,
}

impl Context {
    /// Context naming a topic partition.
    pub fn partition(topic: &str, partition: i32) -> Self {
        Self {
            topic: Some(topic.to_owned()),
            partition: Some(partition),
            ..Self::default()
        }
    }

    /// Context naming a topic.
    pub fn topic(topic: &str) -> Self {
        Self {
            topic: Some(topic.to_owned()),
            ..Self::default()
        }
    }

    /// Context naming a consumer group.
    pub fn group(group: &str) -> Self {
        Self {
            group: Some(group.to_owned()),
            ..Self::default()
        }
    }

    /// Adds an offset to the context.
    pub fn at_offset(mut self, offset: i64) -> Self {
        self.offset = Some(offset);
        self
    }
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sep = "";
        if let Some(t) = &self.topic {
            write!(f, "topic={t}")?;
            sep = " ";
        }
        if let Some(p) = self.partition {
            write!(f, "{sep}partition={p}")?;
            sep = " ";
        }
        if let Some(o) = self.offset {
            write!(f, "{sep}offset={o}")?;
            sep = " ";
        }
        if let Some(g) = &self.group {
            write!(f, "{sep}group={g}")?;
        }
        Ok(())
    }
}

/// A client error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Could not open a TCP connection (or TLS session) to a broker.
    #[error("cannot connect to {broker}: {message}")]
    Connect {
        /// `host:port` of the broker.
        broker: String,
        /// What went wrong.
        message: String,
    },
    /// The connection broke while requests were in flight, or was already broken.
    #[error("connection to {broker} failed: {message}")]
    Connection {
        /// `host:port` of the broker.
        broker: String,
        /// What went wrong (shared by every request that was in flight).
        message: Arc<str>,
    },
    /// No response arrived within the request timeout.
    #[error("{api} request to {broker} timed out after {after:?}")]
    Timeout {
        /// `host:port` of the broker.
        broker: String,
        /// API name.
        api: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The broker does not offer this API (or no version both sides speak).
    #[error("broker {broker} does not support {api}{detail}")]
    UnsupportedApi {
        /// `host:port` of the broker.
        broker: String,
        /// API name.
        api: &'static str,
        /// Versions involved, for the operator.
        detail: String,
    },
    /// A request or response could not be encoded or decoded.
    #[error("{api} protocol error with {broker}: {message}")]
    Protocol {
        /// `host:port` of the broker.
        broker: String,
        /// API name.
        api: &'static str,
        /// Decoder message.
        message: String,
    },
    /// SASL or TLS authentication failed. Never carries a secret.
    #[error("authentication with {broker} failed: {message}")]
    Auth {
        /// `host:port` of the broker.
        broker: String,
        /// What the broker or the handshake said.
        message: String,
    },
    /// The broker answered with a Kafka error code.
    #[error("{api} failed: {error} ({code}){}{}", fmt_ctx(.context), fmt_msg(.message))]
    Broker {
        /// API name.
        api: &'static str,
        /// Decoded error.
        error: ResponseError,
        /// Raw error code.
        code: i16,
        /// Where it applies.
        context: Context,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
    /// Metadata does not (yet) know a topic or partition, or has no leader for it.
    #[error("no leader known for {context}")]
    NoLeader {
        /// The partition.
        context: Context,
    },
    /// The client configuration is unusable.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

fn fmt_ctx(c: &Context) -> String {
    let s = c.to_string();
    if s.is_empty() { s } else { format!(" [{s}]") }
}

fn fmt_msg(m: &Option<String>) -> String {
    match m {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

impl Error {
    /// Builds a [`Error::Broker`] from a non-zero error code.
    pub fn broker(
        api: &'static str,
        code: i16,
        context: Context,
        message: Option<impl Into<String>>,
    ) -> Self {
        Error::Broker {
            api,
            error: ResponseError::try_from_code(code).unwrap_or(ResponseError::Unknown(code)),
            code,
            context,
            message: message.map(Into::into),
        }
    }

    /// The Kafka error code, when the broker sent one.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The decoded Kafka error, when the broker sent one.
    pub fn response_error(&self) -> Option<ResponseError> {
        match self {
            Error::Broker { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// Decides whether this error is retriable, and what to refresh first.
    ///
    /// This is the single classification point of the crate. Broker error codes follow the
    /// protocol's own retriable flag, with the refresh each family needs; transport failures
    /// reconnect; everything else (bad config, auth, unsupported API, protocol violations and
    /// non-retriable broker errors) surfaces at once.
    pub fn retry(&self) -> Retry {
        match self {
            Error::Connect { .. } | Error::Connection { .. } | Error::Timeout { .. } => {
                Retry::Reconnect
            }
            Error::NoLeader { .. } => Retry::RefreshMetadata,
            Error::Broker { error, .. } => classify(*error),
            Error::UnsupportedApi { .. }
            | Error::Protocol { .. }
            | Error::Auth { .. }
            | Error::Config(_) => Retry::No,
        }
    }

    /// A short stable name for the error class, used as a metric label.
    pub fn class(&self) -> &'static str {
        match self {
            Error::Connect { .. } => "connect",
            Error::Connection { .. } => "connection",
            Error::Timeout { .. } => "timeout",
            Error::UnsupportedApi { .. } => "unsupported_api",
            Error::Protocol { .. } => "protocol",
            Error::Auth { .. } => "auth",
            Error::Broker { .. } => "broker",
            Error::NoLeader { .. } => "no_leader",
            Error::Config(_) => "config",
        }
    }
}

fn classify(error: ResponseError) -> Retry {
    use ResponseError as E;
    match error {
        E::NotLeaderOrFollower
        | E::LeaderNotAvailable
        | E::UnknownTopicOrPartition
        | E::FencedLeaderEpoch
        | E::UnknownLeaderEpoch
        | E::ReplicaNotAvailable
        | E::KafkaStorageError
        | E::OffsetNotAvailable => Retry::RefreshMetadata,
        E::NotCoordinator | E::CoordinatorNotAvailable => Retry::RefreshCoordinator,
        // Loading is transient on the same coordinator: wait, do not look it up again.
        E::CoordinatorLoadInProgress => Retry::Backoff,
        E::OutOfOrderSequenceNumber
        | E::DuplicateSequenceNumber
        | E::UnknownProducerId
        | E::InvalidProducerEpoch
        | E::ProducerFenced => Retry::NewProducer,
        // CRC failures are retriable per protocol, but a corrupt batch must be handled by the
        // data path (re-fetch and count), never silently by a generic retry loop.
        E::CorruptMessage => Retry::No,
        e if e.is_retriable() => Retry::Backoff,
        _ => Retry::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_covers_the_families() {
        let ctx = Context::partition("t", 0);
        let e = |code| Error::broker("Fetch", code, ctx.clone(), None::<String>);
        assert_eq!(e(6).retry(), Retry::RefreshMetadata); // NOT_LEADER_OR_FOLLOWER
        assert_eq!(e(3).retry(), Retry::RefreshMetadata); // UNKNOWN_TOPIC_OR_PARTITION
        assert_eq!(e(16).retry(), Retry::RefreshCoordinator); // NOT_COORDINATOR
        assert_eq!(e(14).retry(), Retry::Backoff); // COORDINATOR_LOAD_IN_PROGRESS
        assert_eq!(e(7).retry(), Retry::Backoff); // REQUEST_TIMED_OUT
        for code in [45, 46, 47, 59, 90] {
            // OUT_OF_ORDER_SEQUENCE, DUPLICATE_SEQUENCE, INVALID_PRODUCER_EPOCH,
            // UNKNOWN_PRODUCER_ID, PRODUCER_FENCED
            assert_eq!(e(code).retry(), Retry::NewProducer, "{code}");
        }
        assert_eq!(e(2).retry(), Retry::No); // CORRUPT_MESSAGE: data path decides
        assert_eq!(e(1).retry(), Retry::No); // OFFSET_OUT_OF_RANGE
        assert_eq!(e(29).retry(), Retry::No); // TOPIC_AUTHORIZATION_FAILED
        assert_eq!(e(-1).retry(), Retry::No);
        let c = Error::Connection {
            broker: "b:1".into(),
            message: "reset".into(),
        };
        assert_eq!(c.retry(), Retry::Reconnect);
    }

    #[test]
    fn broker_errors_name_their_context() {
        let e = Error::broker(
            "Fetch",
            1,
            Context::partition("orders", 3).at_offset(42),
            Some("out of range"),
        );
        let s = e.to_string();
        assert!(s.contains("topic=orders partition=3 offset=42"), "{s}");
        assert!(s.contains("OffsetOutOfRange"), "{s}");
        assert!(s.contains("out of range"), "{s}");
    }
}
