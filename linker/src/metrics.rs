//! Process-global metrics of the data path, rendered in the Prometheus text format.
//!
//! ```text
//!  KafkaClient::send_fetch ──► FETCH[cluster].observe(seconds)   ┐
//!  KafkaClient::produce_to ──► PRODUCE[cluster].observe(seconds) ├─► render_prometheus(out)
//!  KafkaClient::retrying, mirror retries ──► RETRIES[class] += 1 ┘     (control API /metrics)
//! ```
//!
//! Every metric is a fixed set of atomics in a `static`: recording is a few relaxed atomic
//! adds, no locks and no allocation, so it can sit on the hot path. Each client knows which
//! cluster it talks to ([`Cluster`], set by the mirror with
//! [`crate::client::KafkaClient::set_cluster`]); clients used for anything else report
//! `cluster="other"`. Readers may see a histogram's `_count` and buckets from slightly
//! different instants; Prometheus tolerates that.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which cluster a client talks to: the label `cluster` of the latency histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cluster {
    /// Not (yet) known: a client used outside the mirror.
    Other = 0,
    /// The source cluster.
    Source = 1,
    /// The target cluster.
    Target = 2,
}

impl Cluster {
    const ALL: [Cluster; 3] = [Cluster::Source, Cluster::Target, Cluster::Other];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Cluster::Other => "other",
            Cluster::Source => "source",
            Cluster::Target => "target",
        }
    }

    /// From the `repr(u8)` value (unknown values are `Other`).
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Cluster::Source,
            2 => Cluster::Target,
            _ => Cluster::Other,
        }
    }
}

/// Upper bounds (seconds) of the latency buckets: Prometheus client defaults, extended
/// down to 1 ms and up to 30 s (a produce may wait up to its 30 s timeout).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds (seconds) of the mirror delay buckets: finer between 50 ms and 1 s, where a
/// steady mirror's delay lies, and up to 5 minutes for a backlog.
pub const DELAY_BUCKETS: [f64; 22] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0,
    10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Room for the longest bucket list.
const NB: usize = DELAY_BUCKETS.len();

