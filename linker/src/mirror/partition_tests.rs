//! Pure-logic tests of one partition's mirror: what is queued, skipped and written, and what
//! the map records. Batches are built with kafka-protocol's encoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::client::data::AbortedTransaction;
use crate::state::Lookup;

/// One batch of `n` records at `base`, optionally transactional / control for `pid`.
fn batch(base: i64, n: i64, pid: i64, transactional: bool, control: bool) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional,
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: if pid >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: base + i,
            // kafka-protocol batches records whose (offset - sequence) agree; base sequence
            // stays -1 for non-idempotent batches.
            sequence: if pid >= 0 { i as i32 } else { i as i32 - 1 },
            timestamp: 1_000 + base + i,
            key: Some(Bytes::from(format!("k{}", base + i))),
            // Control records carry a marker key/value; any bytes do for these tests.
            value: Some(Bytes::from_static(b"value")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn run() -> PartitionRun {
    PartitionRun::new(
        TopicPartition::new("t", 0),
        OffsetMap::new(SourceOffset(0), TargetOffset(0)),
        1 << 20,
        false,
    )
}

fn blob(parts: &[Bytes]) -> Bytes {
    parts
        .iter()
        .flat_map(|b| b.iter().copied())
        .collect::<Vec<u8>>()
        .into()
}

/// Writes every queued batch as if the target kept offsets; returns target bases.
fn write_all(r: &mut PartitionRun) -> Vec<i64> {
    let mut bases = Vec::new();
    loop {
        r.apply_skips().unwrap();
        let Some(p) = r.next_write() else { break };
        let _ = p;
        let base = r.map.next_target().0;
        r.on_written(base, None).unwrap();
        bases.push(base);
    }
    bases
}

#[test]
fn plain_batches_are_written_byte_for_byte_and_map_identically() {
    let mut r = run();
    let b1 = batch(0, 3, -1, false, false);
    let b2 = batch(3, 2, -1, false, false);
    assert_eq!(
        r.accept_fetch(blob(&[b1.clone(), b2]), &[]).unwrap(),
        Accepted::Queued(r.queued_bytes)
    );
    let Some(Step::Write(p)) = r.queue.front() else {
        panic!()
    };
    assert_eq!(
        p.to_write(),
        b1,
        "a batch without producer identity is produced unchanged"
    );
    assert_eq!(write_all(&mut r), vec![0, 3]);
    assert_eq!(r.map.entries().len(), 1, "identity mapping stays one entry");
    assert_eq!(
        r.map.target_for(SourceOffset(4)),
        Lookup::Mapped(TargetOffset(4))
    );
    assert_eq!(r.map.next_source(), SourceOffset(5));
    assert_eq!(r.queued_bytes, 0);
}

#[test]
fn producer_identity_is_stripped_and_records_stay_identical() {
    let mut r = run();
    let b = batch(0, 4, 77, false, false);
    r.accept_fetch(b.clone(), &[]).unwrap();
    let Some(Step::Write(p)) = r.queue.front() else {
        panic!()
    };
    let written = RawBatch::from_bytes(p.to_write()).unwrap();
    assert_eq!(written.header().producer_id, -1);
    assert_eq!(written.header().base_sequence, -1);
    assert_eq!(
        written.records_section(),
        RawBatch::from_bytes(b).unwrap().records_section()
    );
    written.verify_crc().unwrap();
}

#[test]
fn control_and_aborted_batches_are_skipped_and_gaps_map_forward() {
    let mut r = run();
    // 0..2 data, 2..4 aborted txn of pid 9, 4 abort marker, 5..7 data
    let parts = [
        batch(0, 2, -1, false, false),
        batch(2, 2, 9, true, false),
        batch(4, 1, 9, true, true),
        batch(5, 2, -1, false, false),
    ];
    r.accept_fetch(
        blob(&parts),
        &[AbortedTransaction {
            producer_id: 9,
            first_offset: 2,
        }],
    )
    .unwrap();
    assert_eq!(
        write_all(&mut r),
        vec![0, 2],
        "two data batches written, target contiguous"
    );
    assert_eq!(r.map.next_source(), SourceOffset(7));
    assert_eq!(r.map.next_target(), TargetOffset(4));
    // A committed offset inside the aborted/marker gap translates to the next mirrored record.
    assert_eq!(
        r.map.target_for(SourceOffset(3)),
        Lookup::Mapped(TargetOffset(2))
    );
    assert_eq!(
        r.map.target_for(SourceOffset(5)),
        Lookup::Mapped(TargetOffset(2))
    );
    assert_eq!(
        r.map.target_for(SourceOffset(7)),
        Lookup::Mapped(TargetOffset(4))
    );
    assert_eq!(r.map.target_for(SourceOffset(8)), Lookup::NotYetMirrored);
}

/// Compaction keeps an emptied batch (count 0) for its producer's last sequence; it is skipped,
/// and its offsets map forward to the next record.
#[test]
fn batches_emptied_by_compaction_are_skipped() {
    let full = crate::batch::RawBatch::from_bytes(batch(2, 3, 7, false, false)).unwrap();
    let mut header = *full.header();
    header.record_count = 0;
    let empty = crate::records::seal(header, &[]).unwrap();
    let mut r = run();
    let parts = [
        batch(0, 2, -1, false, false),
        empty.bytes().clone(),
        batch(5, 1, -1, false, false),
    ];
    r.accept_fetch(blob(&parts), &[]).unwrap();
    assert_eq!(
        write_all(&mut r),
        vec![0, 2],
        "only the two batches with records"
    );
    assert_eq!(r.map.next_source(), SourceOffset(6));
    assert_eq!(r.map.next_target(), TargetOffset(3));
    assert_eq!(
        r.map.target_for(SourceOffset(3)),
        Lookup::Mapped(TargetOffset(2))
    );
}

#[test]
fn committed_transactions_are_written() {
    let mut r = run();
    let parts = [batch(0, 2, 5, true, false), batch(2, 1, 5, true, true)];
    r.accept_fetch(blob(&parts), &[]).unwrap();
    assert_eq!(write_all(&mut r), vec![0]);
    assert_eq!(r.map.next_source(), SourceOffset(3));
}

#[test]
fn an_unexpected_target_offset_is_a_foreign_write() {
    let mut r = run();
    r.accept_fetch(batch(0, 2, -1, false, false), &[]).unwrap();
    let err = r.on_written(5, None).unwrap_err();
    assert!(err.0.contains("another producer wrote"), "{}", err.0);
    assert_eq!(r.map.next_target(), TargetOffset(0), "nothing recorded");
}

#[test]
fn a_matching_target_tail_is_recorded_not_rewritten() {
    let mut r = run();
    let b1 = batch(0, 2, 3, false, false);
    r.accept_fetch(blob(&[b1.clone(), batch(2, 2, -1, false, false)]), &[])
        .unwrap();
    // The target already holds batch 1 (written before a crash, producer id stripped).
    let stored = RawBatch::from_bytes(b1).unwrap().without_producer();
    r.target_tail.push_back(stored);
    assert_eq!(r.match_tail(), Some(Ok(0)));
    r.on_written(0, None).unwrap();
    assert!(r.match_tail().is_none(), "tail consumed");
    assert_eq!(write_all(&mut r), vec![2]);
}

#[test]
fn a_foreign_target_tail_stops_the_partition() {
    let mut r = run();
    r.accept_fetch(batch(0, 2, -1, false, false), &[]).unwrap();
    r.target_tail
        .push_back(RawBatch::from_bytes(batch(0, 3, -1, false, false)).unwrap());
    let err = r.match_tail().unwrap().unwrap_err();
    assert!(err.0.contains("did not write"), "{}", err.0);
}

#[test]
fn a_corrupt_batch_is_never_queued() {
    let mut r = run();
    let good = batch(0, 2, -1, false, false);
    let mut bad = batch(2, 2, -1, false, false).to_vec();
    let n = bad.len();
    bad[n - 1] ^= 0x10;
    let acc = r
        .accept_fetch(blob(&[good, Bytes::from(bad)]), &[])
        .unwrap();
    assert!(matches!(acc, Accepted::CrcFailure { at: 2, .. }), "{acc:?}");
    assert_eq!(r.queue.len(), 1, "the good batch before it is queued");
    assert_eq!(
        r.fetch_offset, 2,
        "the next fetch starts at the corrupt batch again"
    );
    assert_eq!(r.crc_streak, 1);
}

#[test]
fn a_fetch_starting_inside_a_batch_keeps_the_whole_batch() {
    let mut r = PartitionRun::new(
        TopicPartition::new("t", 0),
        OffsetMap::new(SourceOffset(3), TargetOffset(0)),
        1 << 20,
        false,
    );
    r.accept_fetch(
        blob(&[batch(0, 2, -1, false, false), batch(2, 3, -1, false, false)]),
        &[],
    )
    .unwrap();
    assert_eq!(
        r.queue.len(),
        1,
        "the batch ending before the start is dropped"
    );
    assert_eq!(r.fetch_offset, 5);
}

/// A partition with an idempotent producer id, holding `n` queued batches of 2 records.
fn pipelined(n: i64) -> PartitionRun {
    let mut r = PartitionRun::new(
        TopicPartition::new("t", 0),
        OffsetMap::new(SourceOffset(0), TargetOffset(0)),
        1 << 20,
        true,
    );
    let parts: Vec<Bytes> = (0..n).map(|i| batch(i * 2, 2, -1, false, false)).collect();
    r.accept_fetch(blob(&parts), &[]).unwrap();
    r
}

/// A producer id the target already holds sequence state for, from sequence 0.
fn confirmed_id(id: i64, epoch: i16) -> Producer {
    Producer::Id {
        id,
        epoch,
        next_seq: 0,
        confirmed: true,
    }
}

#[test]
fn an_idempotent_partition_waits_for_its_producer_id() {
    let mut r = pipelined(2);
    assert_eq!(r.producer, Producer::Needed);
    assert!(!r.can_send(5), "no write before a producer id");
    assert!(r.has_writes());
    r.producer = confirmed_id(7, 1);
    assert!(r.can_send(5));
}

#[test]
fn pipelined_writes_carry_consecutive_sequences_and_stay_byte_identical() {
    let mut r = pipelined(3);
    r.producer = confirmed_id(7, 1);
    let sent: Vec<RawBatch> = (0..3)
        .map(|t| {
            assert!(r.can_send(5));
            RawBatch::from_bytes(r.send_next(t).unwrap().to_bytes()).unwrap()
        })
        .collect();
    assert!(!r.can_send(5), "nothing left to send");
    assert_eq!(r.in_flight, 3);
    for (i, b) in sent.iter().enumerate() {
        let h = b.header();
        assert_eq!((h.producer_id, h.producer_epoch), (7, 1));
        assert_eq!(
            h.base_sequence,
            2 * i as i32,
            "sequence advances by record count"
        );
        assert_eq!(h.base_offset, 0);
        b.verify_crc()
            .expect("CRC recomputed over the new producer fields");
        let Step::Write(p) = &r.queue[i] else {
            panic!("write expected")
        };
        assert_eq!(b.records_section(), p.source.records_section());
    }
}

#[test]
fn the_depth_limits_writes_in_flight_and_plain_partitions_send_one() {
    let mut r = pipelined(4);
    r.producer = confirmed_id(1, 0);
    r.send_next(0).unwrap();
    r.send_next(1).unwrap();
    assert!(!r.can_send(2), "depth 2 reached");
    let mut plain = run();
    plain
        .accept_fetch(
            blob(&[batch(0, 1, -1, false, false), batch(1, 1, -1, false, false)]),
            &[],
        )
        .unwrap();
    assert!(plain.can_send(5));
    plain.send_next(0).unwrap();
    assert!(
        !plain.can_send(5),
        "one write at a time without a producer id"
    );
}

#[test]
fn acks_out_of_order_are_recorded_in_queue_order() {
    let mut r = pipelined(3);
    r.producer = confirmed_id(1, 0);
    for t in 0..3 {
        r.send_next(t).unwrap();
    }
    assert!(r.on_ack(2, 4));
    assert!(r.on_ack(1, 2));
    assert!(
        r.front_acked().is_none(),
        "the first write is not acknowledged yet"
    );
    assert!(r.on_ack(0, 0));
    let mut bases = Vec::new();
    while let Some((base, _)) = r.front_acked() {
        r.on_written(base, None).unwrap();
        bases.push(base);
    }
    assert_eq!(bases, vec![0, 2, 4]);
    assert_eq!(r.in_flight, 0);
    assert_eq!(r.map.next_source(), SourceOffset(6));
    assert!(
        !r.on_ack(0, 0),
        "an answer for nothing in flight is ignored"
    );
}

#[test]
fn a_failed_write_stops_sending_and_a_reset_asks_for_a_fresh_producer_id() {
    let mut r = pipelined(3);
    r.producer = confirmed_id(1, 0);
    for t in 0..2 {
        r.send_next(t).unwrap();
    }
    let one = Some(FailedWrite {
        gapped: false,
        batches: 1,
    });
    assert_eq!(r.on_failed(0), one, "a batch without gaps failed");
    assert!(r.broken);
    assert!(!r.can_send(5), "a broken partition sends nothing");
    assert_eq!(r.on_failed(1), one);
    assert_eq!(
        r.on_failed(1),
        None,
        "an answer for nothing in flight is ignored"
    );
    assert_eq!(r.in_flight, 0);
    r.reset_to_map();
    assert!(!r.broken);
    assert_eq!(
        r.producer,
        Producer::Needed,
        "sequences restart under a new id"
    );
    assert_eq!(r.fetch_offset, 0);
}

#[test]
fn the_first_write_under_a_new_producer_id_goes_alone() {
    let mut r = pipelined(3);
    r.producer = Producer::Id {
        id: 1,
        epoch: 0,
        next_seq: 0,
        confirmed: false,
    };
    r.send_next(0).unwrap();
    assert!(
        !r.can_send(5),
        "a second write could land before a failed first one"
    );
    assert!(r.on_ack(0, 0));
    assert!(r.can_send(5), "the target now holds the sequence state");
    r.unconfirm();
    assert!(!r.can_send(5) || r.in_flight == 0);
    r.send_next(1).unwrap();
    assert!(
        !r.can_send(5),
        "after a long idle time the next write goes alone again"
    );
}

#[test]
fn sequences_wrap_like_kafkas() {
    assert_eq!(next_sequence(0, 5), 5);
    assert_eq!(next_sequence(i32::MAX - 1, 2), 0);
    assert_eq!(next_sequence(i32::MAX, 3), 2);
    assert_eq!(previous_sequence(5, 5), 0);
    assert_eq!(previous_sequence(0, 2), i32::MAX - 1);
    assert_eq!(previous_sequence(2, 3), i32::MAX);
}

#[test]
fn a_refused_lone_write_of_several_is_sent_again_with_the_same_sequences() {
    let mut r = pipelined(4);
    r.producer = confirmed_id(7, 1);
    let first = batch::split(r.send_run(0, 3).unwrap().to_bytes())
        .unwrap()
        .batches;
    assert_eq!(first.len(), 3);
    assert!(r.take_back_refused(0));
    assert_eq!(r.in_flight, 0);
    assert!(!r.broken, "nothing was written: no reconcile");
    // The same batches again, one per write, under the same sequence numbers.
    for (ticket, want) in (1..).zip(&first) {
        let again = batch::split(r.send_run(ticket, 1).unwrap().to_bytes())
            .unwrap()
            .batches;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].header().base_sequence, want.header().base_sequence);
        assert_eq!(again[0].bytes(), want.bytes());
    }
    // With another write in flight a refusal cannot be taken back: the target may already
    // have refused that one too (out of order), so the partition reconciles as usual.
    assert!(!r.take_back_refused(1), "two writes in flight");
    assert_eq!(r.in_flight, 3);
    assert!(!r.take_back_refused(99), "unknown ticket");
}

