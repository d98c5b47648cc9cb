//! The read-only checks of `strait plan`: APIs each side offers, the selected topics and what
//! the target holds for them (foreign data, too few partitions, smaller message size limits).

use std::collections::BTreeMap;

use kafka_protocol::messages::ApiKey;

use super::state::StateView;
use super::{Check, Figures, TopicPlan};
use crate::client::{Error, KafkaClient, TopicMetadata};
use crate::config::StraitConfig;
use crate::offset::TopicPartition;
use crate::state::{PartitionCheckpoint, PartitionStatus};

/// An API one side should offer: key, name, whether its absence blocks, and what needs it.
type ApiNeed = (i16, &'static str, bool, &'static str);

/// What strait needs from the source.
pub(super) const SOURCE_APIS: &[ApiNeed] = &[
    (3, "Metadata", true, "topic discovery"),
    (2, "ListOffsets", true, "start positions"),
    (1, "Fetch", true, "reading records"),
    (32, "DescribeConfigs", false, "copying topic configs"),
    (16, "ListGroups", false, "group offset sync"),
    (10, "FindCoordinator", false, "group offset sync"),
    (9, "OffsetFetch", false, "group offset sync"),
    (15, "DescribeGroups", false, "group offset sync"),
];

/// What strait needs from the target.
pub(super) const TARGET_APIS: &[ApiNeed] = &[
    (3, "Metadata", true, "topic discovery"),
    (0, "Produce", true, "writing records"),
    (
        1,
        "Fetch",
        true,
        "reading the target's tail after a restart",
    ),
    (2, "ListOffsets", true, "end offsets"),
    (19, "CreateTopics", false, "creating target topics"),
    (32, "DescribeConfigs", false, "config sync"),
    (44, "IncrementalAlterConfigs", false, "config sync"),
    (
        37,
        "CreatePartitions",
        false,
        "following source partition growth",
    ),
    (10, "FindCoordinator", false, "group offset sync"),
    (9, "OffsetFetch", false, "group offset sync"),
    (8, "OffsetCommit", false, "group offset sync"),
    (15, "DescribeGroups", false, "group offset sync"),
];

/// Whether the broker we are connected to offers `key` in a version strait speaks.
fn offers(client_versions: &crate::client::connection::ApiVersions, key: i16) -> bool {
    let Some((lo, hi)) = client_versions.range(key) else {
        return false;
    };
    ApiKey::try_from(key).is_ok_and(|k| {
        let ours = k.valid_versions();
        lo.max(ours.min) <= hi.min(ours.max)
    })
}

async fn versions(c: &KafkaClient) -> Option<crate::client::connection::ApiVersions> {
    c.any_connection()
        .await
        .ok()
        .map(|conn| conn.api_versions().clone())
}

/// One check per side: a missing required API is a blocker, a missing optional one a
/// warning naming what will not work.
pub(super) async fn api_check(side: &str, c: &KafkaClient, needs: &[ApiNeed]) -> Check {
    let name = format!("{side} APIs");
    let Some(v) = versions(c).await else {
        return Check::blocker(name, format!("lost the connection to the {side} cluster"));
    };
    let missing: Vec<&ApiNeed> = needs.iter().filter(|n| !offers(&v, n.0)).collect();
    let list = |required: bool| {
        missing
            .iter()
            .filter(|n| n.2 == required)
            .map(|n| format!("{} ({}, needed for {})", n.1, n.0, n.3))
            .collect::<Vec<_>>()
    };
    let (hard, soft) = (list(true), list(false));
    if !hard.is_empty() {
        Check::blocker(
            name,
            format!("the {side} does not offer {}", hard.join(", ")),
        )
    } else if !soft.is_empty() {
        Check::warning(
            name,
            format!("the {side} does not offer {}", soft.join(", ")),
        )
    } else {
        Check::pass(
            name,
            format!("every API strait uses on the {side} is offered"),
        )
    }
}

/// Names, shortened to the first `n`.
pub(super) fn listing<T: AsRef<str>>(items: &[T], n: usize) -> String {
    let mut s = items
        .iter()
        .take(n)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > n {
        s.push_str(&format!(" and {} more", items.len() - n));
    }
    s
}

