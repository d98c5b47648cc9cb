//! strait's data plane: a Kafka wire client, raw record batches, and (later) mirror pipelines
//! and their persisted state.
//!
//! ```text
//!   source cluster                                         target cluster
//!        │  Fetch (raw records blob)                             ▲  Produce (same bytes)
//!        ▼                                                       │
//!   client::KafkaClient ──► batch::split / verify CRC ──► client::KafkaClient
//! ```
//!
//! Layers, bottom up:
//! - [`batch`]: record batch v2 headers, CRC-32C, producer-field rewrite; never decompresses.
//! - [`client`]: connections (framing, pipelining, version negotiation, TLS, SASL), the
//!   metadata cache that routes requests to leaders, and the typed operations strait needs.
//! - [`records`]: exact record decoding for verification (never on the data path).
//! - [`offset`]: newtypes that keep source and target offsets from being mixed up.
//! - [`config`]: the `strait.toml` configuration file: types, loading, validation, and the
//!   generated reference in `docs/configuration.md`.
//! - [`state`]: persisted state over sled: per-partition offset maps and checkpoints, and
//!   typed key-value namespaces for other components.
//! - [`metrics`]: process-global latency histograms and retry counters of the data path,
//!   rendered for Prometheus.
//! - [`plan`]: `strait plan`, the read-only dry run, and its `--probe` of the target.

pub mod batch;
pub mod client;
pub mod config;
pub mod metrics;
pub mod mirror;
pub mod offset;
pub mod plan;
pub mod records;
pub mod state;
