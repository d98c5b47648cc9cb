//! The cutover service: validates requests, persists cutovers and runs their transitions.
//!
//! Requests are answered at once: a transition is persisted as an [`Operation`] and carried
//! out by one driver task per cutover ([`super::driver`]), so a restart resumes it from the
//! store. Every change is a compare-and-swap on the stored cutover with its version bumped,
//! which gives the API its optimistic concurrency and keeps the driver and the handlers from
//! overwriting each other.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use strait_linker::client::KafkaClient;
use strait_linker::mirror::MirrorHandle;
use strait_linker::state::{Namespace, StateStore};
use strait_offset_sync::GroupSync;
use tokio_util::sync::CancellationToken;

use super::machine::{self, Decision, now_ms};
use super::model::{
    AdvanceRequest, CreateCutover, Cutover, DryRun, Operation, OperationKind, RehearsalMode,
    RehearsalRequest, Report, RollbackRequest, Stage,
};
use super::{checks, driver};
use crate::error::ApiError;

/// What the service needs from the rest of strait.
#[derive(Debug, Clone)]
pub struct CutoverContext {
    /// Source cluster client.
    pub source: KafkaClient,
    /// Target cluster client.
    pub target: KafkaClient,
    /// The running mirror.
    pub mirror: MirrorHandle,
    /// The running group sync.
    pub groups: GroupSync,
    /// The state store.
    pub store: Arc<StateStore>,
}

/// The answer to a create / advance / rollback request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A dry run: nothing changed (HTTP 200).
    DryRun(DryRun),
    /// The request started (or created) something (HTTP 202 for transitions, 201 for create).
    Accepted(Cutover),
    /// The request had already taken effect; nothing was done (HTTP 200).
    Unchanged(Cutover),
}

/// Cheaply cloned handle on the cutover service.
#[derive(Debug, Clone)]
pub struct CutoverService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) ctx: CutoverContext,
    cutovers: Namespace<Cutover>,
    pub(super) cancel: CancellationToken,
    /// Cutovers with a driver task running.
    drivers: Mutex<BTreeSet<String>>,
    /// Serializes create requests (name and topic uniqueness are checked across cutovers).
    creating: tokio::sync::Mutex<()>,
}

impl CutoverService {
    /// Opens the persisted cutovers and resumes any transition that was in progress (and the
    /// straggler watch of fenced and promoted waves).
    pub fn start(ctx: CutoverContext, cancel: CancellationToken) -> Result<Self, ApiError> {
        let cutovers = ctx.store.namespace("cutovers")?;
        let svc = Self {
            inner: Arc::new(Inner {
                ctx,
                cutovers,
                cancel,
                drivers: Mutex::new(BTreeSet::new()),
                creating: tokio::sync::Mutex::new(()),
            }),
        };
        for c in svc.list_sync()? {
            if c.operation.is_some() || driver::watched(c.stage) {
                if c.operation.is_some() {
                    svc.inner.update(&c.id, |c| {
                        machine::push_event(
                            c,
                            now_ms(),
                            "resumed",
                            "strait restarted; resuming the operation in progress".into(),
                            "strait",
                        );
                        Ok(())
                    })?;
                }
                Inner::ensure_driver(&svc.inner, &c.id);
            }
        }
        Ok(svc)
    }

    fn list_sync(&self) -> Result<Vec<Cutover>, ApiError> {
        let mut all: Vec<Cutover> = self
            .inner
            .cutovers
            .list()?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        all.sort_by_key(|c| (c.created_ms, c.id.clone()));
        Ok(all)
    }

    /// Every cutover, oldest first.
    pub async fn list(&self) -> Result<Vec<Cutover>, ApiError> {
        self.list_sync()
    }

    /// One cutover.
    pub async fn get(&self, id: &str) -> Result<Cutover, ApiError> {
        self.inner.load(id)
    }

    /// Creates a cutover in stage `mirroring` (or reports what creating it would check).
    /// `actor` is the authenticated token's name.
    pub async fn create(&self, req: CreateCutover, actor: &str) -> Result<Outcome, ApiError> {
        self.create_inner(req, actor, None).await
    }

    /// Starts a rehearsal: a cutover of the wave advanced to `promoted` and then rolled back
    /// (a failback), back to back, on the configured clusters. Follow it with
    /// [`CutoverService::report`].
    pub async fn rehearse(&self, req: RehearsalRequest, actor: &str) -> Result<Outcome, ApiError> {
        if req.mode == RehearsalMode::Shadow {
            return Err(ApiError::bad_request(
                "mode: shadow rehearsals (on prefixed copies) are not available yet; use live \
                 against staging clusters",
            )
            .with_details(serde_json::json!({ "field": "mode" })));
        }
        let create = CreateCutover {
            name: req
                .name
                .unwrap_or_else(|| format!("rehearsal-{}", now_ms())),
            topics: req.topics,
            groups: req.groups,
            fence: req.fence,
            deadlines: req.deadlines,
            max_lag_records: req.max_lag_records,
            dry_run: false,
        };
        let start = |c: &Cutover| Operation {
            kind: OperationKind::Advance,
            to: Stage::Promoted,
            working_on: Stage::Fenced,
            started_ms: now_ms(),
            deadline_ms: machine::deadline_for(c, Stage::Fenced, OperationKind::Advance, now_ms()),
            requested_by: actor.to_string(),
            progress: "rehearsal: starting fenced".into(),
        };
        let out = self.create_inner(create, actor, Some(&start)).await?;
        if let Outcome::Accepted(c) = &out {
            Inner::ensure_driver(&self.inner, &c.id);
        }
        Ok(out)
    }

