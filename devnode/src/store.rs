//! Everything a dev node serves, held as pre-rendered bytes plus the indexes needed to answer
//! every method without re-serializing: blocks by number and hash, receipts by tx hash, and a
//! per-log index (byte range, address, topics) for `eth_getLogs`.
//!
//! Fixture files are kept byte-for-byte; a receipt, transaction or log handed out is an exact
//! slice of the file it came from. The only bytes the store builds itself for fixtures are the
//! hashes-only block (the file with its `transactions` array replaced by the transaction hashes).
//!
//! For a growing chain the store also has a visibility limit (blocks above it are unknown) and
//! can replace a run of blocks by another fork: replaced blocks that were visible stay reachable
//! by hash (as a node keeps side-chain blocks), their transactions leave the lookup index.

use super::generate::{Addr, GeneratedChain, H256};
use super::DevNodeError;
use serde::Deserialize;
use sonic_rs::{JsonValueTrait, LazyValue};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Shared, immutable bytes.
pub type Blob = Arc<Vec<u8>>;

/// A byte range inside a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One log: where its JSON object lies in the block's log source, plus what `eth_getLogs`
/// filters on. `topics[..n_topics]` are valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogMeta {
    pub span: Span,
    pub address: Addr,
    pub topics: [H256; 4],
    pub n_topics: u8,
}

