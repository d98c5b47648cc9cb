//! The initial copy's size: per selected partition, the offsets between where strait starts
//! (saved progress, else `[mirror] start`) and the source's end; bytes from DescribeLogDirs
//! when every partition copies its whole log.

use std::collections::BTreeMap;

use super::Check;
use super::topics::listing;
use crate::client::data::{Isolation, OffsetSpec};
use crate::client::{KafkaClient, TopicMetadata};
use crate::config::{StartPosition, StraitConfig};
use crate::offset::TopicPartition;
use crate::state::PartitionCheckpoint;

/// The initial copy's size.
pub(super) struct CopyEstimate {
    pub(super) per_topic: BTreeMap<String, Option<u64>>,
    pub(super) total: u64,
    pub(super) bytes: Option<u64>,
    problems: Vec<String>,
}

impl CopyEstimate {
    pub(super) fn check(&self, partitions: usize) -> Check {
        let bytes = self
            .bytes
            .map(|b| {
                format!(
                    ", {:.1} MiB on the source's disk",
                    b as f64 / (1u64 << 20) as f64
                )
            })
            .unwrap_or_default();
        let detail = format!(
            "{} records (offsets) to copy from {partitions} partition(s){bytes}",
            self.total
        );
        if self.problems.is_empty() {
            Check::pass("initial copy", detail)
        } else {
            Check::warning(
                "initial copy",
                format!(
                    "{detail}; offsets unreadable for {}",
                    listing(&self.problems, 5)
                ),
            )
        }
    }
}

pub(super) async fn initial_copy(
    cfg: &StraitConfig,
    source: &KafkaClient,
    selected: &[TopicMetadata],
    checkpoints: &BTreeMap<TopicPartition, PartitionCheckpoint>,
) -> CopyEstimate {
    let parts: Vec<(String, i32)> = selected
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.index)))
        .collect();
    let ends = source
        .list_offsets(&parts, OffsetSpec::Latest, Isolation::ReadCommitted)
        .await;
    let spec = match cfg.mirror.start {
        StartPosition::Earliest => Some(OffsetSpec::Earliest),
        StartPosition::Latest => None,
        StartPosition::Timestamp(t) => Some(OffsetSpec::Timestamp(t)),
    };
    let starts = match spec {
        Some(spec) => {
            source
                .list_offsets(&parts, spec, Isolation::ReadCommitted)
                .await
        }
        None => BTreeMap::new(),
    };
    let mut est = CopyEstimate {
        per_topic: BTreeMap::new(),
        total: 0,
        bytes: None,
        problems: Vec::new(),
    };
    let mut whole_logs = cfg.mirror.start == StartPosition::Earliest;
    for key in &parts {
        let tp = TopicPartition::new(&key.0, key.1);
        let end = match ends.get(key) {
            Some(Ok(o)) => Some(o.offset),
            _ => None,
        };
        let start = match (checkpoints.get(&tp), spec) {
            (Some(cp), _) => {
                whole_logs = false;
                Some(cp.next_source.0)
            }
            (None, None) => end,
            (None, Some(_)) => match starts.get(key) {
                Some(Ok(o)) if o.offset >= 0 => Some(o.offset),
                Some(Ok(_)) => end, // no record at or after the timestamp
                _ => None,
            },
        };
        let records = match (start, end) {
            (Some(s), Some(e)) => Some(u64::try_from(e - s).unwrap_or(0)),
            _ => {
                est.problems.push(tp.to_string());
                None
            }
        };
        let slot = est.per_topic.entry(key.0.clone()).or_insert(Some(0));
        *slot = slot.zip(records).map(|(a, b)| a + b);
        est.total += records.unwrap_or(0);
    }
    if whole_logs && est.problems.is_empty() && !parts.is_empty() {
        est.bytes = log_bytes(source, selected).await;
    }
    est
}

/// Bytes of the selected partitions on their leaders' disks (DescribeLogDirs).
async fn log_bytes(source: &KafkaClient, selected: &[TopicMetadata]) -> Option<u64> {
    let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    for t in selected {
        for p in &t.partitions {
            by_leader
                .entry(p.leader)
                .or_default()
                .push((t.name.clone(), p.index));
        }
    }
    let mut total = 0;
    for (node, parts) in by_leader {
        if node < 0 {
            return None;
        }
        let sizes = source.describe_log_dirs(node, &parts).await.ok()?;
        for key in &parts {
            total += sizes.get(key)?;
        }
    }
    Some(total)
}