#[test]
fn several_batches_go_in_one_write_with_consecutive_sequences() {
    let mut r = pipelined(5);
    // Until the target confirmed the id, one batch per write.
    r.producer = Producer::Id {
        id: 7,
        epoch: 1,
        next_seq: 0,
        confirmed: false,
    };
    let first = r.send_run(0, 8).unwrap().to_bytes();
    assert_eq!(batch::split(first).unwrap().batches.len(), 1);
    assert!(r.on_ack(0, 100));
    // Confirmed: up to `max` batches, one after the other, each stamped and CRC-sound.
    let run_bytes = r.send_run(1, 3).unwrap().to_bytes();
    assert_eq!(r.in_flight, 1, "one write, however many batches");
    let sent = batch::split(run_bytes).unwrap().batches;
    assert_eq!(sent.len(), 3);
    for (i, b) in sent.iter().enumerate() {
        assert_eq!(b.header().base_sequence, 2 + 2 * i as i32);
        b.verify_crc().unwrap();
        let Step::Write(p) = &r.queue[i + 1] else {
            panic!("write expected")
        };
        assert_eq!(b.records_section(), p.source.records_section());
        assert_eq!(p.ticket, Some(1));
    }
    // The answer places them one after the other from its base.
    assert!(r.on_ack(1, 102));
    let bases: Vec<Option<i64>> = r
        .queue
        .iter()
        .map(|s| match s {
            Step::Write(p) => p.acked,
            Step::Skip(_) => None,
        })
        .collect();
    assert_eq!(bases, [Some(100), Some(102), Some(104), Some(106), None]);
    assert_eq!(r.in_flight, 0);
    assert!(
        !r.on_ack(1, 102),
        "a second answer for the same write is stale"
    );
}