/// Selected topics, the target's topics, limits and the initial copy.
pub(super) async fn check_topics(
    cfg: &StraitConfig,
    source: &KafkaClient,
    target: Option<&KafkaClient>,
    state: &StateView,
    checks: &mut Vec<Check>,
    figures: &mut Figures,
) {
    let selector = cfg.mirror.selector();
    let selected: Vec<TopicMetadata> = match source.list_topics().await {
        Ok(all) => all
            .into_iter()
            .filter(|t| !t.internal && selector.matches(&t.name))
            .collect(),
        Err(e) => {
            checks.push(Check::blocker(
                "selected topics",
                format!("cannot list the source's topics: {e}"),
            ));
            return;
        }
    };
    figures.topic_count = selected.len();
    figures.partition_count = selected.iter().map(|t| t.partitions.len()).sum();
    if selected.is_empty() {
        checks.push(Check::warning(
            "selected topics",
            "no source topic matches mirror.topics; strait run would wait for one to appear",
        ));
    } else {
        let named: Vec<String> = selected
            .iter()
            .map(|t| format!("{} ({})", t.name, t.partitions.len()))
            .collect();
        checks.push(Check::pass(
            "selected topics",
            format!(
                "{} topic(s), {} partition(s): {}",
                figures.topic_count,
                figures.partition_count,
                listing(&named, 20)
            ),
        ));
    }
    let empty = BTreeMap::new();
    let (checkpoints, state_known) = match state {
        StateView::Absent => (&empty, true),
        StateView::Read { checkpoints, .. } => (checkpoints, true),
        StateView::Unreadable { .. } => (&empty, false),
    };
    let copy = super::copy::initial_copy(cfg, source, &selected, checkpoints).await;
    figures.initial_copy_records = copy.total;
    figures.initial_copy_bytes = copy.bytes;
    checks.push(copy.check(figures.partition_count));

    let mut plans: Vec<TopicPlan> = selected
        .iter()
        .map(|t| TopicPlan {
            name: t.name.clone(),
            partitions: t.partitions.len(),
            target: "unknown".to_owned(),
            initial_copy_records: copy.per_topic.get(&t.name).copied().flatten(),
        })
        .collect();
    for (tp, cp) in checkpoints {
        if !selected.iter().any(|t| t.name == tp.topic) {
            continue;
        }
        match &cp.status {
            PartitionStatus::Active => {}
            PartitionStatus::Stopped { reason } => checks.push(Check::warning(
                format!("partition {tp}"),
                format!("stopped ({reason}); strait run does not resume it"),
            )),
            PartitionStatus::Error { message } => checks.push(Check::warning(
                format!("partition {tp}"),
                format!("stopped by an error ({message}); strait run does not resume it"),
            )),
        }
    }
    if let Some(target) = target {
        check_targets(
            source,
            target,
            &selected,
            checkpoints,
            state_known,
            checks,
            &mut plans,
        )
        .await;
    }
    figures.topics = plans;
}

/// What the target holds for each selected topic, and the message size limits.
async fn check_targets(
    source: &KafkaClient,
    target: &KafkaClient,
    selected: &[TopicMetadata],
    checkpoints: &BTreeMap<TopicPartition, PartitionCheckpoint>,
    state_known: bool,
    checks: &mut Vec<Check>,
    plans: &mut [TopicPlan],
) {
    let existing: BTreeMap<String, TopicMetadata> = match target.list_topics().await {
        Ok(ts) => ts.into_iter().map(|t| (t.name.clone(), t)).collect(),
        Err(e) => {
            checks.push(Check::blocker(
                "target topics",
                format!("cannot list the target's topics: {e}"),
            ));
            return;
        }
    };
    let v = versions(target).await.unwrap_or_default();
    let (can_create, can_grow) = (offers(&v, 19), offers(&v, 37));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (src, plan) in selected.iter().zip(plans.iter_mut()) {
        let name = format!("target topic {}", src.name);
        let ours: Vec<&PartitionCheckpoint> = checkpoints
            .iter()
            .filter(|(tp, _)| tp.topic == src.name)
            .map(|(_, cp)| cp)
            .collect();
        if let Some(id) = ours.iter().find_map(|cp| cp.topic_id.as_ref())
            && *id != src.id.to_string()
        {
            checks.push(Check::blocker(
                name.clone(),
                format!(
                    "source topic {} was deleted and re-created since strait mirrored it (new \
                     topic id); strait run stops its mirror",
                    src.name
                ),
            ));
        }
        let Some(t) = existing.get(&src.name) else {
            plan.target = "absent".to_owned();
            if !ours.is_empty() {
                checks.push(Check::warning(
                    name,
                    "strait mirrored this topic before, but the target topic is gone; strait \
                     run re-creates it and finds the target behind its saved progress",
                ));
            } else if !can_create {
                checks.push(Check::blocker(
                    name,
                    "does not exist, and the target does not offer CreateTopics: create it by hand",
                ));
            }
            *counts
                .entry("absent (strait run creates them)")
                .or_default() += 1;
            continue;
        };
        if ours.is_empty() {
            match held_records(target, t).await {
                Ok(0) => plan.target = "empty".to_owned(),
                Ok(n) if state_known => {
                    plan.target = "occupied".to_owned();
                    checks.push(Check::blocker(
                        name.clone(),
                        format!("already holds {n} records strait did not write"),
                    ));
                }
                Ok(n) => checks.push(Check::warning(
                    name.clone(),
                    format!(
                        "holds {n} records; the state directory could not be read, so plan \
                         cannot tell whether strait wrote them"
                    ),
                )),
                Err(e) => checks.push(Check::warning(
                    name.clone(),
                    format!("cannot read its offsets: {e}"),
                )),
            }
        } else {
            plan.target = "mirrored".to_owned();
        }
        let (have, want) = (t.partitions.len(), src.partitions.len());
        if have < want {
            if can_grow {
                checks.push(Check::pass(
                    name,
                    format!(
                        "has {have} partition(s); strait run adds {} to match the source's {want}",
                        want - have
                    ),
                ));
            } else {
                checks.push(Check::blocker(
                    name,
                    format!(
                        "has {have} partition(s), the source {want}, and the target cannot add \
                         partitions (no CreatePartitions)"
                    ),
                ));
            }
        }
        *counts
            .entry(match plan.target.as_str() {
                "empty" => "empty",
                "mirrored" => "mirrored by strait",
                "occupied" => "occupied",
                _ => "not attributable",
            })
            .or_default() += 1;
    }
    if !selected.is_empty() {
        let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        checks.push(Check::pass("target topics", summary.join(", ")));
    }
    checks.extend(size_limits(source, target, selected, &existing).await);
}

