//! The CPU stage: borrowed, zero-copy sonic-rs parsing of one [`RawBatch`] body, id matching
//! and validation, the receipt join, log and token-transfer decoding, and row serialization
//! straight from borrowed slices into a [`DecodedBatch`].
//!
//! # Output
//!
//! [`RowFormat::Json`] rows are ethereum-etl 2.4.2 stream items (`ethereumetl stream`, which
//! its Kafka exporter sends): compact JSON, `\n`-terminated, keys in ethereum-etl's order,
//! ethetl's extra fields appended after `item_timestamp`. [`RowFormat::Csv`] rows are
//! ethereum-etl's export columns in its header order, then ethetl's appended columns
//! ([`csv_header`]), with Python `csv` quoting and CRLF line ends. Field lists: see the entity
//! modules ([`block`], [`transaction`], [`receipt`], [`log`], [`token_transfer`]).
//!
//! # Validation
//!
//! Answers are matched to calls by `id` ([`crate::rpc::batch::call_for_id`]), in any order;
//! a missing, duplicate or unknown id is an error. Then, per block: the block `number` is the
//! one requested; with receipts, there are as many receipts as transactions,
//! `receipts[i].transactionHash == transactions[i].hash`, and every transaction's, receipt's
//! and log's `blockHash` (which must be present on receipts and logs) is the block's hash, and
//! a log's `transactionHash`, when present, is its receipt's. Receipts are then joined to
//! transactions by index. Any failure rejects the whole batch; see
//! [`DecodeError::is_retryable`].
//!
//! # Deliberate differences from ethereum-etl 2.4.2
//!
//! 1. A numeric field that is not `0x` followed by hex digits (or is wider than 256 bits) is
//!    an error for the batch; ethereum-etl prints `Not a hex string` to stdout and copies the
//!    raw string into the number field. `0x` with no digits is such an error too, and so is a
//!    number without the `0x` prefix (which Python's `int(x, 16)` would still read as hex).
//! 2. Token transfers: a `Transfer` log is decoded only when every topic it uses is `0x` + 64
//!    hex digits and its data is whole 32-byte hex words. ethereum-etl emits a 2-byte topic as
//!    an address, counts a trailing partial data word (so 16-byte data passes), and copies
//!    non-hex data into `value`; ethetl skips such logs and counts them in
//!    [`BatchCounts::malformed_transfers`](crate::msg::BatchCounts).
//! 3. Token transfers gain ERC-1155 `TransferSingle`/`TransferBatch` rows (ethereum-etl has
//!    none) and the appended `token_standard`, `token_id`, `operator`, `batch_index` fields.
//!    The `item_id` of a `TransferBatch` row ends in `_<batch_index>` so ids stay unique.
//!    `Transfer` layouts other than ERC-20 (3 topics + 1 word) and ERC-721 (4 topics) are
//!    emitted as ethereum-etl does, with `token_standard` null (see [`token_transfer`]).
//! 4. CSV `withdrawals`: a non-empty list is written as a valid JSON array
//!    (`[{"index":…},…]`); ethereum-etl writes the objects comma-joined without brackets.
//!    An empty list is an empty cell in both.
//! 5. `l1_fee_scalar` that is not a finite decimal number is an error; ethereum-etl writes
//!    the raw string (or `Infinity`/`NaN`, which is not valid JSON).
//! 6. Transactions, receipts, logs and transfers take `block_number`/`block_hash` from the
//!    block they were validated against (equal to their own fields whenever those are present;
//!    ethereum-etl writes the item's own, possibly missing, fields). Erigon's extra
//!    `blockTimestamp` on transactions and logs is ignored, as ethereum-etl does.
//! 7. Appended fields ethereum-etl does not export: block `parent_beacon_block_root,
//!    requests_hash, mix_hash, uncles`; transaction `chain_id, access_list,
//!    authorization_list, y_parity, v, r, s, receipt_gas_used_for_l1,
//!    receipt_l1_block_number`; receipt `gas_used_for_l1, l1_block_number`. In CSV,
//!    `access_list` and `authorization_list` cells hold JSON arrays. `r` and `s` stay hex
//!    strings (signature bytes); `v`, `y_parity`, `chain_id` are integers.
//! 8. A `receipt` stream item exists (ethereum-etl streams none); see [`receipt`].
//! 9. A batch answer that fails validation is rejected as a whole; ethereum-etl does not
//!    match answers by id nor check that receipts belong to the block.

