//! A REST fuzz run of the control API from its own OpenAPI document: schemathesis (from the
//! test venv) generates requests for every operation of `/v1/openapi.json` against a real
//! `strait run` on the shared Kafka brokers, with a valid token. Asserted: no 5xx
//! (schemathesis' `not_a_server_error`), no panic in strait's log, strait still serving, and
//! every rejected (4xx) call left the list of cutovers exactly as it was (a schemathesis
//! check in `tests/rest_fuzz/strait_rest_checks.py`, re-reading the list after each call).
//! Examples are limited so the run stays well under a minute and a half.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use strait_testkit::{kafka_source, kafka_target, unique};
use support::*;

const TOKEN: &str = "fuzz-t0ken-DO-NOT-LEAK";
/// Examples per operation and phase; 13 operations.
const MAX_EXAMPLES: &str = "15";

struct Strait(Child);

impl Drop for Strait {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn schemathesis() -> PathBuf {
    let bin = strait_testkit::python().with_file_name("schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/python-env.sh (schemathesis is in \
         scripts/python-requirements.txt)",
        bin.display()
    );
    bin
}

fn write_config(dir: &Path, topic: &str, tokens: &Path) -> PathBuf {
    let path = dir.join("strait.toml");
    let text = format!(
        "[source]\nbootstrap_servers = \"{}\"\n[target]\nbootstrap_servers = \"{}\"\n\
         [mirror]\ntopics = [\"{topic}\"]\n[state]\ndir = \"{}\"\n\
         [api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n[log]\nformat = \"json\"\n",
        kafka_source().bootstrap(),
        kafka_target().bootstrap(),
        dir.join("state").display(),
        tokens.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_rejected_calls_change_nothing() {
    let topic = unique("fuzz");
    let source = client(kafka_source()).await;
    create_topic(&source, &topic, 1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("fuzzer:{TOKEN}\n")).unwrap();
    let config = write_config(dir.path(), &topic, &tokens);
    let log = dir.path().join("strait.log");
    let mut strait = Strait(
        strait_cmd()
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("strait starts"),
    );
    let base = format!("http://{}", wait_for_listen(&log).await);
    let doc = api_request(&base, "GET", "/v1/openapi.json", Some(TOKEN), &[], None).await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    let schema = dir.path().join("openapi.json");
    std::fs::write(&schema, &doc.text).unwrap();
    let before = api_request(&base, "GET", "/v1/cutovers", Some(TOKEN), &[], None).await;

    let stats = dir.path().join("stats.json");
    let started = Instant::now();
    let output = tokio::process::Command::new(schemathesis())
        .arg("run")
        .arg(&schema)
        .args(["--url", &base])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,rejected_calls_change_nothing",
        ])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--workers", "1", "--seed", "8", "--no-color"])
        .args(["--request-timeout", "20", "--suppress-health-check", "all"])
        .env(
            "PYTHONPATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rest_fuzz"),
        )
        .env("SCHEMATHESIS_HOOKS", "strait_rest_checks")
        .env("STRAIT_FUZZ_BASE", &base)
        .env("STRAIT_FUZZ_TOKEN", TOKEN)
        .env("STRAIT_FUZZ_STATS", &stats)
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), output)
        .await
        .expect("schemathesis finishes")
        .expect("schemathesis runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let strait_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(
        !strait_log.contains("panicked"),
        "strait panicked:\n{strait_log}"
    );
    assert!(
        strait.0.try_wait().unwrap().is_none(),
        "strait exited:\n{strait_log}"
    );
    let counts: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("the check ran")).unwrap();
    let calls: u64 = counts.values().filter_map(serde_json::Value::as_u64).sum();
    let rejected: u64 = counts
        .iter()
        .filter(|(status, _)| status.starts_with('4'))
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    eprintln!(
        "schemathesis: {calls} calls in {:?}, by status {counts:?}",
        started.elapsed()
    );
    assert!(
        calls >= 100 && rejected >= 50,
        "too few calls: {counts:?}\n{report}"
    );
    assert!(
        counts.keys().all(|status| !status.starts_with('5')),
        "{counts:?}"
    );
    // Nothing was accepted that creates a cutover (random topics are never mirrored), so the
    // list is as it was before the run.
    let after = api_request(&base, "GET", "/v1/cutovers", Some(TOKEN), &[], None).await;
    if !counts.contains_key("201") {
        assert_eq!(after.text, before.text, "the cutovers changed");
    }
    let health = api_request(&base, "GET", "/healthz", None, &[], None).await;
    assert_eq!(health.status, 200);
}
