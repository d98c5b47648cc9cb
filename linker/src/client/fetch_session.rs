//! Incremental fetch sessions (KIP-227): what the client remembers of each broker's session.
//!
//! ```text
//!  first fetch to a broker: session 0, epoch 0, every partition ──► broker: new session id
//!  next fetches: that id, epoch 1, 2, ... ──► only partitions whose offset or byte limit
//!        changed, and those to drop (`forgotten`) ──► broker answers only partitions with
//!        records, an error, or a moved high watermark / log start / last stable offset
//!  any failure (a lost answer, a session error) ──► the next fetch is full again (epoch 0)
//! ```
//!
//! Why: without a session, every fetch names every partition and every answer lists them
//! all, records or not: at 1,000 partitions a 28 KB request (35 bytes in a session when
//! nothing changed) and an answer as large, many times a second, over what is often a link
//! between data centres. Kafka still reads every partition of a session on each fetch, and
//! the source broker's CPU did not change measurably; the round trip is what gets shorter
//! (docs/benchmarks.md, item 19). Kafka also rotates a session for the client: a partition that
//! brought records moves to the end of the session's list, so a backlog larger than one
//! response is still read round every partition.
//!
//! A broker that does not keep sessions (tansu, an old Kafka, a full session cache) answers
//! with session id 0; every fetch to it then stays full, exactly as without sessions.
//!
//! The session's state is the caller's, not the shared client's: one session serves one
//! fetcher with one fetch out at a time (the epoch orders them), and two mirrors over the
//! same client each keep their own.

use std::collections::{HashMap, HashSet};

use super::fetch::FetchPosition;

/// The broker error that says the session id is unknown (evicted, or the broker restarted).
const SESSION_ID_NOT_FOUND: i16 = 70;
/// The broker error that says the epoch is not the one it expects (an answer was lost).
const INVALID_SESSION_EPOCH: i16 = 71;

/// Whether a top-level Fetch error is about the session rather than the fetch: the client
/// starts a new session and asks again at once.
pub(super) fn is_session_error(code: i16) -> bool {
    matches!(code, SESSION_ID_NOT_FOUND | INVALID_SESSION_EPOCH)
}

/// The fetch sessions of one fetcher, one per broker.
#[derive(Debug, Default, Clone)]
pub struct FetchSessions {
    nodes: HashMap<i32, FetchSession>,
}

impl FetchSessions {
    /// Takes broker `node`'s session out for one fetch (a new one if there is none yet).
    pub(super) fn take(&mut self, node: i32) -> FetchSession {
        self.nodes.remove(&node).unwrap_or_default()
    }

    /// Puts a session back after its fetch.
    pub(super) fn put(&mut self, node: i32, session: FetchSession) {
        self.nodes.insert(node, session);
    }

    /// The session id held with broker `node` (0: none).
    pub fn session_id(&self, node: i32) -> i32 {
        self.nodes.get(&node).map_or(0, |s| s.id)
    }
}

/// What a broker's session holds for one partition: what the client last sent for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    offset: i64,
    max_bytes: i32,
}

/// The client's side of one broker's fetch session.
#[derive(Debug, Clone, Default)]
pub(super) struct FetchSession {
    /// The broker's session id; 0: none.
    id: i32,
    /// The epoch of the next fetch: 0 asks for a full fetch (and a new session).
    epoch: i32,
    /// The partitions the broker's session holds, as last sent, by topic and partition:
    /// keyed by topic first so that a lookup borrows the name instead of copying it.
    sent: HashMap<String, HashMap<i32, Sent>>,
}

/// One fetch request's session fields and the partitions it must name.
#[derive(Debug)]
pub(super) struct Plan<'a> {
    pub session_id: i32,
    pub epoch: i32,
    /// Partitions to name: all of them in a full fetch, only the changed ones otherwise.
    pub send: Vec<&'a FetchPosition>,
    /// Partitions the session holds and the fetch no longer wants.
    pub forget: Vec<(String, i32)>,
}

