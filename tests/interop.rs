//! Interop on real brokers: data written by an independent client (rdkafka / librdkafka) is
//! fetched raw by strait's client, every CRC is checked and the records decode to exactly
//! what was sent; raw batches produced by strait's client are read back unchanged by
//! rdkafka. Each case runs against Apache Kafka 4.3.1 and tansu 0.6.0 (memory storage),
//! except where a broker lacks the feature, which the test says.

mod support;

use std::time::Duration;

use strait_linker::client::KafkaClient;
use strait_linker::client::data::{
    FetchOptions, FetchPosition, FetchSessions, Isolation, ProduceItem,
};
use strait_testkit::{Broker, kafka_source, kafka_target, tansu_target, unique};
use support::*;

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

async fn codecs_round_trip(broker: &Broker) {
    let c = client(broker).await;
    for codec in CODECS {
        let topic = unique(&format!("codec-{codec}"));
        create_topic(&c, &topic, 1, &[]).await;
        let sent = sample_records(40, codec);
        let p = producer(
            broker,
            &[("compression.type", codec), ("batch.num.messages", "8")],
        );
        let offsets = send_all(&p, &topic, 0, &sent).await;
        assert_eq!(
            offsets,
            (0..40).collect::<Vec<i64>>(),
            "{codec}: contiguous offsets from 0"
        );

        let f = fetch_all(&c, &topic, 0, Isolation::ReadCommitted).await;
        assert!(
            f.batches.len() > 1,
            "{codec}: expected several batches, got {}",
            f.batches.len()
        );
        let want_codec = CODECS.iter().position(|c| *c == codec).unwrap() as i16;
        for b in &f.batches {
            assert_eq!(
                b.header().attributes & 7,
                want_codec,
                "{codec}: the broker kept the producer's compression"
            );
            assert!(
                !b.header().timestamp_type_log_append(),
                "{codec}: CreateTime kept"
            );
        }
        let got = data_records(&f, false);
        assert_eq!(got.iter().map(|(o, _)| *o).collect::<Vec<_>>(), offsets);
        assert_same(codec, &recs(&got), &sent);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_codec_round_trips_raw_on_kafka() {
    codecs_round_trip(kafka_source()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_codec_round_trips_raw_on_tansu() {
    codecs_round_trip(tansu_target()).await;
}

async fn large_record(broker: &Broker) {
    let c = client(broker).await;
    let topic = unique("large");
    create_topic(&c, &topic, 1, &[("max.message.bytes", "2097152")]).await;
    let mut sent = sample_records(3, "large");
    sent[1].value = Some(
        (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect(),
    );
    let p = producer(
        broker,
        &[
            ("message.max.bytes", "3000000"),
            ("compression.type", "none"),
        ],
    );
    send_all(&p, &topic, 0, &sent).await;
    let f = fetch_all(&c, &topic, 0, Isolation::ReadCommitted).await;
    assert!(
        f.batches.iter().any(|b| b.bytes().len() > 1_000_000),
        "the 1 MB record travelled in one batch"
    );
    assert_same("1 MB record", &recs(&data_records(&f, false)), &sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1mb_record_round_trips_on_kafka() {
    large_record(kafka_source()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1mb_record_round_trips_on_tansu() {
    large_record(tansu_target()).await;
}

async fn idempotent(broker: &Broker) {
    let c = client(broker).await;
    let topic = unique("idem");
    create_topic(&c, &topic, 1, &[]).await;
    let sent = sample_records(30, "idem");
    let p = producer(
        broker,
        &[("enable.idempotence", "true"), ("batch.num.messages", "10")],
    );
    send_all(&p, &topic, 0, &sent).await;
    let f = fetch_all(&c, &topic, 0, Isolation::ReadCommitted).await;
    let mut expected_seq = 0;
    for b in &f.batches {
        let h = b.header();
        assert!(h.producer_id >= 0, "idempotent batches carry a producer id");
        assert_eq!(h.base_sequence, expected_seq, "sequences are contiguous");
        expected_seq += h.record_count;
    }
    assert_same("idempotent", &recs(&data_records(&f, false)), &sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_batches_round_trip_on_kafka() {
    idempotent(kafka_source()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_batches_round_trip_on_tansu() {
    idempotent(tansu_target()).await;
}

/// Transactions: Apache Kafka only. tansu 0.6.0 does not implement EndTxn, so a transaction
/// can neither commit nor abort there; `tansu_lacks_transactions` pins that down.
#[tokio::test(flavor = "multi_thread")]
async fn transactional_commits_and_aborts_on_kafka() {
    use rdkafka::producer::Producer as _;
    let broker = kafka_source();
    let c = client(broker).await;
    let topic = unique("txn");
    create_topic(&c, &topic, 1, &[]).await;
    let txn_id = unique("txn-id");
    let p = producer(broker, &[("transactional.id", &txn_id)]);
    let t = Duration::from_secs(30);
    p.init_transactions(t).unwrap();
    let batches = [
        sample_records(5, "commit-1"),
        sample_records(4, "abort"),
        sample_records(6, "commit-2"),
    ];
    for (i, recs) in batches.iter().enumerate() {
        p.begin_transaction().unwrap();
        send_all(&p, &topic, 0, recs).await;
        if i == 1 {
            p.abort_transaction(t).unwrap()
        } else {
            p.commit_transaction(t).unwrap()
        }
    }
    let committed: Vec<Rec> = batches[0].iter().chain(&batches[2]).cloned().collect();

    wait_stable(&c, &topic, 0).await;
    let f = fetch_all(&c, &topic, 0, Isolation::ReadCommitted).await;
    assert_eq!(
        f.aborted.len(),
        1,
        "one aborted transaction listed: {:?}",
        f.aborted
    );
    let controls = f.batches.iter().filter(|b| b.header().is_control()).count();
    assert_eq!(controls, 3, "a commit or abort marker per transaction");
    assert!(
        f.batches
            .iter()
            .filter(|b| !b.header().is_control())
            .all(|b| b.header().is_transactional())
    );
    assert_same("read_committed", &recs(&data_records(&f, true)), &committed);
    // Without skipping aborted data, all 15 records are there, as read_uncommitted sees them.
    assert_eq!(data_records(&f, false).len(), 15);
    // An independent read_committed consumer agrees.
    let theirs = consume_n(broker, &topic, 0, committed.len(), true);
    assert_same("rdkafka read_committed", &recs(&theirs), &committed);
}

#[tokio::test(flavor = "multi_thread")]
async fn tansu_lacks_transactions() {
    let c = client(tansu_target()).await;
    let conn = c.any_connection().await.unwrap();
    // EndTxn (API key 26) is not advertised: a transaction there can never complete.
    assert!(
        conn.api_versions().range(26).is_none(),
        "tansu now offers EndTxn: extend the transaction tests to it"
    );
}

/// Fetches batches from the source, produces them with strait's client to `target`
/// (producer fields stripped, CRC recomputed, records section untouched), then checks an
/// rdkafka consumer on the target reads exactly the source records and the stored bytes
/// match.
async fn raw_produce_then_rdkafka_reads(target: &Broker) {
    let source = kafka_source();
    let (sc, tc) = (client(source).await, client(target).await);
    let topic = unique("raw");
    create_topic(&sc, &topic, 1, &[]).await;
    create_topic(&tc, &topic, 1, &[]).await;
    let sent = sample_records(50, "raw");
    let p = producer(
        source,
        &[
            ("compression.type", "zstd"),
            ("enable.idempotence", "true"),
            ("batch.num.messages", "7"),
        ],
    );
    send_all(&p, &topic, 0, &sent).await;
    let src = fetch_all(&sc, &topic, 0, Isolation::ReadCommitted).await;

    for b in &src.batches {
        // Kafka requires a produced batch to start at base offset 0 (the broker assigns
        // offsets); the base offset is outside the CRC, so this changes no checked byte.
        let stripped = b.without_producer().with_base_offset(0);
        assert_eq!(stripped.records_section(), b.records_section());
        stripped.verify_crc().unwrap();
        let r = tc
            .produce(
                vec![ProduceItem {
                    topic: topic.clone(),
                    partition: 0,
                    records: stripped.into_bytes().into(),
                }],
                -1,
                Duration::from_secs(30),
            )
            .await;
        let ack = r[&(topic.clone(), 0)]
            .as_ref()
            .expect("raw produce accepted");
        assert_eq!(
            ack.base_offset,
            b.header().base_offset,
            "contiguous source offsets are kept on an empty target"
        );
    }

    let theirs = consume_n(target, &topic, 0, sent.len(), false);
    assert_eq!(
        theirs.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (0..50).collect::<Vec<i64>>()
    );
    assert_same("rdkafka on target", &recs(&theirs), &sent);

    let dst = fetch_all(&tc, &topic, 0, Isolation::ReadCommitted).await;
    assert_eq!(dst.batches.len(), src.batches.len());
    for (s, d) in src.batches.iter().zip(&dst.batches) {
        assert_eq!(
            d.records_section(),
            s.records_section(),
            "records stored byte for byte"
        );
        assert_eq!(d.header().base_offset, s.header().base_offset);
        assert_eq!(d.header().attributes & 7, s.header().attributes & 7);
        assert_eq!(d.header().max_timestamp, s.header().max_timestamp);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_batches_produced_to_kafka_read_back_unchanged() {
    raw_produce_then_rdkafka_reads(kafka_target()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_batches_produced_to_tansu_read_back_unchanged() {
    raw_produce_then_rdkafka_reads(tansu_target()).await;
}

/// A corrupt batch is refused by the CRC check before it could be produced anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_a_fetched_batch_is_detected() {
    let broker = kafka_source();
    let c = client(broker).await;
    let topic = unique("crc");
    create_topic(&c, &topic, 1, &[]).await;
    send_all(&producer(broker, &[]), &topic, 0, &sample_records(5, "crc")).await;
    let f = fetch_all(&c, &topic, 0, Isolation::ReadCommitted).await;
    let mut bytes = f.batches[0].bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let err = strait_linker::batch::split_verified(bytes.into()).unwrap_err();
    assert!(err.to_string().contains("CRC"), "{err}");
}

/// One fetch of partitions 0..4 of `topic` at `offsets`, in `sessions`: (partition, offset
/// asked, high watermark, has records) for each partition in the answer, which must carry
/// no error.
async fn fetch_round(
    c: &KafkaClient,
    topic: &str,
    offsets: &[i64],
    sessions: &mut FetchSessions,
) -> Vec<(i32, i64, i64, bool)> {
    let positions: Vec<FetchPosition> = (0..)
        .zip(offsets)
        .map(|(partition, &offset)| FetchPosition {
            topic: topic.to_owned(),
            partition,
            offset,
            max_bytes: 1 << 20,
        })
        .collect();
    let opts = FetchOptions {
        max_wait: Duration::from_millis(50),
        ..FetchOptions::default()
    };
    let mut answer: Vec<_> = c
        .fetch_in_sessions(&positions, opts, sessions)
        .await
        .into_iter()
        .map(|f| {
            assert!(f.error.is_none(), "{:?}", f.error);
            (
                f.partition,
                f.fetch_offset,
                f.high_watermark,
                !f.records.is_empty(),
            )
        })
        .collect();
    answer.sort();
    answer
}

/// Kafka keeps an incremental fetch session (KIP-227): after the first, full, fetch only
/// partitions with something new are answered; partitions left out are forgotten; a
/// session the broker no longer agrees with (a stale epoch, a closed session) is replaced
/// by a full fetch at once, with nothing lost.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_answers_only_what_changed_in_a_fetch_session() {
    let broker = kafka_source();
    let c = client(broker).await;
    let topic = unique("session");
    create_topic(&c, &topic, 4, &[]).await;
    let leader = c.leader(&topic, 0).await.unwrap();
    let p = producer(broker, &[]);
    for partition in [0, 1] {
        send_all(&p, &topic, partition, &sample_records(5, "s")).await;
    }
    let mut sessions = FetchSessions::default();
    assert_eq!(
        fetch_round(&c, &topic, &[0, 0, 0, 0], &mut sessions).await,
        [
            (0, 0, 5, true),
            (1, 0, 5, true),
            (2, 0, 0, false),
            (3, 0, 0, false)
        ],
        "the first fetch is full"
    );
    let id = sessions.session_id(leader);
    assert_ne!(id, 0, "Kafka opened a session");

    // Caught up: nothing new anywhere, so nothing is answered (without a session, all four).
    assert_eq!(
        fetch_round(&c, &topic, &[5, 5, 0, 0], &mut sessions).await,
        []
    );
    send_all(&p, &topic, 2, &sample_records(3, "s")).await;
    assert_eq!(
        fetch_round(&c, &topic, &[5, 5, 0, 0], &mut sessions).await,
        [(2, 0, 3, true)],
        "only the partition with new records"
    );
    assert_eq!(
        sessions.session_id(leader),
        id,
        "the same session throughout"
    );

    // A copy of the session goes stale once the original fetches again: the broker refuses
    // its epoch and the client asks again at once in full, in a new session.
    let mut stale = sessions.clone();
    assert_eq!(
        fetch_round(&c, &topic, &[5, 5, 3, 0], &mut sessions).await,
        []
    );
    assert_eq!(
        fetch_round(&c, &topic, &[5, 5, 3, 0], &mut stale).await,
        [
            (0, 5, 5, false),
            (1, 5, 5, false),
            (2, 3, 3, false),
            (3, 0, 0, false)
        ],
        "a refused epoch is answered by a full fetch"
    );
    let replaced = stale.session_id(leader);
    assert!(replaced != 0 && replaced != id, "a new session: {replaced}");
    // The full fetch closed the original session: it too recovers in full.
    assert_eq!(
        fetch_round(&c, &topic, &[5, 5, 3, 0], &mut sessions)
            .await
            .len(),
        4
    );

    // Partitions left out are forgotten: records written to 3 now are not answered.
    let positions_0_to_2 = [5, 5, 3];
    assert_eq!(
        fetch_round(&c, &topic, &positions_0_to_2, &mut sessions).await,
        []
    );
    send_all(&p, &topic, 3, &sample_records(2, "s")).await;
    send_all(&p, &topic, 0, &sample_records(1, "s")).await;
    assert_eq!(
        fetch_round(&c, &topic, &positions_0_to_2, &mut sessions).await,
        [(0, 5, 6, true)]
    );
}

/// tansu keeps no fetch sessions (it answers session id 0): every fetch stays full.
#[tokio::test(flavor = "multi_thread")]
async fn tansu_is_fetched_in_full_without_a_session() {
    let broker = tansu_target();
    let c = client(broker).await;
    let topic = unique("session");
    create_topic(&c, &topic, 4, &[]).await;
    let leader = c.leader(&topic, 0).await.unwrap();
    send_all(&producer(broker, &[]), &topic, 0, &sample_records(5, "s")).await;
    let mut sessions = FetchSessions::default();
    for offsets in [[0, 0, 0, 0], [5, 0, 0, 0], [5, 0, 0, 0]] {
        let answer = fetch_round(&c, &topic, &offsets, &mut sessions).await;
        let asked: Vec<(i32, i64)> = answer.iter().map(|a| (a.0, a.1)).collect();
        assert_eq!(asked, [(0, offsets[0]), (1, 0), (2, 0), (3, 0)]);
        assert_eq!(sessions.session_id(leader), 0);
    }
}
