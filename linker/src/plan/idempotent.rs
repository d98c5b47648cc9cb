//! The probe's idempotent-producer check: a duplicate batch (same producer id, epoch and
//! sequence) must not be appended twice, and an out-of-order sequence must be refused.

use std::time::Duration;

use super::probe::{Guarantee, Outcome, Probe, encode, guarantee, missing, now_ms};

impl Probe<'_> {
    pub(super) async fn idempotent(&self) -> Guarantee {
        let id = "idempotent_producer";
        if let Some(gone) = missing(&self.versions, &[(22, "InitProducerId")]) {
            return guarantee(
                id,
                Outcome::NotHeld,
                format!("the target does not offer {gone}"),
            );
        }
        // A fresh cluster answers COORDINATOR_LOAD_IN_PROGRESS for a moment.
        let pid = match self
            .client
            .retrying("InitProducerId", || {
                self.client.init_producer_id(None, Duration::from_secs(60))
            })
            .await
        {
            Ok(p) => p,
            Err(e) => {
                return guarantee(id, Outcome::NotHeld, format!("InitProducerId failed: {e}"));
            }
        };
        let producer = |seq| Some((pid.producer_id, pid.producer_epoch, seq));
        let ts = now_ms();
        let first = encode(&[ts], producer(0), false);
        let offset = match self.produce(first.clone()).await {
            Ok(o) => o,
            Err(e) => {
                return guarantee(
                    id,
                    Outcome::NotHeld,
                    format!("an idempotent batch (sequence 0) was refused: {e}"),
                );
            }
        };
        let Ok(hw1) = self.high_watermark().await else {
            return guarantee(id, Outcome::Untested, "cannot read the high watermark");
        };
        let dup = self.produce(first).await;
        let gap = self.produce(encode(&[ts], producer(5), false)).await;
        let Ok(hw2) = self.high_watermark().await else {
            return guarantee(id, Outcome::Untested, "cannot read the high watermark");
        };
        let mut notes = Vec::new();
        let dup_ok = match &dup {
            Ok(o) if *o == offset => {
                notes.push(format!(
                    "the same batch again was acknowledged with its original offset {o}"
                ));
                true
            }
            Ok(o) => {
                notes.push(format!("the same batch again was appended at offset {o}"));
                false
            }
            Err(e) if e.code() == Some(46) => {
                notes.push(format!(
                    "the same batch again was refused with DUPLICATE_SEQUENCE_NUMBER (46) \
                     instead of being acknowledged with offset {offset} (Kafka clients count \
                     that as delivered)"
                ));
                true
            }
            Err(e) => {
                notes.push(format!("the same batch again was refused: {e}"));
                false
            }
        };
        let gap_ok = match &gap {
            Ok(o) => {
                notes.push(format!(
                    "an out-of-order sequence (5 after 0) was appended at offset {o}"
                ));
                false
            }
            Err(e) => {
                notes.push(format!(
                    "an out-of-order sequence (5 after 0) was refused: {e}"
                ));
                true
            }
        };
        let appended = hw2 - hw1;
        if appended != 0 {
            notes.push(format!("the high watermark moved from {hw1} to {hw2}"));
        }
        let outcome = if dup_ok && gap_ok && appended == 0 {
            Outcome::Held
        } else {
            Outcome::NotHeld
        };
        guarantee(
            id,
            outcome,
            format!(
                "producer id {} wrote sequence 0 at offset {offset}; {}",
                pid.producer_id,
                notes.join("; ")
            ),
        )
    }
}
