//! Deterministic, mainnet-shaped synthetic chains (no network): blocks, transactions, receipts and
//! logs rendered once to the exact JSON bytes a geth node would send.
//!
//! Guarantees:
//! * Same [`GenConfig`] → byte-identical output on every run and platform. Block `n` depends only
//!   on the seed, the era of `n`, `txs_per_block` and `chain_id`, never on `start_block` or on the
//!   number of blocks, so overlapping ranges agree.
//! * Internally consistent: `parentHash` is the previous block's hash, `transactionIndex` and
//!   `logIndex` run across the block, `cumulativeGasUsed` increases and ends at the block's
//!   `gasUsed`, receipts are in transaction order with matching hashes, `from`, `to` and `type`,
//!   and every `blockHash`/`blockNumber` matches.
//! * Field order follows geth: header and receipt keys sorted (geth marshals them from maps),
//!   transactions, withdrawals and logs in geth's struct order.
//!
//! Hashes, roots and signatures are random bytes of the right length, not real Keccak/RLP
//! values; `logsBloom` sets three bits per address and topic from a cheap mix of their bytes, not
//! from Keccak. Shapes (tx counts, types, input sizes, logs per receipt, topics, data sizes,
//! token-transfer shares) follow the measurements in the project's BENCH.md.

use super::json::{data, qty, qty128, qty_be, Obj};
use super::store::{LogMeta, Span};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;

/// A 20-byte address.
pub type Addr = [u8; 20];
/// A 32-byte hash or word.
pub type H256 = [u8; 32];

/// Which fork's block shape to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Era {
    /// London..Paris: type 0/1/2 txs, `baseFeePerGas`, PoW-era `difficulty`/`totalDifficulty`,
    /// no withdrawals; 30 M gas, about 147 txs per block.
    London,
    /// Shanghai: adds 16 withdrawals per block and `withdrawalsRoot`; about 167 txs per block.
    Shanghai,
    /// Cancun: adds blob txs (type 3), `blobGasUsed`, `excessBlobGas`, `parentBeaconBlockRoot`;
    /// about 129 txs per block.
    Cancun,
    /// Prague and later (2025–2026): adds type-4 (EIP-7702) txs, `requestsHash`, log
    /// `blockTimestamp`, drops `totalDifficulty`; 60 M gas, about 250 txs per block.
    Recent,
    /// Rotates London, Shanghai, Cancun and Recent shapes by block number (`n % 4`).
    Mix,
}

impl Era {
    /// Names accepted by [`FromStr`] (`prague` is an alias of `recent`).
    pub const NAMES: &'static [&'static str] =
        &["recent", "prague", "cancun", "shanghai", "london", "mix"];

    /// The concrete era of block `n` (resolves [`Era::Mix`]).
    pub fn for_block(self, n: u64) -> Era {
        match self {
            Era::Mix => [Era::London, Era::Shanghai, Era::Cancun, Era::Recent][(n % 4) as usize],
            e => e,
        }
    }

    /// The mean number of transactions per block when `txs_per_block` is not set.
    pub fn default_txs_per_block(self) -> u32 {
        match self {
            Era::London => 147,
            Era::Shanghai => 167,
            Era::Cancun => 129,
            Era::Recent => 250,
            Era::Mix => (147 + 167 + 129 + 250) / 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Era::London => "london",
            Era::Shanghai => "shanghai",
            Era::Cancun => "cancun",
            Era::Recent => "recent",
            Era::Mix => "mix",
        }
    }
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An era name that is not one of [`Era::NAMES`].
#[derive(Debug, thiserror::Error)]
#[error("unknown era {name:?} (expected one of: recent, prague, cancun, shanghai, london, mix)")]
pub struct UnknownEra {
    pub name: String,
}

impl FromStr for Era {
    type Err = UnknownEra;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "recent" | "prague" => Ok(Era::Recent),
            "cancun" => Ok(Era::Cancun),
            "shanghai" => Ok(Era::Shanghai),
            "london" => Ok(Era::London),
            "mix" => Ok(Era::Mix),
            _ => Err(UnknownEra {
                name: s.to_string(),
            }),
        }
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// Number of blocks.
    pub blocks: u64,
    /// Number of the first block.
    pub start_block: u64,
    /// PRNG seed; the same seed gives the same bytes.
    pub seed: u64,
    /// `None`: the era's mean with per-block variation (and an occasional empty block);
    /// `Some(t)`: exactly `t` transactions in every block.
    pub txs_per_block: Option<u32>,
    pub era: Era,
    /// Written into every transaction's `chainId` (and legacy `v`).
    pub chain_id: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            blocks: 100,
            start_block: 23_000_000,
            seed: 1,
            txs_per_block: None,
            era: Era::Recent,
            chain_id: 1,
        }
    }
}

/// A generated chain: blocks in ascending number order, each already rendered to bytes.
#[derive(Debug)]
pub struct GeneratedChain {
    pub config: GenConfig,
    pub blocks: Vec<GeneratedBlock>,
}

/// One generated block and its receipts, rendered as the bare JSON-RPC `result` values.
#[derive(Debug)]
pub struct GeneratedBlock {
    pub number: u64,
    pub hash: H256,
    pub parent_hash: H256,
    /// The concrete era (never [`Era::Mix`]).
    pub era: Era,
    /// `eth_getBlockByNumber(n, true)` result (hydrated transactions).
    pub block_json: Vec<u8>,
    /// `eth_getBlockByNumber(n, false)` result (transaction hashes only).
    pub block_hashes_json: Vec<u8>,
    /// `eth_getBlockReceipts(n)` result (array in transaction order).
    pub receipts_json: Vec<u8>,
    /// Transaction hashes in block order.
    pub tx_hashes: Vec<H256>,
    /// Byte range of each receipt inside `receipts_json`, in transaction order.
    pub receipt_spans: Vec<Span>,
    /// Every log of the block in `logIndex` order, with its byte range inside `receipts_json`.
    pub logs: Vec<LogMeta>,
    /// Byte range of each transaction object inside `block_json`, in block order.
    pub tx_spans: Vec<Span>,
}

impl GeneratedChain {
    /// The block with number `n`, if generated.
    pub fn block(&self, n: u64) -> Option<&GeneratedBlock> {
        let first = self.blocks.first()?.number;
        self.blocks
            .get(usize::try_from(n.checked_sub(first)?).ok()?)
    }

    /// Sum of the hydrated block and receipts JSON sizes.
    pub fn total_json_bytes(&self) -> u64 {
        self.blocks
            .iter()
            .map(|b| (b.block_json.len() + b.receipts_json.len()) as u64)
            .sum()
    }

    pub fn tx_count(&self) -> u64 {
        self.blocks.iter().map(|b| b.tx_hashes.len() as u64).sum()
    }

    pub fn log_count(&self) -> u64 {
        self.blocks.iter().map(|b| b.logs.len() as u64).sum()
    }

    /// The JSON-RPC batch response body a node sends for the request that
    /// `ethetl::rpc::batch::write_request` builds for blocks `start..=end` (ids `2*i` for the
    /// block, `2*i + 1` for its receipts), answers in request order. `None` if a block of the
    /// range was not generated.
    pub fn batch_response(&self, start: u64, end: u64, with_receipts: bool) -> Option<Vec<u8>> {
        let blocks: Vec<&GeneratedBlock> = (start..=end)
            .map(|n| self.block(n))
            .collect::<Option<_>>()?;
        let size: usize = blocks
            .iter()
            .map(|b| {
                b.block_json.len()
                    + if with_receipts {
                        b.receipts_json.len()
                    } else {
                        0
                    }
            })
            .sum();
        let mut out = Vec::with_capacity(size + 64 * blocks.len() + 2);
        out.push(b'[');
        for (i, b) in blocks.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            envelope(&mut out, 2 * i as u64, &b.block_json);
            if with_receipts {
                out.push(b',');
                envelope(&mut out, 2 * i as u64 + 1, &b.receipts_json);
            }
        }
        out.push(b']');
        Some(out)
    }
}

