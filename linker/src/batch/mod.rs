//! Kafka record batches (message format v2), handled as opaque bytes.
//!
//! strait fetches a partition's raw `records` blob from the source cluster, cuts it into
//! batches with [`split`], checks each batch's CRC-32C ([`RawBatch::verify_crc`]), optionally
//! rewrites the producer fields of the header ([`RawBatch::with_producer`],
//! [`RawBatch::without_producer`]), and produces the same bytes to the target cluster.
//!
//! # Layout
//!
//! Every batch starts with a fixed 61-byte header; all integers are big-endian:
//!
//! ```text
//!  0  baseOffset            int64   ┐ "log overhead": the first 12 bytes
//!  8  batchLength           int32   ┘ total batch size = 12 + batchLength
//! 12  partitionLeaderEpoch  int32     NOT covered by the CRC
//! 16  magic                 int8      always 2 here (v0/v1 message sets also keep it at 16)
//! 17  crc                   uint32    CRC-32C (Castagnoli) of bytes [21 .. end of batch]
//! 21  attributes            int16   ┐
//! 23  lastOffsetDelta       int32   │
//! 27  baseTimestamp         int64   │
//! 35  maxTimestamp          int64   │ covered by the CRC
//! 43  producerId            int64   │
//! 51  producerEpoch         int16   │
//! 53  baseSequence          int32   │
//! 57  recordCount           int32   │
//! 61  records …                     ┘ possibly compressed as a whole, per `attributes`
//! ```
//!
//! The CRC deliberately leaves out `baseOffset`, `batchLength`, `partitionLeaderEpoch` and
//! `magic`: a broker assigns offsets and stamps its leader epoch on append without recomputing
//! the checksum. So a corrupted byte in `[0, 21)` is *not* detected by [`RawBatch::verify_crc`];
//! a broken length or magic is caught structurally by [`split`] instead, while a flipped bit in
//! the base offset or leader epoch goes unnoticed (the target broker overwrites both anyway).
//!
//! # Why we never decompress
//!
//! Everything strait needs (offsets, counts, producer identity, transactional and control
//! flags) sits in the uncompressed header. Leaving the records section untouched means no
//! codec cost, no re-compression that could change sizes or bytes, and a byte-for-byte mirror:
//! keys, values, headers and per-record timestamps on the target are exactly the source's.
//!
//! # Partial tails
//!
//! A fetch response is cut at the requested byte limit, not at a batch boundary, so its last
//! batch may be incomplete: fewer than 12 bytes remain, or fewer than `12 + batchLength`.
//! [`split`] stops there and reports the size in [`Split::partial_tail_bytes`]; the caller
//! fetches again from [`Split::next_offset`]. If a split yields no batch but a partial tail,
//! the first batch is larger than the fetch limit and the caller must raise it.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

pub(crate) mod crc;
#[cfg(test)]
mod tests;

/// Size of the fixed record batch v2 header, in bytes.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s coverage (baseOffset + batchLength): total = 12 + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// First byte covered by the CRC; the CRC runs from here to the end of the batch.
pub const CRC_COVERED_FROM: usize = 21;
/// The only message format strait understands.
pub const MAGIC_V2: i8 = 2;

/// Byte offsets of the header fields (see the module docs).
mod off {
    pub(super) const BASE_OFFSET: usize = 0;
    pub(super) const BATCH_LENGTH: usize = 8;
    pub(super) const PARTITION_LEADER_EPOCH: usize = 12;
    pub(super) const MAGIC: usize = 16;
    pub(super) const CRC: usize = 17;
    pub(super) const ATTRIBUTES: usize = 21;
    pub(super) const LAST_OFFSET_DELTA: usize = 23;
    pub(super) const BASE_TIMESTAMP: usize = 27;
    pub(super) const MAX_TIMESTAMP: usize = 35;
    pub(super) const PRODUCER_ID: usize = 43;
    pub(super) const PRODUCER_EPOCH: usize = 51;
    pub(super) const BASE_SEQUENCE: usize = 53;
    pub(super) const RECORD_COUNT: usize = 57;
}

