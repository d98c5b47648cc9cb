//! The driver: one task per cutover that carries out its persisted operation step by step,
//! and watches fenced sources for straggler writes.
//!
//! ```text
//!  loop: load cutover ─► operation?
//!          advance  → fence | drain | promote step ─► reached (persisted) ─► next step
//!                          └ deadline / failure ─► undo: unfence, release, back to mirroring
//!          rollback → rollback::run (undo, or failback after promotion)
//!          none     → fenced/drained/promoted: straggler watch every 2 s; else exit
//! ```
//!
//! Every step is idempotent and re-entrant: a restart (or a crash) in the middle of one runs
//! it again from the top with the same persisted deadline. A step polls
//! [`Inner::still_current`] while it waits, so a rollback request supersedes it promptly.

use std::collections::BTreeMap;
use std::sync::Arc;

use strait_linker::client::data::Isolation;
use strait_linker::offset::TopicPartition;

use super::cluster;
use super::machine::{self, now_ms};
use super::model::{Check, Cutover, FenceMode, Operation, PartitionPoint, Stage, Straggler};
use super::rollback;
use super::service::{Inner, is_advance, same_op};
use crate::error::ApiError;

/// How often waiting steps poll the clusters.
pub(super) const POLL_MS: u64 = 250;

/// How a step ended.
pub(super) enum StepEnd {
    /// Done and persisted.
    Done,
    /// The operation changed under it (a rollback, shutdown): do nothing more.
    Superseded,
    /// Its deadline passed.
    Expired(String),
    /// It cannot succeed.
    Failed(String),
}

/// Stages in which the source is fenced and watched for stragglers.
pub(super) fn watched(stage: Stage) -> bool {
    matches!(stage, Stage::Fenced | Stage::Drained | Stage::Promoted)
}

pub(super) fn key(tp: &TopicPartition) -> String {
    tp.to_string()
}

