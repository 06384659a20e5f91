//! What each entity is, declared once: the JSON-RPC methods its rows need and its fields
//! (name, type, nullable) in export (CSV) order, plus the stream item's key order. The row
//! writer ([`super::write::write_row`]) takes field names and both orders from here, so JSONL,
//! CSV and Kafka share one field list per entity, and typed outputs read
//! [`Dataset::columns`].
//!
//! # Adding a dataset
//!
//! One module in `src/decode/` declares its `DATASET` (see [`super::receipt`], the smallest)
//! and a `write` function that hands the field values, in the order of `DATASET.fields`, to
//! [`super::write::write_row`]. Then a variant of [`Entity`] and one line in [`DATASETS`].

use crate::msg::{Entity, EntitySet};

/// `eth_getBlockByNumber(n, true)`: the block with its full transactions.
pub const GET_BLOCK: &str = "eth_getBlockByNumber";
/// `eth_getBlockReceipts(n)`: every receipt of the block, logs included.
pub const GET_RECEIPTS: &str = "eth_getBlockReceipts";

/// How a field's value is written, for typed outputs (a column type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// An integer that fits 64 bits (block numbers, indexes, timestamps as seconds).
    Integer,
    /// A 256-bit quantity, written as an exact decimal integer.
    U256,
    /// `0x` hex text: hashes, addresses, byte strings.
    Hex,
    /// Other text (token standard, item ids).
    Text,
    /// A Unix time written as `%Y-%m-%dT%H:%M:%SZ` (`item_timestamp`).
    Timestamp,
    /// A float (`l1_fee_scalar`), written as Python writes `float(x)`.
    Float,
    /// A list of hex strings (topics, uncles, blob hashes).
    List,
    /// Structured JSON (withdrawals, access and authorization lists).
    Json,
}

/// One field of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub nullable: bool,
}

/// A field that may be null.
pub const fn nullable(name: &'static str, ty: FieldType) -> Field {
    Field {
        name,
        ty,
        nullable: true,
    }
}

/// A field that always has a value.
pub const fn required(name: &'static str, ty: FieldType) -> Field {
    Field {
        name,
        ty,
        nullable: false,
    }
}

/// One entity's declaration (see the module docs).
#[derive(Debug)]
pub struct Dataset {
    /// Its name (`blocks`) and stream item type (`block`) are the entity's.
    pub entity: Entity,
    /// The JSON-RPC methods whose answers its rows are made from.
    pub methods: &'static [&'static str],
    /// Every field a row has: the export (CSV) columns first, in their order, then the fields
    /// only stream items have (`item_id`, `item_timestamp`, ...). Row writers hand values in
    /// this order.
    pub fields: &'static [Field],
    /// How many of `fields` are export columns.
    pub csv_len: usize,
    /// The stream item's keys after `type`, as indexes into `fields`.
    pub json: &'static [u8],
}

impl Dataset {
    /// The export columns, in order (CSV header; typed outputs).
    pub fn columns(&self) -> &'static [Field] {
        &self.fields[..self.csv_len]
    }

    /// Whether its rows need `eth_getBlockReceipts`.
    pub fn needs_receipts(&self) -> bool {
        self.methods.contains(&GET_RECEIPTS)
    }
}

/// Every dataset, in [`Entity`] discriminant order.
pub const DATASETS: [&Dataset; Entity::COUNT] = [
    &super::block::DATASET,
    &super::transaction::DATASET,
    &super::log::DATASET,
    &super::token_transfer::DATASET,
    &super::receipt::DATASET,
    &super::reorg::DATASET,
];

/// The dataset of `entity`.
pub fn dataset(entity: Entity) -> &'static Dataset {
    DATASETS[entity as usize]
}

/// Whether any of `entities` needs `eth_getBlockReceipts` (planning asks this before it
/// builds requests).
pub fn needs_receipts(entities: EntitySet) -> bool {
    entities.iter().any(|e| dataset(e).needs_receipts())
}

