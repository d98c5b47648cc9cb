//! Checks run when a request arrives (and by dry runs): what blocks it and what it would do.
//! Read-only: nothing here changes a cluster or the store.

use strait_linker::client::KafkaClient;
use strait_linker::client::admin::{Acl, AclOperation, AclPattern, AclPermission, AclResource};
use strait_linker::mirror::PartitionState;
use strait_linker::offset::TopicPartition;

use super::model::{Check, CreateCutover, Cutover, FenceMode, Stage};
use super::service::CutoverContext;

fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// Whether `client`'s cluster answers ACL requests (has an authorizer).
async fn acls_available(client: &KafkaClient) -> Result<(), String> {
    let filter = Acl {
        resource: AclResource::Topic,
        name: String::new(),
        pattern: AclPattern::Any,
        principal: String::new(),
        host: String::new(),
        operation: AclOperation::Any,
        permission: AclPermission::Any,
    };
    client
        .describe_acls(&filter)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The mirror's view of the wave: a check that every topic is mirrored and running, and the
/// total lag.
fn mirrored(ctx: &CutoverContext, topics: &[String]) -> (Check, i64, Vec<String>) {
    let status = ctx.mirror.status().snapshot();
    let mut blockers = Vec::new();
    let mut lag = 0;
    for t in topics {
        // A topic's partitions by range: a scan of every partition per topic grew with
        // topics x partitions, and this check is polled through the drain.
        let parts: Vec<_> = status
            .partitions
            .range(TopicPartition::new(t, i32::MIN)..)
            .take_while(|(tp, _)| &tp.topic == t)
            .collect();
        if parts.is_empty() {
            blockers.push(format!(
                "topic {t} is not mirrored by this strait (not selected, or not discovered yet)"
            ));
        }
        for (tp, v) in parts {
            match &v.state {
                PartitionState::Error { message } => {
                    blockers.push(format!("{tp} is in error: {message}"))
                }
                PartitionState::Stopped { reason } => {
                    blockers.push(format!("{tp} is stopped: {reason}"))
                }
                PartitionState::Initializing => {
                    blockers.push(format!("{tp} is still initializing"))
                }
                _ => lag += v.lag_records.max(0),
            }
        }
    }
    let c = check(
        "topics_mirrored",
        blockers.is_empty(),
        if blockers.is_empty() {
            format!("{} topics mirrored, lag {lag} records", topics.len())
        } else {
            blockers.join("; ")
        },
    );
    (c, lag, blockers)
}

/// Checks for creating a cutover; blockers are the failed ones that must hold.
pub async fn creation(ctx: &CutoverContext, req: &CreateCutover) -> (Vec<Check>, Vec<String>) {
    let (mirrored, lag, mut blockers) = mirrored(ctx, &req.topics);
    let mut checks = vec![mirrored];
    checks.push(check(
        "lag_under_threshold",
        lag <= req.max_lag_records,
        format!("lag {lag} records, threshold {}", req.max_lag_records),
    ));
    match ctx.source.list_groups().await {
        Ok(found) => {
            let missing: Vec<_> = req
                .groups
                .iter()
                .filter(|g| !found.iter().any(|f| &f.group_id == *g))
                .cloned()
                .collect();
            checks.push(check(
                "groups_known",
                missing.is_empty(),
                if missing.is_empty() {
                    format!("{} groups found on the source", req.groups.len())
                } else {
                    format!("not found on the source (yet): {missing:?}")
                },
            ));
        }
        Err(e) => checks.push(check(
            "groups_known",
            false,
            format!("cannot list groups: {e}"),
        )),
    }
    fence_checks(
        ctx,
        req.fence.mode,
        req.fence.failback(),
        &mut checks,
        &mut blockers,
    )
    .await;
    (checks, blockers)
}

async fn fence_checks(
    ctx: &CutoverContext,
    mode: FenceMode,
    failback: FenceMode,
    checks: &mut Vec<Check>,
    blockers: &mut Vec<String>,
) {
    if mode == FenceMode::Acl {
        let r = acls_available(&ctx.source).await;
        if let Err(e) = &r {
            blockers.push(format!(
                "fence mode acl needs ACLs on the source, which refused: {e} (use manual)"
            ));
        }
        checks.push(check(
            "source_acls_available",
            r.is_ok(),
            r.err()
                .unwrap_or_else(|| "the source answers ACL requests".into()),
        ));
    }
    if failback == FenceMode::Acl {
        let r = acls_available(&ctx.target).await;
        if let Err(e) = &r {
            blockers.push(format!(
                "failback fence mode acl needs ACLs on the target, which refused: {e} \
                 (set fence.failback_mode to manual)"
            ));
        }
        checks.push(check(
            "target_acls_available",
            r.is_ok(),
            r.err()
                .unwrap_or_else(|| "the target answers ACL requests".into()),
        ));
    }
}

/// The checks, actions and blockers of advancing `c` to `to`.
pub async fn advance(
    ctx: &CutoverContext,
    c: &Cutover,
    to: Stage,
) -> (Vec<Check>, Vec<String>, Vec<String>) {
    let mut checks = Vec::new();
    let mut actions = Vec::new();
    let mut blockers = Vec::new();
    let mut stage = c.stage;
    while let Some(next) = stage.next().filter(|n| *n <= to) {
        let first = stage == c.stage;
        match next {
            Stage::Fenced => {
                let (m, lag, mut b) = mirrored(ctx, &c.topics);
                checks.push(m);
                checks.push(check(
                    "lag_under_threshold",
                    lag <= c.max_lag_records,
                    format!("lag {lag} records, threshold {}", c.max_lag_records),
                ));
                if lag > c.max_lag_records {
                    b.push(format!(
                        "lag {lag} records is above the threshold {}",
                        c.max_lag_records
                    ));
                }
                if first {
                    blockers.append(&mut b);
                }
                match c.fence.mode {
                    FenceMode::Acl => {
                        fence_checks(
                            ctx,
                            FenceMode::Acl,
                            FenceMode::Manual,
                            &mut checks,
                            &mut blockers,
                        )
                        .await;
                        actions.push(format!(
                            "add DENY WRITE ACLs on the source for topics {:?} and principals {:?}",
                            c.topics, c.fence.principals
                        ));
                    }
                    FenceMode::Manual => actions.push(
                        "verify that the operator stopped the producers (no ACL change)".into(),
                    ),
                }
                actions.push(format!(
                    "wait until the source end offsets stay unchanged for {} ms{} (deadline {} ms, \
                     else roll back to mirroring)",
                    match c.fence.mode {
                        FenceMode::Acl => c.fence.quiet_period_ms.min(2_000),
                        FenceMode::Manual => c.fence.quiet_period_ms,
                    },
                    if c.fence.mode == FenceMode::Manual {
                        " and no producer is active"
                    } else {
                        ""
                    },
                    c.deadlines.fence_ms
                ));
            }
            Stage::Drained => {
                actions.push(
                    "wait until the target holds every record up to the source end of each \
                     partition, with no open transaction"
                        .into(),
                );
                actions.push(format!(
                    "run a final synchronous offset sync for groups {:?}",
                    c.groups
                ));
                actions
                    .push("compare the last mirrored batch of each partition on both sides".into());
                actions.push(format!(
                    "deadline {} ms, else unfence and roll back to mirroring",
                    c.deadlines.drain_ms
                ));
            }
            Stage::Promoted => {
                actions.push(format!("stop mirroring topics {:?}", c.topics));
                actions.push("record the cutover point (source and target end offsets)".into());
                actions.push(format!(
                    "stop syncing groups {:?}: their consumers commit on the target from now on",
                    c.groups
                ));
            }
            _ => {}
        }
        stage = next;
    }
    (checks, actions, blockers)
}

/// The checks, actions and blockers of rolling `c` back.
pub async fn rollback(ctx: &CutoverContext, c: &Cutover) -> (Vec<Check>, Vec<String>, Vec<String>) {
    let mut checks = Vec::new();
    let mut actions = Vec::new();
    let mut blockers = Vec::new();
    if c.stage != Stage::Promoted {
        if c.fence.mode == FenceMode::Acl {
            actions.push(format!(
                "remove the DENY WRITE ACLs strait added on the source for {:?}",
                c.topics
            ));
        }
        actions.push(format!("keep mirroring topics {:?}", c.topics));
        actions.push("mark the cutover rolled_back".into());
        return (checks, actions, blockers);
    }
    let tps: Vec<_> = c
        .cutover_point
        .iter()
        .map(|p| strait_linker::offset::TopicPartition::new(&p.topic, p.partition))
        .collect();
    match super::cluster::ends(
        &ctx.target,
        &tps,
        strait_linker::client::data::Isolation::ReadUncommitted,
    )
    .await
    {
        Ok(ends) => {
            let written: i64 = c
                .cutover_point
                .iter()
                .map(|p| {
                    ends.get(&strait_linker::offset::TopicPartition::new(
                        &p.topic,
                        p.partition,
                    ))
                    .map_or(0, |e| (e - p.target_end).max(0))
                })
                .sum();
            checks.push(check(
                "target_writes_since_promotion",
                true,
                format!("{written} offsets written to the target since the cutover point"),
            ));
        }
        Err(e) => {
            checks.push(check("target_reachable", false, e.clone()));
            blockers.push(format!("cannot read the target's end offsets: {e}"));
        }
    }
    if c.fence.failback() == FenceMode::Acl {
        fence_checks(
            ctx,
            FenceMode::Manual,
            FenceMode::Acl,
            &mut checks,
            &mut blockers,
        )
        .await;
    }
    actions.push(match c.fence.failback() {
        FenceMode::Acl => format!("add DENY WRITE ACLs on the target for {:?}", c.topics),
        FenceMode::Manual => format!(
            "verify the target's producers stopped (end offsets unchanged for {} ms)",
            c.fence.quiet_period_ms
        ),
    });
    actions.push(
        "copy every record written to the target since the cutover point back to the source, \
         recording each batch in the offset map"
            .into(),
    );
    actions.push(format!(
        "translate the target offsets of groups {:?} back and commit them on the source \
         (waits until their consumers stopped on the target)",
        c.groups
    ));
    if c.fence.mode == FenceMode::Acl {
        actions.push("remove the source's DENY WRITE ACLs".into());
    }
    actions.push(format!("resume mirroring {:?} from the source", c.topics));
    if c.fence.failback() == FenceMode::Acl {
        actions.push("remove the target's DENY WRITE ACLs".into());
    }
    (checks, actions, blockers)
}
