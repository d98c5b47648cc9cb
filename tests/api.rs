//! The control API of a real `strait run` process on real Kafka brokers: authentication, bad
//! input, 404/409/412, the status and metrics endpoints, the `strait cutover` client, token
//! configuration errors, a rehearsal and its report, and a clean stop on SIGTERM. After every refused request the list
//! of cutovers must be unchanged.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strait_testkit::{kafka_source, kafka_target, unique};
use support::*;

const TOKEN: &str = "alice-t0ken-DO-NOT-LEAK";
const OPS_TOKEN: &str = "ops-t0ken-DO-NOT-LEAK";

/// A `strait run` with the API on an ephemeral port; killed when dropped.
struct Strait {
    child: Child,
    base: String,
    log: PathBuf,
    topic: String,
    _dir: tempfile::TempDir,
}

impl Drop for Strait {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, topic: &str, api: &str) -> PathBuf {
    let path = dir.join("strait.toml");
    let toml = format!(
        r#"[source]
bootstrap_servers = "{}"
[target]
bootstrap_servers = "{}"
[mirror]
topics = ["{topic}"]
topic_refresh_interval = "1s"
[state]
dir = "{}"
[api]
{api}
[log]
format = "json"
level = "info"
"#,
        kafka_source().bootstrap(),
        kafka_target().bootstrap(),
        dir.join("state").display()
    );
    std::fs::write(&path, toml).unwrap();
    path
}

/// Starts strait mirroring a new one-partition topic with 20 records, and waits for the API.
async fn start() -> Strait {
    let topic = unique("api");
    let source = client(kafka_source()).await;
    create_topic(&source, &topic, 1, &[]).await;
    let p = producer(kafka_source(), &[]);
    send_all(&p, &topic, 0, &sample_records(20, "api")).await;

    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# test tokens\nalice:{TOKEN}\n")).unwrap();
    let config = write_config(
        dir.path(),
        &topic,
        &format!(
            "listen = \"127.0.0.1:0\"\ntoken_file = \"{}\"",
            tokens.display()
        ),
    );
    let log = dir.path().join("strait.log");
    let child = strait_cmd()
        .env("STRAIT_API_TOKEN", OPS_TOKEN)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("strait starts");
    let addr = wait_for_listen(&log).await;
    Strait {
        child,
        base: format!("http://{addr}"),
        log,
        topic,
        _dir: dir,
    }
}

impl Strait {
    /// The last `n` lines of strait's log, for a failure message.
    fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> ApiReply {
        api_request(&self.base, method, path, token, headers, body).await
    }

    async fn get(&self, path: &str) -> ApiReply {
        self.request("GET", path, Some(TOKEN), &[], None).await
    }

    async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> ApiReply {
        self.request("POST", path, Some(TOKEN), headers, Some(&body.to_string()))
            .await
    }

    async fn cutovers(&self) -> Value {
        let r = self.get("/v1/cutovers").await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    }

