//! [`StateStore`]: the state directory (lock + sled database) and the partition records.
//!
//! ```text
//!  <dir>/LOCK   exclusive File::try_lock for the store's lifetime; holds the owner's pid
//!  <dir>/db/    sled: default tree  "strait.state.format" → "1"
//!                     "partitions"  checkpoints and map entries (encoding: see `keys`)
//!                     "ns/<name>"   one tree per Namespace
//! ```
//!
//! Checkpoints and map entries share one tree so that a sled `Batch` (atomic, and cheaper than
//! a multi-tree transaction: no conflict detection or retries) covers both in one write.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::{fmt, io};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    Layout, MapEntry, MapError, Namespace, OffsetMap, PartitionCheckpoint, PartitionStatus,
    StateError, keys,
};
use crate::offset::TopicPartition;

#[cfg(test)]
mod tests;

/// The lock file inside the state directory.
const LOCK_FILE: &str = "LOCK";
/// The sled database directory inside the state directory.
const DB_DIR: &str = "db";
/// The tree of checkpoints and map entries.
const PARTITIONS_TREE: &str = "partitions";
/// Namespace trees are named this followed by the namespace name.
const NAMESPACE_TREE_PREFIX: &str = "ns/";
/// Key (in the default tree) of the on-disk format version, and the version written.
const FORMAT_KEY: &[u8] = b"strait.state.format";
const FORMAT: &[u8] = b"1";