fn envelope(out: &mut Vec<u8>, id: u64, result: &[u8]) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result);
    out.push(b'}');
}

/// Generates `cfg.blocks` blocks from `cfg.start_block` in parallel (rayon's global pool).
pub fn generate_chain(cfg: &GenConfig) -> GeneratedChain {
    let gen = ChainGenerator::new(cfg);
    let last = cfg.start_block.saturating_add(cfg.blocks);
    let blocks = (cfg.start_block..last)
        .into_par_iter()
        .map(|n| gen.block(n))
        .collect();
    GeneratedChain {
        config: cfg.clone(),
        blocks,
    }
}

/// The hash of block `n` of the chain with `seed` (also the next block's `parentHash`).
pub fn block_hash(seed: u64, n: u64) -> H256 {
    let mut rng = Rng::new(seed, n, DOMAIN_HASH);
    rng.h256()
}

/// The hash of block `n` on fork `fork` of the chain with `seed`; fork 0 is the main chain
/// ([`block_hash`]).
pub fn fork_block_hash(seed: u64, fork: u64, n: u64) -> H256 {
    if fork == 0 {
        return block_hash(seed, n);
    }
    let mut rng = Rng::new(fork_seed(seed, fork), n, DOMAIN_FORK_HASH);
    rng.h256()
}

fn fork_seed(seed: u64, fork: u64) -> u64 {
    let mut st = fork;
    seed ^ splitmix64(&mut st)
}

/// Generates single blocks of one chain configuration, on the main chain or on a numbered
/// alternative fork (for reorgs). Holds the per-seed address and event pools, so generating
/// many blocks one at a time costs no more than [`generate_chain`].
pub struct ChainGenerator {
    cfg: GenConfig,
    pools: Pools,
}

impl ChainGenerator {
    pub fn new(cfg: &GenConfig) -> Self {
        ChainGenerator {
            cfg: cfg.clone(),
            pools: Pools::new(cfg.seed),
        }
    }

    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    /// Block `n` of the main chain (byte-identical to [`generate_chain`]'s).
    pub fn block(&self, n: u64) -> GeneratedBlock {
        let parent = if n == 0 {
            [0u8; 32]
        } else {
            block_hash(self.cfg.seed, n - 1)
        };
        generate_block(&self.cfg, &self.pools, n, 0, parent)
    }

    /// Block `n` of alternative fork `fork` (`fork > 0`; fork 0 is the main chain, but its
    /// parent is still `parent_hash`): its hash is [`fork_block_hash`]`(seed, fork, n)`, its
    /// transactions, receipts and logs are drawn afresh from (seed, fork, n) and its
    /// `parentHash` is `parent_hash`, so a fork can start on any block of any other fork.
    pub fn fork_block(&self, fork: u64, n: u64, parent_hash: H256) -> GeneratedBlock {
        generate_block(&self.cfg, &self.pools, n, fork, parent_hash)
    }
}

// ------------------------------------------------------------------------------------------------
// PRNG
// ------------------------------------------------------------------------------------------------

const DOMAIN_HASH: u64 = 0x6861_7368;
const DOMAIN_BLOCK: u64 = 0x626c_6f63;
const DOMAIN_POOLS: u64 = 0x706f_6f6c;
const DOMAIN_FORK_HASH: u64 = 0x666b_6873;
const DOMAIN_FORK_BLOCK: u64 = 0x666b_626c;

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// ChaCha8 keyed by splitmix64 of (seed, stream, domain): a fixed, portable algorithm.
struct Rng(ChaCha8Rng);

