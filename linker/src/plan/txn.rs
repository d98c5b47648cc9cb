//! The probe's transaction check: the classic (KIP-98) client flow, spoken directly, since
//! the client has no transactional producer. FindCoordinator(transaction) ─► InitProducerId
//! with a transactional id ─► AddPartitionsToTxn (≤ v3: v4+ is broker-to-broker) ─►
//! transactional Produce ─► EndTxn(commit) (≤ v4: v5 belongs to transaction version 2) ─►
//! read_committed Fetch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest, ProduceRequest, ProducerId,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::probe::{Guarantee, Outcome, Probe, STEP, encode, guarantee, missing, now_ms};
use crate::batch;
use crate::client::data::Isolation;
use crate::client::{Connection, Context, Error, topic_name};

const ID: &str = "transactions";

/// A transaction's identity.
#[derive(Debug, Clone)]
struct Txn {
    id: String,
    producer_id: i64,
    epoch: i16,
}

/// Runs the transaction check on the scratch topic.
pub(super) async fn transactions(p: &Probe<'_>) -> Guarantee {
    let apis = [
        (10, "FindCoordinator"),
        (22, "InitProducerId"),
        (24, "AddPartitionsToTxn"),
        (26, "EndTxn"),
    ];
    if let Some(gone) = missing(&p.versions, &apis) {
        return guarantee(
            ID,
            Outcome::NotHeld,
            format!("the target does not offer {gone}: a transaction can never commit or abort"),
        );
    }
    // Clients speak AddPartitionsToTxn v0-v3 only.
    let add_version = p
        .versions
        .range(24)
        .map_or(-1, |(lo, hi)| if lo <= 3 { hi.min(3) } else { -1 });
    if add_version < 0 {
        return guarantee(
            ID,
            Outcome::NotHeld,
            "the target offers AddPartitionsToTxn only in broker versions (v4+)",
        );
    }
    let txn_id = format!("strait-probe-{}", p.id);
    let txn = match init(p, &txn_id).await {
        Ok(t) => t,
        Err(e) => {
            return guarantee(
                ID,
                Outcome::NotHeld,
                format!("InitProducerId with transactional id {txn_id} failed: {e}"),
            );
        }
    };
    if let Err(e) = add_partition(p, &txn, add_version).await {
        return guarantee(
            ID,
            Outcome::NotHeld,
            format!("AddPartitionsToTxn failed: {e}"),
        );
    }
    let outcome = produce_and_commit(p, &txn).await;
    if outcome.outcome != Outcome::Held {
        // Best effort: do not leave a transaction open until its timeout.
        let _ = end(p, &txn, false).await;
    }
    outcome
}

/// The coordinator of `txn_id`.
async fn coordinator(p: &Probe<'_>, txn_id: &str) -> Result<Arc<Connection>, Error> {
    let node = p.client.find_transaction_coordinator(txn_id).await?;
    p.client.broker_connection(node).await
}

async fn init(p: &Probe<'_>, txn_id: &str) -> Result<Txn, Error> {
    p.client
        .retrying("InitProducerId", || async {
            let conn = coordinator(p, txn_id).await?;
            let req = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
                    txn_id.to_owned(),
                ))))
                .with_transaction_timeout_ms(30_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let resp = conn.send(&req).await?;
            if resp.error_code != 0 {
                return Err(Error::broker(
                    "InitProducerId",
                    resp.error_code,
                    Context::default(),
                    None::<String>,
                ));
            }
            Ok(Txn {
                id: txn_id.to_owned(),
                producer_id: resp.producer_id.0,
                epoch: resp.producer_epoch,
            })
        })
        .await
}

async fn add_partition(p: &Probe<'_>, txn: &Txn, version: i16) -> Result<(), Error> {
    p.client
        .retrying("AddPartitionsToTxn", || async {
            let conn = coordinator(p, &txn.id).await?;
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(
                    txn.id.clone(),
                )))
                .with_v3_and_below_producer_id(ProducerId(txn.producer_id))
                .with_v3_and_below_producer_epoch(txn.epoch)
                .with_v3_and_below_topics(vec![
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic_name(&p.topic))
                        .with_partitions(vec![0]),
                ]);
            let resp = conn
                .send_version(&req, version, p.client.config().request_timeout)
                .await?;
            if resp.error_code != 0 {
                return Err(Error::broker(
                    "AddPartitionsToTxn",
                    resp.error_code,
                    Context::topic(&p.topic),
                    None::<String>,
                ));
            }
            for t in &resp.results_by_topic_v3_and_below {
                for r in &t.results_by_partition {
                    if r.partition_error_code != 0 {
                        return Err(Error::broker(
                            "AddPartitionsToTxn",
                            r.partition_error_code,
                            Context::partition(&p.topic, r.partition_index),
                            None::<String>,
                        ));
                    }
                }
            }
            Ok(())
        })
        .await
}