/// Everything an open store holds; shared with its [`Namespace`]s so that the directory stays
/// locked until the last handle is gone.
pub(super) struct Inner {
    // Field order is drop order: sled closes its files before the lock is released, so a
    // new opener never sees a database that is still in use.
    partitions: sled::Tree,
    db: sled::Db,
    dir: PathBuf,
    _lock: File,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// strait's persisted state in one directory; see the [module docs](super).
///
/// Cloning is cheap and shares the store. The directory is locked against other stores (in
/// this process or another) until the store, its clones and its namespaces are all dropped.
#[derive(Debug)]
pub struct StateStore {
    inner: Arc<Inner>,
}

impl Clone for StateStore {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// `sled::open`, tried again for up to 2 s while sled's own file lock is taken. The directory
/// lock is ours by then, so no other store has the database open: the holder is a store of
/// this process just dropped, whose sled background thread lets go of the file a moment after
/// the drop (seen in CI: a reopen in a test failed with `WouldBlock`).
fn open_sled(path: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::open(path) {
            // sled reports it as ErrorKind::Other with this message (sled 0.34 config.rs).
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl StateStore {
    /// Opens (creating it if missing) the state directory `dir`, taking its lock.
    ///
    /// Fails with [`StateError::Locked`] while another store holds the directory.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        // Lock before touching the database: sled must never be opened twice.
        let lock = lock_dir(dir)?;
        let db_path = dir.join(DB_DIR);
        let db = open_sled(&db_path)
            .map_err(|e| StateError::db(format!("opening {}", db_path.display()), e))?;
        check_format(&db, dir)?;
        let partitions = db
            .open_tree(PARTITIONS_TREE)
            .map_err(|e| StateError::db("opening the partitions tree", e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                partitions,
                db,
                dir: dir.to_path_buf(),
                _lock: lock,
            }),
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Persists the effect of one mirrored (or skipped) batch, atomically: `entry` is the
    /// partition's last map entry after [`OffsetMap::push`] ([`OffsetMap::last_entry`]), or
    /// `None` when only the cursors moved ([`OffsetMap::skip_source`]); `checkpoint` carries
    /// the map's new cursors.
    ///
    /// An entry extended by a merge keeps its `source_first` and therefore its key, so this
    /// replaces the stored version. The entry must start at or after the last stored one and
    /// fit below the checkpoint's cursors, and the cursors must stay past the stored map, else
    /// [`StateError::Map`] and nothing is written.
    pub fn record_batch_written(
        &self,
        tp: &TopicPartition,
        entry: Option<&MapEntry>,
        checkpoint: &PartitionCheckpoint,
    ) -> Result<(), StateError> {
        self.record_batches_written(
            tp,
            entry.map(std::slice::from_ref).unwrap_or_default(),
            checkpoint,
        )
    }

    /// Persists the effect of several mirrored (or skipped) batches in one atomic write:
    /// `entries` are the map entries they created or extended, in map order (each one's
    /// latest version, as [`OffsetMap::entries`] holds it), and `checkpoint` the map's new
    /// cursors. The same checks as [`Self::record_batch_written`] apply to the first entry,
    /// and each further entry must follow the one before it.
    pub fn record_batches_written(
        &self,
        tp: &TopicPartition,
        entries: &[MapEntry],
        checkpoint: &PartitionCheckpoint,
    ) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        self.add_written(&mut batch, tp, entries, checkpoint)?;
        self.inner
            .partitions
            .apply_batch(batch)
            .map_err(|e| StateError::db(format!("recording a batch of {tp}"), e))
    }

    /// [`Self::record_batches_written`] for several partitions in one atomic write (the
    /// mirror persists its progress this way, a few times a second). If any partition's
    /// update fails its checks, nothing is written.
    pub fn record_partitions_written<'a>(
        &self,
        updates: impl IntoIterator<Item = (&'a TopicPartition, &'a [MapEntry], &'a PartitionCheckpoint)>,
    ) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        let mut any = false;
        for (tp, entries, checkpoint) in updates {
            self.add_written(&mut batch, tp, entries, checkpoint)?;
            any = true;
        }
        if !any {
            return Ok(());
        }
        self.inner
            .partitions
            .apply_batch(batch)
            .map_err(|e| StateError::db("recording mirrored batches", e))
    }

    fn add_written(
        &self,
        batch: &mut sled::Batch,
        tp: &TopicPartition,
        entries: &[MapEntry],
        checkpoint: &PartitionCheckpoint,
    ) -> Result<(), StateError> {
        let checkpoint_key = keys::checkpoint(tp)?;
        self.check_follows_stored(tp, entries, checkpoint)?;
        let prefix = keys::entry_prefix(tp)?;
        for entry in entries {
            let key = keys::entry(&prefix, entry.source_first);
            let value = encode(entry, || keys::describe(&key))?;
            batch.insert(key, value);
        }
        let value = encode(checkpoint, || keys::describe(&checkpoint_key))?;
        batch.insert(checkpoint_key, value);
        Ok(())
    }

    /// Refuses a write that would leave the stored (map, checkpoint) pair inconsistent: one
    /// read of the partition's last stored entry, cheap next to the produce it follows, so
    /// that a caller bug (a stale or hand-built entry, cursors behind the map) fails here
    /// rather than at the next restart, when the map would no longer load.
    fn check_follows_stored(
        &self,
        tp: &TopicPartition,
        entries: &[MapEntry],
        checkpoint: &PartitionCheckpoint,
    ) -> Result<(), StateError> {
        let map_error = |source| StateError::Map {
            tp: tp.clone(),
            source,
        };
        let inconsistent = |entry: Option<&MapEntry>, reason| {
            let what = entry.map_or_else(|| "the checkpoint".to_string(), describe_entry);
            map_error(MapError::Inconsistent {
                reason: format!("cannot record {what}: {reason}"),
            })
        };
        let cursors = format!("({}, {})", checkpoint.next_source, checkpoint.next_target);
        let mut previous: Option<&MapEntry> = None;
        for entry in entries {
            entry.check().map_err(map_error)?;
            if entry.is_full_dense() {
                return Err(inconsistent(
                    Some(entry),
                    "a Dense entry covering its whole range (pass the entry OffsetMap::push kept)"
                        .to_string(),
                ));
            }
            if entry.source_last >= checkpoint.next_source
                || entry.target_end() > checkpoint.next_target
            {
                return Err(inconsistent(
                    Some(entry),
                    format!("it reaches past the checkpoint's cursors {cursors}"),
                ));
            }
            if let Some(p) = previous
                && !(p.source_last < entry.source_first && p.target_end() <= entry.target_first)
            {
                return Err(inconsistent(
                    Some(entry),
                    format!("it does not follow {}", describe_entry(p)),
                ));
            }
            previous = Some(entry);
        }
        let entry = entries.first();
        let Some(stored) = self.last_entry(tp)? else {
            return Ok(());
        };
        let follows = match entry {
            // Only the cursors move: they must stay past the stored map.
            None => {
                stored.source_last < checkpoint.next_source
                    && stored.target_end() <= checkpoint.next_target
            }
            // The same entry again, or a batch merged into it.
            Some(entry) if stored.source_first == entry.source_first => {
                stored == *entry
                    || (stored.layout == Layout::Shifted
                        && entry.layout == Layout::Shifted
                        && stored.target_first == entry.target_first
                        && stored.source_last <= entry.source_last)
            }
            Some(entry) => {
                stored.source_last < entry.source_first && stored.target_end() <= entry.target_first
            }
        };
        if follows {
            Ok(())
        } else {
            Err(inconsistent(
                entry,
                format!(
                    "the last stored entry is {}, the cursors {cursors} (record \
                     OffsetMap::last_entry() after each push)",
                    describe_entry(&stored)
                ),
            ))
        }
    }

    /// The partition's checkpoint and offset map, or `None` if nothing is stored for it.
    ///
    /// Meant for startup, before the partition's mirroring task writes again: the checkpoint
    /// and the entries are read one after the other, not as a snapshot.
    pub fn load_partition(
        &self,
        tp: &TopicPartition,
    ) -> Result<Option<(PartitionCheckpoint, OffsetMap)>, StateError> {
        let checkpoint_key = keys::checkpoint(tp)?;
        let prefix = keys::entry_prefix(tp)?;
        let stored = self
            .inner
            .partitions
            .get(&checkpoint_key)
            .map_err(|e| StateError::db(format!("reading the checkpoint of {tp}"), e))?;
        let mut entries = Vec::new();
        for item in self.inner.partitions.scan_prefix(&prefix) {
            let (key, value) =
                item.map_err(|e| StateError::db(format!("reading the map entries of {tp}"), e))?;
            let entry: MapEntry = decode(&value, || keys::describe(&key))?;
            if keys::decode_entry(&prefix, &key) != Some(entry.source_first) {
                return Err(StateError::Corrupt {
                    key: keys::describe(&key),
                    message: format!("the key does not match the entry at {}", entry.source_first),
                });
            }
            entries.push(entry);
        }
        let Some(stored) = stored else {
            if entries.is_empty() {
                return Ok(None);
            }
            return Err(StateError::Corrupt {
                key: keys::describe(&checkpoint_key),
                message: format!("{} map entries but no checkpoint", entries.len()),
            });
        };
        let checkpoint: PartitionCheckpoint = decode(&stored, || keys::describe(&checkpoint_key))?;
        let map = OffsetMap::restore(entries, checkpoint.next_source, checkpoint.next_target)
            .map_err(|source| StateError::Map {
                tp: tp.clone(),
                source,
            })?;
        Ok(Some((checkpoint, map)))
    }

    /// The partition's checkpoint alone (its cursors and status), or `None` if nothing is
    /// stored for it: one read, where [`Self::load_partition`] reads the whole map.
    pub fn checkpoint(
        &self,
        tp: &TopicPartition,
    ) -> Result<Option<PartitionCheckpoint>, StateError> {
        let key = keys::checkpoint(tp)?;
        let stored = self
            .inner
            .partitions
            .get(&key)
            .map_err(|e| StateError::db(format!("reading the checkpoint of {tp}"), e))?;
        stored
            .map(|value| decode(&value, || keys::describe(&key)))
            .transpose()
    }

    /// The partition's last stored map entry, which is the map's last entry
    /// ([`OffsetMap::last_entry`]): every write is checked to follow the stored map. One read.
    pub fn last_entry(&self, tp: &TopicPartition) -> Result<Option<MapEntry>, StateError> {
        let prefix = keys::entry_prefix(tp)?;
        let last = self
            .inner
            .partitions
            .scan_prefix(&prefix)
            .next_back()
            .transpose()
            .map_err(|e| StateError::db(format!("reading the last map entry of {tp}"), e))?;
        last.map(|(key, value)| decode(&value, || keys::describe(&key)))
            .transpose()
    }

    /// Every partition with stored state and its checkpoint, ordered by topic then partition.
    pub fn partitions(&self) -> Result<Vec<(TopicPartition, PartitionCheckpoint)>, StateError> {
        let mut out = Vec::new();
        for item in self.inner.partitions.scan_prefix(keys::CHECKPOINT_PREFIX) {
            let (key, value) = item.map_err(|e| StateError::db("listing partitions", e))?;
            let tp = keys::decode_checkpoint(&key).ok_or_else(|| StateError::Corrupt {
                key: keys::describe(&key),
                message: "not a checkpoint key".to_string(),
            })?;
            out.push((tp, decode(&value, || keys::describe(&key))?));
        }
        Ok(out)
    }

    /// Changes a partition's status, leaving its cursors alone. A compare-and-swap, so that it
    /// can run concurrently with the partition's mirroring task without rolling its cursors
    /// back (though the task's next checkpoint carries the task's own idea of the status).
    pub fn set_status(
        &self,
        tp: &TopicPartition,
        status: PartitionStatus,
    ) -> Result<(), StateError> {
        let key = keys::checkpoint(tp)?;
        let db_error = |e| StateError::db(format!("setting the status of {tp}"), e);
        loop {
            let Some(current) = self.inner.partitions.get(&key).map_err(db_error)? else {
                return Err(StateError::UnknownPartition { tp: tp.clone() });
            };
            let mut checkpoint: PartitionCheckpoint = decode(&current, || keys::describe(&key))?;
            checkpoint.status = status.clone();
            let new = encode(&checkpoint, || keys::describe(&key))?;
            let swapped = self
                .inner
                .partitions
                .compare_and_swap(&key, Some(&current), Some(new))
                .map_err(db_error)?;
            if swapped.is_ok() {
                return Ok(());
            }
            // The checkpoint changed under us: apply the status to the new one.
        }
    }

    /// [`Self::set_status`] for many partitions in one write: a read of each checkpoint, then
    /// one batch. Only for the partitions' one writer (the mirror engine, for the partitions
    /// it runs), since nothing guards a checkpoint between its read and the batch; partitions
    /// something else may write (a failback's copies) take [`Self::set_status`]. A
    /// compare-and-swap per partition cost the hold of a 5,000-partition wave 160 ms inside
    /// the cutover's write pause. A partition already in its status is not rewritten;
    /// an unknown one is an error and nothing is written. Returns how many changed.
    pub fn set_statuses<'a>(
        &self,
        updates: impl IntoIterator<Item = (&'a TopicPartition, &'a PartitionStatus)>,
    ) -> Result<usize, StateError> {
        let mut batch = sled::Batch::default();
        let mut changed = 0;
        for (tp, status) in updates {
            let key = keys::checkpoint(tp)?;
            let current = self
                .inner
                .partitions
                .get(&key)
                .map_err(|e| StateError::db(format!("setting the status of {tp}"), e))?
                .ok_or_else(|| StateError::UnknownPartition { tp: tp.clone() })?;
            let mut checkpoint: PartitionCheckpoint = decode(&current, || keys::describe(&key))?;
            if checkpoint.status == *status {
                continue;
            }
            checkpoint.status = status.clone();
            batch.insert(key.clone(), encode(&checkpoint, || keys::describe(&key))?);
            changed += 1;
        }
        if changed > 0 {
            self.inner
                .partitions
                .apply_batch(batch)
                .map_err(|e| StateError::db("setting partition statuses", e))?;
        }
        Ok(changed)
    }

