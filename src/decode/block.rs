//! Block rows: ethereum-etl's block fields in its order (stream item: `type` first, `item_id`
//! and `item_timestamp` after `excess_blob_gas`), then ethetl's appended
//! `parent_beacon_block_root, requests_hash, mix_hash, uncles`.

use super::model::Block;
use super::write::{FieldError, Row, V};
use crate::pipeline::msg::{RowBuf, RowFormat};

/// CSV header of block rows (CRLF-terminated).
pub const CSV_HEADER: &str = "number,hash,parent_hash,nonce,sha3_uncles,logs_bloom,\
transactions_root,state_root,receipts_root,miner,difficulty,total_difficulty,size,extra_data,\
gas_limit,gas_used,timestamp,transaction_count,base_fee_per_gas,withdrawals_root,withdrawals,\
blob_gas_used,excess_blob_gas,parent_beacon_block_root,requests_hash,mix_hash,uncles\r\n";

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
    let mut row = Row::begin(format, out, scratch, "block");
    row.fields(&[
        ("number", V::U64(number)),
        ("hash", V::Str(hash)),
        ("parent_hash", V::Str(b.parent_hash.as_str())),
        ("nonce", V::str(&b.nonce)),
        ("sha3_uncles", V::str(&b.sha3_uncles)),
        ("logs_bloom", V::str(&b.logs_bloom)),
        ("transactions_root", V::str(&b.transactions_root)),
        ("state_root", V::str(&b.state_root)),
        ("receipts_root", V::str(&b.receipts_root)),
        ("miner", V::lower(&b.miner)),
        ("difficulty", V::qty(&b.difficulty)),
        ("total_difficulty", V::qty(&b.total_difficulty)),
        ("size", V::qty(&b.size)),
        ("extra_data", V::str(&b.extra_data)),
        ("gas_limit", V::qty(&b.gas_limit)),
        ("gas_used", V::qty(&b.gas_used)),
        ("timestamp", V::U64(timestamp)),
        ("transaction_count", V::U64(b.transactions.len() as u64)),
        ("base_fee_per_gas", V::qty(&b.base_fee_per_gas)),
        ("withdrawals_root", V::str(&b.withdrawals_root)),
        (
            "withdrawals",
            V::Withdrawals(b.withdrawals.as_deref().unwrap_or(&[])),
        ),
        ("blob_gas_used", V::qty(&b.blob_gas_used)),
        ("excess_blob_gas", V::qty(&b.excess_blob_gas)),
    ])?;
    if row.is_json() {
        row.field("item_id", V::ItemId("block_", hash, None, None))?;
        row.field("item_timestamp", V::Time(timestamp))?;
    }
    row.fields(&[
        (
            "parent_beacon_block_root",
            V::str(&b.parent_beacon_block_root),
        ),
        ("requests_hash", V::str(&b.requests_hash)),
        ("mix_hash", V::str(&b.mix_hash)),
        ("uncles", V::strs_or_empty(&b.uncles)),
    ])?;
    row.end(number);
    Ok(())
}