pub mod block;
pub mod dataset;
pub mod hex;
pub mod log;
pub mod model;
pub mod receipt;
pub mod reorg;
pub mod token_transfer;
pub mod transaction;
pub mod write;

mod batch;

use crate::msg::{BatchCounts, DecodedBatch, Entity, EntitySet, RawBatch, RowBuf, RowFormat};
use std::fmt;

pub use token_transfer::{Decoded, Malformed, Transfer};
pub use write::{FieldError, ValueError};

/// What to produce from a raw batch.
#[derive(Clone, Copy, Debug)]
pub struct DecodeOptions {
    pub entities: EntitySet,
    pub format: RowFormat,
}

/// The block range of the batch an error belongs to (unknown for bodies decoded outside a
/// batch, e.g. by [`parse_only`] or [`decode_receipts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Option<(u64, u64)>);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            Some((s, e)) => write!(f, "blocks {s}..={e}"),
            None => f.write_str("response"),
        }
    }
}

/// Which item of a block an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    Block,
    Transaction(usize),
    Receipt(usize),
    Log { tx_index: usize, log: usize },
}

/// Where in the answer: block number (when known) and item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub block: Option<u64>,
    pub item: Item,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.block {
            Some(b) => write!(f, "block {b}")?,
            None => f.write_str("receipts")?,
        }
        match self.item {
            Item::Block => Ok(()),
            Item::Transaction(i) => write!(f, ", transaction {i}"),
            Item::Receipt(i) => write!(f, ", receipt {i}"),
            Item::Log { tx_index, log } => write!(f, ", receipt {tx_index}, log {log}"),
        }
    }
}

fn code_text(code: &Option<i64>) -> String {
    code.map_or_else(|| "no code".to_owned(), |c| format!("code {c}"))
}

/// Why a raw batch could not be decoded. Says which block / call / tx index and keeps the cause.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not (complete) JSON: truncated, garbled, an HTML error page.
    #[error("{span}: response body ({len} bytes) is not valid JSON")]
    Json {
        span: Span,
        len: usize,
        #[source]
        source: sonic_rs::Error,
    },
    /// JSON nested deeper than [`crate::json_depth::DECODE_DEPTH`] (refused before parsing:
    /// the parser would overflow its stack).
    #[error("{span}: response body ({len} bytes) is not a usable answer")]
    TooDeep {
        span: Span,
        len: usize,
        #[source]
        source: crate::json_depth::TooDeep,
    },
    /// Valid JSON, but not shaped like a batch answer (and no single call could be blamed).
    #[error("{span}: response is not shaped like a JSON-RPC batch answer")]
    Shape {
        span: Span,
        #[source]
        source: sonic_rs::Error,
    },
    /// One call's `result` does not have the expected fields or types.
    #[error("block {block}: the answer to {method} is malformed")]
    ResultShape {
        block: u64,
        method: &'static str,
        #[source]
        source: sonic_rs::Error,
    },
    /// One call's `result` is of the wrong JSON kind (e.g. an array for a block).
    #[error("block {block}: {method} returned {got}, expected {expected}")]
    ResultKind {
        block: u64,
        method: &'static str,
        got: &'static str,
        expected: &'static str,
    },
    /// The node answered the whole batch with one error object.
    #[error("{span}: the node rejected the batch ({}): {message}", code_text(.code))]
    BatchRejected {
        span: Span,
        code: Option<i64>,
        message: String,
    },
    /// A single answer object without an error where a batch array was expected.
    #[error("{span}: the response is a single object, not a batch array")]
    NotABatch { span: Span },
    #[error("{span}: an answer has id {id}, which matches no call of the request")]
    UnknownId { span: Span, id: String },
    #[error("block {block}: more than one answer to {method} (id {id})")]
    DuplicateId {
        block: u64,
        method: &'static str,
        id: u64,
    },
    #[error("block {block}: no answer to {method}")]
    MissingAnswer { block: u64, method: &'static str },
    /// A JSON-RPC `error` object answered the call.
    #[error("block {block}: {method} failed ({}): {message}", code_text(.code))]
    Rpc {
        block: u64,
        method: &'static str,
        code: Option<i64>,
        message: String,
    },
    #[error("block {block}: {method} returned null (the node may not have this block yet)")]
    NullResult { block: u64, method: &'static str },
    #[error("block {block}: inconsistent answer: eth_getBlockByNumber returned block {got}")]
    WrongBlock { block: u64, got: u64 },
    #[error("block {block}: inconsistent answer: {txs} transactions but {receipts} receipts")]
    ReceiptCount {
        block: u64,
        txs: usize,
        receipts: usize,
    },
    #[error(
        "block {block}, transaction {tx_index}: inconsistent answer: receipt is for {receipt_hash}, transaction is {tx_hash}"
    )]
    ReceiptOrder {
        block: u64,
        tx_index: usize,
        tx_hash: String,
        receipt_hash: String,
    },
    #[error("{at}: inconsistent answer: block hash {}, but the block is {expected}", .got.as_deref().unwrap_or("missing"))]
    BlockHash {
        at: At,
        expected: String,
        got: Option<String>,
    },
    #[error(
        "{at}: inconsistent answer: log of transaction {got}, but its receipt is for {expected}"
    )]
    LogTransaction {
        at: At,
        expected: String,
        got: String,
    },
    /// A value that cannot be converted (non-hex quantity, non-numeric `l1FeeScalar`).
    #[error("{at}: bad value")]
    Field {
        at: At,
        #[source]
        source: FieldError,
    },
    /// The job itself is impossible (`end < start`).
    #[error("invalid job: blocks {start}..={end}")]
    InvalidJob { start: u64, end: u64 },
}

