//! The `[mirror]` table: which topics move and how data moves, with its defaults and its
//! checks.

use serde::{Deserialize, Serialize};

use super::{
    ByteSize, ConfigError, HumanDuration, NameSelector, Pattern, StartPosition, TopicSelector,
    deserialize_principals, duration, positive, size,
};

/// Which topics are mirrored and how data moves. Only `topics` is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Topics to mirror, as regular expressions matched against the whole topic name
    /// (`orders` matches only `orders`; `orders\..*` matches `orders.eu` and `orders.us`).
    /// At least one. Topics created later that match are picked up automatically. Write
    /// patterns in single quotes (TOML literal strings) so backslashes need no escaping.
    /// Example: `topics = ['orders\..*', 'payments']`.
    #[serde(deserialize_with = "super::values::deserialize_patterns")]
    pub topics: Vec<Pattern>,
    /// Topics never to mirror, even when they match `topics`; whole-name regular expressions.
    /// Example: `exclude = ['orders\.tmp.*']`.
    #[serde(default, deserialize_with = "super::values::deserialize_patterns")]
    pub exclude: Vec<Pattern>,
    /// Where mirroring starts in a partition strait has never mirrored before: `"earliest"`
    /// (everything still retained), `"latest"` (only new records) or an RFC 3339 timestamp
    /// such as `"2024-05-01T00:00:00Z"` (the first record at or after that time). Partitions
    /// with saved progress always resume where they stopped.
    #[serde(default = "default_start")]
    pub start: StartPosition,
    /// How often the source is checked for new matching topics and for partitions added to
    /// mirrored topics. At most 10s, so new partitions start mirroring promptly.
    /// Example: `topic_refresh_interval = "2s"`.
    #[serde(default = "default_topic_refresh_interval")]
    pub topic_refresh_interval: HumanDuration,
    /// How often topic configurations (retention, cleanup policy, ...) are copied from
    /// source to target again after the initial copy.
    #[serde(default = "default_config_sync_interval")]
    pub config_sync_interval: HumanDuration,
    /// Memory budget for records fetched from the source but not yet written to the target:
    /// fetching pauses when it is reached. An integer (bytes) or a string with a unit
    /// (`KB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`). Must be at least `fetch_max_bytes`.
    #[serde(default = "default_max_in_flight_bytes")]
    pub max_in_flight_bytes: ByteSize,
    /// How long a source broker may hold a fetch open waiting for new records while the
    /// mirror has data to copy (`fetch_idle_max_wait` takes over once it is caught up). Lower
    /// means less mirroring latency and more requests.
    #[serde(default = "default_fetch_max_wait")]
    pub fetch_max_wait: HumanDuration,
    /// The longest a fetch may wait once the whole mirror is caught up. Each empty answer to
    /// a fetch of every partition doubles the next one's wait, from `fetch_max_wait` up to
    /// this; any record brings it back to `fetch_max_wait`. A Kafka source answers a waiting
    /// fetch as soon as a record arrives, so this costs no latency there, and it spares the
    /// source broker an empty fetch of every partition 100 times a second (at 1,000 idle
    /// partitions, measured: about half a core at 10 ms, 5-6% at 500 ms). A partition that becomes ready
    /// while such a fetch is out (new, released after a hold, retried) waits for its answer.
    /// At or below `fetch_max_wait` there is no backoff, as there should not be for a tansu
    /// source, which holds every answer for about half the wait.
    #[serde(default = "default_fetch_idle_max_wait")]
    pub fetch_idle_max_wait: HumanDuration,
    /// Fetch from the source in incremental fetch sessions (Kafka's KIP-227, as Kafka's own
    /// consumers do): after the first fetch, a fetch names only the partitions whose offset
    /// changed, and the broker answers only for partitions with something new, instead of
    /// every partition both ways on every fetch (at 1,000 partitions a 28 KB request, and
    /// an answer as large, many times a second). Measured at 1,000 partitions and 10 MB/s:
    /// fetches come back sooner, and strait adds 35-46 ms to the brokers' own
    /// produce-to-fetch latency (median) instead of 50-68 ms; the source broker's CPU did
    /// not change measurably (Kafka still reads every partition of a session on each
    /// fetch). A broker that keeps no sessions (tansu, a full session cache) is fetched from
    /// in full as before; any session error starts a new session at once. Turn off only to
    /// rule sessions out when diagnosing a source broker.
    #[serde(default = "default_true")]
    pub fetch_sessions: bool,
    /// Most data one fetch response may carry (Kafka `fetch.max.bytes`). Must be at least
    /// `partition_fetch_max_bytes` and at most `max_in_flight_bytes`. A fetch's bytes are
    /// shared equally among the partitions it asks that are behind (at least 1 MiB each, at
    /// most `partition_fetch_max_bytes`), so that every one of them gets records in it. Keep
    /// it at or below the source brokers' own cap (Kafka's broker `fetch.max.bytes`, 55 MiB
    /// by default): a broker stops filling a response at its cap, and the partitions named
    /// last in the fetch then get nothing. The default is the Java consumer's.
    #[serde(default = "default_fetch_max_bytes")]
    pub fetch_max_bytes: ByteSize,
    /// Most data one fetch response may carry per partition (Kafka
    /// `max.partition.fetch.bytes`); less, down to 1 MiB, when a fetch's bytes are shared
    /// among more partitions behind (see `fetch_max_bytes`). A record batch larger than this
    /// is still fetched whole.
    #[serde(default = "default_partition_fetch_max_bytes")]
    pub partition_fetch_max_bytes: ByteSize,
    /// Data a source broker should gather before it answers a fetch (Kafka
    /// `fetch.min.bytes`); it answers after `fetch_max_wait` with whatever it has. With the
    /// default of 1 byte, strait fetches again as soon as anything arrives: under a steady
    /// load on many partitions, as often as the source answers. Raising it together with
    /// `fetch_max_wait` makes fetches and writes rarer and larger, for at most
    /// `fetch_max_wait` more latency (and write pause at a cutover). Measured at 1,000
    /// partitions and 10 MB/s: `"1MiB"` with a 50 ms wait took strait from 23-28% of a core
    /// to 8%, its fetches from 76-95 a second to 14, and the median delay from 23-31 ms to
    /// 56-64 ms; the source broker's CPU did not change measurably (the writes took most of
    /// it). Not applied while the mirror is caught up and waits longer
    /// (`fetch_idle_max_wait`), so the first new record still comes at once. At most
    /// `fetch_max_bytes`.
    #[serde(default = "default_fetch_min_bytes")]
    pub fetch_min_bytes: ByteSize,
    /// Record batches written to the target per partition before the first is acknowledged, 1 to 5
    /// (Kafka's limit for an idempotent producer). Above 1, strait writes with its own idempotent
    /// producer id on the target (one shared by the partitions, kept across restarts where the
    /// target's last batch carries it; a partition gets one of its own after a failed write), so
    /// the target keeps the batches in order or refuses the rest; a target that refuses producer
    /// ids falls back to 1. With 1, batches go out one at a time without a producer id, and those
    /// that had none at the source keep their exact header and CRC. The records are byte-identical
    /// either way. It is also the number of produce requests in flight per target connection, each
    /// carrying a write from every partition that has one ready. On a tansu 0.6 target consider 1
    /// for a mirror of many partitions: tansu keeps every idempotent producer's sequence for every
    /// partition it wrote, never expires them, and rewrites all of them for each idempotent batch,
    /// so strait's first start (and each new id) leaves a sequence per partition that makes every
    /// later idempotent write on that tansu dearer (docs/benchmarks.md, items 28-29). Measured on
    /// fresh tansu targets: 1,000 partitions copied at 359 MB/s with 1 against 282 with 5, 8 hot
    /// partitions of 1,000 alike (241 against 246), 8 partitions at 326 against about 570.
    #[serde(default = "default_max_in_flight_per_partition")]
    pub max_in_flight_per_partition: u8,
    /// Connections to each target broker that writes are spread over, 1 to 16; a partition
    /// always writes over the same one, so its batches stay in order. One more connection
    /// per broker carries everything else (metadata, end reads, a cutover's checks), so
    /// those never wait behind writes; likewise the source's fetches have a connection of
    /// their own. Kafka works on one request per connection at a time, so with several
    /// connections a target broker appends for several requests at once. Default 2: on a
    /// 2-core machine shared with both brokers (docs/benchmarks.md, item 21), two against
    /// one kept Kafka's 1 KB copy level and took its 1,000-partition copy from 97 to 139
    /// MB/s, and at a steady 72 MB/s strait's queue stayed at a few milliseconds in 5 of 7
    /// runs where one connection let it grow to a second in most; tansu copied as fast
    /// either way. Three or four connections gained nothing more there (item 22). Re-run
    /// over six alternated pairs at 72 MB/s (item 26), two met the latency target in 3 of 6
    /// runs and one in 0 of 6; with a core of its own the target answered as fast either way
    /// (5 of 6 each). Raise it for a large Kafka target whose request handler threads sit
    /// idle; 1 sends every write over one connection, fewer and larger requests, which
    /// copied a backlog into a one-core Kafka target 5-15% faster (items 25 and 26).
    #[serde(default = "default_target_connections_per_broker")]
    pub target_connections_per_broker: u8,
    /// Record batches of one partition sent in one produce request, at most, 1 to 64, one
    /// after the other in the partition's records (each batch still byte-identical, with its
    /// own sequence number). tansu takes several and pays its per-request cost once for them:
    /// 8 lifted its idempotent write rate from 348 to 635 MB/s in `produce_probe` (16 KiB
    /// batches). Apache Kafka takes one batch per partition per request. strait learns which
    /// from one write: until the target has answered a write of several batches, only one
    /// partition sends several; if the target refuses it (INVALID_RECORD, nothing written),
    /// strait sends one per request from then on. A Kafka target therefore costs one refused
    /// write per start (the same batches then go one per request, no reset). Set 1 to never
    /// try. Default 8.
    #[serde(default = "default_max_batches_per_request")]
    pub max_batches_per_request: u8,
    /// Whether Kafka's internal topics (names starting with `__`, such as
    /// `__consumer_offsets`) may be mirrored when they match `topics`. Leave this off: the
    /// target cluster maintains its own internal topics.
    #[serde(default)]
    pub include_internal: bool,
    /// Principals denied writes to the mirror topics on the target while strait mirrors
    /// them: strait adds a `DENY WRITE` ACL per mirror topic and principal (for example
    /// `["User:*"]`), removes it from a wave's topics when a cutover promotes them, and adds
    /// it again when a failback resumes mirroring. Needs a target that enforces ACLs, and
    /// strait's own target principal must be a super user (super users are exempt from
    /// ACLs). On a target that refuses the ACLs (no authorizer: SECURITY_DISABLED; tansu),
    /// every mirror topic shows the refusal under `topic_problems` in the status and
    /// mirroring goes on; each discovery asks again, in one CreateAcls request for all
    /// topics. Empty by default: writes by others are still detected (the partition stops
    /// with a foreign-write error), but not prevented.
    /// Example: `protect_principals = ["User:*"]`.
    #[serde(default, deserialize_with = "deserialize_principals")]
    pub protect_principals: Vec<String>,
}

