//! Generates the API reference (`docs/api.md`) from the OpenAPI document, so the route table
//! and the model's doc comments are its only source. A test fails when the checked-in file is
//! stale.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::openapi::{ERROR_CODES, code_name, document, error_description};

/// The command that rewrites `docs/api.md`; printed by the staleness test.
pub const REGENERATE: &str = "STRAIT_REGENERATE_DOCS=1 cargo test -p strait-control-api apidoc";

/// The API reference as Markdown.
pub fn reference_markdown() -> String {
    let doc = document();
    let empty = Map::new();
    let schemas = doc["components"]["schemas"].as_object().unwrap_or(&empty);
    let mut out = String::new();
    out.push_str("# Control API reference\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated from the OpenAPI document (control-api/src/routes.rs and the model's doc \
         comments) by reference_markdown(). Do not edit; regenerate with `{REGENERATE}`. -->\n"
    );
    let _ = writeln!(out, "{}\n", text(&doc["info"]["description"]));
    out.push_str(
        "The API listens where `[api] listen` says (see [configuration.md](configuration.md)); \
         without it there is no API. Tokens are one `NAME:TOKEN` per line of \
         `[api] token_file`, or the value of `STRAIT_API_TOKEN` (named `env`); the name is \
         recorded as the actor of every change. The OpenAPI 3.1 document is served at \
         `GET /v1/openapi.json`. `strait cutover ...` is a command-line client of this API.\n\n",
    );
    out.push_str(
        "Changes to a cutover use optimistic concurrency: every cutover has a `version`, \
         returned in the body and as `ETag`. Send it back as `If-Match` (`3`, `\"3\"` or \
         `W/\"3\"`) or as the body's `version`; a stale one is answered 412 `stale_version`.\n",
    );

    out.push_str("\n## Errors\n\n");
    out.push_str("Every error is `{code, message, details}` ([`ApiError`](#apierror)).\n\n");
    out.push_str("| HTTP | `code` | When |\n|------|--------|------|\n");
    for code in ERROR_CODES {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} |",
            code.status().as_u16(),
            code_name(code),
            cell(error_description(code))
        );
    }

    out.push_str("\n## Routes\n\n| Method | Path | Token | Summary |\n");
    out.push_str("|--------|------|-------|---------|\n");
    let operations = operations(doc);
    for (method, path, op) in &operations {
        let _ = writeln!(
            out,
            "| {method} | [`{path}`](#{}) | {} | {} |",
            anchor(&format!("{method} {path}")),
            if op.get("security").is_some() {
                "no"
            } else {
                "yes"
            },
            cell(&text(&op["summary"]))
        );
    }
    for (method, path, op) in &operations {
        route_section(&mut out, doc, method, path, op);
    }

    out.push_str("\n## Schemas\n");
    for (name, schema) in schemas {
        schema_section(&mut out, name, schema);
    }
    out
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            if let Some(item) = item.as_object() {
                for (method, op) in item {
                    ops.push((method.to_uppercase(), path.clone(), op));
                }
            }
        }
    }
    ops
}

fn route_section(out: &mut String, doc: &Value, method: &str, path: &str, op: &Value) {
    let _ = write!(out, "\n### {method} {path}\n\n{}\n", text(&op["summary"]));
    if let Some(d) = op.get("description") {
        let _ = write!(out, "\n{}\n", text(d));
    }
    let token = if op.get("security").is_some() {
        "Open: no token."
    } else {
        "Needs `Authorization: Bearer TOKEN`."
    };
    let _ = write!(out, "\n{token}\n");
    if let Some(params) = op["parameters"].as_array() {
        out.push_str("\n| Parameter | In | Required | Description |\n");
        out.push_str("|-----------|----|----------|-------------|\n");
        for p in params {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                text(&p["name"]),
                text(&p["in"]),
                if p["required"] == Value::Bool(true) {
                    "yes"
                } else {
                    "no"
                },
                cell(&text(&p["description"]))
            );
        }
    }
    if let Some(body) = op.get("requestBody") {
        let schema = &body["content"]["application/json"]["schema"];
        let _ = write!(out, "\nRequest body (JSON): {}\n", type_label(schema));
    }
    out.push_str("\n| Status | Body | When |\n|--------|------|------|\n");
    if let Some(responses) = op["responses"].as_object() {
        for (status, response) in responses {
            let (resolved, via) = match response.get("$ref").and_then(Value::as_str) {
                Some(r) => (
                    doc.pointer(r.trim_start_matches('#')).unwrap_or(response),
                    r.rsplit('/').next(),
                ),
                None => (response, None),
            };
            let content = resolved["content"].as_object();
            let body = content
                .and_then(|c| c.iter().next())
                .map(|(ct, media)| {
                    if ct == "application/json" {
                        type_label(&media["schema"])
                    } else {
                        format!("`{ct}`")
                    }
                })
                .unwrap_or_default();
            let body = match via {
                Some(name) => format!("{body} (`{}`)", snake(name)),
                None => body,
            };
            let _ = writeln!(
                out,
                "| {status} | {} | {} |",
                cell(&body),
                cell(&text(&resolved["description"]))
            );
        }
    }
}

