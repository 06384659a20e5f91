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

use super::model::Receipt;
use super::write::{FieldError, Row, V};
use crate::pipeline::msg::{RowBuf, RowFormat};

/// CSV header of receipt rows (CRLF-terminated).
pub const CSV_HEADER: &str = "transaction_hash,transaction_index,block_hash,block_number,\
cumulative_gas_used,gas_used,contract_address,root,status,effective_gas_price,l1_fee,\
l1_gas_used,l1_gas_price,l1_fee_scalar,blob_gas_price,blob_gas_used,gas_used_for_l1,\
l1_block_number\r\n";

/// Which block a receipt, log or transfer row belongs to, as written in its row.
#[derive(Clone, Copy, Debug)]
pub struct BlockCtx<'x> {
    /// `block_number` field value.
    pub number: V<'x>,
    /// `block_hash` field value.
    pub hash: V<'x>,
    /// Block time, for `block_timestamp` and `item_timestamp` (null when unknown).
    pub timestamp: Option<u64>,
    /// The block number recorded in the row's [`crate::pipeline::msg::RowMeta`].
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
    let mut row = Row::begin(format, out, scratch, "receipt");
    row.fields(&[
        ("transaction_hash", V::Str(hash)),
        ("transaction_index", V::qty(&r.transaction_index)),
        ("block_hash", ctx.hash),
        ("block_number", ctx.number),
        ("cumulative_gas_used", V::qty(&r.cumulative_gas_used)),
        ("gas_used", V::qty(&r.gas_used)),
        ("contract_address", V::lower(&r.contract_address)),
        ("root", V::str(&r.root)),
        ("status", V::qty(&r.status)),
        ("effective_gas_price", V::qty(&r.effective_gas_price)),
        ("l1_fee", V::qty(&r.l1_fee)),
        ("l1_gas_used", V::qty(&r.l1_gas_used)),
        ("l1_gas_price", V::qty(&r.l1_gas_price)),
        (
            "l1_fee_scalar",
            r.l1_fee_scalar.as_ref().map_or(V::Null, V::Float),
        ),
        ("blob_gas_price", V::qty(&r.blob_gas_price)),
        ("blob_gas_used", V::qty(&r.blob_gas_used)),
    ])?;
    if row.is_json() {
        row.fields(&[
            ("block_timestamp", V::u64_opt(ctx.timestamp)),
            ("item_id", V::ItemId("receipt_", hash, None, None)),
            ("item_timestamp", ctx.time()),
        ])?;
    }
    row.fields(&[
        ("gas_used_for_l1", V::qty(&r.gas_used_for_l1)),
        ("l1_block_number", V::qty(&r.l1_block_number)),
    ])?;
    row.end(ctx.row_block);
    Ok(())
}
