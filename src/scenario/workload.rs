//! The workload of a playbook: producers and consumer groups (rdkafka, an independent client)
//! that record every acknowledged and every consumed record in one [`Ledger`].
//!
//! ```text
//!  Producer task ──send──▶ cluster (source | target) ──▶ Consumer thread (commit per record)
//!       │ ack (partition, offset)                                 │ record id
//!       └──────────────────────────▶ Ledger ◀─────────────────────┘
//! ```
//!
//! Every record carries a unique id (`<producer>-<seq>`) in its JSON-like value, so the ledger
//! can tell lost, duplicated and phantom (never acknowledged) reads apart. Producers are
//! idempotent; a transactional producer acknowledges a transaction's records only once it is
//! committed, and remembers the ids of aborted ones, which must never be read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::playbook::{ConsumerSpec, ProducerSpec, Side};

/// One acknowledged record.
#[derive(Debug, Clone)]
pub struct Acked {
    pub topic: String,
    pub partition: i32,
    /// How many client switches had happened when it was written: orders records written on
    /// different clusters.
    pub epoch: u32,
    pub offset: i64,
    pub id: String,
    pub key: String,
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub id: String,
    pub side: Side,
}

/// Everything the workload saw.
#[derive(Debug, Default)]
pub struct Ledger {
    pub acked: Vec<Acked>,
    /// Per group, in the order read.
    pub consumed: BTreeMap<String, Vec<Consumed>>,
    /// Records of aborted transactions: never to be read.
    pub aborted: BTreeSet<String>,
    /// Records whose write failed with an unknown outcome: may or may not be read.
    pub uncertain: BTreeSet<String>,
    /// Produce errors seen (with their first message).
    pub produce_errors: u64,
    pub first_produce_error: Option<String>,
}

pub type SharedLedger = Arc<Mutex<Ledger>>;

/// Where the clients connect, per side, and the current switch epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ctl {
    run: bool,
    stop: bool,
    side: Side,
    epoch: u32,
    /// Bumped by every command, echoed by the task once it obeys.
    generation: u64,
}

/// A running producer: a tokio task obeying a control channel.
pub struct ProducerRunner {
    ctl: watch::Sender<Ctl>,
    obeyed: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ProducerRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerRunner").finish_non_exhaustive()
    }
}

/// What a producer needs to know beyond its spec.
#[derive(Debug, Clone)]
pub struct ProducerSetup {
    pub spec: ProducerSpec,
    /// The topic's real name (with the run's suffix).
    pub topic: String,
    pub partitions: i32,
    /// Prefix of transactional ids (unique per run).
    pub txn_prefix: String,
    pub bootstrap: BTreeMap<Side, String>,
}

impl ProducerRunner {
    /// Spawns the producer, paused, on `side`.
    pub fn spawn(setup: ProducerSetup, ledger: SharedLedger, side: Side) -> Self {
        let (ctl, rx) = watch::channel(Ctl {
            run: false,
            stop: false,
            side,
            epoch: 0,
            generation: 0,
        });
        let (obey_tx, obeyed) = watch::channel(0);
        let task = tokio::spawn(produce_loop(setup, ledger, rx, obey_tx));
        Self { ctl, obeyed, task }
    }

    /// Applies a change and waits until the task obeys it: after `run = false` returns, no
    /// write of this producer is in flight.
    async fn command(&mut self, f: impl FnOnce(&mut Ctl)) -> anyhow::Result<()> {
        let mut want = 0;
        self.ctl.send_modify(|c| {
            f(c);
            c.generation += 1;
            want = c.generation;
        });
        let wait = self.obeyed.wait_for(|g| *g >= want);
        match tokio::time::timeout(Duration::from_secs(60), wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => bail!("the producer task ended"),
            Err(_) => bail!("the producer did not finish its in-flight writes within 60 s"),
        }
    }

    pub async fn resume(&mut self) -> anyhow::Result<()> {
        self.command(|c| c.run = true).await
    }

    pub async fn pause(&mut self) -> anyhow::Result<()> {
        self.command(|c| c.run = false).await
    }

    pub async fn switch(&mut self, side: Side, epoch: u32) -> anyhow::Result<()> {
        self.command(|c| {
            c.side = side;
            c.epoch = epoch;
        })
        .await
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.command(|c| {
            c.run = false;
            c.stop = true;
        })
        .await?;
        self.task.await.context("producer task")?;
        Ok(())
    }
}