#[test]
fn a_failed_write_of_several_batches_unsends_them_all() {
    let mut r = pipelined(4);
    r.producer = confirmed_id(7, 1);
    r.send_run(0, 2).unwrap();
    r.send_run(1, 2).unwrap();
    assert_eq!(r.in_flight, 2);
    assert_eq!((r.batches_under(0), r.batches_under(1)), (2, 2));
    let failed = r.on_failed(0).unwrap();
    assert_eq!(
        failed,
        FailedWrite {
            gapped: false,
            batches: 2
        }
    );
    assert!(r.broken);
    assert_eq!(r.in_flight, 1);
    assert!(r.on_failed(0).is_none(), "stale");
    assert_eq!(
        r.batches_under(1),
        2,
        "found behind the unsent batches before it"
    );
    let unsent = r
        .queue
        .iter()
        .filter(|s| matches!(s, Step::Write(p) if p.ticket.is_none()))
        .count();
    assert_eq!(unsent, 2, "the failed write's batches may be sent again");
}

#[test]
fn batches_around_a_skipped_range_go_together() {
    let mut r = PartitionRun::new(
        TopicPartition::new("t", 0),
        OffsetMap::new(SourceOffset(0), TargetOffset(0)),
        1 << 20,
        false,
    );
    // Data, an aborted transaction's batch (skipped), data.
    let parts = [
        batch(0, 2, -1, false, false),
        batch(2, 2, 9, true, false),
        batch(4, 1, 9, true, true),
        batch(5, 2, -1, false, false),
    ];
    let aborted = [AbortedTransaction {
        producer_id: 9,
        first_offset: 2,
    }];
    r.accept_fetch(blob(&parts), &aborted).unwrap();
    let sent = batch::split(r.send_run(0, 8).unwrap().to_bytes())
        .unwrap()
        .batches;
    assert_eq!(sent.len(), 2, "both data batches, not the skipped ones");
    assert_eq!(
        r.batches_under(0),
        2,
        "the walk goes past the skipped range"
    );
    assert!(r.on_ack(0, 10));
    assert_eq!(r.front_acked().map(|(b, _)| b), Some(10));
    let (_, second) = r
        .queue
        .iter()
        .rev()
        .find_map(|s| match s {
            Step::Write(p) => p.acked.map(|a| (a, p)),
            Step::Skip(_) => None,
        })
        .unwrap();
    assert_eq!(
        second.acked,
        Some(12),
        "placed right after the first on the target"
    );
}

