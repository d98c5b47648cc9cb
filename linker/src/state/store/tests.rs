//! Tests for `StateStore` and `Namespace` on temporary directories.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::*;
use crate::offset::{SourceOffset, TargetOffset};

fn so(o: i64) -> SourceOffset {
    SourceOffset(o)
}

fn to(o: i64) -> TargetOffset {
    TargetOffset(o)
}

fn checkpoint(map: &OffsetMap, status: PartitionStatus) -> PartitionCheckpoint {
    PartitionCheckpoint {
        topic_id: Some("7fQ2rjDkTbq0Gf2mVJp1ZA".to_string()),
        next_source: map.next_source(),
        next_target: map.next_target(),
        status,
        producer: None,
    }
}

/// Pushes `entry` and records the result the way the mirror pipeline does.
fn write(store: &StateStore, tp: &TopicPartition, map: &mut OffsetMap, entry: MapEntry) {
    map.push(entry).unwrap();
    let cp = checkpoint(map, PartitionStatus::Active);
    store
        .record_batch_written(tp, map.last_entry(), &cp)
        .unwrap();
}

/// Skips a source range and records it.
fn skip(store: &StateStore, tp: &TopicPartition, map: &mut OffsetMap, to: SourceOffset) {
    map.skip_source(to).unwrap();
    let cp = checkpoint(map, PartitionStatus::Active);
    store.record_batch_written(tp, None, &cp).unwrap();
}

/// A partition with every kind of entry, written through `store`.
fn mixed_partition(store: &StateStore, tp: &TopicPartition) -> OffsetMap {
    let mut map = OffsetMap::new(so(100), to(40));
    let cp = checkpoint(&map, PartitionStatus::Active);
    store.record_batch_written(tp, None, &cp).unwrap();
    write(
        store,
        tp,
        &mut map,
        MapEntry::shifted(so(100), so(104), to(40)),
    );
    write(
        store,
        tp,
        &mut map,
        MapEntry::shifted(so(105), so(109), to(45)),
    );
    skip(store, tp, &mut map, so(111));
    write(
        store,
        tp,
        &mut map,
        MapEntry::dense(so(111), so(120), to(50), vec![0, 4, 9]),
    );
    write(
        store,
        tp,
        &mut map,
        MapEntry::shifted(so(125), so(130), to(60)),
    );
    map
}

#[test]
fn reopen_restores_maps_and_checkpoints_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let a = TopicPartition::new("orders", 0);
    let b = TopicPartition::new("payments", 3);
    let (map_a, map_b) = {
        let store = StateStore::open(dir.path()).unwrap();
        let map_a = mixed_partition(&store, &a);
        let mut map_b = OffsetMap::new(so(0), to(0));
        write(
            &store,
            &b,
            &mut map_b,
            MapEntry::shifted(so(0), so(9), to(0)),
        );
        store
            .set_status(
                &b,
                PartitionStatus::Stopped {
                    reason: "cutover".to_string(),
                },
            )
            .unwrap();
        (map_a, map_b)
    };
    assert_eq!(map_a.entries().len(), 3);

    let store = StateStore::open(dir.path()).unwrap();
    let (cp_a, loaded_a) = store.load_partition(&a).unwrap().unwrap();
    assert_eq!(loaded_a, map_a);
    assert_eq!(cp_a, checkpoint(&map_a, PartitionStatus::Active));
    let (cp_b, loaded_b) = store.load_partition(&b).unwrap().unwrap();
    assert_eq!(loaded_b, map_b);
    assert_eq!(
        cp_b.status,
        PartitionStatus::Stopped {
            reason: "cutover".to_string()
        }
    );
    assert_eq!((cp_b.next_source, cp_b.next_target), (so(10), to(10)));
    // The one-read accessors agree with the whole map.
    assert_eq!(store.checkpoint(&a).unwrap().as_ref(), Some(&cp_a));
    assert_eq!(store.last_entry(&a).unwrap().as_ref(), map_a.last_entry());
    assert_eq!(store.checkpoint(&b).unwrap().as_ref(), Some(&cp_b));
    assert_eq!(store.last_entry(&b).unwrap().as_ref(), map_b.last_entry());
    assert_eq!(store.partitions().unwrap(), vec![(a, cp_a), (b, cp_b)]);
    let unknown = TopicPartition::new("orders", 1);
    assert!(store.load_partition(&unknown).unwrap().is_none());
    assert_eq!(store.checkpoint(&unknown).unwrap(), None);
    assert_eq!(store.last_entry(&unknown).unwrap(), None);
}