    /// Deletes a partition's checkpoint and map, atomically. Returns whether anything was
    /// stored.
    pub fn remove_partition(&self, tp: &TopicPartition) -> Result<bool, StateError> {
        let checkpoint_key = keys::checkpoint(tp)?;
        let prefix = keys::entry_prefix(tp)?;
        let db_error = |e| StateError::db(format!("removing {tp}"), e);
        let mut existed = self
            .inner
            .partitions
            .contains_key(&checkpoint_key)
            .map_err(db_error)?;
        let mut batch = sled::Batch::default();
        for key in self.inner.partitions.scan_prefix(&prefix).keys() {
            batch.remove(key.map_err(db_error)?);
            existed = true;
        }
        batch.remove(checkpoint_key);
        self.inner.partitions.apply_batch(batch).map_err(db_error)?;
        Ok(existed)
    }

    /// A typed key-value namespace for one component (consumer-group sync state, cutovers,
    /// ...). Values are stored as JSON; see [`Namespace`].
    pub fn namespace<V: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Namespace<V>, StateError> {
        let tree = self
            .inner
            .db
            .open_tree(format!("{NAMESPACE_TREE_PREFIX}{name}"))
            .map_err(|e| StateError::db(format!("opening namespace {name:?}"), e))?;
        Ok(Namespace::new(name, tree, Arc::clone(&self.inner)))
    }

