//! The HTTP server: the router built from [`crate::routes::ROUTES`], request extraction that
//! turns every bad input into a 400 [`ApiError`], `If-Match` parsing, 404/405 fallbacks, and
//! serving with graceful shutdown, over plain HTTP or, with `[api] tls_cert` / `tls_key`,
//! HTTPS only ([`tls`]).

pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::header::{ALLOW, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use strait_linker::config::ApiConfig;
use strait_linker::mirror::{MirrorHandle, StatusHandle};
use strait_offset_sync::GroupStatusHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{TOKEN_ENV, TokenError, Tokens, require_token};
use crate::cutover::CutoverService;
use crate::error::{ApiError, ErrorCode};
use crate::routes::{ROUTES, Verb};

/// How long open connections may take to finish after shutdown was requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The cutover service.
    pub service: CutoverService,
    /// The mirror's status.
    pub mirror: StatusHandle,
    /// The group sync's status.
    pub groups: GroupStatusHandle,
    /// Accepted tokens.
    pub tokens: Arc<Tokens>,
}

/// The API's router: every route of [`ROUTES`] (the `/v1` ones behind the bearer token),
/// 404 and 405 as [`ApiError`] JSON.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        let mut methods = (route.handler)();
        if route.auth {
            methods = methods.route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(&state.tokens),
                require_token,
            ));
        }
        router = router.route(route.path, methods);
    }
    router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri, matched: Option<MatchedPath>) -> Response {
    let path = matched.as_ref().map_or(uri.path(), MatchedPath::as_str);
    let mut allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.path == path)
        .flat_map(|r| match r.verb {
            Verb::Get => ["GET", "HEAD"].as_slice(),
            Verb::Post => ["POST"].as_slice(),
        })
        .copied()
        .collect();
    allowed.sort_unstable();
    let allow = allowed.join(", ");
    let error = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
    .with_details(serde_json::json!({ "allow": allowed }));
    let mut response = error.into_response();
    if let Ok(v) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(ALLOW, v);
    }
    response
}

/// `axum::Json` whose rejections (malformed JSON, unknown or missing fields, wrong or missing
/// content type, no body) are 400 [`ApiError`]s carrying serde's message.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let kind = match rejection {
        JsonRejection::JsonDataError(_) => "invalid_body",
        JsonRejection::JsonSyntaxError(_) => "malformed_json",
        JsonRejection::MissingJsonContentType(_) => "content_type",
        _ => "body",
    };
    ApiError::bad_request(rejection.body_text())
        .with_details(serde_json::json!({ "rejection": kind }))
}

/// `axum::extract::Path` whose rejections are 400 [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

/// The version in an `If-Match` header: `3`, `"3"` or `W/"3"`; `*` (any version) and no
/// header are `None`. Anything else (several values, not a number) is a 400.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let mut values = headers.get_all(IF_MATCH).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = |why: &str| {
        ApiError::bad_request(format!(
            "If-Match must be one cutover version such as 3, \"3\" or W/\"3\"; {why}"
        ))
    };
    if values.next().is_some() {
        return Err(bad("it was given more than once"));
    }
    let text = value
        .to_str()
        .map_err(|_| bad("it is not visible ASCII"))?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    let unweak = text.strip_prefix("W/").unwrap_or(text);
    let inner = match unweak.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .ok_or_else(|| bad("its quotes are unbalanced"))?,
        None if unweak.len() != text.len() => {
            return Err(bad("W/ must be followed by a quoted version"));
        }
        None => unweak,
    };
    if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(&format!("got {}", serde_json::Value::from(text))));
    }
    inner
        .parse::<u64>()
        .map(Some)
        .map_err(|_| bad("the version is too large"))
}

/// The API could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No usable token, or a bad token file.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// The TLS certificate or key (`api.tls_cert`, `api.tls_key`) is unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// The listen address could not be bound.
    #[error("api.listen: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The control API, prepared before strait connects to the clusters: tokens loaded and the