/// The stream item key order `names` as indexes into `fields`; a name that is not a field
/// fails the build (this runs in constant evaluation).
pub const fn order<const N: usize>(fields: &[Field], names: [&str; N]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        let mut j = 0;
        loop {
            assert!(j < fields.len(), "stream item key is not a field");
            if str_eq(fields[j].name, names[i]) {
                break;
            }
            j += 1;
        }
        assert!(j < 256, "too many fields");
        out[i] = j as u8;
        i += 1;
    }
    out
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The CSV header of `entity`: its column names, comma-separated, CRLF-terminated. Built once.
pub fn csv_header(entity: Entity) -> &'static str {
    static HEADERS: std::sync::OnceLock<[String; Entity::COUNT]> = std::sync::OnceLock::new();
    let all = HEADERS.get_or_init(|| {
        DATASETS.map(|d| {
            let names: Vec<&str> = d.columns().iter().map(|f| f.name).collect();
            names.join(",") + "\r\n"
        })
    });
    &all[entity as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_consistent() {
        for (i, d) in DATASETS.iter().enumerate() {
            assert_eq!(d.entity as usize, i, "{:?}", d.entity);
            assert!(d.csv_len <= d.fields.len(), "{:?}", d.entity);
            // Every field is written in at least one layout, and no key twice.
            for (j, f) in d.fields.iter().enumerate() {
                let in_json = d.json.contains(&(j as u8));
                let what = format!("{}.{}", d.entity.name(), f.name);
                assert!(j < d.csv_len || in_json, "{what} is never written");
                assert!(
                    d.json.iter().filter(|k| **k as usize == j).count() <= 1,
                    "{what} twice in the stream item"
                );
                assert_eq!(
                    d.fields.iter().filter(|g| g.name == f.name).count(),
                    1,
                    "{what} declared twice"
                );
            }
        }
    }

    #[test]
    fn csv_headers_are_the_exported_columns() {
        // The headers ethetl has always written (ethereum-etl's columns, then the appended
        // ones): declaring fields once must not change a byte of them.
        let expected = [
            (Entity::Blocks, "number,hash,parent_hash,nonce,sha3_uncles,logs_bloom,\
transactions_root,state_root,receipts_root,miner,difficulty,total_difficulty,size,extra_data,\
gas_limit,gas_used,timestamp,transaction_count,base_fee_per_gas,withdrawals_root,withdrawals,\
blob_gas_used,excess_blob_gas,parent_beacon_block_root,requests_hash,mix_hash,uncles\r\n"),
            (Entity::Transactions, "hash,nonce,block_hash,block_number,transaction_index,\
from_address,to_address,value,gas,gas_price,input,block_timestamp,max_fee_per_gas,\
max_priority_fee_per_gas,transaction_type,max_fee_per_blob_gas,blob_versioned_hashes,\
receipt_cumulative_gas_used,receipt_gas_used,receipt_contract_address,receipt_root,\
receipt_status,receipt_effective_gas_price,receipt_l1_fee,receipt_l1_gas_used,\
receipt_l1_gas_price,receipt_l1_fee_scalar,receipt_blob_gas_price,receipt_blob_gas_used,\
chain_id,access_list,authorization_list,y_parity,v,r,s,receipt_gas_used_for_l1,\
receipt_l1_block_number\r\n"),
            (
                Entity::Logs,
                "log_index,transaction_hash,transaction_index,block_hash,block_number,address,data,topics\r\n",
            ),
            (Entity::TokenTransfers, "token_address,from_address,to_address,value,transaction_hash,\
log_index,block_number,token_standard,token_id,operator,batch_index\r\n"),
            (Entity::Receipts, "transaction_hash,transaction_index,block_hash,block_number,\
cumulative_gas_used,gas_used,contract_address,root,status,effective_gas_price,l1_fee,\
l1_gas_used,l1_gas_price,l1_fee_scalar,blob_gas_price,blob_gas_used,gas_used_for_l1,\
l1_block_number\r\n"),
            (
                Entity::Reorgs,
                "block_number,orphaned_hash,new_hash,depth,new_timestamp\r\n",
            ),
        ];
        for (e, header) in expected {
            assert_eq!(csv_header(e), header, "{e:?}");
        }
    }

    #[test]
    fn receipts_are_asked_for_only_by_the_datasets_that_need_them() {
        let need: Vec<&str> = DATASETS
            .iter()
            .filter(|d| d.needs_receipts())
            .map(|d| d.entity.name())
            .collect();
        assert_eq!(need, ["logs", "token_transfers", "receipts"]);
    }
}
