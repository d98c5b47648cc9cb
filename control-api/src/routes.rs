//! The route table: every route of the API, once. The router ([`crate::http::router`]) and
//! the OpenAPI document ([`crate::openapi::document`]) are both built from [`ROUTES`], so
//! they cannot drift apart. The handlers live here too.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::auth::Actor;
use crate::cutover::{
    AdvanceRequest, CreateCutover, Cutover, DryRun, Outcome, RehearsalRequest, Report,
    RollbackRequest,
};
use crate::error::{ApiError, ErrorCode};
use crate::http::{ApiJson, ApiPath, AppState, if_match};
use crate::status::{self, StatusReport};

/// Makes the JSON schema of a type (a `$ref` into `components/schemas` for named types).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// HTTP methods used by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    /// GET (and HEAD).
    Get,
    /// POST.
    Post,
}

impl Verb {
    /// Upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// A response body.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// `application/json` with this schema.
    Json(SchemaFn),
    /// Plain text of this content type.
    Text(&'static str),
}

/// A successful response of a route.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// When it is returned.
    pub description: &'static str,
    /// Body.
    pub body: Body,
}

/// One route.
#[derive(Debug)]
pub struct Route {
    /// Method.
    pub verb: Verb,
    /// Path template (`{name}` for a path parameter, as in axum and OpenAPI).
    pub path: &'static str,
    /// OpenAPI operation id (unique).
    pub operation_id: &'static str,
    /// One line.
    pub summary: &'static str,
    /// More, for the reference.
    pub description: &'static str,
    /// Needs a bearer token.
    pub auth: bool,
    /// Reads the `If-Match` header.
    pub if_match: bool,
    /// Request body schema (JSON), if the route takes one.
    pub request: Option<SchemaFn>,
    /// Successful responses.
    pub replies: &'static [Reply],
    /// Errors the route can answer besides 401 (added for `auth` routes).
    pub errors: &'static [ErrorCode],
    /// The handler.
    pub handler: fn() -> MethodRouter<AppState>,
}

const CUTOVER_OR_DRY_RUN_200: Reply = Reply {
    status: 200,
    description: "A dry run (`dry_run: true`; a `DryRun`), or the request had already taken \
                  effect and nothing was done (the `Cutover`).",
    body: Body::Json(schema::<CutoverOrDryRun>),
};

