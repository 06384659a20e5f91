//! Plugging your own code into an export or a stream: [`CallbackSink`] calls a function per
//! decoded batch (what ethereum-etl's `AnkrBlockchainStreamer(callback=...)` does per block
//! range), and [`items`] gives typed access to a batch's rows: each row's JSON bytes as an
//! [`Item`] that parses into a [`sonic_rs::Value`] ([`Item::json`]) or, borrowing from the row,
//! into the small typed views [`BlockItem`], [`TransactionItem`], [`LogItem`],
//! [`TokenTransferItem`] and [`ReorgItem`] ([`Item::parse`]). Typed access needs
//! [`RowFormat::Json`](crate::RowFormat) rows (the default).

use crate::msg::{DecodedBatch, Entity};
use crate::sink::{Sink, SinkError};

/// Why a [`CallbackSink`] failed: the callback's own error, with the blocks it was given.
#[derive(Debug, thiserror::Error)]
pub enum CallbackSinkError {
    #[error("the callback failed on blocks {start}..={end}")]
    Failed {
        start: u64,
        end: u64,
        #[source]
        source: BoxError,
    },
}

impl From<CallbackSinkError> for SinkError {
    fn from(e: CallbackSinkError) -> SinkError {
        SinkError::new("callback", e)
    }
}
use serde::Deserialize;
pub use sonic_rs::RawNumber;
use std::borrow::Cow;
use std::time::Duration;

/// Errors a callback returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Sink`] that calls `f` with every batch, in block order. A batch is durable once `f`
/// returned `Ok`; an `Err` stops the run with that error (naming the blocks).
pub struct CallbackSink<F> {
    f: F,
    done: Vec<u64>,
}

impl<F> CallbackSink<F>
where
    F: FnMut(&DecodedBatch) -> Result<(), BoxError> + Send,
{
    pub fn new(f: F) -> CallbackSink<F> {
        CallbackSink {
            f,
            done: Vec::new(),
        }
    }
}

impl<F> Sink for CallbackSink<F>
where
    F: FnMut(&DecodedBatch) -> Result<(), BoxError> + Send,
{
    fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
        (self.f)(&batch).map_err(|source| {
            SinkError::from(CallbackSinkError::Failed {
                start: batch.start,
                end: batch.end,
                source,
            })
        })?;
        self.done.push(batch.seq);
        Ok(())
    }

    fn poll(&mut self, _: Duration, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        durable.append(&mut self.done);
        Ok(())
    }

    fn finish(&mut self, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        durable.append(&mut self.done);
        Ok(())
    }
}

/// One row of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item<'a> {
    pub entity: Entity,
    /// The block the row belongs to.
    pub block: u64,
    /// The serialized row, terminator included.
    pub bytes: &'a [u8],
}

/// A row that does not parse as asked.
#[derive(Debug, thiserror::Error)]
#[error("{} row of block {block} does not parse", entity.item_type())]
pub struct ItemError {
    pub entity: Entity,
    pub block: u64,
    #[source]
    pub source: sonic_rs::Error,
}

impl<'a> Item<'a> {
    /// The row without its line terminator.
    pub fn text(&self) -> &'a str {
        let s = std::str::from_utf8(self.bytes).unwrap_or("");
        s.trim_end_matches(['\n', '\r'])
    }

    /// The row as a JSON value.
    pub fn json(&self) -> Result<sonic_rs::Value, ItemError> {
        sonic_rs::from_slice(self.bytes).map_err(|source| self.error(source))
    }

    /// The row as a typed view borrowing from it (e.g. [`TransactionItem`]).
    pub fn parse<T: Deserialize<'a>>(&self) -> Result<T, ItemError> {
        sonic_rs::from_slice(self.bytes).map_err(|source| self.error(source))
    }

    fn error(&self, source: sonic_rs::Error) -> ItemError {
        ItemError {
            entity: self.entity,
            block: self.block,
            source,
        }
    }
}

/// The rows of `entity` in `batch`, in (block, index) order.
pub fn items(batch: &DecodedBatch, entity: Entity) -> impl Iterator<Item = Item<'_>> + '_ {
    batch.rows(entity).iter().map(move |(block, bytes)| Item {
        entity,
        block,
        bytes,
    })
}

/// A `block` stream item (the commonly used fields).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BlockItem<'a> {
    pub number: u64,
    #[serde(borrow)]
    pub hash: Cow<'a, str>,
    #[serde(borrow)]
    pub parent_hash: Cow<'a, str>,
    #[serde(borrow)]
    pub miner: Option<Cow<'a, str>>,
    pub timestamp: u64,
    pub transaction_count: u64,
    pub gas_limit: u64,
    pub gas_used: u64,
    pub base_fee_per_gas: Option<u64>,
}