impl Rng {
    fn new(seed: u64, stream: u64, domain: u64) -> Self {
        let mut st = seed ^ domain.rotate_left(32);
        let mut key = [0u8; 32];
        let a = splitmix64(&mut st);
        st ^= stream;
        let mut words = [a, 0, 0, 0];
        for w in words.iter_mut().skip(1) {
            *w = splitmix64(&mut st);
        }
        for (i, w) in words.iter().enumerate() {
            key[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        Rng(ChaCha8Rng::from_seed(key))
    }

    fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((self.u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.f64() * (hi.ln() - lo.ln())).exp()
    }

    /// Number of failures before a success, with the given mean.
    fn geometric(&mut self, mean: f64) -> u64 {
        let p = 1.0 / (1.0 + mean);
        let u = 1.0 - self.f64(); // (0, 1]
        (u.ln() / (1.0 - p).ln()).floor() as u64
    }

    /// Index drawn with the given relative weights.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| w as u64).sum();
        let mut x = self.below(total.max(1));
        for (i, &w) in weights.iter().enumerate() {
            if x < w as u64 {
                return i;
            }
            x -= w as u64;
        }
        weights.len() - 1
    }

    /// An index into `len` items, strongly skewed towards the front (popular items).
    fn skewed(&mut self, len: usize) -> usize {
        let u = self.f64();
        ((u * u * u) * len as f64) as usize % len.max(1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }

    fn h256(&mut self) -> H256 {
        let mut h = [0u8; 32];
        self.fill(&mut h);
        h
    }

    fn addr(&mut self) -> Addr {
        let mut a = [0u8; 20];
        self.fill(&mut a);
        a
    }
}

// ------------------------------------------------------------------------------------------------
// Shared pools: addresses, contracts, event signatures (built once per seed)
// ------------------------------------------------------------------------------------------------

const fn hx<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (nib(b[2 * i]) << 4) | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nib(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("bad hex constant"),
    }
}

/// ERC-20/ERC-721 `Transfer(address,address,uint256)`.
pub const TOPIC_TRANSFER: H256 =
    hx("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
/// ERC-1155 `TransferSingle(address,address,address,uint256,uint256)`.
pub const TOPIC_TRANSFER_SINGLE: H256 =
    hx("c3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62");
/// ERC-1155 `TransferBatch(address,address,address,uint256[],uint256[])`.
pub const TOPIC_TRANSFER_BATCH: H256 =
    hx("4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb");
const TOPIC_APPROVAL: H256 = hx("8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925");
const TOPIC_SWAP_V2: H256 = hx("d78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822");
const TOPIC_SWAP_V3: H256 = hx("c42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67");
const TOPIC_SYNC: H256 = hx("1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1");
const TOPIC_DEPOSIT: H256 = hx("e1fffcc4923d04b559f4d29a8bfc6cda04eb5b0d3c460751c2402c5c5cc9109c");
const TOPIC_WITHDRAWAL: H256 =
    hx("7fcf532c15f0a6db0bd6d0e038bea71d30d808c7d98cb3bf7268a95bf5081b65");
const TOPIC_OWNERSHIP: H256 =
    hx("8be0079c531659141344cd1fd0a4f28419497f9722a3daafe3b4186f6b6457e0");
const EMPTY_UNCLES: H256 = hx("1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347");
const EMPTY_REQUESTS: H256 = hx("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
/// Total difficulty at the Merge (what geth reported for every post-Merge block).
const MERGE_TOTAL_DIFFICULTY: u128 = 0xc70d815d562d3cfa955;

/// Popular ERC-20 tokens first (WETH, USDT, USDC, DAI, WBTC, LINK, UNI, stETH).
const REAL_TOKENS: [Addr; 8] = [
    hx("c02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"),
    hx("dac17f958d2ee523a2206206994597c13d831ec7"),
    hx("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"),
    hx("6b175474e89094c44da98b954eedeac495271d0f"),
    hx("2260fac5e5542a773aa44fbcfedf7c193bc2c599"),
    hx("514910771af9ca656af840dff83e8264ecf986ca"),
    hx("1f9840a85d5af5bf1d1762f925bdaddc4201f984"),
    hx("ae7ab96520de3a18e5e111b5eaab095312d7fe84"),
];

/// Block builders: fee recipient and `extraData`.
const BUILDERS: [(Addr, &str); 5] = [
    (
        hx("95222290dd7278aa3ddd389cc1e1d165cc4bafe5"),
        "beaverbuild.org",
    ),
    (
        hx("4838b106fce9647bdf1e7877bf73ce8b0bad5f97"),
        "Titan (titanbuilder.xyz)",
    ),
    (
        hx("1f9090aae28b8a3dceadf281b0f12828e676c326"),
        "rsync-builder.xyz",
    ),
    (hx("dadb0d80178819f2319190d340ce9a924f783711"), "BuilderNet"),
    (hx("388c818ca8b9251b393131c08a736a67ccb19297"), ""),
];

struct Pools {
    eoas: Vec<Addr>,
    tokens: Vec<Addr>,
    nfts: Vec<Addr>,
    multi: Vec<Addr>,
    contracts: Vec<Addr>,
    delegates: Vec<Addr>,
    withdrawal_addrs: Vec<Addr>,
    event_sigs: Vec<H256>,
    selectors: Vec<[u8; 4]>,
}

impl Pools {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed, 0, DOMAIN_POOLS);
        let addrs = |rng: &mut Rng, n: usize| (0..n).map(|_| rng.addr()).collect::<Vec<_>>();
        let eoas = addrs(&mut rng, 20_000);
        let mut tokens = REAL_TOKENS.to_vec();
        tokens.extend(addrs(&mut rng, 400));
        let nfts = addrs(&mut rng, 150);
        let multi = addrs(&mut rng, 40);
        let contracts = addrs(&mut rng, 3_000);
        let delegates = addrs(&mut rng, 24);
        let withdrawal_addrs = addrs(&mut rng, 800);
        let event_sigs = (0..300).map(|_| rng.h256()).collect();
        let mut selectors: Vec<[u8; 4]> = vec![
            hx("a9059cbb"), // transfer
            hx("095ea7b3"), // approve
            hx("23b872dd"), // transferFrom
            hx("3593564c"), // execute (universal router)
            hx("7ff36ab5"), // swapExactETHForTokens
        ];
        for _ in 0..500 {
            let mut s = [0u8; 4];
            rng.fill(&mut s);
            selectors.push(s);
        }
        Pools {
            eoas,
            tokens,
            nfts,
            multi,
            contracts,
            delegates,
            withdrawal_addrs,
            event_sigs,
            selectors,
        }
    }

    fn eoa(&self, rng: &mut Rng) -> Addr {
        self.eoas[rng.below(self.eoas.len() as u64) as usize]
    }
}

// ------------------------------------------------------------------------------------------------
// Era parameters
// ------------------------------------------------------------------------------------------------

struct EraParams {
    gas_limit: u64,
    /// Relative weights of tx types 0, 1, 2, 3, 4.
    type_weights: [u32; 5],
    max_blobs: u32,
    base_fee_gwei: (f64, f64),
    pow: bool,
    withdrawals: bool,
    cancun: bool,
    prague: bool,
}

fn params(era: Era) -> EraParams {
    match era {
        Era::London => EraParams {
            gas_limit: 30_000_000,
            type_weights: [400, 10, 590, 0, 0],
            max_blobs: 0,
            base_fee_gwei: (15.0, 150.0),
            pow: true,
            withdrawals: false,
            cancun: false,
            prague: false,
        },
        Era::Shanghai => EraParams {
            gas_limit: 30_000_000,
            type_weights: [250, 10, 740, 0, 0],
            max_blobs: 0,
            base_fee_gwei: (10.0, 80.0),
            pow: false,
            withdrawals: true,
            cancun: false,
            prague: false,
        },
        Era::Cancun => EraParams {
            gas_limit: 30_000_000,
            type_weights: [220, 10, 740, 30, 0],
            max_blobs: 6,
            base_fee_gwei: (3.0, 60.0),
            pow: false,
            withdrawals: true,
            cancun: true,
            prague: false,
        },
        Era::Recent | Era::Mix => EraParams {
            gas_limit: 60_000_000,
            type_weights: [180, 10, 775, 20, 15],
            max_blobs: 9,
            base_fee_gwei: (0.05, 5.0),
            pow: false,
            withdrawals: true,
            cancun: true,
            prague: true,
        },
    }
}

const GWEI: f64 = 1e9;
const MERGE_BLOCK: u64 = 15_537_394;
const MERGE_TIME: u64 = 1_663_224_179;

fn timestamp(n: u64) -> u64 {
    if n >= MERGE_BLOCK {
        MERGE_TIME.saturating_add((n - MERGE_BLOCK).saturating_mul(12))
    } else {
        MERGE_TIME
            .saturating_sub(13 * (MERGE_BLOCK - n))
            .max(1_438_269_988)
    }
}

// ------------------------------------------------------------------------------------------------
// The model of one block
// ------------------------------------------------------------------------------------------------

struct Log {
    address: Addr,
    topics: [H256; 4],
    n_topics: u8,
    data: Vec<u8>,
}

impl Log {
    fn new(address: Addr, topics: &[H256], data: Vec<u8>) -> Self {
        let mut t = [[0u8; 32]; 4];
        t[..topics.len()].copy_from_slice(topics);
        Log {
            address,
            topics: t,
            n_topics: topics.len() as u8,
            data,
        }
    }

    fn topics(&self) -> &[H256] {
        &self.topics[..self.n_topics as usize]
    }
}

struct Auth {
    chain_id: u64,
    address: Addr,
    nonce: u64,
    y_parity: u8,
    r: H256,
    s: H256,
}

struct Tx {
    ty: u8,
    hash: H256,
    from: Addr,
    to: Option<Addr>,
    nonce: u64,
    gas: u64,
    /// Effective gas price (what geth shows for a mined tx).
    gas_price: u64,
    max_fee: u64,
    max_prio: u64,
    max_fee_blob: u64,
    value: u128,
    input: Vec<u8>,
    access_list: Vec<(Addr, Vec<H256>)>,
    blob_hashes: Vec<H256>,
    auths: Vec<Auth>,
    /// Legacy tx signed with EIP-155 replay protection (has `chainId`).
    eip155: bool,
    y_parity: u8,
    r: H256,
    s: H256,
    status: bool,
    gas_used: u64,
    contract_address: Option<Addr>,
    logs: Vec<Log>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    EthTransfer,
    Erc20Call,
    Create,
    Generic,
}

fn word_addr(a: &Addr) -> H256 {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(a);
    w
}

fn word_u64(v: u64) -> H256 {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&v.to_be_bytes());
    w
}

