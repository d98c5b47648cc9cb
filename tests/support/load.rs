//! Producers and consumers that count every record, for exactly-once checks across
//! cutovers, and a group's committed offsets.

use super::*;

/// Produces uniquely numbered records (`v-N`, partition N % 2) until stopped; remembers what
/// was acknowledged.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(
        broker: &Broker,
        topic: &str,
        next: std::sync::Arc<std::sync::atomic::AtomicU64>,
        acked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let p = producer(broker, &[("linger.ms", "0")]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (topic, s) = (topic.to_string(), std::sync::Arc::clone(&stop));
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let value = format!("v-{n}");
                let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
                    .partition((n % 2) as i32)
                    .payload(value.as_bytes());
                match p.send(rec, Duration::from_secs(10)).await {
                    Ok(_) => acked.lock().unwrap().push(value),
                    Err((e, _)) => panic!("produce v-{n}: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

/// A consumer in `group` reading partitions 0 and 1 from the group's committed offsets
/// (assigned, not subscribed: the group has no live members), committing after every
/// record, until stopped.
pub struct Reader {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Reader {
    pub fn start(
        broker: &Broker,
        topic: &str,
        group: &str,
        seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Self {
        Self::start_paced(broker, topic, group, seen, Duration::ZERO)
    }

    /// Like [`Reader::start`], but pausing `pause` after each record: a slow consumer whose
    /// committed offsets keep moving for a while (for faults during group sync).
    pub fn start_paced(
        broker: &Broker,
        topic: &str,
        group: &str,
        seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        pause: Duration,
    ) -> Self {
        use rdkafka::consumer::CommitMode;
        let mut cfg = RdConfig::new();
        for (k, v) in broker.client_config(None) {
            cfg.set(k, v);
        }
        cfg.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "10");
        let consumer: BaseConsumer = cfg.create().unwrap();
        // The group's committed offsets are read (with retries) and assigned explicitly:
        // assigning `Offset::Stored` leaves librdkafka waiting forever when its own offset
        // fetch meets NOT_COORDINATOR on a busy broker (seen in CI).
        let mut tpl = TopicPartitionList::new();
        for (p, c) in committed_offsets(broker, group, topic, 2)
            .iter()
            .enumerate()
        {
            let at = if *c >= 0 {
                Offset::Offset(*c)
            } else {
                Offset::Beginning
            };
            tpl.add_partition_offset(topic, p as i32, at).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(m) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                // librdkafka reports transient conditions (a just-created topic's leader not
                // known yet, ...) through poll; they are not records.
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("consumer: {e}");
                        continue;
                    }
                };
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
                consumer.commit_message(&m, CommitMode::Sync).unwrap();
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
            }
        });
        Self { stop, thread }
    }

    pub fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

/// Waits (up to 60 s) until `seen` holds at least as many records as `acked`.
pub async fn read_all(
    seen: &std::sync::Mutex<Vec<String>>,
    acked: &std::sync::Mutex<Vec<String>>,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, a) = (seen.lock().unwrap().len(), acked.lock().unwrap().len());
        if s >= a {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: consumed {s} of {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged record consumed exactly once, and nothing else consumed.
pub fn assert_exactly_once(seen: &[String], acked: &[String]) {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for v in seen {
        *counts.entry(v).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    let lost: Vec<_> = acked
        .iter()
        .filter(|v| !counts.contains_key(v.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "lost {} records, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(
        seen.len(),
        acked.len(),
        "consumed records that were never acknowledged"
    );
}

/// A group's committed offsets on `broker` for `topic` partitions `0..partitions` (-1 where
/// nothing is committed), read with retries.
pub fn committed_offsets(broker: &Broker, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let mut cfg = RdConfig::new();
    for (k, v) in broker.client_config(None) {
        cfg.set(k, v);
    }
    cfg.set("group.id", group)
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create().unwrap();
    let mut want = TopicPartitionList::new();
    for p in 0..partitions {
        want.add_partition(topic, p);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let committed = loop {
        match consumer.committed_offsets(want.clone(), Duration::from_secs(5)) {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot read {group}'s offsets: {e}"
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    };
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// Sends `n` numbered records (`v-N`, partition N % 2, numbers from `next`) to `topic` at once
/// and remembers them as acknowledged (like [`Load`], but as one quick burst).
/// `client` is the broker's client config ([`Broker::client_config`]).
pub async fn send_burst(
    client: &[(String, String)],
    topic: &str,
    n: usize,
    next: &std::sync::atomic::AtomicU64,
    acked: &std::sync::Mutex<Vec<String>>,
) {
    let mut cfg = RdConfig::new();
    for (k, v) in client {
        cfg.set(k, v);
    }
    cfg.set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("acks", "all");
    let p: FutureProducer = cfg.create().expect("rdkafka producer");
    let mut pending = Vec::new();
    for _ in 0..n {
        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let value = format!("v-{k}");
        let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition((k % 2) as i32)
            .payload(value.as_bytes());
        let d = p.send_result(rec).map_err(|(e, _)| e).expect("enqueue");
        pending.push((value, d));
    }
    for (value, d) in pending {
        d.await
            .expect("delivery future")
            .map_err(|(e, _)| e)
            .expect("delivered");
        acked.lock().unwrap().push(value);
    }
}
