//! The body of a Produce request, encoded by hand so that record batches are never copied
//! into it: each partition's records are chunks of their own in the request's frame, written
//! to the socket with one vectored write.
//!
//! ```text
//!  mirror: batch header (61 B, rewritten) + records section (a slice of the fetch response)
//!        └─► ProduceRecords [hdr₁, rec₁, hdr₂, rec₂, …]   (no copy of any record)
//!  produce_body(items, version) ─► [fields, hdr₁, rec₁, …, fields, hdr, rec, …, tags]
//!  Connection: [length + request header] ++ body ─► write_vectored
//! ```
//!
//! kafka-protocol encodes a request into one buffer, which copied every batch once more (up
//! to 10% of strait's CPU samples in a copy to tansu). Only Produce v3-v9 is encoded here
//! (strait caps Produce at v9, see `connection::version_cap`); the tests compare every byte
//! with kafka-protocol's encoding of the same request at every one of those versions.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// One partition's records field in a Produce request: chunks that, joined, are the record
/// batches exactly as they will be stored. Kept apart so that a batch's rewritten header and
/// its records section, a slice of the buffer it was fetched into, travel without being
/// copied together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceRecords {
    chunks: Vec<Bytes>,
    len: usize,
}

impl ProduceRecords {
    /// Empty (no batch yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `chunk` (empty chunks are dropped).
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push(chunk);
        }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// The records as one buffer (a copy unless there is at most one chunk): for checks and
    /// tests, not the data path.
    pub fn to_bytes(&self) -> Bytes {
        match self.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = BytesMut::with_capacity(self.len);
                for c in many {
                    out.extend_from_slice(c);
                }
                out.freeze()
            }
        }
    }
}

impl From<Bytes> for ProduceRecords {
    fn from(b: Bytes) -> Self {
        let mut r = Self::new();
        r.push(b);
        r
    }
}

/// First flexible (compact, tagged) version of Produce.
const FIRST_FLEXIBLE: i16 = 9;

/// Versions [`produce_body`] encodes.
pub(super) const VERSIONS: std::ops::RangeInclusive<i16> = 3..=9;

/// The body of a Produce request at `version` (in [`VERSIONS`]) as chunks: the fields
/// between records in small buffers, every partition's records as given. Partitions are
/// grouped by topic (topics in name order, partitions in the order given), no
/// transactional id.
pub(super) fn produce_body(
    items: Vec<(String, i32, ProduceRecords)>,
    acks: i16,
    timeout: Duration,
    version: i16,
) -> Vec<Bytes> {
    debug_assert!(VERSIONS.contains(&version), "Produce v{version}");
    let flexible = version >= FIRST_FLEXIBLE;
    let mut topics: BTreeMap<String, Vec<(i32, ProduceRecords)>> = BTreeMap::new();
    for (topic, partition, records) in items {
        topics.entry(topic).or_default().push((partition, records));
    }
    let mut out = Vec::new();
    let mut fields = BytesMut::with_capacity(64);
    // transactional_id: null
    if flexible {
        put_uvarint(&mut fields, 0);
    } else {
        fields.put_i16(-1);
    }
    fields.put_i16(acks);
    fields.put_i32(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX));
    put_len(&mut fields, topics.len(), flexible);
    for (name, partitions) in topics {
        if flexible {
            put_uvarint(&mut fields, name.len() as u64 + 1);
        } else {
            fields.put_i16(i16::try_from(name.len()).unwrap_or(i16::MAX));
        }
        fields.extend_from_slice(name.as_bytes());
        put_len(&mut fields, partitions.len(), flexible);
        for (partition, records) in partitions {
            fields.put_i32(partition);
            if flexible {
                put_uvarint(&mut fields, records.len() as u64 + 1);
            } else {
                fields.put_i32(i32::try_from(records.len()).unwrap_or(i32::MAX));
            }
            out.push(fields.split().freeze());
            out.extend(records.chunks);
            if flexible {
                put_uvarint(&mut fields, 0); // the partition's tagged fields
            }
        }
        if flexible {
            put_uvarint(&mut fields, 0); // the topic's tagged fields
        }
    }
    if flexible {
        put_uvarint(&mut fields, 0); // the request's tagged fields
    }
    out.push(fields.freeze());
    out
}

