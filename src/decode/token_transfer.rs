//! Token transfers decoded from logs: ethereum-etl's ERC-20/ERC-721 `Transfer` rule, plus
//! ERC-1155 `TransferSingle`/`TransferBatch`. A log either is no transfer, is malformed
//! (skipped and counted, never a wrong row), or yields rows; decoding never allocates.
//!
//! `Transfer(address,address,uint256)` (topic0 `0xddf252ad…`, compared case-insensitively as
//! ethereum-etl does): the topics and the 32-byte words of `data` must number exactly 4, and
//! the words are read as `[sig, from, to, value]`:
//! - 3 topics + 1 word: ERC-20, `token_standard` `"erc20"`;
//! - 4 topics + 0 words: ERC-721, `"erc721"`; `value` is the token id (as in ethereum-etl)
//!   and `token_id` carries it too;
//! - 2 topics + 2 words or 1 topic + 3 words (unindexed events such as CryptoKitties'):
//!   emitted as ethereum-etl does, with `token_standard` null, because the event does not tell
//!   an ERC-20 amount from an ERC-721 token id.
//!
//! `TransferSingle(operator, from, to, id, value)` and `TransferBatch(operator, from, to,
//! ids[], values[])` (4 topics; data ABI-encoded): `"erc1155"`, `value` = amount, `token_id`,
//! `operator`, and for batches one row per (id, value) pair with `batch_index` 0, 1, …
//!
//! Addresses are the last 20 bytes of their 32-byte word, lowercased. `token_address` is the
//! log address, lowercased.

use super::dataset::{
    nullable as opt, order, required as req, Dataset, Field, FieldType::*, GET_BLOCK, GET_RECEIPTS,
};
use super::hex::is_hex_digits;
use super::model::{Log, Topics};
use super::receipt::BlockCtx;
use super::write::{write_row, FieldError, V};
use crate::msg::{Entity, RowBuf, RowFormat};

/// `keccak256("Transfer(address,address,uint256)")`.
pub const TRANSFER_TOPIC: &str =
    "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";
/// `keccak256("TransferSingle(address,address,address,uint256,uint256)")`.
pub const TRANSFER_SINGLE_TOPIC: &str =
    "0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62";
/// `keccak256("TransferBatch(address,address,address,uint256[],uint256[])")`.
pub const TRANSFER_BATCH_TOPIC: &str =
    "0x4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb";

const FIELDS: &[Field] = &[
    opt("token_address", Hex),
    req("from_address", Hex),
    req("to_address", Hex),
    req("value", U256),
    req("transaction_hash", Hex),
    req("log_index", Integer),
    opt("block_number", Integer),
    opt("token_standard", Text),
    opt("token_id", U256),
    opt("operator", Hex),
    opt("batch_index", Integer),
    // Stream items only.
    opt("block_timestamp", Integer),
    opt("block_hash", Hex),
    req("item_id", Text),
    opt("item_timestamp", Timestamp),
];

/// Token transfers: decoded from the logs of the receipts.
pub const DATASET: Dataset = Dataset {
    entity: Entity::TokenTransfers,
    methods: &[GET_BLOCK, GET_RECEIPTS],
    fields: FIELDS,
    csv_len: 11,
    json: &order(
        FIELDS,
        [
            "token_address",
            "from_address",
            "to_address",
            "value",
            "transaction_hash",
            "log_index",
            "block_number",
            "block_timestamp",
            "block_hash",
            "item_id",
            "item_timestamp",
            "token_standard",
            "token_id",
            "operator",
            "batch_index",
        ],
    ),
};

/// One decoded transfer. Hex fields are bare digits borrowed from the log (checked hex).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer<'x> {
    /// `"erc20"`, `"erc721"`, `"erc1155"`, or `None` for an ambiguous `Transfer` layout.
    pub standard: Option<&'static str>,
    /// 40 hex digits.
    pub from: &'x str,
    /// 40 hex digits.
    pub to: &'x str,
    /// 64 hex digits: the amount (ERC-20/1155) or the token id (ERC-721, as ethereum-etl).
    pub value: &'x str,
    /// 64 hex digits (ERC-721/1155).
    pub token_id: Option<&'x str>,
    /// 40 hex digits (ERC-1155).
    pub operator: Option<&'x str>,
    /// Position inside an ERC-1155 `TransferBatch`.
    pub batch_index: Option<u64>,
}

