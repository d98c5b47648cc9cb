//! Target topics: created with the source's partition count and the configs consumers can
//! observe, grown when the source grows, re-synced periodically, and refused when they hold
//! data strait did not write.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::admin::{AlterOp, ConfigEntry, NewTopic};
use crate::client::{Error, KafkaClient, TopicMetadata};

/// Topic configs that change what consumers see, copied from the source when the source
/// overrides them. Segment sizing (`segment.ms`, `segment.bytes`) is deliberately not copied:
/// it is a storage concern, and a target that rolls segments as fast as a source tuned for
/// compaction would start compacting the mirror under strait's feet. `compression.type` and `message.timestamp.type` are not copied: the target
/// always keeps the producer's compression and CreateTime so that no broker rewrites a byte.
pub const COPIED_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "max.message.bytes",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "delete.retention.ms",
    "min.cleanable.dirty.ratio",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
];

/// Configs forced on every target topic, whatever the source says.
pub const FORCED_CONFIGS: &[(&str, &str)] = &[
    ("compression.type", "producer"),
    ("message.timestamp.type", "CreateTime"),
];

/// The configs a target topic should have for `source` configs (topic overrides only).
pub fn target_configs(source: &[ConfigEntry]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = source
        .iter()
        .filter(|e| e.is_topic_override() && COPIED_CONFIGS.contains(&e.name.as_str()))
        .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
        .collect();
    for (k, v) in FORCED_CONFIGS {
        out.insert((*k).to_owned(), (*v).to_owned());
    }
    out
}

/// Whether every partition of a target topic is empty (end offset == start offset).
pub async fn is_empty(
    target: &KafkaClient,
    topic: &TopicMetadata,
) -> Result<Result<(), String>, Error> {
    let parts: Vec<(String, i32)> = topic
        .partitions
        .iter()
        .map(|p| (topic.name.clone(), p.index))
        .collect();
    for ((_, partition), bounds) in target.log_bounds(&parts).await {
        let b = bounds?;
        if b.end > b.start {
            return Ok(Err(format!(
                "partition {partition} holds offsets {}..{} that strait did not write",
                b.start, b.end
            )));
        }
    }
    Ok(Ok(()))
}

/// Most topics per CreateTopics or DescribeConfigs request, and most partitions per
/// CreateTopics: Kafka's KRaft controller refuses a request that would write more than 10,000
/// metadata records at once (a topic is one record per partition plus one per config), so a
/// migration of thousands of topics is created in slices.
const TOPICS_PER_REQUEST: usize = 100;
const PARTITIONS_PER_REQUEST: usize = 5_000;

/// Creates the target topics for `sources` (same names and partition counts, copied configs),
/// in as few requests as the limits above allow: one topic per request made a 1,000-topic
/// migration wait minutes on a Kafka target before its last topic moved. Returns each
/// topic's outcome; a topic that already exists (created concurrently, or by a run that
/// crashed) counts as created, and the caller re-checks it like any other.
pub async fn create_targets(
    source_client: &KafkaClient,
    target: &KafkaClient,
    sources: &[&TopicMetadata],
) -> BTreeMap<String, Result<(), Error>> {
    let mut out = BTreeMap::new();
    for slice in slices(sources) {
        let names: Vec<String> = slice.iter().map(|t| t.name.clone()).collect();
        let described = match source_client.describe_topic_configs(&names).await {
            Ok(d) => d,
            Err(e) => {
                out.extend(names.into_iter().map(|n| (n, Err(e.clone()))));
                continue;
            }
        };
        let new: Vec<NewTopic> = slice
            .iter()
            .map(|source| NewTopic {
                name: source.name.clone(),
                partitions: source.partitions.len() as i32,
                replication_factor: -1,
                configs: match described.get(&source.name) {
                    Some(Ok(entries)) => target_configs(entries),
                    _ => target_configs(&[]),
                },
            })
            .collect();
        let mut created = match target
            .create_topics(&new, Duration::from_secs(30), false)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                out.extend(names.into_iter().map(|n| (n, Err(e.clone()))));
                continue;
            }
        };
        for n in names {
            let r = match created.remove(&n) {
                Some(Err(e)) if e.code() != Some(36) => Err(e),
                // 36 TOPIC_ALREADY_EXISTS; a topic missing from the answer is looked up by
                // the caller's wait like the others.
                _ => Ok(()),
            };
            out.insert(n, r);
        }
    }
    out
}

