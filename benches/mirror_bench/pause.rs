//! The cutover write pause at steady load: runs `strait scenario run` on the playbooks in
//! `benches/playbooks/` (their own brokers, a steady producer and group, a cutover advanced
//! straight to promoted) and reads strait's write pause (fenced to promoted) from the JSON
//! report.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// What one playbook run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WritePause {
    pub pair: String,
    /// strait's write pause: fenced to promoted.
    pub strait_ms: u64,
    /// The producers' pause: paused on the source to writing on the target.
    pub producers_ms: Option<u64>,
    pub records: u64,
}

/// Runs `benches/playbooks/write-pause-<target>.yaml`.
pub fn run(target: &str, storage: &crate::data::BrokerStorage) -> Result<WritePause> {
    let playbook = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/playbooks")
        .join(format!("write-pause-{target}.yaml"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strait"));
    if let crate::data::BrokerStorage::Tmpfs(root) = storage {
        cmd.env("STRAIT_TEST_BROKERS_DIR", root);
    }
    let out = cmd
        .args(["scenario", "run", "--json"])
        .arg(&playbook)
        .output()
        .context("running strait scenario run")?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "scenario report is not JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if report["passed"] != true {
        bail!("the write-pause playbook failed: {report}");
    }
    let strait_ms = report["cutovers"][0]["write_pause_ms"]
        .as_u64()
        .context("no write pause in the report")?;
    Ok(WritePause {
        pair: format!("kafka->{target}"),
        strait_ms,
        producers_ms: report["producer_pause_ms"].as_u64(),
        records: report["acknowledged"].as_u64().unwrap_or(0),
    })
}
