//! Output: the table on stdout, `target/bench/mirror.json`, and `target/bench/mirror.svg`
//! (throughput bars per workload and system, and the latency percentiles), written by hand:
//! a few rectangles and labels do not need a plotting crate.

use std::fmt::Write as _;

use serde::Serialize;

use crate::latency::Latency;

/// One workload on one broker pair. Rates count uncompressed record payload
/// (records × record size), so zstd and uncompressed rows compare records moved.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub pair: String,
    pub workload: String,
    pub partitions: i32,
    pub records: u64,
    pub payload_mb: f64,
    pub stored_mb: f64,
    pub raw_fetch_mb_s: f64,
    /// The raw produce ceiling: the fastest of `raw_produce_by_lanes`.
    pub raw_produce_mb_s: f64,
    /// Connections per broker that gave `raw_produce_mb_s`.
    pub raw_produce_lanes: usize,
    /// Every raw produce measured, in the order run.
    pub raw_produce_by_lanes: Vec<RawProduce>,
    pub strait_mb_s: f64,
    pub strait_records_s: f64,
    pub strait_startup_s: f64,
    pub strait_peak_rss_mib: f64,
    /// CPU time of strait's threads (start-up included) per GB of record payload:
    /// what strait itself costs, apart from how fast the brokers let it go.
    pub strait_cpu_s_per_gb: f64,
    /// The target broker's CPU time per MB of payload while strait copied (ms/MB; from the
    /// first record seen on the target to the last, so not strait's start-up and topic
    /// creation): beside the raw produce's, what the target pays for strait's writes.
    pub target_cpu_ms_per_mb_strait: Option<f64>,
    /// The source broker's, over the same copy (its fetches, and the core it shares).
    pub source_cpu_ms_per_mb_strait: Option<f64>,
    /// strait's produce requests to the target over the copy (start-up included), and the
    /// source batches each carried on average: the request shape the target paid for.
    pub strait_produce_requests: Option<u64>,
    pub strait_batches_per_request: Option<f64>,
    pub naive_mb_s: Option<f64>,
    /// The same while the naive mirror copied (from its first record too).
    pub target_cpu_ms_per_mb_naive: Option<f64>,
    pub mm2_mb_s: Option<f64>,
    pub mm2_startup_s: Option<f64>,
}

/// One raw produce of the backlog to the target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RawProduce {
    /// Connections per broker.
    pub lanes: usize,
    /// Measured after strait's copy (on unless `STRAIT_BENCH_RAW_AFTER=0`), not before it.
    pub after_strait: bool,
    pub mb_s: f64,
    /// The target broker's CPU time per MB of payload over it (ms/MB).
    pub target_cpu_ms_per_mb: Option<f64>,
}

impl Row {
    /// Records a raw produce; the ceiling is the fastest of them.
    pub fn add_raw(&mut self, r: RawProduce) {
        if r.mb_s > self.raw_produce_mb_s {
            self.raw_produce_mb_s = r.mb_s;
            self.raw_produce_lanes = r.lanes;
        }
        self.raw_produce_by_lanes.push(r);
    }

