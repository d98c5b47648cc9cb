//! The state directory as `strait plan` sees it: never created, never locked, never written.
//!
//! [`StateStore::open`] creates a missing directory, takes its lock and may write the format
//! key, so `plan` does not open the real directory. It checks the lock with a shared
//! `flock` on the existing `LOCK` file (opened read-only), copies `db/` into a private
//! temporary directory and opens the copy. A copy taken while a running strait writes is a
//! crash-consistent snapshot at worst, which sled recovers like any crash.

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::offset::TopicPartition;
use crate::state::{PartitionCheckpoint, StateError, StateStore};

/// What `plan` learned about the state directory.
#[derive(Debug)]
pub(super) enum StateView {
    /// The directory does not exist: nothing has been mirrored with this config yet.
    Absent,
    /// The saved checkpoints, and whether a running strait holds the directory (its pid if
    /// it wrote one).
    Read {
        checkpoints: BTreeMap<TopicPartition, PartitionCheckpoint>,
        in_use: Option<Option<u32>>,
    },
    /// The directory exists but could not be read.
    Unreadable {
        error: StateViewError,
        in_use: Option<Option<u32>>,
    },
}

/// Why the state directory could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum StateViewError {
    /// Copying the database for reading failed.
    #[error("cannot copy {} for reading: {source}", path.display())]
    Copy {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The copy could not be opened or read.
    #[error(transparent)]
    State(#[from] StateError),
}

impl StateView {
    /// Reads `dir` without changing it.
    pub(super) fn read(dir: &Path) -> Self {
        if !dir.exists() {
            return Self::Absent;
        }
        let in_use = holder(dir);
        match read_copy(dir) {
            Ok(checkpoints) => Self::Read {
                checkpoints,
                in_use,
            },
            Err(error) => Self::Unreadable { error, in_use },
        }
    }
}

/// `Some(pid)` when another process holds the directory's lock (`None` inside when it wrote
/// no readable pid); `None` when the directory is free. Never creates the lock file.
fn holder(dir: &Path) -> Option<Option<u32>> {
    let mut file = File::open(dir.join("LOCK")).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None, // dropped at return: the lock ends with the file
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            Some(
                file.read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok()),
            )
        }
        Err(TryLockError::Error(_)) => None,
    }
}

fn read_copy(dir: &Path) -> Result<BTreeMap<TopicPartition, PartitionCheckpoint>, StateViewError> {
    let scratch = ScratchDir::new().map_err(|source| StateViewError::Copy {
        path: std::env::temp_dir(),
        source,
    })?;
    let db = dir.join("db");
    if db.exists() {
        copy_tree(&db, &scratch.0.join("db"))?;
    }
    let store = StateStore::open(&scratch.0)?;
    let checkpoints = store.partitions()?.into_iter().collect();
    drop(store);
    Ok(checkpoints)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), StateViewError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateViewError::Copy { path, source }
    };
    std::fs::create_dir_all(to).map_err(err(to))?;
    for entry in std::fs::read_dir(from).map_err(err(from))? {
        let entry = entry.map_err(err(from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if entry.file_type().map_err(err(&src))?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(err(&src))?;
        }
    }
    Ok(())
}

/// A private temporary directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "strait-plan-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&path)?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offset::{SourceOffset, TargetOffset};
    use crate::state::PartitionStatus;

    #[test]
    fn a_missing_directory_stays_missing() {
        let tmp = std::env::temp_dir().join(format!("strait-plan-test-{}", uuid::Uuid::new_v4()));
        assert!(matches!(StateView::read(&tmp), StateView::Absent));
        assert!(!tmp.exists());
    }

    #[test]
    fn reads_checkpoints_of_a_locked_directory_without_touching_it() {
        let root = ScratchDir::new().unwrap();
        let dir = root.0.join("state");
        let store = StateStore::open(&dir).unwrap();
        let tp = TopicPartition::new("orders", 2);
        let cp = PartitionCheckpoint {
            topic_id: None,
            next_source: SourceOffset(7),
            next_target: TargetOffset(7),
            status: PartitionStatus::Active,
            producer: None,
        };
        store.record_batch_written(&tp, None, &cp).unwrap();
        store.flush().unwrap();
        let lock_before = std::fs::read(dir.join("LOCK")).unwrap();
        match StateView::read(&dir) {
            StateView::Read {
                checkpoints,
                in_use,
            } => {
                assert_eq!(checkpoints.get(&tp), Some(&cp));
                assert_eq!(in_use, Some(Some(std::process::id())));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(dir.join("LOCK")).unwrap(), lock_before);
        drop(store);
        match StateView::read(&dir) {
            StateView::Read { in_use, .. } => assert_eq!(in_use, None),
            other => panic!("{other:?}"),
        }
    }
}
