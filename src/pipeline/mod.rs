//! The staged pipeline: plan → fetch (blocking I/O pool) → decode (rayon) → sink (one thread).

pub mod msg;
