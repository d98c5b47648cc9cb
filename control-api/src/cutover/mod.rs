//! Staged cutovers: the model, the transition rules and the service that carries them out.
//!
//! ```text
//!  API handler ──► CutoverService (validate, version check, persist Operation)
//!                        │ spawns / resumes on restart
//!                        ▼
//!                  driver task per cutover ── fence / drain / promote / rollback steps
//!                        │ every step idempotent, progress persisted in ns "cutovers"
//!                        ▼
//!          MirrorHandle (hold/release topics) · GroupSync (final sync) · Kafka admin (ACLs)
//! ```

mod checks;
pub mod cluster;
mod driver;
mod machine;
pub mod model;
pub mod report;
mod rollback;
mod service;

pub use model::*;
pub use service::{CutoverContext, CutoverService, Outcome};
