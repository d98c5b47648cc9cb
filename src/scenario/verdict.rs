//! Judging a run: the playbook's assertions over the workload's ledger, the cutover reports
//! and `strait verify`, and the report (text for people, JSON for machines).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::playbook::{Assertion, Playbook, Side};
use super::workload::{Acked, Ledger};

/// One step as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub n: usize,
    pub step: String,
    pub ok: bool,
    pub took_ms: u64,
    /// What happened (an error, a stage reached, ...).
    pub note: String,
}

/// One assertion's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct AssertRecord {
    pub assertion: String,
    pub passed: bool,
    pub detail: String,
}

/// Per group: what it read, and where.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRecord {
    pub group: String,
    pub topic: String,
    pub read: usize,
    pub read_on_source: usize,
    pub read_on_target: usize,
    pub expected: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub phantom: usize,
    /// Moves between clusters at which the group resumed exactly at the next record.
    pub exact_switches: usize,
    pub out_of_order: usize,
}

/// A cutover the run drove.
#[derive(Debug, Clone, Serialize)]
pub struct CutoverRecord {
    pub id: String,
    pub stage: String,
    pub result: String,
    pub write_pause_ms: Option<u64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub description: String,
    pub run_id: String,
    pub passed: bool,
    pub took_ms: u64,
    pub source: String,
    pub target: String,
    pub steps: Vec<StepRecord>,
    pub acknowledged: usize,
    pub aborted: usize,
    pub uncertain: usize,
    pub produce_errors: u64,
    pub first_produce_error: Option<String>,
    pub groups: Vec<GroupRecord>,
    pub cutovers: Vec<CutoverRecord>,
    /// Longest time producers were paused (pause → resume), ms.
    pub producer_pause_ms: Option<u64>,
    pub strait_starts: u32,
    pub asserts: Vec<AssertRecord>,
    pub work_dir: String,
}

/// Facts the assertions need beyond the ledger.
#[derive(Debug, Default)]
pub struct Facts {
    pub cutovers: Vec<CutoverRecord>,
    pub producer_pause: Option<Duration>,
    /// `strait verify`'s exit and output, when it ran.
    pub verify: Option<(bool, String)>,
}

/// Per-group accounting.
pub fn groups(book: &Playbook, ledger: &Ledger) -> Vec<GroupRecord> {
    let mut out = Vec::new();
    for c in &book.workload.consumers {
        let compacted = book
            .topics
            .iter()
            .any(|t| t.name == c.topic && t.compacted());
        let mut acked: Vec<&Acked> = ledger.acked.iter().filter(|a| a.topic == c.topic).collect();
        // Log order: writes on different clusters are ordered by switch epoch.
        acked.sort_by_key(|a| (a.partition, a.epoch, a.offset));
        let expected: BTreeSet<&str> = if compacted {
            let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
            for a in &acked {
                latest.insert(&a.key, &a.id);
            }
            latest.into_values().collect()
        } else {
            acked.iter().map(|a| a.id.as_str()).collect()
        };
        let consumed = ledger.consumed.get(&c.group).map_or(&[][..], Vec::as_slice);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for r in consumed {
            *counts.entry(&r.id).or_default() += 1;
        }
        let acked_ids: BTreeSet<&str> = acked.iter().map(|a| a.id.as_str()).collect();
        let phantom = counts
            .keys()
            .filter(|id| !acked_ids.contains(*id) && !ledger.uncertain.contains(**id))
            .count();
        let lost = expected
            .iter()
            .filter(|id| !counts.contains_key(*id))
            .count();
        let duplicated = counts.values().map(|n| n - 1).sum();
        // Order and exact resume, per partition: the records read must be the acknowledged
        // ones in log order (a subsequence of them on a compacted topic), so every move
        // between clusters resumed exactly at the next record.
        let position: BTreeMap<&str, (i32, usize)> = {
            let mut idx: BTreeMap<i32, usize> = BTreeMap::new();
            acked
                .iter()
                .map(|a| {
                    let i = idx.entry(a.partition).or_default();
                    *i += 1;
                    (a.id.as_str(), (a.partition, *i - 1))
                })
                .collect()
        };
        let mut last: BTreeMap<i32, (usize, Side)> = BTreeMap::new();
        let (mut out_of_order, mut exact_switches) = (0, 0);
        for r in consumed {
            let Some(&(p, i)) = position.get(r.id.as_str()) else {
                continue;
            };
            if p != r.partition {
                out_of_order += 1;
                continue;
            }
            let want_next = last.get(&p).map_or(0, |(j, _)| j + 1);
            let in_order = if compacted {
                i >= want_next
            } else {
                i == want_next
            };
            if !in_order {
                out_of_order += 1;
            } else if last.get(&p).is_some_and(|(_, side)| *side != r.side) {
                exact_switches += 1;
            }
            last.insert(p, (i, r.side));
        }
        out.push(GroupRecord {
            group: c.group.clone(),
            topic: c.topic.clone(),
            read: consumed.len(),
            read_on_source: consumed.iter().filter(|r| r.side == Side::Source).count(),
            read_on_target: consumed.iter().filter(|r| r.side == Side::Target).count(),
            expected: expected.len(),
            lost,
            duplicated,
            phantom,
            exact_switches,
            out_of_order,
        });
    }
    out
}

