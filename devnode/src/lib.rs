//! A small, real HTTP JSON-RPC node on loopback that ethetl's tests, demos and benchmarks run
//! against. It serves fixture directories byte-for-byte and/or a deterministic, mainnet-shaped
//! generated chain, from bytes rendered once at start-up, so it is never the bottleneck.
//!
//! It is a crate of its own so that the product never compiles it: `ethetl` uses it only as a
//! dev-dependency (tests, benches, doc tests), and the `ethetl-devnode` binary of this crate is
//! what the demo, the benchmark and the comparison scripts start. It does not depend on
//! `ethetl`. Other packages' tests and benches find the binary with [`locate::binary`].
//!
//! ```no_run
//! use ethetl_devnode::{DevNode, Era, GenConfig, NodeConfig};
//!
//! let node = DevNode::start(NodeConfig::generated(GenConfig {
//!     blocks: 50,
//!     era: Era::Recent,
//!     ..GenConfig::default()
//! }))
//! .unwrap();
//! println!("node at {}", node.url()); // http://127.0.0.1:PORT/
//! // ... point the code under test at node.url() ...
//! node.shutdown();
//! ```
//!
//! Methods (single calls and batches; batch answers keep request order):
//! `eth_getBlockByNumber`, `eth_getBlockByHash`, `eth_getBlockReceipts`,
//! `eth_getTransactionReceipt`, `eth_getTransactionByHash`, `eth_getLogs`, `eth_blockNumber`,
//! `eth_chainId`, `net_version`, `web3_clientVersion`, `eth_syncing`. Errors follow geth: -32700
//! parse error, -32600 invalid request / empty batch, -32601 unknown method, -32602 invalid
//! params, -32000 `header not found` (unknown block) and `block receipts not found` (a known
//! block without receipts). Unknown blocks in `eth_getBlockByNumber`/`ByHash` answer `null`
//! (geth) unless [`UnknownBlock::Error`] is configured. Block tags `latest`, `pending`, `safe`
//! and `finalized` all resolve to the head; `earliest` to the lowest stored block. Each answer
//! echoes its call's `id` (a call without one is answered with `"id":null`).
//!
//! Responses are identity-encoded (`Accept-Encoding` is ignored), `application/json`, with a
//! `Content-Length`, on keep-alive connections (unless a fault says otherwise).
//!
//! # Endpoint properties (not random)
//!
//! * [`NodeConfig::block_receipts`] `= false`: `eth_getBlockReceipts` is answered -32601 `the
//!   method eth_getBlockReceipts does not exist/is not available`, as by nodes and providers
//!   without it; clients must fall back to `eth_getTransactionReceipt` (which answers the same
//!   receipt bytes as the block's receipts array).
//! * [`NodeConfig::max_batch_calls`] (geth `--rpc.batch-request-limit`, default 1000 there): a
//!   longer batch is answered, HTTP 200, with a one-element array: error -32600 `batch too
//!   large` carrying the id of the batch's first call.
//! * [`NodeConfig::max_response_bytes`] (geth `--rpc.batch-response-max-size`, 25 MB there):
//!   calls are answered in order while the summed size of their `result` values stays within the
//!   cap; the call that crosses it keeps its result and every later call gets error -32003
//!   `response too large` (HTTP 200, array complete, ids kept), exactly as geth does.
//!
//! # Faults (random, reproducible)
//!
//! [`NodeConfig::faults`] (a [`FaultSpec`], e.g. `429:0.1,reset:0.05` or `all:0.2`) makes the
//! node misbehave like real endpoints do; see [`FaultKind`] for the kinds and
//! [`faults`] for the schedule: JSON-RPC requests are numbered in arrival order
//! and request `i` gets [`FaultSpec::decide`]`(fault_seed, i)`. Faults never change stored data,
//! so a retry gets the exact clean bytes (unless the retry draws a fault of its own). Served
//! faults are counted in [`NodeStats::faults`].
//!
//! # Growing chain and reorgs
//!
//! [`NodeConfig::growth`] (a [`Growth`]) reveals the stored blocks one by one (on a timer or by
//! [`DevNode::advance`]) and, with a generated chain, replaces the last blocks by a deterministic
//! alternative fork every so often; see [`growth`]. Reorgs are listed in
//! [`NodeStats::reorgs`] / [`DevNode::reorgs`].

pub mod faults;
pub mod generate;
pub mod growth;
mod handler;
mod http;
mod json;
pub mod locate;
mod server;
pub mod store;