impl DecodeError {
    /// Whether asking the node again may succeed (node-side errors, `null` results for blocks
    /// not yet indexed, inconsistent answers), as opposed to a bug or an impossible input.
    ///
    /// Retryable: a truncated or non-JSON body, a batch rejected as a whole, missing /
    /// duplicate / unknown ids, JSON-RPC error objects (except `-32601` method not found,
    /// which no retry fixes), `null` results, and every inconsistent answer (wrong block,
    /// receipts count or order, block hashes). Not retryable: well-formed JSON of the wrong
    /// shape, values that cannot be converted, an invalid job.
    pub fn is_retryable(&self) -> bool {
        use DecodeError::*;
        match self {
            Json { .. }
            | TooDeep { .. }
            | BatchRejected { .. }
            | NotABatch { .. }
            | UnknownId { .. }
            | DuplicateId { .. }
            | MissingAnswer { .. }
            | NullResult { .. }
            | WrongBlock { .. }
            | ReceiptCount { .. }
            | ReceiptOrder { .. }
            | BlockHash { .. }
            | LogTransaction { .. } => true,
            Rpc { code, .. } => *code != Some(-32601),
            Shape { .. }
            | ResultShape { .. }
            | ResultKind { .. }
            | Field { .. }
            | InvalidJob { .. } => false,
        }
    }

    /// The block the error is about, when it is about one block.
    pub fn block(&self) -> Option<u64> {
        use DecodeError::*;
        match self {
            ResultShape { block, .. }
            | ResultKind { block, .. }
            | DuplicateId { block, .. }
            | MissingAnswer { block, .. }
            | Rpc { block, .. }
            | NullResult { block, .. }
            | WrongBlock { block, .. }
            | ReceiptCount { block, .. }
            | ReceiptOrder { block, .. } => Some(*block),
            BlockHash { at, .. } | LogTransaction { at, .. } | Field { at, .. } => at.block,
            _ => None,
        }
    }
}

/// Decodes one raw batch into serialized rows.
///
/// `counts`: `blocks`, `transactions`, `receipts` and `logs` count what the answers hold
/// (whether or not their entity was requested; receipts and logs only with receipts);
/// `token_transfers` (rows written) and `malformed_transfers` are counted only when token
/// transfers are requested; `rpc_bytes` is the body length.
pub fn decode_batch(raw: &RawBatch, opts: &DecodeOptions) -> Result<DecodedBatch, DecodeError> {
    batch::decode(raw, opts)
}

