//! [`Namespace`]: a typed key-value map owned by one component, so that components store their
//! state (consumer-group sync positions, cutovers, ...) without ever seeing sled.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StateError;
use super::store::{Inner, decode, encode};

/// String keys to `V` values, stored as JSON in their own sled tree; obtained from
/// [`super::StateStore::namespace`].
///
/// One writer per key range: each namespace is owned by one component, which is the only one
/// to write it (others may read). Where a component has concurrent writers of its own,
/// [`Namespace::cas`] gives optimistic concurrency. Each single call is atomic.
///
/// The handle keeps the state directory locked while it lives.
pub struct Namespace<V> {
    name: String,
    tree: sled::Tree,
    _store: Arc<Inner>,
    // fn() -> V: the handle stores no V, so it is Send + Sync whatever V is.
    _value: PhantomData<fn() -> V>,
}

impl<V> fmt::Debug for Namespace<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<V> Clone for Namespace<V> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            tree: self.tree.clone(),
            _store: Arc::clone(&self._store),
            _value: PhantomData,
        }
    }
}

impl<V: Serialize + DeserializeOwned> Namespace<V> {
    pub(super) fn new(name: &str, tree: sled::Tree, store: Arc<Inner>) -> Self {
        Self {
            name: name.to_string(),
            tree,
            _store: store,
            _value: PhantomData,
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ns/<name>/<key>`, for error messages.
    fn describe(&self, key: &str) -> String {
        format!("ns/{}/{key}", self.name)
    }

    fn db_error(&self, action: &str, key: &str) -> impl FnOnce(sled::Error) -> StateError {
        let context = format!("{action} {}", self.describe(key));
        move |e| StateError::db(context, e)
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<V>, StateError> {
        let stored = self.tree.get(key).map_err(self.db_error("reading", key))?;
        stored
            .map(|bytes| decode(&bytes, || self.describe(key)))
            .transpose()
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: &str, value: &V) -> Result<(), StateError> {
        let bytes = encode(value, || self.describe(key))?;
        self.tree
            .insert(key, bytes)
            .map(drop)
            .map_err(self.db_error("writing", key))
    }

    /// Deletes `key`; returns whether it existed.
    pub fn remove(&self, key: &str) -> Result<bool, StateError> {
        self.tree
            .remove(key)
            .map(|old| old.is_some())
            .map_err(self.db_error("removing", key))
    }

    /// Every entry, in key order (bytewise, which for UTF-8 is code point order).
    pub fn list(&self) -> Result<Vec<(String, V)>, StateError> {
        let mut out = Vec::new();
        for item in self.tree.iter() {
            let (key, bytes) = item.map_err(self.db_error("listing", ""))?;
            let key = String::from_utf8(key.to_vec()).map_err(|e| StateError::Corrupt {
                key: self.describe(&String::from_utf8_lossy(e.as_bytes())),
                message: "the key is not UTF-8".to_string(),
            })?;
            let value = decode(&bytes, || self.describe(&key))?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// Compare-and-swap: if the value at `key` equals `expected` (`None`: absent), replace it
    /// with `new` (`None`: delete) and return `Ok(Ok(()))`; otherwise change nothing and
    /// return `Ok(Err(current))`.
    ///
    /// Values are compared as JSON values, not as bytes, so a map whose serialization order
    /// varies (a `HashMap`) still compares equal to its stored self.
    pub fn cas(
        &self,
        key: &str,
        expected: Option<&V>,
        new: Option<&V>,
    ) -> Result<Result<(), Option<V>>, StateError> {
        let expected = expected
            .map(|v| {
                serde_json::to_value(v).map_err(|e| StateError::Encode {
                    key: self.describe(key),
                    message: e.to_string(),
                })
            })
            .transpose()?;
        let new = new.map(|v| encode(v, || self.describe(key))).transpose()?;
        loop {
            let current = self.tree.get(key).map_err(self.db_error("reading", key))?;
            let current_json: Option<serde_json::Value> = current
                .as_ref()
                .map(|bytes| decode(bytes, || self.describe(key)))
                .transpose()?;
            if current_json != expected {
                let current = current
                    .map(|bytes| decode(&bytes, || self.describe(key)))
                    .transpose()?;
                return Ok(Err(current));
            }
            // Swap against the exact bytes just compared; if another writer got in between,
            // compare again against what it wrote.
            let swapped = self
                .tree
                .compare_and_swap(key, current, new.clone())
                .map_err(self.db_error("swapping", key))?;
            if swapped.is_ok() {
                return Ok(Ok(()));
            }
        }
    }
}