/// A `transaction` stream item (the commonly used fields; `value` is in wei and may not fit
/// 64 bits: see [`to_u256`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TransactionItem<'a> {
    #[serde(borrow)]
    pub hash: Cow<'a, str>,
    pub nonce: u64,
    pub block_number: u64,
    #[serde(borrow)]
    pub block_hash: Cow<'a, str>,
    pub transaction_index: u64,
    #[serde(borrow)]
    pub from_address: Cow<'a, str>,
    #[serde(borrow)]
    pub to_address: Option<Cow<'a, str>>,
    pub value: RawNumber,
    pub gas: u64,
    pub gas_price: Option<u64>,
    #[serde(borrow)]
    pub input: Cow<'a, str>,
    pub receipt_status: Option<u64>,
}

/// A `log` stream item.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LogItem<'a> {
    pub log_index: u64,
    #[serde(borrow)]
    pub transaction_hash: Cow<'a, str>,
    pub transaction_index: u64,
    #[serde(borrow)]
    pub address: Cow<'a, str>,
    #[serde(borrow)]
    pub data: Cow<'a, str>,
    #[serde(borrow)]
    pub topics: Vec<Cow<'a, str>>,
    pub block_number: u64,
    #[serde(borrow)]
    pub block_hash: Cow<'a, str>,
}

/// A `token_transfer` stream item (`value`: see [`to_u256`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TokenTransferItem<'a> {
    #[serde(borrow)]
    pub token_address: Cow<'a, str>,
    #[serde(borrow)]
    pub from_address: Cow<'a, str>,
    #[serde(borrow)]
    pub to_address: Cow<'a, str>,
    pub value: RawNumber,
    #[serde(borrow)]
    pub transaction_hash: Cow<'a, str>,
    pub log_index: u64,
    pub block_number: u64,
    #[serde(borrow)]
    pub block_hash: Cow<'a, str>,
}

/// A `reorg` stream item ([`crate::stream::reorg`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ReorgItem<'a> {
    pub block_number: u64,
    #[serde(borrow)]
    pub orphaned_hash: Cow<'a, str>,
    #[serde(borrow)]
    pub new_hash: Cow<'a, str>,
    pub depth: u64,
}

/// A JSON integer of any size (`value` fields) as a 256-bit integer.
pub fn to_u256(n: &RawNumber) -> Option<ruint::aliases::U256> {
    ruint::aliases::U256::from_str_radix(n.as_str(), 10).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{BatchCounts, RowBuf, RowFormat};

    fn batch() -> DecodedBatch {
        let mut rows: [RowBuf; Entity::COUNT] = Default::default();
        let tx = r#"{"type":"transaction","hash":"0xaa","nonce":5,"transaction_index":0,"from_address":"0x01","to_address":null,"value":123456789012345678901234567890,"gas":21000,"gas_price":7,"input":"0x","block_timestamp":1,"block_number":9,"block_hash":"0xbb","receipt_status":1}"#;
        rows[Entity::Transactions as usize]
            .data
            .extend_from_slice(format!("{tx}\n").as_bytes());
        rows[Entity::Transactions as usize].finish_row(9);
        DecodedBatch {
            seq: 0,
            start: 9,
            end: 9,
            format: RowFormat::Json,
            blocks: Vec::new(),
            rows,
            counts: BatchCounts::default(),
        }
    }

    #[test]
    fn typed_views_borrow_and_keep_big_numbers() {
        let b = batch();
        let all: Vec<Item<'_>> = items(&b, Entity::Transactions).collect();
        assert_eq!(all.len(), 1);
        let tx: TransactionItem<'_> = all[0].parse().unwrap();
        assert_eq!(tx.block_number, 9);
        assert_eq!(tx.to_address, None);
        assert!(matches!(tx.hash, Cow::Borrowed("0xaa")));
        assert_eq!(tx.value.as_str(), "123456789012345678901234567890");
        assert_eq!(
            to_u256(&tx.value).unwrap().to_string(),
            "123456789012345678901234567890"
        );
        let v = all[0].json().unwrap();
        use sonic_rs::JsonValueTrait;
        assert_eq!(v["gas"].as_u64(), Some(21000));
        assert!(all[0].text().ends_with('}'));
        let e = all[0].parse::<LogItem<'_>>().unwrap_err();
        assert!(e.to_string().contains("transaction row of block 9"), "{e}");
    }

    #[test]
    fn callback_errors_name_the_blocks() {
        let mut s = CallbackSink::new(|_: &DecodedBatch| Err("boom".into()));
        let e = s.write(batch()).unwrap_err();
        assert!(crate::pipeline::run::error_chain(&e).contains("blocks 9..=9: boom"));
        let mut n = 0;
        let mut ok = CallbackSink::new(|_: &DecodedBatch| {
            n += 1;
            Ok(())
        });
        ok.write(batch()).unwrap();
        let mut d = Vec::new();
        ok.finish(&mut d).unwrap();
        assert_eq!(d, vec![0]);
    }
}