/// Parses `body` (a batch answer) into the same borrowed structs as [`decode_batch`] and does
/// nothing else: the benchmark's parse limit. Returns the number of transactions seen.
pub fn parse_only(body: &[u8]) -> Result<usize, DecodeError> {
    batch::parse_only(body)
}

/// Rows decoded from receipts that come without their block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiptRows {
    /// Indexed by `Entity as usize`; only `Receipts`, `Logs`, `TokenTransfers` are filled.
    pub rows: [RowBuf; Entity::COUNT],
    pub counts: BatchCounts,
}

/// Decodes receipts that come without their block (`eth_getTransactionReceipt` results, or an
/// `eth_getBlockReceipts` array): `json` is one receipt object or an array of them. Writes the
/// requested receipt, log and token-transfer rows. `block_number`/`block_hash` come from each
/// receipt and log itself; `block_timestamp` (JSON only) is `timestamp` when given, else null.
/// No block-level validation is done (there is no block to check against).
pub fn decode_receipts(
    json: &[u8],
    opts: &DecodeOptions,
    timestamp: Option<u64>,
) -> Result<ReceiptRows, DecodeError> {
    batch::decode_receipts(json, opts, timestamp)
}

/// The CSV header line (CRLF-terminated) for `entity`: ethereum-etl's columns, then ethetl's
/// appended ones (its [`dataset::Dataset::columns`]).
pub fn csv_header(entity: Entity) -> &'static str {
    dataset::csv_header(entity)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body just inside the decoder's depth limit decodes (or is refused) on a thread with the
    /// stack the pipeline gives its decode threads; one level more is refused before parsing.
    #[test]
    fn nesting_up_to_the_limit_fits_the_decode_stack() {
        use crate::json_depth::{DECODE_DEPTH, PARSE_STACK};
        let body = |result_depth: usize| {
            let deep = format!("{}{}", "[".repeat(result_depth), "]".repeat(result_depth));
            format!(
                r#"[{{"jsonrpc":"2.0","id":0,"result":{deep}}},{{"jsonrpc":"2.0","id":1,"result":{deep}}}]"#
            )
        };
        // The batch array and the answer object are two levels.
        let at_limit = body(DECODE_DEPTH - 2);
        let over = body(DECODE_DEPTH - 1);
        let outcome = std::thread::Builder::new()
            .stack_size(PARSE_STACK)
            .spawn(move || {
                let a = parse_only(at_limit.as_bytes()).err();
                let b = parse_only(over.as_bytes()).err();
                (a.map(|e| e.to_string()), b.map(|e| e.to_string()))
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
        let (a, b) = outcome;
        assert!(!a.unwrap_or_default().contains("nested"));
        let b = b.expect("refused");
        assert!(b.contains("not a usable answer"), "{b}");
    }

    #[test]
    fn errors_and_batches_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<DecodeError>();
        send_sync::<DecodedBatch>();
    }

    #[test]
    fn csv_headers_are_crlf_terminated_and_unique() {
        for e in Entity::ALL {
            let h = csv_header(e);
            let cols: Vec<&str> = h.strip_suffix("\r\n").unwrap().split(',').collect();
            let mut sorted = cols.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), cols.len(), "{e:?}");
            assert!(!h[..h.len() - 2].contains(['\r', '\n', ' ']));
        }
    }

    #[test]
    fn error_messages_say_where() {
        let e = DecodeError::Rpc {
            block: 18_000_000,
            method: "eth_getBlockReceipts",
            code: Some(-32000),
            message: "block receipts not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "block 18000000: eth_getBlockReceipts failed (code -32000): block receipts not found"
        );
        let e = DecodeError::BlockHash {
            at: At {
                block: Some(5),
                item: Item::Log {
                    tx_index: 2,
                    log: 7,
                },
            },
            expected: "0xa".into(),
            got: None,
        };
        assert_eq!(
            e.to_string(),
            "block 5, receipt 2, log 7: inconsistent answer: block hash missing, but the block is 0xa"
        );
        assert!(e.is_retryable());
    }
}
