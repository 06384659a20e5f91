//! Block rows: ethereum-etl's block fields in its order (stream item: `type` first, `item_id`
//! and `item_timestamp` after `excess_blob_gas`), then ethetl's appended
//! `parent_beacon_block_root, requests_hash, mix_hash, uncles`. The fields are declared once
//! in [`DATASET`].

use super::dataset::{
    nullable as opt, order, required as req, Dataset, Field, FieldType::*, GET_BLOCK,
};
use super::model::Block;
use super::write::{write_row, FieldError, V};
use crate::msg::{Entity, RowBuf, RowFormat};

const FIELDS: &[Field] = &[
    req("number", Integer),
    req("hash", Hex),
    req("parent_hash", Hex),
    opt("nonce", Hex),
    opt("sha3_uncles", Hex),
    opt("logs_bloom", Hex),
    opt("transactions_root", Hex),
    opt("state_root", Hex),
    opt("receipts_root", Hex),
    opt("miner", Hex),
    opt("difficulty", U256),
    opt("total_difficulty", U256),
    opt("size", Integer),
    opt("extra_data", Hex),
    opt("gas_limit", Integer),
    opt("gas_used", Integer),
    req("timestamp", Integer),
    req("transaction_count", Integer),
    opt("base_fee_per_gas", U256),
    opt("withdrawals_root", Hex),
    req("withdrawals", Json),
    opt("blob_gas_used", Integer),
    opt("excess_blob_gas", Integer),
    opt("parent_beacon_block_root", Hex),
    opt("requests_hash", Hex),
    opt("mix_hash", Hex),
    req("uncles", List),
    // Stream items only.
    req("item_id", Text),
    req("item_timestamp", Timestamp),
];

/// Blocks: `eth_getBlockByNumber` alone.
pub const DATASET: Dataset = Dataset {
    entity: Entity::Blocks,
    methods: &[GET_BLOCK],
    fields: FIELDS,
    csv_len: 27,
    json: &order(
        FIELDS,
        [
            "number",
            "hash",
            "parent_hash",
            "nonce",
            "sha3_uncles",
            "logs_bloom",
            "transactions_root",
            "state_root",
            "receipts_root",
            "miner",
            "difficulty",
            "total_difficulty",
            "size",
            "extra_data",
            "gas_limit",
            "gas_used",
            "timestamp",
            "transaction_count",
            "base_fee_per_gas",
            "withdrawals_root",
            "withdrawals",
            "blob_gas_used",
            "excess_blob_gas",
            "item_id",
            "item_timestamp",
            "parent_beacon_block_root",
            "requests_hash",
            "mix_hash",
            "uncles",
        ],
    ),
};

/// Writes one block row. `number` and `timestamp` were already read (and checked) by the caller.
pub fn write(
    format: RowFormat,
    out: &mut RowBuf,
    scratch: &mut Vec<u8>,
    b: &Block<'_>,
    number: u64,
    timestamp: u64,
) -> Result<(), FieldError> {
    let hash = b.hash.as_str();
    let values = [
        V::U64(number),
        V::Str(hash),
        V::Str(b.parent_hash.as_str()),
        V::str(&b.nonce),
        V::str(&b.sha3_uncles),
        V::str(&b.logs_bloom),
        V::str(&b.transactions_root),
        V::str(&b.state_root),
        V::str(&b.receipts_root),
        V::lower(&b.miner),
        V::qty(&b.difficulty),
        V::qty(&b.total_difficulty),
        V::qty(&b.size),
        V::str(&b.extra_data),
        V::qty(&b.gas_limit),
        V::qty(&b.gas_used),
        V::U64(timestamp),
        V::U64(b.transactions.len() as u64),
        V::qty(&b.base_fee_per_gas),
        V::str(&b.withdrawals_root),
        V::Withdrawals(b.withdrawals.as_deref().unwrap_or(&[])),
        V::qty(&b.blob_gas_used),
        V::qty(&b.excess_blob_gas),
        V::str(&b.parent_beacon_block_root),
        V::str(&b.requests_hash),
        V::str(&b.mix_hash),
        V::strs_or_empty(&b.uncles),
        V::ItemId("block_", hash, None, None),
        V::Time(timestamp),
    ];
    write_row(&DATASET, format, out, scratch, &values, number)
}
