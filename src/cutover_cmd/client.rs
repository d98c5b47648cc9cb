//! The HTTP side of `strait cutover`: a bearer-token client of the control API that turns API
//! errors into `code: message` errors with their blockers.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;
use strait_control_api::cutover::Cutover;

/// The API's answer: status and JSON body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn parse<T: DeserializeOwned>(self) -> anyhow::Result<T> {
        serde_json::from_value(self.body).context("unexpected answer from the control API")
    }
}

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub(crate) fn new(
        base: &str,
        token_file: Option<&std::path::Path>,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let token = match token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("--token-file: cannot read {}", path.display()))?
                .trim()
                .to_owned(),
            None => std::env::var("STRAIT_API_TOKEN").unwrap_or_default(),
        };
        if token.is_empty() {
            bail!("no API token: set STRAIT_API_TOKEN or pass --token-file");
        }
        Self::build(base, &token, ca_file)
    }

    /// A client using `token`.
    #[cfg_attr(not(feature = "scenario"), allow(dead_code))]
    pub(crate) fn with_token(base: &str, token: &str) -> anyhow::Result<Self> {
        Self::build(base, token, None)
    }

    /// A client using `token`, trusting `ca_file` (PEM) besides the public CAs for HTTPS.
    fn build(base: &str, token: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let token = token.to_owned();
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("--api-ca-file: cannot read {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .with_context(|| {
                    format!("--api-ca-file: {} holds no PEM certificate", path.display())
                })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Sends a request and returns the status and body text; API errors (4xx, 5xx) become
    /// `code: message` errors with blockers.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<u64>,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(v) = if_match {
            request = request.header(reqwest::header::IF_MATCH, format!("\"{v}\""));
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the control API at {}", self.base))?;
        let status = response.status().as_u16();
        let text = response.text().await.context("reading the API's answer")?;
        if status >= 400 {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            bail!("{}", api_error(status, &body));
        }
        Ok((status, text))
    }

    /// Sends a request and reads the answer as JSON.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<u64>,
    ) -> anyhow::Result<Answer> {
        let (status, text) = self.send(method, path, body, if_match).await?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.call(reqwest::Method::GET, path, None, None).await
    }

    /// A `GET` whose answer is text (Markdown), returned as is.
    pub(crate) async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        Ok(self.send(reqwest::Method::GET, path, None, None).await?.1)
    }

    pub(crate) async fn cutover(&self, id: &str) -> anyhow::Result<Cutover> {
        self.get(&format!("/v1/cutovers/{}", path_segment(id)))
            .await?
            .parse()
    }
}

/// `code: message`, then one line per blocker (and the current version of a stale request).
pub(crate) fn api_error(status: u16, body: &Value) -> String {
    let (Some(code), Some(message)) = (body["code"].as_str(), body["message"].as_str()) else {
        return format!("HTTP {status}: {}", one_line(&body.to_string()));
    };
    let mut out = format!("{code}: {message}");
    if let Some(blockers) = body["details"]["blockers"].as_array() {
        for b in blockers {
            out.push_str(&format!("\n  blocker: {}", b.as_str().unwrap_or_default()));
        }
    }
    if let Some(v) = body["details"]["current_version"].as_u64() {
        out.push_str(&format!("\n  current version: {v}"));
    }
    out
}

fn one_line(s: &str) -> String {
    s.chars().take(300).filter(|c| *c != '\n').collect()
}

/// Percent-encodes everything but unreserved characters, so an id is one path segment.
pub(crate) fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_errors_print_code_message_and_blockers() {
        let body = json!({
            "code": "illegal_transition", "message": "cannot fence yet",
            "details": { "blockers": ["lag 12000 > 10000", "group billing split"] }
        });
        assert_eq!(
            api_error(409, &body),
            "illegal_transition: cannot fence yet\n  blocker: lag 12000 > 10000\n  blocker: \
             group billing split"
        );
        let stale =
            json!({ "code": "stale_version", "message": "m", "details": { "current_version": 7 } });
        assert!(api_error(412, &stale).ends_with("current version: 7"));
        assert_eq!(
            api_error(502, &json!("bad gateway")),
            "HTTP 502: \"bad gateway\""
        );
    }

    #[test]
    fn an_unusable_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken\n").unwrap();
        let err = |ca: &std::path::Path| {
            let e = Client::new("https://127.0.0.1:1", Some(&token), Some(ca)).err();
            format!("{:#}", e.expect("refused"))
        };
        let missing = err(&dir.path().join("missing.pem"));
        assert!(missing.contains("--api-ca-file: cannot read"), "{missing}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let e = err(&garbage);
        assert!(e.contains("holds no PEM certificate"), "{e}");
        assert!(!e.contains("t0ken"), "{e}");
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(path_segment("c-1_a.b~"), "c-1_a.b~");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(path_segment("../x"), "..%2Fx");
    }
}
