//! Exact decoding of the records inside a batch, for verification only.
//!
//! The data path never decodes records. `strait verify` and the tests do, to compare what a
//! consumer would see on each side, and they need it exact: headers as an ordered list
//! (duplicate keys and null values kept), keys and values distinguishing null from empty,
//! and absolute offsets and timestamps. kafka-protocol's own decoder keeps headers in a map,
//! which merges duplicate keys, so records are parsed here; decompression is still the
//! crate's.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::{BatchError, BatchHeader, Compression, HEADER_LEN, RawBatch};

/// One record, as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset.
    pub offset: i64,
    /// Absolute timestamp (ms).
    pub timestamp: i64,
    /// Key; `None` is a null key.
    pub key: Option<Bytes>,
    /// Value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers in order, duplicates kept; a `None` value is a null header value.
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// Decodes every record of `batch` (decompressing if needed). Control batches decode too:
/// their single record's key holds the marker type.
pub fn decode(batch: &RawBatch) -> Result<Vec<Record>, BatchError> {
    let h = batch.header();
    let malformed = |reason: String| BatchError::Malformed {
        position: 0,
        base_offset: h.base_offset,
        reason,
    };
    let mut section = Bytes::copy_from_slice(batch.records_section());
    let mut data: Bytes = match h.compression()? {
        Compression::None => Ok(section),
        Compression::Gzip => decompress::<Gzip>(&mut section),
        Compression::Snappy => {
            check_snappy_lengths(&section).and_then(|()| decompress::<Snappy>(&mut section))
        }
        Compression::Lz4 => decompress::<Lz4>(&mut section),
        Compression::Zstd => decompress::<Zstd>(&mut section),
    }
    .map_err(|e| malformed(format!("cannot decompress: {e}")))?;
    let count =
        usize::try_from(h.record_count).map_err(|_| malformed("negative record count".into()))?;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for i in 0..count {
        let r = read_record(&mut data, h.base_offset, h.base_timestamp)
            .ok_or_else(|| malformed(format!("record {i} of {count} is truncated or invalid")))?;
        out.push(r);
    }
    Ok(out)
}

/// Re-encodes a batch whose records have offset gaps (a compacted batch) with contiguous
/// offset deltas `0..n`, for targets that refuse gapped batches (Apache Kafka does, with
/// INVALID_RECORD). Keys, values, headers (order and duplicates kept), timestamps, attributes
/// and the compression codec are unchanged; the compressed bytes and the CRC are new.
/// Returns the new batch and the source offset deltas of the records, in order (what the
/// offset map needs to translate offsets inside the batch).
pub fn reencode_contiguous(batch: &RawBatch) -> Result<(RawBatch, Vec<u32>), BatchError> {
    let h = *batch.header();
    let malformed = |reason: String| BatchError::Malformed {
        position: 0,
        base_offset: h.base_offset,
        reason,
    };
    let records = decode(batch)?;
    let mut plain = BytesMut::new();
    let mut present = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        present.push(
            u32::try_from(r.offset - h.base_offset)
                .map_err(|_| malformed("record offset below the batch base".into()))?,
        );
        write_record(&mut plain, r, i as i64, r.timestamp - h.base_timestamp);
    }
    let mut section = BytesMut::new();
    let codec = h.compression()?;
    // The closure's error type is kafka-protocol's (anyhow), inferred from `compress`; it
    // only borrows `plain`, so it is Copy and serves every arm.
    let put = |b: &mut BytesMut| {
        b.put_slice(&plain);
        Ok(())
    };
    let compressed = match codec {
        Compression::None => {
            <kafka_protocol::compression::None as Compressor<BytesMut>>::compress(&mut section, put)
        }
        Compression::Gzip => <Gzip as Compressor<BytesMut>>::compress(&mut section, put),
        Compression::Snappy => <Snappy as Compressor<BytesMut>>::compress(&mut section, put),
        Compression::Lz4 => <Lz4 as Compressor<BytesMut>>::compress(&mut section, put),
        Compression::Zstd => <Zstd as Compressor<BytesMut>>::compress(&mut section, put),
    };
    compressed.map_err(|e| malformed(format!("cannot recompress: {e}")))?;
    let count = i32::try_from(records.len()).map_err(|_| malformed("too many records".into()))?;
    let header = BatchHeader {
        last_offset_delta: count - 1,
        record_count: count,
        ..h
    };
    Ok((seal(header, &section)?, present))
}