/// `source` as strait writes it under producer `(id, epoch)` from sequence `seq`.
fn written_under(source: &Bytes, id: i64, epoch: i16, seq: i32) -> RawBatch {
    let raw = RawBatch::from_bytes(source.clone()).unwrap();
    RawBatch::from_bytes(raw.for_produce(Some((id, epoch, seq))).into_bytes()).unwrap()
}

fn cursor(id: i64, epoch: i16, next_sequence: i32) -> Option<ProducerCursor> {
    Some(ProducerCursor {
        id,
        epoch,
        next_sequence,
    })
}

#[test]
fn the_settled_producer_follows_each_recorded_batch() {
    let mut r = pipelined(2);
    r.producer = confirmed_id(7, 1);
    r.send_next(0).unwrap();
    r.send_next(1).unwrap();
    assert_eq!(r.settled_producer, None, "nothing recorded yet");
    assert!(r.on_ack(0, 0));
    r.on_written(0, None).unwrap();
    assert_eq!(r.settled_producer, cursor(7, 1, 2), "after the first batch");
    assert!(r.on_ack(1, 2));
    r.on_written(2, None).unwrap();
    assert_eq!(r.settled_producer, cursor(7, 1, 4));
    let mut plain = run();
    plain.resume_from(cursor(7, 1, 4));
    plain
        .accept_fetch(batch(0, 2, -1, false, false), &[])
        .unwrap();
    assert_eq!(write_all(&mut plain), vec![0]);
    assert_eq!(
        plain.settled_producer, None,
        "no producer id, none recorded"
    );
}

