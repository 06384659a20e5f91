//! The staged pipeline: plan → fetch (blocking I/O pool) → decode (rayon) → sink (one thread).
//! The types that cross its channels are in [`crate::msg`].

mod control;
pub mod decode;
pub mod fetch;
pub mod plan;
pub mod run;
