//! Edge cases of the decode stage on hand-written answers (`fixtures/edge/`): every tx type and
//! optional field, JSON escapes and unknown fields, 2^256−1 values, ERC-20/721/1155 and
//! malformed transfers, empty blocks, and every way a batch answer can be wrong (error objects,
//! null results, inconsistent receipts, wrong ids, truncated bodies).
//!
//! Expected values are written out by hand from the fixture inputs (hex converted
//! independently, timestamps from Python's `datetime`), never copied from our own output.

mod common;

use common::{object_keys, parse_csv, repo_fixture, row_texts};
use ethetl::decode::{
    csv_header, decode_batch, decode_receipts, parse_only, At, DecodeError, DecodeOptions, Item,
};
use ethetl::msg::{DecodedBatch, EntitySet, RangeJob, RawBatch};
use ethetl::{Entity, RowFormat};
use sonic_rs::{JsonContainerTrait, JsonValueTrait, LazyValue};

const MAX: &str = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
const BH: &str = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn fixture(name: &str) -> String {
    repo_fixture(&format!("edge/{name}"))
}

fn rich_block() -> String {
    fixture("block_rich.json")
}
fn rich_receipts() -> String {
    fixture("receipts_rich.json")
}

fn env(id: u64, result: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

fn body(parts: &[String]) -> Vec<u8> {
    format!("[{}]", parts.join(",")).into_bytes()
}

fn raw(start: u64, end: u64, with_receipts: bool, body: Vec<u8>) -> RawBatch {
    RawBatch {
        job: RangeJob {
            seq: 3,
            start,
            end,
            attempt: 0,
        },
        endpoint: 0,
        with_receipts,
        body,
        depth: None,
    }
}

fn opts(format: RowFormat) -> DecodeOptions {
    DecodeOptions {
        entities: EntitySet::of(&Entity::ALL),
        format,
    }
}

/// Block 100 with its receipts, answers in reversed order.
fn rich_raw() -> RawBatch {
    raw(
        100,
        100,
        true,
        body(&[env(1, &rich_receipts()), env(0, &rich_block())]),
    )
}

fn decode_rich(format: RowFormat) -> DecodedBatch {
    decode_batch(&rich_raw(), &opts(format)).unwrap()
}

/// The raw JSON text of `key` in a row (numbers keep every digit).
fn get(row: &str, key: &str) -> String {
    let v: LazyValue = sonic_rs::get(row, &[key]).unwrap_or_else(|_| panic!("{key} in {row}"));
    v.as_raw_str().to_owned()
}

fn err(raw: &RawBatch) -> DecodeError {
    decode_batch(raw, &opts(RowFormat::Json)).unwrap_err()
}

fn q(s: &str) -> String {
    format!("\"{s}\"")
}

// ---------------------------------------------------------------------------------------------

#[test]
fn rich_block_counts() {
    let d = decode_rich(RowFormat::Json);
    let c = d.counts;
    assert_eq!(
        (c.blocks, c.transactions, c.receipts, c.logs),
        (1, 6, 6, 13)
    );
    // r1: ERC-20 + ERC-721; r3: TransferSingle + 2 batch rows + CryptoKitties layout.
    assert_eq!(c.token_transfers, 6);
    // r2: 16-byte data, 2-byte topic, non-hex data, odd length, 3+2 words, batch offset out
    // of range, TransferSingle with 3 topics (the anonymous log is no transfer).
    assert_eq!(c.malformed_transfers, 7);
    assert_eq!(c.rpc_bytes, rich_raw().body.len() as u64);
    assert_eq!((d.seq, d.start, d.end), (3, 100, 100));
    let m = &d.blocks[0];
    assert_eq!(
        (m.number, m.timestamp, m.transaction_count),
        (100, 1709874432, 6)
    );
    assert_eq!(m.hash, BH);
    assert_eq!(m.parent_hash, format!("0x{}", "a".repeat(64)));
    for e in Entity::ALL {
        let want = match e {
            Entity::Blocks => 1,
            Entity::Transactions | Entity::Receipts => 6,
            Entity::Logs => 13,
            Entity::TokenTransfers => 6,
            Entity::Reorgs => unreachable!("reorg rows are not decoded"),
        };
        assert_eq!(d.rows(e).len(), want, "{e:?}");
        assert!(d.rows(e).iter().all(|(b, _)| b == 100));
        // Every row is one JSON object ending in a newline.
        for r in row_texts(d.rows(e)) {
            assert!(r.ends_with("}\n") && !r[..r.len() - 1].contains('\n'));
            let v: sonic_rs::Value = sonic_rs::from_str(&r).unwrap();
            assert!(v.is_object());
            assert_eq!(get(&r, "type"), q(e.item_type()));
        }
    }
}

#[test]
fn rich_block_row() {
    let d = decode_rich(RowFormat::Json);
    let b = &row_texts(d.rows(Entity::Blocks))[0];
    let want_keys = [
        "type",
        "number",
        "hash",
        "parent_hash",
        "nonce",
        "sha3_uncles",
        "logs_bloom",
        "transactions_root",
        "state_root",
        "receipts_root",
        "miner",
        "difficulty",
        "total_difficulty",
        "size",
        "extra_data",
        "gas_limit",
        "gas_used",
        "timestamp",
        "transaction_count",
        "base_fee_per_gas",
        "withdrawals_root",
        "withdrawals",
        "blob_gas_used",
        "excess_blob_gas",
        "item_id",
        "item_timestamp",
        "parent_beacon_block_root",
        "requests_hash",
        "mix_hash",
        "uncles",
    ];
    assert_eq!(object_keys(b), want_keys);
    assert_eq!(get(b, "number"), "100");
    assert_eq!(get(b, "nonce"), q("0x0000000000000042"));
    assert_eq!(
        get(b, "miner"),
        q("0xabcdefabcdefabcdefabcdefabcdefabcdefabcd")
    );
    // "0x\u0036\u0035" in the answer.
    assert_eq!(get(b, "extra_data"), q("0x65"));
    assert_eq!(get(b, "total_difficulty"), "null");
    assert_eq!(get(b, "difficulty"), "0");
    assert_eq!(get(b, "size"), "1000");
    assert_eq!(get(b, "gas_limit"), "30000000");
    assert_eq!(get(b, "timestamp"), "1709874432");
    assert_eq!(get(b, "transaction_count"), "6");
    assert_eq!(get(b, "base_fee_per_gas"), "7");
    assert_eq!(get(b, "blob_gas_used"), "262144");
    assert_eq!(get(b, "excess_blob_gas"), "0");
    // Withdrawal address passed through as sent; amount 2^64-1 exact.
    assert_eq!(
        get(b, "withdrawals"),
        r#"[{"index":1,"validator_index":2,"address":"0xAbCdEf0000000000000000000000000000000001","amount":18446744073709551615},{"index":2,"validator_index":3,"address":"0x2222222222222222222222222222222222222222","amount":0}]"#
    );
    assert_eq!(get(b, "item_id"), q(&format!("block_{BH}")));
    assert_eq!(get(b, "item_timestamp"), q("2024-03-08T05:07:12Z"));
    assert_eq!(get(b, "requests_hash"), q(&format!("0x{}", "6".repeat(64))));
    assert_eq!(get(b, "uncles"), "[]");
    // The unknown field (with escapes and nested values) is ignored.
    assert!(!b.contains("unknown") && !b.contains("quoted"));
}

#[test]
fn rich_transactions() {
    let d = decode_rich(RowFormat::Json);
    let t = row_texts(d.rows(Entity::Transactions));
    let stream_keys = [
        "type",
        "hash",
        "nonce",
        "transaction_index",
        "from_address",
        "to_address",
        "value",
        "gas",
        "gas_price",
        "input",
        "block_timestamp",
        "block_number",
        "block_hash",
        "max_fee_per_gas",
        "max_priority_fee_per_gas",
        "transaction_type",
        "max_fee_per_blob_gas",
        "blob_versioned_hashes",
        "receipt_cumulative_gas_used",
        "receipt_gas_used",
        "receipt_contract_address",
        "receipt_root",
        "receipt_status",
        "receipt_effective_gas_price",
        "receipt_l1_fee",
        "receipt_l1_gas_used",
        "receipt_l1_gas_price",
        "receipt_l1_fee_scalar",
        "receipt_blob_gas_price",
        "receipt_blob_gas_used",
        "item_id",
        "item_timestamp",
        "chain_id",
        "access_list",
        "authorization_list",
        "y_parity",
        "v",
        "r",
        "s",
        "receipt_gas_used_for_l1",
        "receipt_l1_block_number",
    ];
    for r in &t {
        assert_eq!(object_keys(r), stream_keys);
        assert_eq!(get(r, "block_timestamp"), "1709874432");
        assert_eq!(get(r, "block_number"), "100");
        assert_eq!(get(r, "block_hash"), q(BH));
    }
    // tx0: legacy contract creation, 2^256-1 value, pre-Byzantium receipt (root, no status).
    let r = &t[0];
    assert_eq!(get(r, "to_address"), "null");
    assert_eq!(get(r, "value"), MAX);
    assert_eq!(
        get(r, "from_address"),
        q("0xf00000000000000000000000000000000000000f")
    );
    assert_eq!(
        get(r, "receipt_contract_address"),
        q("0xdead00000000000000000000000000000000beef")
    );
    assert_eq!(get(r, "receipt_root"), q(&format!("0x{}", "9".repeat(64))));
    assert_eq!(get(r, "receipt_status"), "null");
    assert_eq!(get(r, "transaction_type"), "0");
    assert_eq!(get(r, "chain_id"), "null");
    assert_eq!(get(r, "access_list"), "null");
    assert_eq!(get(r, "authorization_list"), "null");
    assert_eq!(get(r, "y_parity"), "null");
    assert_eq!(get(r, "v"), "37");
    assert_eq!(get(r, "blob_versioned_hashes"), "[]");
    assert_eq!(
        get(r, "item_id"),
        q(&format!("transaction_0x{}", "1".repeat(64)))
    );
    // tx1: access list, OP l1 fields with a float scalar written like Python's repr.
    let r = &t[1];
    assert_eq!(
        get(r, "access_list"),
        format!(
            r#"[{{"address":"0x{}","storage_keys":["0x{}","0x{}"]}},{{"address":"0x{}","storage_keys":[]}}]"#,
            "3".repeat(40),
            "0".repeat(64),
            "1".repeat(64),
            "4".repeat(40)
        )
    );
    assert_eq!(get(r, "receipt_l1_fee_scalar"), "1e-05");
    assert_eq!(get(r, "receipt_l1_fee"), "6043774829524");
    assert_eq!(get(r, "receipt_status"), "1");
    assert_eq!(get(r, "receipt_root"), "null");
    assert_eq!(get(r, "chain_id"), "1");
    assert_eq!(get(r, "y_parity"), "1");
    // tx2: failed, no `input` (null), Erigon's blockTimestamp ignored.
    let r = &t[2];
    assert_eq!(get(r, "input"), "null");
    assert_eq!(get(r, "receipt_status"), "0");
    assert_eq!(get(r, "value"), "1000000000000000000");
    assert_eq!(get(r, "max_fee_per_gas"), "12");
    assert_eq!(get(r, "receipt_effective_gas_price"), "8");
    assert_eq!(get(r, "access_list"), "[]");
    // tx3: blobs.
    let r = &t[3];
    assert_eq!(
        get(r, "blob_versioned_hashes"),
        format!(r#"["0x01{}","0x01{}"]"#, "a".repeat(62), "b".repeat(62))
    );
    assert_eq!(get(r, "max_fee_per_blob_gas"), "3");
    assert_eq!(get(r, "receipt_blob_gas_used"), "262144");
    assert_eq!(get(r, "receipt_blob_gas_price"), "1");
    // tx4: EIP-7702 authorizations (provider's `authority` kept), Arbitrum receipt extras.
    let r = &t[4];
    assert_eq!(get(r, "transaction_type"), "4");
    assert_eq!(
        get(r, "authorization_list"),
        format!(
            r#"[{{"chain_id":1,"address":"0x{}","nonce":5,"y_parity":0,"r":"0x{}","s":"0x{}","authority":"0x{}"}},{{"chain_id":0,"address":"0x{}","nonce":0,"y_parity":1,"r":"0x{}","s":"0x{}"}}]"#,
            "7".repeat(40),
            "8".repeat(64),
            "9".repeat(64),
            "8".repeat(40),
            "9".repeat(40),
            "a".repeat(64),
            "b".repeat(64)
        )
    );
    assert_eq!(get(r, "receipt_gas_used_for_l1"), "628360");
    assert_eq!(get(r, "receipt_l1_block_number"), "12551662");
    // tx5: OP deposit 0x7e without gasPrice, unknown deposit fields ignored.
    let r = &t[5];
    assert_eq!(get(r, "transaction_type"), "126");
    assert_eq!(get(r, "gas_price"), "null");
    assert_eq!(get(r, "v"), "null");
    assert_eq!(get(r, "receipt_effective_gas_price"), "0");
}

#[test]
fn rich_logs_and_receipts() {
    let d = decode_rich(RowFormat::Json);
    let logs = row_texts(d.rows(Entity::Logs));
    for (i, l) in logs.iter().enumerate() {
        assert_eq!(get(l, "log_index"), i.to_string());
        assert_eq!(get(l, "block_hash"), q(BH));
        assert_eq!(get(l, "block_timestamp"), "1709874432");
    }
    // Log address passed through as sent (not lowercased); malformed transfers still are logs.
    assert_eq!(
        get(&logs[0], "address"),
        q("0xC0FFEE0000000000000000000000000000000001")
    );
    assert_eq!(
        get(&logs[3], "topics"),
        format!(
            r#"["0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef","0x1234","0x000000000000000000000000{}"]"#,
            "2".repeat(40)
        )
    );
    assert_eq!(get(&logs[9], "topics"), "[]");
    assert_eq!(
        get(&logs[9], "item_id"),
        q(&format!("log_0x{}_9", "3".repeat(64)))
    );
    assert_eq!(get(&logs[9], "transaction_index"), "2");

    let rs = row_texts(d.rows(Entity::Receipts));
    assert_eq!(get(&rs[0], "status"), "null");
    assert_eq!(get(&rs[0], "root"), q(&format!("0x{}", "9".repeat(64))));
    assert_eq!(get(&rs[0], "block_number"), "100");
    assert_eq!(get(&rs[0], "block_timestamp"), "1709874432");
    assert_eq!(
        get(&rs[0], "item_id"),
        q(&format!("receipt_0x{}", "1".repeat(64)))
    );
    assert_eq!(get(&rs[1], "l1_fee_scalar"), "1e-05");
    assert_eq!(get(&rs[4], "gas_used_for_l1"), "628360");
    assert_eq!(get(&rs[4], "l1_block_number"), "12551662");
    assert_eq!(get(&rs[5], "gas_used_for_l1"), "null");
}

#[test]
fn rich_token_transfers() {
    let d = decode_rich(RowFormat::Json);
    let t = row_texts(d.rows(Entity::TokenTransfers));
    let a = |c: &str| q(&format!("0x{}", c.repeat(40)));
    let tx = |c: &str| format!("0x{}", c.repeat(64));
    // ERC-20 with value 2^256-1; token address and recipient lowercased.
    assert_eq!(
        get(&t[0], "token_address"),
        q("0xc0ffee0000000000000000000000000000000001")
    );
    assert_eq!(get(&t[0], "from_address"), a("1"));
    assert_eq!(
        get(&t[0], "to_address"),
        q("0xabcdef0000000000000000000000000000000002")
    );
    assert_eq!(get(&t[0], "value"), MAX);
    assert_eq!(get(&t[0], "token_standard"), q("erc20"));
    assert_eq!(get(&t[0], "token_id"), "null");
    assert_eq!(get(&t[0], "log_index"), "0");
    assert_eq!(
        get(&t[0], "item_id"),
        q(&format!("token_transfer_{}_0", tx("2")))
    );
    // ERC-721: value is the token id (as ethereum-etl), token_id too.
    assert_eq!(get(&t[1], "token_standard"), q("erc721"));
    assert_eq!(get(&t[1], "value"), "1234");
    assert_eq!(get(&t[1], "token_id"), "1234");
    // ERC-1155 TransferSingle (log 10).
    assert_eq!(get(&t[2], "token_standard"), q("erc1155"));
    assert_eq!(get(&t[2], "operator"), a("9"));
    assert_eq!(get(&t[2], "from_address"), a("1"));
    assert_eq!(get(&t[2], "to_address"), a("2"));
    assert_eq!(get(&t[2], "token_id"), "42");
    assert_eq!(get(&t[2], "value"), "7");
    assert_eq!(get(&t[2], "batch_index"), "null");
    assert_eq!(
        get(&t[2], "item_id"),
        q(&format!("token_transfer_{}_10", tx("4")))
    );
    // ERC-1155 TransferBatch (log 11): one row per pair, ids unique.
    assert_eq!(get(&t[3], "token_id"), "10");
    assert_eq!(get(&t[3], "value"), "100");
    assert_eq!(get(&t[3], "batch_index"), "0");
    assert_eq!(
        get(&t[3], "item_id"),
        q(&format!("token_transfer_{}_11_0", tx("4")))
    );
    assert_eq!(get(&t[4], "token_id"), "11");
    assert_eq!(get(&t[4], "value"), MAX);
    assert_eq!(get(&t[4], "batch_index"), "1");
    assert_eq!(
        get(&t[4], "item_id"),
        q(&format!("token_transfer_{}_11_1", tx("4")))
    );
    // CryptoKitties layout (1 topic + 3 words): emitted, standard unknown.
    assert_eq!(get(&t[5], "token_standard"), "null");
    assert_eq!(get(&t[5], "from_address"), a("1"));
    assert_eq!(get(&t[5], "to_address"), a("2"));
    assert_eq!(get(&t[5], "value"), "99");
    assert_eq!(get(&t[5], "log_index"), "12");
    for r in &t {
        assert_eq!(get(r, "block_number"), "100");
        assert_eq!(get(r, "block_hash"), q(BH));
        assert_eq!(get(r, "item_timestamp"), q("2024-03-08T05:07:12Z"));
    }
}

#[test]
fn rich_block_csv() {
    let d = decode_rich(RowFormat::Csv);
    for e in Entity::ALL {
        let text = format!("{}{}", csv_header(e), row_texts(d.rows(e)).concat());
        let table = parse_csv(&text);
        let header = &table[0];
        assert_eq!(table.len() - 1, d.rows(e).len());
        for r in &table[1..] {
            assert_eq!(r.len(), header.len(), "{e:?}: {r:?}");
        }
        let col = |row: usize, name: &str| {
            let i = header.iter().position(|h| h == name).unwrap();
            table[row + 1][i].clone()
        };
        match e {
            Entity::Blocks => {
                assert_eq!(col(0, "extra_data"), "0x65");
                assert_eq!(col(0, "total_difficulty"), "");
                assert_eq!(col(0, "timestamp"), "1709874432");
                let w: sonic_rs::Value = sonic_rs::from_str(&col(0, "withdrawals")).unwrap();
                assert_eq!(w.as_array().unwrap().len(), 2);
                assert_eq!(col(0, "uncles"), "");
            }
            Entity::Transactions => {
                assert_eq!(col(0, "value"), MAX);
                assert_eq!(col(0, "to_address"), "");
                assert_eq!(col(0, "receipt_status"), "");
                assert_eq!(col(1, "receipt_l1_fee_scalar"), "1e-05");
                let al: sonic_rs::Value = sonic_rs::from_str(&col(1, "access_list")).unwrap();
                assert_eq!(al.as_array().unwrap().len(), 2);
                assert_eq!(
                    col(3, "blob_versioned_hashes"),
                    format!("0x01{},0x01{}", "a".repeat(62), "b".repeat(62))
                );
                let au: sonic_rs::Value =
                    sonic_rs::from_str(&col(4, "authorization_list")).unwrap();
                assert_eq!(au.as_array().unwrap().len(), 2);
                assert_eq!(col(2, "access_list"), "[]");
                assert_eq!(col(0, "access_list"), "");
            }
            Entity::Logs => {
                assert_eq!(col(9, "topics"), "");
                assert_eq!(col(1, "topics").split(',').count(), 4);
            }
            Entity::TokenTransfers => {
                assert_eq!(col(0, "value"), MAX);
                assert_eq!(col(3, "batch_index"), "0");
                assert_eq!(col(5, "token_standard"), "");
            }
            Entity::Receipts => {
                assert_eq!(col(0, "status"), "");
                assert_eq!(
                    col(0, "contract_address"),
                    "0xdead00000000000000000000000000000000beef"
                );
            }
            Entity::Reorgs => unreachable!("reorg rows are not decoded"),
        }
    }
}

/// Every CSV column is named like a JSON field of the same row and holds the same value, so the
/// header and the CSV writer cannot drift apart (ethereum-etl's columns are also checked
/// against its own files by the conformance test).
#[test]
fn csv_columns_match_json_fields() {
    let (j, c) = (decode_rich(RowFormat::Json), decode_rich(RowFormat::Csv));
    let mut cells = 0;
    for e in Entity::ALL {
        let table = parse_csv(&format!(
            "{}{}",
            csv_header(e),
            row_texts(c.rows(e)).concat()
        ));
        let header = &table[0];
        let json_rows = row_texts(j.rows(e));
        assert_eq!(json_rows.len(), table.len() - 1);
        for (row, cells_of_row) in json_rows.iter().zip(&table[1..]) {
            let json_keys = object_keys(row);
            // CSV has every JSON field except the stream-only ones.
            let stream_only: &[&str] = match e {
                Entity::Blocks | Entity::Transactions => &["type", "item_id", "item_timestamp"],
                Entity::Logs | Entity::Receipts => {
                    &["type", "item_id", "item_timestamp", "block_timestamp"]
                }
                Entity::TokenTransfers => &[
                    "type",
                    "item_id",
                    "item_timestamp",
                    "block_timestamp",
                    "block_hash",
                ],
                Entity::Reorgs => unreachable!("reorg rows are not decoded"),
            };
            for k in &json_keys {
                assert!(
                    header.contains(k) != stream_only.contains(&k.as_str()),
                    "{e:?}: JSON field {k}"
                );
            }
            assert_eq!(json_keys.len(), header.len() + stream_only.len(), "{e:?}");
            for (name, cell) in header.iter().zip(cells_of_row) {
                let v = get(row, name);
                let want = if v == "null" || (name == "withdrawals" && v == "[]") {
                    String::new()
                } else if v.starts_with('"') {
                    sonic_rs::from_str::<String>(&v).unwrap()
                } else if v.starts_with("[\"")
                    || (v == "[]" && !matches!(name.as_str(), "access_list" | "authorization_list"))
                {
                    sonic_rs::from_str::<Vec<String>>(&v).unwrap().join(",")
                } else {
                    v
                };
                assert_eq!(*cell, want, "{e:?} column {name}");
                cells += 1;
            }
        }
    }
    assert!(cells > 500);
}

#[test]
fn two_blocks_shuffled_answers_and_an_empty_block() {
    let empty = fixture("block_empty.json");
    let b = body(&[
        env(3, "[]"),
        env(0, &rich_block()),
        env(2, &empty),
        env(1, &rich_receipts()),
    ]);
    for format in [RowFormat::Json, RowFormat::Csv] {
        let d = decode_batch(&raw(100, 101, true, b.clone()), &opts(format)).unwrap();
        assert_eq!(
            d.blocks.iter().map(|m| m.number).collect::<Vec<_>>(),
            [100, 101]
        );
        assert_eq!(d.blocks[1].parent_hash, d.blocks[0].hash);
        assert_eq!(d.blocks[1].transaction_count, 0);
        assert_eq!(d.block_hash(101), Some(d.blocks[1].hash.as_str()));
        assert_eq!(d.counts.blocks, 2);
        let blocks: Vec<u64> = d.rows(Entity::Blocks).iter().map(|(n, _)| n).collect();
        assert_eq!(blocks, [100, 101]);
        assert!(d.rows(Entity::Transactions).iter().all(|(n, _)| n == 100));
        if format == RowFormat::Json {
            let e = &row_texts(d.rows(Entity::Blocks))[1];
            assert_eq!(get(e, "total_difficulty"), "58750003716598352816469");
            assert_eq!(get(e, "base_fee_per_gas"), "null");
            assert_eq!(get(e, "withdrawals"), "[]");
            assert_eq!(get(e, "withdrawals_root"), "null");
            assert_eq!(get(e, "transaction_count"), "0");
            assert_eq!(get(e, "item_timestamp"), q("2015-07-30T15:26:28Z"));
            assert_eq!(get(e, "parent_beacon_block_root"), "null");
        } else {
            let table = parse_csv(&format!(
                "{}{}",
                csv_header(Entity::Blocks),
                row_texts(d.rows(Entity::Blocks)).concat()
            ));
            let i = table[0].iter().position(|h| h == "withdrawals").unwrap();
            assert_eq!(table[2][i], "");
        }
    }
}

#[test]
fn without_receipts_receipt_fields_are_null() {
    let b = body(&[env(0, &rich_block())]);
    let d = decode_batch(&raw(100, 100, false, b), &opts(RowFormat::Json)).unwrap();
    assert_eq!(d.rows(Entity::Transactions).len(), 6);
    for e in [Entity::Logs, Entity::TokenTransfers, Entity::Receipts] {
        assert!(d.rows(e).is_empty());
    }
    assert_eq!((d.counts.receipts, d.counts.logs), (0, 0));
    for r in row_texts(d.rows(Entity::Transactions)) {
        for k in object_keys(&r).iter().filter(|k| k.starts_with("receipt_")) {
            assert_eq!(get(&r, k), "null", "{k}");
        }
    }
}

#[test]
fn only_requested_entities() {
    let o = DecodeOptions {
        entities: EntitySet::of(&[Entity::TokenTransfers]),
        format: RowFormat::Json,
    };
    let d = decode_batch(&rich_raw(), &o).unwrap();
    assert_eq!(d.rows(Entity::TokenTransfers).len(), 6);
    for e in [
        Entity::Blocks,
        Entity::Transactions,
        Entity::Logs,
        Entity::Receipts,
    ] {
        assert!(d.rows(e).is_empty());
    }
    assert_eq!(d.blocks.len(), 1);
}

#[test]
fn ids_may_be_numeric_strings() {
    let b = format!(
        r#"[{{"jsonrpc":"2.0","id":"1","result":{}}},{{"id":"0","result":{},"extra":{{"x":[1]}}}}]"#,
        rich_receipts(),
        rich_block()
    );
    let d = decode_batch(&raw(100, 100, true, b.into_bytes()), &opts(RowFormat::Json)).unwrap();
    assert_eq!(d.counts.transactions, 6);
}

// ---------------------------------------------------------------------------------------------
// Answers that must be rejected.

#[test]
fn rpc_error_objects() {
    let b = body(&[
        r#"{"jsonrpc":"2.0","id":0,"error":{"code":-32000,"message":"header not found"}}"#.into(),
        env(1, "[]"),
    ]);
    let e = err(&raw(100, 100, true, b));
    assert!(
        matches!(&e, DecodeError::Rpc { block: 100, method: "eth_getBlockByNumber", code: Some(-32000), message } if message == "header not found"),
        "{e:?}"
    );
    assert!(e.is_retryable());
    assert_eq!(e.block(), Some(100));

    let b = body(&[
        env(0, &rich_block()),
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"the method eth_getBlockReceipts does not exist"}}"#.into(),
    ]);
    let e = err(&raw(100, 100, true, b));
    assert!(
        matches!(
            e,
            DecodeError::Rpc {
                method: "eth_getBlockReceipts",
                code: Some(-32601),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retryable());

    // A whole-batch rejection: one object, or an array element with a null id.
    for b in [
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"batch too large"}}"#,
        r#"[{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"limit exceeded"}}]"#,
    ] {
        let e = err(&raw(100, 100, true, b.into()));
        assert!(matches!(e, DecodeError::BatchRejected { .. }), "{e:?}");
        assert!(e.is_retryable());
    }
    let e = err(&raw(100, 100, false, env(0, &rich_block()).into_bytes()));
    assert!(matches!(e, DecodeError::NotABatch { .. }), "{e:?}");
    assert!(e.is_retryable());
}

