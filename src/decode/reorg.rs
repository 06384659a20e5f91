//! `reorg` rows, written by `ethetl stream` (see [`crate::stream::reorg`]): one per exported
//! block that a chain reorganisation orphaned. Not decoded from node answers; declared here
//! with the other datasets so every output knows its fields.

use super::dataset::{order, required as req, Dataset, Field, FieldType::*, GET_BLOCK};
use super::write::{write_row, FieldError, V};
use crate::msg::{Entity, RowBuf, RowFormat};

const FIELDS: &[Field] = &[
    req("block_number", Integer),
    req("orphaned_hash", Hex),
    req("new_hash", Hex),
    req("depth", Integer),
    req("new_timestamp", Integer),
    // Stream items only.
    req("item_id", Text),
    req("item_timestamp", Timestamp),
];

/// Reorg rows: built from the block headers the stream compares.
pub const DATASET: Dataset = Dataset {
    entity: Entity::Reorgs,
    methods: &[GET_BLOCK],
    fields: FIELDS,
    csv_len: 5,
    json: &order(
        FIELDS,
        [
            "block_number",
            "orphaned_hash",
            "new_hash",
            "depth",
            "item_id",
            "item_timestamp",
        ],
    ),
};

/// One orphaned block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub number: u64,
    /// The hash that was exported (now orphaned).
    pub orphaned_hash: String,
    /// The hash of the block now canonical at that height.
    pub new_hash: String,
    /// The new block's timestamp (Unix seconds).
    pub new_timestamp: u64,
}

/// Writes one reorg row of `o`, in a reorg that orphaned `depth` exported blocks.
pub fn write(
    format: RowFormat,
    out: &mut RowBuf,
    scratch: &mut Vec<u8>,
    o: &Orphan,
    depth: u64,
) -> Result<(), FieldError> {
    let values = [
        V::U64(o.number),
        V::Str(&o.orphaned_hash),
        V::Str(&o.new_hash),
        V::U64(depth),
        V::U64(o.new_timestamp),
        V::ItemId("reorg_", &o.orphaned_hash, None, None),
        V::Time(o.new_timestamp),
    ];
    write_row(&DATASET, format, out, scratch, &values, o.number)
}
