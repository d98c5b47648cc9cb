//! The offset map of one mirrored partition: which target offset corresponds to which source
//! offset. Pure logic, no I/O; [`super::StateStore`] persists it.
//!
//! # Why a map at all
//!
//! strait copies a source partition batch by batch, but the two logs do not line up offset for
//! offset:
//!
//! ```text
//!  source  10 11 12 ·· 14   C   16 ·· ·· 19   20 21 22      ·· compaction hole
//!          └── batch ───┘ skip  └─ batch ───┘   └ batch ┘      C  control batch
//!                │ Shifted        │ Dense         │ Shifted, after 2 target offsets
//!                ▼                ▼               ▼           that the target skipped
//!  target  10 11 12 ·· 14       15 16   ·· ··   19 20 21
//!
//!  entries: 10..=14 -> 10 Shifted | 16..=19 -> 15 Dense [0, 3] | 20..=22 -> 19 Shifted
//!  cursors: next_source 23, next_target 22
//!  target_for: 13 -> 13 (a gap on both sides), 15 -> 15 (the mirror of 16),
//!              17 -> 16 (the mirror of 19), 23 -> 22 (caught up), 24 -> NotYetMirrored
//! ```
//!
//! - control batches (transaction markers) and aborted transactional data are never written
//!   (the source range is *skipped*: [`OffsetMap::skip_source`]);
//! - log compaction leaves holes inside batches and between them;
//! - the target assigns its own offsets, either keeping a batch's internal layout
//!   ([`Layout::Shifted`]) or renumbering its records contiguously ([`Layout::Dense`]), and it
//!   may leave offsets of its own unused between batches.
//!
//! # Semantics of a lookup
//!
//! A committed consumer offset `C` means "the next record to read is the first one at or after
//! `C`". [`OffsetMap::target_for`] therefore answers "which target offset makes a consumer read,
//! next, the mirror of the first source record at or after `S`", and [`OffsetMap::source_for`]
//! the reverse. An answer may land on a gap offset (inside a `Shifted` batch, the gaps exist
//! identically on both sides), which is equivalent: a consumer positioned on a gap reads the
//! next record.
//!
//! When the answer is beyond everything mirrored so far (`S` == [`OffsetMap::next_source`]), it
//! is [`OffsetMap::next_target`]: the consumer resumes exactly where strait's next write lands.
//! Offsets beyond that are [`Lookup::NotYetMirrored`]: strait cannot know yet where they go.
//!
//! # Invariants
//!
//! - entries are ascending and disjoint on both sides: `e[i].source_last < e[i+1].source_first`
//!   and `e[i].target_end() <= e[i+1].target_first`;
//! - the last entry ends before the cursors: `source_last < next_source`,
//!   `target_end() <= next_target`;
//! - two adjacent `Shifted` entries that are contiguous on both sides are always merged by
//!   [`OffsetMap::push`], so an identity mirror is one entry however long it runs;
//! - a `Dense` entry holds at least one record and never covers its whole source range (such
//!   an entry is stored as the equivalent `Shifted` one, so it can merge too).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::offset::{SourceOffset, TargetOffset};

#[cfg(test)]
mod tests;

/// How the target laid out the records of one mirrored source batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layout {
    /// The target kept the batch's internal layout: source offset `s` in the entry is target
    /// offset `target_first + (s - source_first)`, gaps included. Target span = source span.
    Shifted,
    /// The target renumbered the records contiguously: record `i` lives at `target_first + i`.
    Dense {
        /// Offset deltas (relative to `source_first`, strictly ascending) of the records that
        /// exist in the source batch; `present.len()` is the target span.
        present: Vec<u32>,
    },
}

/// One mirrored source batch (or a merged run of `Shifted` batches) and where it landed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapEntry {
    /// The batch's base offset in the source log.
    pub source_first: SourceOffset,
    /// The batch's last offset in the source log (inclusive, whether a record exists there or
    /// compaction removed it).
    pub source_last: SourceOffset,
    /// Target offset of the first offset slot the batch occupies in the target log.
    pub target_first: TargetOffset,
    /// How the records are laid out in the target.
    pub layout: Layout,
}

impl MapEntry {
    /// A batch whose layout the target kept.
    pub fn shifted(
        source_first: SourceOffset,
        source_last: SourceOffset,
        target_first: TargetOffset,
    ) -> Self {
        Self {
            source_first,
            source_last,
            target_first,
            layout: Layout::Shifted,
        }
    }