/// A lock-free histogram over fixed bounds ([`LATENCY_BUCKETS`] unless made
/// [`Histogram::with_bounds`]). Buckets are stored non-cumulatively and summed when rendered;
/// the sum is kept in whole nanoseconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: [AtomicU64; NB],
    /// Observations above the last bound (only in `+Inf`).
    over: AtomicU64,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram over [`LATENCY_BUCKETS`].
    pub const fn new() -> Self {
        Self::with_bounds(&LATENCY_BUCKETS)
    }

    /// An empty histogram over `bounds` (ascending, at most as many as [`DELAY_BUCKETS`]).
    pub const fn with_bounds(bounds: &'static [f64]) -> Self {
        assert!(bounds.len() <= NB, "too many histogram bounds");
        Self {
            bounds,
            buckets: [const { AtomicU64::new(0) }; NB],
            over: AtomicU64::new(0),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        match self.bounds.iter().position(|b| secs <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// The upper bounds (seconds), without `+Inf`.
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Cumulative counts per bound, `+Inf` last (`bounds().len() + 1` entries).
    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        let mut out: Vec<u64> = self.buckets[..self.bounds.len()]
            .iter()
            .map(|b| {
                acc += b.load(Ordering::Relaxed);
                acc
            })
            .collect();
        out.push(acc + self.over.load(Ordering::Relaxed));
        out
    }

    /// Renders the series; `labels` is `k="v",...` or empty.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let cum = self.cumulative();
        let n = self.bounds.len();
        let (le, tail) = if labels.is_empty() {
            (String::new(), String::new())
        } else {
            (format!("{labels},"), format!("{{{labels}}}"))
        };
        for (b, c) in self.bounds.iter().zip(&cum) {
            let _ = writeln!(out, "{name}_bucket{{{le}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{le}le=\"+Inf\"}} {}", cum[n]);
        let _ = writeln!(out, "{name}_sum{tail} {}", self.sum_seconds());
        // `_count` equals the `+Inf` bucket by construction of what is rendered.
        let _ = writeln!(out, "{name}_count{tail} {}", cum[n]);
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// Error classes counted by `strait_retries_total` ([`crate::client::Error::class`]).
const RETRY_CLASSES: [&str; 9] = [
    "connect",
    "connection",
    "timeout",
    "unsupported_api",
    "protocol",
    "auth",
    "broker",
    "no_leader",
    "config",
];

static DISCOVERY: Histogram = Histogram::with_bounds(&DELAY_BUCKETS);
static FETCH: [Histogram; 3] = [const { Histogram::new() }; 3];
static MIRROR_DELAY: Histogram = Histogram::with_bounds(&DELAY_BUCKETS);
static MIRROR_QUEUE: Histogram = Histogram::with_bounds(&DELAY_BUCKETS);
static PRODUCE: [Histogram; 3] = [const { Histogram::new() }; 3];
static RETRIES: [AtomicU64; RETRY_CLASSES.len() + 1] =
    [const { AtomicU64::new(0) }; RETRY_CLASSES.len() + 1];

/// Records the latency of one Fetch request to `cluster`.
pub fn observe_fetch(cluster: Cluster, d: Duration) {
    FETCH[cluster as usize].observe(d);
}

/// Records the latency of one Produce request to `cluster`.
pub fn observe_produce(cluster: Cluster, d: Duration) {
    PRODUCE[cluster as usize].observe(d);
}

/// Records the delay of one mirrored batch: from its newest record's timestamp on the
/// source to the target's acknowledgement of its copy.
pub fn observe_mirror_delay(d: Duration) {
    MIRROR_DELAY.observe(d);
}

/// Records how long one batch waited in strait: from the fetch response that carried it to
/// the send of its first write to the target.
pub fn observe_mirror_queue(d: Duration) {
    MIRROR_QUEUE.observe(d);
}

/// Records how long the mirror's coordinator stood still for one topic discovery (it moves
/// no data meanwhile). After the first, the topic listings are read beside the coordinator
/// and do not count.
pub fn observe_discovery(d: Duration) {
    DISCOVERY.observe(d);
}

/// The topic discovery histogram (for tests and benchmarks).
pub fn discovery_duration() -> &'static Histogram {
    &DISCOVERY
}

/// Counts one retry of an operation that failed with an error of `class`.
pub fn count_retry(class: &str) {
    let i = RETRY_CLASSES
        .iter()
        .position(|c| *c == class)
        .unwrap_or(RETRY_CLASSES.len());
    RETRIES[i].fetch_add(1, Ordering::Relaxed);
}

/// The fetch latency histogram of `cluster` (for tests and benchmarks).
pub fn fetch_latency(cluster: Cluster) -> &'static Histogram {
    &FETCH[cluster as usize]
}

/// The produce latency histogram of `cluster` (for tests and benchmarks).
pub fn produce_latency(cluster: Cluster) -> &'static Histogram {
    &PRODUCE[cluster as usize]
}

/// Retries counted so far for `class`.
pub fn retries(class: &str) -> u64 {
    let i = RETRY_CLASSES
        .iter()
        .position(|c| *c == class)
        .unwrap_or(RETRY_CLASSES.len());
    RETRIES[i].load(Ordering::Relaxed)
}

