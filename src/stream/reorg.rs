//! `reorg` rows: one per exported block that a chain reorganisation orphaned, so consumers can
//! drop that block's rows by `block_hash`. Stream item (JSON):
//!
//! ```json
//! {"type":"reorg","block_number":20000105,"orphaned_hash":"0x…","new_hash":"0x…","depth":2,
//!  "item_id":"reorg_0x<orphaned hash>","item_timestamp":"2024-05-01T12:00:11Z"}
//! ```
//!
//! `depth` is how many exported blocks the reorg orphaned (the same in every row of one
//! reorg); `new_hash` is the block now canonical at that height and `item_timestamp` its
//! time. Fields: [`crate::decode::reorg::DATASET`]. Rows are carried as [`Entity::Reorgs`] in a
//! [`DecodedBatch`] of their own (no blocks counted), split at output chunk boundaries so a
//! file sink can take them.

use crate::decode::write::FieldError;
use crate::msg::{BatchCounts, BlockMeta, DecodedBatch, Entity, RowFormat};

pub use crate::decode::reorg::Orphan;

/// The reorg rows for `orphans` (ascending, contiguous block numbers), one batch per output
/// chunk of `chunk_size` blocks. `seq`s are left 0 (the stream assigns them). Each batch's
/// `blocks` describe the orphaned blocks (hash = the orphaned hash, timestamp = the new
/// block's), so sinks that label messages by block hash label them with the orphaned one.
pub fn batches(
    orphans: &[Orphan],
    format: RowFormat,
    chunk_size: u64,
) -> Result<Vec<DecodedBatch>, FieldError> {
    let depth = orphans.len() as u64;
    let chunk = chunk_size.max(1);
    let mut out: Vec<DecodedBatch> = Vec::new();
    let mut scratch = Vec::new();
    for o in orphans {
        let same_chunk = out
            .last()
            .is_some_and(|b| b.start / chunk == o.number / chunk && b.end + 1 == o.number);
        if !same_chunk {
            out.push(DecodedBatch {
                seq: 0,
                start: o.number,
                end: o.number,
                format,
                blocks: Vec::new(),
                rows: Default::default(),
                counts: BatchCounts::default(),
            });
        }
        let Some(b) = out.last_mut() else {
            continue;
        };
        b.end = o.number;
        crate::decode::reorg::write(
            format,
            &mut b.rows[Entity::Reorgs as usize],
            &mut scratch,
            o,
            depth,
        )?;
        b.blocks.push(BlockMeta {
            number: o.number,
            hash: o.orphaned_hash.clone(),
            parent_hash: String::new(),
            timestamp: o.new_timestamp,
            transaction_count: 0,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonic_rs::JsonValueTrait;

    fn orphan(n: u64) -> Orphan {
        Orphan {
            number: n,
            orphaned_hash: format!("0x{:064x}", n),
            new_hash: format!("0x{:064x}", n + 1000),
            new_timestamp: 1_700_000_000 + n,
        }
    }

    #[test]
    fn json_rows_are_stream_items() {
        let bs = batches(&[orphan(98), orphan(99), orphan(100)], RowFormat::Json, 100).unwrap();
        // split at the chunk boundary 99|100
        assert_eq!(bs.len(), 2);
        assert_eq!(
            (bs[0].start, bs[0].end, bs[1].start, bs[1].end),
            (98, 99, 100, 100)
        );
        assert_eq!(bs[0].counts.blocks, 0);
        let rows: Vec<(u64, &[u8])> = bs[0].rows(Entity::Reorgs).iter().collect();
        assert_eq!(rows.len(), 2);
        let v: sonic_rs::Value = sonic_rs::from_slice(rows[1].1).unwrap();
        assert_eq!(v["type"].as_str(), Some("reorg"));
        assert_eq!(v["block_number"].as_u64(), Some(99));
        assert_eq!(v["depth"].as_u64(), Some(3));
        assert_eq!(
            v["orphaned_hash"].as_str(),
            Some(orphan(99).orphaned_hash.as_str())
        );
        assert_eq!(v["new_hash"].as_str(), Some(orphan(99).new_hash.as_str()));
        assert_eq!(
            v["item_id"].as_str().map(str::to_string),
            Some(format!("reorg_{}", orphan(99).orphaned_hash))
        );
        // 1_700_000_099 = 2023-11-14T22:14:59Z
        assert_eq!(v["item_timestamp"].as_str(), Some("2023-11-14T22:14:59Z"));
        assert_eq!(
            bs[0].block_hash(99),
            Some(orphan(99).orphaned_hash.as_str())
        );
    }

    #[test]
    fn csv_rows_match_the_header() {
        let bs = batches(&[orphan(5)], RowFormat::Csv, 1000).unwrap();
        let text = String::from_utf8(bs[0].rows(Entity::Reorgs).data.clone()).unwrap();
        let cols = crate::decode::csv_header(Entity::Reorgs)
            .trim_end()
            .split(',')
            .count();
        assert_eq!(text.trim_end().split(',').count(), cols, "{text}");
        assert!(
            text.starts_with("5,0x") && text.ends_with(",1700000005\r\n"),
            "{text}"
        );
    }
}