/// A token amount: mostly 20–90 bits, sometimes zero, sometimes huge, rarely 2^256 − 1.
fn token_amount(rng: &mut Rng) -> H256 {
    let roll = rng.below(1000);
    let bits = match roll {
        0..=4 => return [0u8; 32],
        5..=6 => return [0xff; 32],
        7..=16 => rng.range(90, 256),
        _ => rng.range(20, 90),
    } as usize;
    let mut w = rng.h256();
    let zero_bits = 256 - bits;
    for (i, b) in w.iter_mut().enumerate() {
        let bit_pos = i * 8;
        if bit_pos + 8 <= zero_bits {
            *b = 0;
        } else if bit_pos < zero_bits {
            *b &= 0xff >> (zero_bits - bit_pos);
        }
    }
    w
}

/// A signed 256-bit word (negative half the time), as in Uniswap V3 swap amounts.
fn signed_amount(rng: &mut Rng) -> H256 {
    let mut w = token_amount(rng);
    if w != [0xff; 32] && rng.chance(0.5) {
        // two's complement negation
        for b in w.iter_mut() {
            *b = !*b;
        }
        for b in w.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    w
}

fn push_words(out: &mut Vec<u8>, words: &[H256]) {
    for w in words {
        out.extend_from_slice(w);
    }
}

/// ABI-looking call arguments: addresses, small numbers, random words and zeros.
fn abi_words(rng: &mut Rng, pools: &Pools, out: &mut Vec<u8>, words: usize) {
    for _ in 0..words {
        let w = match rng.below(10) {
            0..=3 => word_addr(&pools.eoa(rng)),
            4..=6 => word_u64(rng.below(1 << 32)),
            7..=8 => rng.h256(),
            _ => [0u8; 32],
        };
        out.extend_from_slice(&w);
    }
}

/// Large opaque input (bytecode or packed calldata) of `len` bytes.
fn blob_input(rng: &mut Rng, out: &mut Vec<u8>, prefix: &[u8], len: usize) {
    let start = out.len();
    out.extend_from_slice(prefix);
    out.resize(start + len.max(prefix.len()), 0);
    let at = start + prefix.len();
    rng.fill(&mut out[at..]);
    // some zero runs, as in real bytecode and calldata
    let body = out.len() - at;
    if body > 64 {
        for _ in 0..body / 256 {
            let p = at + rng.below((body - 32) as u64) as usize;
            out[p..p + 24].fill(0);
        }
    }
}

/// A log of a contract call that is not an ERC-20 transfer from the `Erc20Call` kind.
fn generic_log(rng: &mut Rng, pools: &Pools, emitter: Option<Addr>) -> Log {
    let roll = rng.below(10_000);
    match roll {
        // ERC-20 Transfer (3 topics + 32-byte amount)
        0..=4299 => {
            let address = emitter.unwrap_or_else(|| pools.tokens[rng.skewed(pools.tokens.len())]);
            let from = holder(rng, pools, 0.03);
            let to = holder(rng, pools, 0.015);
            let amount = token_amount(rng);
            Log::new(
                address,
                &[TOPIC_TRANSFER, word_addr(&from), word_addr(&to)],
                amount.to_vec(),
            )
        }
        // ERC-721 Transfer (4 topics, empty data)
        4300..=4769 => {
            let address = emitter.unwrap_or_else(|| pools.nfts[rng.skewed(pools.nfts.len())]);
            let from = holder(rng, pools, 0.1);
            let to = holder(rng, pools, 0.01);
            let id = if rng.chance(0.05) {
                rng.h256()
            } else {
                word_u64(rng.below(100_000))
            };
            Log::new(
                address,
                &[TOPIC_TRANSFER, word_addr(&from), word_addr(&to), id],
                Vec::new(),
            )
        }
        // ERC-1155 TransferSingle (operator, from, to; data = id, value)
        4770..=4944 => {
            let address = emitter.unwrap_or_else(|| pools.multi[rng.skewed(pools.multi.len())]);
            let (op, from, to) = (pools.eoa(rng), holder(rng, pools, 0.1), pools.eoa(rng));
            let mut d = Vec::with_capacity(64);
            push_words(
                &mut d,
                &[word_u64(rng.below(10_000)), token_amount_small(rng)],
            );
            Log::new(
                address,
                &[
                    TOPIC_TRANSFER_SINGLE,
                    word_addr(&op),
                    word_addr(&from),
                    word_addr(&to),
                ],
                d,
            )
        }
        // ERC-1155 TransferBatch (data = abi.encode(uint256[] ids, uint256[] values))
        4945..=4999 => {
            let address = emitter.unwrap_or_else(|| pools.multi[rng.skewed(pools.multi.len())]);
            let (op, from, to) = (pools.eoa(rng), holder(rng, pools, 0.1), pools.eoa(rng));
            let k = rng.range(1, 8) as usize;
            let mut d = Vec::with_capacity(32 * (4 + 2 * k));
            push_words(
                &mut d,
                &[word_u64(0x40), word_u64(0x40 + 32 * (k as u64 + 1))],
            );
            d.extend_from_slice(&word_u64(k as u64));
            for _ in 0..k {
                d.extend_from_slice(&word_u64(rng.below(10_000)));
            }
            d.extend_from_slice(&word_u64(k as u64));
            for _ in 0..k {
                d.extend_from_slice(&token_amount_small(rng));
            }
            Log::new(
                address,
                &[
                    TOPIC_TRANSFER_BATCH,
                    word_addr(&op),
                    word_addr(&from),
                    word_addr(&to),
                ],
                d,
            )
        }
        // Transfer with all arguments in data (1 topic + 96 bytes; valid for ethereum-etl)
        5000..=5009 => {
            let address = emitter.unwrap_or_else(|| pools.tokens[rng.skewed(pools.tokens.len())]);
            let mut d = Vec::with_capacity(96);
            push_words(
                &mut d,
                &[
                    word_addr(&pools.eoa(rng)),
                    word_addr(&pools.eoa(rng)),
                    token_amount(rng),
                ],
            );
            Log::new(address, &[TOPIC_TRANSFER], d)
        }
        // malformed Transfer: topics + data words != 4
        5010..=5029 => {
            let address = emitter.unwrap_or_else(|| pools.tokens[rng.skewed(pools.tokens.len())]);
            let (from, to) = (word_addr(&pools.eoa(rng)), word_addr(&pools.eoa(rng)));
            match rng.below(3) {
                0 => Log::new(address, &[TOPIC_TRANSFER], token_amount(rng).to_vec()),
                1 => {
                    let mut d = token_amount(rng).to_vec();
                    d.extend_from_slice(&token_amount(rng));
                    Log::new(address, &[TOPIC_TRANSFER, from, to], d)
                }
                _ => Log::new(address, &[TOPIC_TRANSFER, from], token_amount(rng).to_vec()),
            }
        }
        // Approval (3 topics + amount, often unlimited)
        5030..=5829 => {
            let address = emitter.unwrap_or_else(|| pools.tokens[rng.skewed(pools.tokens.len())]);
            let amount = if rng.chance(0.3) {
                [0xff; 32]
            } else {
                token_amount(rng)
            };
            let spender = pools.contracts[rng.skewed(pools.contracts.len())];
            Log::new(
                address,
                &[
                    TOPIC_APPROVAL,
                    word_addr(&pools.eoa(rng)),
                    word_addr(&spender),
                ],
                amount.to_vec(),
            )
        }
        // Uniswap V2 Swap (3 topics + 4 words) and Sync (1 topic + 2 words)
        5830..=6529 => {
            let pool =
                emitter.unwrap_or_else(|| pools.contracts[rng.skewed(pools.contracts.len())]);
            if rng.chance(0.5) {
                let mut d = Vec::with_capacity(128);
                let (a, b) = (token_amount(rng), token_amount(rng));
                push_words(&mut d, &[a, [0; 32], [0; 32], b]);
                let router = pools.contracts[rng.skewed(64)];
                Log::new(
                    pool,
                    &[
                        TOPIC_SWAP_V2,
                        word_addr(&router),
                        word_addr(&pools.eoa(rng)),
                    ],
                    d,
                )
            } else {
                let mut d = Vec::with_capacity(64);
                push_words(&mut d, &[token_amount(rng), token_amount(rng)]);
                Log::new(pool, &[TOPIC_SYNC], d)
            }
        }
        // Uniswap V3 Swap (3 topics + 5 words)
        6530..=7229 => {
            let pool =
                emitter.unwrap_or_else(|| pools.contracts[rng.skewed(pools.contracts.len())]);
            let mut d = Vec::with_capacity(160);
            let mut sqrt = [0u8; 32];
            rng.fill(&mut sqrt[12..]);
            let mut liq = [0u8; 32];
            rng.fill(&mut liq[20..]);
            let tick = word_u64(rng.below(800_000));
            push_words(
                &mut d,
                &[signed_amount(rng), signed_amount(rng), sqrt, liq, tick],
            );
            let router = pools.contracts[rng.skewed(64)];
            Log::new(
                pool,
                &[
                    TOPIC_SWAP_V3,
                    word_addr(&router),
                    word_addr(&pools.eoa(rng)),
                ],
                d,
            )
        }
        // WETH Deposit / Withdrawal (2 topics + amount)
        7230..=7629 => {
            let sig = if rng.chance(0.5) {
                TOPIC_DEPOSIT
            } else {
                TOPIC_WITHDRAWAL
            };
            let who = pools.contracts[rng.skewed(64)];
            let address = emitter.unwrap_or(REAL_TOKENS[0]);
            Log::new(address, &[sig, word_addr(&who)], token_amount(rng).to_vec())
        }
        // anything else: 1–4 topics, 0–32 words of data
        _ => {
            let address =
                emitter.unwrap_or_else(|| pools.contracts[rng.skewed(pools.contracts.len())]);
            let n_topics = 1 + rng.weighted(&[34, 30, 20, 16]);
            let mut topics = [[0u8; 32]; 4];
            topics[0] = pools.event_sigs[rng.skewed(pools.event_sigs.len())];
            for t in topics.iter_mut().take(n_topics).skip(1) {
                *t = if rng.chance(0.6) {
                    word_addr(&pools.eoa(rng))
                } else {
                    rng.h256()
                };
            }
            let words = [0usize, 1, 2, 3, 4, 5, 6, 8, 10, 16, 32]
                [rng.weighted(&[8, 12, 18, 14, 12, 9, 8, 8, 5, 4, 2])];
            let mut d = Vec::with_capacity(32 * words);
            abi_words(rng, pools, &mut d, words);
            Log::new(address, &topics[..n_topics], d)
        }
    }
}

fn token_amount_small(rng: &mut Rng) -> H256 {
    if rng.chance(0.01) {
        token_amount(rng)
    } else {
        word_u64(rng.range(1, 1000))
    }
}

/// A token holder; the zero address (mint/burn) with probability `zero`.
fn holder(rng: &mut Rng, pools: &Pools, zero: f64) -> Addr {
    if rng.chance(zero) {
        [0u8; 20]
    } else if rng.chance(0.25) {
        pools.contracts[rng.skewed(pools.contracts.len())]
    } else {
        pools.eoa(rng)
    }
}

struct BlockCtx {
    base_fee: u64,
    blobs_left: u32,
}

fn gen_tx(rng: &mut Rng, pools: &Pools, p: &EraParams, cx: &mut BlockCtx) -> Tx {
    let kind = [
        Kind::EthTransfer,
        Kind::Erc20Call,
        Kind::Create,
        Kind::Generic,
    ][rng.weighted(&[250, 280, 5, 465])];
    let mut ty = rng.weighted(&p.type_weights) as u8;
    if ty == 3 && (cx.blobs_left == 0 || kind == Kind::Create) {
        ty = 2;
    }
    if ty == 4 && kind == Kind::Create {
        ty = 2;
    }
    let from = pools.eoa(rng);
    let mut to = None;
    let mut input = Vec::new();
    let mut logs = Vec::new();
    let mut value: u128 = 0;
    let mut contract_address = None;
    let base_gas: u64;
    match kind {
        Kind::EthTransfer => {
            to = Some(if rng.chance(0.9) {
                pools.eoa(rng)
            } else {
                pools.contracts[rng.skewed(3000)]
            });
            value = rng.log_uniform(1e13, 5e20) as u128;
            if rng.chance(0.001) {
                value = rng.log_uniform(5e20, 1e23) as u128;
            }
            base_gas = 21_000;
        }
        Kind::Erc20Call => {
            let token = pools.tokens[rng.skewed(pools.tokens.len())];
            to = Some(token);
            let recipient = holder(rng, pools, 0.0);
            let amount = token_amount(rng);
            input.reserve(68);
            input.extend_from_slice(&pools.selectors[0]);
            push_words(&mut input, &[word_addr(&recipient), amount]);
            logs.push(Log::new(
                token,
                &[TOPIC_TRANSFER, word_addr(&from), word_addr(&recipient)],
                amount.to_vec(),
            ));
            if rng.chance(0.05) {
                // fee-on-transfer tokens emit a second Transfer
                logs.push(Log::new(
                    token,
                    &[TOPIC_TRANSFER, word_addr(&from), word_addr(&pools.eoa(rng))],
                    token_amount(rng).to_vec(),
                ));
            }
            base_gas = rng.range(34_000, 65_000);
        }
        Kind::Create => {
            let len = rng.log_uniform(1_500.0, 24_000.0) as usize;
            blob_input(rng, &mut input, &hx::<5>("6080604052"), len);
            let created = rng.addr();
            contract_address = Some(created);
            if rng.chance(0.6) {
                logs.push(Log::new(
                    created,
                    &[TOPIC_OWNERSHIP, [0u8; 32], word_addr(&from)],
                    Vec::new(),
                ));
            }
            for _ in 0..rng.below(3) {
                logs.push(generic_log(rng, pools, Some(created)));
            }
            base_gas = 53_000 + 200 * len as u64 + rng.below(300_000);
        }
        Kind::Generic => {
            to = Some(if ty == 4 && rng.chance(0.5) {
                from
            } else {
                pools.contracts[rng.skewed(pools.contracts.len())]
            });
            if rng.chance(0.006) {
                let len = rng.log_uniform(2_000.0, 100_000.0) as usize;
                let sel = pools.selectors[rng.skewed(pools.selectors.len())];
                blob_input(rng, &mut input, &sel, len);
            } else {
                let words = rng.log_uniform(1.0, 80.0) as usize;
                input.reserve(4 + 32 * words);
                input.extend_from_slice(&pools.selectors[rng.skewed(pools.selectors.len())]);
                abi_words(rng, pools, &mut input, words);
            }
            if rng.chance(0.2) {
                value = rng.log_uniform(1e14, 1e20) as u128;
            }
            if !rng.chance(0.24) {
                let n = 1 + rng.geometric(4.4).min(199);
                logs.reserve(n as usize);
                for _ in 0..n {
                    logs.push(generic_log(rng, pools, None));
                }
            }
            base_gas = 21_000
                + 12 * input.len() as u64
                + 9_000 * logs.len() as u64
                + rng.log_uniform(5_000.0, 600_000.0) as u64;
        }
    }
    let failed = rng.chance(match kind {
        Kind::EthTransfer => 0.002,
        Kind::Erc20Call => 0.015,
        Kind::Create => 0.05,
        Kind::Generic => 0.045,
    });
    let mut gas_used = base_gas;
    if failed {
        logs.clear();
        gas_used = (base_gas as f64 * (0.2 + 0.8 * rng.f64())) as u64;
        gas_used = gas_used.max(21_000);
    }
    let gas = if kind == Kind::EthTransfer && rng.chance(0.9) {
        21_000
    } else {
        ((base_gas as f64 * (1.05 + rng.f64())) as u64 / 100) * 100
    };

    // fees
    let prio = rng.log_uniform(1e6, 5e9) as u64;
    let (gas_price, max_fee, max_prio) = if ty <= 1 {
        (cx.base_fee + prio, 0, 0)
    } else {
        let mut max_fee = (cx.base_fee as f64 * (1.0 + 2.0 * rng.f64())) as u64 + prio;
        if rng.chance(0.1) {
            // cap below base + tip: the effective price is the cap
            max_fee = cx.base_fee + prio / 2;
        }
        (max_fee.min(cx.base_fee + prio), max_fee, prio)
    };

    let mut access_list = Vec::new();
    if ty == 1 || (ty == 2 && rng.chance(0.08)) || (ty >= 3 && rng.chance(0.03)) {
        for _ in 0..rng.range(1, 4) {
            let a = pools.contracts[rng.skewed(pools.contracts.len())];
            let keys = (0..rng.below(6))
                .map(|_| {
                    if rng.chance(0.5) {
                        word_u64(rng.below(16))
                    } else {
                        rng.h256()
                    }
                })
                .collect();
            access_list.push((a, keys));
        }
    }
    let mut blob_hashes = Vec::new();
    let mut max_fee_blob = 0;
    if ty == 3 {
        let n = (1 + rng.weighted(&[30, 15, 10, 10, 10, 25]) as u32).min(cx.blobs_left);
        cx.blobs_left -= n;
        for _ in 0..n {
            let mut h = rng.h256();
            h[0] = 0x01;
            blob_hashes.push(h);
        }
        max_fee_blob = rng.log_uniform(1e8, 1e11) as u64;
        if input.is_empty() {
            abi_words(rng, pools, &mut input, 6);
        }
    }
    let mut auths = Vec::new();
    if ty == 4 {
        for _ in 0..rng.range(1, 3) {
            let mut s = rng.h256();
            s[0] &= 0x7f;
            auths.push(Auth {
                chain_id: if rng.chance(0.85) { 1 } else { 0 },
                address: pools.delegates[rng.skewed(pools.delegates.len())],
                nonce: rng.below(50),
                y_parity: rng.below(2) as u8,
                r: rng.h256(),
                s,
            });
        }
    }
    let nonce = match rng.below(100) {
        0..=69 => rng.below(1_000),
        70..=94 => rng.below(100_000),
        _ => rng.below(10_000_000),
    };
    let mut s = rng.h256();
    s[0] &= 0x7f; // low-s
    Tx {
        ty,
        hash: rng.h256(),
        from,
        to,
        nonce,
        gas: gas.max(gas_used),
        gas_price,
        max_fee,
        max_prio,
        max_fee_blob,
        value,
        input,
        access_list,
        blob_hashes,
        auths,
        eip155: !(ty == 0 && rng.chance(0.005)),
        y_parity: rng.below(2) as u8,
        r: rng.h256(),
        s,
        status: !failed,
        gas_used,
        contract_address,
        logs,
    }
}

struct Withdrawal {
    index: u64,
    validator: u64,
    address: Addr,
    amount_gwei: u64,
}

/// Generates and renders block `n` of fork `fork` (0: the main chain) with the given parent.
fn generate_block(
    cfg: &GenConfig,
    pools: &Pools,
    n: u64,
    fork: u64,
    parent_hash: H256,
) -> GeneratedBlock {
    let era = cfg.era.for_block(n);
    let p = params(era);
    let mut rng = if fork == 0 {
        Rng::new(cfg.seed, n, DOMAIN_BLOCK ^ ((era as u64) << 8))
    } else {
        Rng::new(
            fork_seed(cfg.seed, fork),
            n,
            DOMAIN_FORK_BLOCK ^ ((era as u64) << 8),
        )
    };
    let ntx = match cfg.txs_per_block {
        Some(t) => t as usize,
        None if rng.chance(0.005) => 0,
        None => {
            let mean = era.default_txs_per_block() as f64;
            (mean * (0.4 + 0.6 * (rng.f64() + rng.f64()))) as usize
        }
    };
    let base_fee = rng.log_uniform(p.base_fee_gwei.0 * GWEI, p.base_fee_gwei.1 * GWEI) as u64;
    let mut cx = BlockCtx {
        base_fee,
        blobs_left: p.max_blobs,
    };
    let txs: Vec<Tx> = (0..ntx)
        .map(|_| gen_tx(&mut rng, pools, &p, &mut cx))
        .collect();
    let withdrawals: Vec<Withdrawal> = if p.withdrawals {
        (0..16)
            .map(|i| Withdrawal {
                index: n
                    .saturating_sub(17_000_000)
                    .wrapping_mul(16)
                    .wrapping_add(i),
                validator: rng.below(2_000_000),
                address: pools.withdrawal_addrs[rng.skewed(pools.withdrawal_addrs.len())],
                amount_gwei: if rng.chance(0.02) {
                    32_000_000_000 + rng.below(100_000_000)
                } else {
                    rng.range(15_000_000, 20_000_000)
                },
            })
            .collect()
    } else {
        Vec::new()
    };
    let header = Header {
        number: n,
        hash: fork_block_hash(cfg.seed, fork, n),
        parent_hash,
        timestamp: timestamp(n),
        base_fee,
        builder: rng.below(BUILDERS.len() as u64) as usize,
        difficulty: if p.pow {
            rng.range(10_000_000_000_000_000, 13_000_000_000_000_000)
        } else {
            0
        },
        nonce: if p.pow { rng.u64() } else { 0 },
        mix_hash: rng.h256(),
        state_root: rng.h256(),
        receipts_root: rng.h256(),
        tx_root: rng.h256(),
        withdrawals_root: rng.h256(),
        beacon_root: rng.h256(),
        excess_blob_gas: rng.below(1 << 27),
        blob_base_fee: if rng.chance(0.5) {
            1
        } else {
            rng.range(1, 1 << 30)
        },
    };
    render_block(cfg, &p, era, &header, &txs, &withdrawals)
}

struct Header {
    number: u64,
    hash: H256,
    parent_hash: H256,
    timestamp: u64,
    base_fee: u64,
    builder: usize,
    difficulty: u64,
    nonce: u64,
    mix_hash: H256,
    state_root: H256,
    receipts_root: H256,
    tx_root: H256,
    withdrawals_root: H256,
    beacon_root: H256,
    excess_blob_gas: u64,
    blob_base_fee: u64,
}

// ------------------------------------------------------------------------------------------------
// Rendering (geth's field order)
// ------------------------------------------------------------------------------------------------

/// Pseudo bloom: three bits per item from a mix of its bytes (not Keccak).
fn bloom_add(bloom: &mut [u8; 256], item: &[u8]) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in item.chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        let mut st = h ^ u64::from_le_bytes(b);
        h = splitmix64(&mut st);
    }
    for i in 0..3 {
        let bit = ((h >> (16 * i)) & 0x7ff) as usize;
        bloom[255 - bit / 8] |= 1 << (bit % 8);
    }
}

