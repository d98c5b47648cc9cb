//! Target topics: created with the source's partition count and the configs consumers can
//! observe, grown when the source grows, re-synced periodically, and refused when they hold
//! data strait did not write.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::admin::{AlterOp, NewTopic};
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
pub fn target_configs(source: &[crate::client::admin::ConfigEntry]) -> BTreeMap<String, String> {
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

/// Creates the target topic for `source` (same name and partition count, copied configs).
pub async fn create_target(
    source_client: &KafkaClient,
    target: &KafkaClient,
    source: &TopicMetadata,
) -> Result<(), Error> {
    let described = source_client
        .describe_topic_configs(std::slice::from_ref(&source.name))
        .await?;
    let configs = match described.get(&source.name) {
        Some(Ok(entries)) => target_configs(entries),
        _ => target_configs(&[]),
    };
    let new = NewTopic {
        name: source.name.clone(),
        partitions: source.partitions.len() as i32,
        replication_factor: -1,
        configs,
    };
    let r = target
        .create_topics(&[new], Duration::from_secs(30), false)
        .await?;
    match r.get(&source.name) {
        Some(Ok(())) => Ok(()),
        // Created concurrently (e.g. by a previous run that crashed): the caller re-checks.
        Some(Err(e)) if e.code() == Some(36) => Ok(()),
        Some(Err(e)) => Err(e.clone()),
        None => Ok(()),
    }
}

/// Brings the target topic's copied configs in line with the source; returns what changed.
pub async fn sync_configs(
    source_client: &KafkaClient,
    target: &KafkaClient,
    topic: &str,
) -> Result<Vec<String>, Error> {
    let names = [topic.to_owned()];
    let (s, t) = (
        source_client.describe_topic_configs(&names).await?,
        target.describe_topic_configs(&names).await?,
    );
    let (Some(Ok(s)), Some(Ok(t))) = (s.get(topic), t.get(topic)) else {
        return Ok(Vec::new());
    };
    let want = target_configs(s);
    let have: BTreeMap<&str, Option<&str>> = t
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
    for e in t {
        if COPIED_CONFIGS.contains(&e.name.as_str())
            && e.is_topic_override()
            && !want.contains_key(&e.name)
        {
            changes.insert(e.name.clone(), AlterOp::Delete);
        }
    }
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    target.alter_topic_configs(topic, &changes, false).await?;
    Ok(changes.into_keys().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::admin::ConfigEntry;

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
}
