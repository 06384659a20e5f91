//! Receipt rows (ethetl's optional `receipts` entity).
//!
//! Columns are ethereum-etl's receipt export, in its order: `transaction_hash,
//! transaction_index, block_hash, block_number, cumulative_gas_used, gas_used,
//! contract_address, root, status, effective_gas_price, l1_fee, l1_gas_used, l1_gas_price,
//! l1_fee_scalar, blob_gas_price, blob_gas_used`, then ethetl's appended Arbitrum fields
//! `gas_used_for_l1, l1_block_number`.
//!
//! Stream item layout (ethereum-etl has no receipt stream item; this one follows the log
//! item's pattern): `type` = `"receipt"`, the 16 export fields, `block_timestamp`,
//! `item_id` = `receipt_<transaction hash>`, `item_timestamp`, then the appended fields.

use super::dataset::{
    nullable as opt, order, required as req, Dataset, Field, FieldType::*, GET_BLOCK, GET_RECEIPTS,
};
use super::model::Receipt;
use super::write::{write_row, FieldError, V};
use crate::msg::{Entity, RowBuf, RowFormat};

const FIELDS: &[Field] = &[
    req("transaction_hash", Hex),
    opt("transaction_index", Integer),
    opt("block_hash", Hex),
    opt("block_number", Integer),
    opt("cumulative_gas_used", Integer),
    opt("gas_used", Integer),
    opt("contract_address", Hex),
    opt("root", Hex),
    opt("status", Integer),
    opt("effective_gas_price", U256),
    opt("l1_fee", U256),
    opt("l1_gas_used", U256),
    opt("l1_gas_price", U256),
    opt("l1_fee_scalar", Float),
    opt("blob_gas_price", U256),
    opt("blob_gas_used", Integer),
    opt("gas_used_for_l1", U256),
    opt("l1_block_number", Integer),
    // Stream items only.
    opt("block_timestamp", Integer),
    req("item_id", Text),
    opt("item_timestamp", Timestamp),
];

/// Receipts: `eth_getBlockReceipts`, with the block's time.
pub const DATASET: Dataset = Dataset {
    entity: Entity::Receipts,
    methods: &[GET_BLOCK, GET_RECEIPTS],
    fields: FIELDS,
    csv_len: 18,
    json: &order(
        FIELDS,
        [
            "transaction_hash",
            "transaction_index",
            "block_hash",
            "block_number",
            "cumulative_gas_used",
            "gas_used",
            "contract_address",
            "root",
            "status",
            "effective_gas_price",
            "l1_fee",
            "l1_gas_used",
            "l1_gas_price",
            "l1_fee_scalar",
            "blob_gas_price",
            "blob_gas_used",
            "block_timestamp",
            "item_id",
            "item_timestamp",
            "gas_used_for_l1",
            "l1_block_number",
        ],
    ),
};

/// Which block a receipt, log or transfer row belongs to, as written in its row.
#[derive(Clone, Copy, Debug)]
pub struct BlockCtx<'x> {
    /// `block_number` field value.
    pub number: V<'x>,
    /// `block_hash` field value.
    pub hash: V<'x>,
    /// Block time, for `block_timestamp` and `item_timestamp` (null when unknown).
    pub timestamp: Option<u64>,
    /// The block number recorded in the row's [`crate::msg::RowMeta`].
    pub row_block: u64,
}

impl BlockCtx<'_> {
    pub fn time(&self) -> V<'static> {
        self.timestamp.map_or(V::Null, V::Time)
    }
}

/// Writes one receipt row.
pub fn write<'x>(
    format: RowFormat,
    out: &mut RowBuf,
    scratch: &mut Vec<u8>,
    r: &'x Receipt<'x>,
    ctx: &BlockCtx<'x>,
) -> Result<(), FieldError> {
    let hash = r.transaction_hash.as_str();
    let values = [
        V::Str(hash),
        V::qty(&r.transaction_index),
        ctx.hash,
        ctx.number,
        V::qty(&r.cumulative_gas_used),
        V::qty(&r.gas_used),
        V::lower(&r.contract_address),
        V::str(&r.root),
        V::qty(&r.status),
        V::qty(&r.effective_gas_price),
        V::qty(&r.l1_fee),
        V::qty(&r.l1_gas_used),
        V::qty(&r.l1_gas_price),
        r.l1_fee_scalar.as_ref().map_or(V::Null, V::Float),
        V::qty(&r.blob_gas_price),
        V::qty(&r.blob_gas_used),
        V::qty(&r.gas_used_for_l1),
        V::qty(&r.l1_block_number),
        V::u64_opt(ctx.timestamp),
        V::ItemId("receipt_", hash, None, None),
        ctx.time(),
    ];
    write_row(&DATASET, format, out, scratch, &values, ctx.row_block)
}