/// Appends the data-path metric families (HELP, TYPE and every series) to `out`.
pub fn render_prometheus(out: &mut String) {
    for (name, help, hists) in [
        (
            "strait_fetch_latency_seconds",
            "Duration of Fetch requests, send to response, by cluster.",
            &FETCH,
        ),
        (
            "strait_produce_latency_seconds",
            "Duration of Produce requests, send to response, by cluster.",
            &PRODUCE,
        ),
    ] {
        family(out, name, help, "histogram");
        for c in Cluster::ALL {
            hists[c as usize].render(out, name, &format!("cluster=\"{}\"", c.as_str()));
        }
    }
    for (name, help, hist) in [
        (
            "strait_mirror_delay_seconds",
            "Time from a record batch's newest timestamp on the source to the target's acknowledgement of its copy, per batch (a backlog counts its age; clock skew between producers and strait shows here).",
            &MIRROR_DELAY,
        ),
        (
            "strait_mirror_queue_seconds",
            "Time a record batch waits in strait, from the fetch response that carried it to the send of its write to the target, per batch (the part of the mirror delay that is strait's queue; a backlog counts its wait; immune to clock skew).",
            &MIRROR_QUEUE,
        ),
        (
            "strait_mirror_discovery_seconds",
            "Time the mirror's coordinator stands still for each topic discovery (new topics and partitions set up, mirror topics protected); the mirror moves no data meanwhile. The source and target topic listings are read beside it, except for the first discovery's.",
            &DISCOVERY,
        ),
    ] {
        family(out, name, help, "histogram");
        hist.render(out, name, "");
    }
    let name = "strait_retries_total";
    family(
        out,
        name,
        "Retries of failed Kafka operations, by error class.",
        "counter",
    );
    for (class, n) in RETRY_CLASSES.iter().chain(["other"].iter()).zip(&RETRIES) {
        let _ = writeln!(
            out,
            "{name}{{class=\"{class}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
}

/// A metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const LB: usize = LATENCY_BUCKETS.len();

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(500)); // ≤ 1 ms
        h.observe(Duration::from_millis(1)); // = 1 ms: le is inclusive
        h.observe(Duration::from_millis(7)); // ≤ 10 ms
        h.observe(Duration::from_secs(60)); // only +Inf
        let c = h.cumulative();
        assert_eq!(c.len(), LB + 1);
        assert_eq!(c[0], 2);
        assert_eq!(c[1], 2); // 2.5 ms
        assert_eq!(c[3], 3); // 10 ms
        assert_eq!(c[LB - 1], 3); // 30 s
        assert_eq!(c[LB], 4);
        assert!(c.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(h.count(), 4);
        assert!((h.sum_seconds() - 60.0085).abs() < 1e-9);
    }

    #[test]
    fn histogram_renders_a_complete_family() {
        let h = Histogram::new();
        h.observe(Duration::from_millis(3));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "cluster=\"source\"");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), LB + 3);
        assert_eq!(
            lines[0],
            "x_seconds_bucket{cluster=\"source\",le=\"0.001\"} 0"
        );
        assert_eq!(
            lines[2],
            "x_seconds_bucket{cluster=\"source\",le=\"0.005\"} 1"
        );
        assert_eq!(
            lines[LB],
            "x_seconds_bucket{cluster=\"source\",le=\"+Inf\"} 1"
        );
        assert_eq!(lines[LB + 1], "x_seconds_sum{cluster=\"source\"} 0.003");
        assert_eq!(lines[LB + 2], "x_seconds_count{cluster=\"source\"} 1");
    }

    #[test]
    fn the_mirror_delay_histogram_has_its_own_bounds_and_no_labels() {
        let h = Histogram::with_bounds(&DELAY_BUCKETS);
        h.observe(Duration::from_millis(120)); // ≤ 150 ms
        h.observe(Duration::from_secs(400)); // only +Inf
        let c = h.cumulative();
        assert_eq!(c.len(), DELAY_BUCKETS.len() + 1);
        assert_eq!(c[5], 0, "100 ms");
        assert_eq!(c[6], 1, "150 ms");
        assert_eq!(c[DELAY_BUCKETS.len()], 2);
        let mut out = String::new();
        h.render(&mut out, "d_seconds", "");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[6], "d_seconds_bucket{le=\"0.15\"} 1");
        assert_eq!(
            lines[DELAY_BUCKETS.len()],
            "d_seconds_bucket{le=\"+Inf\"} 2"
        );
        assert_eq!(lines[DELAY_BUCKETS.len() + 1], "d_seconds_sum 400.12");
        assert_eq!(lines[DELAY_BUCKETS.len() + 2], "d_seconds_count 2");
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let h = std::sync::Arc::new(Histogram::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = std::sync::Arc::clone(&h);
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.observe(Duration::from_micros(i % 3000));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.count(), 40_000);
        assert_eq!(h.cumulative()[LB], 40_000);
    }

    #[test]
    fn render_prometheus_has_every_family_and_class() {
        observe_fetch(Cluster::Source, Duration::from_millis(2));
        observe_produce(Cluster::Target, Duration::from_millis(4));
        count_retry("timeout");
        count_retry("something-new");
        let mut out = String::new();
        render_prometheus(&mut out);
        for needle in [
            "# TYPE strait_fetch_latency_seconds histogram",
            "# TYPE strait_produce_latency_seconds histogram",
            "# TYPE strait_retries_total counter",
            "strait_fetch_latency_seconds_bucket{cluster=\"source\",le=\"+Inf\"}",
            "strait_produce_latency_seconds_count{cluster=\"target\"}",
            "strait_fetch_latency_seconds_sum{cluster=\"other\"}",
            "strait_retries_total{class=\"timeout\"}",
            "strait_retries_total{class=\"other\"}",
        ] {
            assert!(out.contains(needle), "missing {needle} in\n{out}");
        }
        assert!(retries("timeout") >= 1);
        assert!(retries("other") >= 1);
        // Every line is a comment or `name{labels} number`.
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "bad sample line {l}");
        }
    }
}
