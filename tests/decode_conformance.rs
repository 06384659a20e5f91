//! Conformance of the decode stage with ethereum-etl 2.4.2: every shared fixture block that has
//! oracle output is decoded from a JSON-RPC batch answer built the way a node sends it (answers
//! in reversed order, to prove id matching) and every field ethereum-etl wrote is compared.
//!
//! Deliberate differences, handled explicitly below:
//! - ERC-1155 `TransferSingle`/`TransferBatch` rows (ethetl only) are left out before comparing
//!   token transfers, because ethereum-etl does not extract them.
//! - CSV `withdrawals`: ethereum-etl writes the objects comma-joined without brackets, ethetl a
//!   JSON array; the expected cell is wrapped in `[ ]` and both are compared as JSON.

mod common;

use common::{is_erc1155, json_eq, parse_csv, read_text, row_eq, row_texts, shared_fixtures};
use ethetl::decode::{csv_header, decode_batch, decode_receipts, DecodeOptions};
use ethetl::msg::{EntitySet, RangeJob, RawBatch, RowBuf};
use ethetl::{Entity, RowFormat};
use sonic_rs::LazyValue;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    dirs: usize,
    blocks: usize,
    json_rows: BTreeMap<&'static str, usize>,
    json_fields: usize,
    csv_rows: BTreeMap<&'static str, usize>,
    csv_cells: usize,
    erc1155_rows_left_out: usize,
    failures: Vec<String>,
}

/// Compares JSON rows with expected JSON lines (`ordered`: stream items keep key order).
fn compare_json(
    t: &mut Tally,
    what: &str,
    label: &'static str,
    expected: &[String],
    got: &[String],
    ordered: bool,
) {
    let got: Vec<&String> = if label.contains("token_transfer") {
        let before = got.len();
        let v: Vec<_> = got.iter().filter(|r| !is_erc1155(r)).collect();
        t.erc1155_rows_left_out += before - v.len();
        v
    } else {
        got.iter().collect()
    };
    if expected.len() != got.len() {
        t.failures.push(format!(
            "{what} {label}: {} expected rows, {} ours",
            expected.len(),
            got.len()
        ));
        return;
    }
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        match row_eq(e, g, ordered) {
            Ok(n) => {
                t.json_fields += n;
                *t.json_rows.entry(label).or_default() += 1;
            }
            Err(msg) => {
                t.failures.push(format!("{what} {label} row {i}: {msg}"));
                return;
            }
        }
    }
}

/// Compares our CSV rows (header from `csv_header`) with an expected ethereum-etl CSV file.
fn compare_csv(t: &mut Tally, what: &str, entity: Entity, expected_text: &str, ours: &RowBuf) {
    let label = entity.name();
    let header = csv_header(entity);
    let csv_label: &'static str = match entity {
        Entity::Blocks => "blocks.csv",
        Entity::Transactions => "transactions.csv",
        Entity::Logs => "logs.csv",
        Entity::TokenTransfers => "token_transfers.csv",
        Entity::Receipts => "receipts.csv",
        Entity::Reorgs => unreachable!("reorg rows are not decoded"),
    };
    assert!(header.ends_with("\r\n"));
    let our_text = format!("{header}{}", row_texts(ours).concat());
    let mut ours_rows = parse_csv(&our_text);
    let our_header = ours_rows.remove(0);
    if entity == Entity::TokenTransfers {
        let col = our_header
            .iter()
            .position(|c| c == "token_standard")
            .unwrap();
        let before = ours_rows.len();
        ours_rows.retain(|r| r[col] != "erc1155");
        t.erc1155_rows_left_out += before - ours_rows.len();
    }
    if expected_text.is_empty() {
        // ethereum-etl writes a 0-byte file (no header) when there are no rows.
        if !ours_rows.is_empty() {
            t.failures.push(format!(
                "{what} {label}.csv: expected no rows, ours {}",
                ours_rows.len()
            ));
        }
        return;
    }
    let mut exp_rows = parse_csv(expected_text);
    let exp_header = exp_rows.remove(0);
    if our_header.len() < exp_header.len() || our_header[..exp_header.len()] != exp_header[..] {
        t.failures.push(format!(
            "{what} {label}.csv: header {our_header:?} does not start with {exp_header:?}"
        ));
        return;
    }
    if exp_rows.len() != ours_rows.len() {
        t.failures.push(format!(
            "{what} {label}.csv: {} expected rows, {} ours",
            exp_rows.len(),
            ours_rows.len()
        ));
        return;
    }
    for (i, (e, g)) in exp_rows.iter().zip(&ours_rows).enumerate() {
        if g.len() != our_header.len() {
            t.failures.push(format!(
                "{what} {label}.csv row {i}: {} cells, header has {}",
                g.len(),
                our_header.len()
            ));
            return;
        }
        for (c, name) in exp_header.iter().enumerate() {
            let ok = if name == "withdrawals" && !e[c].is_empty() {
                // Deliberate difference: ethetl writes a JSON array.
                let exp = format!("[{}]", e[c]);
                let ev: LazyValue = sonic_rs::get(&exp, &[] as &[&str]).unwrap();
                match sonic_rs::get(&g[c], &[] as &[&str]) {
                    Ok(gv) => json_eq(name, &ev, &gv).is_ok(),
                    Err(_) => false,
                }
            } else {
                e[c] == g[c]
            };
            if !ok {
                t.failures.push(format!(
                    "{what} {label}.csv row {i} column {name}: expected {:?} got {:?}",
                    e[c], g[c]
                ));
                return;
            }
            t.csv_cells += 1;
        }
        *t.csv_rows.entry(csv_label).or_default() += 1;
    }
}