    /// Makes every write so far durable (fsync); blocks the calling thread.
    pub fn flush(&self) -> Result<(), StateError> {
        self.inner
            .db
            .flush()
            .map(drop)
            .map_err(|e| StateError::db("flushing", e))
    }

    /// [`StateStore::flush`] without blocking the async runtime: sled runs it on its own
    /// thread pool.
    pub async fn flush_async(&self) -> Result<(), StateError> {
        self.inner
            .db
            .flush_async()
            .await
            .map(drop)
            .map_err(|e| StateError::db("flushing", e))
    }
}

/// Creates and locks `dir/LOCK`, then writes our pid into it for the next opener's error
/// message. The lock (flock on Unix) belongs to this open file and ends when it is closed,
/// including when the process dies, so a stale file never blocks a restart.
fn lock_dir(dir: &Path) -> Result<File, StateError> {
    let path = dir.join(LOCK_FILE);
    let io_error = |source: io::Error| StateError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        // Not truncated before the lock is ours: the holder's pid is in it.
        .truncate(false)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            // Best effort: the holder may be rewriting it at this very moment.
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(StateError::Locked {
                dir: dir.to_path_buf(),
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io_error(e)),
    }
    file.set_len(0).map_err(io_error)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
        .map_err(io_error)?;
    Ok(file)
}

/// Writes the format version into a new database, refuses one written in another format.
fn check_format(db: &sled::Db, dir: &Path) -> Result<(), StateError> {
    let found = db
        .get(FORMAT_KEY)
        .map_err(|e| StateError::db("reading the format version", e))?;
    match found {
        Some(found) if found.as_ref() == FORMAT => Ok(()),
        Some(found) => Err(StateError::UnsupportedFormat {
            dir: dir.to_path_buf(),
            found: String::from_utf8_lossy(&found).into_owned(),
            supported: String::from_utf8_lossy(FORMAT).into_owned(),
        }),
        None => db
            .insert(FORMAT_KEY, FORMAT)
            .map(drop)
            .map_err(|e| StateError::db("writing the format version", e)),
    }
}

/// `source_first..=source_last -> target_first..target_end Layout`, for error messages.
fn describe_entry(entry: &MapEntry) -> String {
    let layout = match &entry.layout {
        Layout::Shifted => "Shifted".to_string(),
        Layout::Dense { present } => format!("Dense ({} records)", present.len()),
    };
    format!(
        "{}..={} -> {}..{} {layout}",
        entry.source_first.0,
        entry.source_last.0,
        entry.target_first.0,
        entry.target_end().0
    )
}

/// A value as stored: JSON. `key` renders the key for the error message, only on failure.
pub(super) fn encode<T: Serialize>(
    value: &T,
    key: impl FnOnce() -> String,
) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|e| StateError::Encode {
        key: key(),
        message: e.to_string(),
    })
}

/// Decodes a stored value; [`StateError::Corrupt`] if it is not what was written.
pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    key: impl FnOnce() -> String,
) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        key: key(),
        message: e.to_string(),
    })
}
