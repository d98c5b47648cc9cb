//! The fault report (`target/fault-report.jsonl`) the fault tests append to, and its summary.

/// One row of the fault report (`target/fault-report.jsonl`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultRow {
    pub test: String,
    pub fault: String,
    /// How many times the fault was actually injected (proxy counters, kills, ...).
    pub injected: u64,
    /// Records on the target for the scenario's topics at the end.
    pub mirrored: u64,
    /// Acknowledged source records missing on the target (must be 0).
    pub lost: u64,
    /// Records present more than once on the target (must be 0).
    pub duplicated: u64,
    pub secs: f64,
    pub note: String,
}

/// The fault report file: `$STRAIT_FAULT_REPORT`, else `<checkout>/target/fault-report.jsonl`.
pub fn fault_report_path() -> std::path::PathBuf {
    std::env::var_os("STRAIT_FAULT_REPORT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fault-report.jsonl")
        })
}

/// Rows appended by this process, for the summary table.
static FAULT_ROWS: std::sync::Mutex<Vec<FaultRow>> = std::sync::Mutex::new(Vec::new());

/// Appends `row` to the report file (one JSON object per line, with the run's pid and time).
pub fn record_fault(row: FaultRow) {
    use std::io::Write;
    let path = fault_report_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut v = serde_json::to_value(&row).unwrap();
    v["pid"] = std::process::id().into();
    v["at_ms"] = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64)
        .into();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "{v}").unwrap();
    FAULT_ROWS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(row);
}

/// The rows this process recorded, as a text table.
pub fn fault_summary() -> String {
    let rows = FAULT_ROWS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = format!(
        "{:<36} {:<34} {:>8} {:>9} {:>5} {:>5} {:>7}  note\n",
        "test", "fault", "injected", "mirrored", "lost", "dup", "secs"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<36} {:<34} {:>8} {:>9} {:>5} {:>5} {:>7.1}  {}\n",
            r.test, r.fault, r.injected, r.mirrored, r.lost, r.duplicated, r.secs, r.note
        ));
    }
    let (lost, dup): (u64, u64) = rows
        .iter()
        .fold((0, 0), |(l, d), r| (l + r.lost, d + r.duplicated));
    out.push_str(&format!(
        "{} rows, {} faults injected, lost {lost}, duplicated {dup}; report: {}\n",
        rows.len(),
        rows.iter().map(|r| r.injected).sum::<u64>(),
        fault_report_path().display()
    ));
    out
}