/// Where a block's data came from (for error messages).
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    Generated,
    Fixture(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Generated => f.write_str("generated chain"),
            Origin::Fixture(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What the node knows about one block number. A fixture directory with only other files
/// (traces) still makes the number known (so receipts requests say "block receipts not found").
pub(crate) struct BlockEntry {
    pub number: u64,
    pub hash: Option<H256>,
    pub parent_hash: Option<H256>,
    /// `eth_getBlockByNumber(n, true)` result.
    pub full: Option<Blob>,
    /// `eth_getBlockByNumber(n, false)` result.
    pub hashes_only: Option<Blob>,
    /// `eth_getBlockReceipts(n)` result.
    pub receipts: Option<Blob>,
    /// Byte range of each receipt inside `receipts`, in tx order.
    pub receipt_spans: Vec<Span>,
    /// Byte range of each transaction object inside `full`, in block order.
    pub tx_spans: Vec<Span>,
    /// Transaction hashes in block order (from the block, else from the receipts).
    pub tx_hashes: Vec<H256>,
    /// The blob that `logs` spans point into (the receipts, or a stored `eth_getLogs` answer).
    pub log_source: Option<Blob>,
    pub logs: Vec<LogMeta>,
    pub origin: Origin,
}

/// Where a transaction lives: its block and its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxLoc {
    pub number: u64,
    pub index: u32,
}

/// All blocks, receipts and indexes of one node.
#[derive(Default)]
pub(crate) struct Store {
    pub blocks: BTreeMap<u64, BlockEntry>,
    pub by_hash: HashMap<H256, u64>,
    pub txs: HashMap<H256, TxLoc>,
    /// Fixture `eth_getTransactionReceipt/<hash>.json` files (used when the receipt is not
    /// part of a stored block's receipts).
    pub single_receipts: HashMap<H256, Blob>,
    /// Blocks replaced by a reorg after they had been visible, by hash.
    pub orphans: HashMap<H256, BlockEntry>,
    /// Growing chain: the highest visible block number (`None`: everything is visible).
    pub visible: Option<u64>,
}

impl Store {
    /// The highest stored block number (visible or not).
    pub fn highest(&self) -> Option<u64> {
        self.blocks.keys().next_back().copied()
    }

    /// The highest visible block number.
    pub fn highest_visible(&self) -> Option<u64> {
        match self.visible {
            None => self.highest(),
            Some(v) => self.blocks.range(..=v).next_back().map(|(n, _)| *n),
        }
    }

    fn limit(&self) -> u64 {
        self.visible.unwrap_or(u64::MAX)
    }

    /// The visible canonical block `n`.
    pub fn get(&self, n: u64) -> Option<&BlockEntry> {
        if n > self.limit() {
            return None;
        }
        self.blocks.get(&n)
    }

    /// Visible canonical blocks in `range`, ascending.
    pub fn visible_range(
        &self,
        lo: u64,
        hi: u64,
    ) -> impl DoubleEndedIterator<Item = (&u64, &BlockEntry)> {
        let hi = hi.min(self.limit());
        let range = if lo <= hi {
            self.blocks.range(lo..=hi)
        } else {
            self.blocks.range(0..0)
        };
        range
    }

    /// The number of the visible canonical block with hash `h`.
    pub fn number_of(&self, h: &H256) -> Option<u64> {
        self.by_hash.get(h).copied().filter(|n| *n <= self.limit())
    }

    /// A block by hash: visible canonical, or replaced by a reorg (as geth keeps side-chain
    /// blocks).
    pub fn by_hash_entry(&self, h: &H256) -> Option<&BlockEntry> {
        match self.number_of(h) {
            Some(n) => self.blocks.get(&n),
            None => self.orphans.get(h),
        }
    }

    /// Where the transaction `h` lives among visible canonical blocks.
    pub fn tx(&self, h: &H256) -> Option<(TxLoc, &BlockEntry)> {
        let loc = *self.txs.get(h)?;
        Some((loc, self.get(loc.number)?))
    }

    fn insert(&mut self, number: u64, entry: BlockEntry) -> Result<(), DevNodeError> {
        if let Some(prev) = self.blocks.get(&number) {
            return Err(DevNodeError::DuplicateBlock {
                number,
                first: prev.origin.to_string(),
                second: entry.origin.to_string(),
            });
        }
        self.index(number, &entry);
        self.blocks.insert(number, entry);
        Ok(())
    }

    fn index(&mut self, number: u64, entry: &BlockEntry) {
        if let Some(h) = entry.hash {
            self.by_hash.entry(h).or_insert(number);
        }
        for (i, h) in entry.tx_hashes.iter().enumerate() {
            self.txs.entry(*h).or_insert(TxLoc {
                number,
                index: i as u32,
            });
        }
    }

    fn unindex(&mut self, number: u64, entry: &BlockEntry) {
        if let Some(h) = entry.hash {
            if self.by_hash.get(&h) == Some(&number) {
                self.by_hash.remove(&h);
            }
        }
        for h in &entry.tx_hashes {
            if self.txs.get(h).is_some_and(|l| l.number == number) {
                self.txs.remove(h);
            }
        }
    }

    /// Adds a generated chain, moving its bytes in without copying.
    pub fn add_generated(&mut self, chain: GeneratedChain) -> Result<(), DevNodeError> {
        self.txs.reserve(chain.tx_count() as usize);
        for b in chain.blocks {
            self.insert(b.number, BlockEntry::generated(b))?;
        }
        Ok(())
    }

    /// Puts `entry` in place of the canonical block with its number (or adds it). A replaced
    /// block that was visible is kept as an orphan (reachable by hash only); one that was never
    /// visible is dropped.
    pub fn replace(&mut self, number: u64, entry: BlockEntry) {
        if let Some(old) = self.blocks.remove(&number) {
            self.unindex(number, &old);
            if number <= self.limit() {
                if let Some(h) = old.hash {
                    self.orphans.insert(h, old);
                }
            }
        }
        self.index(number, &entry);
        self.blocks.insert(number, entry);
    }

    /// Adds a fixture chain directory laid out as `<dir>/<block>/eth_getBlockByNumber.json`,
    /// `eth_getBlockReceipts.json`, `eth_getLogs.json`, `eth_getTransactionReceipt/<hash>.json`.
    /// Other files are ignored; directories whose name is not a number are skipped.
    pub fn add_fixture_dir(&mut self, dir: &Path) -> Result<(), DevNodeError> {
        let rd = std::fs::read_dir(dir).map_err(|source| DevNodeError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut dirs = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|source| DevNodeError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let name = ent.file_name();
            let Some(number) = name.to_str().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            if ent.path().is_dir() {
                dirs.push((number, ent.path()));
            }
        }
        if dirs.is_empty() {
            return Err(DevNodeError::FixtureShape {
                path: dir.to_path_buf(),
                detail: "no <block-number>/ directories (expected a chain directory such as \
                         fixtures/rpc/mainnet)"
                    .into(),
            });
        }
        dirs.sort();
        for (number, path) in dirs {
            self.add_fixture_block(number, &path)?;
        }
        Ok(())
    }

    fn add_fixture_block(&mut self, number: u64, dir: &Path) -> Result<(), DevNodeError> {
        let mut entry = BlockEntry {
            number,
            hash: None,
            parent_hash: None,
            full: None,
            hashes_only: None,
            receipts: None,
            receipt_spans: Vec::new(),
            tx_spans: Vec::new(),
            tx_hashes: Vec::new(),
            log_source: None,
            logs: Vec::new(),
            origin: Origin::Fixture(dir.to_path_buf()),
        };
        let block_path = dir.join("eth_getBlockByNumber.json");
        if let Some(bytes) = read_opt(&block_path)? {
            let idx = index_block(&bytes, &block_path)?;
            entry.hash = idx.hash;
            entry.parent_hash = idx.parent_hash;
            entry.hashes_only = Some(Arc::new(idx.hashes_only));
            entry.tx_spans = idx.tx_spans;
            entry.tx_hashes = idx.tx_hashes;
            entry.full = Some(Arc::new(bytes));
        }
        let receipts_path = dir.join("eth_getBlockReceipts.json");
        if let Some(bytes) = read_opt(&receipts_path)? {
            let idx = index_receipts(&bytes, &receipts_path)?;
            if entry.hash.is_none() {
                entry.hash = idx.block_hash;
            }
            if entry.tx_hashes.is_empty() {
                entry.tx_hashes = idx.tx_hashes;
            } else if entry.tx_hashes != idx.tx_hashes {
                return Err(shape(
                    &receipts_path,
                    "receipts do not match the block's transactions (hashes or order differ)"
                        .into(),
                ));
            }
            entry.receipt_spans = idx.spans;
            entry.logs = idx.logs;
            let blob = Arc::new(bytes);
            entry.log_source = Some(blob.clone());
            entry.receipts = Some(blob);
        } else {
            let logs_path = dir.join("eth_getLogs.json");
            if let Some(bytes) = read_opt(&logs_path)? {
                entry.logs = index_logs(&bytes, &bytes, &logs_path)?;
                entry.log_source = Some(Arc::new(bytes));
            }
        }
        let single_dir = dir.join("eth_getTransactionReceipt");
        if single_dir.is_dir() {
            let rd = std::fs::read_dir(&single_dir).map_err(|source| DevNodeError::Io {
                path: single_dir.clone(),
                source,
            })?;
            let mut files = Vec::new();
            for ent in rd {
                let ent = ent.map_err(|source| DevNodeError::Io {
                    path: single_dir.clone(),
                    source,
                })?;
                files.push(ent.path());
            }
            files.sort();
            for path in files {
                let Some(hash) = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(parse_h256)
                else {
                    continue;
                };
                if let Some(bytes) = read_opt(&path)? {
                    self.single_receipts.entry(hash).or_insert(Arc::new(bytes));
                }
            }
        }
        self.insert(number, entry)
    }
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, DevNodeError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DevNodeError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses `0x` + 64 hex digits (any case).
pub(crate) fn parse_h256(s: &str) -> Option<H256> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// Parses `0x` + 40 hex digits (any case).
pub(crate) fn parse_addr(s: &str) -> Option<Addr> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    let mut out = [0u8; 20];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// The byte range of `part` inside `whole` (`part` must be borrowed from `whole`).
fn span_in(whole: &[u8], part: &str, path: &Path) -> Result<Span, DevNodeError> {
    let base = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    let start = p.wrapping_sub(base);
    if p < base || start + part.len() > whole.len() || whole.len() > u32::MAX as usize {
        return Err(DevNodeError::FixtureShape {
            path: path.to_path_buf(),
            detail: "value is not a slice of the file (or the file exceeds 4 GiB)".into(),
        });
    }
    Ok(Span {
        start: start as u32,
        end: (start + part.len()) as u32,
    })
}

fn json_err(path: &Path) -> impl FnOnce(sonic_rs::Error) -> DevNodeError + '_ {
    move |source| DevNodeError::FixtureJson {
        path: path.to_path_buf(),
        source,
    }
}

impl BlockEntry {
    /// The entry for a generated block, moving its bytes in.
    pub fn generated(b: super::generate::GeneratedBlock) -> BlockEntry {
        let receipts = Arc::new(b.receipts_json);
        BlockEntry {
            number: b.number,
            hash: Some(b.hash),
            parent_hash: Some(b.parent_hash),
            full: Some(Arc::new(b.block_json)),
            hashes_only: Some(Arc::new(b.block_hashes_json)),
            receipt_spans: b.receipt_spans,
            tx_spans: b.tx_spans,
            tx_hashes: b.tx_hashes,
            log_source: Some(receipts.clone()),
            receipts: Some(receipts),
            logs: b.logs,
            origin: Origin::Generated,
        }
    }
}

#[derive(Deserialize)]
struct BlockHead<'a> {
    #[serde(borrow, default)]
    hash: Option<&'a str>,
    #[serde(borrow, rename = "parentHash", default)]
    parent_hash: Option<&'a str>,
    #[serde(borrow)]
    transactions: LazyValue<'a>,
}

