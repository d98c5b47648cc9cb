//! Whether the target takes several batches of one partition in one produce request, learned
//! from one write instead of assumed.
//!
//! ```text
//!  Unknown ──(an idle partition sends a write of ≥2 batches: the probe)──► Probing(tp, ticket)
//!  Probing ──ack──────────────────────────────► Accepted: every partition up to `max`
//!          ──INVALID_RECORD (87)──────────────► Refused: 1 per request from now on
//!          ──any other failure / a reset──────► Unknown (the next write of ≥2 probes again)
//! ```
//!
//! tansu takes several batches of a partition in one request and pays its per-request cost
//! once for them; Apache Kafka takes one and refuses the request's records for that
//! partition with INVALID_RECORD, writing nothing. Until the target answered, one partition
//! sends more than one batch, and only when it has no other write in flight; it sends
//! nothing more until the answer. A refusal therefore leaves the target's sequence state for
//! that partition as it was, and the partition sends the same batches again, one per
//! request, with the same sequence numbers: a Kafka target costs one refused write per
//! start, and no reset (a reset, with its tail read and new producer id, left that partition
//! behind the others and slowed a whole 64 MB copy by a fifth to a third).
//!
//! The answer is learned again at every start, not kept in the state store: it costs one
//! write's round trip, and a stored answer could outlive the target it was learned from (the
//! same address behind a different kind of broker after a migration or failover).

use crate::offset::TopicPartition;

/// What is known about the target (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    Unknown,
    /// This partition's write `ticket` is the first of several batches; others send one.
    Probing(TopicPartition, u64),
    Accepted,
    Refused,
}

/// The engine's one decision point for batches per request.
#[derive(Debug)]
pub(super) struct Stacking {
    /// The setting (`max_batches_per_request`).
    max: usize,
    known: Known,
}

/// What the answer to a probe taught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Learned {
    Nothing,
    Accepted,
    Refused,
}

impl Stacking {
    pub(super) fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            max,
            known: if max == 1 {
                Known::Refused
            } else {
                Known::Unknown
            },
        }
    }

    /// How many batches `tp` may put in its next write; `None`: none now (it is the probe,
    /// waiting for its answer). `idle`: `tp` has no write in flight. Only an idle partition
    /// probes, so that a refused probe is its only write in flight and can simply be sent
    /// again one batch at a time ([`super::partition::PartitionRun::take_back_refused`]).
    pub(super) fn limit(&self, tp: &TopicPartition, idle: bool) -> Option<usize> {
        Some(match &self.known {
            Known::Accepted => self.max,
            Known::Refused => 1,
            Known::Unknown if idle => self.max,
            Known::Unknown => 1,
            Known::Probing(probe, _) if probe == tp => return None,
            Known::Probing(..) => 1,
        })
    }

    /// `tp` sent write `ticket` with `batches` batches (call after every write).
    pub(super) fn sent(&mut self, tp: &TopicPartition, ticket: u64, batches: usize) {
        if batches > 1 && self.known == Known::Unknown {
            self.known = Known::Probing(tp.clone(), ticket);
        }
    }

    /// Write `ticket` of `tp` was acknowledged (a stale answer too: the target took it).
    pub(super) fn acked(&mut self, tp: &TopicPartition, ticket: u64) -> Learned {
        if self.is_probe(tp, ticket) {
            self.known = Known::Accepted;
            return Learned::Accepted;
        }
        Learned::Nothing
    }

    /// Write `ticket` of `tp`, carrying `batches` batches (0 if the answer is stale), failed;
    /// `invalid_record` if the target answered INVALID_RECORD (87).
    pub(super) fn failed(
        &mut self,
        tp: &TopicPartition,
        ticket: u64,
        batches: usize,
        invalid_record: bool,
    ) -> Learned {
        // Any write of several refused as invalid proves it (a probe, or one sent after
        // the target had accepted: then it changed, say a failover to another kind).
        if invalid_record && batches > 1 && self.known != Known::Refused {
            self.known = Known::Refused;
            return Learned::Refused;
        }
        if self.is_probe(tp, ticket) {
            self.known = Known::Unknown; // inconclusive (timeout, leader moved): probe again
        }
        Learned::Nothing
    }

    /// What a write carries at most now that the target answered (`None` until it did).
    pub(super) fn learned_limit(&self) -> Option<usize> {
        match self.known {
            Known::Accepted => Some(self.max),
            Known::Refused => Some(1),
            Known::Unknown | Known::Probing(..) => None,
        }
    }

    fn is_probe(&self, tp: &TopicPartition, ticket: u64) -> bool {
        matches!(&self.known, Known::Probing(probe, t) if probe == tp && *t == ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn one_idle_partition_probes_while_the_others_send_one() {
        let mut s = Stacking::new(8);
        assert_eq!(s.limit(&tp(0), true), Some(8));
        assert_eq!(
            s.limit(&tp(0), false),
            Some(1),
            "only an idle partition probes"
        );
        s.sent(&tp(0), 1, 1); // a single batch proves nothing
        assert_eq!(s.limit(&tp(1), true), Some(8));
        s.sent(&tp(1), 2, 3);
        assert_eq!(
            s.limit(&tp(1), true),
            None,
            "the probe waits for its answer"
        );
        assert_eq!(
            s.limit(&tp(0), true),
            Some(1),
            "the others send one meanwhile"
        );
        assert_eq!(s.acked(&tp(0), 1), Learned::Nothing);
        assert_eq!(s.learned_limit(), None);
        assert_eq!(s.acked(&tp(1), 2), Learned::Accepted);
        assert_eq!(s.learned_limit(), Some(8));
        assert_eq!(s.limit(&tp(0), false), Some(8));
        assert_eq!(s.limit(&tp(1), false), Some(8));
    }

    #[test]
    fn a_refused_probe_means_one_per_request_for_good() {
        let mut s = Stacking::new(8);
        s.sent(&tp(1), 2, 3);
        assert_eq!(s.failed(&tp(1), 2, 3, true), Learned::Refused);
        assert_eq!(s.learned_limit(), Some(1));
        for p in 0..3 {
            assert_eq!(s.limit(&tp(p), true), Some(1));
        }
        // A later write of several refused the same way teaches nothing new.
        assert_eq!(s.failed(&tp(1), 3, 2, true), Learned::Nothing);
        s.sent(&tp(2), 4, 1);
        assert_eq!(s.limit(&tp(1), true), Some(1));
    }

    #[test]
    fn an_inconclusive_probe_lets_the_next_idle_partition_probe_again() {
        let mut s = Stacking::new(4);
        s.sent(&tp(1), 2, 3);
        assert_eq!(s.failed(&tp(1), 2, 3, false), Learned::Nothing);
        assert_eq!(s.limit(&tp(0), true), Some(4));
        s.sent(&tp(0), 5, 2);
        assert_eq!(s.limit(&tp(1), true), Some(1));
        // A stale answer (the partition was reset meanwhile) counts no batches.
        assert_eq!(s.failed(&tp(0), 5, 0, false), Learned::Nothing);
        assert_eq!(s.limit(&tp(1), true), Some(4));
        // A single-batch INVALID_RECORD (offset gaps) says nothing about stacking.
        s.sent(&tp(3), 6, 2);
        assert_eq!(s.failed(&tp(3), 7, 1, true), Learned::Nothing);
        assert_eq!(s.acked(&tp(3), 6), Learned::Accepted);
    }

    #[test]
    fn a_setting_of_one_never_stacks() {
        let s = Stacking::new(1);
        assert_eq!(s.limit(&tp(0), true), Some(1));
        assert_eq!(s.learned_limit(), Some(1));
    }
}
