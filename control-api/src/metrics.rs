//! `GET /metrics`: Prometheus text exposition (format 0.0.4), written by hand from the same
//! snapshots as `/v1/status` plus the cutovers.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `strait_up` | gauge | |
//! | `strait_partition_lag_records` | gauge | topic, partition |
//! | `strait_partition_lag_seconds` | gauge | topic, partition |
//! | `strait_partition_source_end_offset` | gauge | topic, partition |
//! | `strait_partition_target_end_offset` | gauge | topic, partition |
//! | `strait_partition_state` | gauge (1 for the current state) | topic, partition, state |
//! | `strait_records_mirrored_total` | counter | topic, partition |
//! | `strait_bytes_mirrored_total` | counter | topic, partition |
//! | `strait_crc_failures_total` | counter | topic, partition |
//! | `strait_topic_problems` | gauge | |
//! | `strait_group_sync_state` | gauge (1 for the current state) | group, state |
//! | `strait_group_translation_delay_seconds` | gauge | group |
//! | `strait_cutover_stage` | gauge (1 for the current stage) | cutover, name, stage |
//! | `strait_cutover_stragglers` | gauge | cutover |
//! | `strait_cutover_operation_in_progress` | gauge | cutover |
//!
//! Counters count since this process started. Unknown values (a lag before the first fetch)
//! are left out rather than written as a sentinel.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use strait_linker::mirror::MirrorStatus;
use strait_offset_sync::GroupStatus;

use crate::cutover::{Cutover, Stage};
use crate::status::{GroupStateName, PartitionStateName, lag_seconds};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STAGES: [Stage; 5] = [
    Stage::Mirroring,
    Stage::Fenced,
    Stage::Drained,
    Stage::Promoted,
    Stage::RolledBack,
];

/// One metric family being written: HELP and TYPE once, then samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Self { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text escapes backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The whole exposition.
pub fn render(
    mirror: &MirrorStatus,
    groups: &BTreeMap<String, GroupStatus>,
    cutovers: &[Cutover],
    now_ms: u64,
) -> String {
    let mut out = String::new();
    Family::new(
        &mut out,
        "strait_up",
        "gauge",
        "1 while strait serves metrics.",
    )
    .sample(&[], 1.0);
    partitions(&mut out, mirror, now_ms);
    Family::new(
        &mut out,
        "strait_topic_problems",
        "gauge",
        "Topics that match the mirror's selection but cannot be mirrored.",
    )
    .sample(&[], mirror.topic_problems.len() as f64);
    group_metrics(&mut out, groups);
    cutover_metrics(&mut out, cutovers, now_ms);
    // The data path's own families: fetch/produce latency histograms, retries by class.
    strait_linker::metrics::render_prometheus(&mut out);
    out
}