/// Bits of the `attributes` field.
pub mod attr {
    /// Bits 0-2: compression codec of the records section.
    pub const COMPRESSION_MASK: i16 = 0b0000_0111;
    /// Bit 3: timestamps are LogAppendTime (set by the broker) rather than CreateTime.
    pub const TIMESTAMP_LOG_APPEND: i16 = 1 << 3;
    /// Bit 4: the batch belongs to a transaction.
    pub const TRANSACTIONAL: i16 = 1 << 4;
    /// Bit 5: the batch holds control records (transaction commit/abort markers).
    pub const CONTROL: i16 = 1 << 5;
    /// Bit 6: the batch carries a delete horizon (set by log compaction).
    pub const DELETE_HORIZON: i16 = 1 << 6;
}

/// Why a blob or batch could not be handled. Positions are byte offsets in the input blob.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// Fewer bytes than a complete header or batch needs.
    #[error("record batch truncated at byte {position}: need {needed} bytes, have {available}")]
    Truncated {
        /// Where the incomplete batch starts.
        position: usize,
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The bytes cannot be a record batch (e.g. an impossible `batchLength`).
    #[error("malformed record batch at byte {position} (base offset {base_offset}): {reason}")]
    Malformed {
        /// Where the batch starts.
        position: usize,
        /// The batch's base offset as read (may itself be garbage).
        base_offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// Anything but message format v2.
    #[error(
        "record batch at byte {position} (base offset {base_offset}) has magic {magic}: {}",
        magic_hint(*.magic)
    )]
    UnsupportedMagic {
        /// The magic byte found.
        magic: i8,
        /// Base offset of the offending batch or message.
        base_offset: i64,
        /// Where it starts.
        position: usize,
    },
    /// The stored CRC does not match the bytes: corruption in transit or at rest.
    #[error(
        "CRC-32C mismatch in record batch at base offset {base_offset}: \
         stored {stored:#010x}, computed {computed:#010x}"
    )]
    CrcMismatch {
        /// Base offset of the corrupt batch.
        base_offset: i64,
        /// CRC found in the header.
        stored: u32,
        /// CRC of the bytes actually present.
        computed: u32,
    },
    /// Compression bits 5, 6 or 7, which no Kafka version defines.
    #[error("unknown compression codec {codec} in record batch at base offset {base_offset}")]
    UnknownCompression {
        /// The value of attribute bits 0-2.
        codec: u8,
        /// Base offset of the batch.
        base_offset: i64,
    },
}

fn magic_hint(magic: i8) -> &'static str {
    match magic {
        0 | 1 => "message format v0/v1 is not supported; upgrade the topic's message format",
        _ => "unknown message format; only record batch v2 is supported",
    }
}

/// Compression codec of a batch's records section (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Records are stored as they are.
    None,
    /// gzip.
    Gzip,
    /// Snappy (xerial framing).
    Snappy,
    /// LZ4 frame.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// The 61-byte header of a record batch v2, field by field.