fn render_block(
    cfg: &GenConfig,
    p: &EraParams,
    era: Era,
    h: &Header,
    txs: &[Tx],
    withdrawals: &[Withdrawal],
) -> GeneratedBlock {
    // receipt blooms and the block bloom
    let mut blooms: Vec<[u8; 256]> = Vec::with_capacity(txs.len());
    let mut block_bloom = [0u8; 256];
    for tx in txs {
        let mut b = [0u8; 256];
        for log in &tx.logs {
            bloom_add(&mut b, &log.address);
            for t in log.topics() {
                bloom_add(&mut b, t);
            }
        }
        for (x, y) in block_bloom.iter_mut().zip(b.iter()) {
            *x |= *y;
        }
        blooms.push(b);
    }
    let gas_used: u64 = txs.iter().map(|t| t.gas_used).sum();
    let blob_gas_used: u64 = txs
        .iter()
        .map(|t| t.blob_hashes.len() as u64 * 131_072)
        .sum();
    let size: u64 = 620
        + txs
            .iter()
            .map(|t| {
                115 + t.input.len() as u64
                    + t.access_list
                        .iter()
                        .map(|(_, k)| 23 + 33 * k.len() as u64)
                        .sum::<u64>()
                    + 33 * t.blob_hashes.len() as u64
                    + 86 * t.auths.len() as u64
            })
            .sum::<u64>()
        + 30 * withdrawals.len() as u64;

    let est_block = 900 + txs.iter().map(|t| 760 + 2 * t.input.len()).sum::<usize>();
    let mut block_json = Vec::with_capacity(est_block + 200 * withdrawals.len());
    let mut block_hashes_json = Vec::with_capacity(900 + 70 * txs.len() + 200 * withdrawals.len());
    let mut tx_spans = Vec::with_capacity(txs.len());
    for (out, full) in [(&mut block_json, true), (&mut block_hashes_json, false)] {
        let mut o = Obj::new(out);
        qty(o.key("baseFeePerGas"), h.base_fee);
        if p.cancun {
            qty(o.key("blobGasUsed"), blob_gas_used);
        }
        qty(o.key("difficulty"), h.difficulty);
        if p.cancun {
            qty(o.key("excessBlobGas"), h.excess_blob_gas);
        }
        data(o.key("extraData"), BUILDERS[h.builder].1.as_bytes());
        qty(o.key("gasLimit"), p.gas_limit.max(gas_used));
        qty(o.key("gasUsed"), gas_used);
        data(o.key("hash"), &h.hash);
        data(o.key("logsBloom"), &block_bloom);
        data(o.key("miner"), &BUILDERS[h.builder].0);
        data(o.key("mixHash"), &h.mix_hash);
        data(o.key("nonce"), &h.nonce.to_be_bytes());
        qty(o.key("number"), h.number);
        if p.cancun {
            data(o.key("parentBeaconBlockRoot"), &h.beacon_root);
        }
        data(o.key("parentHash"), &h.parent_hash);
        data(o.key("receiptsRoot"), &h.receipts_root);
        if p.prague {
            data(o.key("requestsHash"), &EMPTY_REQUESTS);
        }
        data(o.key("sha3Uncles"), &EMPTY_UNCLES);
        qty(o.key("size"), size);
        data(o.key("stateRoot"), &h.state_root);
        qty(o.key("timestamp"), h.timestamp);
        if !p.prague {
            let td = if p.pow {
                // a plausible pre-Merge running total
                MERGE_TOTAL_DIFFICULTY.saturating_sub(
                    (MERGE_BLOCK.saturating_sub(h.number) as u128) * h.difficulty as u128,
                )
            } else {
                MERGE_TOTAL_DIFFICULTY
            };
            qty128(o.key("totalDifficulty"), td);
        }
        let out = o.key("transactions");
        out.push(b'[');
        for (i, tx) in txs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if full {
                let start = out.len();
                render_tx(out, cfg, h, i, tx);
                tx_spans.push(Span {
                    start: start as u32,
                    end: out.len() as u32,
                });
            } else {
                data(out, &tx.hash);
            }
        }
        out.push(b']');
        data(o.key("transactionsRoot"), &h.tx_root);
        o.key("uncles").extend_from_slice(b"[]");
        if p.withdrawals {
            let out = o.key("withdrawals");
            out.push(b'[');
            for (i, w) in withdrawals.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let mut wo = Obj::new(out);
                qty(wo.key("index"), w.index);
                qty(wo.key("validatorIndex"), w.validator);
                data(wo.key("address"), &w.address);
                qty(wo.key("amount"), w.amount_gwei);
                wo.end();
            }
            out.push(b']');
            data(o.key("withdrawalsRoot"), &h.withdrawals_root);
        }
        o.end();
    }

    // receipts
    let n_logs: usize = txs.iter().map(|t| t.logs.len()).sum();
    let est_receipts = 2
        + txs.len() * 1_000
        + txs
            .iter()
            .flat_map(|t| &t.logs)
            .map(|l| 700 + 2 * l.data.len())
            .sum::<usize>();
    let mut receipts = Vec::with_capacity(est_receipts);
    let mut receipt_spans = Vec::with_capacity(txs.len());
    let mut logs_meta = Vec::with_capacity(n_logs);
    let mut cumulative = 0u64;
    let mut log_index = 0u64;
    receipts.push(b'[');
    for (i, tx) in txs.iter().enumerate() {
        if i > 0 {
            receipts.push(b',');
        }
        cumulative += tx.gas_used;
        let start = receipts.len();
        let mut o = Obj::new(&mut receipts);
        if tx.ty == 3 {
            qty(o.key("blobGasPrice"), h.blob_base_fee);
            qty(o.key("blobGasUsed"), tx.blob_hashes.len() as u64 * 131_072);
        }
        data(o.key("blockHash"), &h.hash);
        qty(o.key("blockNumber"), h.number);
        match &tx.contract_address {
            Some(a) => data(o.key("contractAddress"), a),
            None => o.key("contractAddress").extend_from_slice(b"null"),
        }
        qty(o.key("cumulativeGasUsed"), cumulative);
        qty(o.key("effectiveGasPrice"), tx.gas_price);
        data(o.key("from"), &tx.from);
        qty(o.key("gasUsed"), tx.gas_used);
        let out = o.key("logs");
        out.push(b'[');
        for (j, log) in tx.logs.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            let ls = out.len();
            render_log(out, era, h, i, tx, log, log_index);
            logs_meta.push(LogMeta {
                span: Span {
                    start: ls as u32,
                    end: out.len() as u32,
                },
                address: log.address,
                topics: log.topics,
                n_topics: log.n_topics,
            });
            log_index += 1;
        }
        out.push(b']');
        data(o.key("logsBloom"), &blooms[i]);
        qty(o.key("status"), tx.status as u64);
        match &tx.to {
            Some(a) => data(o.key("to"), a),
            None => o.key("to").extend_from_slice(b"null"),
        }
        data(o.key("transactionHash"), &tx.hash);
        qty(o.key("transactionIndex"), i as u64);
        qty(o.key("type"), tx.ty as u64);
        o.end();
        receipt_spans.push(Span {
            start: start as u32,
            end: receipts.len() as u32,
        });
    }
    receipts.push(b']');

    GeneratedBlock {
        number: h.number,
        hash: h.hash,
        parent_hash: h.parent_hash,
        era,
        block_json,
        block_hashes_json,
        receipts_json: receipts,
        tx_hashes: txs.iter().map(|t| t.hash).collect(),
        receipt_spans,
        logs: logs_meta,
        tx_spans,
    }
}

