//! The CPU stage: borrowed, zero-copy sonic-rs parsing of one [`RawBatch`] body, id matching
//! and validation, the receipt join, log and token-transfer decoding, and row serialization
//! straight from borrowed slices into a [`DecodedBatch`].

use crate::pipeline::msg::{DecodedBatch, EntitySet, RawBatch, RowFormat};

/// What to produce from a raw batch.
#[derive(Clone, Copy, Debug)]
pub struct DecodeOptions {
    pub entities: EntitySet,
    pub format: RowFormat,
}

/// Why a raw batch could not be decoded. Says which block / call / tx index and keeps the cause.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("todo")]
    Todo,
}

impl DecodeError {
    /// Whether asking the node again may succeed (node-side errors, `null` results for blocks
    /// not yet indexed, inconsistent answers), as opposed to a bug or an impossible input.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Decodes one raw batch into serialized rows.
pub fn decode_batch(raw: &RawBatch, opts: &DecodeOptions) -> Result<DecodedBatch, DecodeError> {
    let _ = (raw, opts);
    Err(DecodeError::Todo)
}

/// The CSV header line (CRLF-terminated) for `entity`: ethereum-etl's columns, then ethetl's
/// appended ones.
pub fn csv_header(entity: crate::pipeline::msg::Entity) -> &'static str {
    let _ = entity;
    ""
}
