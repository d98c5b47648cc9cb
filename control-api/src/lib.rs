//! REST control API and the staged cutover state machine.
//!
//! Not built yet: tracked in the control-API issue; the crate exists so the workspace has its
//! final shape.
