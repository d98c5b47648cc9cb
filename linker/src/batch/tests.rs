//! Tests for `batch`: real batches from kafka-protocol's encoder for every codec, exhaustive
//! bit-flip and truncation sweeps over them, and property tests over synthetic batches.

use super::*;
use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;

const CODECS: [(KCompression, Compression); 5] = [
    (KCompression::None, Compression::None),
    (KCompression::Gzip, Compression::Gzip),
    (KCompression::Snappy, Compression::Snappy),
    (KCompression::Lz4, Compression::Lz4),
    (KCompression::Zstd, Compression::Zstd),
];

/// `count` records at offsets `base..`, from producer 42 epoch 3, sequences starting at 7.
fn records(base: i64, count: i64, transactional: bool) -> Vec<Record> {
    (0..count)
        .map(|i| {
            let mut headers = kafka_protocol::indexmap::IndexMap::new();
            headers.insert(
                StrBytes::from_static_str("trace"),
                Some(Bytes::from(format!("t{i}"))),
            );
            Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 9,
                producer_id: 42,
                producer_epoch: 3,
                timestamp_type: TimestampType::Creation,
                offset: base + i,
                sequence: 7 + i as i32,
                timestamp: 1_700_000_000_000 + i,
                key: (i % 2 == 0).then(|| Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(format!("value-{i}-").repeat(20))),
                headers,
            }
        })
        .collect()
}

fn encode(records: &[Record], compression: KCompression) -> Bytes {
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options).expect("encode");
    buf.freeze()
}

fn decode(bytes: &Bytes) -> Vec<Record> {
    RecordBatchDecoder::decode(&mut bytes.clone())
        .expect("decode")
        .records
}

fn one_batch(bytes: Bytes) -> RawBatch {
    RawBatch::from_bytes(bytes).expect("one complete batch")
}

/// A valid (CRC-correct) synthetic batch: `header`'s magic, length and CRC are filled in.
fn synth(mut header: BatchHeader, payload: &[u8]) -> Vec<u8> {
    header.magic = MAGIC_V2;
    header.batch_length = i32::try_from(HEADER_LEN - LOG_OVERHEAD + payload.len()).unwrap();
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[CRC_COVERED_FROM..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

fn flip(bytes: &Bytes, bit: usize) -> Bytes {
    let mut v = bytes.to_vec();
    v[bit / 8] ^= 1 << (bit % 8);
    Bytes::from(v)
}

#[test]
fn real_batches_parse_and_verify_for_every_codec() {
    for (kc, c) in CODECS {
        let bytes = encode(&records(100, 5, false), kc);
        let batch = one_batch(bytes.clone());
        let h = batch.header();
        assert_eq!(h.base_offset, 100, "{c:?}");
        assert_eq!(h.magic, 2);
        assert_eq!(h.partition_leader_epoch, 9);
        assert_eq!(h.last_offset_delta, 4);
        assert_eq!((h.last_offset(), h.next_offset()), (104, 105));
        assert_eq!(h.record_count, 5);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, 7)
        );
        assert_eq!(
            (h.base_timestamp, h.max_timestamp),
            (1_700_000_000_000, 1_700_000_000_004)
        );
        assert_eq!(h.compression(), Ok(c));
        assert!(!h.is_transactional() && !h.is_control() && !h.timestamp_type_log_append());
        assert_eq!(h.total_len(), bytes.len());
        assert_eq!(batch.records_section(), &bytes[HEADER_LEN..]);
        assert_eq!(batch.computed_crc(), h.crc);
        batch.verify_crc().expect("crc");
        assert_eq!(h.to_bytes()[..], bytes[..HEADER_LEN]);
    }
}

#[test]
fn split_concatenated_batches_is_zero_copy_and_exact() {
    let parts: Vec<Bytes> = CODECS
        .iter()
        .enumerate()
        .map(|(i, (kc, _))| encode(&records(10 * i as i64, 3, false), *kc))
        .collect();
    let blob = Bytes::from(parts.concat());
    let split = split_verified(blob.clone()).expect("split");
    assert_eq!(split.partial_tail_bytes, 0);
    assert_eq!(split.batches.len(), parts.len());
    let mut pos = 0;
    for (batch, part) in split.batches.iter().zip(&parts) {
        assert_eq!(batch.bytes(), part);
        // Zero-copy: the batch points into the blob's own allocation.
        assert_eq!(batch.bytes().as_ptr(), blob[pos..].as_ptr());
        pos += part.len();
    }
    assert_eq!(split.next_offset(), Some(43));
    assert_eq!(split.batches[4].clone().into_bytes(), parts[4]);
}