///
/// Fields are public and unchecked: this is a plain view of the wire bytes. [`BatchHeader::parse`]
/// only insists on what is needed to find the batch's end (magic 2, a sane `batchLength`);
/// everything else is opaque to a mirror and passed through as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    /// Offset of the first record; assigned by the broker that appends the batch.
    pub base_offset: i64,
    /// Bytes after this field: the batch is `12 + batch_length` bytes long.
    pub batch_length: i32,
    /// Leader epoch of the broker that appended the batch.
    pub partition_leader_epoch: i32,
    /// Message format version, 2.
    pub magic: i8,
    /// CRC-32C over bytes `[21, end)`, as stored.
    pub crc: u32,
    /// Compression, timestamp type and transactional/control/delete-horizon flags.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `bytes`, which may hold more than the header.
    ///
    /// Errors: [`BatchError::UnsupportedMagic`] for anything but v2 (checked first, since
    /// legacy messages can be shorter than a v2 header), [`BatchError::Truncated`] for fewer than
    /// [`HEADER_LEN`] bytes, [`BatchError::Malformed`] for a `batchLength` shorter than the header.
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        check_prefix(bytes, 0)?;
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(BatchError::Truncated {
                position: 0,
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        };
        Ok(Self::decode(h))
    }

    /// Decodes the fields without any validation.
    fn decode(h: &[u8; HEADER_LEN]) -> Self {
        Self {
            base_offset: i64::from_be_bytes(field(h, off::BASE_OFFSET)),
            batch_length: i32::from_be_bytes(field(h, off::BATCH_LENGTH)),
            partition_leader_epoch: i32::from_be_bytes(field(h, off::PARTITION_LEADER_EPOCH)),
            magic: i8::from_be_bytes(field(h, off::MAGIC)),
            crc: u32::from_be_bytes(field(h, off::CRC)),
            attributes: i16::from_be_bytes(field(h, off::ATTRIBUTES)),
            last_offset_delta: i32::from_be_bytes(field(h, off::LAST_OFFSET_DELTA)),
            base_timestamp: i64::from_be_bytes(field(h, off::BASE_TIMESTAMP)),
            max_timestamp: i64::from_be_bytes(field(h, off::MAX_TIMESTAMP)),
            producer_id: i64::from_be_bytes(field(h, off::PRODUCER_ID)),
            producer_epoch: i16::from_be_bytes(field(h, off::PRODUCER_EPOCH)),
            base_sequence: i32::from_be_bytes(field(h, off::BASE_SEQUENCE)),
            record_count: i32::from_be_bytes(field(h, off::RECORD_COUNT)),
        }
    }

    /// The header as wire bytes, every field written as it is (the CRC is not recomputed).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        // In wire order; the sizes add up to HEADER_LEN (checked by the round-trip tests).
        let fields: [&[u8]; 13] = [
            &self.base_offset.to_be_bytes(),
            &self.batch_length.to_be_bytes(),
            &self.partition_leader_epoch.to_be_bytes(),
            &self.magic.to_be_bytes(),
            &self.crc.to_be_bytes(),
            &self.attributes.to_be_bytes(),
            &self.last_offset_delta.to_be_bytes(),
            &self.base_timestamp.to_be_bytes(),
            &self.max_timestamp.to_be_bytes(),
            &self.producer_id.to_be_bytes(),
            &self.producer_epoch.to_be_bytes(),
            &self.base_sequence.to_be_bytes(),
            &self.record_count.to_be_bytes(),
        ];
        let mut h = [0; HEADER_LEN];
        let mut rest = &mut h[..];
        for field in fields {
            let (dst, tail) = rest.split_at_mut(field.len());
            dst.copy_from_slice(field);
            rest = tail;
        }
        h
    }

    /// Serializes into the first [`HEADER_LEN`] bytes of `out`, leaving the rest untouched.
    /// Returns [`BatchError::Truncated`] (and writes nothing) if `out` is shorter.
    pub fn write_to(&self, out: &mut [u8]) -> Result<(), BatchError> {
        let available = out.len();
        let h = out
            .first_chunk_mut::<HEADER_LEN>()
            .ok_or(BatchError::Truncated {
                position: 0,
                needed: HEADER_LEN,
                available,
            })?;
        *h = self.to_bytes();
        Ok(())
    }

    /// The codec of the records section; [`BatchError::UnknownCompression`] for values 5-7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes & attr::COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            // The mask leaves 5..=7, which fits in a u8.
            other => Err(BatchError::UnknownCompression {
                codec: other as u8,
                base_offset: self.base_offset,
            }),
        }
    }

    /// Whether the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & attr::TRANSACTIONAL != 0
    }

    /// Whether the batch holds control records (commit/abort markers), not user data.
    pub fn is_control(&self) -> bool {
        self.attributes & attr::CONTROL != 0
    }

    /// Whether timestamps are LogAppendTime; otherwise they are CreateTime.
    pub fn timestamp_type_log_append(&self) -> bool {
        self.attributes & attr::TIMESTAMP_LOG_APPEND != 0
    }

    /// Whether log compaction stamped a delete horizon on the batch.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & attr::DELETE_HORIZON != 0
    }

    /// Offset of the last record. Wraps on overflow (as Kafka's Java code does) rather than
    /// panicking; only a corrupt header can get there.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The offset right after this batch: where the next fetch resumes.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// Size of the whole batch in bytes, `12 + batchLength` (a negative length counts as 0).
    pub fn total_len(&self) -> usize {
        let body = usize::try_from(self.batch_length).unwrap_or(0);
        LOG_OVERHEAD.saturating_add(body)
    }
}

