//! ethetl: a thread-pool, zero-copy batch ETL from Ethereum/EVM JSON-RPC nodes to Kafka, files
//! and PostgreSQL, writing rows in ethereum-etl 2.4.2's schema.
//!
//! The pipeline (see [`pipeline`]) is: a planner cuts the block range into [`pipeline::msg::RangeJob`]s,
//! a pool of blocking I/O threads turns each job into one JSON-RPC batch POST
//! ([`pipeline::msg::RawBatch`]), a rayon pool parses the bytes with borrowed sonic-rs structs and
//! serializes rows ([`pipeline::msg::DecodedBatch`]), and one sink thread writes them through a
//! [`sink::Sink`] and moves the checkpoint over contiguous acknowledged batches.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod decode;
pub mod devnode;
pub mod pipeline;
pub mod redact;
pub mod rpc;
pub mod sink;
pub mod stats;

pub use pipeline::msg::{BlockMeta, DecodedBatch, Entity, RowBuf, RowFormat};
pub use sink::Sink;
