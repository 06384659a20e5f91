//! The dev node over real HTTP: fixture answers byte-for-byte, batches, geth error codes,
//! `eth_getLogs` filters, generated-chain consistency, determinism and realistic shapes, and the
//! `ethetl-devnode` binary (first stdout line, signals, `--exit-after`, loopback only,
//! `--version`/`-V` and `--help`/`-h`).

mod common;

use common::{mainnet_fixtures, read_text, run_devnode, stderr_of, DevnodeProcess};
use ethetl_devnode::{
    generate_chain, DevNode, DevNodeError, Era, GenConfig, GeneratedChain, NodeConfig, UnknownBlock,
};
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Duration;

/// How long a run of the binary that should end at once may take.
const LIMIT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------------

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

struct Reply {
    status: u16,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_length: Option<String>,
    body: Vec<u8>,
}

fn post(url: &str, body: &str) -> Reply {
    post_with(url, body, &[])
}

fn post_with(url: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().post(url).header("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(body).expect("HTTP request");
    let h = |k: &str| {
        resp.headers()
            .get(k)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (content_type, content_encoding, content_length) = (
        h("content-type"),
        h("content-encoding"),
        h("content-length"),
    );
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .expect("body");
    Reply {
        status,
        content_type,
        content_encoding,
        content_length,
        body,
    }
}

fn call_body(method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#)
}

/// The raw bytes of `result` in a single-call response (panics on an error response).
fn result_raw(body: &[u8]) -> String {
    let v: Value = sonic_rs::from_slice(body).expect("response is JSON");
    assert!(
        v.get("error").is_none(),
        "unexpected error: {}",
        String::from_utf8_lossy(body)
    );
    let lv = sonic_rs::get(body, ["result"]).expect("result present");
    lv.as_raw_str().to_string()
}

fn call(url: &str, method: &str, params: &str) -> String {
    result_raw(&post(url, &call_body(method, params)).body)
}

/// `(code, message)` of an error response.
fn call_err(url: &str, body: &str) -> (i64, String) {
    let v: Value = sonic_rs::from_slice(&post(url, body).body).expect("JSON");
    let e = v
        .get("error")
        .unwrap_or_else(|| panic!("no error for {body}"));
    (
        e.get("code").unwrap().as_i64().unwrap(),
        e.get("message").unwrap().as_str().unwrap().into(),
    )
}

fn parse(s: &str) -> Value {
    sonic_rs::from_str(s).expect("valid JSON")
}

fn hex_u64(v: &Value) -> u64 {
    let s = v.as_str().expect("hex string");
    u64::from_str_radix(s.strip_prefix("0x").expect("0x"), 16).expect("hex")
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k)
        .and_then(|x| x.as_str())
        .unwrap_or_else(|| panic!("missing string {k}"))
}

fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(|x| x.as_array())
        .map(|a| &a[..])
        .unwrap_or_else(|| panic!("missing array {k}"))
}

fn block_dirs(chain: &std::path::Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(chain)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let n = e.file_name().to_str()?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    out.sort();
    out
}

// ------------------------------------------------------------------------------------------------
// fixtures over HTTP
// ------------------------------------------------------------------------------------------------

