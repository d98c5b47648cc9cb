//! The transition rules of a cutover: which requests are legal in which state, and what an
//! accepted request changes. Pure functions over [`Cutover`], no I/O, so every rule is unit
//! tested; the service persists their results and the driver carries them out.
//!
//! ```text
//!   mirroring ──advance──► fenced ──► drained ──► promoted
//!       ▲  │                 │           │           │
//!       │  └──────rollback───┴───────────┴───────────┴──► rolled_back (terminal)
//!       └── a fence / drain / promote deadline expires (undone, back to mirroring)
//! ```

use super::model::{
    AdvanceRequest, CreateCutover, Cutover, Event, Operation, OperationKind, Stage,
};
use crate::error::ApiError;

/// What a request amounts to, once validated against the cutover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Already in effect: answer with the current state, change nothing.
    Unchanged,
    /// Start this operation.
    Start(Operation),
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Validates a create request's fields (not the clusters: the service checks those).
pub fn validate_create(req: &CreateCutover) -> Result<(), ApiError> {
    let bad = |field: &str, why: &str| {
        Err(ApiError::bad_request(format!("{field}: {why}"))
            .with_details(serde_json::json!({ "field": field })))
    };
    if req.name.trim().is_empty() || req.name.len() > 200 {
        return bad("name", "must be 1 to 200 characters");
    }
    if req.topics.is_empty() {
        return bad("topics", "a wave needs at least one topic");
    }
    if let Some(t) = req.topics.iter().find(|t| t.is_empty()) {
        return bad("topics", &format!("invalid topic name {t:?}"));
    }
    if has_duplicates(&req.topics) {
        return bad("topics", "a topic is listed twice");
    }
    if has_duplicates(&req.groups) || req.groups.iter().any(|g| g.is_empty()) {
        return bad("groups", "group names must be non-empty and listed once");
    }
    if req.fence.principals.is_empty() || req.fence.principals.iter().any(|p| !p.contains(':')) {
        return bad(
            "fence.principals",
            "list principals as TYPE:NAME, e.g. User:*",
        );
    }
    let d = &req.deadlines;
    if [d.fence_ms, d.drain_ms, d.promote_ms, d.failback_ms].contains(&0) {
        return bad("deadlines", "every deadline must be above 0 ms");
    }
    if req.fence.quiet_period_ms >= d.fence_ms {
        return bad(
            "fence.quiet_period_ms",
            "the quiet period must be shorter than deadlines.fence_ms",
        );
    }
    if req.max_lag_records < 0 {
        return bad("max_lag_records", "must be 0 or more");
    }
    Ok(())
}

fn has_duplicates(items: &[String]) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    items.iter().any(|i| !seen.insert(i))
}

/// A new cutover in stage `mirroring`.
pub fn new_cutover(id: String, req: CreateCutover, actor: &str, now: u64) -> Cutover {
    Cutover {
        events: vec![Event {
            at_ms: now,
            kind: "created".into(),
            message: format!(
                "cutover {:?} created for topics {:?} and groups {:?}",
                req.name, req.topics, req.groups
            ),
            actor: actor.to_string(),
        }],
        id,
        name: req.name,
        version: 1,
        stage: Stage::Mirroring,
        topics: req.topics,
        groups: req.groups,
        fence: req.fence,
        deadlines: req.deadlines,
        max_lag_records: req.max_lag_records,
        operation: None,
        checks: Vec::new(),
        cutover_point: Vec::new(),
        fenced_ends: Default::default(),
        stragglers: Vec::new(),
        fenced_ms: None,
        promoted_ms: None,
        rolled_back_ms: None,
        failback: None,
        rehearsal: false,
        stage_log: Vec::new(),
        created_ms: now,
        updated_ms: now,
    }
}

/// Checks the caller's expected version (`If-Match` header or body field) against the
/// cutover's.
pub fn check_version(c: &Cutover, header: Option<u64>, body: Option<u64>) -> Result<(), ApiError> {
    let expected = match (header, body) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::bad_request(format!(
                "If-Match ({h}) and version ({b}) disagree"
            )));
        }
        (h, b) => h.or(b),
    };
    match expected {
        Some(v) if v != c.version => Err(ApiError::stale(v, c.version)),
        _ => Ok(()),
    }
}

/// The deadline of the step that works on `stage`.
pub fn deadline_for(c: &Cutover, stage: Stage, kind: OperationKind, now: u64) -> u64 {
    let d = &c.deadlines;
    now + match (kind, stage) {
        (OperationKind::Rollback, _) => d.failback_ms,
        (_, Stage::Fenced) => d.fence_ms,
        (_, Stage::Drained) => d.drain_ms,
        _ => d.promote_ms,
    }
}