#[test]
fn with_producer_keeps_records_byte_identical_and_decodable() {
    for (kc, c) in CODECS {
        let original = one_batch(encode(&records(500, 4, false), kc));
        let attrs = original.header().attributes | attr::TRANSACTIONAL;
        let rewritten = original.with_producer(9_000, 11, 123, attrs);
        rewritten.verify_crc().expect("rewritten crc");
        assert_eq!(
            rewritten.records_section(),
            original.records_section(),
            "{c:?}"
        );
        assert_eq!(
            rewritten.bytes()[..CRC_COVERED_FROM - 4],
            original.bytes()[..17]
        );
        let h = rewritten.header();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (9_000, 11, 123)
        );
        assert!(h.is_transactional());
        assert_eq!(h.compression(), Ok(c));
        assert_eq!(one_batch(rewritten.bytes().clone()).header(), h);

        let before = decode(original.bytes());
        let after = decode(rewritten.bytes());
        assert_eq!(after.len(), before.len());
        for (i, (a, b)) in after.iter().zip(&before).enumerate() {
            assert_eq!(
                (&a.key, &a.value, &a.headers),
                (&b.key, &b.value, &b.headers)
            );
            assert_eq!((a.offset, a.timestamp), (b.offset, b.timestamp));
            assert_eq!(
                (a.producer_id, a.producer_epoch, a.sequence),
                (9_000, 11, 123 + i as i32)
            );
            assert!(a.transactional);
        }
    }
}

#[test]
fn with_producer_cannot_change_the_codec() {
    let original = one_batch(encode(&records(0, 2, false), KCompression::Lz4));
    let rewritten = original.with_producer(1, 1, 1, 0); // asks for "none": ignored
    assert_eq!(rewritten.header().compression(), Ok(Compression::Lz4));
    assert_eq!(decode(rewritten.bytes()).len(), 2);
}

#[test]
fn without_producer_strips_identity_and_transactional_bit() {
    for (kc, c) in CODECS {
        let original = one_batch(encode(&records(7, 3, true), kc));
        assert!(original.header().is_transactional());
        let stripped = original.without_producer();
        stripped.verify_crc().expect("crc");
        let h = stripped.header();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
        assert!(!h.is_transactional());
        assert_eq!(h.compression(), Ok(c));
        assert_eq!(stripped.records_section(), original.records_section());
        let decoded = decode(stripped.bytes());
        assert!(
            decoded
                .iter()
                .all(|r| r.producer_id == -1 && !r.transactional)
        );
    }
}

#[test]
fn with_base_offset_leaves_crc_and_records_alone() {
    let original = one_batch(encode(&records(100, 3, false), KCompression::Zstd));
    let moved = original.with_base_offset(5_000);
    assert_eq!(moved.header().base_offset, 5_000);
    assert_eq!(moved.header().crc, original.header().crc);
    assert_eq!(moved.bytes()[8..], original.bytes()[8..]);
    moved.verify_crc().expect("base offset is not CRC-covered");
    let offsets: Vec<i64> = decode(moved.bytes()).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [5_000, 5_001, 5_002]);
}

#[test]
fn rewrites_never_launder_a_corrupt_batch() {
    let good = encode(&records(0, 3, false), KCompression::None);
    let corrupt = one_batch(flip(&good, (HEADER_LEN + 10) * 8));
    assert!(corrupt.verify_crc().is_err());
    assert!(corrupt.with_producer(1, 2, 3, 0).verify_crc().is_err());
    assert!(corrupt.without_producer().verify_crc().is_err());
    assert!(corrupt.with_base_offset(9).verify_crc().is_err());
    assert!(corrupt.clone().checked().is_err(), "checked() refuses it");
}

#[test]
fn a_checked_batch_rewrites_to_the_same_bytes_as_an_unchecked_one() {
    for (kc, _) in CODECS {
        let batch = one_batch(encode(&records(7, 4, false), kc));
        let checked = batch.clone().checked().expect("sound batch");
        for producer in [None, Some((42, 3, 17))] {
            let a = batch.for_produce(producer);
            let b = checked.for_produce(producer);
            assert_eq!(a.bytes(), b.bytes());
            b.verify_crc().expect("rewritten CRC holds");
            // Still checked after the rewrite: a second rewrite is sound too.
            let again = b.for_produce(Some((43, 0, 0)));
            again.verify_crc().expect("second rewrite holds");
            assert_eq!(again.bytes(), a.for_produce(Some((43, 0, 0))).bytes());
        }
    }
}

