//! The cutover playbooks in `scenarios/` run as end-to-end tests: each runs through the real
//! binary (`strait scenario run PLAYBOOK --json`), which starts its own Apache Kafka and
//! tansu brokers, runs the workload and `strait run` as a child process, and judges the
//! playbook's assertions. A test passes only when the run passed; its text report is printed
//! either way.

use std::path::{Path, PathBuf};
use std::process::Command;

fn playbook(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.yaml"))
}

fn strait() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strait"));
    cmd.env_remove("STRAIT_API_TOKEN")
        .env_remove("RUST_LOG")
        .env_remove("STRAIT_LOG_FORMAT");
    cmd
}

/// Runs a playbook and returns its JSON report, panicking with the text report unless it
/// passed.
fn run(name: &str) -> serde_json::Value {
    let work = tempfile::tempdir().unwrap();
    let out = strait()
        .args(["scenario", "run", "--json", "--work-dir"])
        .arg(work.path())
        .arg(playbook(name))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The text report is the tail of stderr (the runner's log lines come first).
    let start = stderr.rfind(&format!("scenario {name} (run")).unwrap_or(0);
    let report = &stderr[start..];
    eprintln!("{report}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(work.path().join("strait.log")).unwrap_or_default();
        panic!(
            "{name}: no JSON report ({e}); stderr:\n{stderr}\nstrait.log tail:\n{}",
            tail(&log)
        )
    });
    if !out.status.success() || json["passed"] != true {
        let log = std::fs::read_to_string(work.path().join("strait.log")).unwrap_or_default();
        panic!(
            "{name} failed (exit {:?}); strait.log tail:\n{}",
            out.status.code(),
            tail(&log)
        );
    }
    assert_eq!(out.status.code(), Some(0));
    json
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Every group read exactly what it should; the report's own figures say so.
fn assert_exact(report: &serde_json::Value) {
    let groups = report["groups"].as_array().unwrap();
    assert!(!groups.is_empty());
    for g in groups {
        assert_eq!(g["lost"], 0, "{g}");
        assert_eq!(g["duplicated"], 0, "{g}");
        assert_eq!(g["phantom"], 0, "{g}");
        assert_eq!(g["out_of_order"], 0, "{g}");
        assert!(g["read"].as_u64().unwrap() > 0, "{g}");
    }
}

#[test]
fn quickstart() {
    let r = run("quickstart");
    assert_exact(&r);
    assert!(
        r["asserts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["assertion"] == "verify")
    );
}

#[test]
fn zero_loss_cutover() {
    let r = run("zero-loss-cutover");
    assert_exact(&r);
    // The group moved to the target and read there, resuming exactly.
    let g = &r["groups"][0];
    assert!(g["read_on_target"].as_u64().unwrap() > 0, "{g}");
    assert!(g["exact_switches"].as_u64().unwrap() > 0, "{g}");
    assert!(r["cutovers"][0]["write_pause_ms"].as_u64().is_some());
}

#[test]
fn rollback_from_each_stage() {
    let r = run("rollback-from-each-stage");
    assert_exact(&r);
    assert_eq!(r["cutovers"].as_array().unwrap().len(), 3);
    for c in r["cutovers"].as_array().unwrap() {
        assert_eq!(c["stage"], "rolled_back", "{c}");
    }
}

#[test]
fn failback_after_promote() {
    let r = run("failback-after-promote");
    assert_exact(&r);
    let g = &r["groups"][0];
    // Read on the source, then the target, then the source again.
    assert!(g["read_on_target"].as_u64().unwrap() > 0, "{g}");
    assert!(g["exact_switches"].as_u64().unwrap() >= 2, "{g}");
}

#[test]
fn crash_during_drain() {
    let r = run("crash-during-drain");
    assert_exact(&r);
    assert_eq!(r["strait_starts"], 3);
}

#[test]
fn transactions_and_compaction() {
    let r = run("transactions-and-compaction");
    assert_exact(&r);
    assert!(
        r["aborted"].as_u64().unwrap() > 0,
        "some transactions were aborted"
    );
}

/// A playbook with a mistake is refused before anything starts, naming the mistake.
#[test]
fn a_bad_playbook_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(playbook("zero-loss-cutover"))
        .unwrap()
        .replace("value_bytes: 512", "value_bytse: 512");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, text).unwrap();
    let out = strait()
        .args(["scenario", "run"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("value_bytse"), "{stderr}");
    // Nothing ran: no work directory was announced.
    assert!(!stderr.contains("work dir"), "{stderr}");
}