/// Why a transfer-shaped log was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("Transfer with {topics} topics and {words} data words (need 4 in all)")]
    WordCount { topics: usize, words: usize },
    #[error("ERC-1155 event with {0} topics (need 4)")]
    TopicCount(usize),
    #[error("topic {0} is not 0x followed by 64 hex digits")]
    Topic(usize),
    #[error("data is not 0x followed by whole 32-byte hex words")]
    Data,
    #[error("ERC-1155 data has {0} words (TransferSingle needs 2, TransferBatch at least 2)")]
    DataLen(usize),
    #[error("ERC-1155 TransferBatch offset or length points outside the data")]
    Offset,
    #[error("ERC-1155 TransferBatch has {ids} ids but {values} values")]
    LengthMismatch { ids: usize, values: usize },
}

/// An ERC-1155 `TransferBatch`, checked; rows are read on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch<'x> {
    operator: &'x str,
    from: &'x str,
    to: &'x str,
    /// Data hex digits without `0x`.
    data: &'x str,
    /// Byte offsets of the first id and the first value.
    ids: usize,
    values: usize,
    len: usize,
}

impl<'x> Batch<'x> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Transfer<'x> {
        Transfer {
            standard: Some("erc1155"),
            from: self.from,
            to: self.to,
            value: word_at(self.data, self.values + 32 * i),
            token_id: Some(word_at(self.data, self.ids + 32 * i)),
            operator: Some(self.operator),
            batch_index: Some(i as u64),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Transfer<'x>> + '_ {
        (0..self.len).map(|i| self.get(i))
    }
}

/// What a log holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'x> {
    NotTransfer,
    Malformed(Malformed),
    One(Transfer<'x>),
    Batch(Batch<'x>),
}

/// The 64 hex digits of the word at byte offset `off` of `data` (bounds checked by the caller).
fn word_at(data: &str, off: usize) -> &str {
    &data[2 * off..2 * off + 64]
}

/// The bare 64 digits of a topic that is `0x` + 64 hex digits.
fn topic_word<'x>(topics: &'x Topics<'x>, i: usize) -> Result<&'x str, Malformed> {
    let t = topics.get(i).ok_or(Malformed::Topic(i))?;
    let b = t.as_bytes();
    if b.len() == 66 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') && is_hex_digits(&b[2..]) {
        Ok(&t[2..])
    } else {
        Err(Malformed::Topic(i))
    }
}

/// The data digits without `0x`, checked to be whole hex words. Missing or `0x` is empty.
fn data_words(data: Option<&str>) -> Result<&str, Malformed> {
    let Some(d) = data else { return Ok("") };
    let b = d.as_bytes();
    if b.len() < 2 || b[0] != b'0' || (b[1] != b'x' && b[1] != b'X') {
        return Err(Malformed::Data);
    }
    let digits = &d[2..];
    if digits.len() % 64 != 0 || !is_hex_digits(digits.as_bytes()) {
        return Err(Malformed::Data);
    }
    Ok(digits)
}

/// The last 40 digits of a 64-digit word (the address part).
fn addr(word: &str) -> &str {
    &word[24..]
}

/// Reads a word of `data` at byte offset `off` as a small unsigned integer (an ABI offset or
/// length); `None` if it is outside the data or does not fit in 32 bits.
fn small_word(data: &str, off: usize) -> Option<usize> {
    let end = off.checked_add(32)?;
    if 2 * end > data.len() {
        return None;
    }
    let w = word_at(data, off);
    let (hi, lo) = w.split_at(56);
    if hi.bytes().any(|b| b != b'0') {
        return None;
    }
    usize::from_str_radix(lo, 16).ok()
}