/// A batch of `header` (its length and CRC computed here) and an encoded records section.
pub(crate) fn seal(mut header: BatchHeader, section: &[u8]) -> Result<RawBatch, BatchError> {
    header.batch_length =
        i32::try_from(HEADER_LEN + section.len() - 12).map_err(|_| BatchError::Malformed {
            position: 0,
            base_offset: header.base_offset,
            reason: "batch too large".into(),
        })?;
    let mut out = vec![0u8; HEADER_LEN];
    header.write_to(&mut out)?;
    out.extend_from_slice(section);
    let crc = crate::batch::crc::checksum(&out[crate::batch::CRC_COVERED_FROM..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    RawBatch::from_bytes(Bytes::from(out))
}

/// An uncompressed batch of `count` records with empty values and no keys, all at
/// `timestamp`: what strait writes to a new, empty Kafka target partition to bring its end up
/// to the source's log start before deleting them again (offset alignment).
pub fn filler_batch(count: i32, timestamp: i64) -> Result<RawBatch, BatchError> {
    let mut section = BytesMut::new();
    let empty = Record {
        offset: 0,
        timestamp,
        key: None,
        value: Some(Bytes::new()),
        headers: Vec::new(),
    };
    for i in 0..count {
        write_record(&mut section, &empty, i64::from(i), 0);
    }
    let header = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: count - 1,
        base_timestamp: timestamp,
        max_timestamp: timestamp,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: count,
    };
    seal(header, &section)
}

fn write_record(out: &mut BytesMut, r: &Record, offset_delta: i64, ts_delta: i64) {
    let mut body = BytesMut::new();
    body.put_i8(0); // record attributes: unused in v2
    put_varint(&mut body, ts_delta);
    put_varint(&mut body, offset_delta);
    put_bytes(&mut body, r.key.as_deref());
    put_bytes(&mut body, r.value.as_deref());
    put_varint(&mut body, r.headers.len() as i64);
    for (k, v) in &r.headers {
        put_bytes(&mut body, Some(k));
        put_bytes(&mut body, v.as_deref());
    }
    put_varint(out, body.len() as i64);
    out.put_slice(&body);
}

fn put_bytes(out: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.put_slice(b);
        }
    }
}

fn put_varint(out: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.put_u8(b);
            return;
        }
        out.put_u8(b | 0x80);
    }
}

/// Snappy states each block's uncompressed length up front, and the decoder allocates that
/// much before decoding: a corrupt (or hostile) length with a valid CRC would make strait
/// allocate gigabytes (found by fuzzing `decode`). One snappy element expands at most 3 bytes
/// into 64, so a block claiming more than 32 times its size plus a little is refused as
/// malformed before anything is allocated.
fn check_snappy_lengths(section: &[u8]) -> Result<(), String> {
    // xerial's framing (what Kafka's Java clients write): 8 magic bytes, two 4-byte versions,
    // then blocks of `u32 length, raw snappy`. Anything else is one raw snappy block.
    const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    let plausible = |block: &[u8]| -> Result<(), String> {
        let claimed = snap::raw::decompress_len(block).map_err(|e| format!("snappy: {e}"))?;
        if claimed > block.len().saturating_mul(32).saturating_add(64) {
            return Err(format!(
                "snappy block of {} bytes claims {claimed} bytes uncompressed",
                block.len()
            ));
        }
        Ok(())
    };
    if !section.starts_with(XERIAL_MAGIC) {
        return plausible(section);
    }
    let mut rest = section.get(16..).ok_or("truncated snappy header")?;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("truncated snappy block length")?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|e| e.to_string())?;
        let block = tail.get(..len).ok_or("truncated snappy block")?;
        plausible(block)?;
        rest = &tail[len..];
    }
    Ok(())
}

fn decompress<D: Decompressor<Bytes>>(section: &mut Bytes) -> Result<Bytes, String>
where
    D::Buf: Buf,
{
    D::decompress(section, |b| Ok(b.copy_to_bytes(b.remaining()))).map_err(|e| e.to_string())
}

