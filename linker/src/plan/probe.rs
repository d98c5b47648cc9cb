//! `strait plan --probe`: which Kafka guarantees a cutover relies on hold on the target.
//!
//! ```text
//!  CreateTopics strait-probe-<random> (1 partition)
//!    produce: [1 record] [3 records]          ─► fetch inside a batch, ListOffsets latest
//!                                                 and by timestamp
//!    InitProducerId ─► seq 0, seq 0 again, seq 5 ─► idempotent producer handling
//!    FindCoordinator(txn) ─► InitProducerId(txn id) ─► AddPartitionsToTxn ─► produce ─► EndTxn
//!                                              ─► read_committed fetch: transactions
//!    CreateAcls ─► DescribeAcls ─► DeleteAcls  ─► ACL enforcement
//!    DeleteRecords (last: some brokers close the connection) ─► log start moved?
//!  DeleteTopics (always, also when a check failed)
//! ```
//!
//! An API the broker does not advertise is never sent (some Kafka-compatible brokers close
//! the connection on unknown requests): the guarantee is reported as not held, naming it.
//! Each guarantee ends as held, not held or untested, with what was observed, and names the
//! cutover features that depend on it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::Serialize;

use crate::client::admin::NewTopic;
use crate::client::connection::ApiVersions;
use crate::client::data::{FetchOptions, FetchPosition, FetchedPartition, Isolation, OffsetSpec};
use crate::client::{Error, KafkaClient, Retry};

/// Whether a guarantee holds on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Observed to hold.
    Held,
    /// Observed not to hold (or the API it needs is missing).
    NotHeld,
    /// Could not be tested; see the detail.
    Untested,
}

/// One probed guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guarantee {
    /// Stable identifier (`fetch_inside_batch`, `transactions`, ...).
    pub id: &'static str,
    /// For people.
    pub name: &'static str,
    /// The result.
    pub outcome: Outcome,
    /// What was observed.
    pub detail: String,
    /// Which cutover features depend on it; set when it did not hold or was not tested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affects: Option<&'static str>,
}

/// The probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// The target's bootstrap servers.
    pub target: String,
    /// The scratch topic, when it was created.
    pub scratch_topic: Option<String>,
    /// Whether the scratch topic is gone again.
    pub scratch_topic_deleted: bool,
    /// What could not be cleaned up (the scratch topic, an ACL), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup_problem: Option<String>,
    /// The guarantees, in a fixed order.
    pub guarantees: Vec<Guarantee>,
}

/// (id, name, what depends on it), in report order.
const SPECS: [(&str, &str, &str); 7] = [
    (
        "fetch_inside_batch",
        "fetch from inside a batch",
        "consumer offsets that land inside a batch resume at the next batch: a group moved \
         at a cutover whose committed offset is mid-batch skips the rest of that batch (or \
         stalls if it is the last one); only offsets at batch boundaries resume exactly",
    ),
    (
        "list_offsets_latest",
        "ListOffsets latest",
        "end offsets from ListOffsets are wrong: consumer lag, auto.offset.reset=latest and \
         seek-to-end on the target are off; strait reads the target's end with Fetch instead",
    ),
    (
        "list_offsets_timestamp",
        "ListOffsets by timestamp",
        "seeking by time on the target (offsetsForTimes, a consumer reset to a timestamp \
         after the cutover, a point-in-time rollback) lands on wrong offsets; mirror.start as \
         a timestamp is unreliable when this cluster is a source",
    ),
    (
        "transactions",
        "transactions",
        "transactional producers and exactly-once pipelines cannot move to this target: \
         their transactions never complete, and read_committed consumers see nothing past an \
         open transaction",
    ),
    (
        "delete_records",
        "DeleteRecords",
        "the target cannot be truncated: a rollback or re-mirror that must clear a target \
         topic has to delete and re-create it, and log starts cannot be aligned",
    ),
    (
        "acl_enforcement",
        "ACL enforcement",
        "the `acl` fence cannot fence writers on this target: use fence mode `manual` for \
         failback (failback_mode = \"manual\"); ACLs cannot be synced",
    ),
    (
        "idempotent_producer",
        "idempotent producer handling",
        "idempotent producers moved to this target may write duplicates on retry or see \
         valid writes refused",
    ),
];

pub(super) fn guarantee(
    id: &'static str,
    outcome: Outcome,
    detail: impl Into<String>,
) -> Guarantee {
    let (id, name, affects) = SPECS
        .iter()
        .find(|s| s.0 == id)
        .copied()
        .expect("known guarantee id");
    Guarantee {
        id,
        name,
        outcome,
        detail: detail.into(),
        affects: (outcome != Outcome::Held).then_some(affects),
    }
}

