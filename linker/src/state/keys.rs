//! Byte keys of the `partitions` tree. sled orders keys bytewise, so the encoding is chosen to
//! make one partition's map entries a contiguous range, iterated in source order:
//!
//! ```text
//!  checkpoint   'c' │ topic (UTF-8) │ 0x00 │ partition (4 bytes)
//!  map entry    'm' │ topic (UTF-8) │ 0x00 │ partition (4 bytes) │ source_first (8 bytes)
//!
//!  partition     i32 as big-endian u32 with the sign bit flipped   (order-preserving)
//!  source_first  i64 as big-endian u64 with the sign bit flipped   (order-preserving)
//! ```
//!
//! The 0x00 terminator keeps topics that are prefixes of each other apart: `a` then 0x00 is
//! never a prefix of `a.b` then 0x00 (Kafka topic names are `[a-zA-Z0-9._-]`, so 0x00 cannot
//! occur in one; it is rejected anyway). The partition has a fixed width, so partition 1 is
//! never a prefix of partition 10.

use crate::offset::{SourceOffset, TopicPartition};

use super::StateError;

/// Tag of checkpoint keys.
const CHECKPOINT: u8 = b'c';
/// Tag of map entry keys.
const ENTRY: u8 = b'm';
/// Ends the topic name.
const TOPIC_END: u8 = 0x00;

/// Checkpoint keys all start with this.
pub(super) const CHECKPOINT_PREFIX: &[u8] = &[CHECKPOINT];

fn sortable_i32(v: i32) -> [u8; 4] {
    ((v as u32) ^ (1 << 31)).to_be_bytes()
}

fn sortable_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// `tag │ topic │ 0x00 │ partition`; rejects a topic that contains 0x00.
fn partition_key(tag: u8, tp: &TopicPartition) -> Result<Vec<u8>, StateError> {
    if tp.topic.as_bytes().contains(&TOPIC_END) {
        return Err(StateError::InvalidTopic {
            topic: tp.topic.clone(),
        });
    }
    let mut key = Vec::with_capacity(1 + tp.topic.len() + 1 + 4 + 8);
    key.push(tag);
    key.extend_from_slice(tp.topic.as_bytes());
    key.push(TOPIC_END);
    key.extend_from_slice(&sortable_i32(tp.partition));
    Ok(key)
}

/// Key of a partition's checkpoint.
pub(super) fn checkpoint(tp: &TopicPartition) -> Result<Vec<u8>, StateError> {
    partition_key(CHECKPOINT, tp)
}

/// Prefix shared by all map entry keys of a partition, and only by them.
pub(super) fn entry_prefix(tp: &TopicPartition) -> Result<Vec<u8>, StateError> {
    partition_key(ENTRY, tp)
}

/// Key of the map entry starting at `source_first`, given the partition's [`entry_prefix`].
pub(super) fn entry(prefix: &[u8], source_first: SourceOffset) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&sortable_i64(source_first.0));
    key
}

/// The partition of a checkpoint key, or `None` if the key is not one.
pub(super) fn decode_checkpoint(key: &[u8]) -> Option<TopicPartition> {
    let rest = key.strip_prefix(CHECKPOINT_PREFIX)?;
    let (topic, partition) = rest.split_at_checked(rest.len().checked_sub(4 + 1)?)?;
    let (end, partition) = partition.split_first()?;
    if *end != TOPIC_END {
        return None;
    }
    let topic = std::str::from_utf8(topic).ok()?;
    let raw = u32::from_be_bytes(partition.try_into().ok()?) ^ (1 << 31);
    Some(TopicPartition::new(topic, raw as i32))
}

/// The source offset of a map entry key, given the partition's [`entry_prefix`].
pub(super) fn decode_entry(prefix: &[u8], key: &[u8]) -> Option<SourceOffset> {
    let raw: [u8; 8] = key.strip_prefix(prefix)?.try_into().ok()?;
    Some(SourceOffset((u64::from_be_bytes(raw) ^ (1 << 63)) as i64))
}

/// A readable rendering of a key for error messages: printable bytes as they are, the rest
/// as hex.
pub(super) fn describe(key: &[u8]) -> String {
    key.iter()
        .map(|b| match b {
            0x20..=0x7e => char::from(*b).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_round_trip() {
        for tp in [
            TopicPartition::new("a", 0),
            TopicPartition::new("a.b", 10),
            TopicPartition::new("orders-eu_1", i32::MAX),
            TopicPartition::new("", 0),
            TopicPartition::new("x", -1),
        ] {
            assert_eq!(decode_checkpoint(&checkpoint(&tp).unwrap()), Some(tp));
        }
        assert_eq!(decode_checkpoint(b"c"), None);
        assert_eq!(decode_checkpoint(b"cab\x01\x80\x00\x00\x00"), None);
        assert_eq!(
            decode_checkpoint(&entry_prefix(&TopicPartition::new("a", 0)).unwrap()),
            None
        );
    }

    #[test]
    fn topic_with_nul_is_rejected() {
        let tp = TopicPartition::new("a\0b", 0);
        assert!(matches!(
            checkpoint(&tp),
            Err(StateError::InvalidTopic { .. })
        ));
        assert!(matches!(
            entry_prefix(&tp),
            Err(StateError::InvalidTopic { .. })
        ));
    }

    #[test]
    fn partitions_never_share_a_prefix() {
        let tps = [
            TopicPartition::new("a", 1),
            TopicPartition::new("a", 10),
            TopicPartition::new("a", 256),
            TopicPartition::new("a.b", 1),
            TopicPartition::new("ab", 1),
            TopicPartition::new("a", 0),
        ];
        for x in &tps {
            for y in &tps {
                if x != y {
                    let (px, py) = (entry_prefix(x).unwrap(), entry_prefix(y).unwrap());
                    let ey = entry(&py, SourceOffset(12345));
                    assert!(!ey.starts_with(&px), "{x} prefixes an entry of {y}");
                }
            }
        }
    }

    #[test]
    fn entry_keys_sort_in_source_order() {
        let prefix = entry_prefix(&TopicPartition::new("t", 3)).unwrap();
        let offsets = [i64::MIN, -1, 0, 1, 255, 256, 65_536, i64::MAX];
        let keys: Vec<Vec<u8>> = offsets
            .iter()
            .map(|o| entry(&prefix, SourceOffset(*o)))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (o, k) in offsets.iter().zip(&keys) {
            assert_eq!(decode_entry(&prefix, k), Some(SourceOffset(*o)));
        }
        assert_eq!(decode_entry(&prefix, &prefix), None);
    }

    #[test]
    fn describe_is_readable() {
        assert_eq!(describe(b"ca\x00\x80"), "ca\\x00\\x80");
    }
}
