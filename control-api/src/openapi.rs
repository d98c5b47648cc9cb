//! The OpenAPI 3.1 document of the API, built from [`ROUTES`] (the table the router is built
//! from) with request and response schemas from `schemars` (JSON Schema 2020-12, which
//! OpenAPI 3.1 uses as is). `docs/api.md` is generated from this document by
//! [`crate::apidoc::reference_markdown`]; a test keeps it in sync.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ErrorCode};
use crate::routes::{Body, ROUTES, Route};

/// Every error code, in status order.
pub const ERROR_CODES: [ErrorCode; 9] = [
    ErrorCode::BadRequest,
    ErrorCode::Unauthorized,
    ErrorCode::NotFound,
    ErrorCode::MethodNotAllowed,
    ErrorCode::IllegalTransition,
    ErrorCode::Conflict,
    ErrorCode::StaleVersion,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

/// The code's name as serialized (`bad_request`, ...).
pub fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The name of the reusable response for an error code (`components/responses`).
fn response_name(code: ErrorCode) -> String {
    code_name(code)
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// When an error code is answered, for the reference.
pub fn error_description(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => {
            "Bad input: malformed JSON, an unknown or missing field, a wrong content type, a \
             malformed `If-Match`."
        }
        ErrorCode::Unauthorized => "No bearer token, or not a known one.",
        ErrorCode::NotFound => "No such cutover, or no such route.",
        ErrorCode::MethodNotAllowed => "The route exists, not with this method (see `Allow`).",
        ErrorCode::IllegalTransition => {
            "The transition is not allowed now; `details.blockers` says why."
        }
        ErrorCode::Conflict => "The request conflicts with another cutover.",
        ErrorCode::StaleVersion => {
            "The `If-Match` / `version` is stale; `details.current_version` is the current one."
        }
        ErrorCode::Unavailable => "strait is not ready.",
        ErrorCode::Internal => "A fault inside strait (never caused by input).",
    }
}

/// The path parameters of a template (`/v1/cutovers/{id}` → `id`).
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// The OpenAPI document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    }));
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for route in ROUTES {
        let op = operation(route, &mut generator);
        paths
            .entry(route.path)
            .or_default()
            .insert(route.verb.as_str().to_ascii_lowercase(), op);
    }
    let error_ref = generator.subschema_for::<ApiError>();
    let responses: Map<String, Value> = ERROR_CODES
        .iter()
        .map(|&code| {
            (
                response_name(code),
                json!({
                    "description": error_description(code),
                    "content": { "application/json": { "schema": error_ref } },
                }),
            )
        })
        .collect();
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "strait control API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Status, metrics and staged cutovers of a strait daemon. Every `/v1` \
                route needs `Authorization: Bearer TOKEN`; `/healthz`, `/readyz` and \
                `/metrics` are open. Errors are `{code, message, details}` with a stable \
                `code`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `[api] token_file` or `STRAIT_API_TOKEN`.",
                }
            },
        },
        "security": [{ "bearer": [] }],
    })
}