fn read_record(buf: &mut Bytes, base_offset: i64, base_timestamp: i64) -> Option<Record> {
    let len = usize::try_from(varint(buf)?).ok()?;
    if buf.remaining() < len {
        return None;
    }
    let mut r = buf.split_to(len);
    let _attributes = r.try_get_i8().ok()?;
    let ts_delta = varint(&mut r)?;
    let offset_delta = varint(&mut r)?;
    let key = bytes_field(&mut r)?;
    let value = bytes_field(&mut r)?;
    let n_headers = usize::try_from(varint(&mut r)?).ok()?;
    let mut headers = Vec::with_capacity(n_headers.min(1024));
    for _ in 0..n_headers {
        let k = bytes_field(&mut r)??;
        let v = bytes_field(&mut r)?;
        headers.push((k, v));
    }
    Some(Record {
        offset: base_offset.checked_add(offset_delta)?,
        timestamp: base_timestamp.checked_add(ts_delta)?,
        key,
        value,
        headers,
    })
}

/// A length-prefixed byte field: `Some(None)` for length -1 (null), `None` when malformed.
fn bytes_field(buf: &mut Bytes) -> Option<Option<Bytes>> {
    let len = varint(buf)?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    (buf.remaining() >= len).then(|| Some(buf.split_to(len)))
}