#[test]
fn last_entry_follows_merges_and_never_reads_a_neighbours_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    // "orders" partition 1 and "orders" partition 10 share a textual prefix; a map entry of
    // one must never be read as the other's last entry.
    let one = TopicPartition::new("orders", 1);
    let ten = TopicPartition::new("orders", 10);
    let mut map = OffsetMap::new(so(0), to(0));
    write(
        &store,
        &one,
        &mut map,
        MapEntry::shifted(so(0), so(4), to(0)),
    );
    // A contiguous batch merges into the same entry (same key, wider range).
    write(
        &store,
        &one,
        &mut map,
        MapEntry::shifted(so(5), so(9), to(5)),
    );
    assert_eq!(map.entries().len(), 1);
    assert_eq!(
        store.last_entry(&one).unwrap().as_ref(),
        map.last_entry(),
        "the merged entry, not the first version"
    );
    let cp = checkpoint(&OffsetMap::new(so(0), to(0)), PartitionStatus::Active);
    store.record_batch_written(&ten, None, &cp).unwrap();
    assert_eq!(store.last_entry(&ten).unwrap(), None, "no entry of its own");
    assert_eq!(store.checkpoint(&ten).unwrap(), Some(cp));
}

#[test]
fn second_open_is_locked_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let namespace = store.namespace::<u32>("held").unwrap();
    let err = StateStore::open(dir.path()).unwrap_err();
    let pid = std::process::id();
    match &err {
        StateError::Locked { dir: d, holder } => {
            assert_eq!(d, dir.path());
            assert_eq!(*holder, Some(pid));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&format!("pid {pid}")), "{message}");
    assert!(
        message.contains("in use by another strait process"),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );

    // A namespace handle keeps the directory locked on its own.
    drop(store);
    assert!(matches!(
        StateStore::open(dir.path()),
        Err(StateError::Locked { .. })
    ));
    drop(namespace);
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.dir(), dir.path());
}

#[test]
fn open_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b");
    let store = StateStore::open(&nested).unwrap();
    assert!(store.partitions().unwrap().is_empty());
    assert!(nested.join("LOCK").is_file());
}

#[test]
fn identity_mirror_is_stored_as_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("events", 0);
    {
        let store = StateStore::open(dir.path()).unwrap();
        let mut map = OffsetMap::new(so(0), to(0));
        for i in 0..1000 {
            write(
                &store,
                &tp,
                &mut map,
                MapEntry::shifted(so(i * 5), so(i * 5 + 4), to(i * 5)),
            );
        }
        assert_eq!(map.entries().len(), 1);
    }
    let store = StateStore::open(dir.path()).unwrap();
    let (cp, map) = store.load_partition(&tp).unwrap().unwrap();
    assert_eq!(map.entries(), [MapEntry::shifted(so(0), so(4999), to(0))]);
    assert_eq!((cp.next_source, cp.next_target), (so(5000), to(5000)));
    // Nothing else is stored under the partition's entry prefix.
    let prefix = keys::entry_prefix(&tp).unwrap();
    assert_eq!(store.inner.partitions.scan_prefix(&prefix).count(), 1);
}

