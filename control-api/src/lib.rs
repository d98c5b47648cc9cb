//! REST control API and the staged cutover state machine.
//!
//! ```text
//!  HTTP (axum, bearer tokens) ──► handlers ──► cutover::CutoverService ──► clusters, mirror,
//!                                   │                                       group sync
//!                                   └► status / metrics from the mirror and group handles
//! ```

pub mod cutover;
pub mod error;

pub use error::{ApiError, ErrorCode};