impl FetchSession {
    /// Plans the next fetch of `positions` and records it as the session's new content.
    ///
    /// The answer must go to [`answered`](Self::answered) or [`failed`](Self::failed)
    /// before the next plan: the broker moves its epoch only on requests it took.
    pub(super) fn plan<'a>(&mut self, positions: &'a [FetchPosition]) -> Plan<'a> {
        let full = self.id == 0 || self.epoch == 0;
        if full {
            // The broker replaces whatever it held (a non-zero id closes that session).
            self.epoch = 0;
            self.sent.clear();
        }
        let mut send = Vec::new();
        let mut wanted: HashSet<(&str, i32)> = HashSet::with_capacity(positions.len());
        for p in positions {
            wanted.insert((&p.topic, p.partition));
            let now = Sent {
                offset: p.offset,
                max_bytes: p.max_bytes,
            };
            let partitions = match self.sent.get_mut(p.topic.as_str()) {
                Some(partitions) => partitions,
                None => self.sent.entry(p.topic.clone()).or_default(),
            };
            if partitions.insert(p.partition, now) != Some(now) || full {
                send.push(p);
            }
        }
        // What the session holds and this fetch does not want.
        let mut forget = Vec::new();
        self.sent.retain(|topic, partitions| {
            partitions.retain(|&partition, _| {
                let keep = wanted.contains(&(topic.as_str(), partition));
                if !keep {
                    forget.push((topic.clone(), partition));
                }
                keep
            });
            !partitions.is_empty()
        });
        forget.sort();
        Plan {
            session_id: self.id,
            epoch: self.epoch,
            send,
            forget,
        }
    }

    /// The offset the session asks for `partition` of `topic`, if it holds it.
    pub(super) fn fetch_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.sent.get(topic)?.get(&partition).map(|s| s.offset)
    }

    /// The fetch was answered without a top-level error; `session_id` is the answer's.
    pub(super) fn answered(&mut self, session_id: i32) {
        if session_id == 0 {
            // No session (the broker keeps none, or its cache is full): ask again next time.
            self.id = 0;
            self.epoch = 0;
        } else if self.epoch == 0 {
            self.id = session_id;
            self.epoch = 1;
        } else if session_id != self.id {
            // Not the session asked for: trust neither, start over with a full fetch.
            self.epoch = 0;
        } else {
            // Kafka's next epoch: wraps to 1, never 0 (which means full) or -1 (no session).
            self.epoch = if self.epoch == i32::MAX {
                1
            } else {
                self.epoch + 1
            };
        }
    }

    /// The fetch failed: a lost or refused answer leaves the broker's epoch unknown, so the
    /// next fetch is full. `code` is the top-level error code, if the broker answered.
    pub(super) fn failed(&mut self, code: Option<i16>) {
        if code == Some(SESSION_ID_NOT_FOUND) {
            self.id = 0; // nothing to close
        }
        self.epoch = 0;
    }

    #[cfg(test)]
    fn state(&self) -> (i32, i32) {
        (self.id, self.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(p: i32, offset: i64) -> FetchPosition {
        FetchPosition {
            topic: "t".into(),
            partition: p,
            offset,
            max_bytes: 1 << 20,
        }
    }

    /// A plan, as owned values: (session id, epoch, named (partition, offset), forgotten).
    type Planned = (i32, i32, Vec<(i32, i64)>, Vec<i32>);

    fn plan(s: &mut FetchSession, positions: &[FetchPosition]) -> Planned {
        let plan = s.plan(positions);
        (
            plan.session_id,
            plan.epoch,
            plan.send.iter().map(|p| (p.partition, p.offset)).collect(),
            plan.forget.iter().map(|(_, p)| *p).collect(),
        )
    }

    #[test]
    fn a_session_names_only_what_changed_and_forgets_what_is_not_wanted() {
        let mut s = FetchSession::default();
        let first = plan(&mut s, &[pos(0, 10), pos(1, 20), pos(2, 30)]);
        assert_eq!(
            first,
            (0, 0, vec![(0, 10), (1, 20), (2, 30)], vec![]),
            "the first fetch is full"
        );
        s.answered(77);
        assert_eq!(s.state(), (77, 1));

        // Partition 1 moved on; nothing else changed.
        let next = plan(&mut s, &[pos(0, 10), pos(1, 25), pos(2, 30)]);
        assert_eq!(next, (77, 1, vec![(1, 25)], vec![]));
        s.answered(77);
        assert_eq!(s.fetch_offset("t", 1), Some(25));

        // Partition 2 left out (its queue is full), partition 0's byte limit doubled.
        let mut bigger = pos(0, 10);
        bigger.max_bytes *= 2;
        assert_eq!(
            plan(&mut s, &[bigger, pos(1, 25)]),
            (77, 2, vec![(0, 10)], vec![2])
        );
        assert_eq!(s.fetch_offset("t", 2), None);
        s.answered(77);

        // Partition 2 back: named again, like a new one.
        assert_eq!(
            plan(&mut s, &[pos(0, 10), pos(1, 25), pos(2, 31)]),
            (77, 3, vec![(0, 10), (2, 31)], vec![])
        );
        s.answered(77);

        // Nothing changed: an empty incremental fetch (the broker still answers with data).
        assert_eq!(
            plan(&mut s, &[pos(0, 10), pos(1, 25), pos(2, 31)]),
            (77, 4, vec![], vec![])
        );
    }

    #[test]
    fn a_failed_fetch_makes_the_next_one_full() {
        let mut s = FetchSession::default();
        plan(&mut s, &[pos(0, 1)]);
        s.answered(5);
        plan(&mut s, &[pos(0, 2)]);
        s.failed(None); // the answer was lost: the broker's epoch is unknown
        assert_eq!(
            plan(&mut s, &[pos(0, 2), pos(1, 0)]),
            (5, 0, vec![(0, 2), (1, 0)], vec![]),
            "full, closing the old session"
        );
        s.answered(6);
        assert_eq!(s.state(), (6, 1));

        plan(&mut s, &[pos(0, 3)]);
        s.failed(Some(INVALID_SESSION_EPOCH));
        assert_eq!(s.state(), (6, 0));
        plan(&mut s, &[pos(0, 3)]);
        s.failed(Some(SESSION_ID_NOT_FOUND));
        assert_eq!(s.state(), (0, 0), "an unknown session is not closed");
    }

    #[test]
    fn a_broker_without_sessions_gets_full_fetches() {
        let mut s = FetchSession::default();
        for offset in 0..3 {
            let (id, epoch, named, _) = plan(&mut s, &[pos(0, offset), pos(1, 0)]);
            assert_eq!((id, epoch, named.len()), (0, 0, 2));
            s.answered(0);
        }
    }

    #[test]
    fn the_epoch_wraps_to_one() {
        let mut s = FetchSession {
            id: 3,
            epoch: i32::MAX,
            sent: HashMap::new(),
        };
        plan(&mut s, &[]);
        s.answered(3);
        assert_eq!(s.state(), (3, 1));

        plan(&mut s, &[]);
        s.answered(4); // an answer for another session
        assert_eq!(s.state(), (3, 0), "the next fetch is full");
    }

    #[test]
    fn session_errors_are_the_two_session_codes() {
        assert!(is_session_error(70) && is_session_error(71));
        assert!(!is_session_error(0) && !is_session_error(6));
    }
}