/// port bound, so a bad token file or a busy port stops `strait run` at once.
#[derive(Debug)]
pub struct ApiServer {
    listener: tokio::net::TcpListener,
    tokens: Arc<Tokens>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl ApiServer {
    /// Loads the tokens (`api.token_file`, `STRAIT_API_TOKEN`) and the TLS certificate and key
    /// (`api.tls_cert`, `api.tls_key`, when set), and binds `api.listen`; `None` when `listen`
    /// is unset (no API).
    pub async fn bind(config: &ApiConfig) -> Result<Option<Self>, ServeError> {
        Self::bind_with_env(config, std::env::var(TOKEN_ENV).ok()).await
    }

    /// [`bind`](Self::bind) with the `STRAIT_API_TOKEN` value given.
    pub async fn bind_with_env(
        config: &ApiConfig,
        env_token: Option<String>,
    ) -> Result<Option<Self>, ServeError> {
        let Some(addr) = config.listen else {
            return Ok(None);
        };
        let tokens = Tokens::load(config.token_file.as_deref(), env_token)?;
        let tls = match config.tls_files() {
            Some((cert, key)) => Some(tls::server_config(cert, key)?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Some(Self {
            listener,
            tokens: Arc::new(tokens),
            tls,
        }))
    }

    /// Whether the API serves HTTPS (only).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The bound address (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `cancel` fires, then lets open requests finish (up to 5 s). If serving
    /// fails it logs why and cancels `cancel`: strait does not run on without its API.
    pub async fn serve(
        self,
        service: CutoverService,
        mirror: MirrorHandle,
        groups: GroupStatusHandle,
        cancel: CancellationToken,
    ) -> std::io::Result<()> {
        let addr = self.local_addr()?;
        let state = AppState {
            service,
            mirror: mirror.status().clone(),
            groups,
            tokens: self.tokens,
        };
        let tls = self.tls.is_some();
        tracing::info!(%addr, tokens = state.tokens.len(), tls, "control API listening");
        let app = router(state);
        match self.tls {
            Some(config) => {
                let listener = tls::TlsListener::new(self.listener, config, cancel.clone())?;
                serve_until_cancelled(listener, app, cancel).await
            }
            None => serve_until_cancelled(self.listener, app, cancel).await,
        }
    }
}

/// Serves `app` on `listener` until `cancel` fires, then lets open requests finish (up to
/// 5 s); a serving failure is logged and cancels `cancel`.
async fn serve_until_cancelled<L>(
    listener: L,
    app: Router,
    cancel: CancellationToken,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let server =
        axum::serve(listener, app).with_graceful_shutdown(cancel.clone().cancelled_owned());
    let grace = async {
        cancel.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let result = tokio::select! {
        r = async move { server.await } => r,
        () = grace => {
            tracing::warn!("control API: connections still open after shutdown; closing them");
            Ok(())
        }
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, "control API failed; stopping strait");
        cancel.cancel();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<Option<u64>, ApiError> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(IF_MATCH, HeaderValue::from_str(v).unwrap());
        }
        if_match(&headers)
    }

    #[test]
    fn if_match_accepts_bare_quoted_and_weak_versions() {
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&["3"]).unwrap(), Some(3));
        assert_eq!(parse(&["\"3\""]).unwrap(), Some(3));
        assert_eq!(parse(&["W/\"3\""]).unwrap(), Some(3));
        assert_eq!(parse(&[" 42 "]).unwrap(), Some(42));
        assert_eq!(parse(&["*"]).unwrap(), None);
        assert_eq!(parse(&["0"]).unwrap(), Some(0));
        assert_eq!(parse(&["18446744073709551615"]).unwrap(), Some(u64::MAX));
    }

    #[test]
    fn if_match_rejects_everything_else_with_400() {
        for bad in [
            "",
            "abc",
            "-1",
            "3.0",
            "\"3",
            "3\"",
            "W/3",
            "W/\"\"",
            "\"\"",
            "\"3\", \"4\"",
            "+3",
            "18446744073709551616",
            "0x10",
            "w/\"3\"",
        ] {
            let err = parse(&[bad]).expect_err(bad);
            assert_eq!(err.code, ErrorCode::BadRequest, "{bad}");
            assert!(err.message.contains("If-Match"), "{bad}: {}", err.message);
        }
        let err = parse(&["3", "3"]).unwrap_err();
        assert!(err.message.contains("more than once"), "{}", err.message);
    }
}