fn operation(route: &Route, generator: &mut SchemaGenerator) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), route.operation_id.into());
    op.insert("summary".into(), route.summary.into());
    if !route.description.is_empty() {
        op.insert("description".into(), route.description.into());
    }
    let tag = if route.path.starts_with("/v1/cutovers") {
        "cutovers"
    } else if route.auth {
        "status"
    } else {
        "operations"
    };
    op.insert("tags".into(), json!([tag]));
    if !route.auth {
        op.insert("security".into(), json!([]));
    }
    let mut parameters: Vec<Value> = path_params(route.path)
        .into_iter()
        .map(|name| {
            json!({
                "name": name, "in": "path", "required": true,
                "schema": { "type": "string" },
                "description": "The cutover's id.",
            })
        })
        .collect();
    if route.if_match {
        parameters.push(json!({
            "name": "If-Match", "in": "header", "required": false,
            "schema": { "type": "string" },
            "description": "The expected cutover version: `3`, `\"3\"` or `W/\"3\"` (or the \
                body's `version`). Stale: 412. Malformed: 400.",
        }));
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), parameters.into());
    }
    if let Some(schema) = route.request {
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": { "application/json": { "schema": schema(generator) } },
            }),
        );
    }
    let mut responses = Map::new();
    for reply in route.replies {
        let content = match reply.body {
            Body::Json(schema) => json!({ "application/json": { "schema": schema(generator) } }),
            Body::Text(content_type) => json!({ content_type: { "schema": { "type": "string" } } }),
        };
        responses.insert(
            reply.status.to_string(),
            json!({ "description": reply.description, "content": content }),
        );
    }
    let mut errors: Vec<ErrorCode> = route.errors.to_vec();
    if route.auth {
        errors.push(ErrorCode::Unauthorized);
    }
    errors.push(ErrorCode::Internal);
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for &code in ERROR_CODES.iter().filter(|c| errors.contains(c)) {
        by_status
            .entry(code.status().as_u16())
            .or_default()
            .push(code);
    }
    for (status, codes) in by_status {
        let response = match codes[..] {
            [code] => json!({ "$ref": format!("#/components/responses/{}", response_name(code)) }),
            // Codes sharing a status (409): one response naming each.
            _ => {
                let description: Vec<String> = codes
                    .iter()
                    .map(|&c| format!("`{}`: {}", code_name(c), error_description(c)))
                    .collect();
                json!({
                    "description": description.join(" "),
                    "content": { "application/json": {
                        "schema": generator.subschema_for::<ApiError>()
                    } },
                })
            }
        };
        responses.insert(status.to_string(), response);
    }
    op.insert("responses".into(), responses.into());
    Value::Object(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Verb;

    fn operations(doc: &Value) -> Vec<(String, String)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
        ops.sort();
        ops
    }

    #[test]
    fn document_lists_exactly_the_route_table() {
        let doc = document();
        let mut table: Vec<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.verb.as_str().to_owned(), r.path.to_owned()))
            .collect();
        table.sort();
        let before = table.len();
        table.dedup();
        assert_eq!(before, table.len(), "a route is listed twice");
        assert_eq!(operations(doc), table);
        let mut ids: Vec<&str> = ROUTES.iter().map(|r| r.operation_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ROUTES.len(), "operation ids are unique");
        assert_eq!(doc["openapi"], "3.1.0");
    }

    fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|x| collect_refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(doc, &mut refs);
        assert!(
            refs.len() > 20,
            "expected many references, got {}",
            refs.len()
        );
        for r in refs {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external ref {r}"));
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
        for name in [
            "Cutover",
            "CreateCutover",
            "AdvanceRequest",
            "RollbackRequest",
            "DryRun",
            "ApiError",
            "StatusReport",
            "Stage",
        ] {
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "schema {name} missing"
            );
        }
    }

    #[test]
    fn operations_declare_security_bodies_and_errors() {
        let doc = document();
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.verb.as_str().to_ascii_lowercase()];
            let responses = op["responses"].as_object().unwrap();
            if route.auth {
                assert!(
                    op.get("security").is_none(),
                    "{} uses the default",
                    route.path
                );
                assert!(responses.contains_key("401"), "{} lacks 401", route.path);
            } else {
                assert_eq!(op["security"], json!([]), "{} is open", route.path);
                assert!(!responses.contains_key("401"));
            }
            if route.request.is_some() || !path_params(route.path).is_empty() {
                assert!(responses.contains_key("400"), "{} lacks 400", route.path);
            }
            if route.if_match {
                assert!(responses.contains_key("412"), "{} lacks 412", route.path);
            }
            assert_eq!(
                route.request.is_some(),
                op.get("requestBody").is_some(),
                "{}",
                route.path
            );
            assert_eq!(route.verb == Verb::Post, route.request.is_some());
            for (status, response) in responses {
                let code: u16 = status.parse().unwrap();
                assert!((200..600).contains(&code));
                let resolved = match response.get("$ref").and_then(Value::as_str) {
                    Some(r) => doc.pointer(r.strip_prefix('#').unwrap()).unwrap(),
                    None => response,
                };
                assert!(resolved.get("description").is_some());
                assert!(
                    resolved["content"]
                        .as_object()
                        .is_some_and(|c| !c.is_empty())
                );
            }
        }
    }

    #[test]
    fn error_responses_cover_every_code() {
        let doc = document();
        let responses = doc["components"]["responses"].as_object().unwrap();
        assert_eq!(responses.len(), ERROR_CODES.len());
        assert!(responses.contains_key("BadRequest"));
        assert!(responses.contains_key("StaleVersion"));
        let codes = &doc["components"]["schemas"]["ErrorCode"];
        let text = codes.to_string();
        for code in ERROR_CODES {
            assert!(
                text.contains(&format!("\"{}\"", code_name(code))),
                "{code:?}"
            );
        }
    }
}
