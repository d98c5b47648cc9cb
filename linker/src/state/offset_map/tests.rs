//! Tests for `OffsetMap`: every lookup and push rule by example, then property tests against a
//! brute-force model of a mirrored log.

use super::*;
use proptest::prelude::*;

fn so(o: i64) -> SourceOffset {
    SourceOffset(o)
}

fn to(o: i64) -> TargetOffset {
    TargetOffset(o)
}

/// `target_for` with plain numbers; `None` for `NotYetMirrored`.
fn tgt(map: &OffsetMap, s: i64) -> Option<i64> {
    match map.target_for(so(s)) {
        Lookup::Mapped(t) => Some(t.0),
        Lookup::NotYetMirrored => None,
    }
}

/// `source_for` with plain numbers; `None` for `NotYetMirrored`.
fn src(map: &OffsetMap, t: i64) -> Option<i64> {
    match map.source_for(to(t)) {
        Lookup::Mapped(s) => Some(s.0),
        Lookup::NotYetMirrored => None,
    }
}

/// The example of the module docs.
fn doc_example() -> OffsetMap {
    let mut map = OffsetMap::new(so(10), to(10));
    map.push(MapEntry::shifted(so(10), so(14), to(10))).unwrap();
    map.skip_source(so(16)).unwrap(); // control batch at 15
    map.push(MapEntry::dense(so(16), so(19), to(15), vec![0, 3]))
        .unwrap();
    map.push(MapEntry::shifted(so(20), so(22), to(19))).unwrap();
    map
}

#[test]
fn doc_example_lookups() {
    let map = doc_example();
    assert_eq!(map.entries().len(), 3);
    assert_eq!((map.next_source(), map.next_target()), (so(23), to(22)));
    let expected = [
        (9, Some(10)), // below the first entry
        (10, Some(10)),
        (13, Some(13)), // gap inside a Shifted batch: the same gap on the target
        (14, Some(14)),
        (15, Some(15)), // skipped control batch: the next entry's first target offset
        (16, Some(15)),
        (17, Some(16)), // compaction hole inside a Dense batch: the next present record
        (18, Some(16)),
        (19, Some(16)),
        (20, Some(19)),
        (22, Some(21)),
        (23, Some(22)), // caught up: the target end
        (24, None),
    ];
    for (s, t) in expected {
        assert_eq!(tgt(&map, s), t, "target_for({s})");
    }
    let expected = [
        (0, Some(10)), // below the first entry
        (10, Some(10)),
        (13, Some(13)),
        (15, Some(16)),
        (16, Some(19)),
        (17, Some(20)), // a target gap between entries: the next entry's source_first
        (18, Some(20)),
        (19, Some(20)),
        (21, Some(22)),
        (22, Some(23)), // caught up: the source cursor
        (23, None),
    ];
    for (t, s) in expected {
        assert_eq!(src(&map, t), s, "source_for({t})");
    }
}

#[test]
fn empty_map_answers_with_the_cursors() {
    let map = OffsetMap::new(so(100), to(7));
    assert!(map.entries().is_empty());
    assert_eq!(tgt(&map, 0), Some(7));
    assert_eq!(tgt(&map, 99), Some(7));
    assert_eq!(tgt(&map, 100), Some(7));
    assert_eq!(tgt(&map, 101), None);
    assert_eq!(src(&map, 0), Some(100));
    assert_eq!(src(&map, 7), Some(100));
    assert_eq!(src(&map, 8), None);
}

#[test]
fn skipped_range_after_the_last_entry_maps_to_the_target_end() {
    let mut map = OffsetMap::new(so(0), to(0));
    map.push(MapEntry::shifted(so(0), so(4), to(0))).unwrap();
    map.skip_source(so(9)).unwrap();
    assert_eq!(tgt(&map, 5), Some(5));
    assert_eq!(tgt(&map, 8), Some(5));
    assert_eq!(tgt(&map, 9), Some(5));
    assert_eq!(tgt(&map, 10), None);
    // The reverse: the target end is where the source resumes, past the skipped range.
    assert_eq!(src(&map, 5), Some(9));
    assert_eq!(src(&map, 6), None);
}

