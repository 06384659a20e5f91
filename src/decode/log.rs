//! Log rows. CSV columns are ethereum-etl's log export (`log_index, transaction_hash,
//! transaction_index, block_hash, block_number, address, data, topics`); the stream item is
//! ethereum-etl's (`type, log_index, transaction_hash, transaction_index, address, data, topics,
//! block_number, block_timestamp, block_hash, item_id, item_timestamp`). `address` is passed
//! through as the node sent it; `topics` is a list (CSV: joined with `,`).

use super::model::Log;
use super::receipt::BlockCtx;
use super::write::{FieldError, Row, V};
use crate::pipeline::msg::{RowBuf, RowFormat};

/// CSV header of log rows (CRLF-terminated).
pub const CSV_HEADER: &str =
    "log_index,transaction_hash,transaction_index,block_hash,block_number,address,data,topics\r\n";

/// Writes one log row. `log_index` was read by the caller (it is part of `item_id`);
/// `tx_hash` is the log's transaction hash (the receipt's when the log lacks one).
#[allow(clippy::too_many_arguments)]
pub fn write<'x>(
    format: RowFormat,
    out: &mut RowBuf,
    scratch: &mut Vec<u8>,
    log: &'x Log<'x>,
    log_index: u64,
    tx_hash: &'x str,
    ctx: &BlockCtx<'x>,
) -> Result<(), FieldError> {
    let (t0, t1) = log.topics.parts();
    let mut row = Row::begin(format, out, scratch, "log");
    match format {
        RowFormat::Json => row.fields(&[
            ("log_index", V::U64(log_index)),
            ("transaction_hash", V::Str(tx_hash)),
            ("transaction_index", V::qty(&log.transaction_index)),
            ("address", V::str(&log.address)),
            ("data", V::str(&log.data)),
            ("topics", V::Strs(t0, t1)),
            ("block_number", ctx.number),
            ("block_timestamp", V::u64_opt(ctx.timestamp)),
            ("block_hash", ctx.hash),
            ("item_id", V::ItemId("log_", tx_hash, Some(log_index), None)),
            ("item_timestamp", ctx.time()),
        ])?,
        RowFormat::Csv => row.fields(&[
            ("log_index", V::U64(log_index)),
            ("transaction_hash", V::Str(tx_hash)),
            ("transaction_index", V::qty(&log.transaction_index)),
            ("block_hash", ctx.hash),
            ("block_number", ctx.number),
            ("address", V::str(&log.address)),
            ("data", V::str(&log.data)),
            ("topics", V::Strs(t0, t1)),
        ])?,
    }
    row.end(ctx.row_block);
    Ok(())
}