#[test]
fn produce_chunks_join_to_exactly_what_for_produce_returns() {
    for (kc, _) in CODECS {
        let batch = one_batch(encode(&records(5, 9, false), kc)).with_base_offset(77);
        let mut headers = BytesMut::with_capacity(2 * HEADER_LEN);
        for producer in [None, Some((42, 3, 17))] {
            let [header, records] = batch.produce_chunks(producer, &mut headers);
            assert_eq!(header.len(), HEADER_LEN);
            // The records section is the fetched bytes themselves, not a copy.
            assert_eq!(records.as_ptr(), batch.records_section().as_ptr());
            let joined = [&header[..], &records[..]].concat();
            assert_eq!(joined, &batch.for_produce(producer).bytes()[..]);
            let sent = one_batch(Bytes::from(joined));
            sent.verify_crc().expect("CRC holds");
            assert_eq!(sent.header().base_offset, 0);
            assert!(headers.is_empty(), "each header is split off");
        }
    }
}

#[test]
fn every_bit_flip_in_crc_range_is_detected_and_uncovered_fields_are_not() {
    for (kc, _) in CODECS {
        let bytes = encode(&records(3, 2, false), kc);
        for bit in 0..bytes.len() * 8 {
            let flipped = flip(&bytes, bit);
            let byte = bit / 8;
            match byte {
                // Base offset and partition leader epoch: outside the CRC, by design.
                0..8 | 12..16 => one_batch(flipped).verify_crc().expect("not covered"),
                // Batch length and magic: caught structurally, not by the CRC.
                8..12 | 16 => assert!(RawBatch::from_bytes(flipped).is_err(), "bit {bit}"),
                // The stored CRC itself and everything it covers.
                _ => {
                    let err = one_batch(flipped)
                        .verify_crc()
                        .expect_err("must be detected");
                    assert!(matches!(
                        err,
                        BatchError::CrcMismatch { base_offset: 3, .. }
                    ));
                }
            }
        }
    }
}

#[test]
fn truncating_the_last_batch_at_every_byte_is_a_partial_tail() {
    let first = encode(&records(0, 2, false), KCompression::Gzip);
    let last = encode(&records(2, 3, false), KCompression::Snappy);
    for cut in 0..last.len() {
        let blob = Bytes::from([&first[..], &last[..cut]].concat());
        let split = split_verified(blob).expect("partial tails are tolerated");
        assert_eq!(split.batches.len(), 1);
        assert_eq!(split.partial_tail_bytes, cut);
        assert_eq!(split.next_offset(), Some(2));
    }
}

#[test]
fn only_a_partial_batch_means_the_fetch_limit_is_too_small() {
    let batch = encode(&records(0, 2, false), KCompression::None);
    let split = split(batch.slice(..batch.len() - 1)).unwrap();
    assert!(split.batches.is_empty());
    assert_eq!(split.partial_tail_bytes, batch.len() - 1);
    assert_eq!(split.next_offset(), None);
    assert_eq!(super::split(Bytes::new()).unwrap(), Split::default());
}