#[test]
fn dense_lookups_count_present_records() {
    let mut map = OffsetMap::new(so(0), to(0));
    // Records at 12, 14, 17 of the batch 10..=19; the target renumbered them to 50, 51, 52.
    map.push(MapEntry::dense(so(10), so(19), to(50), vec![2, 4, 7]))
        .unwrap();
    let expected = [(10, 50), (12, 50), (13, 51), (14, 51), (15, 52), (17, 52)];
    for (s, t) in expected {
        assert_eq!(tgt(&map, s), Some(t), "target_for({s})");
    }
    // Past the last present record: the next entry's start, here the target end.
    assert_eq!(tgt(&map, 18), Some(53));
    assert_eq!(tgt(&map, 19), Some(53));
    assert_eq!(tgt(&map, 20), Some(53));
    assert_eq!(src(&map, 50), Some(12));
    assert_eq!(src(&map, 51), Some(14));
    assert_eq!(src(&map, 52), Some(17));
    assert_eq!(src(&map, 53), Some(20));
    // Below the entry on the target side: its source_first.
    assert_eq!(src(&map, 3), Some(10));

    // With a following entry, "past the last present record" is that entry's target_first.
    map.push(MapEntry::shifted(so(25), so(26), to(60))).unwrap();
    assert_eq!(tgt(&map, 18), Some(60));
    assert_eq!(tgt(&map, 22), Some(60));
    assert_eq!(src(&map, 53), Some(25));
    assert_eq!(src(&map, 59), Some(25));
    assert_eq!(src(&map, 61), Some(26));
}

#[test]
fn push_accepts_gaps_and_moves_the_cursors() {
    let mut map = OffsetMap::new(so(0), to(0));
    assert_eq!(
        map.push(MapEntry::shifted(so(5), so(9), to(3))),
        Ok(Pushed::Appended)
    );
    assert_eq!((map.next_source(), map.next_target()), (so(10), to(8)));
    assert_eq!(
        map.push(MapEntry::dense(so(10), so(14), to(20), vec![1, 3])),
        Ok(Pushed::Appended)
    );
    assert_eq!((map.next_source(), map.next_target()), (so(15), to(22)));
}

#[test]
fn push_rejects_overlaps_and_backwards_entries_without_change() {
    let mut map = OffsetMap::new(so(0), to(0));
    map.push(MapEntry::shifted(so(0), so(9), to(0))).unwrap();
    let before = map.clone();
    assert!(matches!(
        map.push(MapEntry::shifted(so(9), so(12), to(10))),
        Err(MapError::SourceOverlap {
            next_source: SourceOffset(10),
            ..
        })
    ));
    assert!(matches!(
        map.push(MapEntry::shifted(so(3), so(4), to(10))),
        Err(MapError::SourceOverlap { .. })
    ));
    assert!(matches!(
        map.push(MapEntry::shifted(so(10), so(12), to(9))),
        Err(MapError::TargetOverlap {
            next_target: TargetOffset(10),
            ..
        })
    ));
    assert_eq!(map, before);
}

#[test]
fn push_rejects_malformed_entries() {
    let bad = [
        MapEntry::shifted(so(5), so(4), to(0)),
        MapEntry::dense(so(0), so(4), to(0), vec![]),
        MapEntry::dense(so(0), so(4), to(0), vec![2, 1]),
        MapEntry::dense(so(0), so(4), to(0), vec![1, 1]),
        MapEntry::dense(so(0), so(4), to(0), vec![5]),
        MapEntry::shifted(so(0), so(i64::MAX), to(0)),
        MapEntry::shifted(so(0), so(9), to(i64::MAX - 5)),
    ];
    for entry in bad {
        let mut map = OffsetMap::new(so(0), to(0));
        let result = map.push(entry.clone());
        assert!(
            matches!(result, Err(MapError::InvalidEntry { .. })),
            "{entry:?}: {result:?}"
        );
        assert_eq!(map, OffsetMap::new(so(0), to(0)));
    }
}

#[test]
fn skip_source_only_moves_forwards() {
    let mut map = OffsetMap::new(so(10), to(0));
    map.skip_source(so(10)).unwrap();
    map.skip_source(so(12)).unwrap();
    assert_eq!(map.next_source(), so(12));
    assert_eq!(
        map.skip_source(so(11)),
        Err(MapError::SkipBackwards {
            to: so(11),
            next_source: so(12)
        })
    );
    assert_eq!(map.next_target(), to(0));
}