    pub fn ceiling(&self) -> f64 {
        self.raw_fetch_mb_s.min(self.raw_produce_mb_s)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub machine: String,
    pub budget_mib: u64,
    pub rows: Vec<Row>,
    pub latency: Vec<(String, Latency)>,
    pub group_sync: Option<serde_json::Value>,
    pub cutover_write_pause: Option<String>,
    pub write_pauses: Vec<crate::pause::WritePause>,
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn ratio(a: f64, b: Option<f64>) -> String {
    b.map_or("-".into(), |b| format!("{:.2}", a / b))
}

pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:<10} {:>5} {:>8} {:>9} {:>9} {:>8} {:>10} {:>7} {:>8} {:>8} {:>7} {:>7} {:>6} {:>6}",
        "pair",
        "workload",
        "parts",
        "MB",
        "fetch",
        "produce",
        "strait",
        "rec/s",
        "/ceil",
        "RSS MiB",
        "CPU s/GB",
        "naive",
        "MM2",
        "x nai",
        "x MM2"
    );
    for row in &r.rows {
        let _ = writeln!(
            s,
            "{:<14} {:<10} {:>5} {:>8.0} {:>9.1} {:>9.1} {:>8.1} {:>10.0} {:>7.2} {:>8.0} {:>8.2} {:>7} {:>7} {:>6} {:>6}",
            row.pair,
            row.workload,
            row.partitions,
            row.payload_mb,
            row.raw_fetch_mb_s,
            row.raw_produce_mb_s,
            row.strait_mb_s,
            row.strait_records_s,
            row.strait_mb_s / row.ceiling(),
            row.strait_peak_rss_mib,
            row.strait_cpu_s_per_gb,
            opt(row.naive_mb_s),
            opt(row.mm2_mb_s),
            ratio(row.strait_mb_s, row.naive_mb_s),
            ratio(row.strait_mb_s, row.mm2_mb_s),
        );
    }
    let _ = writeln!(
        s,
        "(MB/s of uncompressed record payload; fetch/produce = strait's client alone, produce = the fastest raw produce, before or after strait's copy, over one or two connections (JSON: raw_produce_by_lanes); RSS = VmHWM of `strait run`, budget {} MiB; CPU s/GB = CPU time of strait's threads per GB of payload)",
        r.budget_mib
    );
    for (pair, l) in &r.latency {
        // tansu has no target reader (reading it slows its writes): say so rather than "NaN".
        let reader = if l.strait_p99_ms.is_finite() {
            format!(
                "strait end-to-end p50 {:.0} ms p99 {:.0} ms (target reader)",
                l.strait_p50_ms, l.strait_p99_ms
            )
        } else {
            "no target reader".to_string()
        };
        let _ = writeln!(
            s,
            "latency {pair} at {:.1} MB/s for {} s: brokers' own produce->fetch p50 {:.0} ms p99 {:.0} ms; {reader}; strait acknowledged p50 {:.0} ms p99 {:.0} ms (strait_mirror_delay_seconds; queued in strait p50 {:.0} ms p99 {:.0} ms, target's produce answers p50 {:.0} ms p99 {:.0} ms at {:.0}/s, source fetches p99 {:.0} ms at {:.0}/s) (target p99 <= {:.0} ms); all copied {:.0} ms after the last produce; RSS {:.0} MiB; {} partitions, CPU over the load: source broker {:.0}%, target broker {:.0}%, strait {:.0}%, load and readers {:.0}% (of {}%)",
            l.rate_mb_s,
            l.seconds,
            l.broker_p50_ms,
            l.broker_p99_ms,
            l.strait_ack_p50_ms,
            l.strait_ack_p99_ms,
            l.strait_queue_p50_ms,
            l.strait_queue_p99_ms,
            l.target_produce_p50_ms,
            l.target_produce_p99_ms,
            l.target_produces_per_s,
            l.source_fetch_p99_ms,
            l.source_fetches_per_s,
            2.0 * l.broker_p99_ms + 50.0,
            l.copied_after_ms,
            l.strait_peak_rss_mib,
            l.partitions,
            l.source_broker_cpu_pct,
            l.target_broker_cpu_pct,
            l.strait_cpu_pct,
            l.bench_cpu_pct,
            100 * l.cores
        );
    }
    match &r.group_sync {
        Some(g) => {
            let _ = writeln!(
                s,
                "group sync delay (benches/group_sync_delay.rs): p50 {} ms p99 {} ms over {} commits",
                g["p50_ms"], g["p99_ms"], g["commits"]
            );
        }
        None => {
            let _ = writeln!(
                s,
                "group sync delay: not measured (run `cargo bench --bench group_sync_delay` first)"
            );
        }
    }
    let _ = writeln!(
        s,
        "cutover write pause: {}",
        r.cutover_write_pause.as_deref().unwrap_or("not measured")
    );
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A grouped bar chart of throughput (one group per row, bars: ceiling, strait, naive, MM2)
/// and, below it, the latency percentiles.
pub fn svg(r: &Report) -> String {
    let series: [(&str, &str); 4] = [
        ("ceiling", "#9e9e9e"),
        ("strait", "#1f77b4"),
        ("naive rdkafka", "#ff7f0e"),
        ("MirrorMaker 2", "#2ca02c"),
    ];
    let values = |row: &Row| {
        [
            Some(row.ceiling()),
            Some(row.strait_mb_s),
            row.naive_mb_s,
            row.mm2_mb_s,
        ]
    };
    let max = r
        .rows
        .iter()
        .flat_map(|row| values(row).into_iter().flatten())
        .fold(1.0f64, f64::max);
    let (left, top, plot_h, group_w, bar_w) = (60.0, 40.0, 220.0, 110.0, 22.0);
    let width = left + group_w * r.rows.len().max(1) as f64 + 20.0;
    let lat_h = 30.0 + 40.0 * r.latency.len() as f64;
    let height = top + plot_h + 70.0 + lat_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"18\" font-size=\"14\">strait mirror throughput (MB/s of record payload, {})</text>",
        esc(&r.machine)
    );
    for (i, (name, color)) in series.iter().enumerate() {
        let x = left + 130.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"26\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"35\">{name}</text>",
            x + 14.0
        );
    }
    let base = top + plot_h;
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"black\"/>",
        width - 20.0
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = base - plot_h * k as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.0}</text><line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>",
            left - 4.0,
            y + 4.0,
            width - 20.0
        );
    }
    for (g, row) in r.rows.iter().enumerate() {
        let gx = left + group_w * g as f64 + 8.0;
        for (i, v) in values(row).into_iter().enumerate() {
            let Some(v) = v else { continue };
            let h = plot_h * v / max;
            let _ = writeln!(
                s,
                "<rect x=\"{}\" y=\"{}\" width=\"{bar_w}\" height=\"{h}\" fill=\"{}\"><title>{} {:.1} MB/s</title></rect>",
                gx + bar_w * i as f64,
                base - h,
                series[i].1,
                series[i].0,
                v
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\">{}</text>",
            gx,
            base + 14.0,
            esc(&row.workload),
            gx,
            base + 27.0,
            esc(&row.pair)
        );
    }
    let ly = base + 60.0;
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{ly}\" font-size=\"14\">end-to-end latency (ms): brokers' own vs strait</text>"
    );
    let lat_max = r
        .latency
        .iter()
        .map(|(_, l)| l.strait_view().1.max(l.broker_p99_ms))
        .fold(1.0f64, f64::max);
    let scale = (width - left - 160.0) / lat_max;
    for (i, (pair, l)) in r.latency.iter().enumerate() {
        let y = ly + 14.0 + 40.0 * i as f64;
        let bars = [
            (
                "brokers p50/p99",
                l.broker_p50_ms,
                l.broker_p99_ms,
                "#9e9e9e",
            ),
            (
                "strait p50/p99",
                l.strait_view().0,
                l.strait_view().1,
                "#1f77b4",
            ),
        ];
        for (j, (name, p50, p99, color)) in bars.iter().enumerate() {
            let yy = y + 16.0 * j as f64;
            let _ = writeln!(
                s,
                "<rect x=\"{left}\" y=\"{yy}\" width=\"{}\" height=\"12\" fill=\"{color}\" opacity=\"0.4\"/><rect x=\"{left}\" y=\"{yy}\" width=\"{}\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{} {name} {p50:.0}/{p99:.0}</text>",
                p99 * scale,
                p50 * scale,
                left + p99 * scale + 4.0,
                yy + 10.0,
                esc(pair)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