fn lines(p: &Path) -> Vec<String> {
    read_text(p).lines().map(str::to_owned).collect()
}

/// A batch answer body for one block, envelopes in reversed order (receipts first).
fn batch_body(block: &str, receipts: Option<&str>) -> Vec<u8> {
    let mut envs = vec![format!(r#"{{"jsonrpc":"2.0","id":0,"result":{block}}}"#)];
    if let Some(r) = receipts {
        envs.push(format!(r#"{{"jsonrpc":"2.0","id":1,"result":{r}}}"#));
    }
    envs.reverse();
    format!("[{}]", envs.join(",")).into_bytes()
}

fn stream_items(p: &Path, ty: &str) -> Vec<String> {
    let tag = format!("{{\"type\": \"{ty}\"");
    lines(p)
        .into_iter()
        .filter(|l| l.starts_with(&tag))
        .collect()
}

fn export_label(e: Entity) -> &'static str {
    match e {
        Entity::Blocks => "blocks.json",
        Entity::Transactions => "transactions.json",
        Entity::Logs => "logs.json",
        Entity::TokenTransfers => "token_transfers.json",
        Entity::Receipts => "receipts.json",
        Entity::Reorgs => unreachable!("reorg rows are not decoded"),
    }
}

fn check_block_dir(t: &mut Tally, what: &str, rpc: &Path, exp: &Path) {
    let number: u64 = rpc.file_name().unwrap().to_str().unwrap().parse().unwrap();
    let block_json = read_text(&rpc.join("eth_getBlockByNumber.json"));
    let receipts_path = rpc.join("eth_getBlockReceipts.json");
    let receipts_json = receipts_path.exists().then(|| read_text(&receipts_path));
    let with_receipts = receipts_json.is_some();
    let body = batch_body(&block_json, receipts_json.as_deref());
    let entities = if with_receipts {
        EntitySet::of(&Entity::ALL)
    } else {
        EntitySet::of(&[Entity::Blocks, Entity::Transactions])
    };
    let mut decoded = Vec::new();
    for format in [RowFormat::Json, RowFormat::Csv] {
        let raw = RawBatch {
            job: RangeJob {
                seq: 7,
                start: number,
                end: number,
                attempt: 0,
            },
            endpoint: 0,
            with_receipts,
            body: body.clone(),
            depth: None,
        };
        match decode_batch(&raw, &DecodeOptions { entities, format }) {
            Ok(d) => decoded.push(d),
            Err(e) => {
                t.failures.push(format!("{what}: decode failed: {e:?}"));
                return;
            }
        }
    }
    let (json, csv) = (&decoded[0], &decoded[1]);
    assert_eq!((json.seq, json.start, json.end), (7, number, number));
    assert_eq!(json.blocks.len(), 1);
    assert_eq!(json.blocks[0].number, number);
    assert_eq!(json.counts.rpc_bytes, body.len() as u64);
    assert_eq!(json.counts.malformed_transfers, 0, "{what}");
    t.blocks += 1;

    let stream = exp.join("stream.jsonl");
    if stream.exists() {
        for (ty, e) in [
            ("block", Entity::Blocks),
            ("transaction", Entity::Transactions),
            ("log", Entity::Logs),
            ("token_transfer", Entity::TokenTransfers),
        ] {
            let expected = stream_items(&stream, ty);
            let label = match e {
                Entity::Blocks => "stream block",
                Entity::Transactions => "stream transaction",
                Entity::Logs => "stream log",
                _ => "stream token_transfer",
            };
            compare_json(t, what, label, &expected, &row_texts(json.rows(e)), true);
        }
    }
    // Export JSON files: every field equal (key order differs from stream items).
    for e in Entity::ALL {
        if ethetl::decode::dataset::dataset(e).needs_receipts() && !with_receipts {
            continue;
        }
        let p = exp.join(format!("{}.json", e.name()));
        if p.exists() {
            let label = export_label(e);
            compare_json(t, what, label, &lines(&p), &row_texts(json.rows(e)), false);
        }
        let p = exp.join(format!("{}.csv", e.name()));
        if p.exists() {
            compare_csv(t, what, e, &read_text(&p), csv.rows(e));
        }
    }
}

fn check_receipts_dir(t: &mut Tally, what: &str, rpc: &Path, exp: &Path) {
    let mut docs = Vec::new();
    let all = rpc.join("eth_getBlockReceipts.json");
    if all.exists() {
        docs.push(read_text(&all));
    }
    let single = rpc.join("eth_getTransactionReceipt");
    if single.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&single)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        docs.extend(files.iter().map(|p| read_text(p)));
    }
    assert!(!docs.is_empty(), "{what}: no receipts");
    let entities = EntitySet::of(&[Entity::Receipts, Entity::Logs, Entity::TokenTransfers]);
    for format in [RowFormat::Json, RowFormat::Csv] {
        let mut rows: [RowBuf; Entity::COUNT] = Default::default();
        for d in &docs {
            match decode_receipts(d.as_bytes(), &DecodeOptions { entities, format }, None) {
                Ok(r) => {
                    for e in Entity::ALL {
                        let (dst, src) = (&mut rows[e as usize], &r.rows[e as usize]);
                        let base = dst.data.len() as u32;
                        dst.data.extend_from_slice(&src.data);
                        dst.rows
                            .extend(src.rows.iter().map(|m| ethetl::msg::RowMeta {
                                end: m.end + base,
                                block: m.block,
                            }));
                    }
                }
                Err(e) => {
                    t.failures
                        .push(format!("{what}: decode_receipts failed: {e:?}"));
                    return;
                }
            }
        }
        for e in [Entity::Receipts, Entity::Logs, Entity::TokenTransfers] {
            let buf = &rows[e as usize];
            match format {
                RowFormat::Json => {
                    let p = exp.join(format!("{}.json", e.name()));
                    compare_json(t, what, export_label(e), &lines(&p), &row_texts(buf), false);
                }
                RowFormat::Csv => {
                    let p = exp.join(format!("{}.csv", e.name()));
                    compare_csv(t, what, e, &read_text(&p), buf);
                }
            }
        }
    }
}

#[test]
fn matches_ethereum_etl_2_4_2() {
    let Some(root) = shared_fixtures() else {
        return;
    };
    let expected_root = root.join("expected/ethereum-etl-2.4.2");
    let mut dirs: Vec<(String, PathBuf, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(&expected_root).unwrap() {
        let p = entry.unwrap().path();
        if !p.is_dir() {
            continue;
        }
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if name.parse::<u64>().is_ok() {
            dirs.push((
                format!("mainnet/{name}"),
                root.join("rpc/mainnet").join(&name),
                p,
            ));
        } else {
            for sub in std::fs::read_dir(&p).unwrap() {
                let s = sub.unwrap().path();
                let block = s.file_name().unwrap().to_str().unwrap().to_owned();
                dirs.push((
                    format!("{name}/{block}"),
                    root.join("rpc").join(&name).join(&block),
                    s,
                ));
            }
        }
    }
    dirs.sort();
    let mut t = Tally::default();
    let mut receipts_only = Vec::new();
    for (what, rpc, exp) in &dirs {
        t.dirs += 1;
        if rpc.join("eth_getBlockByNumber.json").exists() {
            check_block_dir(&mut t, what, rpc, exp);
        } else {
            receipts_only.push(what.clone());
            check_receipts_dir(&mut t, what, rpc, exp);
        }
    }

    let mut report = String::new();
    let _ = writeln!(
        report,
        "conformance: {} expected dirs, {} blocks decoded from batch answers, receipts-only sets: {}",
        t.dirs,
        t.blocks,
        receipts_only.join(" ")
    );
    let _ = writeln!(
        report,
        "  JSON rows compared: {:?} ({} fields)",
        t.json_rows, t.json_fields
    );
    let _ = writeln!(
        report,
        "  CSV rows compared: {:?} ({} cells)",
        t.csv_rows, t.csv_cells
    );
    let _ = writeln!(
        report,
        "  ERC-1155 rows left out (ethetl only): {}",
        t.erc1155_rows_left_out
    );
    println!("{report}");
    assert!(
        t.failures.is_empty(),
        "{} differences:\n{}",
        t.failures.len(),
        t.failures[..t.failures.len().min(20)].join("\n")
    );
    // The fixture set: 57 hydrated blocks (5 with receipts) and 7 receipts-only sets.
    assert_eq!(t.blocks, 57, "{report}");
    assert_eq!(receipts_only.len(), 7, "{report}");
    for label in ["stream token_transfer", "token_transfers.json"] {
        assert!(t.json_rows.get(label).copied().unwrap_or(0) > 0, "{label}");
    }
    assert!(t.csv_rows.get("token_transfers.csv").copied().unwrap_or(0) > 0);
}