/// Every route of the API.
pub static ROUTES: &[Route] = &[
    Route {
        verb: Verb::Get,
        path: "/healthz",
        operation_id: "healthz",
        summary: "Liveness: 200 while the process serves requests.",
        description: "Says nothing about the clusters.",
        auth: false,
        if_match: false,
        request: None,
        replies: &[Reply {
            status: 200,
            description: "strait is serving.",
            body: Body::Json(schema::<Health>),
        }],
        errors: &[],
        handler: || get(healthz),
    },
    Route {
        verb: Verb::Get,
        path: "/readyz",
        operation_id: "readyz",
        summary: "Readiness: 200 once the mirror has reported its first discovery.",
        description: "Ready when the mirror has discovered at least one \
                      partition or reported a topic problem; a strait whose topic selection \
                      matches nothing stays not ready. 503 `unavailable` until then.",
        auth: false,
        if_match: false,
        request: None,
        replies: &[Reply {
            status: 200,
            description: "strait is ready.",
            body: Body::Json(schema::<Health>),
        }],
        errors: &[ErrorCode::Unavailable],
        handler: || get(readyz),
    },
    Route {
        verb: Verb::Get,
        path: "/metrics",
        operation_id: "metrics",
        summary: "Prometheus metrics (text exposition format 0.0.4).",
        description: "Per partition lag, state and throughput counters, per \
                      group sync state and translation delay, per cutover stage and \
                      stragglers, and `strait_up`.",
        auth: false,
        if_match: false,
        request: None,
        replies: &[Reply {
            status: 200,
            description: "The metrics.",
            body: Body::Text(crate::metrics::CONTENT_TYPE),
        }],
        errors: &[],
        handler: || get(metrics),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/openapi.json",
        operation_id: "openapi",
        summary: "This API's OpenAPI 3.1 document.",
        description: "Built from the same route table as the router.",
        auth: true,
        if_match: false,
        request: None,
        replies: &[Reply {
            status: 200,
            description: "The OpenAPI document.",
            body: Body::Json(schema::<serde_json::Value>),
        }],
        errors: &[],
        handler: || get(openapi),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/status",
        operation_id: "getStatus",
        summary: "Mirror and group sync status.",
        description: "Per partition: source end, target end, lag in records and seconds, \
                      state. Per consumer group: sync state and last commits.",
        auth: true,
        if_match: false,
        request: None,
        replies: &[Reply {
            status: 200,
            description: "The status now.",
            body: Body::Json(schema::<StatusReport>),
        }],
        errors: &[],
        handler: || get(get_status),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/cutovers",
        operation_id: "listCutovers",
        summary: "Every cutover, oldest first.",
        description: "",
        auth: true,
        if_match: false,
        request: None,
        replies: &[Reply {
            status: 200,
            description: "The cutovers.",
            body: Body::Json(schema::<CutoverList>),
        }],
        errors: &[],
        handler: || get(list_cutovers),
    },
    Route {
        verb: Verb::Post,
        path: "/v1/cutovers",
        operation_id: "createCutover",
        summary: "Create a cutover (stage `mirroring`), or check one with `dry_run`.",
        description: "The token's name is recorded as the actor. `Location` names the new \
                      cutover and `ETag` carries its version.",
        auth: true,
        if_match: false,
        request: Some(schema::<CreateCutover>),
        replies: &[
            Reply {
                status: 201,
                description: "Created.",
                body: Body::Json(schema::<Cutover>),
            },
            CUTOVER_OR_DRY_RUN_200,
        ],
        errors: &[
            ErrorCode::BadRequest,
            ErrorCode::IllegalTransition,
            ErrorCode::Conflict,
        ],
        handler: || post(create_cutover),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/cutovers/{id}",
        operation_id: "getCutover",
        summary: "One cutover.",
        description: "`ETag` carries its version, for `If-Match`.",
        auth: true,
        if_match: false,
        request: None,
        replies: &[Reply {
            status: 200,
            description: "The cutover.",
            body: Body::Json(schema::<Cutover>),
        }],
        errors: &[ErrorCode::BadRequest, ErrorCode::NotFound],
        handler: || get(get_cutover),
    },
    Route {
        verb: Verb::Post,
        path: "/v1/cutovers/{id}/advance",
        operation_id: "advanceCutover",
        summary: "Start moving a cutover forward to stage `to`.",
        description: "Stages in between run in order. The expected version goes in \
                      `If-Match` or `version` (a stale one is 412). Poll `GET` until \
                      `operation` is null to follow it.",
        auth: true,
        if_match: true,
        request: Some(schema::<AdvanceRequest>),
        replies: &[
            Reply {
                status: 202,
                description: "Accepted: the transition runs in the background.",
                body: Body::Json(schema::<Cutover>),
            },
            CUTOVER_OR_DRY_RUN_200,
        ],
        errors: &[
            ErrorCode::BadRequest,
            ErrorCode::NotFound,
            ErrorCode::IllegalTransition,
            ErrorCode::StaleVersion,
        ],
        handler: || post(advance_cutover),
    },
    Route {
        verb: Verb::Post,
        path: "/v1/cutovers/{id}/rollback",
        operation_id: "rollbackCutover",
        summary: "Start a rollback (a failback after promotion).",
        description: "The expected version goes in `If-Match` or `version` (a stale one is \
                      412). The body is required (`{}` for defaults).",
        auth: true,
        if_match: true,
        request: Some(schema::<RollbackRequest>),
        replies: &[
            Reply {
                status: 202,
                description: "Accepted: the rollback runs in the background.",
                body: Body::Json(schema::<Cutover>),
            },
            CUTOVER_OR_DRY_RUN_200,
        ],
        errors: &[
            ErrorCode::BadRequest,
            ErrorCode::NotFound,
            ErrorCode::IllegalTransition,
            ErrorCode::StaleVersion,
        ],
        handler: || post(rollback_cutover),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/cutovers/{id}/report",
        operation_id: "cutoverReport",
        summary: "The report of a cutover or rehearsal.",
        description: "Result, stages reached with the wave's lag and checks, write pause \
                      (source fenced to target primary), cutover point, failback outcome, \
                      straggler writes, failed checks and the timeline.",
        auth: true,
        if_match: false,
        request: None,
        replies: &[Reply {
            status: 200,
            description: "The report.",
            body: Body::Json(schema::<Report>),
        }],
        errors: &[ErrorCode::BadRequest, ErrorCode::NotFound],
        handler: || get(cutover_report),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/cutovers/{id}/report.md",
        operation_id: "cutoverReportMarkdown",
        summary: "The report of a cutover or rehearsal, as Markdown.",
        description: "The same content as `GET /v1/cutovers/{id}/report`, for a change \
                      ticket.",
        auth: true,
        if_match: false,
        request: None,
        replies: &[Reply {
            status: 200,
            description: "The report.",
            body: Body::Text("text/markdown; charset=utf-8"),
        }],
        errors: &[ErrorCode::BadRequest, ErrorCode::NotFound],
        handler: || get(cutover_report_markdown),
    },
    Route {
        verb: Verb::Post,
        path: "/v1/rehearsals",
        operation_id: "startRehearsal",
        summary: "Rehearse a whole cutover and its rollback on the configured clusters.",
        description: "Creates a cutover marked `rehearsal`, advances it to `promoted` and \
                      then rolls it back (a failback), back to back, with the usual \
                      checks and deadlines. It really fences the wave: run it against \
                      staging. Follow it with `GET /v1/cutovers/{id}` and read the result \
                      from `GET /v1/cutovers/{id}/report` (or `report.md`). Mode `shadow` \
                      is refused (400) until it exists.",
        auth: true,
        if_match: false,
        request: Some(schema::<RehearsalRequest>),
        replies: &[Reply {
            status: 202,
            description: "Accepted: the rehearsal runs in the background.",
            body: Body::Json(schema::<Cutover>),
        }],
        errors: &[ErrorCode::BadRequest, ErrorCode::Conflict],
        handler: || post(start_rehearsal),
    },
];