#[test]
fn entries_that_do_not_follow_the_stored_map_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut map = OffsetMap::new(so(0), to(0));
    write(
        &store,
        &tp,
        &mut map,
        MapEntry::shifted(so(0), so(9), to(0)),
    );
    map.push(MapEntry::shifted(so(10), so(19), to(10))).unwrap();
    let cp = checkpoint(&map, PartitionStatus::Active);

    let refused = [
        MapEntry::shifted(so(5), so(19), to(5)), // overlaps the stored entry
        MapEntry::shifted(so(0), so(19), to(1)), // same start, other shift
        MapEntry::shifted(so(0), so(25), to(0)), // past the checkpoint's cursors
        MapEntry::dense(so(0), so(1), to(0), vec![0, 1]), // non-canonical
        MapEntry::shifted(so(9), so(5), to(0)),  // malformed
    ];
    for entry in refused {
        let result = store.record_batch_written(&tp, Some(&entry), &cp);
        assert!(
            matches!(result, Err(StateError::Map { ref tp, .. }) if tp.topic == "t"),
            "{entry:?}: {result:?}"
        );
    }
    // Cursors moving back behind the stored map, without an entry.
    let behind = PartitionCheckpoint {
        next_source: so(5),
        ..cp.clone()
    };
    assert!(matches!(
        store.record_batch_written(&tp, None, &behind),
        Err(StateError::Map { .. })
    ));
    // Nothing was written by the refused calls.
    let (stored_cp, stored) = store.load_partition(&tp).unwrap().unwrap();
    assert_eq!(stored.entries(), [MapEntry::shifted(so(0), so(9), to(0))]);
    assert_eq!(stored_cp.next_source, so(10));

    // The merged entry is accepted, and so is writing it again.
    store
        .record_batch_written(&tp, map.last_entry(), &cp)
        .unwrap();
    store
        .record_batch_written(&tp, map.last_entry(), &cp)
        .unwrap();
    assert_eq!(store.load_partition(&tp).unwrap().unwrap().1, map);
}

#[test]
fn partitions_with_similar_names_never_mix() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let tps = [
        TopicPartition::new("a", 1),
        TopicPartition::new("a", 10),
        TopicPartition::new("a.b", 1),
        TopicPartition::new("a.b", 0),
        TopicPartition::new("ab", 1),
        TopicPartition::new("a", 256),
    ];
    let mut maps = Vec::new();
    for (i, tp) in tps.iter().enumerate() {
        let i = i as i64;
        // Distinct shapes per partition, so any mix-up shows.
        let mut map = OffsetMap::new(so(i * 100), to(i * 1000));
        for b in 0..=i {
            let first = i * 100 + b * 10;
            write(
                &store,
                tp,
                &mut map,
                MapEntry::dense(so(first), so(first + 5), to(i * 1000 + b * 7), vec![1, 3]),
            );
        }
        maps.push(map);
    }
    for (tp, map) in tps.iter().zip(&maps) {
        let (cp, loaded) = store.load_partition(tp).unwrap().unwrap();
        assert_eq!(&loaded, map, "{tp}");
        assert_eq!(cp.next_source, map.next_source());
    }
    let listed: Vec<TopicPartition> = store
        .partitions()
        .unwrap()
        .into_iter()
        .map(|(tp, _)| tp)
        .collect();
    let mut sorted = tps.to_vec();
    sorted
        .sort_by(|x, y| (x.topic.as_bytes(), x.partition).cmp(&(y.topic.as_bytes(), y.partition)));
    assert_eq!(listed, sorted);

    // Removing one leaves its neighbours whole.
    assert!(store.remove_partition(&tps[0]).unwrap());
    assert!(!store.remove_partition(&tps[0]).unwrap());
    assert!(store.load_partition(&tps[0]).unwrap().is_none());
    for (tp, map) in tps.iter().zip(&maps).skip(1) {
        assert_eq!(&store.load_partition(tp).unwrap().unwrap().1, map, "{tp}");
    }
    assert_eq!(store.partitions().unwrap().len(), tps.len() - 1);
}

