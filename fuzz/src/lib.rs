//! The invariants fuzzed on strait's raw record-batch handling (`strait_linker::batch`, and
//! `strait_linker::records::decode` as `strait verify` uses it), for any input bytes taken as
//! the `records` blob of a fetch response:
//!
//! * nothing panics (split, header parse, CRC check, producer rewrite, record decoding);
//! * [`split`](batch::split) accounts for every byte: the batches' lengths plus the partial
//!   tail add up to the input, every batch's bytes are its own, its header re-encodes to them;
//! * [`split_verified`](batch::split_verified) succeeds exactly when `split` does and every
//!   batch's CRC verifies;
//! * rewriting the producer fields keeps the length and the records section, and never turns
//!   a batch whose CRC fails into one that verifies (nor the reverse);
//! * a new base offset changes only the first 8 bytes.
//!
//! Used by the libFuzzer target (`fuzz_targets/raw_batch.rs`) and the stable replayer
//! (`src/bin/replay.rs`).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use strait_linker::batch::{self, BatchHeader, HEADER_LEN, RawBatch, attr};
use strait_linker::records;

/// Checks every invariant on `data`; panics when one is broken.
pub fn check(data: &[u8]) {
    let blob = Bytes::copy_from_slice(data);
    let split = batch::split(blob.clone());
    let verified = batch::split_verified(blob.clone());
    match &split {
        Ok(split) => {
            let mut position = 0;
            for b in &split.batches {
                check_batch(b, &data[position..position + b.bytes().len()]);
                position += b.bytes().len();
            }
            assert_eq!(
                position + split.partial_tail_bytes,
                data.len(),
                "split lost bytes"
            );
            let all_verify = split.batches.iter().all(|b| b.verify_crc().is_ok());
            assert_eq!(verified.is_ok(), all_verify, "split_verified disagrees");
            if let Some(last) = split.batches.last() {
                assert_eq!(split.next_offset(), Some(last.header().next_offset()));
            }
        }
        Err(e) => {
            assert!(verified.is_err(), "split failed ({e}) but split_verified did not");
            let _ = e.to_string();
        }
    }
    // The whole input as exactly one batch.
    if let Ok(one) = RawBatch::from_bytes(blob) {
        assert_eq!(one.bytes().len(), data.len());
        let split = split.expect("a whole batch splits");
        assert_eq!(split.batches.len(), 1);
        assert_eq!(split.batches[0], one);
    }
    let _ = BatchHeader::parse(data);
}

fn check_batch(b: &RawBatch, raw: &[u8]) {
    let h = *b.header();
    assert_eq!(b.bytes().as_ref(), raw, "a batch's bytes are not its own");
    assert_eq!(h.total_len(), raw.len());
    assert!(raw.len() >= HEADER_LEN);
    assert_eq!(h.to_bytes()[..], raw[..HEADER_LEN], "header does not round-trip");
    assert_eq!(BatchHeader::parse(raw).as_ref(), Ok(&h));
    assert_eq!(b.records_section(), &raw[HEADER_LEN..]);
    let sound = b.verify_crc().is_ok();
    assert_eq!(sound, b.computed_crc() == h.crc);
    let _ = h.compression();
    let _ = (h.is_transactional(), h.is_control(), h.last_offset(), h.next_offset());

    let rewritten = b.with_producer(
        h.producer_id.wrapping_add(1),
        h.producer_epoch ^ 1,
        h.base_sequence.wrapping_sub(1),
        h.attributes ^ attr::TRANSACTIONAL,
    );
    let stripped = b.without_producer();
    for copy in [&rewritten, &stripped] {
        assert_eq!(copy.bytes().len(), raw.len());
        assert_eq!(copy.records_section(), b.records_section());
        assert_eq!(
            copy.verify_crc().is_ok(),
            sound,
            "a producer rewrite changed whether the CRC verifies"
        );
        assert_eq!(
            copy.header().attributes & attr::COMPRESSION_MASK,
            h.attributes & attr::COMPRESSION_MASK
        );
    }
    let moved = b.with_base_offset(h.base_offset.wrapping_add(7));
    assert_eq!(moved.bytes()[8..], raw[8..]);

    // What `strait verify` does with a batch; decompression included.
    if let Ok(records) = records::decode(b) {
        for r in &records {
            let _ = (r.offset, r.timestamp, r.key.as_ref(), r.value.as_ref());
        }
        let _ = records::reencode_contiguous(b);
    }
}

/// Valid inputs to start from: plain, compressed with every codec, transactional, control,
/// several batches and a partial tail.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let filler = |n| records::filler_batch(n, 1_700_000_000_000).expect("filler batch");
    let one = filler(1);
    let five = filler(5);
    out.push(("plain-1".to_owned(), one.bytes().to_vec()));
    out.push(("plain-5".to_owned(), five.bytes().to_vec()));
    let txn = five.with_producer(42, 3, 0, attr::TRANSACTIONAL);
    out.push(("transactional".to_owned(), txn.bytes().to_vec()));
    let control = one.with_producer(42, 3, -1, attr::TRANSACTIONAL | attr::CONTROL);
    out.push(("control".to_owned(), control.bytes().to_vec()));
    let mut several = Vec::new();
    for b in [&one, &five.with_base_offset(1), &txn.with_base_offset(6)] {
        several.extend_from_slice(b.bytes());
    }
    out.push(("three-batches".to_owned(), several.clone()));
    several.extend_from_slice(&five.bytes()[..30]);
    out.push(("partial-tail".to_owned(), several));
    for (codec, name) in [(1i16, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")] {
        out.push((format!("compressed-{name}"), compressed(&five, codec)));
    }
    out
}

/// `batch` with its records section compressed with `codec` (attribute bits 0-2).
fn compressed(batch: &RawBatch, codec: i16) -> Vec<u8> {
    let plain = batch.records_section().to_vec();
    let put = |b: &mut BytesMut| {
        b.put_slice(&plain);
        Ok(())
    };
    let mut section = BytesMut::new();
    match codec {
        1 => <Gzip as Compressor<BytesMut>>::compress(&mut section, put),
        2 => <Snappy as Compressor<BytesMut>>::compress(&mut section, put),
        3 => <Lz4 as Compressor<BytesMut>>::compress(&mut section, put),
        _ => <Zstd as Compressor<BytesMut>>::compress(&mut section, put),
    }
    .expect("compresses");
    let mut header = *batch.header();
    header.attributes = (header.attributes & !attr::COMPRESSION_MASK) | codec;
    header.batch_length = i32::try_from(HEADER_LEN + section.len() - 12).expect("small");
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(&section);
    let crc = crc32c::crc32c(&out[batch::CRC_COVERED_FROM..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    let sealed = RawBatch::from_bytes(Bytes::from(out)).expect("a whole batch");
    sealed.verify_crc().expect("the seed's CRC is right");
    let decoded = records::decode(&sealed).expect("the seed decodes");
    assert_eq!(decoded.len(), usize::try_from(header.record_count).unwrap());
    sealed.bytes().to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_hold_the_invariants() {
        for (name, data) in super::seeds() {
            super::check(&data);
            assert!(!data.is_empty(), "{name}");
        }
    }
}