    /// A batch the target renumbered; `present` as in [`Layout::Dense`].
    pub fn dense(
        source_first: SourceOffset,
        source_last: SourceOffset,
        target_first: TargetOffset,
        present: Vec<u32>,
    ) -> Self {
        Self {
            source_first,
            source_last,
            target_first,
            layout: Layout::Dense { present },
        }
    }

    /// Number of target offsets the entry occupies.
    pub fn target_span(&self) -> i64 {
        match &self.layout {
            // Validated entries have source_last >= source_first and no overflow.
            Layout::Shifted => self.source_last.0 - self.source_first.0 + 1,
            Layout::Dense { present } => present.len() as i64,
        }
    }

    /// First target offset after the entry (exclusive end).
    pub fn target_end(&self) -> TargetOffset {
        TargetOffset(self.target_first.0 + self.target_span())
    }

    /// Checks the entry on its own.
    pub(super) fn check(&self) -> Result<(), MapError> {
        let invalid = |reason: String| MapError::InvalidEntry {
            source_first: self.source_first,
            reason,
        };
        let Some(last_delta) = self
            .source_last
            .0
            .checked_sub(self.source_first.0)
            .filter(|d| *d >= 0)
        else {
            return Err(invalid(format!(
                "source_last {} is before source_first",
                self.source_last
            )));
        };
        if let Layout::Dense { present } = &self.layout {
            let Some(&max) = present.last() else {
                return Err(invalid(
                    "a Dense entry without records (skip the range instead)".to_string(),
                ));
            };
            if present.windows(2).any(|w| w[0] >= w[1]) {
                return Err(invalid(
                    "present deltas are not strictly ascending".to_string(),
                ));
            }
            if i64::from(max) > last_delta {
                return Err(invalid(format!(
                    "present delta {max} lies beyond source_last {}",
                    self.source_last
                )));
            }
        }
        // target_end(), next_source and lookup arithmetic must not overflow.
        let span = match &self.layout {
            Layout::Shifted => last_delta.checked_add(1),
            Layout::Dense { present } => Some(present.len() as i64),
        };
        if span
            .and_then(|s| self.target_first.0.checked_add(s))
            .is_none()
            || self.source_last.0 == i64::MAX
        {
            return Err(invalid("offsets overflow".to_string()));
        }
        Ok(())
    }

    /// Whether this is a `Dense` entry holding every offset of its range: the same mapping as
    /// `Shifted`, which is the canonical form because it can merge.
    pub(super) fn is_full_dense(&self) -> bool {
        matches!(&self.layout, Layout::Dense { present }
            if present.len() as i64 == self.source_last.0 - self.source_first.0 + 1)
    }

    /// Target offset for source offset `s` (`source_first <= s <= source_last`): `None` when
    /// `s` is past the last record of a `Dense` entry (the answer is then the next entry's).
    fn target_at(&self, s: SourceOffset) -> Option<TargetOffset> {
        let delta = s.0 - self.source_first.0;
        match &self.layout {
            Layout::Shifted => Some(TargetOffset(self.target_first.0 + delta)),
            Layout::Dense { present } => {
                // Records before s; the record at that index is the first one at or after s.
                let before = present.partition_point(|d| i64::from(*d) < delta);
                (before < present.len()).then(|| TargetOffset(self.target_first.0 + before as i64))
            }
        }
    }

    /// Source offset for target offset `t` (`target_first <= t < target_end()`).
    fn source_at(&self, t: TargetOffset) -> SourceOffset {
        let index = t.0 - self.target_first.0;
        match &self.layout {
            Layout::Shifted => SourceOffset(self.source_first.0 + index),
            Layout::Dense { present } => {
                SourceOffset(self.source_first.0 + i64::from(present[index as usize]))
            }
        }
    }
}

/// The answer to an offset translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup<O> {
    /// The equivalent offset on the other side.
    Mapped(O),
    /// Beyond what strait has mirrored so far: there is no answer yet.
    NotYetMirrored,
}

/// What [`OffsetMap::push`] did with the entry. Either way the entry to persist is
/// [`OffsetMap::last_entry`], keyed by its `source_first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pushed {
    /// The entry was added after the others.
    Appended,
    /// The entry extended the last one (same `source_first`, larger `source_last`).
    Merged,
}