async fn end(p: &Probe<'_>, txn: &Txn, commit: bool) -> Result<(), Error> {
    p.client
        .retrying("EndTxn", || async {
            let conn = coordinator(p, &txn.id).await?;
            // v5 is the transaction-version-2 flow (epoch bump per transaction); this is v1.
            let version = conn.version_for::<EndTxnRequest>()?.min(4);
            let req = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(txn.id.clone())))
                .with_producer_id(ProducerId(txn.producer_id))
                .with_producer_epoch(txn.epoch)
                .with_committed(commit);
            let resp = conn
                .send_version(&req, version, p.client.config().request_timeout)
                .await?;
            if resp.error_code != 0 {
                return Err(Error::broker(
                    "EndTxn",
                    resp.error_code,
                    Context::default(),
                    None::<String>,
                ));
            }
            Ok(())
        })
        .await
}

/// A transactional produce carries the transactional id in the request.
async fn produce(p: &Probe<'_>, txn: &Txn, records: usize) -> Result<i64, Error> {
    let timestamps: Vec<i64> = (0..records).map(|i| now_ms() + i as i64).collect();
    let batch = encode(&timestamps, Some((txn.producer_id, txn.epoch, 0)), true);
    let leader = p.client.leader(&p.topic, 0).await?;
    let conn = p.client.broker_connection(leader).await?;
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(txn.id.clone()))))
        .with_acks(-1)
        .with_timeout_ms(i32::try_from(STEP.as_millis()).unwrap_or(i32::MAX))
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(&p.topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch)),
                ]),
        ]);
    let resp = conn.send_with_extra_time(&req, STEP).await?;
    let part = resp
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .next()
        .ok_or_else(|| Error::Protocol {
            broker: conn.broker().to_owned(),
            api: "Produce",
            message: "no partition in the response".to_owned(),
        })?;
    if part.error_code != 0 {
        return Err(Error::broker(
            "Produce",
            part.error_code,
            Context::partition(&p.topic, 0),
            part.error_message.as_ref().map(|m| m.to_string()),
        ));
    }
    Ok(part.base_offset)
}

async fn produce_and_commit(p: &Probe<'_>, txn: &Txn) -> Guarantee {
    let base = match produce(p, txn, 2).await {
        Ok(o) => o,
        Err(e) => {
            return guarantee(
                ID,
                Outcome::NotHeld,
                format!("a transactional batch was refused: {e}"),
            );
        }
    };
    let last = base + 1;
    // While open, read_committed must stop at the transaction's first offset.
    let open = p
        .fetch(base, Isolation::ReadCommitted, Duration::from_millis(100))
        .await;
    if open.error.is_none() && open.last_stable_offset > base {
        return guarantee(
            ID,
            Outcome::NotHeld,
            format!(
                "while the transaction was open the last stable offset was {}, past its first \
                 offset {base}: read_committed consumers would see uncommitted records",
                open.last_stable_offset
            ),
        );
    }
    if let Err(e) = end(p, txn, true).await {
        return guarantee(ID, Outcome::NotHeld, format!("EndTxn (commit) failed: {e}"));
    }
    let deadline = Instant::now() + STEP;
    loop {
        let f = p
            .fetch(base, Isolation::ReadCommitted, Duration::from_millis(100))
            .await;
        let data = f.error.is_none()
            && batch::split(f.records.clone()).is_ok_and(|s| {
                s.batches.iter().any(|b| {
                    let h = b.header();
                    !h.is_control() && h.base_offset == base && h.last_offset() == last
                })
            });
        if data && f.last_stable_offset > last {
            return guarantee(
                ID,
                Outcome::Held,
                format!(
                    "InitProducerId, AddPartitionsToTxn, a transactional produce and EndTxn \
                     worked; while open the last stable offset stayed at {base}, and after the \
                     commit read_committed returned the records {base}..={last} (last stable \
                     offset {})",
                    f.last_stable_offset
                ),
            );
        }
        if Instant::now() > deadline {
            return guarantee(
                ID,
                Outcome::NotHeld,
                format!(
                    "EndTxn committed, but {} s later read_committed at {base} shows {} (last \
                     stable offset {}, high watermark {})",
                    STEP.as_secs(),
                    if data {
                        "the records"
                    } else {
                        "no committed records"
                    },
                    f.last_stable_offset,
                    f.high_watermark
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