/// Copies `N` bytes of `h` starting at `at`; callers pass constant in-range offsets.
fn field<const N: usize>(h: &[u8; HEADER_LEN], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&h[at..at + N]);
    out
}

/// Validates what the first bytes of a batch allow: the magic (if 17+ bytes) and the
/// `batchLength` (if 12+ bytes). Returns the batch's total length once it is known.
///
/// The magic is checked before the length because a legacy message's size field means
/// something else and may well look "too short"; the format error is the one worth reporting.
fn check_prefix(bytes: &[u8], position: usize) -> Result<Option<usize>, BatchError> {
    let base_offset = bytes
        .first_chunk::<8>()
        .map_or(-1, |b| i64::from_be_bytes(*b));
    if let Some(&magic) = bytes.get(off::MAGIC) {
        let magic = magic as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic {
                magic,
                base_offset,
                position,
            });
        }
    }
    let Some(len) = bytes.get(off::BATCH_LENGTH..LOG_OVERHEAD) else {
        return Ok(None);
    };
    let mut raw = [0; 4];
    raw.copy_from_slice(len);
    let batch_length = i32::from_be_bytes(raw);
    match usize::try_from(batch_length) {
        Ok(body) if body >= HEADER_LEN - LOG_OVERHEAD => {
            Ok(Some(LOG_OVERHEAD.saturating_add(body)))
        }
        _ => Err(BatchError::Malformed {
            position,
            base_offset,
            reason: format!(
                "batchLength {batch_length} is smaller than the {} bytes of header it must cover",
                HEADER_LEN - LOG_OVERHEAD
            ),
        }),
    }
}

/// One complete record batch: a zero-copy slice of the fetched blob plus its parsed header.
///
/// Invariant: `bytes.len() == header.total_len() >= HEADER_LEN` and `header` is what the bytes
/// say. The CRC is *not* implied to be valid; call [`RawBatch::verify_crc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBatch {
    header: BatchHeader,
    bytes: Bytes,
}