/// What [`index_block`] finds in a hydrated block file.
struct BlockIndex {
    hash: Option<H256>,
    parent_hash: Option<H256>,
    /// The file with its `transactions` replaced by the transaction hashes.
    hashes_only: Vec<u8>,
    /// Byte range of each transaction object (empty if the file lists hashes only).
    tx_spans: Vec<Span>,
    tx_hashes: Vec<H256>,
}

#[derive(Deserialize)]
struct TxHead<'a> {
    #[serde(borrow)]
    hash: &'a str,
}

/// Indexes a hydrated block file: hashes, transaction spans and the hashes-only rendering.
fn index_block(bytes: &[u8], path: &Path) -> Result<BlockIndex, DevNodeError> {
    let head: BlockHead = sonic_rs::from_slice(bytes).map_err(json_err(path))?;
    let h256 = |what: &str, h: Option<&str>| -> Result<Option<H256>, DevNodeError> {
        match h {
            Some(h) => Ok(Some(parse_h256(h).ok_or_else(|| {
                shape(path, format!("{what} {h:?} is not 32 bytes of hex"))
            })?)),
            None => Ok(None),
        }
    };
    let hash = h256("block hash", head.hash)?;
    let parent_hash = h256("parentHash", head.parent_hash)?;
    let raw = head.transactions.as_raw_str();
    let span = span_in(bytes, raw, path)?;
    let mut out = Vec::with_capacity(bytes.len().min(4096) + 70 * 512);
    let mut tx_spans = Vec::new();
    let mut tx_hashes = Vec::new();
    out.extend_from_slice(&bytes[..span.start as usize]);
    out.push(b'[');
    for (i, tx) in sonic_rs::to_array_iter(raw).enumerate() {
        let tx = tx.map_err(json_err(path))?;
        if i > 0 {
            out.push(b',');
        }
        let hash_str = if tx.is_str() {
            out.extend_from_slice(tx.as_raw_str().as_bytes());
            tx.as_str().unwrap_or_default().to_string()
        } else {
            let head: TxHead = sonic_rs::from_str(tx.as_raw_str()).map_err(json_err(path))?;
            tx_spans.push(span_in(bytes, tx.as_raw_str(), path)?);
            out.push(b'"');
            out.extend_from_slice(head.hash.as_bytes());
            out.push(b'"');
            head.hash.to_string()
        };
        tx_hashes.push(parse_h256(&hash_str).ok_or_else(|| {
            shape(
                path,
                format!("transaction {i}: hash {hash_str:?} is not 32 bytes of hex"),
            )
        })?);
    }
    out.push(b']');
    out.extend_from_slice(&bytes[span.end as usize..]);
    Ok(BlockIndex {
        hash,
        parent_hash,
        hashes_only: out,
        tx_spans,
        tx_hashes,
    })
}

