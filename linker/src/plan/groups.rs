//! The consumer groups `[groups]` selects on the source, and committed offsets strait will
//! not sync because their topics are not mirrored. ListGroups and OffsetFetch only.

use std::collections::BTreeSet;

use super::topics::listing;
use super::{Check, Figures, GroupPlan};
use crate::client::KafkaClient;
use crate::config::StraitConfig;

/// Groups selected on the source, and offsets that strait will not sync.
pub(super) async fn check_groups(
    cfg: &StraitConfig,
    source: &KafkaClient,
    checks: &mut Vec<Check>,
    figures: &mut Figures,
) {
    let selector = cfg.groups.selector();
    let listed = match source.list_groups().await {
        Ok(g) => g,
        Err(e) => {
            checks.push(Check::warning(
                "groups",
                format!("cannot list the source's consumer groups: {e}"),
            ));
            return;
        }
    };
    let mirrored: BTreeSet<&str> = figures.topics.iter().map(|t| t.name.as_str()).collect();
    let mut problems = Vec::new();
    for g in listed.into_iter().filter(|g| selector.matches(&g.group_id)) {
        let mut plan = GroupPlan {
            group_id: g.group_id.clone(),
            state: g.state.clone(),
            mirrored_topics: Vec::new(),
            other_topics: Vec::new(),
        };
        match source.offset_fetch(&g.group_id, None).await {
            Ok(offsets) => {
                let topics: BTreeSet<String> = offsets.into_keys().map(|(t, _)| t).collect();
                for t in topics {
                    if mirrored.contains(t.as_str()) {
                        plan.mirrored_topics.push(t);
                    } else {
                        plan.other_topics.push(t);
                    }
                }
            }
            Err(e) => problems.push(format!("{}: {e}", g.group_id)),
        }
        figures.groups.push(plan);
    }
    let names: Vec<&str> = figures.groups.iter().map(|g| g.group_id.as_str()).collect();
    checks.push(Check::pass(
        "groups",
        if names.is_empty() {
            "no source group matches [groups]".to_owned()
        } else {
            format!("{} group(s) selected: {}", names.len(), listing(&names, 20))
        },
    ));
    let unsynced: Vec<String> = figures
        .groups
        .iter()
        .filter(|g| !g.other_topics.is_empty())
        .map(|g| format!("{} ({})", g.group_id, listing(&g.other_topics, 5)))
        .collect();
    if !unsynced.is_empty() {
        checks.push(Check::warning(
            "group offsets not synced",
            format!(
                "committed offsets on topics strait does not mirror are not synced: {}",
                listing(&unsynced, 10)
            ),
        ));
    }
    if !problems.is_empty() {
        checks.push(Check::warning(
            "group offsets",
            format!("cannot read committed offsets of {}", listing(&problems, 5)),
        ));
    }
}