/// The value of record `seq`: JSON-like, padded to the configured size.
pub fn value_of(id: &str, seq: u64, size: usize) -> String {
    let head = format!(r#"{{"id":"{id}","seq":{seq},"pad":""#);
    let pad = size.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

/// The id inside a value written by [`value_of`].
pub fn id_of(value: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(value).ok()?;
    let rest = s.strip_prefix(r#"{"id":""#)?;
    Some(rest[..rest.find('"')?].to_owned())
}

fn make_producer(setup: &ProducerSetup, side: Side, n: u32) -> anyhow::Result<FutureProducer> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &setup.bootstrap[&side])
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .set("compression.type", &setup.spec.compression);
    if setup.spec.transactions.is_some() {
        cfg.set(
            "transactional.id",
            format!("{}-{}-{side}-{n}", setup.txn_prefix, setup.spec.name()),
        );
    }
    let p: FutureProducer = cfg.create().context("creating an rdkafka producer")?;
    if setup.spec.transactions.is_some() {
        // librdkafka's transactional calls block; block_in_place keeps the runtime going.
        tokio::task::block_in_place(|| p.init_transactions(Duration::from_secs(30)))
            .context("init_transactions")?;
    }
    Ok(p)
}

async fn produce_loop(
    setup: ProducerSetup,
    ledger: SharedLedger,
    mut ctl: watch::Receiver<Ctl>,
    obeyed: watch::Sender<u64>,
) {
    let name = setup.spec.name();
    let mut seq: u64 = 0;
    let mut txns: u32 = 0;
    let mut producer: Option<(Side, FutureProducer)> = None;
    let mut made = 0u32;
    // A unit is written with all its records in flight at once and fully acknowledged
    // before the next; commands are obeyed between units. Plain producers write 10 ms worth
    // of records per unit: one record at a time, each waiting for its acknowledgement, tops
    // out at a few hundred records/s, far below the rates a write-pause measurement needs.
    let unit = setup
        .spec
        .transactions
        .as_ref()
        .map_or((setup.spec.rate / 100).max(1), |t| t.records);
    let interval = Duration::from_secs_f64(f64::from(unit) / f64::from(setup.spec.rate));
    loop {
        let c = *ctl.borrow_and_update();
        // Nothing is in flight here: every command is obeyed at this point.
        obeyed.send_replace(c.generation);
        if c.stop {
            return;
        }
        if !c.run {
            if ctl.changed().await.is_err() {
                return;
            }
            continue;
        }
        let started = Instant::now();
        if producer.as_ref().is_none_or(|(s, _)| *s != c.side) {
            made += 1;
            match make_producer(&setup, c.side, made) {
                Ok(p) => producer = Some((c.side, p)),
                Err(e) => {
                    note_error(&ledger, format!("{name}: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        let p = &producer.as_ref().expect("made above").1;
        let ids: Vec<(u64, String)> = (0..unit)
            .map(|_| {
                seq += 1;
                (seq, format!("{name}-{seq}"))
            })
            .collect();
        let results = write_unit(&setup, p, &ids, txns).await;
        txns += 1;
        {
            let mut l = ledger.lock().expect("ledger");
            match results {
                Ok(Written::Acked(acks)) => record_acks(&mut l, &setup, c.epoch, &ids, acks),
                Ok(Written::Aborted) => l.aborted.extend(ids.into_iter().map(|(_, id)| id)),
                Ok(Written::Partly(acks, e)) => {
                    // Acknowledged records are in the ledger as such; only the others are
                    // uncertain.
                    let (done, unknown): (Vec<_>, Vec<_>) =
                        ids.into_iter().zip(acks).partition(|(_, a)| a.is_some());
                    let (done_ids, done_acks): (Vec<_>, Vec<_>) = done
                        .into_iter()
                        .map(|(id, a)| (id, a.expect("some")))
                        .unzip();
                    record_acks(&mut l, &setup, c.epoch, &done_ids, done_acks);
                    l.uncertain
                        .extend(unknown.into_iter().map(|((_, id), _)| id));
                    l.produce_errors += 1;
                    l.first_produce_error
                        .get_or_insert_with(|| format!("{name}: {e:#}"));
                }
                Err(e) => {
                    l.uncertain.extend(ids.into_iter().map(|(_, id)| id));
                    l.produce_errors += 1;
                    l.first_produce_error
                        .get_or_insert_with(|| format!("{name}: {e:#}"));
                    // A failed transactional producer is replaced.
                    if setup.spec.transactions.is_some() {
                        producer = None;
                    }
                }
            }
        }
        let sleep = interval.saturating_sub(started.elapsed());
        // A command arriving during the sleep is seen at once.
        let _ = tokio::time::timeout(sleep, ctl.changed()).await;
    }
}

fn record_acks(
    l: &mut Ledger,
    setup: &ProducerSetup,
    epoch: u32,
    ids: &[(u64, String)],
    acks: Vec<(i32, i64)>,
) {
    for ((seq, id), (partition, offset)) in ids.iter().zip(acks) {
        l.acked.push(Acked {
            topic: setup.spec.topic.clone(),
            partition,
            epoch,
            offset,
            id: id.clone(),
            key: key_of(&setup.spec, *seq),
        });
    }
}

/// Writes `n` records at full speed with the shape of `setup` (no transactions), under the
/// producer name `<name>-<tag>`, and waits until all are acknowledged.
pub async fn load(
    setup: &ProducerSetup,
    ledger: &SharedLedger,
    side: Side,
    epoch: u32,
    n: u32,
    tag: &str,
) -> anyhow::Result<()> {
    let mut plain = setup.clone();
    plain.spec.transactions = None;
    plain.spec.name = Some(format!("{}-{tag}", setup.spec.name()));
    let p = make_producer(&plain, side, 0)?;
    let name = plain.spec.name();
    let mut seq = 0u64;
    while seq < u64::from(n) {
        let chunk = (u64::from(n) - seq).min(1000);
        let ids: Vec<(u64, String)> = (seq + 1..=seq + chunk)
            .map(|s| (s, format!("{name}-{s}")))
            .collect();
        seq += chunk;
        match write_unit(&plain, &p, &ids, 0).await? {
            Written::Acked(acks) => {
                record_acks(
                    &mut ledger.lock().expect("ledger"),
                    &plain,
                    epoch,
                    &ids,
                    acks,
                );
            }
            Written::Partly(_, e) => return Err(e),
            Written::Aborted => unreachable!("no transactions"),
        }
    }
    Ok(())
}

fn note_error(ledger: &SharedLedger, e: String) {
    let mut l = ledger.lock().expect("ledger");
    l.produce_errors += 1;
    l.first_produce_error.get_or_insert(e);
}

fn key_of(spec: &ProducerSpec, seq: u64) -> String {
    match spec.keys {
        Some(k) => format!("key-{}", seq % u64::from(k.max(1))),
        None => format!("key-{seq}"),
    }
}

enum Written {
    Acked(Vec<(i32, i64)>),
    /// A plain unit that failed in part: the acknowledgement of each record, or `None` for
    /// one whose outcome is unknown, and the first error.
    Partly(Vec<Option<(i32, i64)>>, anyhow::Error),
    Aborted,
}

/// Writes one record, or one transaction, and waits for the outcome.
async fn write_unit(
    setup: &ProducerSetup,
    p: &FutureProducer,
    ids: &[(u64, String)],
    txn_no: u32,
) -> anyhow::Result<Written> {
    let txn = setup.spec.transactions.as_ref();
    if txn.is_some() {
        tokio::task::block_in_place(|| p.begin_transaction()).context("begin_transaction")?;
    }
    let mut records = Vec::with_capacity(ids.len());
    for (seq, id) in ids {
        let mut headers = OwnedHeaders::new();
        for i in 0..setup.spec.headers {
            // Kafka allows a header key more than once; strait must keep both, in order.
            headers = headers.insert(Header {
                key: "trace",
                value: Some(format!("h{i}").as_bytes()),
            });
        }
        let partition = i32::try_from(*seq % u64::try_from(setup.partitions)?)?;
        let key = key_of(&setup.spec, *seq);
        let value = value_of(id, *seq, setup.spec.value_bytes);
        records.push((partition, key, value, headers));
    }
    // Enqueued here with `send_result`, so the unit's records are in flight together:
    // `FutureProducer::send` is async and enqueues a record only when awaited, which made a
    // unit one record after the other.
    let queue_deadline = Instant::now() + Duration::from_secs(30);
    let mut futures = Vec::with_capacity(ids.len());
    for (partition, key, value, headers) in &records {
        let mut record = FutureRecord::to(&setup.topic)
            .partition(*partition)
            .key(key.as_bytes())
            .payload(value.as_bytes())
            .headers(headers.clone());
        let queued = loop {
            match p.send_result(record) {
                Ok(delivery) => break Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if Instant::now() < queue_deadline =>
                {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => break Err(e),
            }
        };
        futures.push(queued);
    }
    let mut acks = Vec::with_capacity(ids.len());
    let mut failure = None;
    for f in futures {
        let outcome = match f {
            Ok(delivery) => match delivery.await {
                Ok(Ok(d)) => Ok((d.partition, d.offset)),
                Ok(Err((e, _))) => Err(e),
                Err(_) => Err(KafkaError::Canceled),
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(ack) => acks.push(Some(ack)),
            Err(e) => {
                acks.push(None);
                failure.get_or_insert(e);
            }
        }
    }
    match (txn, failure) {
        (None, None) => Ok(Written::Acked(acks.into_iter().flatten().collect())),
        (None, Some(e)) => Ok(Written::Partly(
            acks,
            anyhow::Error::new(e).context("produce"),
        )),
        (Some(_), Some(e)) => {
            let _ = tokio::task::block_in_place(|| p.abort_transaction(Duration::from_secs(10)));
            Err(e).context("produce in a transaction")
        }
        (Some(t), None) => {
            if t.abort_every > 0 && (txn_no + 1).is_multiple_of(t.abort_every) {
                tokio::task::block_in_place(|| p.abort_transaction(Duration::from_secs(30)))
                    .context("abort_transaction")?;
                Ok(Written::Aborted)
            } else {
                tokio::task::block_in_place(|| p.commit_transaction(Duration::from_secs(30)))
                    .context("commit_transaction")?;
                Ok(Written::Acked(acks.into_iter().flatten().collect()))
            }
        }
    }
}

/// A consumer of one group on one side: reads the group's committed offsets (with retries),
/// assigns every partition there and commits after every record, until stopped. It has no
/// group membership, so strait may sync the group while it runs (as with an application
/// that commits offsets itself).
pub struct ConsumerRunner {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl std::fmt::Debug for ConsumerRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerRunner").finish_non_exhaustive()
    }
}

impl ConsumerRunner {
    pub fn start(
        spec: &ConsumerSpec,
        group: &str,
        topic: &str,
        partitions: i32,
        bootstrap: &str,
        side: Side,
        ledger: SharedLedger,
    ) -> anyhow::Result<Self> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "10");
        let consumer: BaseConsumer = cfg.create().context("creating an rdkafka consumer")?;
        let mut want = TopicPartitionList::new();
        for p in 0..partitions {
            want.add_partition(topic, p);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let committed = loop {
            match consumer.committed_offsets(want.clone(), Duration::from_secs(5)) {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(group, error = %e, "reading committed offsets; retrying");
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(e) => bail!("cannot read the committed offsets of {group} on the {side}: {e}"),
            }
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let at = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            tpl.add_partition_offset(topic, p, at)?;
        }
        consumer.assign(&tpl)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let group_name = spec.group.clone();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            while !s.load(Ordering::Relaxed) {
                let Some(m) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                // librdkafka reports transient conditions through poll; they are not records.
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(group = group_name, error = %e, "consumer");
                        continue;
                    }
                };
                let id = id_of(m.payload().unwrap_or_default())
                    .unwrap_or_else(|| format!("<foreign record at offset {}>", m.offset()));
                ledger
                    .lock()
                    .expect("ledger")
                    .consumed
                    .entry(group_name.clone())
                    .or_default()
                    .push(Consumed {
                        partition: m.partition(),
                        id,
                        side,
                    });
                // Sync commit per record: a stop never leaves a read record uncommitted.
                let mut tries = 0;
                while let Err(e) = consumer.commit_message(&m, CommitMode::Sync) {
                    tries += 1;
                    if tries > 50 {
                        bail!("{group_name}: commit keeps failing on the {side}: {e}");
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            Ok(())
        });
        Ok(Self { stop, thread })
    }

    pub fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_id_and_have_the_configured_size() {
        let v = value_of("w-17", 17, 200);
        assert_eq!(v.len(), 200);
        assert_eq!(id_of(v.as_bytes()).as_deref(), Some("w-17"));
        // Too small a size still carries the id.
        assert_eq!(
            id_of(value_of("w-1", 1, 5).as_bytes()).as_deref(),
            Some("w-1")
        );
        assert_eq!(id_of(b"something else"), None);
    }
}