/// A legacy message set entry: offset, size, crc (IEEE, irrelevant here), magic, attributes,
/// [timestamp], key (null), value.
fn legacy_message(offset: i64, magic: i8) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0, magic as u8, 0];
    if magic == 1 {
        body.extend_from_slice(&1_700_000_000_000_i64.to_be_bytes());
    }
    body.extend_from_slice(&(-1_i32).to_be_bytes());
    body.extend_from_slice(&5_i32.to_be_bytes());
    body.extend_from_slice(b"hello");
    let mut out = offset.to_be_bytes().to_vec();
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn legacy_message_sets_are_rejected_with_a_clear_message() {
    for magic in [0, 1] {
        let err = split(Bytes::from(legacy_message(77, magic))).unwrap_err();
        assert_eq!(
            err,
            BatchError::UnsupportedMagic {
                magic,
                base_offset: 77,
                position: 0
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("message format v0/v1 is not supported"),
            "{text}"
        );
        assert!(
            text.contains("upgrade the topic's message format"),
            "{text}"
        );
        assert!(matches!(
            BatchHeader::parse(&legacy_message(77, magic)),
            Err(BatchError::UnsupportedMagic { .. })
        ));
    }
    // Behind a valid v2 batch, the error points at the legacy message's position.
    let v2 = encode(&records(0, 1, false), KCompression::None);
    let blob = Bytes::from([&v2[..], &legacy_message(1, 1)].concat());
    let err = split(blob).unwrap_err();
    assert_eq!(
        err,
        BatchError::UnsupportedMagic {
            magic: 1,
            base_offset: 1,
            position: v2.len()
        }
    );
    let err = split(Bytes::from(synth_with_magic(3))).unwrap_err();
    assert!(err.to_string().contains("only record batch v2"), "{err}");
}

fn synth_with_magic(magic: i8) -> Vec<u8> {
    let mut v = synth(header(0), b"");
    v[16] = magic as u8;
    v
}

fn header(base_offset: i64) -> BatchHeader {
    BatchHeader {
        base_offset,
        batch_length: 0,
        partition_leader_epoch: 0,
        magic: MAGIC_V2,
        crc: 0,
        attributes: 0,
        last_offset_delta: 0,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: 0,
    }
}

#[test]
fn impossible_batch_lengths_are_malformed() {
    for len in [-1, i32::MIN, 0, 48] {
        let mut v = synth(header(5), b"");
        v[8..12].copy_from_slice(&i32::to_be_bytes(len));
        let err = split(Bytes::from(v.clone())).unwrap_err();
        assert!(
            matches!(
                err,
                BatchError::Malformed {
                    position: 0,
                    base_offset: 5,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            BatchHeader::parse(&v),
            Err(BatchError::Malformed { .. })
        ));
    }
    // The smallest legal batch: a bare header (batchLength 49), e.g. an emptied compacted batch.
    let split = split(Bytes::from(synth(header(5), b""))).unwrap();
    assert_eq!(split.batches[0].header().batch_length, 49);
    assert!(split.batches[0].records_section().is_empty());
}

#[test]
fn attribute_helpers_and_unknown_compression() {
    let mut h = header(0);
    h.attributes = attr::TIMESTAMP_LOG_APPEND | attr::CONTROL | attr::DELETE_HORIZON | 4;
    assert!(h.timestamp_type_log_append() && h.is_control() && h.has_delete_horizon());
    assert!(!h.is_transactional());
    assert_eq!(h.compression(), Ok(Compression::Zstd));
    for codec in 5..=7 {
        h.attributes = codec;
        h.base_offset = 12;
        let err = h.compression().unwrap_err();
        assert_eq!(
            err,
            BatchError::UnknownCompression {
                codec: codec as u8,
                base_offset: 12
            }
        );
    }
    let mut control = records(0, 1, true);
    control[0].control = true;
    let batch = one_batch(encode(&control, KCompression::None));
    assert!(batch.header().is_control() && batch.header().is_transactional());
}

#[test]
fn split_verified_names_the_corrupt_batch() {
    let a = encode(&records(0, 2, false), KCompression::None);
    let b = encode(&records(2, 2, false), KCompression::Zstd);
    let bad_b = flip(&b, b.len() * 8 - 1);
    let blob = Bytes::from([&a[..], &bad_b[..]].concat());
    assert_eq!(
        split(blob.clone()).unwrap().batches.len(),
        2,
        "split itself does not verify"
    );
    let stored = one_batch(b.clone()).header().crc;
    let computed = one_batch(bad_b).computed_crc();
    assert_eq!(
        split_verified(blob).unwrap_err(),
        BatchError::CrcMismatch {
            base_offset: 2,
            stored,
            computed
        }
    );
}

#[test]
fn short_inputs_are_errors_not_panics() {
    let bytes = encode(&records(0, 1, false), KCompression::None);
    assert!(matches!(
        BatchHeader::parse(&bytes[..60]),
        Err(BatchError::Truncated {
            needed: 61,
            available: 60,
            ..
        })
    ));
    assert!(matches!(
        RawBatch::from_bytes(bytes.slice(..bytes.len() - 1)),
        Err(BatchError::Truncated { .. })
    ));
    let trailing = Bytes::from([&bytes[..], b"x"].concat());
    assert!(matches!(
        RawBatch::from_bytes(trailing),
        Err(BatchError::Malformed { .. })
    ));
    let mut short = [0_u8; 60];
    assert!(header(0).write_to(&mut short).is_err());
    assert_eq!(short, [0; 60], "nothing written");
    let mut long = [7_u8; 70];
    header(1).write_to(&mut long).unwrap();
    assert_eq!(long[..HEADER_LEN], header(1).to_bytes());
    assert_eq!(long[HEADER_LEN..], [7; 9]);
}

// ---- property tests over synthetic batches -------------------------------------------------

fn arb_header() -> impl Strategy<Value = BatchHeader> {
    (
        (
            any::<i64>(),
            49..=i32::MAX,
            any::<i32>(),
            any::<u32>(),
            any::<i16>(),
            any::<i32>(),
        ),
        (
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i16>(),
            any::<i32>(),
            any::<i32>(),
        ),
    )
        .prop_map(
            |((bo, bl, ple, crc, attrs, lod), (bt, mt, pid, pe, bs, rc))| BatchHeader {
                base_offset: bo,
                batch_length: bl,
                partition_leader_epoch: ple,
                magic: MAGIC_V2,
                crc,
                attributes: attrs,
                last_offset_delta: lod,
                base_timestamp: bt,
                max_timestamp: mt,
                producer_id: pid,
                producer_epoch: pe,
                base_sequence: bs,
                record_count: rc,
            },
        )
}

/// Valid synthetic batches (any header values, CRC correct) with 0..200 payload bytes.
fn arb_batch() -> impl Strategy<Value = Vec<u8>> {
    (arb_header(), proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(h, p)| synth(h, &p))
}

proptest! {
    #[test]
    fn header_round_trips(h in arb_header()) {
        let bytes = h.to_bytes();
        prop_assert_eq!(BatchHeader::parse(&bytes), Ok(h));
        let mut buf = [0_u8; HEADER_LEN + 3];
        h.write_to(&mut buf).unwrap();
        prop_assert_eq!(BatchHeader::parse(&buf), Ok(h));
        prop_assert_eq!(h.total_len(), 12 + h.batch_length as usize);
    }

    #[test]
    fn concatenations_split_back_exactly(
        batches in proptest::collection::vec(arb_batch(), 0..8),
        tail in arb_batch(),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(tail.len()); // 0..len: never the complete tail batch
        let blob = Bytes::from([batches.concat(), tail[..cut].to_vec()].concat());
        let split = split_verified(blob).unwrap();
        prop_assert_eq!(split.partial_tail_bytes, cut);
        prop_assert_eq!(split.batches.len(), batches.len());
        for (got, want) in split.batches.iter().zip(&batches) {
            prop_assert_eq!(&got.bytes()[..], &want[..]);
            prop_assert_eq!(&got.header().to_bytes()[..], &want[..HEADER_LEN]);
        }
    }

    #[test]
    fn single_bit_flips_in_crc_range_are_detected(batch in arb_batch(), bit in any::<prop::sample::Index>()) {
        let bytes = Bytes::from(batch);
        let covered_bits = (bytes.len() - 17) * 8; // the CRC field itself plus [21, end)
        let flipped = flip(&bytes, 17 * 8 + bit.index(covered_bits));
        prop_assert!(one_batch(flipped).verify_crc().is_err());
    }

    #[test]
    fn base_offset_and_leader_epoch_are_not_crc_covered(batch in arb_batch(), bit in 0..64_usize) {
        let bytes = Bytes::from(batch);
        let bit = if bit < 32 { bit * 2 } else { 12 * 8 + (bit - 32) }; // some of 0..8, all of 12..16
        prop_assert!(one_batch(flip(&bytes, bit)).verify_crc().is_ok());
    }

    #[test]
    fn with_producer_matches_a_full_recompute(
        batch in arb_batch(),
        (pid, pe, bs, attrs) in (any::<i64>(), any::<i16>(), any::<i32>(), any::<i16>()),
        corrupt in any::<bool>(),
    ) {
        let mut bytes = batch;
        if corrupt {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x80;
        }
        let original = one_batch(Bytes::from(bytes));
        let rewritten = original.with_producer(pid, pe, bs, attrs);
        prop_assert_eq!(rewritten.verify_crc().is_ok(), !corrupt);
        prop_assert_eq!(rewritten.records_section(), original.records_section());
        prop_assert_eq!(&rewritten, &one_batch(rewritten.bytes().clone()));
        if !corrupt {
            prop_assert_eq!(rewritten.header().crc, rewritten.computed_crc());
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = split(Bytes::from(bytes.clone()));
        let _ = split_verified(Bytes::from(bytes.clone()));
        let _ = BatchHeader::parse(&bytes);
        if let Ok(b) = RawBatch::from_bytes(Bytes::from(bytes)) {
            let _ = (b.verify_crc(), b.without_producer(), b.with_base_offset(i64::MAX));
            let _ = (b.header().compression(), b.header().next_offset());
        }
    }

    #[test]
    fn plausible_garbage_never_panics(
        chunks in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..120), 0..=120_i32), 1..5),
    ) {
        // Random bytes with magic 2 and a length that usually fits, to get past the early exits.
        let mut blob = Vec::new();
        for (mut c, len) in chunks {
            if c.len() > 16 {
                c[16] = 2;
                c[8..12].copy_from_slice(&len.to_be_bytes());
            }
            blob.extend(c);
        }
        if let Ok(split) = split(Bytes::from(blob)) {
            for b in &split.batches {
                let _ = (b.verify_crc(), b.with_producer(1, 1, 1, 1).verify_crc());
            }
        }
    }
}