/// `/healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// `GET /v1/cutovers`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CutoverList {
    /// Oldest first.
    pub cutovers: Vec<Cutover>,
}

/// The body of a 200 answer to create, advance or rollback.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CutoverOrDryRun {
    /// A dry run's report (`dry_run` is true).
    DryRun(DryRun),
    /// The cutover, unchanged.
    Cutover(Box<Cutover>),
}

async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    if status::is_ready(&state.mirror.snapshot()) {
        Ok(axum::Json(Health {
            status: "ready".into(),
        }))
    } else {
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "the mirror has not reported its first discovery yet",
        ))
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let cutovers = match state.service.list().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot list cutovers");
            Vec::new()
        }
    };
    let text = crate::metrics::render(
        &state.mirror.snapshot(),
        &state.groups.snapshot(),
        &cutovers,
        status::now_ms(),
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

async fn openapi() -> axum::Json<serde_json::Value> {
    axum::Json(crate::openapi::document().clone())
}

async fn get_status(State(state): State<AppState>) -> axum::Json<StatusReport> {
    axum::Json(status::report(
        &state.mirror.snapshot(),
        &state.groups.snapshot(),
        status::now_ms(),
    ))
}

async fn list_cutovers(State(state): State<AppState>) -> Result<axum::Json<CutoverList>, ApiError> {
    Ok(axum::Json(CutoverList {
        cutovers: state.service.list().await?,
    }))
}

async fn get_cutover(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let cutover = state.service.get(&id).await?;
    Ok(with_etag(StatusCode::OK, cutover, false))
}

async fn create_cutover(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateCutover>,
) -> Result<Response, ApiError> {
    let outcome = state.service.create(req, &actor.0).await?;
    Ok(outcome_response(outcome, StatusCode::CREATED))
}

async fn advance_cutover(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AdvanceRequest>,
) -> Result<Response, ApiError> {
    let expected = expected_version(&headers, req.version)?;
    let outcome = state.service.advance(&id, req, expected, &actor.0).await?;
    Ok(outcome_response(outcome, StatusCode::ACCEPTED))
}

async fn rollback_cutover(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> Result<Response, ApiError> {
    let expected = expected_version(&headers, req.version)?;
    let outcome = state.service.rollback(&id, req, expected, &actor.0).await?;
    Ok(outcome_response(outcome, StatusCode::ACCEPTED))
}

async fn cutover_report(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<Report>, ApiError> {
    Ok(axum::Json(state.service.report(&id).await?))
}

async fn cutover_report_markdown(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let report = state.service.report(&id).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/markdown; charset=utf-8"),
        )],
        crate::cutover::report::markdown(&report),
    )
        .into_response())
}

async fn start_rehearsal(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<RehearsalRequest>,
) -> Result<Response, ApiError> {
    let outcome = state.service.rehearse(req, &actor.0).await?;
    Ok(outcome_response(outcome, StatusCode::ACCEPTED))
}

/// The `If-Match` version, checked against the body's `version` when both are given (the
/// body's own `version` still reaches the service in the request).
fn expected_version(headers: &HeaderMap, body: Option<u64>) -> Result<Option<u64>, ApiError> {
    let header = if_match(headers)?;
    if let (Some(h), Some(b)) = (header, body)
        && h != b
    {
        return Err(ApiError::bad_request(format!(
            "If-Match says version {h} but the body's version is {b}"
        ))
        .with_details(serde_json::json!({ "if_match": h, "version": b })));
    }
    Ok(header)
}

fn outcome_response(outcome: Outcome, accepted: StatusCode) -> Response {
    match outcome {
        Outcome::DryRun(report) => (StatusCode::OK, axum::Json(report)).into_response(),
        Outcome::Accepted(cutover) => with_etag(accepted, cutover, accepted == StatusCode::CREATED),
        Outcome::Unchanged(cutover) => with_etag(StatusCode::OK, cutover, false),
    }
}

/// A cutover with its version as a strong `ETag` (and its URL as `Location` when created).
fn with_etag(status: StatusCode, cutover: Cutover, location: bool) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", cutover.version)) {
        headers.insert(header::ETAG, v);
    }
    if location && let Ok(v) = HeaderValue::from_str(&format!("/v1/cutovers/{}", cutover.id)) {
        headers.insert(header::LOCATION, v);
    }
    (status, headers, axum::Json(cutover)).into_response()
}