/// A zig-zag varint (up to 64 bits).
fn varint(buf: &mut Bytes) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = buf.try_get_u8().ok()?;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression as KpCompression, Record as KpRecord, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    /// Encodes five records; kafka-protocol may spread them over several batches.
    fn batches(compression: KpCompression) -> Vec<RawBatch> {
        let recs: Vec<KpRecord> = (0..5)
            .map(|i| KpRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 100 + i,
                sequence: -1,
                timestamp: 1_700_000_000_000 + i * 7,
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: (i != 3).then(|| Bytes::from(vec![i as u8; 300])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        crate::batch::split_verified(buf.freeze()).unwrap().batches
    }

    fn decode_all(bs: &[RawBatch]) -> Vec<Record> {
        bs.iter().flat_map(|b| decode(b).unwrap()).collect()
    }

    #[test]
    fn decodes_every_codec() {
        for c in [
            KpCompression::None,
            KpCompression::Gzip,
            KpCompression::Snappy,
            KpCompression::Lz4,
            KpCompression::Zstd,
        ] {
            let recs = decode_all(&batches(c));
            assert_eq!(recs.len(), 5, "{c:?}");
            assert_eq!(recs[4].offset, 104);
            assert_eq!(recs[4].timestamp, 1_700_000_000_028);
            assert_eq!(recs[0].key.as_deref(), Some(&b"k0"[..]));
            assert_eq!(recs[1].key, None);
            assert_eq!(recs[3].value, None);
            assert_eq!(recs[2].value.as_ref().unwrap().len(), 300);
        }
    }

    #[test]
    fn keeps_duplicate_and_null_headers_in_order() {
        // One hand-built uncompressed record with headers [h=1, h=2, n=null, e=""].
        let mut rec = vec![0u8]; // attributes
        rec.extend([0, 0]); // ts delta 0, offset delta 0
        rec.push(1); // key len -1 (zig-zag 1) => null
        rec.extend([2, b'v']); // value len 1
        rec.push(8); // 4 headers
        for (k, v) in [
            (&b"h"[..], Some(&b"1"[..])),
            (b"h", Some(b"2")),
            (b"n", None),
            (b"e", Some(b"")),
        ] {
            rec.push((k.len() * 2) as u8);
            rec.extend_from_slice(k);
            match v {
                None => rec.push(1),
                Some(v) => {
                    rec.push((v.len() * 2) as u8);
                    rec.extend_from_slice(v);
                }
            }
        }
        let mut section = vec![(rec.len() * 2) as u8];
        section.extend(rec);
        let mut data = Bytes::from(section);
        let r = read_record(&mut data, 5, 1000).unwrap();
        assert_eq!(r.offset, 5);
        assert_eq!(r.key, None);
        let hs: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (&k[..], v.as_deref()))
            .collect();
        assert_eq!(
            hs,
            vec![
                (&b"h"[..], Some(&b"1"[..])),
                (b"h", Some(b"2")),
                (b"n", None),
                (b"e", Some(b""))
            ]
        );
    }

    #[test]
    fn truncated_records_are_errors() {
        let b = batches(KpCompression::None).remove(0);
        let bytes = b.bytes().clone();
        let mut cut = BytesMut::from(&bytes[..bytes.len() - 10]);
        // Fix the batch length so the batch parses, then the records inside are short.
        let new_len = (cut.len() - 12) as i32;
        cut[8..12].copy_from_slice(&new_len.to_be_bytes());
        let raw = RawBatch::from_bytes(cut.freeze()).unwrap();
        assert!(decode(&raw).is_err());
    }

    /// A compacted-style batch: records at offsets 100, 105 and 109 only.
    fn gapped(compression: KpCompression) -> RawBatch {
        let recs: Vec<KpRecord> = [0i64, 5, 9]
            .iter()
            .map(|d| KpRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 100 + d,
                // kafka-protocol groups records whose (offset - sequence) agree into one batch.
                sequence: *d as i32 - 1,
                timestamp: 5_000 + d,
                key: Some(Bytes::from(format!("k{d}"))),
                value: None,
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        RawBatch::from_bytes(buf.freeze()).unwrap()
    }

    #[test]
    fn reencoding_a_gapped_batch_keeps_records_and_codec() {
        for c in [
            KpCompression::None,
            KpCompression::Gzip,
            KpCompression::Snappy,
            KpCompression::Lz4,
            KpCompression::Zstd,
        ] {
            let src = gapped(c);
            assert_eq!(
                (src.header().record_count, src.header().last_offset_delta),
                (3, 9)
            );
            let (dense, present) = reencode_contiguous(&src).unwrap();
            dense.verify_crc().unwrap();
            assert_eq!(present, vec![0, 5, 9]);
            let h = dense.header();
            assert_eq!(
                (h.record_count, h.last_offset_delta, h.base_offset),
                (3, 2, 100)
            );
            assert_eq!(
                h.attributes & 7,
                src.header().attributes & 7,
                "{c:?}: same codec"
            );
            assert_eq!(
                (h.base_timestamp, h.max_timestamp),
                (src.header().base_timestamp, src.header().max_timestamp)
            );
            let (before, after) = (decode(&src).unwrap(), decode(&dense).unwrap());
            assert_eq!(
                after.iter().map(|r| r.offset).collect::<Vec<_>>(),
                vec![100, 101, 102]
            );
            for (b, a) in before.iter().zip(&after) {
                assert_eq!(
                    (&b.key, &b.value, &b.headers, b.timestamp),
                    (&a.key, &a.value, &a.headers, a.timestamp)
                );
            }
        }
    }

    #[test]
    fn varints() {
        for v in [
            0i64,
            -1,
            1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut z = ((v << 1) ^ (v >> 63)) as u64;
            let mut enc = Vec::new();
            loop {
                let b = (z & 0x7f) as u8;
                z >>= 7;
                if z == 0 {
                    enc.push(b);
                    break;
                }
                enc.push(b | 0x80);
            }
            assert_eq!(varint(&mut Bytes::from(enc)), Some(v));
        }
        assert_eq!(varint(&mut Bytes::from_static(&[0x80])), None);
    }

    #[test]
    fn filler_batches_are_valid_and_empty() {
        let b = filler_batch(5, 1_700_000_000_000).unwrap();
        b.verify_crc().unwrap();
        let h = b.header();
        assert_eq!(
            (h.record_count, h.last_offset_delta, h.producer_id),
            (5, 4, -1)
        );
        let recs = decode(&b).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert!(recs.iter().all(|r| r.key.is_none()
            && r.value.as_deref() == Some(&b""[..])
            && r.timestamp == 1_700_000_000_000));
    }

    #[test]
    fn snappy_lengths_beyond_what_snappy_can_expand_to_are_refused() {
        // Real data, raw and in xerial framing, passes.
        let data = b"strait strait strait strait strait strait strait".repeat(50);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        check_snappy_lengths(&raw).unwrap();
        let mut xerial = vec![
            0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
        ];
        xerial.extend_from_slice(&u32::try_from(raw.len()).unwrap().to_be_bytes());
        xerial.extend_from_slice(&raw);
        check_snappy_lengths(&xerial).unwrap();
        // A block whose header claims ~4 GB is refused before any allocation.
        let hostile = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x61];
        let err = check_snappy_lengths(&hostile).unwrap_err();
        assert!(err.contains("claims"), "{err}");
        let mut framed = xerial[..16].to_vec();
        framed.extend_from_slice(&7u32.to_be_bytes());
        framed.extend_from_slice(&hostile);
        assert!(
            check_snappy_lengths(&framed)
                .unwrap_err()
                .contains("claims")
        );
        // A truncated frame is malformed, not a panic.
        assert!(check_snappy_lengths(&framed[..20]).is_err());
    }
}