#[test]
fn set_status_keeps_the_cursors_and_needs_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 2);
    let map = mixed_partition(&store, &tp);
    let status = PartitionStatus::Error {
        message: "target topic deleted".to_string(),
    };
    store.set_status(&tp, status.clone()).unwrap();
    let (cp, loaded) = store.load_partition(&tp).unwrap().unwrap();
    assert_eq!(cp, checkpoint(&map, status));
    assert_eq!(loaded, map);

    let unknown = TopicPartition::new("t", 3);
    assert!(matches!(
        store.set_status(&unknown, PartitionStatus::Active),
        Err(StateError::UnknownPartition { .. })
    ));
}

#[test]
fn set_statuses_writes_all_or_nothing_and_keeps_the_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("u", 1));
    let (map_a, map_b) = (mixed_partition(&store, &a), mixed_partition(&store, &b));
    let held = PartitionStatus::Stopped {
        reason: "held".to_string(),
    };
    let unknown = TopicPartition::new("t", 9);
    // An unknown partition anywhere in the list: an error, and neither known one changes.
    assert!(matches!(
        store.set_statuses([(&a, &held), (&unknown, &held), (&b, &held)]),
        Err(StateError::UnknownPartition { tp }) if tp == unknown
    ));
    for (tp, map) in [(&a, &map_a), (&b, &map_b)] {
        let cp = store.checkpoint(tp).unwrap().unwrap();
        assert_eq!(cp, checkpoint(map, PartitionStatus::Active), "{tp}");
    }
    assert_eq!(store.set_statuses([(&a, &held), (&b, &held)]).unwrap(), 2);
    for (tp, map) in [(&a, &map_a), (&b, &map_b)] {
        let (cp, loaded) = store.load_partition(tp).unwrap().unwrap();
        assert_eq!(cp, checkpoint(map, held.clone()), "{tp}");
        assert_eq!(&loaded, map, "{tp}");
    }
    // Already in that status: nothing rewritten.
    assert_eq!(store.set_statuses([(&a, &held)]).unwrap(), 0);
}

#[test]
fn invalid_topic_and_corrupt_values_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let bad = TopicPartition::new("a\0b", 0);
    assert!(matches!(
        store.load_partition(&bad),
        Err(StateError::InvalidTopic { .. })
    ));

    let tp = TopicPartition::new("t", 0);
    let key = keys::checkpoint(&tp).unwrap();
    store
        .inner
        .partitions
        .insert(&key, &b"{not json"[..])
        .unwrap();
    let err = store.load_partition(&tp).unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt { key, .. } if key.starts_with("ct")),
        "{err}"
    );

    // Entries without a checkpoint: a state no sequence of calls produces.
    let orphan = TopicPartition::new("u", 0);
    let prefix = keys::entry_prefix(&orphan).unwrap();
    let entry = MapEntry::shifted(so(0), so(1), to(0));
    store
        .inner
        .partitions
        .insert(
            keys::entry(&prefix, so(0)),
            serde_json::to_vec(&entry).unwrap(),
        )
        .unwrap();
    assert!(matches!(
        store.load_partition(&orphan),
        Err(StateError::Corrupt { .. })
    ));
}

#[test]
fn unknown_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = StateStore::open(dir.path()).unwrap();
        store.inner.db.insert(FORMAT_KEY, &b"99"[..]).unwrap();
    }
    let err = StateStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, StateError::UnsupportedFormat { found, .. } if found == "99"),
        "{err}"
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GroupSync {
    generation: u32,
    offsets: HashMap<String, i64>,
}

fn group(generation: u32) -> GroupSync {
    GroupSync {
        generation,
        // Enough keys that HashMap iteration order differs between instances.
        offsets: (0..32).map(|i| (format!("topic-{i}"), i * 10)).collect(),
    }
}