/// Evaluates every assertion.
pub fn judge(book: &Playbook, groups: &[GroupRecord], facts: &Facts) -> Vec<AssertRecord> {
    let mut out = Vec::new();
    for a in &book.asserts {
        let (passed, detail) = match a {
            Assertion::NoLoss => {
                let bad: Vec<String> = groups
                    .iter()
                    .filter(|g| g.lost > 0 || g.expected == 0)
                    .map(|g| {
                        if g.expected == 0 {
                            format!("{}: nothing was acknowledged on {}", g.group, g.topic)
                        } else {
                            format!("{}: {} of {} lost", g.group, g.lost, g.expected)
                        }
                    })
                    .collect();
                verdict(bad, || {
                    let n: usize = groups.iter().map(|g| g.expected).sum();
                    format!("all {n} expected records read")
                })
            }
            Assertion::NoDuplicates => {
                let bad: Vec<String> = groups
                    .iter()
                    .filter(|g| g.duplicated > 0 || g.phantom > 0)
                    .map(|g| {
                        format!(
                            "{}: {} read twice, {} never acknowledged",
                            g.group, g.duplicated, g.phantom
                        )
                    })
                    .collect();
                verdict(bad, || "no record read twice or read unacknowledged".into())
            }
            Assertion::ExactResume => {
                let bad: Vec<String> = groups
                    .iter()
                    .filter(|g| g.out_of_order > 0)
                    .map(|g| format!("{}: {} records out of order", g.group, g.out_of_order))
                    .collect();
                verdict(bad, || {
                    let n: usize = groups.iter().map(|g| g.exact_switches).sum();
                    format!("every partition read in order; {n} exact resumes across clusters")
                })
            }
            Assertion::Stage(want) => match facts.cutovers.last() {
                Some(c) if c.stage == want.to_string() => (true, format!("{} at {want}", c.id)),
                Some(c) => (false, format!("{} ended at {}, not {want}", c.id, c.stage)),
                None => (false, "no cutover was created".into()),
            },
            Assertion::WritePauseUnder(limit) => {
                let strait = facts.cutovers.iter().filter_map(|c| c.write_pause_ms).max();
                let producers = facts.producer_pause.map(|d| d.as_millis() as u64);
                let worst = strait.into_iter().chain(producers).max();
                let shown = format!(
                    "strait {} ms, producers paused {} ms",
                    strait.map_or("-".into(), |v| v.to_string()),
                    producers.map_or("-".into(), |v| v.to_string())
                );
                match worst {
                    Some(w) if u128::from(w) < limit.as_millis() => (true, shown),
                    Some(_) => (false, shown),
                    None => (false, "no write pause was measured".into()),
                }
            }
            Assertion::Verify => match &facts.verify {
                Some((ok, text)) => (*ok, last_line(text)),
                None => (false, "strait verify did not run".into()),
            },
        };
        out.push(AssertRecord {
            assertion: a.label(),
            passed,
            detail,
        });
    }
    out
}