#[test]
fn a_restart_continues_under_the_checkpoint_producer_past_its_tail() {
    let b0 = batch(0, 2, -1, false, false);
    let mut r = pipelined(3);
    r.resume_from(cursor(7, 1, 10));
    assert_eq!(r.settled_producer, cursor(7, 1, 10));
    // The old process's last write (sequence 10) landed; its acknowledgement was lost.
    r.target_tail.push_back(written_under(&b0, 7, 1, 10));
    assert!(
        !r.take_resume(),
        "the tail's last batch decides the sequence"
    );
    assert_eq!(r.match_tail(), Some(Ok(0)));
    r.on_written(0, None).unwrap();
    assert_eq!(
        r.settled_producer,
        cursor(7, 1, 12),
        "the tail batch is recorded"
    );
    assert!(r.take_resume());
    assert_eq!(
        r.producer,
        Producer::Id {
            id: 7,
            epoch: 1,
            next_seq: 12,
            confirmed: false
        }
    );
    assert!(!r.take_resume(), "once only");
    let sent = RawBatch::from_bytes(r.send_next(0).unwrap().to_bytes()).unwrap();
    let h = sent.header();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (7, 1, 12)
    );
    assert!(
        !r.can_send(5),
        "the first write under a resumed id goes alone"
    );
}