/// The driver task of cutover `id`.
pub(super) async fn run(inner: Arc<Inner>, id: String) {
    loop {
        if inner.cancel.is_cancelled() {
            inner.driver_exit(&id);
            return;
        }
        let Ok(c) = inner.load(&id) else {
            inner.driver_exit(&id);
            return;
        };
        let result = match c.operation.clone() {
            Some(op) if is_advance(&op) => advance_step(&inner, &c, &op).await,
            Some(op) => rollback::run(&inner, &c, &op).await,
            // A rehearsal goes straight from promotion into its failback.
            // (Once only: a failback abandoned because the target never went quiet leaves the
            // rehearsal promoted, for an operator.)
            None if c.rehearsal
                && c.stage == Stage::Promoted
                && !c
                    .events
                    .iter()
                    .any(|e| e.kind == "rollback_requested" && Some(e.at_ms) >= c.promoted_ms) =>
            {
                if let Ok(machine::Decision::Start(op)) =
                    machine::decide_rollback(&c, "strait", now_ms())
                {
                    inner
                        .update(&id, |c| {
                            if c.operation.is_none() && c.stage == Stage::Promoted {
                                machine::start(c, op.clone(), now_ms());
                            }
                            Ok(())
                        })
                        .map(|_| ())
                } else {
                    Ok(())
                }
            }
            None if watched(c.stage) => {
                if let Err(e) = watch_stragglers(&inner, &c).await {
                    tracing::debug!(cutover = %id, error = %e, "straggler watch failed");
                }
                inner.pause(2_000).await;
                Ok(())
            }
            None => {
                if inner.driver_exit(&id) {
                    return;
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            // The store failed: nothing can be recorded. Retry, slowly.
            tracing::error!(cutover = %id, error = %e, "cutover driver error; retrying");
            inner.pause(2_000).await;
        }
    }
}

async fn advance_step(inner: &Inner, c: &Cutover, op: &Operation) -> Result<(), ApiError> {
    let end = match op.working_on {
        Stage::Fenced => fence(inner, c, op).await?,
        Stage::Drained => drain(inner, c, op).await?,
        Stage::Promoted => promote(inner, c, op).await?,
        other => StepEnd::Failed(format!("cannot advance to {other}")),
    };
    match end {
        StepEnd::Done | StepEnd::Superseded => Ok(()),
        StepEnd::Expired(why) => undo(inner, c, op, "deadline_expired", why).await,
        StepEnd::Failed(why) => undo(inner, c, op, "step_failed", why).await,
    }
}

/// Persists `stage` as reached with `checks`, if `op` is still the operation.
fn reach(
    inner: &Inner,
    c: &Cutover,
    op: &Operation,
    stage: Stage,
    checks: Vec<Check>,
    extra: impl Fn(&mut Cutover),
) -> Result<StepEnd, ApiError> {
    let lag = wave_lag(inner, &c.topics);
    let (_, done) = inner.update(&c.id, |c| {
        if !same_op(c.operation.as_ref(), op) {
            return Ok(false);
        }
        extra(c);
        c.checks = checks.clone();
        log_stage(c, stage, lag);
        machine::reached(c, stage, now_ms());
        Ok(true)
    })?;
    tracing::info!(cutover = %c.id, %stage, "cutover stage reached");
    Ok(if done {
        StepEnd::Done
    } else {
        StepEnd::Superseded
    })
}

/// The wave's mirror lag (records, summed over its partitions) as the mirror reports it.
pub(super) fn wave_lag(inner: &Inner, topics: &[String]) -> i64 {
    inner
        .ctx
        .mirror
        .status()
        .snapshot()
        .partitions
        .iter()
        .filter(|(tp, _)| topics.contains(&tp.topic))
        .map(|(_, v)| v.lag_records.max(0))
        .sum()
}

/// Appends the stage to the cutover's stage log.
pub(super) fn log_stage(c: &mut Cutover, stage: Stage, lag_records: i64) {
    c.stage_log.push(super::model::StageRecord {
        stage,
        at_ms: now_ms(),
        lag_records,
        checks: c.checks.clone(),
    });
}

/// Adds an event (if `op` is still the operation).
pub(super) fn event(inner: &Inner, id: &str, kind: &str, message: String) -> Result<(), ApiError> {
    tracing::info!(cutover = %id, kind, "{message}");
    inner.update(id, |c| {
        machine::push_event(c, now_ms(), kind, message.clone(), "strait");
        Ok(())
    })?;
    Ok(())
}

/// Waits until `client`'s end offsets of `tps` stay unchanged for `quiet_ms` (and, when
/// `producers` is set, no producer wrote within it). `Ok(Some(ends))` once quiet,
/// `Ok(None)` when superseded; `Err` on the deadline.
pub(super) async fn wait_quiet(
    inner: &Inner,
    id: &str,
    op: &Operation,
    client: &strait_linker::client::KafkaClient,
    tps: &[TopicPartition],
    quiet_ms: u64,
    producers: bool,
) -> Result<Option<BTreeMap<TopicPartition, i64>>, String> {
    let mut last: Option<BTreeMap<TopicPartition, i64>> = None;
    let mut stable_since = now_ms();
    let mut why = String::from("no answer from the cluster yet");
    loop {
        if !inner.still_current(id, op) {
            return Ok(None);
        }
        let now = now_ms();
        if now >= op.deadline_ms {
            return Err(why);
        }
        match cluster::ends(client, tps, Isolation::ReadUncommitted).await {
            Ok(ends) => {
                if last.as_ref() != Some(&ends) {
                    if let Some(prev) = &last {
                        let moving: Vec<String> = ends
                            .iter()
                            .filter(|(tp, e)| prev.get(*tp) != Some(*e))
                            .map(|(tp, e)| format!("{tp} at {e}"))
                            .collect();
                        why = format!("writes still arriving: {}", moving.join(", "));
                    }
                    last = Some(ends);
                    stable_since = now;
                }
            }
            Err(e) => why = e,
        }
        let mut active = Vec::new();
        if producers && last.is_some() {
            let since = now.saturating_sub(quiet_ms) as i64;
            if let Some(found) = cluster::recent_producers(client, tps, since).await {
                for (tp, ids) in found {
                    if !ids.is_empty() {
                        active.push(format!("{tp}: producers {ids:?}"));
                    }
                }
            }
            if !active.is_empty() {
                why = format!("producers still active: {}", active.join(", "));
            }
        }
        if last.is_some() && active.is_empty() && now.saturating_sub(stable_since) >= quiet_ms {
            return Ok(last);
        }
        inner.pause(POLL_MS).await;
    }
}

async fn fence(inner: &Inner, c: &Cutover, op: &Operation) -> Result<StepEnd, ApiError> {
    let ctx = &inner.ctx;
    let tps = match cluster::partitions(&ctx.source, &c.topics).await {
        Ok(t) => t,
        Err(e) => return Ok(StepEnd::Failed(format!("source: {e}"))),
    };
    let quiet_ms = match c.fence.mode {
        // The ACLs stop writes at once; a short quiet period covers requests in flight.
        FenceMode::Acl => {
            let acls = cluster::fence_acls(&c.topics, &c.fence.principals);
            if let Err(e) = cluster::apply_fence(&ctx.source, &acls).await {
                return Ok(StepEnd::Failed(format!("source: {e}")));
            }
            if !c
                .events
                .iter()
                .any(|e| e.kind == "fence_applied" && e.at_ms >= op.started_ms)
            {
                event(
                    inner,
                    &c.id,
                    "fence_applied",
                    format!(
                        "DENY WRITE ACLs added on the source for {:?} ({:?})",
                        c.topics, c.fence.principals
                    ),
                )?;
            }
            c.fence.quiet_period_ms.min(2_000)
        }
        FenceMode::Manual => c.fence.quiet_period_ms,
    };
    let manual = c.fence.mode == FenceMode::Manual;
    let ends = match wait_quiet(inner, &c.id, op, &ctx.source, &tps, quiet_ms, manual).await {
        Ok(Some(ends)) => ends,
        Ok(None) => return Ok(StepEnd::Superseded),
        Err(why) => {
            return Ok(StepEnd::Expired(format!(
                "the source did not go quiet within {} ms: {why}",
                c.deadlines.fence_ms
            )));
        }
    };
    let checks = vec![Check {
        name: "source_quiet".into(),
        ok: true,
        detail: format!(
            "end offsets unchanged for {quiet_ms} ms on {} partitions{}",
            tps.len(),
            if manual { ", no active producer" } else { "" }
        ),
    }];
    let fenced: BTreeMap<String, i64> = ends.iter().map(|(tp, e)| (key(tp), *e)).collect();
    reach(inner, c, op, Stage::Fenced, checks, |c| {
        c.fenced_ends = fenced.clone();
        c.fenced_ms = Some(now_ms());
    })
}

/// Both sides' ends of a drained wave (high watermarks).
struct Ends {
    source: BTreeMap<TopicPartition, i64>,
    target: BTreeMap<TopicPartition, i64>,
}

/// What one look at the wave found.
enum Poll {
    /// Every partition is mirrored up to the source's end, the target's end where the mirror
    /// expects it.
    Drained(Ends),
    /// Not yet, and why.
    Waiting(String),
    /// A partition's mirror stopped with an error: waiting cannot help.
    Broken(String),
}

/// Whether the wave is drained: no open transaction, the mirror at the source's end, the
/// target's end where the mirror expects it, for every partition. Then watches `c` for
/// stragglers with the source ends it read (a read of every partition of the wave fewer:
/// at 5,000 partitions each costs the source broker about 250 ms of a write pause).
async fn poll_drained(inner: &Inner, c: &Cutover, tps: &[TopicPartition]) -> Poll {
    let ctx = &inner.ctx;
    // The three reads together: one poll of a large wave is inside the write pause.
    let ends = tokio::try_join!(
        cluster::ends(&ctx.source, tps, Isolation::ReadUncommitted),
        cluster::ends(&ctx.source, tps, Isolation::ReadCommitted),
        cluster::ends(&ctx.target, tps, Isolation::ReadUncommitted),
    );
    let (hw, lso, target) = match ends {
        Ok(e) => e,
        Err(e) => return Poll::Waiting(e),
    };
    if let Err(e) = note_stragglers(inner, c, &hw).await {
        tracing::warn!(cutover = %c.id, "straggler watch: {e}");
    }
    let status = ctx.mirror.status().snapshot();
    let mut blockers = Vec::new();
    for tp in tps {
        let (h, l) = (hw[tp], lso[tp]);
        if l < h {
            blockers.push(format!(
                "{tp}: open transaction (last stable offset {l} < end {h})"
            ));
        }
        let Some(v) = status.partitions.get(tp) else {
            blockers.push(format!("{tp}: not mirrored"));
            continue;
        };
        if let strait_linker::mirror::PartitionState::Error { message } = &v.state {
            return Poll::Broken(format!("{tp}: mirror error: {message}"));
        }
        if v.next_source < h {
            blockers.push(format!("{tp}: mirrored up to {} of {h}", v.next_source));
        } else if target.get(tp) != Some(&v.next_target) {
            blockers.push(format!(
                "{tp}: target end {:?} is not the expected {}",
                target.get(tp),
                v.next_target
            ));
        }
    }
    if blockers.is_empty() {
        Poll::Drained(Ends { source: hw, target })
    } else {
        Poll::Waiting(summarize(&blockers))
    }
}

/// At most [`SHOWN_BLOCKERS`] reasons and how many more: a wave of a thousand partitions must
/// not make a progress note of a thousand lines.
fn summarize(blockers: &[String]) -> String {
    let mut text = blockers
        .iter()
        .take(SHOWN_BLOCKERS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if blockers.len() > SHOWN_BLOCKERS {
        text.push_str(&format!(
            "; and {} more partitions",
            blockers.len() - SHOWN_BLOCKERS
        ));
    }
    text
}

/// Reasons a waiting step shows in its progress note and expiry message.
const SHOWN_BLOCKERS: usize = 3;

/// How often a waiting step may rewrite its progress note (each write is a new version of the
/// cutover, durable in the store).
const PROGRESS_EVERY_MS: u64 = 5_000;

/// Polls until the wave is drained (`Ok(Ok(source ends))`), or the step ends
/// (`Ok(Err(..))`): superseded, its deadline passed (`step` and `limit_ms` name it in the
/// message, with the last reason in `why`), or a mirror error. Watches for stragglers while
/// it waits.
async fn wait_drained(
    inner: &Inner,
    c: &Cutover,
    op: &Operation,
    tps: &[TopicPartition],
    (step, limit_ms): (&str, u64),
    why: &mut String,
) -> Result<Result<BTreeMap<TopicPartition, i64>, StepEnd>, ApiError> {
    // What the progress note says, and when it was written: an operator following a step
    // that waits longer than a moment sees why, not just that it started.
    let mut shown = (String::new(), now_ms());
    loop {
        if !inner.still_current(&c.id, op) {
            return Ok(Err(StepEnd::Superseded));
        }
        if now_ms() >= op.deadline_ms {
            return Ok(Err(StepEnd::Expired(format!(
                "{step} did not complete within {limit_ms} ms: {why}"
            ))));
        }
        let current = inner.load(&c.id)?;
        match poll_drained(inner, &current, tps).await {
            Poll::Drained(ends) => return Ok(Ok(ends.source)),
            Poll::Broken(e) => return Ok(Err(StepEnd::Failed(e))),
            Poll::Waiting(w) => {
                let now = now_ms();
                if shown.0 != w && now.saturating_sub(shown.1) >= PROGRESS_EVERY_MS {
                    inner.set_progress(&c.id, op, format!("{step}: waiting: {w}"))?;
                    shown = (w.clone(), now);
                }
                *why = w;
                inner.pause(POLL_MS).await;
            }
        }
    }
}

async fn drain(inner: &Inner, c: &Cutover, op: &Operation) -> Result<StepEnd, ApiError> {
    let ctx = &inner.ctx;
    let tps = match cluster::partitions(&ctx.source, &c.topics).await {
        Ok(t) => t,
        Err(e) => return Ok(StepEnd::Failed(format!("source: {e}"))),
    };
    let mut why = String::from("not checked yet");
    let limit = ("the drain", c.deadlines.drain_ms);
    loop {
        let hw = match wait_drained(inner, c, op, &tps, limit, &mut why).await? {
            Ok(hw) => hw,
            Err(end) => return Ok(end),
        };
        // The final, synchronous group sync: the barrier consumers move behind.
        let mut group_blockers = Vec::new();
        let mut committed = Vec::new();
        match ctx.groups.sync_now(&c.groups, true).await {
            Ok(outcomes) => {
                for (g, o) in outcomes {
                    match o.state {
                        strait_offset_sync::SyncState::Syncing if o.waiting.is_empty() => committed
                            .push(format!(
                                "{g}: in sync ({} partitions committed now, the rest already \
                                 current)",
                                o.committed.len()
                            )),
                        strait_offset_sync::SyncState::Syncing => group_blockers.push(format!(
                            "group {g}: waiting for the mirror on {:?}",
                            o.waiting
                        )),
                        other => group_blockers.push(format!(
                            "group {g} is {other:?}: consumers are live on the target"
                        )),
                    }
                }
            }
            Err(e) => group_blockers.push(format!("group sync failed: {e}")),
        }
        if !group_blockers.is_empty() {
            why = group_blockers.join("; ");
            inner.pause(POLL_MS).await;
            continue;
        }
        let mut checks = vec![
            Check {
                name: "target_caught_up".into(),
                ok: true,
                detail: format!(
                    "every one of {} partitions mirrored up to the source end, target ends as \
                     expected, no open transaction",
                    tps.len()
                ),
            },
            Check {
                name: "groups_synced".into(),
                ok: true,
                detail: if committed.is_empty() {
                    "no groups in the wave".into()
                } else {
                    committed.join(", ")
                },
            },
        ];
        let mut diffs = Vec::new();
        let mut same = 0;
        for r in cluster::compare_tails(&ctx.source, &ctx.target, &ctx.store, &tps).await {
            match r {
                Ok(_) => same += 1,
                Err(d) => diffs.push(d),
            }
        }
        checks.push(Check {
            name: "tail_batches_equal".into(),
            ok: diffs.is_empty(),
            detail: if diffs.is_empty() {
                format!("{same} partitions: last mirrored batch identical on both sides")
            } else {
                diffs.join("; ")
            },
        });
        if !diffs.is_empty() {
            return Ok(StepEnd::Failed(format!(
                "tail batches differ: {}",
                diffs.join("; ")
            )));
        }
        let drained: BTreeMap<String, i64> = hw.iter().map(|(tp, e)| (key(tp), *e)).collect();
        return reach(inner, c, op, Stage::Drained, checks, |c| {
            // Writes that slipped past the fence are mirrored too: the new ends are the ones
            // the promotion must see unchanged.
            c.fenced_ends = drained.clone();
        });
    }
}

async fn promote(inner: &Inner, c: &Cutover, op: &Operation) -> Result<StepEnd, ApiError> {
    let ctx = &inner.ctx;
    let tps = match cluster::partitions(&ctx.source, &c.topics).await {
        Ok(t) => t,
        Err(e) => return Ok(StepEnd::Failed(format!("source: {e}"))),
    };
    let reason = format!("promoted by cutover {} ({})", c.id, c.name);
    let mut why = String::from("not checked yet");
    let limit = ("promotion", c.deadlines.promote_ms);
    // The wave was drained moments ago, as a rule: hold it first and look once, held. Only
    // after a look that found it not drained does the promotion wait, unheld, until it is
    // (the mirror keeps catching up meanwhile), then hold and look again. A look before the
    // hold as well cost a 5,000-partition wave 0.5 s more of write pause.
    let mut wait_first = false;
    loop {
        if wait_first {
            if let Err(end) = wait_drained(inner, c, op, &tps, limit, &mut why).await? {
                return Ok(end);
            }
        } else if !inner.still_current(&c.id, op) {
            return Ok(StepEnd::Superseded);
        }
        wait_first = true;
        if let Err(e) = ctx.mirror.hold_topics(&c.topics, &reason).await {
            return Err(e.into());
        }
        // Held, nothing more reaches the target: the wave must be drained now, each side's
        // ends read once for the whole wave. A write that reached the source before the hold
        // and is not on the target means release and drain again rather than promote without
        // it; so does what the mirror acknowledged but did not store.
        let current = inner.load(&c.id)?;
        let ends = match poll_drained(inner, &current, &tps).await {
            Poll::Drained(ends) => ends,
            Poll::Broken(e) => return Ok(StepEnd::Failed(e)),
            Poll::Waiting(w) => {
                why = format!("not drained when held: {w}");
                ctx.mirror.release_topics(&c.topics).await?;
                continue;
            }
        };
        let mut behind = Vec::new();
        for tp in &tps {
            let next = ctx.store.checkpoint(tp)?.map_or(-1, |cp| cp.next_source.0);
            if next < ends.source[tp] {
                behind.push(format!(
                    "{tp}: stored up to {next}, source end {}",
                    ends.source[tp]
                ));
            }
        }
        if !behind.is_empty() {
            why = format!("mirrored but not stored: {}", summarize(&behind));
            ctx.mirror.release_topics(&c.topics).await?;
            continue;
        }
        let (hw, target) = (ends.source, ends.target);
        // The target becomes the primary: strait's write protection of its copies goes.
        let principals = ctx.mirror.protect_principals();
        if !principals.is_empty()
            && let Err(e) =
                strait_linker::mirror::protect::unprotect(&ctx.target, &c.topics, principals).await
        {
            why = format!("target: lifting the mirror topics' DENY WRITE ACLs: {e}");
            ctx.mirror.release_topics(&c.topics).await?;
            inner.pause(POLL_MS).await;
            continue;
        }
        for g in &c.groups {
            ctx.groups.mark_moved(g)?;
        }
        let point: Vec<PartitionPoint> = tps
            .iter()
            .map(|tp| PartitionPoint {
                topic: tp.topic.clone(),
                partition: tp.partition,
                source_end: hw[tp],
                target_end: target[tp],
            })
            .collect();
        let checks = vec![Check {
            name: "cutover_point_recorded".into(),
            ok: true,
            detail: format!(
                "{} partitions; mirroring of {:?} stopped",
                point.len(),
                c.topics
            ),
        }];
        return reach(inner, c, op, Stage::Promoted, checks, |c| {
            c.cutover_point = point.clone();
            c.promoted_ms = Some(now_ms());
            let pause = c.fenced_ms.map(|f| now_ms().saturating_sub(f));
            machine::push_event(
                c,
                now_ms(),
                "promoted",
                format!(
                    "the target is the primary for {:?}; write pause so far {} ms",
                    c.topics,
                    pause.unwrap_or(0)
                ),
                "strait",
            );
        });
    }
}

/// Undoes a failed or expired advance: lift the fence, resume mirroring and group sync, back
/// to `mirroring`. Idempotent.
async fn undo(
    inner: &Inner,
    c: &Cutover,
    op: &Operation,
    kind: &str,
    why: String,
) -> Result<(), ApiError> {
    tracing::warn!(cutover = %c.id, kind, "{why}");
    if let Err(e) = rollback::undo_fence_and_hold(inner, c).await {
        // Leave the operation in place: the driver retries the undo.
        event(
            inner,
            &c.id,
            "undo_failed",
            format!("{why}; undo failed, retrying: {e}"),
        )?;
        inner.pause(2_000).await;
        return Ok(());
    }
    inner.update(&c.id, |c| {
        if !same_op(c.operation.as_ref(), op) {
            return Ok(());
        }
        c.operation = None;
        c.stage = Stage::Mirroring;
        c.fenced_ms = None;
        c.fenced_ends.clear();
        machine::push_event(
            c,
            now_ms(),
            kind,
            format!("{why}; fence lifted, back to mirroring"),
            "strait",
        );
        Ok(())
    })?;
    Ok(())
}

/// Records writes that reached the fenced source after the fence (once per new end).
pub(super) async fn watch_stragglers(inner: &Inner, c: &Cutover) -> Result<(), String> {
    if c.fenced_ends.is_empty() {
        return Ok(());
    }
    let tps: Vec<TopicPartition> = c
        .fenced_ends
        .keys()
        .filter_map(|k| {
            let (t, p) = k.rsplit_once('-')?;
            Some(TopicPartition::new(t, p.parse().ok()?))
        })
        .collect();
    let ends = cluster::ends(&inner.ctx.source, &tps, Isolation::ReadUncommitted).await?;
    note_stragglers(inner, c, &ends).await
}

/// Records as stragglers the fenced partitions whose source end in `ends` moved past the end
/// seen at the fence (or at the last straggler noted). Partitions `ends` does not name, or
/// that `c` did not fence, are not looked at.
async fn note_stragglers(
    inner: &Inner,
    c: &Cutover,
    ends: &BTreeMap<TopicPartition, i64>,
) -> Result<(), String> {
    if c.fenced_ends.is_empty() {
        return Ok(());
    }
    let mut found = Vec::new();
    for (tp, end) in ends {
        let Some(&fenced) = c.fenced_ends.get(&key(tp)) else {
            continue;
        };
        let seen = c
            .stragglers
            .iter()
            .filter(|s| s.topic == tp.topic && s.partition == tp.partition)
            .map(|s| s.seen_end)
            .max()
            .unwrap_or(fenced);
        if *end > seen {
            found.push((tp.clone(), fenced, *end));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    let since = now_ms().saturating_sub(60_000) as i64;
    let tps: Vec<_> = found.iter().map(|(tp, _, _)| tp.clone()).collect();
    let producers = cluster::recent_producers(&inner.ctx.source, &tps, since)
        .await
        .unwrap_or_default();
    let stragglers: Vec<Straggler> = found
        .into_iter()
        .map(|(tp, fenced_end, seen_end)| Straggler {
            cluster: "source".into(),
            producer_ids: producers.get(&tp).cloned().unwrap_or_default(),
            topic: tp.topic,
            partition: tp.partition,
            fenced_end,
            seen_end,
            at_ms: now_ms(),
        })
        .collect();
    for s in &stragglers {
        tracing::warn!(cutover = %c.id, topic = %s.topic, partition = s.partition, fenced_end = s.fenced_end, seen_end = s.seen_end, producers = ?s.producer_ids, "STRAGGLER: a write reached the fenced source");
    }
    inner
        .update(&c.id, |c| {
            for s in &stragglers {
                machine::push_event(
                    c,
                    now_ms(),
                    "straggler",
                    format!(
                        "{}-{}: source end moved from {} to {} after the fence (producers {:?}){}",
                        s.topic,
                        s.partition,
                        s.fenced_end,
                        s.seen_end,
                        s.producer_ids,
                        if c.stage == Stage::Promoted {
                            "; these records are NOT on the target"
                        } else {
                            "; mirrored before promotion"
                        }
                    ),
                    "strait",
                );
                c.stragglers.push(s.clone());
            }
            Ok(())
        })
        .map_err(|e| e.message)?;
    Ok(())
}
