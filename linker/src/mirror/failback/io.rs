//! The failback copies' requests, coalesced: each copy asks for one partition at a time, and
//! the copies running at once share multi-partition requests.
//!
//! ```text
//!  copy_back(p1) ─┐                      ┌─► Fetch (target, read_committed)   p1, p4, ...
//!  copy_back(p2) ─┼─► CopyIo: one queue ─┼─► Fetch (source tail, uncommitted) p2, ...
//!  copy_back(pn) ─┘   per request kind   └─► Produce (source, acks=all)       p3, pn, ...
//!                     (at most IN_FLIGHT requests per kind; what queues meanwhile
//!                      goes out together in the next one)
//! ```
//!
//! Why: a failback of a 1,000-topic wave copies 5,000 partitions, and one request per
//! partition per step kept both Kafka brokers and strait busy on two cores (three requests per
//! partition, 8 s). Kafka takes many partitions per Fetch and one batch per partition per
//! Produce, so the copies' requests go together; each copy still waits for its own answer
//! before its next request, which keeps its writes in order and at most one of its batches in
//! any Produce.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::COPY_LANES;
use crate::client::data::{
    FetchOptions, FetchPosition, FetchedPartition, Isolation, ProduceAck, ProduceItem,
};
use crate::client::{Error, KafkaClient};
use crate::mirror::tail::TailFetch;

/// Requests of one kind in flight at once; requests queue behind them and go out together.
const IN_FLIGHT: usize = 4;
/// Partitions in one request at most.
const MAX_PARTITIONS: usize = 256;
/// Room in each queue: one request per copy waits at a time, so this is never reached by the
/// rollback's copies; it bounds the queue all the same.
const QUEUE_DEPTH: usize = 1024;
/// Broker-side timeout of the copy's writes.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);

type Key = (String, i32);
/// The answers of one Fetch, by partition.
type Fetched = std::pin::Pin<Box<dyn Future<Output = BTreeMap<Key, FetchedPartition>> + Send>>;

/// A queue of one-partition requests of one kind, answered by multi-partition requests.
struct Queue<Req, Resp> {
    tx: mpsc::Sender<(Req, oneshot::Sender<Resp>)>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Queue<Req, Resp> {
    /// Starts the dispatcher: it lives until the queue is dropped, and each request it sends
    /// runs to its end on its own task (an answer nobody waits for any more is dropped).
    fn start<F, Fut>(key: fn(&Req) -> Key, send: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = BTreeMap<Key, Resp>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<(Req, oneshot::Sender<Resp>)>(QUEUE_DEPTH);
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            // A second request for a partition already in the batch waits for the next one.
            let mut carry = None;
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let first = match carry.take() {
                    Some(w) => w,
                    None => match rx.recv().await {
                        Some(w) => w,
                        None => return,
                    },
                };
                let mut keys = HashSet::from([key(&first.0)]);
                let mut batch = vec![first];
                while batch.len() < MAX_PARTITIONS {
                    let Ok(w) = rx.try_recv() else { break };
                    if !keys.insert(key(&w.0)) {
                        carry = Some(w);
                        break;
                    }
                    batch.push(w);
                }
                let (reqs, waiters): (Vec<Req>, Vec<(Key, oneshot::Sender<Resp>)>) = batch
                    .into_iter()
                    .map(|(r, tx)| {
                        let k = key(&r);
                        (r, (k, tx))
                    })
                    .unzip();
                let answer = send(reqs);
                tokio::spawn(async move {
                    let mut out = answer.await;
                    for (k, tx) in waiters {
                        // No answer for a partition: the sender is dropped, the copy sees
                        // `None` and retries (as with a response that leaves it out).
                        if let Some(r) = out.remove(&k) {
                            let _ = tx.send(r);
                        }
                    }
                    drop(slot);
                });
            }
        });
        Self { tx }
    }

    /// Queues `req` and waits for its answer. `None` if the request had no answer for it.
    ///
    /// Cancel safety: dropping the future abandons the answer, not the request.
    async fn call(&self, req: Req) -> Option<Resp> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((req, tx)).await.ok()?;
        rx.await.ok()
    }
}

/// The requests of the copies of one failback step, shared by them (behind an `Arc`).
pub struct CopyIo {
    target: KafkaClient,
    source: KafkaClient,
    target_fetch: Queue<FetchPosition, FetchedPartition>,
    source_fetch: Queue<FetchPosition, FetchedPartition>,
    produce: Queue<ProduceItem, Result<ProduceAck, Error>>,
}

impl std::fmt::Debug for CopyIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyIo").finish_non_exhaustive()
    }
}

impl CopyIo {
    /// The queues for copies from `target` back to `source`. Must be called inside a tokio
    /// runtime; the dispatchers stop when this is dropped.
    pub fn new(target: KafkaClient, source: KafkaClient) -> Self {
        // The copy reads the fenced target up to its end: nothing to wait for (tansu holds
        // every fetch for its full wait; 200 ms per fetch made a failback of 1,000 partitions
        // take minutes there). Read committed: aborted writes are not copied back.
        let committed = FetchOptions {
            max_wait: Duration::ZERO,
            min_bytes: 1,
            max_bytes: 0,
            isolation: Isolation::ReadCommitted,
            lane: 0,
        };
        // The source's tail is matched batch by batch whatever its transactions' outcome.
        let uncommitted = FetchOptions {
            isolation: Isolation::ReadUncommitted,
            ..committed
        };
        let fetch_key: fn(&FetchPosition) -> Key = |p| (p.topic.clone(), p.partition);
        let produce_key: fn(&ProduceItem) -> Key = |i| (i.topic.clone(), i.partition);
        let target_fetch = Queue::start(fetch_key, fetcher(target.clone(), committed));
        let source_fetch = Queue::start(fetch_key, fetcher(source.clone(), uncommitted));
        let s = source.clone();
        let produce = Queue::start(produce_key, move |items: Vec<ProduceItem>| {
            let s = s.clone();
            async move {
                // Each partition keeps its lane (`produce_lane`), so its writes stay in order.
                s.queue_produce(items, -1, PRODUCE_TIMEOUT, COPY_LANES)
                    .await
                    .await
            }
        });
        Self {
            target,
            source,
            target_fetch,
            source_fetch,
            produce,
        }
    }