fn render_tx(out: &mut Vec<u8>, cfg: &GenConfig, h: &Header, index: usize, tx: &Tx) {
    let mut o = Obj::new(out);
    data(o.key("blockHash"), &h.hash);
    qty(o.key("blockNumber"), h.number);
    data(o.key("from"), &tx.from);
    qty(o.key("gas"), tx.gas);
    qty(o.key("gasPrice"), tx.gas_price);
    if tx.ty >= 2 {
        qty(o.key("maxFeePerGas"), tx.max_fee);
        qty(o.key("maxPriorityFeePerGas"), tx.max_prio);
    }
    if tx.ty == 3 {
        qty(o.key("maxFeePerBlobGas"), tx.max_fee_blob);
    }
    data(o.key("hash"), &tx.hash);
    data(o.key("input"), &tx.input);
    qty(o.key("nonce"), tx.nonce);
    match &tx.to {
        Some(a) => data(o.key("to"), a),
        None => o.key("to").extend_from_slice(b"null"),
    }
    qty(o.key("transactionIndex"), index as u64);
    qty128(o.key("value"), tx.value);
    qty(o.key("type"), tx.ty as u64);
    if tx.ty >= 1 {
        let out = o.key("accessList");
        out.push(b'[');
        for (i, (a, keys)) in tx.access_list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let mut ao = Obj::new(out);
            data(ao.key("address"), a);
            let ko = ao.key("storageKeys");
            ko.push(b'[');
            for (j, k) in keys.iter().enumerate() {
                if j > 0 {
                    ko.push(b',');
                }
                data(ko, k);
            }
            ko.push(b']');
            ao.end();
        }
        out.push(b']');
    }
    if tx.ty >= 1 || tx.eip155 {
        qty(o.key("chainId"), cfg.chain_id);
    }
    if tx.ty == 3 {
        let out = o.key("blobVersionedHashes");
        out.push(b'[');
        for (i, b) in tx.blob_hashes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            data(out, b);
        }
        out.push(b']');
    }
    if tx.ty == 4 {
        let out = o.key("authorizationList");
        out.push(b'[');
        for (i, a) in tx.auths.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let mut ao = Obj::new(out);
            qty(ao.key("chainId"), a.chain_id);
            data(ao.key("address"), &a.address);
            qty(ao.key("nonce"), a.nonce);
            qty(ao.key("yParity"), a.y_parity as u64);
            qty_be(ao.key("r"), &a.r);
            qty_be(ao.key("s"), &a.s);
            ao.end();
        }
        out.push(b']');
    }
    let v: u128 = match (tx.ty, tx.eip155) {
        (0, true) => cfg.chain_id as u128 * 2 + 35 + tx.y_parity as u128,
        (0, false) => 27 + tx.y_parity as u128,
        _ => tx.y_parity as u128,
    };
    qty128(o.key("v"), v);
    qty_be(o.key("r"), &tx.r);
    qty_be(o.key("s"), &tx.s);
    if tx.ty >= 1 {
        qty(o.key("yParity"), tx.y_parity as u64);
    }
    o.end();
}