#[derive(Deserialize)]
struct ReceiptHead<'a> {
    #[serde(borrow, rename = "transactionHash")]
    transaction_hash: &'a str,
    #[serde(borrow, rename = "blockHash", default)]
    block_hash: Option<&'a str>,
    #[serde(borrow, default)]
    logs: Option<LazyValue<'a>>,
}

#[derive(Deserialize)]
struct LogHead<'a> {
    #[serde(borrow)]
    address: &'a str,
    #[serde(borrow)]
    topics: Vec<&'a str>,
}

struct ReceiptsIndex {
    block_hash: Option<H256>,
    tx_hashes: Vec<H256>,
    spans: Vec<Span>,
    logs: Vec<LogMeta>,
}

fn shape(path: &Path, detail: String) -> DevNodeError {
    DevNodeError::FixtureShape {
        path: path.to_path_buf(),
        detail,
    }
}

fn index_receipts(bytes: &[u8], path: &Path) -> Result<ReceiptsIndex, DevNodeError> {
    let mut idx = ReceiptsIndex {
        block_hash: None,
        tx_hashes: Vec::new(),
        spans: Vec::new(),
        logs: Vec::new(),
    };
    for (i, r) in sonic_rs::to_array_iter(bytes).enumerate() {
        let r = r.map_err(json_err(path))?;
        let raw = r.as_raw_str();
        idx.spans.push(span_in(bytes, raw, path)?);
        let head: ReceiptHead = sonic_rs::from_str(raw).map_err(json_err(path))?;
        let tx = parse_h256(head.transaction_hash).ok_or_else(|| {
            shape(
                path,
                format!(
                    "receipt {i}: transactionHash {:?} is not 32 bytes",
                    head.transaction_hash
                ),
            )
        })?;
        idx.tx_hashes.push(tx);
        if idx.block_hash.is_none() {
            idx.block_hash = head.block_hash.and_then(parse_h256);
        }
        if let Some(logs) = head.logs {
            if logs.is_array() {
                idx.logs
                    .extend(index_logs(bytes, logs.as_raw_str().as_bytes(), path)?);
            }
        }
    }
    Ok(idx)
}