fn schema_section(out: &mut String, name: &str, schema: &Value) {
    let _ = write!(out, "\n### {name}\n");
    if let Some(d) = schema.get("description") {
        let _ = write!(out, "\n{}\n", text(d));
    }
    if let Some(props) = schema["properties"].as_object() {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str("\n| Field | Type | Required | Description |\n");
        out.push_str("|-------|------|----------|-------------|\n");
        for (field, p) in props {
            let mut desc = text(&p["description"]);
            if let Some(default) = p.get("default").filter(|d| !d.is_null()) {
                let _ = write!(desc, " Default: `{default}`.");
            }
            let _ = writeln!(
                out,
                "| `{field}` | {} | {} | {} |",
                cell(&type_label(p)),
                if required.contains(&field.as_str()) {
                    "yes"
                } else {
                    "no"
                },
                cell(desc.trim())
            );
        }
        return;
    }
    let variants = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array);
    if let Some(variants) = variants {
        out.push_str("\n| Value | Description |\n|-------|-------------|\n");
        for v in variants {
            let value = match v.get("const").or_else(|| v["enum"].get(0)) {
                Some(c) => format!("`{c}`"),
                None => type_label(v),
            };
            let _ = writeln!(
                out,
                "| {} | {} |",
                cell(&value),
                cell(&text(&v["description"]))
            );
        }
    } else if let Some(values) = schema["enum"].as_array() {
        let list: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        let _ = write!(out, "\nOne of {}.\n", list.join(", "));
    } else {
        let _ = write!(out, "\nType: {}.\n", type_label(schema));
    }
}

/// A readable type for a schema: links for references, `X or null`, `array of X`, ...
fn type_label(schema: &Value) -> String {
    if schema == &Value::Bool(true) {
        return "any JSON".into();
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[`{name}`](#{})", anchor(name));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            return alts.iter().map(type_label).collect::<Vec<_>>().join(" or ");
        }
    }
    let one = |t: &str| match t {
        "array" => match schema.get("items") {
            Some(items) => format!("array of {}", type_label(items)),
            None => "array".into(),
        },
        "object" => match schema.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map of {}", type_label(v)),
            _ => "object".into(),
        },
        "integer" => match schema.get("format").and_then(Value::as_str) {
            Some(f) => format!("integer ({f})"),
            None => "integer".into(),
        },
        other => other.to_owned(),
    };
    match schema.get("type") {
        Some(Value::String(t)) => one(t),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(one)
            .collect::<Vec<_>>()
            .join(" or "),
        _ if schema.get("const").is_some() => format!("`{}`", schema["const"]),
        _ => "any JSON".into(),
    }
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(|s| {
            s.split("\n\n")
                .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// GitHub's heading anchor: lower case, spaces to dashes, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::routes::ROUTES;

    #[test]
    fn api_reference_is_up_to_date() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md");
        let generated = reference_markdown();
        if std::env::var_os("STRAIT_REGENERATE_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/api.md is out of date with the route table and model doc comments; \
             regenerate it with `{REGENERATE}`"
        );
    }

    #[test]
    fn reference_documents_every_route_and_schema() {
        let doc = reference_markdown();
        for route in ROUTES {
            let heading = format!("### {} {}\n", route.verb.as_str(), route.path);
            assert!(doc.contains(&heading), "missing {heading}");
        }
        for name in document()["components"]["schemas"]
            .as_object()
            .unwrap()
            .keys()
        {
            assert!(
                doc.contains(&format!("### {name}\n")),
                "missing schema {name}"
            );
        }
        for code in ERROR_CODES {
            assert!(doc.contains(&format!("| `{}` |", code_name(code))));
        }
        assert!(!doc.contains("| `` |"));
    }
}