/// A violated offset map invariant: a bug in the caller or inconsistent persisted state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MapError {
    /// An entry starts before the next source offset: it overlaps or goes backwards.
    #[error("entry at {source_first} starts before the next source offset {next_source}")]
    SourceOverlap {
        /// The entry's first source offset.
        source_first: SourceOffset,
        /// Where the map expected the next batch at the earliest.
        next_source: SourceOffset,
    },
    /// An entry starts before the target end the map expects.
    #[error(
        "entry at {source_first} starts at {target_first}, before the expected target end \
         {next_target}"
    )]
    TargetOverlap {
        /// The entry's first source offset.
        source_first: SourceOffset,
        /// The entry's first target offset.
        target_first: TargetOffset,
        /// Where the map expected the next target write at the earliest.
        next_target: TargetOffset,
    },
    /// An entry that is malformed on its own.
    #[error("invalid entry at {source_first}: {reason}")]
    InvalidEntry {
        /// The entry's first source offset.
        source_first: SourceOffset,
        /// What is wrong.
        reason: String,
    },
    /// [`OffsetMap::skip_source`] asked to move backwards.
    #[error("cannot skip the source back to {to}: already at {next_source}")]
    SkipBackwards {
        /// The requested next source offset.
        to: SourceOffset,
        /// The current one.
        next_source: SourceOffset,
    },
    /// Entries and cursors that do not fit together (restored or persisted state).
    #[error("inconsistent offset map: {reason}")]
    Inconsistent {
        /// What does not fit.
        reason: String,
    },
}

/// The offset map of one partition; see the module docs for semantics and invariants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetMap {
    entries: Vec<MapEntry>,
    next_source: SourceOffset,
    next_target: TargetOffset,
}

impl OffsetMap {
    /// An empty map: mirroring starts at `start_source`, and its first write is expected at
    /// `start_target` (the target partition's end offset).
    pub fn new(start_source: SourceOffset, start_target: TargetOffset) -> Self {
        Self {
            entries: Vec::new(),
            next_source: start_source,
            next_target: start_target,
        }
    }

    /// Rebuilds a map from persisted parts, checking every invariant. Entries are taken as
    /// they are (never merged), so they stay one-to-one with what was stored.
    pub fn restore(
        entries: Vec<MapEntry>,
        next_source: SourceOffset,
        next_target: TargetOffset,
    ) -> Result<Self, MapError> {
        let mut checked: Vec<MapEntry> = Vec::with_capacity(entries.len());
        for entry in entries {
            entry.check()?;
            // push never stores this form, so the entry was not written through push.
            if entry.is_full_dense() {
                return Err(MapError::InvalidEntry {
                    source_first: entry.source_first,
                    reason: "a Dense entry covering its whole range (must be Shifted)".to_string(),
                });
            }
            if let Some(prev) = checked.last()
                && (prev.source_last >= entry.source_first
                    || prev.target_end() > entry.target_first)
            {
                return Err(MapError::Inconsistent {
                    reason: format!(
                        "entry at {} overlaps the previous one ({}..={} -> {}..{})",
                        entry.source_first,
                        prev.source_first.0,
                        prev.source_last.0,
                        prev.target_first.0,
                        prev.target_end().0
                    ),
                });
            }
            checked.push(entry);
        }
        if let Some(last) = checked.last()
            && (last.source_last >= next_source || last.target_end() > next_target)
        {
            return Err(MapError::Inconsistent {
                reason: format!(
                    "last entry ({}..={} -> {}..{}) reaches past the cursors ({next_source}, \
                     {next_target})",
                    last.source_first.0,
                    last.source_last.0,
                    last.target_first.0,
                    last.target_end().0
                ),
            });
        }
        Ok(Self {
            entries: checked,
            next_source,
            next_target,
        })
    }