#[test]
fn identity_mirror_is_one_entry() {
    let mut map = OffsetMap::new(so(0), to(0));
    let mut first = 0;
    for len in (1..2000).map(|i| 1 + i % 7) {
        let pushed = map
            .push(MapEntry::shifted(so(first), so(first + len - 1), to(first)))
            .unwrap();
        assert_eq!(
            pushed,
            if first == 0 {
                Pushed::Appended
            } else {
                Pushed::Merged
            }
        );
        first += len;
    }
    assert_eq!(
        map.entries(),
        [MapEntry::shifted(so(0), so(first - 1), to(0))]
    );
    assert_eq!(tgt(&map, 1234), Some(1234));
    assert_eq!(src(&map, 1234), Some(1234));
}

#[test]
fn shifted_entries_merge_only_when_contiguous_on_both_sides() {
    let base = || {
        let mut map = OffsetMap::new(so(0), to(100));
        map.push(MapEntry::shifted(so(0), so(9), to(100))).unwrap();
        map
    };
    // Same shift and contiguous: merged.
    let mut map = base();
    assert_eq!(
        map.push(MapEntry::shifted(so(10), so(19), to(110))),
        Ok(Pushed::Merged)
    );
    assert_eq!(map.entries(), [MapEntry::shifted(so(0), so(19), to(100))]);
    // A source gap, a target gap, or a skipped range in between: separate entries.
    let mut map = base();
    assert_eq!(
        map.push(MapEntry::shifted(so(11), so(19), to(110))),
        Ok(Pushed::Appended)
    );
    let mut map = base();
    assert_eq!(
        map.push(MapEntry::shifted(so(10), so(19), to(111))),
        Ok(Pushed::Appended)
    );
    let mut map = base();
    map.skip_source(so(11)).unwrap();
    assert_eq!(
        map.push(MapEntry::shifted(so(11), so(19), to(110))),
        Ok(Pushed::Appended)
    );
    // Dense entries never merge.
    let mut map = base();
    assert_eq!(
        map.push(MapEntry::dense(so(10), so(19), to(110), vec![0, 5])),
        Ok(Pushed::Appended)
    );
    assert_eq!(
        map.push(MapEntry::shifted(so(20), so(21), to(112))),
        Ok(Pushed::Appended)
    );
    assert_eq!(map.entries().len(), 3);
}

#[test]
fn full_dense_entry_is_recorded_as_shifted_and_merges() {
    let mut map = OffsetMap::new(so(0), to(0));
    map.push(MapEntry::shifted(so(0), so(3), to(0))).unwrap();
    assert_eq!(
        map.push(MapEntry::dense(so(4), so(6), to(4), vec![0, 1, 2])),
        Ok(Pushed::Merged)
    );
    assert_eq!(map.entries(), [MapEntry::shifted(so(0), so(6), to(0))]);
    // Full but not starting where the last entry ends: appended, still as Shifted.
    assert_eq!(
        map.push(MapEntry::dense(so(10), so(11), to(9), vec![0, 1])),
        Ok(Pushed::Appended)
    );
    assert_eq!(map.entries()[1].layout, Layout::Shifted);
}

#[test]
fn restore_round_trips_and_checks_invariants() {
    let map = doc_example();
    let restored = OffsetMap::restore(map.entries().to_vec(), map.next_source(), map.next_target());
    assert_eq!(restored, Ok(map.clone()));

    // Adjacent mergeable entries are kept as stored, not merged.
    let two = vec![
        MapEntry::shifted(so(0), so(4), to(0)),
        MapEntry::shifted(so(5), so(9), to(5)),
    ];
    assert_eq!(
        OffsetMap::restore(two.clone(), so(10), to(10))
            .unwrap()
            .entries(),
        two
    );

    let entries = map.entries().to_vec();
    let inconsistent = [
        (entries.clone(), so(22), to(22)), // last entry reaches the source cursor
        (entries.clone(), so(23), to(21)), // ... or past the target cursor
        (vec![entries[1].clone(), entries[0].clone()], so(23), to(22)),
        (
            vec![
                MapEntry::shifted(so(0), so(4), to(0)),
                MapEntry::shifted(so(5), so(9), to(4)),
            ],
            so(10),
            to(10),
        ),
    ];
    for (entries, ns, nt) in inconsistent {
        assert!(matches!(
            OffsetMap::restore(entries, ns, nt),
            Err(MapError::Inconsistent { .. })
        ));
    }
    assert!(matches!(
        OffsetMap::restore(
            vec![MapEntry::dense(so(0), so(1), to(0), vec![0, 1])],
            so(2),
            to(2)
        ),
        Err(MapError::InvalidEntry { .. })
    ));
    assert!(matches!(
        OffsetMap::restore(
            vec![MapEntry::dense(so(0), so(1), to(0), vec![])],
            so(2),
            to(2)
        ),
        Err(MapError::InvalidEntry { .. })
    ));
}