/// `sources` cut into request-sized slices ([`TOPICS_PER_REQUEST`], [`PARTITIONS_PER_REQUEST`];
/// a topic larger than the partition limit goes alone).
fn slices<'a>(sources: &'a [&'a TopicMetadata]) -> Vec<&'a [&'a TopicMetadata]> {
    let mut out = Vec::new();
    let (mut from, mut partitions) = (0, 0);
    for (i, t) in sources.iter().enumerate() {
        let n = t.partitions.len();
        if i > from && (i - from == TOPICS_PER_REQUEST || partitions + n > PARTITIONS_PER_REQUEST) {
            out.push(&sources[from..i]);
            (from, partitions) = (i, 0);
        }
        partitions += n;
    }
    if from < sources.len() {
        out.push(&sources[from..]);
    }
    out
}

/// Brings the target topics' copied configs in line with the source's, for each of `topics`;
/// returns the names of the configs changed per topic (topics already in line, or gone from
/// either side, are left out). Both sides are described in slices of [`TOPICS_PER_REQUEST`]
/// topics, where a request per topic and side stalled a 1,000-topic mirror for about a
/// second at every re-sync; a topic whose configs differ gets its own alter request.
pub async fn sync_configs(
    source_client: &KafkaClient,
    target: &KafkaClient,
    topics: &[String],
) -> Vec<(String, Result<Vec<String>, Error>)> {
    let mut out = Vec::new();
    for names in topics.chunks(TOPICS_PER_REQUEST) {
        let (s, t) = tokio::join!(
            source_client.describe_topic_configs(names),
            target.describe_topic_configs(names),
        );
        let (s, t) = match (s, t) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => {
                out.extend(names.iter().map(|n| (n.clone(), Err(e.clone()))));
                continue;
            }
        };
        for topic in names {
            let (Some(Ok(s)), Some(Ok(t))) = (s.get(topic), t.get(topic)) else {
                continue;
            };
            let changes = config_changes(s, t);
            if changes.is_empty() {
                continue;
            }
            let r = target.alter_topic_configs(topic, &changes, false).await;
            out.push((topic.clone(), r.map(|()| changes.into_keys().collect())));
        }
    }
    out
}