#[test]
fn fixture_blocks_and_receipts_are_served_byte_for_byte() {
    let Some(dir) = mainnet_fixtures() else {
        return;
    };
    let node = DevNode::start(NodeConfig::fixtures(&dir)).unwrap();
    let url = node.url();
    let mut checked_blocks = 0;
    let mut checked_receipts = 0;
    for (n, path) in block_dirs(&dir) {
        let block_file = path.join("eth_getBlockByNumber.json");
        if block_file.exists() {
            let file = read_text(&block_file);
            let got = call(
                &url,
                "eth_getBlockByNumber",
                &format!(r#"["0x{n:x}",true]"#),
            );
            assert_eq!(got, file, "block {n}");
            let hash = s(&parse(&file), "hash").to_string();
            let by_hash = call(&url, "eth_getBlockByHash", &format!(r#"["{hash}",true]"#));
            assert_eq!(by_hash, file, "block {n} by hash");

            // hashes only: the same object with transactions replaced by their hashes
            let thin = parse(&call(
                &url,
                "eth_getBlockByNumber",
                &format!(r#"["0x{n:x}",false]"#),
            ));
            let fat = parse(&file);
            let fat_obj = fat.as_object().unwrap();
            let thin_obj = thin.as_object().unwrap();
            let keys =
                |o: &sonic_rs::Object| o.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>();
            assert_eq!(
                keys(thin_obj),
                keys(fat_obj),
                "block {n}: same keys, same order"
            );
            for (k, v) in fat_obj.iter() {
                if k != "transactions" {
                    assert_eq!(thin.get(k).unwrap(), v, "block {n} field {k}");
                }
            }
            let want: Vec<&str> = arr(&fat, "transactions")
                .iter()
                .map(|t| s(t, "hash"))
                .collect();
            let got: Vec<&str> = arr(&thin, "transactions")
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            assert_eq!(got, want, "block {n} tx hashes");
            checked_blocks += 1;
        }
        let receipts_file = path.join("eth_getBlockReceipts.json");
        if receipts_file.exists() {
            let file = read_text(&receipts_file);
            assert_eq!(
                call(&url, "eth_getBlockReceipts", &format!(r#"["0x{n:x}"]"#)),
                file
            );
            assert_eq!(
                call(
                    &url,
                    "eth_getBlockReceipts",
                    &format!(r#"[{{"blockNumber":"0x{n:x}"}}]"#)
                ),
                file
            );
            let receipts = parse(&file);
            let list = receipts.as_array().unwrap();
            if let Some(bh) = list
                .first()
                .and_then(|r| r.get("blockHash"))
                .and_then(|h| h.as_str())
            {
                assert_eq!(
                    call(&url, "eth_getBlockReceipts", &format!(r#"["{bh}"]"#)),
                    file
                );
                assert_eq!(
                    call(
                        &url,
                        "eth_getBlockReceipts",
                        &format!(r#"[{{"blockHash":"{bh}"}}]"#)
                    ),
                    file
                );
            }
            // single receipts are exact slices of the file and equal to its i-th element
            for r in list.iter().step_by(17) {
                let tx = s(r, "transactionHash");
                let got = call(&url, "eth_getTransactionReceipt", &format!(r#"["{tx}"]"#));
                assert!(
                    file.contains(&got),
                    "block {n} receipt {tx} is a slice of the file"
                );
                assert_eq!(&parse(&got), r, "block {n} receipt {tx}");
                checked_receipts += 1;
            }
        }
        let single_dir = path.join("eth_getTransactionReceipt");
        if single_dir.is_dir() {
            for f in std::fs::read_dir(&single_dir).unwrap() {
                let f = f.unwrap().path();
                let tx = f.file_stem().unwrap().to_str().unwrap().to_string();
                let got = call(&url, "eth_getTransactionReceipt", &format!(r#"["{tx}"]"#));
                assert_eq!(got, read_text(&f), "single receipt {tx}");
                checked_receipts += 1;
            }
        }
    }
    assert!(checked_blocks >= 50, "checked {checked_blocks} blocks");
    assert!(
        checked_receipts >= 30,
        "checked {checked_receipts} receipts"
    );
    let st = node.stats();
    assert!(
        st.requests > 100 && st.calls == st.requests && st.errors == 0,
        "{st:?}"
    );
    node.shutdown();
}

#[test]
fn fixture_heads_tags_and_identity() {
    let Some(dir) = mainnet_fixtures() else {
        return;
    };
    let node = DevNode::start(NodeConfig::fixtures(&dir)).unwrap();
    let url = node.url();
    // the highest block directory of the fixture set (see fixtures/README.md)
    assert_eq!(call(&url, "eth_blockNumber", "[]"), r#""0x17a2d23""#);
    assert_eq!(call(&url, "eth_chainId", "[]"), r#""0x1""#);
    assert_eq!(call(&url, "net_version", "[]"), r#""1""#);
    assert!(call(&url, "web3_clientVersion", "[]").starts_with("\"ethetl-devnode/"));
    assert_eq!(call(&url, "eth_syncing", "[]"), "false");
    let latest = read_text(&dir.join("24784163/eth_getBlockByNumber.json"));
    for tag in ["latest", "pending", "safe", "finalized"] {
        assert_eq!(
            call(&url, "eth_getBlockByNumber", &format!(r#"["{tag}",true]"#)),
            latest
        );
    }
    let earliest = read_text(&dir.join("200000/eth_getBlockByNumber.json"));
    assert_eq!(
        call(&url, "eth_getBlockByNumber", r#"["earliest",true]"#),
        earliest
    );
    // `latest` for receipts: the highest block that has receipts
    let newest_receipts = read_text(&dir.join("23839615/eth_getBlockReceipts.json"));
    assert_eq!(
        call(&url, "eth_getBlockReceipts", r#"["latest"]"#),
        newest_receipts
    );
    node.shutdown();

    // --latest pins the head; "latest" falls back to the highest block file at or below it
    let node = DevNode::start(NodeConfig {
        latest: Some(19_433_903),
        ..NodeConfig::fixtures(&dir)
    })
    .unwrap();
    let url = node.url();
    assert_eq!(call(&url, "eth_blockNumber", "[]"), r#""0x12889af""#);
    let b = read_text(&dir.join("19433903/eth_getBlockByNumber.json"));
    assert_eq!(call(&url, "eth_getBlockByNumber", r#"["latest",true]"#), b);
    let node2 = DevNode::start(NodeConfig {
        latest: Some(19_433_950),
        ..NodeConfig::fixtures(&dir)
    })
    .unwrap();
    assert_eq!(
        call(&node2.url(), "eth_getBlockByNumber", r#"["latest",true]"#),
        b
    );
}

#[test]
fn http_is_plain_json_with_content_length() {
    let Some(dir) = mainnet_fixtures() else {
        return;
    };
    let node = DevNode::start(NodeConfig::fixtures(&dir)).unwrap();
    let file = read_text(&dir.join("19433903/eth_getBlockReceipts.json"));
    let r = post_with(
        &node.url(),
        &call_body("eth_getBlockReceipts", r#"["0x12889af"]"#),
        &[("Accept-Encoding", "gzip, deflate, br")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        r.content_encoding, None,
        "identity encoding whatever the client accepts"
    );
    assert_eq!(r.content_length, Some(r.body.len().to_string()));
    assert_eq!(result_raw(&r.body), file);

    let mut resp = agent().get(&node.url()).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let status = parse(&resp.body_mut().read_to_string().unwrap());
    assert_eq!(status.get("head").unwrap().as_u64(), Some(24_784_163));
}

// ------------------------------------------------------------------------------------------------
// batches and errors
// ------------------------------------------------------------------------------------------------

#[test]
fn batch_answers_each_call_in_request_order() {
    let Some(dir) = mainnet_fixtures() else {
        return;
    };
    let node = DevNode::start(NodeConfig::fixtures(&dir)).unwrap();
    let url = node.url();
    let body = r#"[
        {"jsonrpc":"2.0","id":10,"method":"eth_getBlockByNumber","params":["0x12889af",true]},
        {"jsonrpc":"2.0","id":"r","method":"eth_getBlockReceipts","params":["0x12889af"]},
        {"jsonrpc":"2.0","id":12,"method":"eth_nope","params":[]},
        {"jsonrpc":"2.0","id":13,"method":"eth_getBlockByNumber","params":["0x1",true]},
        {"jsonrpc":"2.0","id":14,"method":"eth_blockNumber"},
        42
    ]"#;
    let r = post(&url, body);
    let v: Value = sonic_rs::from_slice(&r.body).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 6);
    let ids: Vec<String> = items
        .iter()
        .map(|x| sonic_rs::to_string(x.get("id").unwrap()).unwrap())
        .collect();
    assert_eq!(ids, ["10", "\"r\"", "12", "13", "14", "null"]);
    assert_eq!(
        sonic_rs::get(&r.body[..], [0usize])
            .unwrap()
            .get("result")
            .unwrap()
            .as_raw_str(),
        read_text(&dir.join("19433903/eth_getBlockByNumber.json"))
    );
    assert_eq!(
        sonic_rs::get(&r.body[..], [1usize])
            .unwrap()
            .get("result")
            .unwrap()
            .as_raw_str(),
        read_text(&dir.join("19433903/eth_getBlockReceipts.json"))
    );
    assert_eq!(
        items[2].get("error").unwrap().get("code").unwrap().as_i64(),
        Some(-32601)
    );
    assert!(items[3].get("result").unwrap().is_null());
    assert_eq!(items[4].get("result").unwrap().as_str(), Some("0x17a2d23"));
    assert_eq!(
        items[5].get("error").unwrap().get("code").unwrap().as_i64(),
        Some(-32600)
    );
    let st = node.stats();
    assert_eq!((st.requests, st.calls, st.errors), (1, 6, 2));
    assert_eq!(st.bytes_served, r.body.len() as u64);
}

#[test]
fn errors_use_geth_codes() {
    let Some(dir) = mainnet_fixtures() else {
        return;
    };
    let node = DevNode::start(NodeConfig::fixtures(&dir)).unwrap();
    let url = node.url();
    let e = |body: &str| call_err(&url, body);
    assert_eq!(e("{not json").0, -32700);
    assert_eq!(e("[]"), (-32600, "empty batch".into()));
    assert_eq!(e("7").0, -32600);
    assert_eq!(e(r#"{"id":1,"method":"eth_chainId"}"#).0, -32600); // no "jsonrpc":"2.0"
    assert_eq!(e(r#"{"jsonrpc":"2.0","id":1,"method":5}"#).0, -32600);
    assert_eq!(e(&call_body("eth_foo", "[]")).0, -32601);
    for bad in [
        r#"["12889af",true]"#, // no 0x
        r#"["0x",true]"#,      // empty
        r#"["0xzz",true]"#,    // not hex
        r#"[12,true]"#,        // not a string
        r#"["0x1"]"#,          // missing fullTx
        r#"["0x1","yes"]"#,    // fullTx not a bool
        r#"["0x1",true,1]"#,   // too many
    ] {
        assert_eq!(
            e(&call_body("eth_getBlockByNumber", bad)).0,
            -32602,
            "{bad}"
        );
    }
    assert_eq!(
        e(&call_body("eth_getBlockByHash", r#"["0x1234",true]"#)).0,
        -32602
    );
    assert_eq!(
        e(&call_body("eth_getTransactionReceipt", r#"["0x12"]"#)).0,
        -32602
    );
    assert_eq!(e(&call_body("eth_getLogs", r#"["0x1"]"#)).0, -32602);

    // unknown blocks: null for blocks (geth), "header not found" for receipts
    assert_eq!(
        call(&url, "eth_getBlockByNumber", r#"["0x5",true]"#),
        "null"
    );
    let zero = format!("0x{}", "00".repeat(32));
    assert_eq!(
        call(&url, "eth_getBlockByHash", &format!(r#"["{zero}",false]"#)),
        "null"
    );
    assert_eq!(
        e(&call_body("eth_getBlockReceipts", r#"["0x5"]"#)),
        (-32000, "header not found".into())
    );
    // a known block without receipts (200000 has only a block; 11017338 only a trace)
    for n in [200_000u64, 11_017_338] {
        assert_eq!(
            e(&call_body(
                "eth_getBlockReceipts",
                &format!(r#"["0x{n:x}"]"#)
            )),
            (-32000, "block receipts not found".into())
        );
    }
    assert_eq!(
        call(&url, "eth_getTransactionReceipt", &format!(r#"["{zero}"]"#)),
        "null"
    );

    let strict = DevNode::start(NodeConfig {
        unknown_block: UnknownBlock::Error,
        ..NodeConfig::fixtures(&dir)
    })
    .unwrap();
    assert_eq!(
        call_err(
            &strict.url(),
            &call_body("eth_getBlockByNumber", r#"["0x5",true]"#)
        ),
        (-32000, "header not found".into())
    );
}

#[test]
fn oversized_requests_and_other_verbs_are_refused() {
    let node = DevNode::start(NodeConfig::generated(GenConfig {
        blocks: 1,
        ..Default::default()
    }))
    .unwrap();
    let big = format!("[{}]", "1,".repeat(17 << 20));
    let r = post(&node.url(), &big);
    assert_eq!(r.status, 413);
    let resp = agent().put(&node.url()).send("x").unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

/// Reads one HTTP response (head + Content-Length body) from `r`.
fn read_response(r: &mut BufReader<std::net::TcpStream>) -> (u16, Vec<u8>) {
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status = status_line[9..12].parse().unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    std::io::Read::read_exact(r, &mut body).unwrap();
    (status, body)
}

#[test]
fn http_layer_handles_chunked_pipelined_continue_and_bad_requests() {
    use std::io::Write;
    let node = DevNode::start(NodeConfig::generated(GenConfig {
        blocks: 2,
        txs_per_block: Some(1),
        ..Default::default()
    }))
    .unwrap();
    let stream = std::net::TcpStream::connect(node.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let call = r#"{"jsonrpc":"2.0","id":5,"method":"eth_chainId"}"#;
    let want = br#"{"jsonrpc":"2.0","id":5,"result":"0x1"}"#;
    // chunked body, split in two chunks with an extension and a trailer
    let (a, b) = call.split_at(10);
    write!(
        w,
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nX-Trailer: 1\r\n\r\n",
        a.len(),
        b.len()
    )
    .unwrap();
    assert_eq!(read_response(&mut r), (200, want.to_vec()));
    // two pipelined requests in one write, answered in order
    let one = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{call}",
        call.len()
    );
    w.write_all(format!("{one}{one}").as_bytes()).unwrap();
    assert_eq!(read_response(&mut r), (200, want.to_vec()));
    assert_eq!(read_response(&mut r), (200, want.to_vec()));
    // Expect: 100-continue gets an interim response before the body is sent
    write!(
        w,
        "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        call.len()
    )
    .unwrap();
    let mut interim = String::new();
    r.read_line(&mut interim).unwrap();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    let mut blank = String::new();
    r.read_line(&mut blank).unwrap();
    w.write_all(call.as_bytes()).unwrap();
    assert_eq!(read_response(&mut r), (200, want.to_vec()));
    // HEAD: the status head without a body
    w.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = String::new();
    r.read_line(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"));
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
    }
    // a malformed request line gets 400 and the connection closes
    w.write_all(b"NOT HTTP\r\n\r\n").unwrap();
    let (status, _) = read_response(&mut r);
    assert_eq!(status, 400);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn non_loopback_binds_are_refused() {
    let cfg = NodeConfig {
        bind: "0.0.0.0:0".parse().unwrap(),
        ..NodeConfig::default()
    };
    assert!(matches!(
        DevNode::start(cfg),
        Err(DevNodeError::NonLoopback { .. })
    ));
}

#[test]
fn overlapping_sources_are_an_error() {
    let gen = GenConfig {
        blocks: 2,
        start_block: 10,
        txs_per_block: Some(1),
        ..Default::default()
    };
    let mut cfg = NodeConfig::generated(gen);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("11")).unwrap();
    cfg.fixtures.push(dir.path().to_path_buf());
    assert!(matches!(
        DevNode::start(cfg),
        Err(DevNodeError::DuplicateBlock { number: 11, .. })
    ));
}

// ------------------------------------------------------------------------------------------------
// eth_getLogs
// ------------------------------------------------------------------------------------------------

/// Per topic position: `None` = wildcard, else any of these.
type TopicFilter<'a> = Vec<Option<Vec<&'a str>>>;

/// A reference implementation of geth's log filter over parsed logs.
fn filter_logs<'a>(
    logs: &'a [Value],
    addresses: &[&str],
    topics: &[Option<Vec<&str>>],
) -> Vec<&'a Value> {
    logs.iter()
        .filter(|l| {
            let addr = s(l, "address").to_lowercase();
            if !addresses.is_empty() && !addresses.iter().any(|a| a.to_lowercase() == addr) {
                return false;
            }
            let lt = arr(l, "topics");
            if topics.len() > lt.len() {
                return false;
            }
            topics.iter().zip(lt).all(|(want, got)| match want {
                None => true,
                Some(w) => w
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(got.as_str().unwrap())),
            })
        })
        .collect()
}

#[test]
fn get_logs_filters_like_geth() {
    let Some(dir) = mainnet_fixtures() else {
        return;
    };
    let node = DevNode::start(NodeConfig::fixtures(&dir)).unwrap();
    let url = node.url();
    let mut all_logs = Vec::new();
    for n in [19_433_902u64, 19_433_903] {
        let receipts = parse(&read_text(
            &dir.join(format!("{n}/eth_getBlockReceipts.json")),
        ));
        for r in receipts.as_array().unwrap().iter() {
            all_logs.extend(arr(r, "logs").iter().cloned());
        }
    }
    let logs_of = |filter: &str| -> Vec<Value> {
        let raw = call(&url, "eth_getLogs", &format!("[{filter}]"));
        parse(&raw).as_array().unwrap().iter().cloned().collect()
    };
    let range = r#""fromBlock":"0x12889ae","toBlock":"0x12889af""#;
    let transfer = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";
    let weth = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2";
    let usdt = "0xdAC17F958D2ee523a2206206994597C13D831ec7";

    let got = logs_of(&format!("{{{range}}}"));
    assert_eq!(got.len(), all_logs.len());
    assert_eq!(got, all_logs, "whole range in block/log order");

    let cases: Vec<(String, Vec<&str>, TopicFilter)> = vec![
        (
            format!(r#"{{{range},"address":"{weth}"}}"#),
            vec![weth],
            vec![],
        ),
        (
            format!(r#"{{{range},"address":["{weth}","{usdt}"]}}"#),
            vec![weth, usdt],
            vec![],
        ),
        (
            format!(r#"{{{range},"topics":["{transfer}"]}}"#),
            vec![],
            vec![Some(vec![transfer])],
        ),
        (
            format!(r#"{{{range},"topics":["{transfer}",null,null,null]}}"#),
            vec![],
            vec![Some(vec![transfer]), None, None, None],
        ),
        (
            format!(
                r#"{{{range},"address":"{weth}","topics":[["{transfer}","0x{z}"]]}}"#,
                z = "00".repeat(32)
            ),
            vec![weth],
            vec![Some(vec![
                transfer,
                "0x0000000000000000000000000000000000000000000000000000000000000000",
            ])],
        ),
        (
            format!(
                r#"{{{range},"topics":[null,"0x000000000000000000000000e37e799d5077682fa0a244d46e5649f71457bd09"]}}"#
            ),
            vec![],
            vec![
                None,
                Some(vec![
                    "0x000000000000000000000000e37e799d5077682fa0a244d46e5649f71457bd09",
                ]),
            ],
        ),
        (
            format!(r#"{{{range},"topics":[["{transfer}",null]]}}"#),
            vec![],
            vec![None],
        ),
    ];
    for (filter, addrs, topics) in cases {
        let want: Vec<Value> = filter_logs(&all_logs, &addrs, &topics)
            .into_iter()
            .cloned()
            .collect();
        let got = logs_of(&filter);
        assert_eq!(got, want, "{filter}");
    }
    // a filter that matches something and a filter that matches nothing
    assert!(!logs_of(&format!(r#"{{{range},"address":"{weth}"}}"#)).is_empty());
    assert!(logs_of(&format!(r#"{{{range},"address":"0x{}"}}"#, "11".repeat(20))).is_empty());

    // by block hash: exactly that block's logs; logs are exact slices of the receipts file
    let file = read_text(&dir.join("19433903/eth_getBlockReceipts.json"));
    let bh = "0xb39d99cc81a35570c4d5765d9273cb282e424324cd5aae059cc00de7d59afb69";
    let raw = call(&url, "eth_getLogs", &format!(r#"[{{"blockHash":"{bh}"}}]"#));
    let got = parse(&raw);
    assert_eq!(got.as_array().unwrap().len(), 265);
    for l in got.as_array().unwrap().iter() {
        assert_eq!(s(l, "blockHash"), bh);
    }
    for l in sonic_rs::to_array_iter(raw.as_bytes()) {
        assert!(
            file.contains(l.unwrap().as_raw_str()),
            "each log is a slice of the receipts file"
        );
    }

    // errors
    let (code, _) = call_err(
        &url,
        &call_body("eth_getLogs", r#"[{"fromBlock":"0x2","toBlock":"0x1"}]"#),
    );
    assert_eq!(code, -32000);
    let (code, _) = call_err(
        &url,
        &call_body(
            "eth_getLogs",
            &format!(r#"[{{"blockHash":"{bh}","fromBlock":"0x1"}}]"#),
        ),
    );
    assert_eq!(code, -32602);
    let (code, msg) = call_err(
        &url,
        &call_body(
            "eth_getLogs",
            &format!(r#"[{{"blockHash":"0x{}"}}]"#, "00".repeat(32)),
        ),
    );
    assert_eq!((code, msg.as_str()), (-32000, "unknown block"));
    let (code, _) = call_err(
        &url,
        &call_body("eth_getLogs", r#"[{"topics":[null,null,null,null,null]}]"#),
    );
    assert_eq!(code, -32602);
    // a block with a stored eth_getLogs answer and no receipts (1000001: no logs)
    assert_eq!(
        call(
            &url,
            "eth_getLogs",
            r#"[{"fromBlock":"0xf4241","toBlock":"0xf4241"}]"#
        ),
        "[]"
    );
}

// ------------------------------------------------------------------------------------------------
// generated chains
// ------------------------------------------------------------------------------------------------

fn gen(blocks: u64, seed: u64, era: Era) -> GenConfig {
    GenConfig {
        blocks,
        start_block: 21_000_000,
        seed,
        txs_per_block: None,
        era,
        chain_id: 1,
    }
}

fn is_hex_of(v: &str, bytes: usize) -> bool {
    v.len() == 2 + 2 * bytes
        && v.starts_with("0x")
        && v[2..]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

fn is_qty(v: &str) -> bool {
    v.starts_with("0x")
        && v.len() > 2
        && (v == "0x0" || !v[2..].starts_with('0'))
        && v[2..]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Checks everything a consumer may rely on, block by block, from the parsed JSON only.
fn check_consistency(chain: &GeneratedChain) {
    let mut prev_hash: Option<String> = None;
    let mut prev_number: Option<u64> = None;
    for b in &chain.blocks {
        let block: Value = sonic_rs::from_slice(&b.block_json).unwrap();
        let thin: Value = sonic_rs::from_slice(&b.block_hashes_json).unwrap();
        let receipts: Value = sonic_rs::from_slice(&b.receipts_json).unwrap();
        let n = hex_u64(block.get("number").unwrap());
        assert_eq!(n, b.number);
        let hash = s(&block, "hash").to_string();
        assert!(is_hex_of(&hash, 32));
        if let (Some(ph), Some(pn)) = (&prev_hash, prev_number) {
            assert_eq!(n, pn + 1);
            assert_eq!(s(&block, "parentHash"), ph, "block {n} parentHash");
        }
        prev_hash = Some(hash.clone());
        prev_number = Some(n);
        assert!(is_hex_of(s(&block, "miner"), 20));
        for k in [
            "stateRoot",
            "receiptsRoot",
            "transactionsRoot",
            "mixHash",
            "sha3Uncles",
        ] {
            assert!(is_hex_of(s(&block, k), 32), "{k}");
        }
        assert!(is_hex_of(s(&block, "logsBloom"), 256));
        // header fields per era
        let era = b.era;
        let has = |k: &str| block.get(k).is_some();
        assert!(has("baseFeePerGas"));
        let post_shanghai = era != Era::London;
        let post_cancun = matches!(era, Era::Cancun | Era::Recent);
        let prague = era == Era::Recent;
        assert_eq!(has("withdrawalsRoot"), post_shanghai, "block {n} {era}");
        assert_eq!(has("withdrawals"), post_shanghai);
        for k in ["blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot"] {
            assert_eq!(has(k), post_cancun, "block {n} {era} {k}");
        }
        assert_eq!(has("requestsHash"), prague);
        assert_eq!(has("totalDifficulty"), !prague);
        if post_shanghai {
            let w = arr(&block, "withdrawals");
            assert_eq!(w.len(), 16);
            let keys: Vec<String> = w[0]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, _)| k.to_string())
                .collect();
            assert_eq!(keys, ["index", "validatorIndex", "address", "amount"]);
        }
        // header keys sorted, as geth marshals the header map
        let keys: Vec<String> = block
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);

        let txs = arr(&block, "transactions");
        let rs = receipts.as_array().unwrap();
        assert_eq!(rs.len(), txs.len(), "block {n}: one receipt per tx");
        let hashes: Vec<&str> = arr(&thin, "transactions")
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        assert_eq!(hashes.len(), txs.len());
        let mut cumulative = 0u64;
        let mut log_index = 0u64;
        let mut blob_gas = 0u64;
        for (i, (tx, r)) in txs.iter().zip(rs.iter()).enumerate() {
            let ctx = format!("block {n} tx {i}");
            assert_eq!(s(tx, "blockHash"), hash, "{ctx}");
            assert_eq!(hex_u64(tx.get("blockNumber").unwrap()), n);
            assert_eq!(hex_u64(tx.get("transactionIndex").unwrap()), i as u64);
            assert!(is_hex_of(s(tx, "hash"), 32));
            assert_eq!(s(tx, "hash"), hashes[i], "{ctx}: hashes-only block");
            assert!(is_hex_of(s(tx, "from"), 20));
            for k in ["gas", "gasPrice", "nonce", "value", "type", "v", "r", "s"] {
                assert!(is_qty(s(tx, k)), "{ctx} {k}={}", s(tx, k));
            }
            let ty = hex_u64(tx.get("type").unwrap());
            assert!(ty <= 4);
            let has = |k: &str| tx.get(k).is_some();
            assert_eq!(has("maxFeePerGas"), ty >= 2, "{ctx}");
            assert_eq!(has("maxPriorityFeePerGas"), ty >= 2, "{ctx}");
            assert_eq!(has("maxFeePerBlobGas"), ty == 3, "{ctx}");
            assert_eq!(has("blobVersionedHashes"), ty == 3, "{ctx}");
            assert_eq!(has("authorizationList"), ty == 4, "{ctx}");
            assert_eq!(has("accessList"), ty >= 1, "{ctx}");
            assert_eq!(has("yParity"), ty >= 1, "{ctx}");
            if ty >= 1 {
                assert_eq!(s(tx, "chainId"), "0x1");
                assert_eq!(s(tx, "v"), s(tx, "yParity"));
            }
            if ty == 3 {
                assert!(!arr(tx, "blobVersionedHashes").is_empty());
                assert!(post_cancun);
                for h in arr(tx, "blobVersionedHashes") {
                    assert!(h.as_str().unwrap().starts_with("0x01"));
                }
            }
            if ty == 4 {
                assert!(prague);
                let auths = arr(tx, "authorizationList");
                assert!(!auths.is_empty());
                let keys: Vec<String> = auths[0]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, _)| k.to_string())
                    .collect();
                assert_eq!(keys, ["chainId", "address", "nonce", "yParity", "r", "s"]);
            }
            if ty >= 2 {
                assert!(
                    hex_u64(tx.get("gasPrice").unwrap())
                        <= hex_u64(tx.get("maxFeePerGas").unwrap())
                );
            }
            let to_null = tx.get("to").unwrap().is_null();
            // receipt
            assert_eq!(s(r, "transactionHash"), s(tx, "hash"), "{ctx}");
            assert_eq!(hex_u64(r.get("transactionIndex").unwrap()), i as u64);
            assert_eq!(s(r, "blockHash"), hash);
            assert_eq!(hex_u64(r.get("blockNumber").unwrap()), n);
            assert_eq!(s(r, "from"), s(tx, "from"));
            assert_eq!(r.get("to").unwrap(), tx.get("to").unwrap());
            assert_eq!(s(r, "type"), s(tx, "type"));
            assert_eq!(s(r, "effectiveGasPrice"), s(tx, "gasPrice"));
            assert_eq!(
                r.get("contractAddress").unwrap().is_null(),
                !to_null,
                "{ctx}"
            );
            let used = hex_u64(r.get("gasUsed").unwrap());
            assert!(
                used >= 21_000 && used <= hex_u64(tx.get("gas").unwrap()),
                "{ctx}"
            );
            let cum = hex_u64(r.get("cumulativeGasUsed").unwrap());
            assert_eq!(cum, cumulative + used, "{ctx}");
            cumulative = cum;
            let status = s(r, "status");
            assert!(status == "0x1" || status == "0x0");
            let logs = arr(r, "logs");
            if status == "0x0" {
                assert!(logs.is_empty(), "{ctx}: failed txs have no logs");
            }
            if ty == 3 {
                blob_gas += hex_u64(r.get("blobGasUsed").unwrap());
                assert!(r.get("blobGasPrice").is_some());
            }
            for l in logs {
                assert_eq!(hex_u64(l.get("logIndex").unwrap()), log_index, "{ctx}");
                log_index += 1;
                assert_eq!(s(l, "blockHash"), hash);
                assert_eq!(hex_u64(l.get("blockNumber").unwrap()), n);
                assert_eq!(s(l, "transactionHash"), s(tx, "hash"));
                assert_eq!(hex_u64(l.get("transactionIndex").unwrap()), i as u64);
                assert!(is_hex_of(s(l, "address"), 20));
                let t = arr(l, "topics");
                assert!((1..=4).contains(&t.len()));
                assert!(t.iter().all(|x| is_hex_of(x.as_str().unwrap(), 32)));
                assert_eq!(l.get("removed").unwrap().as_bool(), Some(false));
                assert_eq!(l.get("blockTimestamp").is_some(), prague);
            }
        }
        assert_eq!(
            cumulative,
            hex_u64(block.get("gasUsed").unwrap()),
            "block {n}: last cumulative == gasUsed"
        );
        assert!(cumulative <= hex_u64(block.get("gasLimit").unwrap()));
        if post_cancun {
            assert_eq!(blob_gas, hex_u64(block.get("blobGasUsed").unwrap()));
        }
        assert_eq!(b.logs.len() as u64, log_index);
    }
}

#[test]
fn generated_chains_are_internally_consistent() {
    for (era, seed) in [
        (Era::Recent, 1),
        (Era::Mix, 2),
        (Era::London, 3),
        (Era::Cancun, 4),
    ] {
        let chain = generate_chain(&gen(8, seed, era));
        assert_eq!(chain.blocks.len(), 8);
        check_consistency(&chain);
    }
    let mixed = generate_chain(&gen(4, 9, Era::Mix));
    let eras: HashSet<Era> = mixed.blocks.iter().map(|b| b.era).collect();
    assert_eq!(eras.len(), 4, "mix rotates four shapes");
    // exact tx counts, including empty blocks
    for t in [0u32, 1, 37] {
        let chain = generate_chain(&GenConfig {
            txs_per_block: Some(t),
            ..gen(3, 5, Era::Recent)
        });
        check_consistency(&chain);
        assert!(chain.blocks.iter().all(|b| b.tx_hashes.len() == t as usize));
    }
}

#[test]
fn generation_is_deterministic() {
    let a = generate_chain(&gen(5, 42, Era::Mix));
    let b = generate_chain(&gen(5, 42, Era::Mix));
    let c = generate_chain(&gen(5, 43, Era::Mix));
    for ((x, y), z) in a.blocks.iter().zip(&b.blocks).zip(&c.blocks) {
        assert_eq!(x.block_json, y.block_json);
        assert_eq!(x.receipts_json, y.receipts_json);
        assert_eq!(x.block_hashes_json, y.block_hashes_json);
        assert_ne!(x.block_json, z.block_json);
        assert_ne!(x.receipts_json, z.receipts_json);
    }
    // a block does not depend on where the range starts
    let d = generate_chain(&GenConfig {
        start_block: 21_000_003,
        ..gen(4, 42, Era::Mix)
    });
    assert_eq!(d.blocks[0].block_json, a.blocks[3].block_json);
    assert_eq!(d.blocks[1].receipts_json, a.blocks[4].receipts_json);
}

#[test]
fn generated_shapes_roughly_match_mainnet() {
    let chain = generate_chain(&gen(40, 11, Era::Recent));
    let blocks = chain.blocks.len() as f64;
    let (mut txs, mut receipts, mut no_logs, mut logs, mut topics, mut erc20, mut erc721) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut erc1155, mut failed, mut creations, mut block_bytes, mut receipt_bytes) =
        (0, 0, 0, 0, 0);
    let mut inputs = Vec::new();
    let mut types = [0usize; 5];
    let mut data_bytes = 0usize;
    let mut huge_amounts = 0usize;
    let transfer = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";
    for b in &chain.blocks {
        block_bytes += b.block_json.len();
        receipt_bytes += b.receipts_json.len();
        let block: Value = sonic_rs::from_slice(&b.block_json).unwrap();
        for tx in arr(&block, "transactions") {
            txs += 1;
            types[hex_u64(tx.get("type").unwrap()) as usize] += 1;
            inputs.push((s(tx, "input").len() - 2) / 2);
            if tx.get("to").unwrap().is_null() {
                creations += 1;
            }
        }
        let rs: Value = sonic_rs::from_slice(&b.receipts_json).unwrap();
        for r in rs.as_array().unwrap().iter() {
            receipts += 1;
            failed += (s(r, "status") == "0x0") as usize;
            let ls = arr(r, "logs");
            no_logs += ls.is_empty() as usize;
            for l in ls {
                logs += 1;
                let t = arr(l, "topics");
                topics += t.len();
                let data = s(l, "data");
                data_bytes += (data.len() - 2) / 2;
                if t[0].as_str() == Some(transfer) && t.len() == 3 && data.len() == 66 {
                    erc20 += 1;
                    if data.as_bytes()[2] != b'0' {
                        huge_amounts += 1;
                    }
                }
                if t[0].as_str() == Some(transfer) && t.len() == 4 && data == "0x" {
                    erc721 += 1;
                }
                if t[0].as_str().unwrap().starts_with("0xc3d58168")
                    || t[0].as_str().unwrap().starts_with("0x4a39dc06")
                {
                    erc1155 += 1;
                }
            }
        }
    }
    inputs.sort();
    let share = |x: usize, of: usize| x as f64 / of as f64;
    let mean_txs = txs as f64 / blocks;
    eprintln!(
        "txs/block {mean_txs:.0}, block bytes/tx {:.0}, receipt bytes {:.0}, no-log {:.2}, logs/receipt {:.2}, \
         topics/log {:.2}, data/log {:.0}, erc20 {:.2}, erc721 {:.3}, erc1155 {:.3}, input median {} p90 {}, types {types:?}",
        block_bytes as f64 / txs as f64,
        receipt_bytes as f64 / receipts as f64,
        share(no_logs, receipts),
        share(logs, receipts),
        share(topics, logs),
        share(data_bytes, logs),
        share(erc20, logs),
        share(erc721, logs),
        share(erc1155, logs),
        inputs[inputs.len() / 2],
        inputs[inputs.len() * 9 / 10],
    );
    assert!(
        (200.0..=300.0).contains(&mean_txs),
        "mean txs/block {mean_txs}"
    );
    assert!(
        (0.30..=0.45).contains(&share(no_logs, receipts)),
        "receipts without logs"
    );
    assert!(
        (1.7..=2.8).contains(&share(logs, receipts)),
        "logs per receipt"
    );
    assert!((2.4..=3.0).contains(&share(topics, logs)), "topics per log");
    assert!(
        (40.0..=110.0).contains(&share(data_bytes, logs)),
        "data bytes per log"
    );
    assert!(
        (0.40..=0.60).contains(&share(erc20, logs)),
        "ERC-20 transfer share"
    );
    assert!(erc721 > 0 && erc1155 > 0 && huge_amounts > 0);
    assert!(
        (1_100.0..=2_200.0).contains(&(block_bytes as f64 / txs as f64)),
        "block bytes/tx"
    );
    assert!(
        (1_900.0..=3_200.0).contains(&(receipt_bytes as f64 / receipts as f64)),
        "bytes/receipt"
    );
    let median = inputs[inputs.len() / 2];
    assert!((36..=132).contains(&median), "input median {median}");
    let p90 = inputs[inputs.len() * 9 / 10];
    assert!((500..=2_000).contains(&p90), "input p90 {p90}");
    assert!(
        types.iter().all(|&t| t > 0),
        "all five tx types occur: {types:?}"
    );
    assert!(types[2] > types[0] && types[0] > types[3], "{types:?}");
    assert!(failed > 0 && creations > 0);
    assert!(share(failed, receipts) < 0.1);
}

// ------------------------------------------------------------------------------------------------
// a generated chain over HTTP
// ------------------------------------------------------------------------------------------------

#[test]
fn generated_chain_is_served_with_the_batch_layout() {
    let cfg = gen(6, 77, Era::Recent);
    let reference = generate_chain(&cfg);
    let node = DevNode::start(NodeConfig::generated(cfg)).unwrap();
    let url = node.url();
    assert_eq!(call(&url, "eth_blockNumber", "[]"), "\"0x1406f45\"");
    let job = ethetl::msg::RangeJob {
        seq: 0,
        start: 21_000_001,
        end: 21_000_004,
        attempt: 0,
    };
    let mut req = Vec::new();
    ethetl::rpc::batch::write_request(&job, true, &mut req);
    let r = post(&url, std::str::from_utf8(&req).unwrap());
    assert_eq!(
        r.body,
        reference
            .batch_response(21_000_001, 21_000_004, true)
            .unwrap()
    );
    let v: Value = sonic_rs::from_slice(&r.body).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 8);
    for (i, item) in items.iter().enumerate() {
        let id = item.get("id").unwrap().as_u64().unwrap();
        assert_eq!(id, i as u64);
        let n = 21_000_001 + id / 2;
        let res = item.get("result").unwrap();
        if id % 2 == 0 {
            assert_eq!(hex_u64(res.get("number").unwrap()), n);
        } else {
            for rc in res.as_array().unwrap().iter() {
                assert_eq!(hex_u64(rc.get("blockNumber").unwrap()), n);
            }
        }
    }
    // by hash, hashes only, single receipts and logs of the generated chain
    let b = reference.block(21_000_002).unwrap();
    let bh = format!("0x{}", hex::encode(b.hash));
    assert_eq!(
        call(&url, "eth_getBlockByHash", &format!(r#"["{bh}",false]"#)).as_bytes(),
        &b.block_hashes_json[..]
    );
    assert_eq!(
        call(&url, "eth_getBlockReceipts", &format!(r#"["{bh}"]"#)).as_bytes(),
        &b.receipts_json[..]
    );
    let receipts: Value = sonic_rs::from_slice(&b.receipts_json).unwrap();
    for (i, h) in b.tx_hashes.iter().enumerate().step_by(23) {
        let got = call(
            &url,
            "eth_getTransactionReceipt",
            &format!(r#"["0x{}"]"#, hex::encode(h)),
        );
        assert_eq!(&parse(&got), &receipts.as_array().unwrap()[i]);
    }
    let logs = parse(&call(
        &url,
        "eth_getLogs",
        &format!(r#"[{{"blockHash":"{bh}"}}]"#),
    ));
    let want: Vec<Value> = receipts
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| arr(r, "logs").to_vec())
        .collect();
    assert_eq!(logs.as_array().unwrap().to_vec(), want);
}

// ------------------------------------------------------------------------------------------------
// the binary
// ------------------------------------------------------------------------------------------------

#[test]
fn binary_prints_its_address_first_and_serves_fixtures() {
    let Some(dir) = mainnet_fixtures() else {
        return;
    };
    let node = DevnodeProcess::start(&["--fixtures", dir.to_str().unwrap(), "--threads", "2"]);
    let addr: std::net::SocketAddr = node.addr.parse().expect("first line is IP:PORT");
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let url = format!("http://{addr}/");
    assert_eq!(call(&url, "eth_blockNumber", "[]"), r#""0x17a2d23""#);
    assert_eq!(
        call(&url, "eth_getBlockReceipts", r#"["0x12889af"]"#),
        read_text(&dir.join("19433903/eth_getBlockReceipts.json"))
    );
}

#[test]
fn binary_generates_stops_on_sigterm_and_after_exit_after() {
    let node = DevnodeProcess::start(&[
        "--generate",
        "3",
        "--seed",
        "5",
        "--txs-per-block",
        "4",
        "--era",
        "cancun",
        "--latest",
        "22000001",
        "--start-block",
        "22000000",
        "--chain-id",
        "10",
    ]);
    let url = format!("http://{}/", node.addr);
    assert_eq!(call(&url, "eth_blockNumber", "[]"), "\"0x14fb181\"");
    assert_eq!(call(&url, "eth_chainId", "[]"), "\"0xa\"");
    let reference = generate_chain(&GenConfig {
        blocks: 3,
        start_block: 22_000_000,
        seed: 5,
        txs_per_block: Some(4),
        era: Era::Cancun,
        chain_id: 10,
    });
    assert_eq!(
        call(&url, "eth_getBlockByNumber", r#"["0x14fb182",true]"#).as_bytes(),
        &reference.blocks[2].block_json[..]
    );
    node.process.signal("TERM");
    let out = node.process.finish(Duration::from_secs(30)); // exits on SIGTERM
    assert_eq!(out.status.code(), Some(0));

    let node = DevnodeProcess::start(&[
        "--generate",
        "1",
        "--txs-per-block",
        "2",
        "--exit-after",
        "0.3",
    ]);
    let out = node.process.finish(Duration::from_secs(30)); // exits by itself
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn binary_refuses_non_loopback_and_bad_flags() {
    let out = run_devnode(&["--host", "0.0.0.0", "--exit-after", "0"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = run_devnode(&["--era", "frontier"], LIMIT);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown era"));
}

#[test]
fn binary_prints_its_version_and_help() {
    let version = format!("ethetl-devnode {}\n", env!("CARGO_PKG_VERSION"));
    for flag in ["--version", "-V"] {
        let out = run_devnode(&[flag], LIMIT);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", stderr_of(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), version, "{flag}");
        assert!(out.stderr.is_empty(), "{flag}: {}", stderr_of(&out));
    }
    // A version flag among others still only prints the version (nothing is served).
    let out = run_devnode(&["--generate", "1", "--version"], LIMIT);
    assert_eq!(String::from_utf8_lossy(&out.stdout), version);

    let long = run_devnode(&["--help"], LIMIT);
    assert_eq!(long.status.code(), Some(0), "{}", stderr_of(&long));
    let help = String::from_utf8_lossy(&long.stdout).into_owned();
    for needle in [
        "Usage: ethetl-devnode",
        "--generate",
        "--faults",
        "--version",
        "-V",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from --help:\n{help}"
        );
    }
    let short = run_devnode(&["-h"], LIMIT);
    assert_eq!(short.status.code(), Some(0), "{}", stderr_of(&short));
    assert_eq!(short.stdout, long.stdout, "-h prints what --help prints");

    // Unknown flags are usage errors naming the flag, with nothing on stdout.
    let out = run_devnode(&["--frobnicate"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        stderr_of(&out).contains("--frobnicate"),
        "{}",
        stderr_of(&out)
    );
}
