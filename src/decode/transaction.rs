//! Transaction rows, enriched with their receipt as ethereum-etl's stream does.
//!
//! JSON (stream item) key order is ethereum-etl's enriched order: `type, hash, nonce,
//! transaction_index, from_address, to_address, value, gas, gas_price, input, block_timestamp,
//! block_number, block_hash, max_fee_per_gas, max_priority_fee_per_gas, transaction_type,
//! max_fee_per_blob_gas, blob_versioned_hashes, receipt_* (12), item_id, item_timestamp`.
//! CSV columns are ethereum-etl's export order (`hash, nonce, block_hash, block_number,
//! transaction_index, ...`), then the 12 `receipt_*` columns. Both end with ethetl's appended
//! `chain_id, access_list, authorization_list, y_parity, v, r, s, receipt_gas_used_for_l1,
//! receipt_l1_block_number`. Without receipts every `receipt_*` field is null.

use super::model::{Receipt, Tx};
use super::write::{FieldError, Row, V};
use crate::pipeline::msg::{RowBuf, RowFormat};

/// CSV header of transaction rows (CRLF-terminated).
pub const CSV_HEADER: &str = "hash,nonce,block_hash,block_number,transaction_index,\
from_address,to_address,value,gas,gas_price,input,block_timestamp,max_fee_per_gas,\
max_priority_fee_per_gas,transaction_type,max_fee_per_blob_gas,blob_versioned_hashes,\
receipt_cumulative_gas_used,receipt_gas_used,receipt_contract_address,receipt_root,\
receipt_status,receipt_effective_gas_price,receipt_l1_fee,receipt_l1_gas_used,\
receipt_l1_gas_price,receipt_l1_fee_scalar,receipt_blob_gas_price,receipt_blob_gas_used,\
chain_id,access_list,authorization_list,y_parity,v,r,s,receipt_gas_used_for_l1,\
receipt_l1_block_number\r\n";

/// Writes one transaction row. `block_hash`/`block_number`/`timestamp` are the block's
/// (checked against the transaction's own `blockHash` by the caller).
#[allow(clippy::too_many_arguments)]
pub fn write<'x>(
    format: RowFormat,
    out: &mut RowBuf,
    scratch: &mut Vec<u8>,
    tx: &'x Tx<'x>,
    receipt: Option<&'x Receipt<'x>>,
    block_number: u64,
    block_hash: &str,
    timestamp: u64,
) -> Result<(), FieldError> {
    let hash = tx.hash.as_str();
    let r = |f: fn(&'x Receipt<'x>) -> V<'x>| receipt.map_or(V::Null, f);
    let receipt_fields = [
        (
            "receipt_cumulative_gas_used",
            r(|r| V::qty(&r.cumulative_gas_used)),
        ),
        ("receipt_gas_used", r(|r| V::qty(&r.gas_used))),
        (
            "receipt_contract_address",
            r(|r| V::lower(&r.contract_address)),
        ),
        ("receipt_root", r(|r| V::str(&r.root))),
        ("receipt_status", r(|r| V::qty(&r.status))),
        (
            "receipt_effective_gas_price",
            r(|r| V::qty(&r.effective_gas_price)),
        ),
        ("receipt_l1_fee", r(|r| V::qty(&r.l1_fee))),
        ("receipt_l1_gas_used", r(|r| V::qty(&r.l1_gas_used))),
        ("receipt_l1_gas_price", r(|r| V::qty(&r.l1_gas_price))),
        (
            "receipt_l1_fee_scalar",
            r(|r| r.l1_fee_scalar.as_ref().map_or(V::Null, V::Float)),
        ),
        ("receipt_blob_gas_price", r(|r| V::qty(&r.blob_gas_price))),
        ("receipt_blob_gas_used", r(|r| V::qty(&r.blob_gas_used))),
    ];
    let appended = [
        ("chain_id", V::qty(&tx.chain_id)),
        (
            "access_list",
            tx.access_list.as_deref().map_or(V::Null, V::AccessList),
        ),
        (
            "authorization_list",
            tx.authorization_list.as_deref().map_or(V::Null, V::Auths),
        ),
        ("y_parity", V::qty(&tx.y_parity)),
        ("v", V::qty(&tx.v)),
        ("r", V::str(&tx.r)),
        ("s", V::str(&tx.s)),
        ("receipt_gas_used_for_l1", r(|r| V::qty(&r.gas_used_for_l1))),
        ("receipt_l1_block_number", r(|r| V::qty(&r.l1_block_number))),
    ];

    let mut row = Row::begin(format, out, scratch, "transaction");
    match format {
        RowFormat::Json => {
            row.fields(&[
                ("hash", V::Str(hash)),
                ("nonce", V::qty(&tx.nonce)),
                ("transaction_index", V::qty(&tx.transaction_index)),
                ("from_address", V::lower(&tx.from)),
                ("to_address", V::lower(&tx.to)),
                ("value", V::qty(&tx.value)),
                ("gas", V::qty(&tx.gas)),
                ("gas_price", V::qty(&tx.gas_price)),
                ("input", V::str(&tx.input)),
                ("block_timestamp", V::U64(timestamp)),
                ("block_number", V::U64(block_number)),
                ("block_hash", V::Str(block_hash)),
                ("max_fee_per_gas", V::qty(&tx.max_fee_per_gas)),
                (
                    "max_priority_fee_per_gas",
                    V::qty(&tx.max_priority_fee_per_gas),
                ),
                ("transaction_type", V::qty(&tx.tx_type)),
                ("max_fee_per_blob_gas", V::qty(&tx.max_fee_per_blob_gas)),
                (
                    "blob_versioned_hashes",
                    V::strs_or_empty(&tx.blob_versioned_hashes),
                ),
            ])?;
            row.fields(&receipt_fields)?;
            row.field("item_id", V::ItemId("transaction_", hash, None, None))?;
            row.field("item_timestamp", V::Time(timestamp))?;
        }
        RowFormat::Csv => {
            row.fields(&[
                ("hash", V::Str(hash)),
                ("nonce", V::qty(&tx.nonce)),
                ("block_hash", V::Str(block_hash)),
                ("block_number", V::U64(block_number)),
                ("transaction_index", V::qty(&tx.transaction_index)),
                ("from_address", V::lower(&tx.from)),
                ("to_address", V::lower(&tx.to)),
                ("value", V::qty(&tx.value)),
                ("gas", V::qty(&tx.gas)),
                ("gas_price", V::qty(&tx.gas_price)),
                ("input", V::str(&tx.input)),
                ("block_timestamp", V::U64(timestamp)),
                ("max_fee_per_gas", V::qty(&tx.max_fee_per_gas)),
                (
                    "max_priority_fee_per_gas",
                    V::qty(&tx.max_priority_fee_per_gas),
                ),
                ("transaction_type", V::qty(&tx.tx_type)),
                ("max_fee_per_blob_gas", V::qty(&tx.max_fee_per_blob_gas)),
                (
                    "blob_versioned_hashes",
                    V::strs_or_empty(&tx.blob_versioned_hashes),
                ),
            ])?;
            row.fields(&receipt_fields)?;
        }
    }
    row.fields(&appended)?;
    row.end(block_number);
    Ok(())
}