// ---- Property tests against a brute-force model ----

/// One step of a random source log.
#[derive(Debug, Clone)]
enum Step {
    /// A data batch: `hole` offsets of compaction hole before it, then `present.len()` offsets
    /// of which those marked true still hold a record. Written `dense` or shifted, after the
    /// target skipped `target_gap` offsets.
    Batch {
        hole: i64,
        present: Vec<bool>,
        dense: bool,
        target_gap: i64,
    },
    /// A control batch or aborted data of `len` offsets: never written.
    Skip { len: i64 },
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3_i64, prop::collection::vec(prop::bool::weighted(0.7), 1..7), any::<bool>(),
              prop_oneof![3 => Just(0_i64), 1 => 1..4_i64])
            .prop_map(|(hole, present, dense, target_gap)| Step::Batch {
                hole,
                present,
                dense,
                target_gap,
            }),
        1 => (1..4_i64).prop_map(|len| Step::Skip { len }),
    ]
}

/// The mirrored log as the brute force sees it: every surviving record with its offsets on
/// both sides, and the cursors.
#[derive(Debug)]
struct Model {
    records: Vec<(i64, i64)>,
    next_source: i64,
    next_target: i64,
}

impl Model {
    /// Mirror of the first record at or after `s`, per consumer semantics.
    fn target_for(&self, s: i64) -> Option<i64> {
        if s > self.next_source {
            return None;
        }
        let first = self.records.iter().find(|(src, _)| *src >= s);
        Some(first.map_or(self.next_target, |(_, t)| *t))
    }

    fn source_for(&self, t: i64) -> Option<i64> {
        if t > self.next_target {
            return None;
        }
        let first = self.records.iter().find(|(_, tgt)| *tgt >= t);
        Some(first.map_or(self.next_source, |(s, _)| *s))
    }

    /// What a target consumer positioned at `t` reads next: a record's offset, or the target
    /// end when nothing mirrored is left (`t` must not be past it).
    fn target_reads(&self, t: i64) -> i64 {
        assert!(t <= self.next_target, "{t} past the target end");
        let first = self.records.iter().find(|(_, tgt)| *tgt >= t);
        first.map_or(self.next_target, |(_, t)| *t)
    }

    fn source_reads(&self, s: i64) -> i64 {
        assert!(s <= self.next_source, "{s} past the source end");
        let first = self.records.iter().find(|(src, _)| *src >= s);
        first.map_or(self.next_source, |(s, _)| *s)
    }
}