impl RawBatch {
    /// Wraps exactly one complete batch (no CRC check). [`BatchError::Truncated`] if `bytes`
    /// ends early, [`BatchError::Malformed`] if it holds more than the batch.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, BatchError> {
        let header = BatchHeader::parse(&bytes)?;
        let needed = header.total_len();
        if bytes.len() < needed {
            return Err(BatchError::Truncated {
                position: 0,
                needed,
                available: bytes.len(),
            });
        }
        if bytes.len() > needed {
            return Err(BatchError::Malformed {
                position: 0,
                base_offset: header.base_offset,
                reason: format!("{} bytes follow the end of the batch", bytes.len() - needed),
            });
        }
        Ok(Self { header, bytes })
    }

    /// The parsed header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch, header included, as it goes on the wire.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The whole batch, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The (possibly compressed) records after the header, exactly as fetched.
    pub fn records_section(&self) -> &[u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or_default()
    }

    /// CRC-32C of the bytes actually present in `[21, end)`.
    pub fn computed_crc(&self) -> u32 {
        crc::checksum(self.bytes.get(CRC_COVERED_FROM..).unwrap_or_default())
    }

    /// Checks the stored CRC against the bytes. Only bytes `[21, end)` are covered: the base
    /// offset, batch length, leader epoch and magic are not (see the module docs).
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let computed = self.computed_crc();
        if computed == self.header.crc {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch {
                base_offset: self.header.base_offset,
                stored: self.header.crc,
                computed,
            })
        }
    }

    /// [`verify_crc`](Self::verify_crc), passing the batch on when its CRC holds.
    pub fn checked(self) -> Result<RawBatch, BatchError> {
        self.verify_crc()?;
        Ok(self)
    }

    /// A copy with new producer fields and attributes, and a CRC to match. The records section
    /// stays byte-identical.
    ///
    /// The compression bits (0-2) of `attributes` are ignored and kept from the original: the
    /// records are not re-encoded, so claiming another codec would make them unreadable.
    ///
    /// If the original's CRC was already wrong, the copy's is wrong by the same amount: the
    /// rewrite must never turn a corrupt batch into one that verifies. Verify first if you need
    /// to know.
    pub fn with_producer(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        attributes: i16,
    ) -> RawBatch {
        self.with_header(self.rewritten_header(
            self.header.base_offset,
            producer_id,
            producer_epoch,
            base_sequence,
            attributes,
        ))
    }

    /// The batch as a producer sends it, in at most one copy: base offset 0, the given
    /// producer identity `(id, epoch, base sequence)` or none (all -1), and the transactional
    /// bit cleared. The records section is unchanged; the CRC is recomputed only when a
    /// covered field changes (never for a batch that already carries exactly that identity).
    pub fn for_produce(&self, producer: Option<(i64, i16, i32)>) -> RawBatch {
        let header = self.produce_header(producer);
        if header == self.header {
            return self.clone();
        }
        self.with_header(header)
    }

    /// [`for_produce`](Self::for_produce) as two chunks, without copying the records: the
    /// header, written into `headers` and split off from it, then the records section as
    /// fetched (a slice of the same buffer). `headers` must be empty: the headers of one
    /// write share its allocation, one after the other.
    pub fn produce_chunks(
        &self,
        producer: Option<(i64, i16, i32)>,
        headers: &mut BytesMut,
    ) -> [Bytes; 2] {
        debug_assert!(headers.is_empty(), "headers holds an earlier header");
        headers.extend_from_slice(&self.produce_header(producer).to_bytes());
        [
            headers.split().freeze(),
            self.bytes.slice(HEADER_LEN.min(self.bytes.len())..),
        ]
    }

    /// The header [`for_produce`](Self::for_produce) sends: the CRC is recomputed only when a
    /// covered field changes.
    fn produce_header(&self, producer: Option<(i64, i16, i32)>) -> BatchHeader {
        let (id, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        let h = &self.header;
        let attributes = h.attributes & !attr::TRANSACTIONAL;
        if (
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.attributes,
        ) == (id, epoch, seq, attributes)
        {
            // The base offset is not CRC-covered.
            return BatchHeader {
                base_offset: 0,
                ..self.header
            };
        }
        self.rewritten_header(0, id, epoch, seq, attributes)
    }

    fn rewritten_header(
        &self,
        base_offset: i64,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        attributes: i16,
    ) -> BatchHeader {
        let mut header = self.header;
        header.base_offset = base_offset;
        header.producer_id = producer_id;
        header.producer_epoch = producer_epoch;
        header.base_sequence = base_sequence;
        header.attributes = (attributes & !attr::COMPRESSION_MASK)
            | (self.header.attributes & attr::COMPRESSION_MASK);
        // The new CRC follows from the stored one and the change in the covered header
        // bytes, without reading the records (see `crc`). Starting from the *stored* CRC
        // carries any existing mismatch over (none for a sound batch) instead of certifying
        // bytes nobody checked. The CRC field itself lies outside [21, end), so its
        // placeholder value in `to_bytes` does not matter.
        let old = self
            .bytes
            .get(CRC_COVERED_FROM..HEADER_LEN)
            .unwrap_or_default();
        let new = header.to_bytes();
        header.crc = crc::after_header_change(
            self.header.crc,
            old,
            &new[CRC_COVERED_FROM..],
            self.records_section().len(),
        );
        header
    }

    /// A copy with the producer identity removed: producerId, producerEpoch and baseSequence set
    /// to -1 and the transactional bit cleared, so the target treats it as a plain
    /// non-idempotent write. Targets reject producer ids they did not issue.
    ///
    /// Control batches (transaction markers) are left as control batches; they make no sense
    /// without a producer, and callers should not produce them at all.
    pub fn without_producer(&self) -> RawBatch {
        self.with_producer(-1, -1, -1, self.header.attributes & !attr::TRANSACTIONAL)
    }

    /// A copy with a new base offset. The base offset is not covered by the CRC, so the CRC
    /// and every other byte stay as they were.
    pub fn with_base_offset(&self, base_offset: i64) -> RawBatch {
        let mut header = self.header;
        header.base_offset = base_offset;
        self.with_header(header)
    }

    /// A copy with `header` in front of the unchanged records section.
    fn with_header(&self, header: BatchHeader) -> RawBatch {
        let mut buf = BytesMut::with_capacity(self.bytes.len());
        buf.extend_from_slice(&header.to_bytes());
        buf.extend_from_slice(self.records_section());
        RawBatch {
            header,
            bytes: buf.freeze(),
        }
    }
}

