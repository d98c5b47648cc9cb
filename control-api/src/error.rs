//! The API's error model: `{code, message, details}` with a stable `code` per failure kind.
//! Every handler and the cutover service return [`ApiError`]; its HTTP status follows from
//! the code, so a client can switch on either.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Stable error codes. Clients may rely on these strings; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed (bad JSON, unknown field, invalid value).
    BadRequest,
    /// 401: no bearer token, or not a known one.
    Unauthorized,
    /// 404: no such cutover, rehearsal or route.
    NotFound,
    /// 405: the route exists but not with this method; `details.allow` lists the methods.
    MethodNotAllowed,
    /// 409: the transition is not allowed now; `details.blockers` says why.
    IllegalTransition,
    /// 409: the request conflicts with another cutover (a topic in two waves, ...).
    Conflict,
    /// 412: the `If-Match` / `version` is stale; `details.current_version` is the current one.
    StaleVersion,
    /// 503: strait is not ready (still starting, or a cluster is unreachable).
    Unavailable,
    /// 500: a fault inside strait (state store failure); never caused by input.
    Internal,
}

impl ErrorCode {
    /// The HTTP status for this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::IllegalTransition | Self::Conflict => StatusCode::CONFLICT,
            Self::StaleVersion => StatusCode::PRECONDITION_FAILED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An API error, serialized as the response body.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
    /// Structured context (blockers, current version, field name, ...); `{}` when none.
    pub details: serde_json::Value,
}

impl ApiError {
    /// An error with empty details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: serde_json::json!({}),
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, what)
    }

    /// 409 for a transition that cannot happen now, listing what blocks it.
    pub fn illegal(message: impl Into<String>, blockers: Vec<String>) -> Self {
        Self::new(ErrorCode::IllegalTransition, message)
            .with_details(serde_json::json!({ "blockers": blockers }))
    }

    /// 412.
    pub fn stale(expected: u64, current: u64) -> Self {
        Self::new(
            ErrorCode::StaleVersion,
            format!("version {expected} is stale; the cutover is at version {current}"),
        )
        .with_details(serde_json::json!({ "current_version": current }))
    }

    /// 500 for a fault inside strait.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl From<strait_linker::state::StateError> for ApiError {
    fn from(e: strait_linker::state::StateError) -> Self {
        Self::internal(format!("state store: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code.status(), axum::Json(self)).into_response()
    }
}