#[test]
fn null_results() {
    let e = err(&raw(100, 100, true, body(&[env(0, "null"), env(1, "[]")])));
    assert!(
        matches!(
            e,
            DecodeError::NullResult {
                block: 100,
                method: "eth_getBlockByNumber"
            }
        ),
        "{e:?}"
    );
    assert!(e.is_retryable());
    let e = err(&raw(
        100,
        100,
        true,
        body(&[env(0, &rich_block()), env(1, "null")]),
    ));
    assert!(
        matches!(
            e,
            DecodeError::NullResult {
                block: 100,
                method: "eth_getBlockReceipts"
            }
        ),
        "{e:?}"
    );
    // `result` missing altogether reads the same.
    let b = body(&[r#"{"jsonrpc":"2.0","id":0}"#.into()]);
    assert!(matches!(
        err(&raw(100, 100, false, b)),
        DecodeError::NullResult { .. }
    ));
}

/// The rich receipts with `edit` applied to the parsed-and-rewritten text.
fn receipts_with(edit: impl Fn(&mut Vec<String>)) -> String {
    // Split the fixture into its top-level receipt objects.
    let all = rich_receipts();
    let mut items: Vec<String> = sonic_rs::to_array_iter(all.as_str())
        .map(|r| r.unwrap().as_raw_str().to_owned())
        .collect();
    edit(&mut items);
    format!("[{}]", items.join(","))
}

/// `s` with the `n`-th (0-based) occurrence of `pat` replaced.
fn replace_nth(s: &str, pat: &str, rep: &str, n: usize) -> String {
    let (i, _) = s.match_indices(pat).nth(n).expect("occurrence");
    format!("{}{}{}", &s[..i], rep, &s[i + pat.len()..])
}

fn with_receipts(receipts: &str) -> RawBatch {
    raw(
        100,
        100,
        true,
        body(&[env(0, &rich_block()), env(1, receipts)]),
    )
}

#[test]
fn inconsistent_receipts() {
    // Count mismatch.
    let e = err(&with_receipts(&receipts_with(|v| {
        v.pop();
    })));
    assert!(
        matches!(
            e,
            DecodeError::ReceiptCount {
                block: 100,
                txs: 6,
                receipts: 5
            }
        ),
        "{e:?}"
    );
    assert!(e.is_retryable());

    // Receipts out of order.
    let e = err(&with_receipts(&receipts_with(|v| v.swap(0, 1))));
    assert!(
        matches!(
            e,
            DecodeError::ReceiptOrder {
                block: 100,
                tx_index: 0,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_retryable());

    // A receipt from another block.
    let other = format!("0x{}", "e".repeat(64));
    let e = err(&with_receipts(&receipts_with(|v| {
        v[2] = v[2].replacen(
            &format!("\"blockHash\": \"{BH}\""),
            &format!("\"blockHash\": \"{other}\""),
            1,
        );
    })));
    assert!(
        matches!(&e, DecodeError::BlockHash { at: At { block: Some(100), item: Item::Receipt(2) }, got: Some(g), .. } if *g == other),
        "{e:?}"
    );
    assert!(e.is_retryable());

    // A log from another block (the second log of receipt 3).
    // Occurrences in receipt 3: its own blockHash, then log 0's, then log 1's.
    let e = err(&with_receipts(&receipts_with(|v| {
        v[3] = replace_nth(
            &v[3],
            &format!("\"blockHash\": \"{BH}\""),
            &format!("\"blockHash\": \"{other}\""),
            2,
        );
    })));
    assert!(
        matches!(
            e,
            DecodeError::BlockHash {
                at: At {
                    block: Some(100),
                    item: Item::Log {
                        tx_index: 3,
                        log: 1
                    }
                },
                ..
            }
        ),
        "{e:?}"
    );

    // A receipt without blockHash cannot be checked: rejected.
    let e = err(&with_receipts(&receipts_with(|v| {
        v[0] = v[0].replacen(&format!("\"blockHash\": \"{BH}\","), "", 1);
    })));
    assert!(
        matches!(
            e,
            DecodeError::BlockHash {
                at: At {
                    item: Item::Receipt(0),
                    ..
                },
                got: None,
                ..
            }
        ),
        "{e:?}"
    );

    // A log naming another transaction than its receipt.
    let e = err(&with_receipts(&receipts_with(|v| {
        let tx1 = format!("\"transactionHash\": \"0x{}\"", "2".repeat(64));
        let tx9 = format!("\"transactionHash\": \"0x{}\"", "9".repeat(64));
        v[1] = v[1].replacen(&tx1, &tx9, 1);
    })));
    assert!(
        matches!(
            e,
            DecodeError::LogTransaction {
                at: At {
                    item: Item::Log {
                        tx_index: 1,
                        log: 0
                    },
                    ..
                },
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn inconsistent_block() {
    // Asked for block 7, got block 100.
    let e = err(&raw(7, 7, false, body(&[env(0, &rich_block())])));
    assert!(
        matches!(e, DecodeError::WrongBlock { block: 7, got: 100 }),
        "{e:?}"
    );
    assert!(e.is_retryable());
    // A transaction whose blockHash is not the block's.
    let blk = rich_block().replacen(
        &format!("\"blockHash\": \"{BH}\""),
        &format!("\"blockHash\": \"0x{}\"", "e".repeat(64)),
        2,
    );
    let e = err(&raw(100, 100, false, body(&[env(0, &blk)])));
    assert!(
        matches!(
            e,
            DecodeError::BlockHash {
                at: At {
                    item: Item::Transaction(0),
                    ..
                },
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn wrong_ids() {
    // An id beyond the job.
    let e = err(&raw(
        100,
        100,
        true,
        body(&[env(0, &rich_block()), env(1, "[]"), env(9, "[]")]),
    ));
    assert!(
        matches!(&e, DecodeError::UnknownId { id, .. } if id == "9"),
        "{e:?}"
    );
    assert!(e.is_retryable());
    // A receipts id in a request without receipts calls.
    let e = err(&raw(
        100,
        100,
        false,
        body(&[env(0, &rich_block()), env(1, "[]")]),
    ));
    assert!(matches!(e, DecodeError::UnknownId { .. }), "{e:?}");
    // A non-numeric id.
    let b = format!(r#"[{{"id":"abc","result":{}}}]"#, rich_block());
    assert!(matches!(
        err(&raw(100, 100, false, b.into_bytes())),
        DecodeError::UnknownId { .. }
    ));
    // Twice the same id.
    let e = err(&raw(
        100,
        100,
        false,
        body(&[env(0, &rich_block()), env(0, &rich_block())]),
    ));
    assert!(
        matches!(
            e,
            DecodeError::DuplicateId {
                block: 100,
                id: 0,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_retryable());
    // The receipts answer is missing.
    let e = err(&raw(100, 100, true, body(&[env(0, &rich_block())])));
    assert!(
        matches!(
            e,
            DecodeError::MissingAnswer {
                block: 100,
                method: "eth_getBlockReceipts"
            }
        ),
        "{e:?}"
    );
    assert!(e.is_retryable());
    // An empty batch answers nothing.
    let e = err(&raw(100, 100, false, b"[]".to_vec()));
    assert!(matches!(e, DecodeError::MissingAnswer { .. }), "{e:?}");
}

#[test]
fn broken_bodies() {
    let full = rich_raw().body;
    for cut in [1, 10, full.len() / 2, full.len() - 1] {
        let e = err(&raw(100, 100, true, full[..cut].to_vec()));
        assert!(matches!(e, DecodeError::Json { .. }), "cut {cut}: {e:?}");
        assert!(e.is_retryable());
    }
    for b in [
        &b""[..],
        b"<html><body>502 Bad Gateway</body></html>",
        b"[{]",
        b"\xff\xfe",
    ] {
        let e = err(&raw(100, 100, true, b.to_vec()));
        assert!(matches!(e, DecodeError::Json { .. }), "{e:?}");
        assert!(e.is_retryable());
    }
    assert!(parse_only(&full[..full.len() / 2]).is_err());
}

#[test]
fn wrong_shapes() {
    // A block with transaction hashes instead of objects.
    let blk = r#"{"number":"0x64","hash":"0x1","parentHash":"0x2","timestamp":"0x3","transactions":["0xaa"]}"#;
    let e = err(&raw(100, 100, false, body(&[env(0, blk)])));
    assert!(
        matches!(
            e,
            DecodeError::ResultShape {
                block: 100,
                method: "eth_getBlockByNumber",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    // A receipt missing its transactionHash, located among several answers.
    let rs = receipts_with(|v| {
        v[5] = v[5].replacen("\"transactionHash\"", "\"txHash\"", 1);
    });
    let e = err(&with_receipts(&rs));
    assert!(
        matches!(
            e,
            DecodeError::ResultShape {
                block: 100,
                method: "eth_getBlockReceipts",
                ..
            }
        ),
        "{e:?}"
    );
    // A block answered with an array, receipts with an object or a string.
    let e = err(&raw(100, 100, false, body(&[env(0, "[]")])));
    assert!(
        matches!(e, DecodeError::ResultKind { block: 100, .. }),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    let e = err(&raw(
        100,
        100,
        true,
        body(&[env(0, &rich_block()), env(1, "\"0x\"")]),
    ));
    assert!(
        matches!(
            e,
            DecodeError::ResultKind {
                method: "eth_getBlockReceipts",
                got: "a string",
                ..
            }
        ),
        "{e:?}"
    );
    // Valid JSON, not a batch answer at all.
    let e = err(&raw(100, 100, false, b"[1,2]".to_vec()));
    assert!(matches!(e, DecodeError::Shape { .. }), "{e:?}");
}

#[test]
fn bad_values_name_the_field() {
    let blk = rich_block().replacen("\"value\": \"0x0\"", "\"value\": \"0xzz\"", 1);
    let e = err(&raw(100, 100, false, body(&[env(0, &blk)])));
    match &e {
        DecodeError::Field {
            at:
                At {
                    block: Some(100),
                    item: Item::Transaction(1),
                },
            source,
        } => {
            assert_eq!(source.field, "value");
            assert_eq!(source.value, "0xzz");
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.is_retryable());
    let rs = rich_receipts().replace("\"1e-05\"", "\"abc\"");
    let e = err(&with_receipts(&rs));
    assert!(
        matches!(&e, DecodeError::Field { at: At { item: Item::Transaction(1), .. }, source } if source.field == "receipt_l1_fee_scalar"),
        "{e:?}"
    );
    // Quantities beyond 256 bits and "0x" without digits.
    let blk = rich_block().replacen(
        "\"gas\": \"0x5208\"",
        &format!("\"gas\": \"0x1{}\"", "0".repeat(64)),
        1,
    );
    assert!(matches!(
        err(&raw(100, 100, false, body(&[env(0, &blk)]))),
        DecodeError::Field { .. }
    ));
    let blk = rich_block().replacen("\"timestamp\": \"0x65ea9d00\"", "\"timestamp\": \"0x\"", 1);
    assert!(matches!(
        err(&raw(100, 100, false, body(&[env(0, &blk)]))),
        DecodeError::Field {
            at: At {
                item: Item::Block,
                ..
            },
            ..
        }
    ));
    let e = err(&raw(5, 4, false, b"[]".to_vec()));
    assert!(matches!(e, DecodeError::InvalidJob { .. }));
}

#[test]
fn parse_only_counts_transactions() {
    assert_eq!(parse_only(&rich_raw().body).unwrap(), 6);
    let empty = fixture("block_empty.json");
    assert_eq!(parse_only(&body(&[env(2, &empty)])).unwrap(), 0);
}

#[test]
fn receipts_without_a_block() {
    let o = |format| DecodeOptions {
        entities: EntitySet::of(&[Entity::Receipts, Entity::Logs, Entity::TokenTransfers]),
        format,
    };
    let r = decode_receipts(rich_receipts().as_bytes(), &o(RowFormat::Json), None).unwrap();
    assert_eq!(r.counts.receipts, 6);
    assert_eq!(r.rows[Entity::TokenTransfers as usize].len(), 6);
    assert_eq!(r.counts.malformed_transfers, 7);
    let logs = row_texts(&r.rows[Entity::Logs as usize]);
    assert_eq!(get(&logs[0], "block_number"), "100");
    assert_eq!(get(&logs[0], "block_timestamp"), "null");
    assert_eq!(get(&logs[0], "item_timestamp"), "null");
    // One receipt object, with a known block time.
    let one = receipts_with(|v| v.truncate(1));
    let one = &one[1..one.len() - 1];
    let r = decode_receipts(one.as_bytes(), &o(RowFormat::Json), Some(1709874432)).unwrap();
    let rs = row_texts(&r.rows[Entity::Receipts as usize]);
    assert_eq!(rs.len(), 1);
    assert_eq!(get(&rs[0], "item_timestamp"), q("2024-03-08T05:07:12Z"));
    let r = decode_receipts(one.as_bytes(), &o(RowFormat::Csv), None).unwrap();
    assert_eq!(r.rows[Entity::Receipts as usize].len(), 1);
    assert!(decode_receipts(b"[{\"x\":1}]", &o(RowFormat::Csv), None).is_err());
    assert!(decode_receipts(b"[", &o(RowFormat::Csv), None)
        .unwrap_err()
        .is_retryable());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Damaged answers (truncated, a byte changed) never panic: they decode or fail cleanly.
    #[test]
    fn damaged_bodies_never_panic(cut in 0usize..30_000, pos in 0usize..30_000, byte: u8) {
        let mut b = rich_raw().body;
        let n = b.len();
        b[pos % n] = byte;
        b.truncate(n - cut % n);
        for format in [RowFormat::Json, RowFormat::Csv] {
            let _ = decode_batch(&raw(100, 100, true, b.clone()), &opts(format));
        }
        let _ = parse_only(&b);
    }
}