    /// `strait cutover ARGS` against this strait.
    fn cli(&self, token: &str, args: &[&str]) -> Output {
        strait_cmd()
            .env("STRAIT_API_URL", &self.base)
            .env("STRAIT_API_TOKEN", token)
            .arg("cutover")
            .args(args)
            .output()
            .expect("strait cutover runs")
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.request("GET", "/readyz", None, &[], None).await;
            if r.status == 200 {
                return;
            }
            r.error(503, "unavailable");
            assert!(Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the partition is caught up with all 20 records mirrored.
    async fn wait_caught_up(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.get("/v1/status").await.json();
            let p = &status["partitions"][0];
            if p["state"] == "caught_up" && p["target_end"] == 20 {
                return status;
            }
            assert!(Instant::now() < deadline, "not caught up: {status}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
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
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_and_change_nothing() {
    let mut strait = start().await;
    let health = strait.request("GET", "/healthz", None, &[], None).await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({ "status": "ok" }))
    );
    strait.wait_ready().await;
    let status = strait.wait_caught_up().await;
    let p = &status["partitions"][0];
    assert_eq!(p["topic"], strait.topic.as_str());
    assert_eq!(
        (p["source_end"].clone(), p["lag_records"].clone()),
        (json!(20), json!(0))
    );
    assert_eq!(p["lag_seconds"], 0.0);

    let metrics = strait.request("GET", "/metrics", None, &[], None).await;
    assert_eq!(metrics.status, 200);
    let series = format!(
        "strait_partition_lag_records{{topic=\"{}\",partition=\"0\"}} 0\n",
        strait.topic
    );
    assert!(metrics.text.contains(&series), "{}", metrics.text);
    assert!(metrics.text.contains(&format!(
        "strait_records_mirrored_total{{topic=\"{}\",partition=\"0\"}} 20\n",
        strait.topic
    )));

    let before = strait.cutovers().await;
    assert_eq!(before, json!({ "cutovers": [] }));
    let valid = json!({ "name": "wave", "topics": [strait.topic], "fence": { "mode": "manual" } });
    let mut unknown = valid.clone();
    unknown["surprise"] = json!(true);
    let cases: Vec<(&str, ApiReply, u16, &str)> = vec![
        (
            "no token",
            strait
                .request("POST", "/v1/cutovers", None, &[], Some(&valid.to_string()))
                .await,
            401,
            "unauthorized",
        ),
        (
            "bad token",
            strait
                .request(
                    "POST",
                    "/v1/cutovers",
                    Some("not-a-token"),
                    &[],
                    Some(&valid.to_string()),
                )
                .await,
            401,
            "unauthorized",
        ),
        (
            "no token on GET",
            strait.request("GET", "/v1/status", None, &[], None).await,
            401,
            "unauthorized",
        ),
        (
            "no token on openapi.json",
            strait
                .request("GET", "/v1/openapi.json", None, &[], None)
                .await,
            401,
            "unauthorized",
        ),
        (
            "malformed JSON",
            strait
                .request(
                    "POST",
                    "/v1/cutovers",
                    Some(TOKEN),
                    &[],
                    Some("{\"name\": \"wave\","),
                )
                .await,
            400,
            "bad_request",
        ),
        (
            "unknown field",
            strait.post("/v1/cutovers", &unknown, &[]).await,
            400,
            "bad_request",
        ),
        (
            "unknown cutover",
            strait.get("/v1/cutovers/co-nope").await,
            404,
            "not_found",
        ),
        (
            "advance an unknown cutover",
            strait
                .post(
                    "/v1/cutovers/co-nope/advance",
                    &json!({ "to": "fenced" }),
                    &[],
                )
                .await,
            404,
            "not_found",
        ),
        (
            "malformed If-Match",
            strait
                .post(
                    "/v1/cutovers/co-nope/advance",
                    &json!({ "to": "fenced" }),
                    &[("if-match", "three")],
                )
                .await,
            400,
            "bad_request",
        ),
        (
            "unknown route",
            strait.get("/v1/cutovers/co-nope/launch").await,
            404,
            "not_found",
        ),
        (
            "wrong method",
            strait
                .request("DELETE", "/v1/cutovers", Some(TOKEN), &[], None)
                .await,
            405,
            "method_not_allowed",
        ),
    ];
    for (what, reply, status, code) in cases {
        let body = reply.error(status, code);
        if status == 400 && what == "unknown field" {
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("unknown field `surprise`")
            );
        }
        if status == 401 {
            assert_eq!(reply.headers["www-authenticate"], "Bearer realm=\"strait\"");
        }
        assert_eq!(
            strait.cutovers().await,
            before,
            "{what} changed the cutovers"
        );
    }

    // The command-line client: a table, and API errors as `error: code: message`, exit 1.
    let listed = strait.cli(TOKEN, &["status"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(
        stdout(&listed).contains("(no cutovers)"),
        "{}",
        stdout(&listed)
    );
    let missing = strait.cli(TOKEN, &["advance", "co-nope", "--to", "fenced"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).starts_with("error: not_found: "),
        "{}",
        stderr(&missing)
    );
    let denied = strait.cli("wrong", &["status"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        stderr(&denied).starts_with("error: unauthorized: "),
        "{}",
        stderr(&denied)
    );
    assert_eq!(strait.cutovers().await, before);

    let code = strait.terminate();
    assert!(code.success(), "strait exited with {code}");
    let log = std::fs::read_to_string(&strait.log).unwrap();
    assert!(
        !log.contains(TOKEN) && !log.contains(OPS_TOKEN),
        "a token was logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_and_transitions_are_checked() {
    let strait = start().await;
    strait.wait_caught_up().await;
    let body = json!({
        "name": "wave-1", "topics": [strait.topic], "fence": { "mode": "manual" }
    });
    let mut dry_body = body.clone();
    dry_body["dry_run"] = json!(true);
    let dry = strait.post("/v1/cutovers", &dry_body, &[]).await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    assert_eq!(dry.json()["dry_run"], true);
    assert_eq!(strait.cutovers().await["cutovers"], json!([]));

    let created = strait.post("/v1/cutovers", &body, &[]).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let c = created.json();
    let id = c["id"].as_str().unwrap().to_owned();
    let version = c["version"].as_u64().unwrap();
    assert_eq!(c["stage"], "mirroring");
    assert_eq!(
        created.headers["location"],
        format!("/v1/cutovers/{id}").as_str()
    );
    assert_eq!(created.headers["etag"], format!("\"{version}\"").as_str());
    assert!(
        c["events"].to_string().contains("\"alice\""),
        "actor recorded: {c}"
    );
    let after_create = strait.cutovers().await;

    // The same name again: a conflict, nothing created.
    strait
        .post("/v1/cutovers", &body, &[])
        .await
        .error(409, "conflict");
    // A stale version, in the header (three spellings) or the body: 412.
    let stale = (version + 5).to_string();
    for header in [
        stale.clone(),
        format!("\"{stale}\""),
        format!("W/\"{stale}\""),
    ] {
        let r = strait
            .post(
                &format!("/v1/cutovers/{id}/advance"),
                &json!({ "to": "fenced" }),
                &[("if-match", header.as_str())],
            )
            .await;
        let e = r.error(412, "stale_version");
        assert_eq!(e["details"]["current_version"], version);
    }
    strait
        .post(
            &format!("/v1/cutovers/{id}/rollback"),
            &json!({ "version": version + 1 }),
            &[],
        )
        .await
        .error(412, "stale_version");
    // Advance cannot reach rolled_back: 409 with blockers.
    let e = strait
        .post(
            &format!("/v1/cutovers/{id}/advance"),
            &json!({ "to": "rolled_back" }),
            &[],
        )
        .await
        .error(409, "illegal_transition");
    assert!(
        e["details"]["blockers"]
            .as_array()
            .is_some_and(|b| !b.is_empty())
    );
    assert_eq!(
        strait.cutovers().await,
        after_create,
        "refused requests changed nothing"
    );

    // A rollback with the right version, followed to its end by the client.
    let rolled = strait.cli(
        OPS_TOKEN,
        &[
            "rollback",
            &id,
            "--if-match",
            &version.to_string(),
            "--wait",
            "--timeout",
            "60s",
        ],
    );
    assert!(
        rolled.status.success(),
        "{}{}",
        stdout(&rolled),
        stderr(&rolled)
    );
    assert!(
        stdout(&rolled).trim_end().ends_with("rolled_back"),
        "{}",
        stdout(&rolled)
    );
    let c = strait.get(&format!("/v1/cutovers/{id}")).await.json();
    assert_eq!(c["stage"], "rolled_back");
    assert!(
        c["events"].to_string().contains("\"env\""),
        "env token's actor: {c}"
    );

    // Finished: advancing is a 409, and the client says so with its blockers.
    let refused = strait.cli(TOKEN, &["advance", &id, "--to", "fenced"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(err.starts_with("error: illegal_transition: "), "{err}");
    assert!(err.contains("\n  blocker: "), "{err}");

    let report = strait.cli(TOKEN, &["report", &id, "--markdown"]);
    assert!(report.status.success(), "{}", stderr(&report));
    let md = stdout(&report);
    assert!(md.starts_with("# Cutover report: wave-1"), "{md}");
    assert!(
        md.contains("## Timeline") && md.contains(" (alice) "),
        "{md}"
    );
    let table = strait.cli(TOKEN, &["status"]);
    assert!(stdout(&table).contains(&id) && stdout(&table).contains("rolled_back"));

    let metrics = strait
        .request("GET", "/metrics", None, &[], None)
        .await
        .text;
    assert!(metrics.contains(&format!(
        "strait_cutover_stage{{cutover=\"{id}\",name=\"wave-1\",stage=\"rolled_back\"}} 1\n"
    )));
}

#[test]
fn api_without_a_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "t", "listen = \"127.0.0.1:0\"");
    let out = strait_cmd()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("api.token_file") && err.contains("STRAIT_API_TOKEN"),
        "{err}"
    );
    assert!(
        !dir.path().join("state").exists(),
        "refused before opening the state"
    );
}

#[test]
fn bad_token_file_names_file_and_line_not_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("alice:{TOKEN}\n{OPS_TOKEN}\n")).unwrap();
    let config = write_config(
        dir.path(),
        "t",
        &format!(
            "listen = \"127.0.0.1:0\"\ntoken_file = \"{}\"",
            tokens.display()
        ),
    );
    let out = strait_cmd()
        .env("STRAIT_API_TOKEN", "fine")
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&tokens.display().to_string()), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains(TOKEN) && !err.contains(OPS_TOKEN), "{err}");
}

#[test]
fn no_listen_means_no_api_and_no_token_needed() {
    // Without [api] listen, strait starts without any token: it gets as far as the clusters
    // (unreachable here) instead of stopping at the API.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strait.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nbootstrap_servers = \"127.0.0.1:1\"\n[target]\nbootstrap_servers = \
             \"127.0.0.1:1\"\n[mirror]\ntopics = [\"t\"]\n[state]\ndir = \"{}\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let out = strait_cmd()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the source cluster"), "{err}");
    assert!(!err.contains("STRAIT_API_TOKEN"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_drives_a_cutover_and_waits() {
    let strait = start().await;
    strait.wait_caught_up().await;
    let topic = strait.topic.clone();
    let create = [
        "create",
        "--name",
        "cli-wave",
        "--topics",
        &topic,
        "--fence",
        "manual",
        "--quiet-period",
        "1s",
    ];
    let dry = strait.cli(TOKEN, &[&create[..], &["--dry-run"]].concat());
    assert!(dry.status.success(), "{}{}", stdout(&dry), stderr(&dry));
    assert!(
        stdout(&dry).starts_with("dry run: - -> mirroring"),
        "{}",
        stdout(&dry)
    );
    assert_eq!(strait.cutovers().await["cutovers"], json!([]));

    let created = strait.cli(TOKEN, &create);
    assert!(created.status.success(), "{}", stderr(&created));
    let id = stdout(&created).trim().to_owned();
    let c = strait.get(&format!("/v1/cutovers/{id}")).await.json();
    assert_eq!(c["fence"]["quiet_period_ms"], 1000);
    assert_eq!(c["topics"], json!([topic]));

    let fenced = strait.cli(
        TOKEN,
        &[
            "advance",
            &id,
            "--to",
            "fenced",
            "--wait",
            "--timeout",
            "90s",
        ],
    );
    let out = stdout(&fenced);
    assert!(fenced.status.success(), "{out}{}", stderr(&fenced));
    assert_eq!(out.lines().last(), Some("fenced"), "{out}");
    let shown = strait.cli(TOKEN, &["status", &id]);
    assert!(
        stdout(&shown).contains("stage    fenced"),
        "{}",
        stdout(&shown)
    );

    let back = strait.cli(TOKEN, &["rollback", &id, "--wait", "--timeout", "90s"]);
    assert!(back.status.success(), "{}", stderr(&back));
    assert_eq!(stdout(&back).lines().last(), Some("rolled_back"));
    let report = strait.cli(TOKEN, &["report", &id]);
    let text = stdout(&report);
    assert!(
        text.contains("Write pause (promoted - fenced)  not promoted"),
        "{text}"
    );
    assert!(text.contains("TIMELINE"), "{text}");
}

/// `POST /v1/rehearsals` on a topic with data and a group with committed offsets, no
/// producers: the rehearsal fences, drains, promotes and fails back by itself, and its report
/// (JSON and Markdown) says so. A `shadow` rehearsal is refused and creates nothing; the
/// client's `rehearse --wait` runs a second one and prints its Markdown report.
#[tokio::test(flavor = "multi_thread")]
async fn a_rehearsal_fails_back_by_itself_and_reports() {
    use strait_linker::client::groups::CommittedOffset;
    let strait = start().await;
    strait.wait_caught_up().await;
    let group = unique("rehearsal-group");
    let committed = [(
        (strait.topic.clone(), 0),
        CommittedOffset {
            offset: 12,
            leader_epoch: -1,
            metadata: None,
        },
    )];
    let source = client(kafka_source()).await;
    let committed = committed.into_iter().collect();
    // The first group of a fresh broker waits for its offsets topic: retry.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = source.offset_commit(&group, &committed).await {
        assert!(Instant::now() < deadline, "commit: {e}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let body = json!({
        "topics": [strait.topic], "groups": [group],
        "fence": { "mode": "manual", "failback_mode": "manual", "quiet_period_ms": 1000 },
    });
    let mut shadow = body.clone();
    shadow["mode"] = json!("shadow");
    let e = strait
        .post("/v1/rehearsals", &shadow, &[])
        .await
        .error(400, "bad_request");
    assert_eq!(e["details"]["field"], "mode", "{e}");
    assert!(e["message"].as_str().unwrap().contains("mode"), "{e}");
    assert_eq!(strait.cutovers().await["cutovers"], json!([]));

    let started = strait.post("/v1/rehearsals", &body, &[]).await;
    assert_eq!(started.status, 202, "{}", started.text);
    let c = started.json();
    assert_eq!(c["rehearsal"], true, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    // Settled: no operation, and not the moment between promotion and its failback.
    let deadline = Instant::now() + Duration::from_secs(120);
    let c = loop {
        let c = strait.get(&format!("/v1/cutovers/{id}")).await.json();
        if c["operation"].is_null() && c["stage"] != "promoted" {
            break c;
        }
        assert!(Instant::now() < deadline, "rehearsal still running: {c}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(c["stage"], "rolled_back", "{c}");

    let r = strait.get(&format!("/v1/cutovers/{id}/report")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let report = r.json();
    assert_eq!(report["result"], "rolled_back", "{report}");
    assert_eq!(report["rehearsal"], true);
    let stages: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert!(s["lag_records"].is_i64(), "{s}");
            s["stage"].as_str().unwrap()
        })
        .collect();
    for want in ["fenced", "drained", "promoted", "rolled_back"] {
        assert!(stages.contains(&want), "{want} missing from {stages:?}");
    }
    assert!(report["write_pause_ms"].is_u64(), "{report}");
    let key = format!("{}-0", strait.topic);
    assert_eq!(
        report["failback"]["group_offsets"][&group][&key], 12,
        "the group's offset translated back: {report}"
    );
    assert_eq!(report["failed_checks"], json!([]), "{report}");

    let md = strait.get(&format!("/v1/cutovers/{id}/report.md")).await;
    assert_eq!(md.status, 200);
    let content_type = md.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/markdown"), "{content_type}");
    assert!(md.text.starts_with("# Rehearsal report"), "{}", md.text);
    // The client prints the API's Markdown as is.
    let printed = strait.cli(TOKEN, &["report", &id, "--markdown"]);
    assert!(printed.status.success(), "{}", stderr(&printed));
    assert_eq!(stdout(&printed), md.text);

    // The client runs a second rehearsal of the same wave and waits for its report.
    let run = strait.cli(
        TOKEN,
        &[
            "rehearse",
            "--topics",
            &strait.topic,
            "--groups",
            &group,
            "--fence",
            "manual",
            "--failback-fence",
            "manual",
            "--quiet-period",
            "1s",
            "--wait",
            "--timeout",
            "2m",
        ],
    );
    let out = stdout(&run);
    assert!(
        run.status.success(),
        "{out}{}\nstrait's log, last lines:\n{}",
        stderr(&run),
        strait.log_tail(80)
    );
    assert!(out.starts_with("# Rehearsal report"), "{out}");
    assert!(out.contains("- **Result:** rolled_back\n"), "{out}");
    assert_eq!(
        strait.cutovers().await["cutovers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
