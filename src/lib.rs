//! ethetl: a thread-pool, zero-copy batch ETL from Ethereum/EVM JSON-RPC nodes to Kafka, files
//! and stdout, writing rows in ethereum-etl 2.4.2's schema.
//!
//! The pipeline (see [`pipeline`]) is: a planner cuts the block range into [`msg::RangeJob`]s,
//! a pool of blocking I/O threads turns each job into one JSON-RPC batch POST
//! ([`msg::RawBatch`]), a rayon pool parses the bytes with borrowed sonic-rs structs and
//! serializes rows ([`msg::DecodedBatch`]), and one sink thread writes them through a
//! [`sink::Sink`] and moves the checkpoint over contiguous acknowledged batches.
//!
//! [`stream`] follows the chain head with the same pipeline (`ethetl stream`): rounds of blocks
//! up to head − lag, reorg detection from parent hashes with one `reorg` row per orphaned block,
//! a checkpoint that stores the hashes it needs, and a clean stop. [`metrics`] and [`http`]
//! serve live statistics (`--http`: a status page, `/stats` JSON, Prometheus `/metrics`,
//! `/healthz`).
//!
//! # Embedding: your code as the output
//!
//! An export ([`pipeline::run::run_export`]) or a stream ([`stream::Streamer`]) takes any
//! [`Sink`]; [`callback::CallbackSink`] turns a closure into one, called once per decoded
//! batch in block order, like ethereum-etl's `AnkrBlockchainStreamer(callback=...)`.
//! [`callback::items`] iterates a batch's rows of one entity, and each row parses into a
//! [`sonic_rs::Value`] or a typed view ([`callback::BlockItem`], [`callback::TransactionItem`],
//! [`callback::LogItem`], [`callback::TokenTransferItem`], [`callback::ReorgItem`]).
//!
//! This streams a local dev node (the `ethetl-devnode` workspace crate, a dev-dependency)
//! whose chain grows by a block every 30 ms, until block 1_019 is exported, collecting each
//! block's number and transaction hashes:
//!
//! ```
//! use ethetl::callback::{items, BlockItem, TransactionItem};
//! use ethetl::stream::{StreamConfig, Streamer};
//! use ethetl::Entity;
//! use ethetl_devnode::{DevNode, GenConfig, Growth, NodeConfig};
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! // A chain of blocks 1_000..=1_029: 5 visible at start, one more every 30 ms.
//! let mut node = NodeConfig::generated(GenConfig {
//!     blocks: 30,
//!     start_block: 1_000,
//!     txs_per_block: Some(3),
//!     ..GenConfig::default()
//! });
//! node.growth = Some(Growth {
//!     block_time: Some(Duration::from_millis(30)),
//!     initial_blocks: 5,
//!     ..Growth::default()
//! });
//! let node = DevNode::start(node).unwrap();
//!
//! let mut config = StreamConfig::new(&node.url()).unwrap();
//! config.start_block = Some(1_000);
//! config.stop_at_block = Some(1_019);
//! config.poll_interval = Duration::from_millis(20);
//! config.export.io_threads = 2;
//!
//! let seen: Arc<Mutex<Vec<(u64, Vec<String>)>>> = Arc::default();
//! let out = Arc::clone(&seen);
//! let report = Streamer::new(config)
//!     .callback(move |batch| {
//!         for block in items(batch, Entity::Blocks) {
//!             let b: BlockItem = block.parse()?;
//!             let txs = items(batch, Entity::Transactions)
//!                 .filter(|t| t.block == b.number)
//!                 .map(|t| Ok(t.parse::<TransactionItem>()?.hash.into_owned()))
//!                 .collect::<Result<Vec<_>, ethetl::callback::ItemError>>()?;
//!             out.lock().unwrap().push((b.number, txs));
//!         }
//!         Ok(())
//!     })
//!     .run()
//!     .unwrap();
//!
//! let seen = seen.lock().unwrap();
//! let numbers: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
//! assert_eq!(numbers, (1_000..=1_019).collect::<Vec<_>>()); // each block once, in order
//! assert!(seen.iter().all(|(_, txs)| txs.len() == 3));
//! assert_eq!(report.checkpoint, Some(1_019));
//! ```

// The modules in data-flow order. No module imports one that imports it back.

// Flags as typed, their sources (environment, config file), the validated configuration.
pub mod cli;
pub mod config;
pub mod redact;
pub mod settings;
pub mod term;

// What crosses the channels between stages.
pub mod msg;

// Fetch: endpoints, rate limits, the JSON-RPC client and its retries; reused buffers.
pub mod bufpool;
pub mod json_depth;
pub mod rpc;

// Decode: borrowed parsing, the datasets (fields declared once) and the row writer.
pub mod decode;

// Write: the sinks, the checkpoint, closures as sinks.
pub mod callback;
pub mod checkpoint;
pub mod lock;
pub mod sink;

// Wiring: a run of the pipeline (export), and following the head (stream).
pub mod pipeline;
pub mod stream;

// Watching: counters and progress, live metrics, the status page.
pub mod http;
pub mod metrics;
pub mod stats;

pub use msg::{BlockMeta, DecodedBatch, Entity, RowBuf, RowFormat};
pub use sink::Sink;