/// An array's length: INT32, or (flexible) UNSIGNED_VARINT of length + 1.
fn put_len(buf: &mut BytesMut, len: usize, flexible: bool) {
    if flexible {
        put_uvarint(buf, len as u64 + 1);
    } else {
        buf.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ProduceRequest;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::Encodable;

    use super::*;

    fn joined(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    /// The same request built with kafka-protocol (the encoding strait used before).
    fn reference(
        items: &[(String, i32, ProduceRecords)],
        acks: i16,
        timeout_ms: i32,
    ) -> ProduceRequest {
        let mut topics: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
        for (t, p, r) in items {
            topics.entry(t.clone()).or_default().push(
                PartitionProduceData::default()
                    .with_index(*p)
                    .with_records(Some(r.to_bytes())),
            );
        }
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicProduceData::default()
                            .with_name(crate::client::topic_name(&t))
                            .with_partition_data(ps)
                    })
                    .collect(),
            )
    }

    fn records(seed: u8, chunk_lens: &[usize]) -> ProduceRecords {
        let mut r = ProduceRecords::new();
        for (i, n) in chunk_lens.iter().enumerate() {
            r.push(Bytes::from(vec![seed.wrapping_add(i as u8); *n]));
        }
        r
    }

    #[test]
    fn every_version_encodes_exactly_as_kafka_protocol() {
        let long_name = "t".repeat(200); // a name length over one varint byte
        let cases: Vec<Vec<(String, i32, ProduceRecords)>> = vec![
            vec![],
            vec![("a".into(), 0, records(1, &[61, 16_323]))],
            vec![
                ("b".into(), 3, records(2, &[61, 100, 61, 5_000])),
                ("a".into(), 7, records(3, &[61, 1])),
                ("b".into(), 1, records(4, &[200_000])),
                (long_name, 0, records(5, &[61, 127, 61, 128])),
            ],
            (0..300)
                .map(|p| ("many".to_owned(), p, records(p as u8, &[61, 40])))
                .collect(),
        ];
        for version in VERSIONS {
            for items in &cases {
                for (acks, timeout_ms) in [(-1i16, 30_000i32), (1, 0), (0, 120_000)] {
                    let mut want = BytesMut::new();
                    reference(items, acks, timeout_ms)
                        .encode(&mut want, version)
                        .unwrap();
                    let got = produce_body(
                        items.clone(),
                        acks,
                        Duration::from_millis(timeout_ms as u64),
                        version,
                    );
                    assert_eq!(joined(&got), &want[..], "v{version}, {} items", items.len());
                }
            }
        }
    }

    #[test]
    fn records_are_chunks_of_their_own_not_copies() {
        let rec = Bytes::from(vec![9u8; 16_384]);
        let mut r = ProduceRecords::new();
        r.push(Bytes::from_static(&[1; 61]));
        r.push(rec.clone());
        let body = produce_body(vec![("t".into(), 0, r)], -1, Duration::from_secs(1), 9);
        assert!(
            body.iter()
                .any(|c| c.as_ptr() == rec.as_ptr() && c.len() == rec.len()),
            "the records section is passed on, not copied"
        );
    }

    #[test]
    fn produce_records_counts_and_joins() {
        let mut r = ProduceRecords::new();
        assert!(r.is_empty());
        r.push(Bytes::from_static(b"ab"));
        r.push(Bytes::new());
        r.push(Bytes::from_static(b"cde"));
        assert_eq!((r.len(), r.chunks().len()), (5, 2));
        assert_eq!(&r.to_bytes()[..], b"abcde");
        assert_eq!(ProduceRecords::from(Bytes::new()), ProduceRecords::new());
    }
}
