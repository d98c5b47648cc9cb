//! `/metrics` scraped from a real `strait run` (Kafka → Kafka): the lag, mirrored-record,
//! partition-state, cutover-stage and stage-duration series carry the expected labels and
//! values, and the data path's latency histograms count real requests.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use strait_testkit::{kafka_source, kafka_target, unique};
use support::*;

const TOKEN: &str = "metrics-test-token";

/// The value of the one sample named exactly `series` (`name{labels}`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

async fn scrape(base: &str) -> String {
    let r = api_request(base, "GET", "/metrics", None, &[], None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
}

/// Scrapes until `ok` holds (30 s), returning the last text.
async fn scrape_until(base: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(base).await;
        if ok(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never held; last scrape:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_and_stage_series_have_the_expected_labels_and_values() {
    let topic = unique("metrics");
    let source = client(kafka_source()).await;
    create_topic(&source, &topic, 2, &[]).await;
    let p = producer(kafka_source(), &[]);
    send_all(&p, &topic, 0, &sample_records(30, "m0")).await;
    send_all(&p, &topic, 1, &sample_records(12, "m1")).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strait.toml");
    std::fs::write(
        &config,
        strait_toml(
            &kafka_source().bootstrap(),
            &kafka_target().bootstrap(),
            &topic,
            None,
            &dir.path().join("state"),
        ),
    )
    .unwrap();
    let strait = StraitRun::start(&config, &dir.path().join("strait.log"), TOKEN).await;
    let base = strait.base.clone();

    // Mirrored and caught up: lag 0 and the exact record counts, per partition.
    let lag =
        |p: i32| format!("strait_partition_lag_records{{topic=\"{topic}\",partition=\"{p}\"}}");
    let mirrored =
        |p: i32| format!("strait_records_mirrored_total{{topic=\"{topic}\",partition=\"{p}\"}}");
    let text = scrape_until(&base, "both partitions mirrored", |t| {
        sample(t, &mirrored(0)) == Some(30.0) && sample(t, &mirrored(1)) == Some(12.0)
    })
    .await;
    assert_eq!(sample(&text, &lag(0)), Some(0.0), "{text}");
    assert_eq!(sample(&text, &lag(1)), Some(0.0), "{text}");
    let state = |s: &str| {
        format!("strait_partition_state{{topic=\"{topic}\",partition=\"0\",state=\"{s}\"}}")
    };
    assert_eq!(sample(&text, &state("caught_up")), Some(1.0), "{text}");
    assert_eq!(sample(&text, &state("mirroring")), Some(0.0), "{text}");
    assert_eq!(
        sample(
            &text,
            &format!("strait_partition_source_end_offset{{topic=\"{topic}\",partition=\"0\"}}")
        ),
        Some(30.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("strait_crc_failures_total{{topic=\"{topic}\",partition=\"0\"}}")
        ),
        Some(0.0)
    );
    // The data path's histograms counted real fetches and produces.
    let fetches = sample(
        &text,
        "strait_fetch_latency_seconds_count{cluster=\"source\"}",
    );
    assert!(fetches.is_some_and(|n| n > 0.0), "{text}");
    let produces = sample(
        &text,
        "strait_produce_latency_seconds_count{cluster=\"target\"}",
    );
    assert!(produces.is_some_and(|n| n > 0.0), "{text}");
    // Every batch's delay, newest record timestamp to the target's ack. The sample records
    // are stamped about an hour ago (`recent_base`), so each delay is an hour and a little:
    // all above the 300 s bucket, with a mean just over 3,600 s.
    let delays = sample(&text, "strait_mirror_delay_seconds_count").unwrap_or(0.0);
    assert!(delays >= 2.0, "one per batch at least: {text}");
    assert_eq!(
        sample(&text, "strait_mirror_delay_seconds_bucket{le=\"300\"}"),
        Some(0.0),
        "{text}"
    );
    let mean = sample(&text, "strait_mirror_delay_seconds_sum").unwrap_or(0.0) / delays;
    assert!(
        (3_600.0..3_700.0).contains(&mean),
        "mean delay {mean} s: {text}"
    );
    // The part of that hour spent in strait's queue (fetch to send) is measured by strait's
    // own clock: one per batch as well, and nowhere near the records' age.
    let queued = sample(&text, "strait_mirror_queue_seconds_count").unwrap_or(0.0);
    assert!(queued >= delays, "a queue time per batch sent: {text}");
    assert_eq!(
        sample(&text, "strait_mirror_queue_seconds_bucket{le=\"30\"}"),
        Some(queued),
        "{text}"
    );

    // The mirror's first discovery at least, each well under the 30 s bucket.
    let discoveries = sample(&text, "strait_mirror_discovery_seconds_count").unwrap_or(0.0);
    assert!(discoveries >= 1.0, "{text}");
    assert_eq!(
        sample(&text, "strait_mirror_discovery_seconds_bucket{le=\"30\"}"),
        Some(discoveries),
        "{text}"
    );

    // A cutover's stage series.
    let created = api_request(
        &base,
        "POST",
        "/v1/cutovers",
        Some(TOKEN),
        &[("content-type", "application/json")],
        Some(
            &json!({
                "name": "metrics-wave", "topics": [topic],
                "fence": { "mode": "manual", "quiet_period_ms": 500 }
            })
            .to_string(),
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let stage = |s: &str| {
        format!("strait_cutover_stage{{cutover=\"{id}\",name=\"metrics-wave\",stage=\"{s}\"}}")
    };
    let text = scrape(&base).await;
    assert_eq!(sample(&text, &stage("mirroring")), Some(1.0), "{text}");
    assert_eq!(sample(&text, &stage("fenced")), Some(0.0), "{text}");

    let advanced = api_request(
        &base,
        "POST",
        &format!("/v1/cutovers/{id}/advance"),
        Some(TOKEN),
        &[("content-type", "application/json")],
        Some(&json!({ "to": "fenced" }).to_string()),
    )
    .await;
    assert!(advanced.status < 300, "{}", advanced.text);
    let text = scrape_until(&base, "stage fenced", |t| {
        sample(t, &stage("fenced")) == Some(1.0)
    })
    .await;
    assert_eq!(sample(&text, &stage("mirroring")), Some(0.0), "{text}");
    let ones = text
        .lines()
        .filter(|l| {
            l.starts_with(&format!("strait_cutover_stage{{cutover=\"{id}\"")) && l.ends_with(" 1")
        })
        .count();
    assert_eq!(ones, 1, "one current stage:\n{text}");
    // The quiet period (0.5 s) was spent in `mirroring` before the fence held.
    let mirroring_for = sample(
        &text,
        &format!("strait_cutover_stage_duration_seconds{{cutover=\"{id}\",stage=\"mirroring\"}}"),
    )
    .expect("a duration for mirroring");
    assert!(mirroring_for >= 0.5, "{mirroring_for}\n{text}");
    assert!(
        sample(
            &text,
            &format!("strait_cutover_stage_duration_seconds{{cutover=\"{id}\",stage=\"fenced\"}}")
        )
        .is_some()
    );
    assert_eq!(sample(&text, "strait_group_conflicts"), Some(0.0), "{text}");
    strait.kill();
}