/// Decodes the transfer(s) a log holds.
pub fn decode<'x>(topics: &'x Topics<'x>, data: Option<&'x str>) -> Decoded<'x> {
    let Some(t0) = topics.get(0) else {
        return Decoded::NotTransfer;
    };
    if is_topic(t0, TRANSFER_TOPIC) {
        decode_transfer(topics, data).unwrap_or_else(Decoded::Malformed)
    } else if is_topic(t0, TRANSFER_SINGLE_TOPIC) {
        decode_single(topics, data).unwrap_or_else(Decoded::Malformed)
    } else if is_topic(t0, TRANSFER_BATCH_TOPIC) {
        decode_batch(topics, data).unwrap_or_else(Decoded::Malformed)
    } else {
        Decoded::NotTransfer
    }
}

/// Case-insensitive `t == topic` (a `0x` + 64 hex digit constant). Nodes send lowercase, so
/// the exact comparison decides matches; a short case-insensitive prefix check rejects almost
/// every other topic before the full comparison.
#[inline]
pub(super) fn is_topic(t: &str, topic: &str) -> bool {
    t.len() == topic.len()
        && (t == topic
            || (t.as_bytes()[..10].eq_ignore_ascii_case(&topic.as_bytes()[..10])
                && t.eq_ignore_ascii_case(topic)))
}

fn decode_transfer<'x>(
    topics: &'x Topics<'x>,
    data: Option<&'x str>,
) -> Result<Decoded<'x>, Malformed> {
    let d = data_words(data)?;
    let nt = topics.len();
    let nw = d.len() / 64;
    if nt + nw != 4 {
        return Err(Malformed::WordCount {
            topics: nt,
            words: nw,
        });
    }
    // Words 1..=3 of topics ++ data.
    let mut w = [""; 3];
    for (i, slot) in w.iter_mut().enumerate() {
        let k = i + 1;
        *slot = if k < nt {
            topic_word(topics, k)?
        } else {
            word_at(d, 32 * (k - nt))
        };
    }
    let (standard, token_id) = match nt {
        3 => (Some("erc20"), None),
        4 => (Some("erc721"), Some(w[2])),
        _ => (None, None),
    };
    Ok(Decoded::One(Transfer {
        standard,
        from: addr(w[0]),
        to: addr(w[1]),
        value: w[2],
        token_id,
        operator: None,
        batch_index: None,
    }))
}

/// `[operator, from, to]` of an ERC-1155 event (exactly 4 topics).
fn erc1155_topics<'x>(topics: &'x Topics<'x>) -> Result<[&'x str; 3], Malformed> {
    if topics.len() != 4 {
        return Err(Malformed::TopicCount(topics.len()));
    }
    Ok([
        addr(topic_word(topics, 1)?),
        addr(topic_word(topics, 2)?),
        addr(topic_word(topics, 3)?),
    ])
}

fn decode_single<'x>(
    topics: &'x Topics<'x>,
    data: Option<&'x str>,
) -> Result<Decoded<'x>, Malformed> {
    let [operator, from, to] = erc1155_topics(topics)?;
    let d = data_words(data)?;
    if d.len() != 128 {
        return Err(Malformed::DataLen(d.len() / 64));
    }
    Ok(Decoded::One(Transfer {
        standard: Some("erc1155"),
        from,
        to,
        value: word_at(d, 32),
        token_id: Some(word_at(d, 0)),
        operator: Some(operator),
        batch_index: None,
    }))
}

fn decode_batch<'x>(
    topics: &'x Topics<'x>,
    data: Option<&'x str>,
) -> Result<Decoded<'x>, Malformed> {
    let [operator, from, to] = erc1155_topics(topics)?;
    let d = data_words(data)?;
    let nbytes = d.len() / 2;
    if nbytes < 64 {
        return Err(Malformed::DataLen(d.len() / 64));
    }
    // An ABI `uint256[]` at `off`: its length word, then that many words.
    let array = |head: usize| -> Result<(usize, usize), Malformed> {
        let off = small_word(d, head).ok_or(Malformed::Offset)?;
        let len = small_word(d, off).ok_or(Malformed::Offset)?;
        let start = off + 32;
        let end = len
            .checked_mul(32)
            .and_then(|n| n.checked_add(start))
            .ok_or(Malformed::Offset)?;
        if end > nbytes {
            return Err(Malformed::Offset);
        }
        Ok((start, len))
    };
    let (ids, n_ids) = array(0)?;
    let (values, n_values) = array(32)?;
    if n_ids != n_values {
        return Err(Malformed::LengthMismatch {
            ids: n_ids,
            values: n_values,
        });
    }
    Ok(Decoded::Batch(Batch {
        operator,
        from,
        to,
        data: d,
        ids,
        values,
        len: n_ids,
    }))
}