#[test]
fn a_tail_batch_under_another_producer_ends_the_resume() {
    let b0 = batch(0, 2, -1, false, false);
    let mut r = pipelined(2);
    r.resume_from(cursor(7, 1, 10));
    // A write under another id of strait's (a partition's own id after a reset) landed last.
    r.target_tail.push_back(written_under(&b0, 8, 0, 0));
    assert_eq!(r.match_tail(), Some(Ok(0)));
    r.on_written(0, None).unwrap();
    assert_eq!(
        r.settled_producer, None,
        "an id strait is not sure of is not kept"
    );
    assert!(!r.take_resume(), "a fresh id, not 7 at a guessed sequence");
    assert_eq!(r.producer, Producer::Needed);
    // The same epoch matters as much as the id.
    let mut e = pipelined(2);
    e.resume_from(cursor(7, 1, 10));
    e.target_tail.push_back(written_under(&b0, 7, 2, 10));
    assert_eq!(e.match_tail(), Some(Ok(0)));
    assert!(!e.take_resume());
    // A tail batch without a producer id ends it too.
    let mut p = pipelined(2);
    p.resume_from(cursor(7, 1, 10));
    p.target_tail
        .push_back(RawBatch::from_bytes(b0.clone()).unwrap());
    assert_eq!(p.match_tail(), Some(Ok(0)));
    assert!(!p.take_resume());
}

#[test]
fn an_empty_tail_resumes_at_the_checkpoint_sequence_and_a_failure_forgets_it() {
    let mut r = pipelined(2);
    r.resume_from(cursor(7, 1, 10));
    assert!(r.take_resume());
    assert_eq!(
        r.producer,
        Producer::Id {
            id: 7,
            epoch: 1,
            next_seq: 10,
            confirmed: false
        }
    );
    r.send_next(0).unwrap();
    assert!(r.on_failed(0).is_some());
    r.reset_to_map();
    assert_eq!(r.producer, Producer::Needed);
    assert!(!r.take_resume(), "after a failed write, a fresh id");
    // Without a checkpoint cursor there is nothing to resume.
    let mut fresh = pipelined(1);
    fresh.resume_from(None);
    assert!(!fresh.take_resume());
}