/// Result of [`split`]: the complete batches, in order, and the size of an incomplete last one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Complete batches, zero-copy slices of the input blob.
    pub batches: Vec<RawBatch>,
    /// Bytes at the end of the blob that do not form a complete batch (0 if none).
    pub partial_tail_bytes: usize,
}

impl Split {
    /// Where the next fetch should start: just past the last complete batch, if any.
    pub fn next_offset(&self) -> Option<i64> {
        self.batches.last().map(|b| b.header.next_offset())
    }
}

/// Cuts a fetched `records` blob into batches without copying and without checking CRCs
/// (use [`split_verified`] or [`RawBatch::verify_crc`] for that).
///
/// An incomplete batch at the end is tolerated and reported in [`Split::partial_tail_bytes`].
/// Errors: [`BatchError::UnsupportedMagic`] for any v0/v1 (or unknown) format,
/// [`BatchError::Malformed`] for a negative or too small `batchLength`.
pub fn split(blob: Bytes) -> Result<Split, BatchError> {
    let mut out = Split::default();
    let mut pos = 0;
    while let Some(rest) = blob.get(pos..).filter(|rest| !rest.is_empty()) {
        let total = match check_prefix(rest, pos)? {
            Some(total) if total <= rest.len() => total,
            // Length unknown (< 12 bytes) or not all there: the partial tail.
            _ => {
                out.partial_tail_bytes = rest.len();
                break;
            }
        };
        let bytes = blob.slice(pos..pos + total);
        // check_prefix guaranteed magic 2 and total >= HEADER_LEN, so this always succeeds.
        let header = match bytes.first_chunk::<HEADER_LEN>() {
            Some(h) => BatchHeader::decode(h),
            None => {
                return Err(BatchError::Truncated {
                    position: pos,
                    needed: HEADER_LEN,
                    available: total,
                });
            }
        };
        out.batches.push(RawBatch { header, bytes });
        pos += total;
    }
    Ok(out)
}

/// [`split`], then [`RawBatch::verify_crc`] on every complete batch; the first mismatch wins.
pub fn split_verified(blob: Bytes) -> Result<Split, BatchError> {
    let split = split(blob)?;
    split.batches.iter().try_for_each(RawBatch::verify_crc)?;
    Ok(split)
}