/// What to alter on a target topic whose configs are `target` so that its copied configs
/// match a source topic's `source` ([`target_configs`]); empty when they already do.
fn config_changes(source: &[ConfigEntry], target: &[ConfigEntry]) -> BTreeMap<String, AlterOp> {
    let want = target_configs(source);
    let have: BTreeMap<&str, Option<&str>> = target
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    let mut changes = BTreeMap::new();
    for (k, v) in &want {
        if have.get(k.as_str()).copied().flatten() != Some(v.as_str()) {
            changes.insert(k.clone(), AlterOp::Set(v.clone()));
        }
    }
    // A copied config the source no longer overrides goes back to the target's default.
    for e in target {
        if COPIED_CONFIGS.contains(&e.name.as_str())
            && e.is_topic_override()
            && !want.contains_key(&e.name)
        {
            changes.insert(e.name.clone(), AlterOp::Delete);
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str, source: i8) -> ConfigEntry {
        ConfigEntry {
            name: name.into(),
            value: Some(value.into()),
            source,
            read_only: false,
            sensitive: false,
        }
    }

    #[test]
    fn copies_consumer_visible_overrides_and_forces_fidelity() {
        let cfg = target_configs(&[
            entry("retention.ms", "1000", 1),
            entry("cleanup.policy", "compact", 1),
            entry("segment.jitter.ms", "5", 1), // not consumer-visible: not copied
            entry("max.message.bytes", "1048588", 5), // a default: not copied
            entry("compression.type", "gzip", 1), // would make the target recompress
            entry("message.timestamp.type", "LogAppendTime", 1),
        ]);
        assert_eq!(cfg.get("retention.ms").map(String::as_str), Some("1000"));
        assert_eq!(
            cfg.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        assert!(!cfg.contains_key("segment.jitter.ms"));
        assert!(!cfg.contains_key("max.message.bytes"));
        assert_eq!(
            cfg.get("compression.type").map(String::as_str),
            Some("producer")
        );
        assert_eq!(
            cfg.get("message.timestamp.type").map(String::as_str),
            Some("CreateTime")
        );
    }

    fn topic(name: &str, partitions: i32) -> TopicMetadata {
        TopicMetadata {
            name: name.into(),
            id: uuid::Uuid::nil(),
            internal: false,
            partitions: (0..partitions)
                .map(|index| crate::client::PartitionMetadata {
                    index,
                    leader: 1,
                    leader_epoch: 0,
                    error_code: 0,
                })
                .collect(),
        }
    }

    fn slice_shapes(topics: &[TopicMetadata]) -> Vec<(usize, usize)> {
        let refs: Vec<&TopicMetadata> = topics.iter().collect();
        slices(&refs)
            .iter()
            .map(|s| (s.len(), s.iter().map(|t| t.partitions.len()).sum()))
            .collect()
    }

    #[test]
    fn creation_requests_stay_under_the_topic_and_partition_limits() {
        assert!(slice_shapes(&[]).is_empty());
        // 250 small topics: 100 + 100 + 50.
        let small: Vec<_> = (0..250).map(|i| topic(&format!("t{i}"), 3)).collect();
        assert_eq!(slice_shapes(&small), [(100, 300), (100, 300), (50, 150)]);
        // Partitions bound the slice before the topic count does: 2,000 + 2,000 fit, a third
        // would make 6,000.
        let big: Vec<_> = (0..5).map(|i| topic(&format!("b{i}"), 2_000)).collect();
        assert_eq!(slice_shapes(&big), [(2, 4_000), (2, 4_000), (1, 2_000)]);
        // A topic over the limit on its own still goes, alone.
        let huge = [topic("a", 10), topic("h", 6_000), topic("z", 10)];
        assert_eq!(slice_shapes(&huge), [(1, 10), (1, 6_000), (1, 10)]);
        // Every topic is in exactly one slice, in order.
        let refs: Vec<&TopicMetadata> = small.iter().collect();
        let names: Vec<&str> = slices(&refs)
            .iter()
            .flat_map(|s| s.iter().map(|t| t.name.as_str()))
            .collect();
        let want: Vec<&str> = small.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, want);
    }

    #[test]
    fn a_re_sync_sets_what_differs_and_deletes_what_the_source_dropped() {
        let source = [
            entry("retention.ms", "1000", 1),
            entry("cleanup.policy", "compact", 1),
        ];
        let in_line = [
            entry("retention.ms", "1000", 1),
            entry("cleanup.policy", "compact", 1),
            entry("compression.type", "producer", 1),
            entry("message.timestamp.type", "CreateTime", 1),
            entry("segment.ms", "5", 1), // not copied: left alone
        ];
        assert!(config_changes(&source, &in_line).is_empty());
        let drifted = [
            entry("retention.ms", "2000", 1),         // differs: set
            entry("max.message.bytes", "1048588", 5), // a default: left alone
            entry("delete.retention.ms", "100", 1),   // dropped on the source: deleted
            entry("compression.type", "gzip", 1),     // forced back
            entry("message.timestamp.type", "CreateTime", 1),
        ];
        let changes = config_changes(&source, &drifted);
        let want: BTreeMap<String, AlterOp> = [
            ("cleanup.policy", AlterOp::Set("compact".into())),
            ("compression.type", AlterOp::Set("producer".into())),
            ("delete.retention.ms", AlterOp::Delete),
            ("retention.ms", AlterOp::Set("1000".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(changes, want);
    }
}