    /// The target cluster (metadata refreshes after an error).
    pub(super) fn target(&self) -> &KafkaClient {
        &self.target
    }

    /// The source cluster (metadata refreshes after an error).
    pub(super) fn source(&self) -> &KafkaClient {
        &self.source
    }

    /// Fetches `pos` from the target, read committed, without waiting.
    pub(super) async fn fetch_target(&self, pos: FetchPosition) -> Option<FetchedPartition> {
        self.target_fetch.call(pos).await
    }

    /// Writes one batch to the source with acks=all.
    pub(super) async fn produce(&self, item: ProduceItem) -> Option<Result<ProduceAck, Error>> {
        self.produce.call(item).await
    }

    /// The source's tail reads, as a [`TailFetch`].
    pub(super) fn source_tail(&self) -> SourceTail<'_> {
        SourceTail(self)
    }
}

/// Reads of the source's tail through the shared queue.
pub(super) struct SourceTail<'a>(&'a CopyIo);

impl TailFetch for SourceTail<'_> {
    async fn fetch_tail(&self, pos: FetchPosition) -> Option<FetchedPartition> {
        self.0.source_fetch.call(pos).await
    }
}

/// Sends a batch of positions as one Fetch per leader, the lanes of [`COPY_LANES`] in turn,
/// with room in the response for every partition's own limit (so none comes back empty
/// because another filled the response).
fn fetcher(
    client: KafkaClient,
    opts: FetchOptions,
) -> impl Fn(Vec<FetchPosition>) -> Fetched + Send + 'static {
    let turn = Arc::new(AtomicUsize::new(0));
    move |positions: Vec<FetchPosition>| {
        let client = client.clone();
        let lane = COPY_LANES.start + turn.fetch_add(1, Ordering::Relaxed) % COPY_LANES.len();
        let max_bytes = positions
            .iter()
            .fold(0i32, |sum, p| sum.saturating_add(p.max_bytes.max(1)));
        let opts = FetchOptions {
            max_bytes,
            lane,
            ..opts
        };
        Box::pin(async move {
            client
                .fetch(&positions, opts)
                .await
                .into_iter()
                .map(|f| ((f.topic.clone(), f.partition), f))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A queue whose requests take 20 ms and answer each partition with its own name and the
    /// size of the request it went in; `log` gets each request's keys.
    fn queue(log: Arc<Mutex<Vec<Vec<Key>>>>) -> Arc<Queue<Key, (Key, usize)>> {
        Arc::new(Queue::start(
            |k: &Key| k.clone(),
            move |reqs: Vec<Key>| {
                log.lock().unwrap().push(reqs.clone());
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let n = reqs.len();
                    // The last partition is left out of every answer.
                    reqs.into_iter()
                        .filter(|k| k.0 != "missing")
                        .map(|k| (k.clone(), (k, n)))
                        .collect()
                }
            },
        ))
    }

    #[tokio::test]
    async fn concurrent_calls_share_requests_and_each_gets_its_own_answer() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let q = queue(Arc::clone(&log));
        let calls: Vec<_> = (0..64)
            .map(|p| {
                let q = Arc::clone(&q);
                tokio::spawn(async move { q.call(("orders".to_owned(), p)).await })
            })
            .collect();
        for (p, call) in calls.into_iter().enumerate() {
            let (key, _) = call.await.unwrap().expect("an answer");
            assert_eq!(key, ("orders".to_owned(), p as i32), "its own answer");
        }
        let log = log.lock().unwrap();
        let sent: usize = log.iter().map(Vec::len).sum();
        assert_eq!(sent, 64, "every call sent once: {log:?}");
        assert!(
            log.len() < 64,
            "64 concurrent calls went out as {} requests",
            log.len()
        );
    }

    #[tokio::test]
    async fn a_partition_is_never_twice_in_one_request_and_a_missing_answer_is_none() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let q = queue(Arc::clone(&log));
        // Hold every slot so that all the calls below queue up together.
        let busy: Vec<_> = (0..IN_FLIGHT as i32)
            .map(|p| {
                let q = Arc::clone(&q);
                tokio::spawn(async move { q.call(("busy".to_owned(), p)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let calls: Vec<_> = [("a", 0), ("a", 0), ("b", 1), ("missing", 0)]
            .into_iter()
            .map(|(t, p)| {
                let q = Arc::clone(&q);
                tokio::spawn(async move { q.call((t.to_owned(), p)).await })
            })
            .collect();
        let mut answers = Vec::new();
        for c in calls {
            answers.push(c.await.unwrap());
        }
        for b in busy {
            assert!(b.await.unwrap().is_some());
        }
        assert!(answers[0].is_some() && answers[1].is_some() && answers[2].is_some());
        assert!(
            answers[3].is_none(),
            "left out of the answer: {:?}",
            answers[3]
        );
        for req in log.lock().unwrap().iter() {
            let unique: HashSet<&Key> = req.iter().collect();
            assert_eq!(unique.len(), req.len(), "a partition twice in {req:?}");
        }
    }
}