fn verdict(bad: Vec<String>, good: impl FnOnce() -> String) -> (bool, String) {
    if bad.is_empty() {
        (true, good())
    } else {
        (false, bad.join("; "))
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// The report for people.
pub fn render(r: &RunReport) -> String {
    let mut s = String::new();
    let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
    let _ = writeln!(
        s,
        "scenario {} (run {}): {} in {:.1} s",
        r.scenario,
        r.run_id,
        if r.passed { "PASSED" } else { "FAILED" },
        r.took_ms as f64 / 1000.0
    );
    let _ = writeln!(s, "  source {}   target {}", r.source, r.target);
    let _ = writeln!(s, "\nsteps");
    for st in &r.steps {
        let _ = writeln!(
            s,
            "  {} {:>2} {:<34} {:>7.1} s  {}",
            mark(st.ok),
            st.n,
            st.step,
            st.took_ms as f64 / 1000.0,
            st.note
        );
    }
    let _ = writeln!(s, "\nworkload");
    let _ = writeln!(
        s,
        "  acknowledged {} records ({} in aborted transactions, {} uncertain, {} produce errors)",
        r.acknowledged, r.aborted, r.uncertain, r.produce_errors
    );
    if let Some(e) = &r.first_produce_error {
        let _ = writeln!(s, "  first produce error: {e}");
    }
    for g in &r.groups {
        let _ = writeln!(
            s,
            "  group {} on {}: read {} (source {}, target {}), expected {}, lost {}, \
             duplicated {}, unacknowledged {}, exact resumes {}",
            g.group,
            g.topic,
            g.read,
            g.read_on_source,
            g.read_on_target,
            g.expected,
            g.lost,
            g.duplicated,
            g.phantom,
            g.exact_switches
        );
    }
    if !r.cutovers.is_empty() {
        let _ = writeln!(s, "\ncutovers");
        for c in &r.cutovers {
            let _ = writeln!(
                s,
                "  {}: stage {}, result {}, write pause {}",
                c.id,
                c.stage,
                c.result,
                c.write_pause_ms
                    .map_or("-".into(), |v| format!("{:.1} s", v as f64 / 1000.0))
            );
        }
    }
    if let Some(p) = r.producer_pause_ms {
        let _ = writeln!(s, "  producers paused at most {:.1} s", p as f64 / 1000.0);
    }
    let _ = writeln!(s, "\nasserts");
    for a in &r.asserts {
        let _ = writeln!(s, "  {} {:<28} {}", mark(a.passed), a.assertion, a.detail);
    }
    let _ = writeln!(
        s,
        "\nstrait started {} time(s); work dir {} (strait.log, state/)",
        r.strait_starts, r.work_dir
    );
    s
}

#[cfg(test)]
mod tests {
    use super::super::playbook::Playbook;
    use super::super::workload::Consumed;
    use super::*;

    fn book(compact: bool) -> Playbook {
        let cfg = if compact {
            "{ cleanup.policy: compact }"
        } else {
            "{}"
        };
        Playbook::parse(&format!(
            "name: t\nclusters: {{ source: kafka, target: kafka }}\n\
             topics: [ {{ name: a, partitions: 1, config: {cfg} }} ]\n\
             workload: {{ consumers: [ {{ group: g, topic: a }} ] }}\n\
             steps: []\nasserts: [ no_loss, no_duplicates, exact_resume ]\n"
        ))
        .unwrap()
    }

    fn ledger(acked: &[(&str, &str, u32, i64)], read: &[(&str, Side)]) -> Ledger {
        let mut l = Ledger::default();
        for (id, key, epoch, offset) in acked {
            l.acked.push(Acked {
                topic: "a".into(),
                partition: 0,
                epoch: *epoch,
                offset: *offset,
                id: (*id).into(),
                key: (*key).into(),
            });
        }
        l.consumed.insert(
            "g".into(),
            read.iter()
                .map(|(id, side)| Consumed {
                    partition: 0,
                    id: (*id).into(),
                    side: *side,
                })
                .collect(),
        );
        l
    }

    fn passed(book: &Playbook, l: &Ledger) -> Vec<bool> {
        judge(book, &groups(book, l), &Facts::default())
            .iter()
            .map(|a| a.passed)
            .collect()
    }

    const ACKED: &[(&str, &str, u32, i64)] = &[
        ("w-1", "k1", 0, 0),
        ("w-2", "k2", 0, 1),
        ("w-3", "k1", 1, 2),
        ("w-4", "k2", 1, 3),
    ];

    #[test]
    fn an_exact_move_passes_and_counts_the_resume() {
        let l = ledger(
            ACKED,
            &[
                ("w-1", Side::Source),
                ("w-2", Side::Source),
                ("w-3", Side::Target),
                ("w-4", Side::Target),
            ],
        );
        let b = book(false);
        assert_eq!(passed(&b, &l), [true, true, true]);
        assert_eq!(groups(&b, &l)[0].exact_switches, 1);
    }

    #[test]
    fn loss_duplicates_phantoms_and_disorder_fail() {
        let b = book(false);
        let lost = ledger(
            ACKED,
            &[
                ("w-1", Side::Source),
                ("w-2", Side::Source),
                ("w-4", Side::Target),
            ],
        );
        assert_eq!(passed(&b, &lost), [false, true, false]);
        let dup = ledger(
            ACKED,
            &[
                ("w-1", Side::Source),
                ("w-2", Side::Source),
                ("w-2", Side::Target),
                ("w-3", Side::Target),
                ("w-4", Side::Target),
            ],
        );
        assert_eq!(passed(&b, &dup), [true, false, false]);
        let phantom = ledger(
            &ACKED[..2],
            &[
                ("w-1", Side::Source),
                ("w-9", Side::Source),
                ("w-2", Side::Source),
            ],
        );
        assert_eq!(passed(&b, &phantom), [true, false, true]);
    }

    #[test]
    fn a_compacted_topic_needs_only_the_latest_value_per_key() {
        let b = book(true);
        let l = ledger(
            ACKED,
            &[
                ("w-2", Side::Source),
                ("w-3", Side::Target),
                ("w-4", Side::Target),
            ],
        );
        assert_eq!(passed(&b, &l), [true, true, true]);
        let stale = ledger(
            ACKED,
            &[
                ("w-1", Side::Source),
                ("w-2", Side::Source),
                ("w-3", Side::Target),
            ],
        );
        assert_eq!(passed(&b, &stale), [false, true, true]);
    }
}