pub use faults::{FaultCounts, FaultKind, FaultSpec, FaultSpecError, UnknownFaultKind};
pub use generate::{
    block_hash, fork_block_hash, generate_chain, Addr, ChainGenerator, Era, GenConfig,
    GeneratedBlock, GeneratedChain, UnknownEra, H256,
};
pub use growth::{Growth, ReorgEvent, ReplacedBlock};
pub use server::{DevNode, NodeStats, NodeSummary};
pub use store::{LogMeta, Span};

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// What `eth_getBlockByNumber`/`eth_getBlockByHash` answer for a block the node does not have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownBlock {
    /// `null` result, as geth does.
    #[default]
    Null,
    /// Error -32000 `header not found`, as Erigon and some providers do.
    Error,
}

impl FromStr for UnknownBlock {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "null" => Ok(UnknownBlock::Null),
            "error" => Ok(UnknownBlock::Error),
            _ => Err(format!("expected null or error, got {s:?}")),
        }
    }
}

/// How to start a [`DevNode`].
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Fixture chain directories (e.g. `../shared/fixtures/rpc/mainnet`), each laid out as
    /// `<block>/eth_getBlockByNumber.json`, `<block>/eth_getBlockReceipts.json`,
    /// `<block>/eth_getTransactionReceipt/<hash>.json` (and optionally `eth_getLogs.json`).
    pub fixtures: Vec<PathBuf>,
    /// A chain to generate at start-up (served alongside fixtures; block numbers must not
    /// overlap).
    pub generate: Option<GenConfig>,
    /// Must be a loopback address; port 0 picks a free port. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// Requests handled at once (at least 1; every connection has its own thread, this bounds
    /// how many work on a request at the same time). Default 4.
    pub threads: usize,
    /// Reported by `eth_chainId` / `net_version`. Default 1. (Generated transactions carry
    /// [`GenConfig::chain_id`].)
    pub chain_id: u64,
    /// Head reported by `eth_blockNumber` and used for `latest`; default the highest block.
    /// Ignored for a growing chain (the revealed head is used).
    pub latest: Option<u64>,
    pub unknown_block: UnknownBlock,
    /// Serve `eth_getBlockReceipts` (default true); `false` answers it -32601.
    pub block_receipts: bool,
    /// Batches with more calls get geth's `batch too large` answer (`None`/0: unlimited).
    pub max_batch_calls: Option<usize>,
    /// Cap on the summed `result` bytes of a batch, geth style (`None`/0: unlimited).
    pub max_response_bytes: Option<usize>,
    /// Faults to inject (default none).
    pub faults: FaultSpec,
    /// Seed of the fault schedule.
    pub fault_seed: u64,
    /// How long a `stall` fault waits before answering (default 3 s).
    pub stall: Duration,
    /// `Retry-After` seconds sent with a `429` fault (default 1).
    pub retry_after_secs: u64,
    /// Reveal blocks over time (stream mode), with optional reorgs. Default: all visible.
    pub growth: Option<Growth>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            fixtures: Vec::new(),
            generate: None,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            threads: 4,
            chain_id: 1,
            latest: None,
            unknown_block: UnknownBlock::Null,
            block_receipts: true,
            max_batch_calls: None,
            max_response_bytes: None,
            faults: FaultSpec::none(),
            fault_seed: 0,
            stall: Duration::from_millis(3000),
            retry_after_secs: 1,
            growth: None,
        }
    }
}

impl NodeConfig {
    /// A node serving one fixture chain directory.
    pub fn fixtures(dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            fixtures: vec![dir.into()],
            ..NodeConfig::default()
        }
    }

    /// A node serving a generated chain (its `chain_id` is also what the node reports).
    pub fn generated(gen: GenConfig) -> Self {
        NodeConfig {
            chain_id: gen.chain_id,
            generate: Some(gen),
            ..NodeConfig::default()
        }
    }
}

/// Why a dev node could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevNodeError {
    #[error("refusing to bind {addr}: the dev node serves loopback addresses only")]
    NonLoopback { addr: SocketAddr },
    #[error("cannot bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server on {addr}")]
    Server {
        addr: SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot start request thread {index}")]
    Thread {
        index: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid JSON in {}", path.display())]
    FixtureJson {
        path: PathBuf,
        #[source]
        source: sonic_rs::Error,
    },
    #[error("unexpected fixture content in {}: {detail}", path.display())]
    FixtureShape { path: PathBuf, detail: String },
    #[error("invalid fault configuration")]
    Faults {
        #[source]
        source: FaultSpecError,
    },
    #[error("invalid node configuration: {detail}")]
    Config { detail: String },
    #[error("block {number} is provided twice: by {first} and by {second}")]
    DuplicateBlock {
        number: u64,
        first: String,
        second: String,
    },
}