/// Writes one transfer row. `log_index` and `tx_hash` as for the log's own row.
#[allow(clippy::too_many_arguments)]
pub fn write<'x>(
    format: RowFormat,
    out: &mut RowBuf,
    scratch: &mut Vec<u8>,
    log: &'x Log<'x>,
    t: &Transfer<'x>,
    log_index: u64,
    tx_hash: &'x str,
    ctx: &BlockCtx<'x>,
) -> Result<(), FieldError> {
    let values = [
        V::lower(&log.address),
        V::Addr(t.from),
        V::Addr(t.to),
        V::Word(t.value),
        V::Str(tx_hash),
        V::U64(log_index),
        ctx.number,
        t.standard.map_or(V::Null, V::Str),
        t.token_id.map_or(V::Null, V::Word),
        t.operator.map_or(V::Null, V::Addr),
        V::u64_opt(t.batch_index),
        V::u64_opt(ctx.timestamp),
        ctx.hash,
        V::ItemId("token_transfer_", tx_hash, Some(log_index), t.batch_index),
        ctx.time(),
    ];
    write_row(&DATASET, format, out, scratch, &values, ctx.row_block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruint::aliases::U256;

    fn topics(ts: &[&str]) -> Topics<'static> {
        let json = format!(
            "[{}]",
            ts.iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        // Leaked so the borrowed topics live for the whole test.
        sonic_rs::from_str::<Topics<'static>>(Box::leak(json.into_boxed_str())).unwrap()
    }

    /// A 32-byte word holding `addr` (20 bytes) right-aligned, built independently.
    fn addr_word(addr: &str) -> String {
        format!("{:0>64}", addr)
    }

    fn u256_word(v: U256) -> String {
        format!("{v:064x}")
    }

    const A: &str = "00000000000000000000000000000000000000aa";
    const B: &str = "bBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    fn t(w: &str) -> String {
        format!("0x{w}")
    }

    #[test]
    fn erc20() {
        let ts = topics(&[TRANSFER_TOPIC, &t(&addr_word(A)), &t(&addr_word(B))]);
        let data = t(&u256_word(U256::from(3_000_000_000_000_000_000u64)));
        let Decoded::One(x) = decode(&ts, Some(&data)) else {
            panic!()
        };
        assert_eq!(x.standard, Some("erc20"));
        assert_eq!(x.from, A);
        assert_eq!(x.to, B);
        assert_eq!(
            U256::from_str_radix(x.value, 16).unwrap(),
            U256::from(3e18 as u64)
        );
        assert_eq!(x.token_id, None);
        assert_eq!(x.operator, None);
    }

    #[test]
    fn erc20_max_value_and_uppercase_topic0() {
        let ts = topics(&[
            &TRANSFER_TOPIC.to_uppercase().replacen("0X", "0x", 1),
            &t(&addr_word(A)),
            &t(&addr_word(B)),
        ]);
        let data = t(&"f".repeat(64));
        let Decoded::One(x) = decode(&ts, Some(&data)) else {
            panic!()
        };
        assert_eq!(U256::from_str_radix(x.value, 16).unwrap(), U256::MAX);
    }

    #[test]
    fn erc721() {
        let id = u256_word(U256::from(1234u64));
        let ts = topics(&[
            TRANSFER_TOPIC,
            &t(&addr_word(A)),
            &t(&addr_word(B)),
            &t(&id),
        ]);
        for data in [None, Some("0x")] {
            let Decoded::One(x) = decode(&ts, data) else {
                panic!()
            };
            assert_eq!(x.standard, Some("erc721"));
            assert_eq!(x.value, id);
            assert_eq!(x.token_id, Some(id.as_str()));
            assert_eq!((x.from, x.to), (A, B));
        }
    }

    #[test]
    fn unindexed_layouts() {
        // CryptoKitties: 1 topic + 3 words.
        let ts = topics(&[TRANSFER_TOPIC]);
        let data = format!(
            "0x{}{}{}",
            addr_word(A),
            addr_word(C),
            u256_word(U256::from(7u64))
        );
        let Decoded::One(x) = decode(&ts, Some(&data)) else {
            panic!()
        };
        assert_eq!((x.standard, x.from, x.to), (None, A, C));
        assert_eq!(x.value, u256_word(U256::from(7u64)));
        // 2 topics + 2 words.
        let ts = topics(&[TRANSFER_TOPIC, &t(&addr_word(B))]);
        let data = format!("0x{}{}", addr_word(C), u256_word(U256::from(9u64)));
        let Decoded::One(x) = decode(&ts, Some(&data)) else {
            panic!()
        };
        assert_eq!((x.standard, x.from, x.to), (None, B, C));
    }

    #[test]
    fn erc1155_single() {
        let ts = topics(&[
            TRANSFER_SINGLE_TOPIC,
            &t(&addr_word(C)),
            &t(&addr_word(A)),
            &t(&addr_word(B)),
        ]);
        let data = format!(
            "0x{}{}",
            u256_word(U256::from(42u64)),
            u256_word(U256::from(5u64))
        );
        let Decoded::One(x) = decode(&ts, Some(&data)) else {
            panic!()
        };
        assert_eq!(x.standard, Some("erc1155"));
        assert_eq!((x.operator, x.from, x.to), (Some(C), A, B));
        assert_eq!(x.token_id, Some(u256_word(U256::from(42u64)).as_str()));
        assert_eq!(x.value, u256_word(U256::from(5u64)));
        assert_eq!(x.batch_index, None);
    }

    /// ABI encoding of `(uint256[] ids, uint256[] values)`, written out by hand.
    fn abi_two_arrays(ids: &[u64], values: &[u64]) -> String {
        let w = |v: usize| u256_word(U256::from(v));
        let off_ids = 64;
        let off_values = off_ids + 32 + 32 * ids.len();
        let mut s = String::from("0x");
        s += &w(off_ids);
        s += &w(off_values);
        s += &w(ids.len());
        for &i in ids {
            s += &w(i as usize);
        }
        s += &w(values.len());
        for &v in values {
            s += &w(v as usize);
        }
        s
    }

    fn batch_topics() -> Topics<'static> {
        topics(&[
            TRANSFER_BATCH_TOPIC,
            &t(&addr_word(C)),
            &t(&addr_word(A)),
            &t(&addr_word(B)),
        ])
    }

    #[test]
    fn erc1155_batch() {
        let ts = batch_topics();
        let data = abi_two_arrays(&[1, 2, 3], &[10, 20, 30]);
        let Decoded::Batch(b) = decode(&ts, Some(&data)) else {
            panic!()
        };
        let rows: Vec<_> = b.iter().collect();
        assert_eq!(rows.len(), 3);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.batch_index, Some(i as u64));
            assert_eq!(r.token_id, Some(u256_word(U256::from(i + 1)).as_str()));
            assert_eq!(r.value, u256_word(U256::from(10 * (i + 1))));
            assert_eq!((r.operator, r.from, r.to), (Some(C), A, B));
        }
        let empty = abi_two_arrays(&[], &[]);
        let Decoded::Batch(b) = decode(&ts, Some(&empty)) else {
            panic!()
        };
        assert!(b.is_empty());
    }

    #[test]
    fn malformed() {
        let w = |v: u64| u256_word(U256::from(v));
        let a = t(&addr_word(A));
        let b = t(&addr_word(B));
        let m = |ts: &[&str], data: Option<&str>| match decode(&topics(ts), data) {
            Decoded::Malformed(m) => m,
            other => panic!("{other:?}"),
        };
        // Wrong counts.
        assert_eq!(
            m(&[TRANSFER_TOPIC, &a, &b], None),
            Malformed::WordCount {
                topics: 3,
                words: 0
            }
        );
        assert_eq!(
            m(
                &[TRANSFER_TOPIC, &a, &b],
                Some(&format!("0x{}{}", w(1), w(2)))
            ),
            Malformed::WordCount {
                topics: 3,
                words: 2
            }
        );
        // Short (16-byte) data, odd length, non-hex, missing prefix.
        assert_eq!(
            m(
                &[TRANSFER_TOPIC, &a, &b],
                Some(&format!("0x{}", "1".repeat(32)))
            ),
            Malformed::Data
        );
        assert_eq!(
            m(&[TRANSFER_TOPIC, &a, &b], Some(&format!("0x{}1", w(1)))),
            Malformed::Data
        );
        assert_eq!(
            m(
                &[TRANSFER_TOPIC, &a, &b],
                Some(&format!("0x{}zz", "0".repeat(62)))
            ),
            Malformed::Data
        );
        assert_eq!(m(&[TRANSFER_TOPIC, &a, &b], Some(&w(1))), Malformed::Data);
        // Short topic (ethereum-etl would emit the 2-byte topic as an address).
        assert_eq!(
            m(&[TRANSFER_TOPIC, "0x1234", &b], Some(&t(&w(1)))),
            Malformed::Topic(1)
        );
        assert_eq!(
            m(
                &[TRANSFER_TOPIC, &a, &format!("0x{}", "g".repeat(64))],
                Some(&t(&w(1)))
            ),
            Malformed::Topic(2)
        );
        // ERC-1155.
        assert_eq!(
            m(
                &[TRANSFER_SINGLE_TOPIC, &a, &b],
                Some(&format!("0x{}{}", w(1), w(2)))
            ),
            Malformed::TopicCount(3)
        );
        assert_eq!(
            m(&[TRANSFER_SINGLE_TOPIC, &a, &b, &a], Some(&t(&w(1)))),
            Malformed::DataLen(1)
        );
        let bt = [TRANSFER_BATCH_TOPIC, a.as_str(), b.as_str(), a.as_str()];
        assert_eq!(
            m(&bt, Some(&abi_two_arrays(&[1, 2], &[1]))),
            Malformed::LengthMismatch { ids: 2, values: 1 }
        );
        // Offset past the end, huge length, offset not fitting.
        assert_eq!(
            m(&bt, Some(&format!("0x{}{}", w(4096), w(64)))),
            Malformed::Offset
        );
        assert_eq!(
            m(
                &bt,
                Some(&format!("0x{}{}{}", w(64), w(64), w(u32::MAX as u64)))
            ),
            Malformed::Offset
        );
        assert_eq!(
            m(&bt, Some(&format!("0x{}{}{}", "f".repeat(64), w(64), w(0)))),
            Malformed::Offset
        );
        // Truncated batch: declared 3 ids, data stops early.
        let mut short = abi_two_arrays(&[1, 2, 3], &[1, 2, 3]);
        short.truncate(short.len() - 64 * 4);
        assert_eq!(m(&bt, Some(&short)), Malformed::Offset);
        assert_eq!(m(&bt, Some("0x")), Malformed::DataLen(0));
    }

    #[test]
    fn not_transfers() {
        assert_eq!(decode(&topics(&[]), None), Decoded::NotTransfer);
        let other = format!("0x{}", "1".repeat(64));
        assert_eq!(decode(&topics(&[&other]), Some("0x")), Decoded::NotTransfer);
    }

    proptest::proptest! {
        /// Random data never panics and never yields a row from a log that is not 4 words.
        #[test]
        fn never_panics(ntopics in 0usize..6, data in "(0x)?[0-9a-fA-Fz]{0,400}", which in 0usize..3) {
            let sig = [TRANSFER_TOPIC, TRANSFER_SINGLE_TOPIC, TRANSFER_BATCH_TOPIC][which];
            let a = t(&addr_word(A));
            let mut ts = vec![sig];
            for _ in 1..ntopics { ts.push(&a); }
            let topics = topics(&ts);
            if let Decoded::Batch(b) = decode(&topics, Some(&data)) {
                for r in b.iter() { let _ = r; }
            }
        }
    }
}
