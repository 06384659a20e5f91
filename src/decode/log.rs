//! Log rows. CSV columns are ethereum-etl's log export (`log_index, transaction_hash,
//! transaction_index, block_hash, block_number, address, data, topics`); the stream item is
//! ethereum-etl's (`type, log_index, transaction_hash, transaction_index, address, data, topics,
//! block_number, block_timestamp, block_hash, item_id, item_timestamp`). `address` is passed
//! through as the node sent it; `topics` is a list (CSV: joined with `,`).

use super::dataset::{
    nullable as opt, order, required as req, Dataset, Field, FieldType::*, GET_BLOCK, GET_RECEIPTS,
};
use super::model::Log;
use super::receipt::BlockCtx;
use super::write::{write_row, FieldError, V};
use crate::msg::{Entity, RowBuf, RowFormat};

const FIELDS: &[Field] = &[
    req("log_index", Integer),
    req("transaction_hash", Hex),
    opt("transaction_index", Integer),
    opt("block_hash", Hex),
    opt("block_number", Integer),
    opt("address", Hex),
    opt("data", Hex),
    req("topics", List),
    // Stream items only.
    opt("block_timestamp", Integer),
    req("item_id", Text),
    opt("item_timestamp", Timestamp),
];

/// Logs: from the receipts, with the block's number, hash and time.
pub const DATASET: Dataset = Dataset {
    entity: Entity::Logs,
    methods: &[GET_BLOCK, GET_RECEIPTS],
    fields: FIELDS,
    csv_len: 8,
    json: &order(
        FIELDS,
        [
            "log_index",
            "transaction_hash",
            "transaction_index",
            "address",
            "data",
            "topics",
            "block_number",
            "block_timestamp",
            "block_hash",
            "item_id",
            "item_timestamp",
        ],
    ),
};

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
    let values = [
        V::U64(log_index),
        V::Str(tx_hash),
        V::qty(&log.transaction_index),
        ctx.hash,
        ctx.number,
        V::str(&log.address),
        V::str(&log.data),
        V::Strs(t0, t1),
        V::u64_opt(ctx.timestamp),
        V::ItemId("log_", tx_hash, Some(log_index), None),
        ctx.time(),
    ];
    write_row(&DATASET, format, out, scratch, &values, ctx.row_block)
}