    /// The report of a cutover or rehearsal.
    pub async fn report(&self, id: &str) -> Result<Report, ApiError> {
        Ok(super::report::build(&self.inner.load(id)?))
    }

    async fn create_inner(
        &self,
        req: CreateCutover,
        actor: &str,
        rehearsal: Option<&(dyn Fn(&Cutover) -> Operation + Sync)>,
    ) -> Result<Outcome, ApiError> {
        machine::validate_create(&req)?;
        let _one_at_a_time = self.inner.creating.lock().await;
        let mut blockers = Vec::new();
        for other in self.list_sync()? {
            if other.stage == Stage::RolledBack {
                continue;
            }
            if other.name == req.name {
                blockers.push(format!(
                    "cutover {} already has the name {:?}",
                    other.id, req.name
                ));
            }
            for t in req.topics.iter().filter(|t| other.topics.contains(t)) {
                blockers.push(format!(
                    "topic {t} belongs to cutover {} ({})",
                    other.id, other.name
                ));
            }
        }
        let (checks, mut check_blockers) = checks::creation(&self.inner.ctx, &req).await;
        blockers.append(&mut check_blockers);
        if req.dry_run {
            return Ok(Outcome::DryRun(DryRun {
                dry_run: true,
                stage: None,
                to: Stage::Mirroring,
                checks,
                actions: vec![format!(
                    "create cutover {:?} for topics {:?} and groups {:?} in stage mirroring",
                    req.name, req.topics, req.groups
                )],
                blockers,
            }));
        }
        if !blockers.is_empty() {
            return Err(ApiError::new(
                crate::error::ErrorCode::Conflict,
                "the cutover cannot be created",
            )
            .with_details(serde_json::json!({ "blockers": blockers, "checks": checks })));
        }
        let id = format!("co-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut c = machine::new_cutover(id.clone(), req, actor, now_ms());
        c.checks = checks;
        let lag = driver::wave_lag(&self.inner, &c.topics);
        driver::log_stage(&mut c, Stage::Mirroring, lag);
        if let Some(op) = rehearsal {
            c.rehearsal = true;
            let op = op(&c);
            machine::start(&mut c, op, now_ms());
        }
        match self.inner.cutovers.cas(&id, None, Some(&c))? {
            Ok(()) => {
                self.inner.ctx.store.flush()?;
                Ok(Outcome::Accepted(c))
            }
            Err(_) => Err(ApiError::internal("cutover id collision; retry")),
        }
    }

    /// Starts moving the cutover to `req.to`. `if_match` is the `If-Match` header's version.
    pub async fn advance(
        &self,
        id: &str,
        req: AdvanceRequest,
        if_match: Option<u64>,
        actor: &str,
    ) -> Result<Outcome, ApiError> {
        let c = self.inner.load(id)?;
        machine::check_version(&c, if_match, req.version)?;
        let op = match machine::decide_advance(&c, &req, actor, now_ms())? {
            Decision::Unchanged if req.dry_run => {
                return Ok(Outcome::DryRun(unchanged_dry(&c, req.to)));
            }
            Decision::Unchanged => return Ok(Outcome::Unchanged(c)),
            Decision::Start(op) => op,
        };
        let (checks, actions, blockers) = checks::advance(&self.inner.ctx, &c, req.to).await;
        if req.dry_run {
            return Ok(Outcome::DryRun(DryRun {
                dry_run: true,
                stage: Some(c.stage),
                to: req.to,
                checks,
                actions,
                blockers,
            }));
        }
        if !blockers.is_empty() {
            return Err(ApiError::illegal(
                format!("cutover {id} cannot advance to {} now", req.to),
                blockers,
            ));
        }
        self.begin(&c, op, checks).await
    }

    /// Starts a rollback (a failback after promotion).
    pub async fn rollback(
        &self,
        id: &str,
        req: RollbackRequest,
        if_match: Option<u64>,
        actor: &str,
    ) -> Result<Outcome, ApiError> {
        let c = self.inner.load(id)?;
        machine::check_version(&c, if_match, req.version)?;
        let op = match machine::decide_rollback(&c, actor, now_ms())? {
            Decision::Unchanged if req.dry_run => {
                return Ok(Outcome::DryRun(unchanged_dry(&c, Stage::RolledBack)));
            }
            Decision::Unchanged => return Ok(Outcome::Unchanged(c)),
            Decision::Start(op) => op,
        };
        let (checks, actions, blockers) = checks::rollback(&self.inner.ctx, &c).await;
        if req.dry_run {
            return Ok(Outcome::DryRun(DryRun {
                dry_run: true,
                stage: Some(c.stage),
                to: Stage::RolledBack,
                checks,
                actions,
                blockers,
            }));
        }
        if !blockers.is_empty() {
            return Err(ApiError::illegal(
                format!("cutover {id} cannot roll back now"),
                blockers,
            ));
        }
        self.begin(&c, op, checks).await
    }

    /// Persists `op` if the cutover is still as the request saw it, then runs it.
    async fn begin(
        &self,
        seen: &Cutover,
        op: Operation,
        checks: Vec<super::model::Check>,
    ) -> Result<Outcome, ApiError> {
        let mut c = seen.clone();
        machine::start(&mut c, op, now_ms());
        c.checks = checks;
        c.version += 1;
        c.updated_ms = now_ms();
        match self.inner.cutovers.cas(&c.id, Some(seen), Some(&c))? {
            Ok(()) => self.inner.ctx.store.flush()?,
            // Changed since we looked (the driver moved on): the caller retries with the
            // version it now sees.
            Err(current) => {
                let v = current.map_or(0, |c| c.version);
                return Err(ApiError::stale(seen.version, v));
            }
        }
        Inner::ensure_driver(&self.inner, &c.id);
        Ok(Outcome::Accepted(c))
    }
}

/// The dry run of a request that would change nothing.
fn unchanged_dry(c: &Cutover, to: Stage) -> DryRun {
    DryRun {
        dry_run: true,
        stage: Some(c.stage),
        to,
        checks: Vec::new(),
        actions: vec!["nothing: the request has already taken effect".into()],
        blockers: Vec::new(),
    }
}

impl Inner {
    pub(super) fn load(&self, id: &str) -> Result<Cutover, ApiError> {
        self.cutovers
            .get(id)?
            .ok_or_else(|| ApiError::not_found(format!("no cutover {id:?}")))
    }

