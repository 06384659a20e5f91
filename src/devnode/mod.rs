//! A small, real HTTP JSON-RPC node on loopback that ethetl's tests, demos and benchmarks run
//! against. It serves fixture directories byte-for-byte and/or a deterministic, mainnet-shaped
//! generated chain, from bytes rendered once at start-up, so it is never the bottleneck.
//!
//! ```no_run
//! use ethetl::devnode::{DevNode, Era, GenConfig, NodeConfig};
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
//! `eth_getTransactionReceipt`, `eth_getLogs`, `eth_blockNumber`, `eth_chainId`, `net_version`,
//! `web3_clientVersion`, `eth_syncing`. Errors follow geth: -32700 parse error, -32600 invalid
//! request / empty batch, -32601 unknown method, -32602 invalid params, -32000 `header not found`
//! (unknown block) and `block receipts not found` (a known block without receipts). Unknown
//! blocks in `eth_getBlockByNumber`/`ByHash` answer `null` (geth) unless
//! [`UnknownBlock::Error`] is configured. Block tags `latest`, `pending`, `safe` and `finalized`
//! all resolve to the head; `earliest` to the lowest stored block. Each answer echoes its call's
//! `id` (a call without one is answered with `"id":null`).
//!
//! Responses are always identity-encoded (`Accept-Encoding` is ignored), `application/json`, with
//! a `Content-Length`, on keep-alive connections.

pub mod generate;
mod handler;
mod json;
mod server;
pub mod store;

pub use generate::{
    block_hash, generate_chain, Addr, Era, GenConfig, GeneratedBlock, GeneratedChain, UnknownEra,
    H256,
};
pub use server::{DevNode, NodeStats, NodeSummary};
pub use store::{LogMeta, Span};

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

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
    /// Request-handling threads (at least 1). Default 4.
    pub threads: usize,
    /// Reported by `eth_chainId` / `net_version`. Default 1. (Generated transactions carry
    /// [`GenConfig::chain_id`].)
    pub chain_id: u64,
    /// Head reported by `eth_blockNumber` and used for `latest`; default the highest block.
    pub latest: Option<u64>,
    pub unknown_block: UnknownBlock,
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
    #[error("block {number} is provided twice: by {first} and by {second}")]
    DuplicateBlock {
        number: u64,
        first: String,
        second: String,
    },
}