    /// Records a mirrored batch. The entry must start at or after both cursors (a gap before
    /// it is a compaction hole on the source or offsets the target skipped); afterwards
    /// `next_source = source_last + 1` and `next_target = target_end()`.
    ///
    /// A `Shifted` entry contiguous on both sides with a `Shifted` last entry extends it
    /// ([`Pushed::Merged`]). A `Dense` entry holding every offset of its range is recorded as
    /// the equivalent `Shifted` one. On error the map is unchanged.
    pub fn push(&mut self, mut entry: MapEntry) -> Result<Pushed, MapError> {
        entry.check()?;
        if entry.is_full_dense() {
            entry.layout = Layout::Shifted;
        }
        if entry.source_first < self.next_source {
            return Err(MapError::SourceOverlap {
                source_first: entry.source_first,
                next_source: self.next_source,
            });
        }
        if entry.target_first < self.next_target {
            return Err(MapError::TargetOverlap {
                source_first: entry.source_first,
                target_first: entry.target_first,
                next_target: self.next_target,
            });
        }
        self.next_source = SourceOffset(entry.source_last.0 + 1);
        self.next_target = entry.target_end();
        if let Some(last) = self.entries.last_mut()
            && last.layout == Layout::Shifted
            && entry.layout == Layout::Shifted
            && last.source_last.0 + 1 == entry.source_first.0
            && last.target_end() == entry.target_first
        {
            last.source_last = entry.source_last;
            return Ok(Pushed::Merged);
        }
        self.entries.push(entry);
        Ok(Pushed::Appended)
    }

    /// Moves `next_source` to `to` over a source range that produced no target records (a
    /// control batch, aborted transactional data): `to` is the range's last offset + 1.
    pub fn skip_source(&mut self, to: SourceOffset) -> Result<(), MapError> {
        if to < self.next_source {
            return Err(MapError::SkipBackwards {
                to,
                next_source: self.next_source,
            });
        }
        self.next_source = to;
        Ok(())
    }

    /// Moves `next_target` to `to` over target offsets that hold no mirrored record (a failback
    /// copy skipped the target's transaction markers or aborted data at its end).
    pub fn skip_target(&mut self, to: TargetOffset) -> Result<(), MapError> {
        if to < self.next_target {
            return Err(MapError::Inconsistent {
                reason: format!(
                    "cannot move next_target back from {} to {to}",
                    self.next_target
                ),
            });
        }
        self.next_target = to;
        Ok(())
    }

    /// The target offset a consumer must commit to resume at the first mirrored record at or
    /// after source offset `s` (see the module docs).
    pub fn target_for(&self, s: SourceOffset) -> Lookup<TargetOffset> {
        if s > self.next_source {
            return Lookup::NotYetMirrored;
        }
        if s == self.next_source {
            return Lookup::Mapped(self.next_target);
        }
        // The first entry that ends at or after s: s is inside it, or in the gap before it.
        let index = self.entries.partition_point(|e| e.source_last < s);
        let answer = match self.entries.get(index) {
            Some(e) if s < e.source_first => e.target_first,
            Some(e) => e
                .target_at(s)
                .unwrap_or_else(|| self.target_first_from(index + 1)),
            None => self.next_target,
        };
        Lookup::Mapped(answer)
    }

    /// The source offset of the first mirrored record at or after target offset `t`: the
    /// reverse of [`OffsetMap::target_for`].
    pub fn source_for(&self, t: TargetOffset) -> Lookup<SourceOffset> {
        if t > self.next_target {
            return Lookup::NotYetMirrored;
        }
        if t == self.next_target {
            return Lookup::Mapped(self.next_source);
        }
        // The first entry that ends after t: t is inside it, or in the gap before it.
        let index = self.entries.partition_point(|e| e.target_end() <= t);
        let answer = match self.entries.get(index) {
            Some(e) if t < e.target_first => e.source_first,
            Some(e) => e.source_at(t),
            None => self.next_source,
        };
        Lookup::Mapped(answer)
    }

    /// `target_first` of entry `index`, or `next_target` past the last entry.
    fn target_first_from(&self, index: usize) -> TargetOffset {
        self.entries
            .get(index)
            .map_or(self.next_target, |e| e.target_first)
    }

    /// The entries, ascending on both sides.
    pub fn entries(&self) -> &[MapEntry] {
        &self.entries
    }

    /// The entry the last [`OffsetMap::push`] created or extended.
    pub fn last_entry(&self) -> Option<&MapEntry> {
        self.entries.last()
    }

    /// The next source offset strait will fetch.
    pub fn next_source(&self) -> SourceOffset {
        self.next_source
    }

    /// The target end offset strait expects after its writes so far.
    pub fn next_target(&self) -> TargetOffset {
        self.next_target
    }
}
