//! The HTTP layer through the real router (no socket): authentication, error mapping, the
//! 404/405 fallbacks, and that the router serves exactly the route table. The cutover service
//! is the real one over a temporary state store; its clients connect to a shared tansu broker
//! (KafkaClient needs a live cluster). Nothing here creates a cutover.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use strait_control_api::auth::Tokens;
use strait_control_api::cutover::{CutoverContext, CutoverService};
use strait_control_api::http::{AppState, router};
use strait_control_api::routes::{ROUTES, Verb};
use strait_linker::client::{ClientConfig, KafkaClient};
use strait_linker::mirror::{Mirror, MirrorSettings};
use strait_linker::state::StateStore;
use strait_offset_sync::GroupSync;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

const TOKEN: &str = "t0ken-DO-NOT-LEAK";
const OTHER: &str = "other-token";

struct Api {
    app: axum::Router,
    _dir: tempfile::TempDir,
    _cancel: tokio_util::sync::DropGuard,
}

async fn api() -> Api {
    let broker = strait_testkit::tansu_target();
    let client = KafkaClient::connect(ClientConfig::new(&broker.bootstrap()))
        .await
        .expect("tansu reachable");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(&dir.path().join("state")).unwrap());
    let mirror = Mirror::new(
        client.clone(),
        client.clone(),
        Arc::clone(&store),
        MirrorSettings::new(Arc::new(|_: &str| false)),
    );
    let groups = GroupSync::new(
        client.clone(),
        client.clone(),
        mirror.handle(),
        &store,
        Arc::new(|_: &str| false),
        std::time::Duration::from_secs(1),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let service = CutoverService::start(
        CutoverContext {
            source: client.clone(),
            target: client,
            mirror: mirror.handle(),
            groups: groups.clone(),
            store,
        },
        cancel.clone(),
    )
    .unwrap();
    let tokens = Tokens::parse(
        &format!("alice:{TOKEN}\nbob:{OTHER}\n"),
        std::path::Path::new("tokens"),
    )
    .unwrap();
    let app = router(AppState {
        service,
        mirror: mirror.status(),
        groups: groups.status(),
        tokens: Arc::new(tokens),
    });
    Api {
        app,
        _dir: dir,
        _cancel: cancel.drop_guard(),
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// Asserts an ApiError body with `code` and the status that goes with it.
    #[track_caller]
    fn assert_error(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(body["details"].is_object(), "{body}");
        assert!(!self.text.contains(TOKEN), "a token leaked: {}", self.text);
        body
    }
}

impl Api {
    async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        self.call(builder.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, None, "").await
    }

    async fn post(&self, path: &str, body: &str) -> Reply {
        self.send("POST", path, Some(TOKEN), Some("application/json"), body)
            .await
    }

    async fn cutovers(&self) -> Value {
        let reply = self.get("/v1/cutovers", Some(TOKEN)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()
    }
}

/// A concrete path for a route template.
fn concrete(path: &str) -> String {
    path.replace("{id}", "no-such-cutover")
}

#[tokio::test]
async fn open_routes_answer_without_a_token() {
    let api = api().await;
    let health = api.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({ "status": "ok" }));

    // The mirror has not run: no discovery yet.
    api.get("/readyz", None)
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");

    let metrics = api.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert_eq!(
        metrics.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(
        metrics
            .text
            .contains("# TYPE strait_up gauge\nstrait_up 1\n")
    );
    assert!(metrics.text.contains("# TYPE strait_cutover_stage gauge"));
}

#[tokio::test]
async fn every_v1_route_needs_a_known_token() {
    let api = api().await;
    for route in ROUTES.iter().filter(|r| r.auth) {
        let method = route.verb.as_str();
        let path = concrete(route.path);
        for token in [None, Some("wrong"), Some(""), Some("t0ken-DO-NOT-LEA")] {
            let reply = api
                .send(method, &path, token, Some("application/json"), "{}")
                .await;
            reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(
                reply.headers[header::WWW_AUTHENTICATE],
                "Bearer realm=\"strait\""
            );
        }
        // Not a bearer scheme at all.
        let basic = Request::builder()
            .method(method)
            .uri(&path)
            .header(header::AUTHORIZATION, format!("Basic {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        api.call(basic)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        // The right token gets past authentication (whatever the route answers next).
        for token in [TOKEN, OTHER] {
            let reply = api
                .send(method, &path, Some(token), Some("application/json"), "{}")
                .await;
            assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
    let status = api.get("/v1/status", Some(TOKEN)).await;
    assert_eq!(status.status, StatusCode::OK);
    let body = status.json();
    assert_eq!(body["ready"], false);
    assert_eq!(body["partitions"], json!([]));
    assert_eq!(body["groups"], json!([]));
}

/// The router serves exactly the route table: every listed route answers (not 404/405) with
/// its method, every other method on its path is 405 with `Allow`, and other paths are 404.
#[tokio::test]
async fn router_serves_exactly_the_route_table() {
    let api = api().await;
    for route in ROUTES {
        let path = concrete(route.path);
        let method = route.verb.as_str();
        let reply = api
            .send(method, &path, Some(TOKEN), Some("application/json"), "{}")
            .await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if reply.status == StatusCode::NOT_FOUND {
            // Only "no such cutover" from the service, never "no route".
            let body = reply.json();
            assert!(
                !body["message"].as_str().unwrap().starts_with("no route"),
                "{method} {path}: {body}"
            );
        }
        let served: Vec<Verb> = ROUTES
            .iter()
            .filter(|r| r.path == route.path)
            .map(|r| r.verb)
            .collect();
        for other in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let listed = served.iter().any(|v| v.as_str() == other);
            if listed {
                continue;
            }
            let reply = api
                .send(other, &path, Some(TOKEN), Some("application/json"), "{}")
                .await;
            let body = reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            let allow = reply.headers[header::ALLOW].to_str().unwrap().to_owned();
            for v in &served {
                assert!(allow.contains(v.as_str()), "{path}: Allow {allow}");
            }
            assert!(!allow.contains(other), "{path}: Allow {allow}");
            assert!(body["details"]["allow"].is_array());
        }
    }
    for path in [
        "/",
        "/v1",
        "/v2/status",
        "/v1/cutover",
        "/v1/cutovers/x/promote",
        "/healthz/x",
    ] {
        let body = api
            .get(path, Some(TOKEN))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
        assert!(body["message"].as_str().unwrap().contains(path), "{body}");
        // Unknown routes are 404 with or without a token.
        api.get(path, None)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    let doc = api.get("/v1/openapi.json", Some(TOKEN)).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(&doc.json(), strait_control_api::openapi::document());
}

#[tokio::test]
async fn bad_input_is_400_and_changes_nothing() {
    let api = api().await;
    let before = api.cutovers().await;
    assert_eq!(before, json!({ "cutovers": [] }));
    let valid_create = json!({
        "name": "w", "topics": ["t"], "fence": { "mode": "manual" }, "dry_run": true
    });
    let cases: Vec<(&str, &str, Option<&str>, String, &str)> = vec![
        // (path, what, content type, body, expected in message)
        (
            "/v1/cutovers",
            "malformed JSON",
            Some("application/json"),
            "{\"name\":".into(),
            "EOF",
        ),
        (
            "/v1/cutovers",
            "not JSON",
            Some("application/json"),
            "name=w".into(),
            "expected ident",
        ),
        (
            "/v1/cutovers",
            "unknown field",
            Some("application/json"),
            {
                let mut v = valid_create.clone();
                v["bogus"] = json!(1);
                v.to_string()
            },
            "unknown field `bogus`",
        ),
        (
            "/v1/cutovers",
            "unknown nested field",
            Some("application/json"),
            {
                let mut v = valid_create.clone();
                v["fence"]["color"] = json!("red");
                v.to_string()
            },
            "unknown field `color`",
        ),
        (
            "/v1/cutovers",
            "missing field",
            Some("application/json"),
            json!({ "name": "w", "topics": [] }).to_string(),
            "missing field `fence`",
        ),
        (
            "/v1/cutovers",
            "wrong type",
            Some("application/json"),
            json!({ "name": 1, "topics": [], "fence": { "mode": "manual" } }).to_string(),
            "invalid type",
        ),
        (
            "/v1/cutovers",
            "wrong content type",
            Some("text/plain"),
            valid_create.to_string(),
            "Content-Type",
        ),
        (
            "/v1/cutovers",
            "no content type",
            None,
            valid_create.to_string(),
            "Content-Type",
        ),
        (
            "/v1/cutovers",
            "no body",
            Some("application/json"),
            String::new(),
            "EOF",
        ),
        (
            "/v1/cutovers/x/advance",
            "bad stage",
            Some("application/json"),
            json!({ "to": "launched" }).to_string(),
            "unknown variant `launched`",
        ),
        (
            "/v1/cutovers/x/advance",
            "unknown field",
            Some("application/json"),
            json!({ "to": "fenced", "force": true }).to_string(),
            "unknown field `force`",
        ),
        (
            "/v1/cutovers/x/rollback",
            "unknown field",
            Some("application/json"),
            json!({ "dryrun": true }).to_string(),
            "unknown field `dryrun`",
        ),
        (
            "/v1/cutovers/x/rollback",
            "no body",
            Some("application/json"),
            String::new(),
            "EOF",
        ),
    ];
    for (path, what, content_type, body, needle) in cases {
        let reply = api
            .send("POST", path, Some(TOKEN), content_type, &body)
            .await;
        let error = reply.assert_error(StatusCode::BAD_REQUEST, "bad_request");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{what}: {message:?} lacks {needle:?}"
        );
        assert_eq!(api.cutovers().await, before, "{what} changed something");
    }
}

#[tokio::test]
async fn if_match_is_parsed_before_the_service_is_asked() {
    let api = api().await;
    let advance = json!({ "to": "fenced" }).to_string();
    for bad in ["abc", "\"3", "W/3", "1, 2", "-1"] {
        let request = Request::builder()
            .method("POST")
            .uri("/v1/cutovers/no-such/advance")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::IF_MATCH, bad)
            .body(Body::from(advance.clone()))
            .unwrap();
        let body = api
            .call(request)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_request");
        assert!(
            body["message"].as_str().unwrap().contains("If-Match"),
            "{body}"
        );
    }
    // Header and body disagreeing is bad input too.
    let request = Request::builder()
        .method("POST")
        .uri("/v1/cutovers/no-such/rollback")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::IF_MATCH, "W/\"3\"")
        .body(Body::from(json!({ "version": 4 }).to_string()))
        .unwrap();
    api.call(request)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    // Well-formed versions reach the service, which does not know the cutover.
    for good in ["3", "\"3\"", "W/\"3\""] {
        let request = Request::builder()
            .method("POST")
            .uri("/v1/cutovers/no-such/advance")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::IF_MATCH, good)
            .body(Body::from(advance.clone()))
            .unwrap();
        api.call(request)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn unknown_cutovers_are_404() {
    let api = api().await;
    api.get("/v1/cutovers/nope", Some(TOKEN))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    api.post(
        "/v1/cutovers/nope/advance",
        &json!({ "to": "fenced" }).to_string(),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    api.post("/v1/cutovers/nope/rollback", "{}")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    for path in ["/v1/cutovers/nope/report", "/v1/cutovers/nope/report.md"] {
        api.get(path, Some(TOKEN))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(api.cutovers().await, json!({ "cutovers": [] }));
}

/// Bad rehearsal requests are 400 and create nothing: unknown fields, a missing wave, an
/// invalid fence, and the shadow mode that is not built.
#[tokio::test(flavor = "multi_thread")]
async fn bad_rehearsals_are_400_and_create_nothing() {
    let api = api().await;
    let cases = [
        (
            json!({ "topics": ["t"], "fence": { "mode": "manual" }, "bogus": 1 }),
            "unknown field `bogus`",
        ),
        (json!({ "fence": { "mode": "manual" } }), "topics"),
        (
            json!({ "topics": [], "fence": { "mode": "manual" } }),
            "topics",
        ),
        (
            json!({ "topics": ["t"], "fence": { "mode": "sometimes" } }),
            "sometimes",
        ),
        (
            json!({ "topics": ["t"], "fence": { "mode": "manual" }, "mode": "shadow" }),
            "shadow",
        ),
    ];
    for (body, expect) in cases {
        let r = api.post("/v1/rehearsals", &body.to_string()).await;
        r.assert_error(StatusCode::BAD_REQUEST, "bad_request");
        assert!(r.text.contains(expect), "{body}: {}", r.text);
    }
    assert_eq!(api.cutovers().await, json!({ "cutovers": [] }));
}