impl ProbeReport {
    /// A report where nothing could be tested, for `reason`.
    pub fn untested(target: &str, reason: &str) -> Self {
        Self {
            target: target.to_owned(),
            scratch_topic: None,
            scratch_topic_deleted: false,
            cleanup_problem: None,
            guarantees: SPECS
                .iter()
                .map(|s| guarantee(s.0, Outcome::Untested, reason))
                .collect(),
        }
    }

    /// The guarantee with `id`.
    pub fn get(&self, id: &str) -> Option<&Guarantee> {
        self.guarantees.iter().find(|g| g.id == id)
    }
}

/// Time allowed for one produce, and for a broker to settle (ACLs, transaction markers).
pub(super) const STEP: Duration = Duration::from_secs(15);

/// Runs the probe on `target`: creates a scratch topic, checks every guarantee, and deletes
/// the topic again whatever happened.
pub async fn probe(target: &KafkaClient) -> ProbeReport {
    let bootstrap = target.config().bootstrap.join(",");
    let versions = match target.any_connection().await {
        Ok(c) => c.api_versions().clone(),
        Err(e) => return ProbeReport::untested(&bootstrap, &format!("no connection: {e}")),
    };
    if !offers(&versions, 19) || !offers(&versions, 20) {
        return ProbeReport::untested(
            &bootstrap,
            "the target does not offer CreateTopics and DeleteTopics: no scratch topic",
        );
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let p = Probe {
        client: target,
        topic: format!("strait-probe-{id}"),
        id,
        versions,
    };
    if let Err(e) = p.create().await {
        let mut r = ProbeReport::untested(
            &bootstrap,
            &format!("cannot create the scratch topic {}: {e}", p.topic),
        );
        // It may exist after all (a timeout): clean up anyway.
        let (deleted, problem) = p.delete().await;
        r.scratch_topic_deleted = deleted;
        r.cleanup_problem = problem;
        return r;
    }
    let mut found = Vec::new();
    match p.write_data().await {
        Ok(layout) => {
            found.push(p.fetch_inside_batch(&layout).await);
            found.push(p.list_offsets_latest(&layout).await);
            found.push(p.list_offsets_timestamp(&layout).await);
        }
        Err(e) => {
            for id in [
                "fetch_inside_batch",
                "list_offsets_latest",
                "list_offsets_timestamp",
            ] {
                found.push(guarantee(
                    id,
                    Outcome::Untested,
                    format!("could not write the probe records: {e}"),
                ));
            }
        }
    }
    found.push(p.idempotent().await);
    found.push(super::txn::transactions(&p).await);
    let (acl, acl_left) = p.acls().await;
    found.push(acl);
    // Last: brokers that advertise DeleteRecords without implementing it close the connection.
    found.push(p.delete_records().await);
    let mut problems = Vec::new();
    if let Some(binding) = acl_left
        && let Err(e) = target.delete_acls(std::slice::from_ref(&binding)).await
    {
        problems.push(format!(
            "the probe ACL on {} could not be deleted: {e}",
            p.topic
        ));
    }
    let (deleted, problem) = p.delete().await;
    problems.extend(problem);
    found.sort_by_key(|g| SPECS.iter().position(|s| s.0 == g.id));
    ProbeReport {
        target: bootstrap,
        scratch_topic: Some(p.topic.clone()),
        scratch_topic_deleted: deleted,
        cleanup_problem: (!problems.is_empty()).then(|| problems.join("; ")),
        guarantees: found,
    }
}

/// Whether the broker advertises `key` in a version strait speaks.
fn offers(v: &ApiVersions, key: i16) -> bool {
    let Some((lo, hi)) = v.range(key) else {
        return false;
    };
    kafka_protocol::messages::ApiKey::try_from(key).is_ok_and(|k| {
        let ours = k.valid_versions();
        lo.max(ours.min) <= hi.min(ours.max)
    })
}

/// The names of the APIs in `keys` the broker does not advertise, or `None` when all are.
pub(super) fn missing(v: &ApiVersions, keys: &[(i16, &str)]) -> Option<String> {
    let gone: Vec<String> = keys
        .iter()
        .filter(|(k, _)| !offers(v, *k))
        .map(|(k, n)| format!("{n} ({k})"))
        .collect();
    (!gone.is_empty()).then(|| gone.join(", "))
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One record batch of `timestamps.len()` records; `producer` = (id, epoch, base sequence).
pub(super) fn encode(
    timestamps: &[i64],
    producer: Option<(i64, i16, i32)>,
    transactional: bool,
) -> Bytes {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, ts)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Offsets and sequences must advance together for the records to form one
            // batch; without a producer the batch's base sequence is -1.
            sequence: seq + i as i32,
            timestamp: *ts,
            key: Some(Bytes::from_static(b"strait-probe")),
            value: Some(Bytes::from(format!("probe record {i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    // Encoding uncompressed records into memory cannot fail.
    RecordBatchEncoder::encode(&mut buf, records.iter(), &opts).expect("record batch encodes");
    buf.freeze()
}

pub(super) struct Probe<'a> {
    pub(super) client: &'a KafkaClient,
    pub(super) topic: String,
    pub(super) id: String,
    pub(super) versions: ApiVersions,
}

impl Probe<'_> {
    pub(super) fn key(&self) -> (String, i32) {
        (self.topic.clone(), 0)
    }

    async fn create(&self) -> Result<(), Error> {
        let new = NewTopic {
            name: self.topic.clone(),
            partitions: 1,
            replication_factor: -1,
            configs: Default::default(),
        };
        let r = self.client.create_topics(&[new], STEP, false).await?;
        if let Some(Err(e)) = r.get(&self.topic) {
            return Err(e.clone());
        }
        let deadline = Instant::now() + STEP;
        loop {
            match self.client.leader(&self.topic, 0).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Deletes the scratch topic and waits until metadata no longer lists it.
    async fn delete(&self) -> (bool, Option<String>) {
        let names = [self.topic.clone()];
        match self.client.delete_topics(&names, STEP).await {
            Ok(r) => match r.get(&self.topic) {
                Some(Ok(())) | None => {}
                Some(Err(e)) if e.code() == Some(3) => {} // already gone
                Some(Err(e)) => {
                    return (
                        false,
                        Some(format!("scratch topic {} not deleted: {e}", self.topic)),
                    );
                }
            },
            Err(e) => {
                return (
                    false,
                    Some(format!("scratch topic {} not deleted: {e}", self.topic)),
                );
            }
        }
        let deadline = Instant::now() + STEP;
        loop {
            if let Ok(found) = self.client.refresh_metadata(Some(&names)).await
                && found.is_empty()
            {
                return (true, None);
            }
            if Instant::now() > deadline {
                return (
                    false,
                    Some(format!(
                        "scratch topic {} still listed {} s after DeleteTopics",
                        self.topic,
                        STEP.as_secs()
                    )),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Produces one batch, retrying briefly while a new topic's leadership settles.
    pub(super) async fn produce(&self, batch: Bytes) -> Result<i64, Error> {
        let deadline = Instant::now() + STEP;
        loop {
            let item = crate::client::data::ProduceItem {
                topic: self.topic.clone(),
                partition: 0,
                records: batch.clone().into(),
            };
            let r = self
                .client
                .produce(vec![item], -1, STEP)
                .await
                .remove(&self.key())
                .unwrap_or_else(|| {
                    Err(Error::NoLeader {
                        context: crate::client::Context::partition(&self.topic, 0),
                    })
                });
            match r {
                Ok(ack) => return Ok(ack.base_offset),
                Err(e) if e.retry() == Retry::RefreshMetadata && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) async fn fetch(
        &self,
        offset: i64,
        isolation: Isolation,
        max_wait: Duration,
    ) -> FetchedPartition {
        let pos = FetchPosition {
            topic: self.topic.clone(),
            partition: 0,
            offset,
            max_bytes: 1 << 20,
        };
        let opts = FetchOptions {
            max_wait,
            isolation,
            ..FetchOptions::default()
        };
        let mut r = self.client.fetch(&[pos], opts).await;
        r.pop().expect("one partition asked, one answered")
    }

    /// The high watermark, from Fetch.
    pub(super) async fn high_watermark(&self) -> Result<i64, Error> {
        let f = self
            .fetch(0, Isolation::ReadUncommitted, Duration::ZERO)
            .await;
        match f.error {
            None => Ok(f.high_watermark),
            Some(e) => Err(e),
        }
    }

    pub(super) async fn list_offset(&self, spec: OffsetSpec) -> Result<i64, Error> {
        let key = self.key();
        self.client
            .list_offsets(std::slice::from_ref(&key), spec, Isolation::ReadUncommitted)
            .await
            .remove(&key)
            .unwrap_or_else(|| {
                Err(Error::NoLeader {
                    context: crate::client::Context::partition(&self.topic, 0),
                })
            })
            .map(|o| o.offset)
    }
}