/// Runs `steps` through both an `OffsetMap` and the brute-force model.
fn build(start_source: i64, start_target: i64, steps: &[Step]) -> (OffsetMap, Model) {
    let mut map = OffsetMap::new(so(start_source), to(start_target));
    let mut model = Model {
        records: Vec::new(),
        next_source: start_source,
        next_target: start_target,
    };
    for step in steps {
        match step {
            Step::Skip { len } => {
                model.next_source += len;
                map.skip_source(so(model.next_source)).unwrap();
            }
            Step::Batch {
                hole,
                present,
                dense,
                target_gap,
            } => {
                let first = model.next_source + hole;
                let last = first + present.len() as i64 - 1;
                let target_first = model.next_target + target_gap;
                let deltas: Vec<u32> = (0..present.len() as u32)
                    .filter(|d| present[*d as usize])
                    .collect();
                // A Dense batch needs a record; an all-hole batch is written Shifted.
                let entry = if *dense && !deltas.is_empty() {
                    for (i, d) in deltas.iter().enumerate() {
                        model
                            .records
                            .push((first + i64::from(*d), target_first + i as i64));
                    }
                    model.next_target = target_first + deltas.len() as i64;
                    MapEntry::dense(so(first), so(last), to(target_first), deltas)
                } else {
                    for d in &deltas {
                        let d = i64::from(*d);
                        model.records.push((first + d, target_first + d));
                    }
                    model.next_target = target_first + present.len() as i64;
                    MapEntry::shifted(so(first), so(last), to(target_first))
                };
                model.next_source = last + 1;
                map.push(entry).unwrap();
            }
        }
    }
    (map, model)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// For every source offset: the map's answer makes a target consumer read exactly the
    /// mirror of the first source record at or after it; on a record it is that record's
    /// target offset; and answers never go backwards.
    #[test]
    fn target_for_matches_brute_force(
        start_source in 0..5_i64,
        start_target in 0..5_i64,
        steps in prop::collection::vec(arb_step(), 0..25),
    ) {
        let (map, model) = build(start_source, start_target, &steps);
        prop_assert_eq!(map.next_source().0, model.next_source);
        prop_assert_eq!(map.next_target().0, model.next_target);
        let mut previous = i64::MIN;
        for s in 0..=model.next_source + 3 {
            let got = tgt(&map, s);
            let want = model.target_for(s);
            match (got, want) {
                (Some(t), Some(w)) => {
                    prop_assert_eq!(model.target_reads(t), w, "target_for({}) = {}", s, t);
                    prop_assert!(t >= previous, "target_for({}) = {} < {}", s, t, previous);
                    previous = t;
                }
                (got, want) => prop_assert_eq!(got, want, "target_for({})", s),
            }
        }
        for (s, t) in &model.records {
            prop_assert_eq!(tgt(&map, *s), Some(*t));
        }
        prop_assert_eq!(tgt(&map, model.next_source), Some(model.next_target));
    }

    /// The same for every target offset, the other way round.
    #[test]
    fn source_for_matches_brute_force(
        start_source in 0..5_i64,
        start_target in 0..5_i64,
        steps in prop::collection::vec(arb_step(), 0..25),
    ) {
        let (map, model) = build(start_source, start_target, &steps);
        let mut previous = i64::MIN;
        for t in 0..=model.next_target + 3 {
            let got = src(&map, t);
            let want = model.source_for(t);
            match (got, want) {
                (Some(s), Some(w)) => {
                    prop_assert_eq!(model.source_reads(s), w, "source_for({}) = {}", t, s);
                    prop_assert!(s >= previous, "source_for({}) = {} < {}", t, s, previous);
                    previous = s;
                }
                (got, want) => prop_assert_eq!(got, want, "source_for({})", t),
            }
        }
        for (s, t) in &model.records {
            prop_assert_eq!(src(&map, *t), Some(*s));
        }
        prop_assert_eq!(src(&map, model.next_target), Some(model.next_source));
    }

    /// Restoring a map from its parts gives the same map, and no two adjacent entries are
    /// left mergeable.
    #[test]
    fn restore_round_trips_and_entries_are_merged(
        steps in prop::collection::vec(arb_step(), 0..25),
    ) {
        let (map, _) = build(0, 0, &steps);
        let restored =
            OffsetMap::restore(map.entries().to_vec(), map.next_source(), map.next_target());
        prop_assert_eq!(restored.as_ref(), Ok(&map));
        for pair in map.entries().windows(2) {
            let mergeable = pair[0].layout == Layout::Shifted
                && pair[1].layout == Layout::Shifted
                && pair[0].source_last.0 + 1 == pair[1].source_first.0
                && pair[0].target_end() == pair[1].target_first;
            prop_assert!(!mergeable, "{:?}", pair);
        }
    }

    /// An identity mirror (any batch sizes and internal holes, no gaps between batches, no
    /// target renumbering) stays a single entry.
    #[test]
    fn identity_mirror_stays_one_entry(
        start in 0..1000_i64,
        batches in prop::collection::vec(prop::collection::vec(any::<bool>(), 1..10), 1..50),
    ) {
        let steps: Vec<Step> = batches
            .into_iter()
            .map(|present| Step::Batch { hole: 0, present, dense: false, target_gap: 0 })
            .collect();
        let (map, model) = build(start, start, &steps);
        prop_assert_eq!(map.entries().len(), 1);
        for s in start..model.next_source {
            prop_assert_eq!(tgt(&map, s), Some(s));
            prop_assert_eq!(src(&map, s), Some(s));
        }
    }
}