/// Offsets held by a target topic (end minus log start, over all partitions).
async fn held_records(target: &KafkaClient, topic: &TopicMetadata) -> Result<u64, Error> {
    let parts: Vec<(String, i32)> = topic
        .partitions
        .iter()
        .map(|p| (topic.name.clone(), p.index))
        .collect();
    let mut total = 0u64;
    for (_, bounds) in target.log_bounds(&parts).await {
        let b = bounds?;
        total += u64::try_from(b.end - b.start).unwrap_or(0);
    }
    Ok(total)
}

/// `max.message.bytes` of a topic from DescribeConfigs entries, and whether it is a topic
/// override (which strait copies to the target).
fn limit(entries: &[crate::client::admin::ConfigEntry], key: &str) -> Option<(u64, bool)> {
    entries
        .iter()
        .find(|e| e.name == key)
        .and_then(|e| Some((e.value.as_deref()?.parse().ok()?, e.is_topic_override())))
}

/// A target whose limit is below the source's refuses the largest source batches.
async fn size_limits(
    source: &KafkaClient,
    target: &KafkaClient,
    selected: &[TopicMetadata],
    existing: &BTreeMap<String, TopicMetadata>,
) -> Vec<Check> {
    let names: Vec<String> = selected.iter().map(|t| t.name.clone()).collect();
    if names.is_empty() {
        return Vec::new();
    }
    let Ok(src) = source.describe_topic_configs(&names).await else {
        return vec![Check::warning(
            "message size limits",
            "cannot read the source's topic configs (DescribeConfigs)",
        )];
    };
    let on_target: Vec<String> = names
        .iter()
        .filter(|n| existing.contains_key(*n))
        .cloned()
        .collect();
    let tgt = if on_target.is_empty() {
        BTreeMap::new()
    } else {
        target
            .describe_topic_configs(&on_target)
            .await
            .unwrap_or_default()
    };
    let mut broker_default: Option<Option<u64>> = None;
    let (mut checks, mut compared, mut unknown, mut unknown_src) = (Vec::new(), 0, 0, 0);
    for name in &names {
        let Some((src_limit, copied)) = src
            .get(name)
            .and_then(|r| r.as_ref().ok())
            .and_then(|e| limit(e, "max.message.bytes"))
        else {
            unknown_src += 1;
            continue;
        };
        if copied {
            compared += 1; // strait sets the same value on the target
            continue;
        }
        let tgt_limit = if existing.contains_key(name) {
            tgt.get(name)
                .and_then(|r| r.as_ref().ok())
                .and_then(|e| limit(e, "max.message.bytes"))
                .map(|(v, _)| v)
        } else {
            if broker_default.is_none() {
                broker_default = Some(target_broker_limit(target).await);
            }
            broker_default.flatten()
        };
        match tgt_limit {
            None => unknown += 1,
            Some(t) if t < src_limit => checks.push(Check::blocker(
                format!("message size {name}"),
                format!(
                    "the target's max.message.bytes for {name} is {t}, smaller than the \
                     source's {src_limit}: a batch between the two sizes would be refused"
                ),
            )),
            Some(_) => compared += 1,
        }
    }
    let mut parts = Vec::new();
    if compared > 0 {
        parts.push(format!(
            "the target accepts the source's largest batches for {compared} topic(s)"
        ));
    }
    for (n, side) in [(unknown_src, "source"), (unknown, "target")] {
        if n > 0 {
            parts.push(format!(
                "{n} topic(s) not compared: the {side} does not report their max.message.bytes"
            ));
        }
    }
    if !parts.is_empty() {
        checks.push(Check::pass("message size limits", parts.join("; ")));
    }
    checks
}

/// `message.max.bytes` of some target broker (the default for new topics).
async fn target_broker_limit(target: &KafkaClient) -> Option<u64> {
    let node = *target.brokers().keys().min()?;
    let entries = target.describe_broker_configs(node).await.ok()?;
    limit(&entries, "message.max.bytes").map(|(v, _)| v)
}