#[test]
fn namespaces_round_trip_and_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = StateStore::open(dir.path()).unwrap();
        let groups = store.namespace::<GroupSync>("groups").unwrap();
        assert_eq!(groups.name(), "groups");
        groups.put("g1", &group(1)).unwrap();
        groups.put("g0", &group(2)).unwrap();
        groups.put("g2", &group(3)).unwrap();
        assert!(groups.remove("g2").unwrap());
        assert!(!groups.remove("g2").unwrap());
        let cutovers = store
            .namespace::<BTreeMap<String, String>>("cutovers")
            .unwrap();
        cutovers.put("g1", &BTreeMap::new()).unwrap();
        // The partition records are not in any namespace either.
        mixed_partition(&store, &TopicPartition::new("g1", 0));
    }
    let store = StateStore::open(dir.path()).unwrap();
    let groups = store.namespace::<GroupSync>("groups").unwrap();
    assert_eq!(groups.get("g1").unwrap(), Some(group(1)));
    assert_eq!(groups.get("nope").unwrap(), None);
    assert_eq!(
        groups.list().unwrap(),
        vec![("g0".to_string(), group(2)), ("g1".to_string(), group(1))]
    );
    let cutovers = store
        .namespace::<BTreeMap<String, String>>("cutovers")
        .unwrap();
    assert_eq!(
        cutovers.list().unwrap(),
        vec![("g1".to_string(), BTreeMap::new())]
    );
    assert!(
        store
            .namespace::<u8>("other")
            .unwrap()
            .list()
            .unwrap()
            .is_empty()
    );

    // A namespace read with the wrong type reports the key.
    let wrong = store.namespace::<u64>("groups").unwrap();
    let err = wrong.get("g1").unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt { key, .. } if key == "ns/groups/g1"),
        "{err}"
    );
}

#[test]
fn namespace_cas() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let ns = store.namespace::<GroupSync>("groups").unwrap();

    // Create only if absent.
    assert_eq!(ns.cas("g", None, Some(&group(1))).unwrap(), Ok(()));
    assert_eq!(
        ns.cas("g", None, Some(&group(9))).unwrap(),
        Err(Some(group(1)))
    );
    // Replace only if unchanged; a freshly built equal HashMap compares equal.
    assert_eq!(
        ns.cas("g", Some(&group(2)), Some(&group(3))).unwrap(),
        Err(Some(group(1)))
    );
    assert_eq!(
        ns.cas("g", Some(&group(1)), Some(&group(2))).unwrap(),
        Ok(())
    );
    assert_eq!(ns.get("g").unwrap(), Some(group(2)));
    // Delete only if unchanged.
    assert_eq!(
        ns.cas("g", Some(&group(1)), None).unwrap(),
        Err(Some(group(2)))
    );
    assert_eq!(ns.cas("g", Some(&group(2)), None).unwrap(), Ok(()));
    assert_eq!(ns.get("g").unwrap(), None);
    assert_eq!(ns.cas("g", Some(&group(2)), None).unwrap(), Err(None));
}

#[test]
fn concurrent_cas_increments_are_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let ns = store.namespace::<u64>("counter").unwrap();
    ns.put("n", &0).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let ns = ns.clone();
            scope.spawn(move || {
                for _ in 0..100 {
                    let mut current = ns.get("n").unwrap();
                    loop {
                        let next = current.map(|c| c + 1);
                        match ns.cas("n", current.as_ref(), next.as_ref()).unwrap() {
                            Ok(()) => break,
                            Err(actual) => current = actual,
                        }
                    }
                }
            });
        }
    });
    assert_eq!(ns.get("n").unwrap(), Some(400));
}

#[tokio::test]
async fn flush_async_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    mixed_partition(&store, &tp);
    store.flush_async().await.unwrap();
    store.flush().unwrap();
}