    /// Applies `f` to the stored cutover and stores the result with its version bumped,
    /// retrying if another writer got in between. `f` returning an error changes nothing.
    pub(super) fn update<T>(
        &self,
        id: &str,
        mut f: impl FnMut(&mut Cutover) -> Result<T, ApiError>,
    ) -> Result<(Cutover, T), ApiError> {
        loop {
            let current = self.load(id)?;
            let mut next = current.clone();
            let out = f(&mut next)?;
            next.version = current.version + 1;
            next.updated_ms = now_ms();
            if self.cutovers.cas(id, Some(&current), Some(&next))?.is_ok() {
                // A cutover changes rarely and each change must survive a crash (a fence
                // recorded as lifted must have been lifted): make it durable now.
                self.ctx.store.flush()?;
                return Ok((next, out));
            }
        }
    }

    /// Sets the progress note of `op`, if it is still the cutover's operation (a note for
    /// people: what the step is doing or waiting for).
    pub(super) fn set_progress(
        &self,
        id: &str,
        op: &Operation,
        text: String,
    ) -> Result<(), ApiError> {
        self.update(id, |c| {
            if let Some(o) = c
                .operation
                .as_mut()
                .filter(|o| o.started_ms == op.started_ms)
            {
                o.progress.clone_from(&text);
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Makes sure a driver task runs for `id`.
    pub(super) fn ensure_driver(this: &Arc<Self>, id: &str) {
        let mut running = this.drivers.lock().unwrap_or_else(|e| e.into_inner());
        if running.insert(id.to_string()) {
            let (inner, id) = (Arc::clone(this), id.to_string());
            tokio::spawn(async move { driver::run(inner, id).await });
        }
    }

    /// Called by a driver with nothing left to do: unregisters it unless work arrived in the
    /// meantime (checked under the lock that [`Inner::ensure_driver`] takes, so no request is
    /// left without a driver). Returns true when the driver must exit.
    pub(super) fn driver_exit(&self, id: &str) -> bool {
        let mut running = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
        let busy = self.load(id).is_ok_and(|c| {
            c.operation.is_some() || (driver::watched(c.stage) && !self.cancel.is_cancelled())
        });
        if busy && !self.cancel.is_cancelled() {
            return false;
        }
        running.remove(id);
        true
    }

    /// True while `op` is still the cutover's operation (not superseded by a rollback or
    /// finished).
    pub(super) fn still_current(&self, id: &str, op: &Operation) -> bool {
        !self.cancel.is_cancelled()
            && self.load(id).is_ok_and(|c| {
                c.operation.as_ref().is_some_and(|o| {
                    o.kind == op.kind
                        && o.working_on == op.working_on
                        && o.started_ms == op.started_ms
                })
            })
    }

    /// Sleeps, waking early on shutdown.
    pub(super) async fn pause(&self, ms: u64) {
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
        }
    }
}

/// True when `current` is the same step of the same operation as `op` (its progress note
/// may have changed).
pub(super) fn same_op(current: Option<&Operation>, op: &Operation) -> bool {
    current.is_some_and(|o| {
        o.kind == op.kind && o.working_on == op.working_on && o.started_ms == op.started_ms
    })
}

/// True for an advance operation.
pub(super) fn is_advance(op: &Operation) -> bool {
    op.kind == OperationKind::Advance
}
