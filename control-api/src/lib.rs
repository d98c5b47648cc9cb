//! REST control API and the staged cutover state machine.
//!
//! ```text
//!  HTTP (axum, bearer tokens) ──► handlers ──► cutover::CutoverService ──► clusters, mirror,
//!                                   │                                       group sync
//!                                   └► status / metrics from the mirror and group handles
//! ```

pub mod apidoc;
pub mod auth;
pub mod cutover;
pub mod error;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod status;

pub use error::{ApiError, ErrorCode};
pub use http::{ApiServer, ServeError};