#[test]
fn progress_of_several_partitions_is_written_at_once_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
    // Partition a: several batches since the last write, one merged entry and one after a
    // skipped range (two entries); partition b: only a skip (no entry).
    let mut map_a = OffsetMap::new(so(0), to(0));
    map_a.push(MapEntry::shifted(so(0), so(9), to(0))).unwrap();
    map_a
        .push(MapEntry::shifted(so(10), so(19), to(10)))
        .unwrap();
    map_a.skip_source(so(22)).unwrap();
    map_a
        .push(MapEntry::shifted(so(22), so(29), to(20)))
        .unwrap();
    let mut map_b = OffsetMap::new(so(0), to(0));
    map_b.skip_source(so(5)).unwrap();
    let (cp_a, cp_b) = (
        checkpoint(&map_a, PartitionStatus::Active),
        checkpoint(&map_b, PartitionStatus::Active),
    );
    let entries_a = map_a.entries().to_vec();
    assert_eq!(entries_a.len(), 2, "{entries_a:?}");
    store
        .record_partitions_written([(&a, entries_a.as_slice(), &cp_a), (&b, &[][..], &cp_b)])
        .unwrap();
    assert_eq!(store.load_partition(&a).unwrap().unwrap().1, map_a);
    assert_eq!(
        store.load_partition(&b).unwrap().unwrap().0.next_source,
        so(5)
    );

    // Entries out of order for one partition: refused, and the other partition's valid
    // update is not written either.
    map_b.push(MapEntry::shifted(so(5), so(9), to(0))).unwrap();
    let cp_b2 = checkpoint(&map_b, PartitionStatus::Active);
    let backwards = [
        MapEntry::shifted(so(40), so(49), to(40)),
        MapEntry::shifted(so(30), so(39), to(30)),
    ];
    let cp_a2 = PartitionCheckpoint {
        next_source: so(50),
        next_target: to(50),
        ..cp_a.clone()
    };
    let result = store
        .record_partitions_written([(&b, map_b.entries(), &cp_b2), (&a, &backwards[..], &cp_a2)]);
    assert!(matches!(result, Err(StateError::Map { .. })), "{result:?}");
    assert!(
        store
            .load_partition(&b)
            .unwrap()
            .unwrap()
            .1
            .entries()
            .is_empty(),
        "nothing of the refused write was stored"
    );
}

/// The producer cursor rides with the checkpoint, survives a status change, and a checkpoint
/// stored before the field existed (no `producer` key) still loads, without one.
#[test]
fn the_producer_cursor_is_kept_and_older_checkpoints_load_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut map = OffsetMap::new(so(0), to(0));
    map.push(MapEntry::shifted(so(0), so(9), to(0))).unwrap();
    let cursor = crate::state::ProducerCursor {
        id: 4_000_001,
        epoch: 0,
        next_sequence: 10,
    };
    let cp = PartitionCheckpoint {
        producer: Some(cursor),
        ..checkpoint(&map, PartitionStatus::Active)
    };
    store
        .record_batch_written(&tp, map.last_entry(), &cp)
        .unwrap();
    store
        .set_status(
            &tp,
            PartitionStatus::Stopped {
                reason: "held".into(),
            },
        )
        .unwrap();
    let (loaded, _) = store.load_partition(&tp).unwrap().unwrap();
    assert_eq!(loaded.producer, Some(cursor));

    let old = TopicPartition::new("old", 0);
    let key = keys::checkpoint(&old).unwrap();
    let json = br#"{"topic_id":null,"next_source":5,"next_target":5,"status":"Active"}"#;
    store.inner.partitions.insert(&key, &json[..]).unwrap();
    let (loaded, map) = store.load_partition(&old).unwrap().unwrap();
    assert_eq!(loaded.producer, None);
    assert_eq!(map.next_target(), to(5));
    // A checkpoint without a cursor is stored without the key, as before.
    let plain = serde_json::to_string(&checkpoint(&map, PartitionStatus::Active)).unwrap();
    assert!(!plain.contains("producer"), "{plain}");
}
