//! Consumer-group offset translation and sync.
//!
//! Not built yet: this crate will translate committed source offsets through the mirror's
//! offset map (see `strait-linker`) and commit them to the target. Tracked in the offset-sync
//! issue; it exists now so the workspace has its final shape.