fn partitions(out: &mut String, mirror: &MirrorStatus, now_ms: u64) {
    let parts: Vec<(String, String, &strait_linker::mirror::PartitionView)> = mirror
        .partitions
        .iter()
        .map(|(tp, v)| (tp.topic.clone(), tp.partition.to_string(), v))
        .collect();
    type Value = fn(&strait_linker::mirror::PartitionView, u64) -> Option<f64>;
    let gauges: [(&'static str, &str, &str, Value); 7] = [
        (
            "strait_partition_lag_records",
            "gauge",
            "Source records (offsets) not mirrored yet.",
            |v, _| (v.lag_records >= 0).then_some(v.lag_records as f64),
        ),
        (
            "strait_partition_lag_seconds",
            "gauge",
            "Age of the newest mirrored record while records wait to be mirrored, else 0.",
            |v, now| lag_seconds(v, now),
        ),
        (
            "strait_partition_source_end_offset",
            "gauge",
            "Source end offset (last stable offset) as of the last fetch.",
            |v, _| (v.source_end >= 0).then_some(v.source_end as f64),
        ),
        (
            "strait_partition_target_end_offset",
            "gauge",
            "Target end offset: where the next mirrored record lands.",
            |v, _| (v.next_target >= 0).then_some(v.next_target as f64),
        ),
        (
            "strait_records_mirrored_total",
            "counter",
            "Records mirrored by this process.",
            |v, _| Some(v.records_mirrored as f64),
        ),
        (
            "strait_bytes_mirrored_total",
            "counter",
            "Record batch bytes mirrored by this process.",
            |v, _| Some(v.bytes_mirrored as f64),
        ),
        (
            "strait_crc_failures_total",
            "counter",
            "Record batches whose CRC-32C failed, fetched from the source or read from the target's tail (read again, never written).",
            |v, _| Some(v.crc_failures as f64),
        ),
    ];
    for (name, kind, help, value) in gauges {
        let mut family = Family::new(out, name, kind, help);
        for (topic, partition, v) in &parts {
            if let Some(x) = value(v, now_ms) {
                family.sample(&[("topic", topic), ("partition", partition)], x);
            }
        }
    }
    let mut family = Family::new(
        out,
        "strait_partition_state",
        "gauge",
        "1 for the partition's current mirror state, 0 for the others.",
    );
    for (topic, partition, v) in &parts {
        let (current, _) = PartitionStateName::of(&v.state);
        for state in PartitionStateName::ALL {
            family.sample(
                &[
                    ("topic", topic),
                    ("partition", partition),
                    ("state", state.as_str()),
                ],
                f64::from(u8::from(state == current)),
            );
        }
    }
}

fn group_metrics(out: &mut String, groups: &BTreeMap<String, GroupStatus>) {
    let mut family = Family::new(
        out,
        "strait_group_sync_state",
        "gauge",
        "1 for the consumer group's current offset sync state, 0 for the others.",
    );
    for (group, g) in groups {
        let (current, _) = GroupStateName::of(&g.state);
        for state in GroupStateName::ALL {
            family.sample(
                &[("group", group), ("state", state.as_str())],
                f64::from(u8::from(state == current)),
            );
        }
    }
    let conflicts = groups
        .values()
        .filter(|g| GroupStateName::of(&g.state).0 == GroupStateName::Split)
        .count();
    Family::new(
        out,
        "strait_group_conflicts",
        "gauge",
        "Groups with live members on both clusters (split): strait stopped syncing them.",
    )
    .sample(&[], conflicts as f64);
    let mut family = Family::new(
        out,
        "strait_group_translation_delay_seconds",
        "gauge",
        "Time from noticing the group's last new source commit to committing its translation.",
    );
    for (group, g) in groups {
        if let Some(ms) = g.translation_delay_ms {
            family.sample(&[("group", group)], ms as f64 / 1000.0);
        }
    }
}

fn cutover_metrics(out: &mut String, cutovers: &[Cutover], now_ms: u64) {
    let mut family = Family::new(
        out,
        "strait_cutover_stage",
        "gauge",
        "1 for the cutover's current stage, 0 for the others.",
    );
    for c in cutovers {
        for stage in STAGES {
            family.sample(
                &[
                    ("cutover", &c.id),
                    ("name", &c.name),
                    ("stage", stage.as_str()),
                ],
                f64::from(u8::from(stage == c.stage)),
            );
        }
    }
    let mut family = Family::new(
        out,
        "strait_cutover_stragglers",
        "gauge",
        "Writes seen on a fenced cluster during the cutover.",
    );
    for c in cutovers {
        family.sample(&[("cutover", &c.id)], c.stragglers.len() as f64);
    }
    let mut family = Family::new(
        out,
        "strait_cutover_stage_duration_seconds",
        "gauge",
        "Time the cutover spent in each stage it reached (the current one: so far).",
    );
    for c in cutovers {
        for (i, rec) in c.stage_log.iter().enumerate() {
            let end = c.stage_log.get(i + 1).map_or(now_ms, |next| next.at_ms);
            family.sample(
                &[("cutover", &c.id), ("stage", rec.stage.as_str())],
                end.saturating_sub(rec.at_ms) as f64 / 1000.0,
            );
        }
    }
    let mut family = Family::new(
        out,
        "strait_cutover_write_pause_seconds",
        "gauge",
        "Time from the source fence to promotion, once promoted.",
    );
    for c in cutovers {
        if let (Some(f), Some(p)) = (c.fenced_ms, c.promoted_ms) {
            family.sample(&[("cutover", &c.id)], p.saturating_sub(f) as f64 / 1000.0);
        }
    }
    let mut family = Family::new(
        out,
        "strait_cutover_operation_in_progress",
        "gauge",
        "1 while an advance or rollback of the cutover is running.",
    );
    for c in cutovers {
        family.sample(
            &[("cutover", &c.id)],
            f64::from(u8::from(c.operation.is_some())),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_linker::mirror::{PartitionState, PartitionView};
    use strait_linker::offset::TopicPartition;
    use strait_offset_sync::SyncState;

    fn view(state: PartitionState, lag: i64, ts: i64) -> PartitionView {
        PartitionView {
            state,
            source_end: 100,
            next_source: 100 - lag,
            next_target: 90,
            lag_records: lag,
            last_mirrored_timestamp: ts,
            records_mirrored: 1234,
            bytes_mirrored: 56_789,
            crc_failures: 2,
        }
    }

    fn sample_input() -> (MirrorStatus, BTreeMap<String, GroupStatus>) {
        let mut mirror = MirrorStatus::default();
        mirror.partitions.insert(
            TopicPartition::new("orders", 0),
            view(PartitionState::Mirroring, 10, 1_000_000),
        );
        mirror.partitions.insert(
            TopicPartition::new("we\"ird\\topic\n", 3),
            view(
                PartitionState::Error {
                    message: "foreign write".into(),
                },
                0,
                -1,
            ),
        );
        let mut groups = BTreeMap::new();
        groups.insert(
            "billing".to_owned(),
            GroupStatus {
                state: SyncState::Split,
                source_state: "Stable".into(),
                target_state: "Stable".into(),
                last_source_commit: BTreeMap::new(),
                last_target_commit: BTreeMap::new(),
                waiting_for_mirror: Vec::new(),
                translation_delay_ms: Some(1500),
                updated_ms: 0,
            },
        );
        (mirror, groups)
    }

    /// Every line is a comment or `name{labels} value`; every family has HELP and TYPE before
    /// its samples; names and label names are valid; values parse.
    fn assert_valid_exposition(text: &str) {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !n.starts_with(|c: char| c.is_ascii_digit())
        };
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(name_ok(name), "{line}");
                assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
                assert!(typed.insert(name.to_owned()), "TYPE twice: {line}");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap();
            assert!(name_ok(name), "{line}");
            // A histogram's samples are `<family>_bucket`, `_sum` and `_count`.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    let base = name.strip_suffix(s)?;
                    text.contains(&format!("# TYPE {base} histogram"))
                        .then_some(base)
                })
                .unwrap_or(name);
            assert!(typed.contains(family), "sample before TYPE: {line}");
            if name.ends_with("_total") {
                assert!(text.contains(&format!("# TYPE {name} counter")), "{name}");
            }
            if let Some(labels) = series.strip_prefix(name).and_then(|l| l.strip_prefix('{')) {
                assert!(labels.ends_with('}'), "{line}");
                assert!(!labels.contains('\n'));
            }
        }
    }

    #[test]
    fn exposition_has_every_metric_with_help_type_and_labels() {
        let (mirror, groups) = sample_input();
        let text = render(&mirror, &groups, &[], 1_005_000);
        assert_valid_exposition(&text);
        for name in [
            "strait_up",
            "strait_partition_lag_records",
            "strait_partition_lag_seconds",
            "strait_partition_state",
            "strait_records_mirrored_total",
            "strait_bytes_mirrored_total",
            "strait_crc_failures_total",
            "strait_group_sync_state",
            "strait_group_translation_delay_seconds",
            "strait_cutover_stage",
            "strait_cutover_stragglers",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert!(text.contains("strait_up 1\n"));
        assert!(
            text.contains("strait_partition_lag_records{topic=\"orders\",partition=\"0\"} 10\n")
        );
        // 1_005_000 - 1_000_000 ms while 10 records wait.
        assert!(
            text.contains("strait_partition_lag_seconds{topic=\"orders\",partition=\"0\"} 5\n")
        );
        assert!(text.contains(
            "strait_partition_state{topic=\"orders\",partition=\"0\",state=\"mirroring\"} 1\n"
        ));
        assert!(text.contains(
            "strait_partition_state{topic=\"orders\",partition=\"0\",state=\"caught_up\"} 0\n"
        ));
        assert!(
            text.contains("strait_records_mirrored_total{topic=\"orders\",partition=\"0\"} 1234\n")
        );
        assert!(text.contains(
            "strait_crc_failures_total{topic=\"we\\\"ird\\\\topic\\n\",partition=\"3\"} 2\n"
        ));
        assert!(text.contains(
            "strait_partition_lag_seconds{topic=\"we\\\"ird\\\\topic\\n\",partition=\"3\"} 0\n"
        ));
        assert!(text.contains("strait_group_sync_state{group=\"billing\",state=\"split\"} 1\n"));
        assert!(text.contains("strait_group_sync_state{group=\"billing\",state=\"syncing\"} 0\n"));
        assert!(text.contains("strait_group_translation_delay_seconds{group=\"billing\"} 1.5\n"));
        let states: usize = text
            .lines()
            .filter(|l| l.starts_with("strait_partition_state{") && l.ends_with(" 1"))
            .count();
        assert_eq!(states, 2, "one current state per partition");
    }

    fn cutover(id: &str, stage: &str, stragglers: usize) -> Cutover {
        let straggler = serde_json::json!({
            "cluster": "source", "topic": "orders", "partition": 0, "fenced_end": 5,
            "seen_end": 6, "producer_ids": [], "at_ms": 1
        });
        serde_json::from_value(serde_json::json!({
            "id": id, "name": format!("wave {id}"), "version": 3, "stage": stage,
            "topics": ["orders"], "groups": [], "fence": { "mode": "manual" },
            "deadlines": {}, "max_lag_records": 10, "operation": null, "checks": [],
            "cutover_point": [], "fenced_ends": {},
            "stragglers": vec![straggler; stragglers],
            "fenced_ms": null, "promoted_ms": null, "rolled_back_ms": null,
            "events": [], "created_ms": 0, "updated_ms": 0,
            "stage_log": [
                { "stage": "mirroring", "at_ms": 1_500, "lag_records": 0, "checks": [] },
                { "stage": "fenced", "at_ms": 3_000, "lag_records": 0, "checks": [] }
            ]
        }))
        .expect("a cutover")
    }

    #[test]
    fn cutover_stage_is_one_hot_with_stragglers() {
        let cutovers = [cutover("c1", "fenced", 2), cutover("c2", "rolled_back", 0)];
        let text = render(&MirrorStatus::default(), &BTreeMap::new(), &cutovers, 5_000);
        assert_valid_exposition(&text);
        assert!(text.contains(
            "strait_cutover_stage{cutover=\"c1\",name=\"wave c1\",stage=\"fenced\"} 1\n"
        ));
        assert!(text.contains(
            "strait_cutover_stage{cutover=\"c1\",name=\"wave c1\",stage=\"mirroring\"} 0\n"
        ));
        assert!(text.contains(
            "strait_cutover_stage{cutover=\"c2\",name=\"wave c2\",stage=\"rolled_back\"} 1\n"
        ));
        let ones = text
            .lines()
            .filter(|l| l.starts_with("strait_cutover_stage{") && l.ends_with(" 1"))
            .count();
        assert_eq!(ones, 2);
        assert!(text.contains("strait_cutover_stragglers{cutover=\"c1\"} 2\n"));
        assert!(
            text.contains(
                "strait_cutover_stage_duration_seconds{cutover=\"c1\",stage=\"mirroring\"} 1.5\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "strait_cutover_stage_duration_seconds{cutover=\"c1\",stage=\"fenced\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("strait_group_conflicts 0\n"));
        assert!(text.contains("strait_cutover_stragglers{cutover=\"c2\"} 0\n"));
    }

    #[test]
    fn unknown_lag_is_left_out() {
        let mut mirror = MirrorStatus::default();
        mirror.partitions.insert(
            TopicPartition::new("fresh", 0),
            view(PartitionState::Initializing, -1, -1),
        );
        mirror.partitions.insert(
            TopicPartition::new("waiting", 0),
            view(PartitionState::Mirroring, 5, -1),
        );
        let text = render(&mirror, &BTreeMap::new(), &[], 0);
        assert_valid_exposition(&text);
        assert!(!text.contains("strait_partition_lag_records{topic=\"fresh\""));
        assert!(text.contains("strait_partition_lag_records{topic=\"waiting\",partition=\"0\"} 5"));
        assert!(!text.contains("strait_partition_lag_seconds{topic=\"waiting\""));
    }

    #[test]
    fn numbers_are_prometheus_floats() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(-2.0), "-2");
    }
}