/// Decides an advance request.
pub fn decide_advance(
    c: &Cutover,
    req: &AdvanceRequest,
    actor: &str,
    now: u64,
) -> Result<Decision, ApiError> {
    if req.to == Stage::RolledBack {
        return Err(ApiError::illegal(
            "advance cannot reach rolled_back",
            vec!["use POST /v1/cutovers/{id}/rollback".into()],
        ));
    }
    if c.stage == Stage::RolledBack {
        return Err(ApiError::illegal(
            format!("cutover {} is rolled back", c.id),
            vec!["a rolled-back cutover is finished; create a new one".into()],
        ));
    }
    if let Some(op) = &c.operation {
        if op.kind == OperationKind::Advance && op.to == req.to {
            return Ok(Decision::Unchanged);
        }
        return Err(ApiError::illegal(
            format!("cutover {} is busy", c.id),
            vec![format!(
                "{} to {} in progress (working on {}: {})",
                kind_name(op.kind),
                op.to,
                op.working_on,
                op.progress
            )],
        ));
    }
    if req.to == c.stage {
        return Ok(Decision::Unchanged);
    }
    if req.to < c.stage {
        return Err(ApiError::illegal(
            format!("cannot advance from {} back to {}", c.stage, req.to),
            vec!["stages only move forward; use rollback".into()],
        ));
    }
    let working_on = c.stage.next().expect("stage before req.to has a next");
    Ok(Decision::Start(Operation {
        kind: OperationKind::Advance,
        to: req.to,
        working_on,
        started_ms: now,
        deadline_ms: deadline_for(c, working_on, OperationKind::Advance, now),
        requested_by: actor.to_string(),
        progress: format!("starting {working_on}"),
    }))
}

/// Decides a rollback request. A rollback may interrupt an advance in progress (that is how
/// an operator aborts one); it is the only request that may.
pub fn decide_rollback(c: &Cutover, actor: &str, now: u64) -> Result<Decision, ApiError> {
    if c.stage == Stage::RolledBack {
        return Ok(Decision::Unchanged);
    }
    if let Some(op) = &c.operation
        && op.kind == OperationKind::Rollback
    {
        return Ok(Decision::Unchanged);
    }
    Ok(Decision::Start(Operation {
        kind: OperationKind::Rollback,
        to: Stage::RolledBack,
        working_on: Stage::RolledBack,
        started_ms: now,
        deadline_ms: deadline_for(c, Stage::RolledBack, OperationKind::Rollback, now),
        requested_by: actor.to_string(),
        progress: if c.stage == Stage::Promoted {
            "starting failback".into()
        } else {
            "starting rollback".into()
        },
    }))
}

/// Applies an accepted operation to the cutover (the caller persists it).
pub fn start(c: &mut Cutover, op: Operation, now: u64) {
    let message = match op.kind {
        OperationKind::Advance => format!("advance from {} to {} requested", c.stage, op.to),
        OperationKind::Rollback if c.stage == Stage::Promoted => {
            "rollback requested: failback from the target to the source".to_string()
        }
        OperationKind::Rollback => format!("rollback requested from {}", c.stage),
    };
    if let Some(prev) = &c.operation {
        push_event(
            c,
            now,
            "advance_aborted",
            format!("advance to {} interrupted by a rollback", prev.to),
            &op.requested_by,
        );
    }
    let kind = match op.kind {
        OperationKind::Advance => "advance_requested",
        OperationKind::Rollback => "rollback_requested",
    };
    let actor = op.requested_by.clone();
    c.operation = Some(op);
    push_event(c, now, kind, message, &actor);
}

/// Adds an event to the timeline.
pub fn push_event(c: &mut Cutover, now: u64, kind: &str, message: String, actor: &str) {
    c.events.push(Event {
        at_ms: now,
        kind: kind.to_string(),
        message,
        actor: actor.to_string(),
    });
}

/// Records that the advance reached `stage`: the operation moves on to the next stage or
/// ends.
pub fn reached(c: &mut Cutover, stage: Stage, now: u64) {
    c.stage = stage;
    push_event(
        c,
        now,
        "stage_reached",
        format!("stage {stage} reached"),
        "strait",
    );
    let next = match &c.operation {
        Some(op) if op.kind == OperationKind::Advance && op.to > stage => stage.next(),
        _ => None,
    };
    match next {
        Some(n) => {
            let deadline = deadline_for(c, n, OperationKind::Advance, now);
            if let Some(op) = c.operation.as_mut() {
                op.working_on = n;
                op.deadline_ms = deadline;
                op.progress = format!("starting {n}");
            }
        }
        None => c.operation = None,
    }
}