fn render_log(
    out: &mut Vec<u8>,
    era: Era,
    h: &Header,
    tx_index: usize,
    tx: &Tx,
    log: &Log,
    log_index: u64,
) {
    let mut o = Obj::new(out);
    data(o.key("address"), &log.address);
    let t = o.key("topics");
    t.push(b'[');
    for (i, topic) in log.topics().iter().enumerate() {
        if i > 0 {
            t.push(b',');
        }
        data(t, topic);
    }
    t.push(b']');
    data(o.key("data"), &log.data);
    qty(o.key("blockNumber"), h.number);
    data(o.key("transactionHash"), &tx.hash);
    qty(o.key("transactionIndex"), tx_index as u64);
    data(o.key("blockHash"), &h.hash);
    if era == Era::Recent {
        qty(o.key("blockTimestamp"), h.timestamp);
    }
    qty(o.key("logIndex"), log_index);
    o.key("removed").extend_from_slice(b"false");
    o.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64, era: Era) -> GenConfig {
        GenConfig {
            blocks: 6,
            start_block: 20_000_000,
            seed,
            txs_per_block: None,
            era,
            chain_id: 1,
        }
    }

    #[test]
    fn every_rendered_value_is_valid_json() {
        for era in [Era::London, Era::Shanghai, Era::Cancun, Era::Recent] {
            let chain = generate_chain(&small(7, era));
            for b in &chain.blocks {
                for bytes in [&b.block_json, &b.block_hashes_json, &b.receipts_json] {
                    let v: sonic_rs::Value = sonic_rs::from_slice(bytes)
                        .unwrap_or_else(|e| panic!("block {} era {era}: {e}", b.number));
                    drop(v);
                }
            }
        }
    }

    #[test]
    fn spans_cover_receipts_and_logs() {
        let chain = generate_chain(&small(3, Era::Recent));
        for b in &chain.blocks {
            assert_eq!(b.receipt_spans.len(), b.tx_hashes.len());
            for s in &b.receipt_spans {
                let r = &b.receipts_json[s.start as usize..s.end as usize];
                assert_eq!((r[0], r[r.len() - 1]), (b'{', b'}'));
            }
            for l in &b.logs {
                let raw = &b.receipts_json[l.span.start as usize..l.span.end as usize];
                let v: sonic_rs::Value = sonic_rs::from_slice(raw).unwrap();
                use sonic_rs::JsonValueTrait;
                let addr = v.get("address").unwrap().as_str().unwrap().to_string();
                assert_eq!(addr, format!("0x{}", hex::encode(l.address)));
            }
        }
    }

    #[test]
    fn token_amounts_stay_within_256_bits_and_vary() {
        let mut rng = Rng::new(1, 2, 3);
        let mut huge = 0;
        for _ in 0..5_000 {
            let w = token_amount(&mut rng);
            if w[0] != 0 {
                huge += 1;
            }
        }
        assert!(huge > 0, "some amounts use the top byte");
        assert!(huge < 500, "but only a few");
    }

    #[test]
    fn era_names_round_trip() {
        for e in [
            Era::London,
            Era::Shanghai,
            Era::Cancun,
            Era::Recent,
            Era::Mix,
        ] {
            assert_eq!(e.name().parse::<Era>().unwrap(), e);
        }
        assert_eq!("prague".parse::<Era>().unwrap(), Era::Recent);
        assert!("frontier".parse::<Era>().is_err());
    }

    #[test]
    fn extreme_block_numbers_do_not_overflow() {
        for era in [Era::London, Era::Recent] {
            for start in [0, u64::MAX - 2] {
                let cfg = GenConfig {
                    blocks: 2,
                    start_block: start,
                    seed: 1,
                    txs_per_block: Some(3),
                    era,
                    chain_id: u64::MAX,
                };
                let chain = generate_chain(&cfg);
                assert_eq!(chain.blocks[0].number, start);
                assert_eq!(chain.blocks[1].parent_hash, chain.blocks[0].hash);
            }
        }
        assert_eq!(
            block_hash(1, 0),
            generate_chain(&GenConfig {
                blocks: 1,
                start_block: 0,
                ..GenConfig::default()
            })
            .blocks[0]
                .hash
        );
    }

    #[test]
    fn timestamps_increase() {
        for n in [1u64, 15_537_393, 15_537_394, 23_000_000] {
            assert!(timestamp(n + 1) > timestamp(n) || timestamp(n) == 1_438_269_988);
        }
    }
}