/// Indexes the logs of the JSON array `arr`, which is a slice of `file`.
fn index_logs(file: &[u8], arr: &[u8], path: &Path) -> Result<Vec<LogMeta>, DevNodeError> {
    let mut out = Vec::new();
    for (i, lg) in sonic_rs::to_array_iter(arr).enumerate() {
        let lg = lg.map_err(json_err(path))?;
        let raw = lg.as_raw_str();
        let span = span_in(file, raw, path)?;
        let head: LogHead = sonic_rs::from_str(raw).map_err(json_err(path))?;
        let address = parse_addr(head.address).ok_or_else(|| {
            shape(
                path,
                format!("log {i}: address {:?} is not 20 bytes", head.address),
            )
        })?;
        let mut topics = [[0u8; 32]; 4];
        if head.topics.len() > 4 {
            return Err(shape(
                path,
                format!("log {i}: {} topics (at most 4)", head.topics.len()),
            ));
        }
        for (j, t) in head.topics.iter().enumerate() {
            topics[j] = parse_h256(t)
                .ok_or_else(|| shape(path, format!("log {i}: topic {j} {t:?} is not 32 bytes")))?;
        }
        out.push(LogMeta {
            span,
            address,
            topics,
            n_topics: head.topics.len() as u8,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_only_block_replaces_only_the_transactions() {
        let (ha, hc) = (
            format!("0x{}", "AB".repeat(32)),
            format!("0x{}", "cd".repeat(32)),
        );
        let block_hash = format!("0x{}01", "00".repeat(31));
        let file = format!(
            r#"{{"hash":"{block_hash}","transactions":[{{"a":1,"hash":"{ha}"}},{{"hash":"{hc}","b":[1,2]}}],"z":1}}"#
        );
        let idx = index_block(file.as_bytes(), Path::new("t")).unwrap();
        assert_eq!(idx.hash.unwrap()[31], 1);
        assert_eq!(idx.parent_hash, None);
        assert_eq!(idx.tx_hashes, vec![[0xab; 32], [0xcd; 32]]);
        assert_eq!(
            &file[idx.tx_spans[1].range()],
            format!(r#"{{"hash":"{hc}","b":[1,2]}}"#)
        );
        assert_eq!(
            std::str::from_utf8(&idx.hashes_only).unwrap(),
            format!(r#"{{"hash":"{block_hash}","transactions":["{ha}","{hc}"],"z":1}}"#)
        );
    }

    #[test]
    fn receipts_index_points_at_exact_slices() {
        let h1 = format!("0x{}", "11".repeat(32));
        let t0 = format!("0x{}", "aa".repeat(32));
        let file = format!(
            r#"[ {{"transactionHash":"{h1}","logs":[ {{"address":"0x{a}","topics":["{t0}"],"data":"0x"}} ]}} ]"#,
            a = "Ab".repeat(20)
        );
        let idx = index_receipts(file.as_bytes(), Path::new("t")).unwrap();
        assert_eq!(idx.tx_hashes, vec![[0x11; 32]]);
        let r = &file[idx.spans[0].range()];
        assert!(r.starts_with('{') && r.ends_with('}') && r.contains("logs"));
        let l = &file[idx.logs[0].span.range()];
        assert!(
            l.starts_with("{\"address\"") && l.ends_with("\"data\":\"0x\"}"),
            "{l}"
        );
        assert_eq!(idx.logs[0].address, [0xab; 20]);
        assert_eq!(idx.logs[0].n_topics, 1);
    }

    #[test]
    fn bad_fixtures_are_errors_not_panics() {
        assert!(index_block(b"{", Path::new("t")).is_err());
        assert!(index_receipts(b"[{\"transactionHash\":\"0x12\"}]", Path::new("t")).is_err());
        assert!(index_logs(b"[{}]", b"[{}]", Path::new("t")).is_err());
    }
}
