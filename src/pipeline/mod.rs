//! The staged pipeline: plan → fetch (blocking I/O pool) → decode (rayon) → sink (one thread).

pub mod decode;
pub mod fetch;
pub mod msg;
pub mod plan;
pub mod run;