fn default_start() -> StartPosition {
    StartPosition::Earliest
}
fn default_topic_refresh_interval() -> HumanDuration {
    duration("5s")
}
fn default_config_sync_interval() -> HumanDuration {
    duration("60s")
}
fn default_max_in_flight_bytes() -> ByteSize {
    size("256MiB")
}
fn default_max_in_flight_per_partition() -> u8 {
    5
}
fn default_target_connections_per_broker() -> u8 {
    2
}
fn default_max_batches_per_request() -> u8 {
    8
}
fn default_fetch_max_wait() -> HumanDuration {
    duration("10ms")
}
fn default_fetch_idle_max_wait() -> HumanDuration {
    duration("500ms")
}
fn default_true() -> bool {
    true
}
fn default_fetch_max_bytes() -> ByteSize {
    size("50MiB")
}
fn default_fetch_min_bytes() -> ByteSize {
    size("1B")
}
fn default_partition_fetch_max_bytes() -> ByteSize {
    size("8MiB")
}

impl MirrorConfig {
    /// The topic selector: `topics` minus `exclude`, internal topics only when
    /// `include_internal`.
    pub fn selector(&self) -> TopicSelector {
        NameSelector::new(&self.topics, &self.exclude, self.include_internal)
    }
}

/// Kafka's Fetch request carries these as 32-bit signed integers.
const KAFKA_INT32_MAX: u64 = i32::MAX as u64;