fn kind_name(k: OperationKind) -> &'static str {
    match k {
        OperationKind::Advance => "advance",
        OperationKind::Rollback => "rollback",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cutover::model::{Deadlines, FenceMode, FenceSpec};
    use crate::error::ErrorCode;

    fn req() -> CreateCutover {
        CreateCutover {
            name: "wave-1".into(),
            topics: vec!["orders".into()],
            groups: vec!["billing".into()],
            fence: FenceSpec {
                mode: FenceMode::Acl,
                failback_mode: None,
                principals: vec!["User:*".into()],
                quiet_period_ms: 1_000,
            },
            deadlines: Deadlines::default(),
            max_lag_records: 100,
            dry_run: false,
        }
    }

    fn cutover() -> Cutover {
        new_cutover("c1".into(), req(), "ops", 1_000)
    }

    fn advance(to: Stage) -> AdvanceRequest {
        AdvanceRequest {
            to,
            dry_run: false,
            version: None,
        }
    }

    #[test]
    fn create_validation_names_the_field() {
        assert!(validate_create(&req()).is_ok());
        let mut r = req();
        r.topics.clear();
        let e = validate_create(&r).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(e.details["field"], "topics");
        let mut r = req();
        r.topics.push("orders".into());
        assert_eq!(validate_create(&r).unwrap_err().details["field"], "topics");
        let mut r = req();
        r.fence.quiet_period_ms = r.deadlines.fence_ms;
        assert_eq!(
            validate_create(&r).unwrap_err().details["field"],
            "fence.quiet_period_ms"
        );
        let mut r = req();
        r.fence.principals = vec!["alice".into()];
        assert_eq!(
            validate_create(&r).unwrap_err().details["field"],
            "fence.principals"
        );
    }

    #[test]
    fn advance_starts_at_the_next_stage_and_walks_every_stage() {
        let mut c = cutover();
        let Decision::Start(op) = decide_advance(&c, &advance(Stage::Promoted), "ops", 5).unwrap()
        else {
            panic!("expected a start")
        };
        assert_eq!(op.working_on, Stage::Fenced);
        assert_eq!(op.deadline_ms, 5 + c.deadlines.fence_ms);
        start(&mut c, op, 5);
        reached(&mut c, Stage::Fenced, 6);
        assert_eq!(c.operation.as_ref().unwrap().working_on, Stage::Drained);
        assert_eq!(
            c.operation.as_ref().unwrap().deadline_ms,
            6 + c.deadlines.drain_ms
        );
        reached(&mut c, Stage::Drained, 7);
        reached(&mut c, Stage::Promoted, 8);
        assert!(c.operation.is_none());
        assert_eq!(c.stage, Stage::Promoted);
        let kinds: Vec<_> = c.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "created",
                "advance_requested",
                "stage_reached",
                "stage_reached",
                "stage_reached"
            ]
        );
    }

    #[test]
    fn repeated_requests_change_nothing() {
        let mut c = cutover();
        assert_eq!(
            decide_advance(&c, &advance(Stage::Mirroring), "ops", 1).unwrap(),
            Decision::Unchanged
        );
        let Decision::Start(op) = decide_advance(&c, &advance(Stage::Fenced), "ops", 1).unwrap()
        else {
            panic!()
        };
        start(&mut c, op, 1);
        assert_eq!(
            decide_advance(&c, &advance(Stage::Fenced), "ops", 2).unwrap(),
            Decision::Unchanged
        );
        // A different target while busy is a conflict listing the blocker.
        let e = decide_advance(&c, &advance(Stage::Promoted), "ops", 2).unwrap_err();
        assert_eq!(e.code, ErrorCode::IllegalTransition);
        assert!(
            e.details["blockers"][0]
                .as_str()
                .unwrap()
                .contains("in progress")
        );
        c.operation = None;
        c.stage = Stage::RolledBack;
        assert_eq!(decide_rollback(&c, "ops", 3).unwrap(), Decision::Unchanged);
    }

    #[test]
    fn illegal_advances_are_409() {
        let mut c = cutover();
        c.stage = Stage::Drained;
        for to in [Stage::Fenced, Stage::Mirroring, Stage::RolledBack] {
            let e = decide_advance(&c, &advance(to), "ops", 1).unwrap_err();
            assert_eq!(e.code, ErrorCode::IllegalTransition, "{to}");
        }
        c.stage = Stage::RolledBack;
        let e = decide_advance(&c, &advance(Stage::Promoted), "ops", 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::IllegalTransition);
    }

    #[test]
    fn rollback_interrupts_an_advance() {
        let mut c = cutover();
        let Decision::Start(op) = decide_advance(&c, &advance(Stage::Drained), "ops", 1).unwrap()
        else {
            panic!()
        };
        start(&mut c, op, 1);
        let Decision::Start(rb) = decide_rollback(&c, "sre", 2).unwrap() else {
            panic!()
        };
        start(&mut c, rb, 2);
        let op = c.operation.as_ref().unwrap();
        assert_eq!(op.kind, OperationKind::Rollback);
        assert_eq!(op.requested_by, "sre");
        assert!(c.events.iter().any(|e| e.kind == "advance_aborted"));
        assert_eq!(decide_rollback(&c, "sre", 3).unwrap(), Decision::Unchanged);
    }

    #[test]
    fn versions_are_checked() {
        let c = cutover();
        assert!(check_version(&c, None, None).is_ok());
        assert!(check_version(&c, Some(1), None).is_ok());
        assert_eq!(
            check_version(&c, None, Some(7)).unwrap_err().code,
            ErrorCode::StaleVersion
        );
        assert_eq!(
            check_version(&c, Some(1), Some(2)).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }
}
