//! The warm-up before a pair is measured, and the copies (strait's, the naive mirror's) it
//! shares with the measured rows.
//!
//! ```text
//!  load a backlog of 1 KiB records (--mb) on the source, read it once
//!  raw produce of it to each target, pass after pass, until --warm-up-mb have gone
//!  twice: strait copies it, the naive mirror copies it, one more raw pass
//!  (every writer the bench times has written to the target before anything is timed)
//! ```
//!
//! Why each writer: a one-core Kafka target spent 1.35-1.58 of its 3.5-4.4 CPU-seconds on
//! its JIT compiler threads during the first copy by a writer it had not seen before (strait
//! after raw produce passes only), and 0.74 s again on the raw produce that followed strait's
//! first copies; once each writer had written twice, a copy cost it 0.07-0.16 s of compiling
//! (docs/benchmarks.md, item 26). Whatever was timed first after a change of writer paid for
//! compiling code the next one did not.

use std::time::Instant;

use anyhow::{Context as _, Result};
use strait_linker::client::KafkaClient;
use strait_testkit::Broker;

use crate::data::{self, Workload};
use crate::systems::{self, Copy};
use crate::{Args, TIMEOUT, drop_topics};

/// Warms the brokers before anything is measured: a fresh JVM broker took writes at half
/// the speed it reached a minute later (measured with `benches/produce_probe.rs`), which made
/// whatever ran first (the raw ceiling) look slow and whatever ran last (the naive mirror,
/// MirrorMaker 2) fast. Writes and reads a backlog of 1 KiB records (`--mb`) on the source,
/// writes it to the target (and MirrorMaker 2's target) again and again until `warm_up_mb`
/// have gone (a one-core Kafka target sped up from pass to pass of 256 MB for about 2.5 GB; two passes,
/// as until session 25, left every figure measured on a broker still warming), then has
/// strait and the naive mirror copy it twice each (module docs). Each raw pass's rate is
/// printed, to show the level was reached.
pub async fn warm_up(
    a: &Args,
    pair: &str,
    (source, target): (&Broker, &Broker),
    (sc, tc): (&KafkaClient, &KafkaClient),
    mc: Option<&KafkaClient>,
) -> Result<()> {
    let started = Instant::now();
    let w = Workload {
        name: "warm-up",
        record_bytes: 1024,
        partitions: 8,
        zstd: false,
        total_bytes: a.mb << 20,
        hot_partitions: 0,
    };
    let topic = strait_testkit::unique("bench-warm-up");
    let backlog = data::load(sc, &w, &topic).await?;
    data::raw_fetch(sc, &backlog).await?;
    let pass_mb = backlog.wire_bytes as f64 / 1e6;
    for (c, which) in std::iter::once((tc, "target")).chain(mc.map(|c| (c, "MM2's target"))) {
        let mut rates = Vec::new();
        while rates.len() < 2 || (rates.len() as f64) * pass_mb < a.warm_up_mb as f64 {
            rates.push(format!(
                "{:.0}",
                raw_pass(c, &backlog.batches, pass_mb).await?
            ));
        }
        eprintln!(
            "[{pair}] {which} warm-up passes of {pass_mb:.0} MB, MB/s: {}",
            rates.join(" ")
        );
    }
    for round in 0..2 {
        let mut copies = Vec::new();
        let (mut proc, copy) = strait_copy(
            a,
            (source, target),
            tc,
            (&topic, w.partitions, backlog.end_offsets),
            || (),
        )
        .await?;
        proc.stop()?;
        drop_topics(tc, std::slice::from_ref(&topic)).await;
        copies.push(format!("strait {:.0}", pass_mb / copy.copy.as_secs_f64()));
        if a.naive {
            let to = format!("{topic}.naive-{round}");
            let copy = naive_copy(
                (source, target),
                tc,
                (&topic, &to),
                &w,
                (backlog.records, backlog.end_offsets),
                || (),
            )
            .await?;
            drop_topics(tc, &[to]).await;
            copies.push(format!("naive {:.0}", pass_mb / copy.copy.as_secs_f64()));
        }
        copies.push(format!(
            "raw {:.0}",
            raw_pass(tc, &backlog.batches, pass_mb).await?
        ));
        eprintln!(
            "[{pair}] warm-up round {round}, MB/s: {}",
            copies.join(", ")
        );
        if round == 0 {
            // strait creates the topic again in the next round: the target must have let
            // go of the one just deleted.
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
    drop_topics(sc, &[topic]).await;
    eprintln!("[{pair}] brokers warmed up in {:?}", started.elapsed());
    Ok(())
}

/// One raw produce of `batches` (8 partitions) into a new topic on `c`, deleted after; MB/s.
async fn raw_pass(c: &KafkaClient, batches: &[Vec<bytes::Bytes>], pass_mb: f64) -> Result<f64> {
    let t = strait_testkit::unique("bench-warm-up-target");
    data::create_topic(c, &t, batches.len() as i32).await?;
    let took = data::produce_all(c, &t, batches, 8, data::raw_lanes()[0]).await?;
    drop_topics(c, &[t]).await;
    Ok(pass_mb / took.as_secs_f64())
}

/// `strait run` copies `topic` (`partitions`, whose end offsets sum to `end_offsets`) to
/// the target; timed from its first record there, `on_first` called then. The process is
/// returned running, for its metrics and memory; the caller stops it.
pub async fn strait_copy(
    a: &Args,
    (source, target): (&Broker, &Broker),
    tc: &KafkaClient,
    (topic, partitions, end_offsets): (&str, i32, i64),
    on_first: impl FnMut(),
) -> Result<(systems::StraitProc, Copy)> {
    let proc = systems::StraitProc::spawn(
        &source.bootstrap(),
        &target.bootstrap(),
        topic,
        a.budget_mib,
    )?;
    let copy = systems::wait_for_target(
        tc,
        topic,
        partitions,
        end_offsets,
        proc.started,
        TIMEOUT,
        on_first,
    )
    .await
    .with_context(|| format!("strait log: {}", proc.log().display()))?;
    Ok((proc, copy))
}

/// The naive rdkafka mirror copies `from` on the source into `to` on the target (created
/// here), `records` records; timed like strait, `on_first` called at the first record.
pub async fn naive_copy(
    (source, target): (&Broker, &Broker),
    tc: &KafkaClient,
    (from, to): (&str, &str),
    w: &Workload,
    (records, end_offsets): (u64, i64),
    on_first: impl FnMut(),
) -> Result<Copy> {
    data::create_topic(tc, to, w.partitions).await?;
    let (s, t, from2, to2) = (
        source.bootstrap(),
        target.bootstrap(),
        from.to_owned(),
        to.to_owned(),
    );
    let (parts, zstd) = (w.partitions, w.zstd);
    let started = Instant::now();
    let runner = tokio::task::spawn_blocking(move || {
        systems::naive_mirror(&s, &t, (&from2, &to2), parts, records, zstd)
    });
    let copy = systems::wait_for_target(
        tc,
        to,
        w.partitions,
        end_offsets,
        started,
        TIMEOUT,
        on_first,
    )
    .await?;
    runner.await??;
    Ok(copy)
}