/// New partitions must start mirroring within this long of being created.
const MAX_TOPIC_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

impl MirrorConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.topics.is_empty() {
            return Err(ConfigError::invalid(
                "mirror.topics",
                "must list at least one topic pattern (e.g. topics = ['orders\\..*'])",
            ));
        }
        for (field, value) in [
            (
                "mirror.topic_refresh_interval",
                &self.topic_refresh_interval,
            ),
            ("mirror.config_sync_interval", &self.config_sync_interval),
            ("mirror.fetch_max_wait", &self.fetch_max_wait),
            ("mirror.fetch_idle_max_wait", &self.fetch_idle_max_wait),
        ] {
            positive(field, value)?;
        }
        if self.topic_refresh_interval.get() > MAX_TOPIC_REFRESH {
            return Err(ConfigError::invalid(
                "mirror.topic_refresh_interval",
                format!(
                    "{} is longer than the maximum of 10s (new partitions must start mirroring \
                     promptly)",
                    self.topic_refresh_interval
                ),
            ));
        }
        for (field, value) in [
            ("mirror.fetch_max_wait", &self.fetch_max_wait),
            ("mirror.fetch_idle_max_wait", &self.fetch_idle_max_wait),
        ] {
            if value.get().as_millis() > u128::from(KAFKA_INT32_MAX) {
                return Err(ConfigError::invalid(
                    field,
                    format!("{value} is longer than Kafka's Fetch request allows (about 24 days)"),
                ));
            }
        }
        if !(1..=5).contains(&self.max_in_flight_per_partition) {
            return Err(ConfigError::invalid(
                "mirror.max_in_flight_per_partition",
                format!(
                    "{} is outside 1..=5 (above 5, Kafka no longer keeps an idempotent \
                     producer's batches in order)",
                    self.max_in_flight_per_partition
                ),
            ));
        }
        if !(1..=16).contains(&self.target_connections_per_broker) {
            return Err(ConfigError::invalid(
                "mirror.target_connections_per_broker",
                format!("{} is outside 1..=16", self.target_connections_per_broker),
            ));
        }
        if !(1..=64).contains(&self.max_batches_per_request) {
            return Err(ConfigError::invalid(
                "mirror.max_batches_per_request",
                format!("{} is outside 1..=64", self.max_batches_per_request),
            ));
        }
        let sizes = [
            ("mirror.max_in_flight_bytes", &self.max_in_flight_bytes),
            ("mirror.fetch_max_bytes", &self.fetch_max_bytes),
            (
                "mirror.partition_fetch_max_bytes",
                &self.partition_fetch_max_bytes,
            ),
            ("mirror.fetch_min_bytes", &self.fetch_min_bytes),
        ];
        for (field, value) in sizes {
            if value.bytes() == 0 {
                return Err(ConfigError::invalid(field, "must be greater than 0"));
            }
        }
        for (field, value) in &sizes[1..] {
            if value.bytes() > KAFKA_INT32_MAX {
                return Err(ConfigError::invalid(
                    *field,
                    format!("{value} exceeds Kafka's limit of {KAFKA_INT32_MAX} bytes"),
                ));
            }
        }
        if self.partition_fetch_max_bytes.bytes() > self.fetch_max_bytes.bytes() {
            return Err(ConfigError::invalid(
                "mirror.partition_fetch_max_bytes",
                format!(
                    "{} is larger than mirror.fetch_max_bytes ({})",
                    self.partition_fetch_max_bytes, self.fetch_max_bytes
                ),
            ));
        }
        if self.fetch_min_bytes.bytes() > self.fetch_max_bytes.bytes() {
            return Err(ConfigError::invalid(
                "mirror.fetch_min_bytes",
                format!(
                    "{} is larger than mirror.fetch_max_bytes ({}): no fetch could gather it",
                    self.fetch_min_bytes, self.fetch_max_bytes
                ),
            ));
        }
        if self.fetch_max_bytes.bytes() > self.max_in_flight_bytes.bytes() {
            return Err(ConfigError::invalid(
                "mirror.fetch_max_bytes",
                format!(
                    "{} is larger than mirror.max_in_flight_bytes ({}): one fetch response must \
                     fit in the in-flight budget",
                    self.fetch_max_bytes, self.max_in_flight_bytes
                ),
            ));
        }
        Ok(())
    }
}
