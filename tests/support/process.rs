//! `strait` as a process: the command, `strait run` as a child with its control API,
//! `strait verify`, and the config the fault tests start it with.

use super::*;

/// Test tokens contain this, so a test can check that no answer or log repeats a token.
pub const TOKEN_MARK: &str = "t0ken-DO-NOT-LEAK";

/// A `strait` command with the API's environment variables and RUST_LOG cleared.
pub fn strait_cmd() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strait"));
    cmd.env_remove("STRAIT_API_TOKEN")
        .env_remove("STRAIT_API_URL")
        .env_remove("RUST_LOG");
    cmd
}

/// The address from the "control API listening" event of a JSON log (waits up to 60 s).
pub async fn wait_for_listen(log: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && v["fields"]["message"] == "control API listening"
            {
                return v["fields"]["addr"].as_str().unwrap().to_owned();
            }
        }
        assert!(Instant::now() < deadline, "the API did not start:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An answer of the control API.
#[derive(Debug)]
pub struct ApiReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl ApiReply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {:?}", self.text))
    }

    /// Asserts an `ApiError` body with this status and code (and no token in it).
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        assert!(v["message"].is_string() && v["details"].is_object(), "{v}");
        assert!(!self.text.contains(TOKEN_MARK), "a token in an answer");
        v
    }
}

/// One request to the control API at `base` (`http://IP:PORT`).
pub async fn api_request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> ApiReply {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = req.send().await.expect("the API answers");
    ApiReply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

/// One `strait run` process with its API on a random port; SIGKILLed when dropped.
pub struct StraitRun {
    pub child: std::process::Child,
    pub base: String,
    pub log: std::path::PathBuf,
    token: String,
}

impl Drop for StraitRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl StraitRun {
    /// Starts `strait run --config CONFIG` with `STRAIT_API_TOKEN=token`, logging (JSON, per
    /// the config) to `log`, and waits until its API listens. The config must set
    /// `[api] listen` and `[log] format = "json"`.
    pub async fn start(config: &std::path::Path, log: &std::path::Path, token: &str) -> Self {
        let child = strait_cmd()
            .env("STRAIT_API_TOKEN", token)
            .args(["run", "--config"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("strait starts");
        let addr = wait_for_listen(log).await;
        Self {
            child,
            base: format!("http://{addr}"),
            log: log.to_owned(),
            token: token.to_owned(),
        }
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits (up to 30 s) for the exit; panics if strait does not stop.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "strait did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let r = api_request(&self.base, "GET", path, Some(&self.token), &[], None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.json()
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> ApiReply {
        let body = body.to_string();
        api_request(
            &self.base,
            "POST",
            path,
            Some(&self.token),
            &[],
            Some(&body),
        )
        .await
    }

    /// The sum of every series of a Prometheus metric on `/metrics` (0 if absent).
    pub async fn metric_sum(&self, name: &str) -> f64 {
        let r = api_request(&self.base, "GET", "/metrics", None, &[], None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.text
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until every partition of `topics` (`partitions` of them in all) is caught up with
    /// no lag; panics with the status and the log's tail after `secs`.
    pub async fn wait_caught_up(&self, topics: &[&str], partitions: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let status = self.get("/v1/status").await;
            let parts: Vec<&serde_json::Value> = status["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| topics.iter().any(|t| p["topic"] == *t))
                .collect();
            if parts.len() == partitions
                && parts
                    .iter()
                    .all(|p| p["state"] == "caught_up" && p["lag_records"] == 0)
            {
                return;
            }
            if Instant::now() >= deadline {
                let log = self.log_text();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "not caught up after {secs}s: {status:#}\nlog tail (newest first):\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs `strait verify --json` on `config` (strait must be stopped) and asserts it exits 0
/// with `identical: true`; returns the report.
pub fn strait_verify(config: &std::path::Path) -> serde_json::Value {
    let out = strait_cmd()
        .args(["verify", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "strait verify failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("verify --json output: {e}: {stdout}"));
    assert_eq!(report["identical"], true, "{report:#}");
    report
}

/// A `strait run` config (TOML) mirroring `topic` from `source` to `target` (bootstrap lists)
/// and syncing `group` every 300 ms (`None`: no group), with its state in `state`, the API on
/// a free loopback port and JSON logs (what [`StraitRun::start`] needs).
pub fn strait_toml(
    source: &str,
    target: &str,
    topic: &str,
    group: Option<&str>,
    state: &std::path::Path,
) -> String {
    let include = group.map_or(String::new(), |g| format!("\"{g}\""));
    format!(
        r#"[source]
bootstrap_servers = "{source}"
[target]
bootstrap_servers = "{target}"
[mirror]
topics = ["{topic}"]
topic_refresh_interval = "1s"
[groups]
include = [{include}]
interval = "300ms"
[state]
dir = "{}"
[api]
listen = "127.0.0.1:0"
[log]
format = "json"
level = "info"
"#,
        state.display()
    )
}
