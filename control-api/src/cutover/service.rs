//! The cutover service: validates requests, persists cutovers and runs their transitions.

use std::sync::Arc;

use strait_linker::client::KafkaClient;
use strait_linker::mirror::MirrorHandle;
use strait_linker::state::{Namespace, StateStore};
use strait_offset_sync::GroupSync;
use tokio_util::sync::CancellationToken;

use super::model::{AdvanceRequest, CreateCutover, Cutover, DryRun, RollbackRequest};
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
struct Inner {
    ctx: CutoverContext,
    cutovers: Namespace<Cutover>,
    cancel: CancellationToken,
}

impl CutoverService {
    /// Opens the persisted cutovers and resumes any transition that was in progress.
    pub fn start(ctx: CutoverContext, cancel: CancellationToken) -> Result<Self, ApiError> {
        let cutovers = ctx.store.namespace("cutovers")?;
        Ok(Self {
            inner: Arc::new(Inner {
                ctx,
                cutovers,
                cancel,
            }),
        })
    }

    /// Every cutover, oldest first.
    pub async fn list(&self) -> Result<Vec<Cutover>, ApiError> {
        let mut all: Vec<Cutover> = self
            .inner
            .cutovers
            .list()?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        all.sort_by_key(|c| c.created_ms);
        Ok(all)
    }

    /// One cutover.
    pub async fn get(&self, id: &str) -> Result<Cutover, ApiError> {
        self.inner
            .cutovers
            .get(id)?
            .ok_or_else(|| ApiError::not_found(format!("no cutover {id:?}")))
    }

    /// Creates a cutover in stage `mirroring` (or reports what creating it would check).
    /// `actor` is the authenticated token's name.
    pub async fn create(&self, req: CreateCutover, actor: &str) -> Result<Outcome, ApiError> {
        let _ = (req, actor, &self.inner.ctx, &self.inner.cancel);
        Err(ApiError::internal("not built yet"))
    }

    /// Starts moving the cutover to `req.to`. `if_match` is the `If-Match` header's version.
    pub async fn advance(
        &self,
        id: &str,
        req: AdvanceRequest,
        if_match: Option<u64>,
        actor: &str,
    ) -> Result<Outcome, ApiError> {
        let _ = (id, req, if_match, actor);
        Err(ApiError::internal("not built yet"))
    }

    /// Starts a rollback (a failback after promotion).
    pub async fn rollback(
        &self,
        id: &str,
        req: RollbackRequest,
        if_match: Option<u64>,
        actor: &str,
    ) -> Result<Outcome, ApiError> {
        let _ = (id, req, if_match, actor);
        Err(ApiError::internal("not built yet"))
    }
}
