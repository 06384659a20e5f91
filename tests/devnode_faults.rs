//! The dev node's misbehaviour over real loopback HTTP: every fault kind as specified (status
//! codes, `Retry-After`, resets, stalls, cut-off and garbage bodies, wrong batch items), the
//! reproducible fault schedule, clean bytes on retry, geth's batch limits, the
//! `eth_getTransactionReceipt` fallback when `eth_getBlockReceipts` is missing, request timing
//! statistics, the growing chain and its reorgs, and the binary's flags for all of this.

mod common;

use common::{mainnet_fixtures, run_devnode, stderr_of, DevnodeProcess};
use ethetl::msg::RangeJob;
use ethetl_devnode::{
    generate_chain, DevNode, Era, FaultKind, FaultSpec, GenConfig, GeneratedChain, Growth,
    NodeConfig,
};
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------------

const START: u64 = 21_000_000;

fn gen_cfg(blocks: u64) -> GenConfig {
    GenConfig {
        blocks,
        start_block: START,
        seed: 11,
        txs_per_block: Some(4),
        era: Era::Recent,
        chain_id: 1,
    }
}

fn node_with(blocks: u64, f: impl FnOnce(&mut NodeConfig)) -> DevNode {
    let mut cfg = NodeConfig::generated(gen_cfg(blocks));
    f(&mut cfg);
    DevNode::start(cfg).expect("node starts")
}

/// The request ethetl's client sends for blocks `start..=end` with receipts.
fn layout_request(start: u64, end: u64) -> Vec<u8> {
    let job = RangeJob {
        seq: 0,
        start,
        end,
        attempt: 0,
    };
    let mut out = Vec::new();
    ethetl::rpc::batch::write_request(&job, true, &mut out);
    out
}

/// What a raw HTTP exchange produced.
#[derive(Debug)]
enum Outcome {
    Reply(Raw),
    /// The connection was reset before any response byte.
    Reset,
    /// The connection was closed before any response byte.
    Eof,
}

#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    /// The body bytes received.
    body: Vec<u8>,
    /// The announced `Content-Length`.
    declared: usize,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One POST on a fresh connection (`Connection: close`), read to the end.
fn exchange(addr: SocketAddr, body: &[u8]) -> Outcome {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset && buf.is_empty() => {
                return Outcome::Reset
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    if buf.is_empty() {
        return Outcome::Eof;
    }
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete response head");
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let declared = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .expect("Content-Length");
    Outcome::Reply(Raw {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
        declared,
    })
}

fn reply(o: Outcome) -> Raw {
    match o {
        Outcome::Reply(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn json(bytes: &[u8]) -> Value {
    sonic_rs::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )
    })
}

fn items(bytes: &[u8]) -> Vec<Value> {
    json(bytes).as_array().expect("array").to_vec()
}

fn error_of(v: &Value) -> (i64, String) {
    let e = v.get("error").expect("error object");
    (
        e.get("code").unwrap().as_i64().unwrap(),
        e.get("message").unwrap().as_str().unwrap().to_string(),
    )
}

fn hx(h: &[u8]) -> String {
    format!("0x{}", hex::encode(h))
}

fn rpc(addr: SocketAddr, method: &str, params: &str) -> Value {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
    let r = reply(exchange(addr, body.as_bytes()));
    assert_eq!(r.status, 200);
    let v = json(&r.body);
    assert!(
        v.get("error").is_none(),
        "{method}: {}",
        String::from_utf8_lossy(&r.body)
    );
    v.get("result").unwrap().clone()
}

/// The raw bytes of `result` of a single-call response.
fn rpc_raw(addr: SocketAddr, method: &str, params: &str) -> String {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
    let r = reply(exchange(addr, body.as_bytes()));
    sonic_rs::get(&r.body[..], ["result"])
        .expect("result")
        .as_raw_str()
        .to_string()
}

fn qty(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap()
}

/// What a client can tell about one faulted exchange, for schedule comparisons.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Seen {
    Clean,
    Status(u16),
    Reset,
    BatchError,
}

fn classify(o: Outcome, clean: &[u8]) -> Seen {
    match o {
        Outcome::Reset => Seen::Reset,
        Outcome::Eof => panic!("unexpected close"),
        Outcome::Reply(r) if r.status != 200 => Seen::Status(r.status),
        Outcome::Reply(r) if r.body == clean => Seen::Clean,
        Outcome::Reply(r) => {
            let v = json(&r.body);
            assert_eq!(error_of(&v), (-32603, "internal error".into()));
            Seen::BatchError
        }
    }
}

// ------------------------------------------------------------------------------------------------
// fault kinds
// ------------------------------------------------------------------------------------------------

fn faulty(kind: FaultKind, seed: u64) -> (DevNode, GeneratedChain) {
    let node = node_with(4, |c| {
        c.faults = FaultSpec::only(kind, 1.0);
        c.fault_seed = seed;
        c.stall = Duration::from_millis(300);
    });
    (node, generate_chain(&gen_cfg(4)))
}

#[test]
fn http_level_faults_are_served_as_specified() {
    let req = layout_request(START, START + 2);
    for (kind, status) in [
        (FaultKind::TooManyRequests, 429),
        (FaultKind::Http500, 500),
        (FaultKind::Http502, 502),
        (FaultKind::Http503, 503),
    ] {
        let (node, _) = faulty(kind, 1);
        for _ in 0..3 {
            let r = reply(exchange(node.addr(), &req));
            assert_eq!(r.status, status, "{kind}");
            assert_eq!(r.body.len(), r.declared, "{kind}: complete body");
            if kind == FaultKind::TooManyRequests {
                assert_eq!(r.header("Retry-After"), Some("1"));
                assert_eq!(error_of(&json(&r.body)).0, -32005);
            }
        }
        assert_eq!(node.stats().faults.get(kind), 3, "{kind}");
        assert_eq!(node.stats().faults.total(), 3);
        assert_eq!(node.stats().calls, 0, "{kind}: the calls did not run");
    }
    let node = node_with(2, |c| {
        c.faults = FaultSpec::only(FaultKind::TooManyRequests, 1.0);
        c.retry_after_secs = 7;
    });
    let r = reply(exchange(node.addr(), &req));
    assert_eq!(r.header("Retry-After"), Some("7"));
}

#[test]
fn resets_close_the_connection_without_a_response() {
    let (node, _) = faulty(FaultKind::Reset, 1);
    for _ in 0..3 {
        let o = exchange(node.addr(), &layout_request(START, START + 1));
        if cfg!(unix) {
            assert!(matches!(o, Outcome::Reset), "{o:?}");
        } else {
            assert!(matches!(o, Outcome::Reset | Outcome::Eof), "{o:?}");
        }
    }
    assert_eq!(node.stats().faults.get(FaultKind::Reset), 3);
    // ureq sees a transport error, not a response.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .post(&node.url())
        .send(&layout_request(START, START)[..]);
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn stalls_answer_correctly_but_late() {
    let (node, chain) = faulty(FaultKind::Stall, 1);
    let req = layout_request(START, START + 3);
    let t0 = Instant::now();
    let r = reply(exchange(node.addr(), &req));
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        chain.batch_response(START, START + 3, true).unwrap()
    );
    // A client with a shorter timeout gives up.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(100)))
        .build()
        .into();
    assert!(agent.post(&node.url()).send(&req[..]).is_err());
    assert_eq!(node.stats().faults.get(FaultKind::Stall), 2);
}

#[test]
fn truncated_bodies_are_prefixes_cut_both_ways() {
    let (node, chain) = faulty(FaultKind::Truncate, 5);
    let req = layout_request(START, START + 3);
    let clean = chain.batch_response(START, START + 3, true).unwrap();
    let (mut short_length, mut full_length) = (0, 0);
    for _ in 0..16 {
        let r = reply(exchange(node.addr(), &req));
        assert_eq!(r.status, 200);
        assert!(!r.body.is_empty() && r.body.len() < clean.len());
        assert_eq!(r.body[..], clean[..r.body.len()], "a prefix of the answer");
        assert!(
            sonic_rs::from_slice::<Value>(&r.body).is_err(),
            "cut mid-JSON"
        );
        if r.declared == clean.len() {
            full_length += 1; // announced in full, connection closed early
        } else {
            assert_eq!(r.declared, r.body.len());
            short_length += 1;
        }
    }
    assert!(
        full_length > 0 && short_length > 0,
        "{full_length} {short_length}"
    );
    assert_eq!(node.stats().faults.get(FaultKind::Truncate), 16);
}

#[test]
fn garbage_and_whole_answer_errors() {
    let req = layout_request(START, START + 1);
    let (node, _) = faulty(FaultKind::InvalidJson, 2);
    for _ in 0..6 {
        let r = reply(exchange(node.addr(), &req));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), r.declared);
        assert!(sonic_rs::from_slice::<Value>(&r.body).is_err());
    }
    let (node, _) = faulty(FaultKind::BatchError, 2);
    let r = reply(exchange(node.addr(), &req));
    assert_eq!(
        r.body,
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#
    );
    let (node, _) = faulty(FaultKind::RateLimitRpc, 2);
    let r = reply(exchange(node.addr(), &req));
    assert_eq!(r.status, 200);
    let v = json(&r.body);
    assert!(v.as_array().is_none(), "one object, not a batch");
    assert_eq!(error_of(&v), (-32005, "rate limit exceeded".into()));
    assert_eq!(node.stats().faults.get(FaultKind::RateLimitRpc), 1);
}

#[test]
fn item_faults_alter_exactly_one_item() {
    let chain = generate_chain(&gen_cfg(4));
    let req = layout_request(START, START + 3);
    let clean = items(&chain.batch_response(START, START + 3, true).unwrap());
    for kind in [
        FaultKind::ItemError,
        FaultKind::NullBlock,
        FaultKind::NullReceipts,
        FaultKind::ReceiptsMismatch,
        FaultKind::WrongBlock,
    ] {
        let (node, _) = faulty(kind, 3);
        for _ in 0..4 {
            let got = items(&reply(exchange(node.addr(), &req)).body);
            assert_eq!(got.len(), clean.len());
            let changed: Vec<usize> = (0..got.len()).filter(|&i| got[i] != clean[i]).collect();
            assert_eq!(changed.len(), 1, "{kind}");
            let i = changed[0];
            let (item, n) = (&got[i], START + i as u64 / 2);
            assert_eq!(item.get("id").unwrap().as_u64(), Some(i as u64));
            let block = chain.block(n).unwrap();
            match kind {
                FaultKind::ItemError => {
                    assert_eq!(error_of(item).0, -32000);
                }
                FaultKind::NullBlock => {
                    assert_eq!(i % 2, 0);
                    assert!(item.get("result").unwrap().is_null());
                }
                FaultKind::NullReceipts => {
                    assert_eq!(i % 2, 1);
                    assert!(item.get("result").unwrap().is_null());
                }
                FaultKind::ReceiptsMismatch => {
                    assert_eq!(i % 2, 1);
                    let r = item.get("result").unwrap().as_array().unwrap();
                    assert_eq!(r.len(), block.tx_hashes.len() - 1);
                    let want: Vec<String> = block.tx_hashes.iter().map(|h| hx(h)).collect();
                    for rc in r.iter() {
                        assert!(want.contains(&s(rc, "transactionHash").to_string()));
                        assert_eq!(s(rc, "blockHash"), hx(&block.hash));
                    }
                }
                FaultKind::WrongBlock => {
                    assert_eq!(i % 2, 1);
                    let r = item.get("result").unwrap().as_array().unwrap();
                    let other = qty(r[0].get("blockNumber").unwrap());
                    assert_ne!(other, n);
                    assert_eq!(
                        item.get("result").unwrap(),
                        &json(&chain.block(other).unwrap().receipts_json),
                        "another block's receipts, unaltered"
                    );
                }
                _ => unreachable!(),
            }
        }
        assert_eq!(node.stats().faults.get(kind), 4);
    }
    let (node, _) = faulty(FaultKind::Shuffle, 3);
    for _ in 0..4 {
        let mut got = items(&reply(exchange(node.addr(), &req)).body);
        assert_ne!(got, clean, "out of order");
        got.sort_by_key(|v| v.get("id").unwrap().as_u64());
        assert_eq!(got, clean, "but complete and unaltered");
    }
    // An item fault with nothing to act on is not served: eth_chainId has no receipts.
    let (node, _) = faulty(FaultKind::NullReceipts, 3);
    let r = reply(exchange(
        node.addr(),
        br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#,
    ));
    assert_eq!(r.body, br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#);
    assert_eq!(node.stats().faults.total(), 0);
}

// ------------------------------------------------------------------------------------------------
// schedule and retries
// ------------------------------------------------------------------------------------------------

fn observe(spec: &FaultSpec, seed: u64, n: u64) -> (Vec<Seen>, ethetl_devnode::NodeStats) {
    let node = node_with(3, |c| {
        c.faults = spec.clone();
        c.fault_seed = seed;
    });
    let chain = generate_chain(&gen_cfg(3));
    let req = layout_request(START, START + 2);
    let clean = chain.batch_response(START, START + 2, true).unwrap();
    let seen = (0..n)
        .map(|_| classify(exchange(node.addr(), &req), &clean))
        .collect();
    (seen, node.stats())
}

#[test]
fn the_fault_schedule_is_reproducible_and_predictable() {
    let spec: FaultSpec = "429:0.2,500:0.1,reset:0.1,batch-error:0.1".parse().unwrap();
    let n = 60;
    let expect = |seed: u64| -> Vec<Seen> {
        (0..n)
            .map(|i| match spec.decide(seed, i) {
                None => Seen::Clean,
                Some(FaultKind::TooManyRequests) => Seen::Status(429),
                Some(FaultKind::Http500) => Seen::Status(500),
                Some(FaultKind::Reset) => Seen::Reset,
                Some(FaultKind::BatchError) => Seen::BatchError,
                Some(k) => panic!("{k} is not in the spec"),
            })
            .collect()
    };
    let (seen, stats) = observe(&spec, 42, n);
    assert_eq!(seen, expect(42));
    let (again, _) = observe(&spec, 42, n);
    assert_eq!(again, seen, "same seed, same faults");
    let (other, _) = observe(&spec, 43, n);
    assert_eq!(other, expect(43));
    assert_ne!(other, seen, "another seed, another schedule");
    assert_eq!(stats.rpc_requests, n);
    for kind in [
        FaultKind::TooManyRequests,
        FaultKind::Http500,
        FaultKind::Reset,
        FaultKind::BatchError,
    ] {
        let want = (0..n).filter(|i| spec.decide(42, *i) == Some(kind)).count() as u64;
        assert_eq!(stats.faults.get(kind), want, "{kind}");
    }
    let clean = seen.iter().filter(|s| **s == Seen::Clean).count();
    assert!(clean > 10 && clean < n as usize - 10, "{clean}");
}

#[test]
fn a_retry_after_any_fault_gets_the_exact_clean_bytes() {
    let node = node_with(5, |c| {
        c.faults = FaultSpec::all(0.6);
        c.fault_seed = 9;
        c.stall = Duration::from_millis(50);
    });
    let chain = generate_chain(&gen_cfg(5));
    let mut faulted = 0;
    for (start, end) in [
        (START, START + 4),
        (START + 1, START + 2),
        (START + 3, START + 3),
    ] {
        let req = layout_request(start, end);
        let clean = chain.batch_response(start, end, true).unwrap();
        let mut got_clean = 0;
        for _ in 0..40 {
            match exchange(node.addr(), &req) {
                Outcome::Reply(r) if r.status == 200 && r.body == clean => got_clean += 1,
                _ => faulted += 1,
            }
            if got_clean == 3 {
                break;
            }
        }
        assert_eq!(got_clean, 3, "blocks {start}..={end}");
    }
    assert!(faulted > 0);
    let stats = node.stats();
    assert!(stats.faults.total() > 0);
    assert!(stats.faults.total() <= stats.rpc_requests);
}

// ------------------------------------------------------------------------------------------------
// endpoint properties
// ------------------------------------------------------------------------------------------------

#[test]
fn without_block_receipts_transaction_receipts_give_the_same_bytes() {
    let node = node_with(3, |c| c.block_receipts = false);
    let chain = generate_chain(&gen_cfg(3));
    let r = reply(exchange(
        node.addr(),
        br#"{"jsonrpc":"2.0","id":3,"method":"eth_getBlockReceipts","params":["latest"]}"#,
    ));
    assert_eq!(
        error_of(&json(&r.body)),
        (
            -32601,
            "the method eth_getBlockReceipts does not exist/is not available".into()
        )
    );
    for b in &chain.blocks {
        let calls: Vec<String> = b
            .tx_hashes
            .iter()
            .enumerate()
            .map(|(i, h)| {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"eth_getTransactionReceipt","params":["{}"]}}"#,
                    hx(h)
                )
            })
            .collect();
        let body = reply(exchange(
            node.addr(),
            format!("[{}]", calls.join(",")).as_bytes(),
        ))
        .body;
        let raws: Vec<String> = (0..b.tx_hashes.len())
            .map(|i| {
                sonic_rs::get(
                    &body[..],
                    [sonic_rs::PointerNode::Index(i), "result".into()],
                )
                .unwrap()
                .as_raw_str()
                .to_string()
            })
            .collect();
        assert_eq!(
            format!("[{}]", raws.join(",")).as_bytes(),
            &b.receipts_json[..],
            "block {}",
            b.number
        );
        let block = json(&b.block_json);
        for (i, h) in b.tx_hashes.iter().enumerate() {
            let tx = rpc(
                node.addr(),
                "eth_getTransactionByHash",
                &format!(r#"["{}"]"#, hx(h)),
            );
            assert_eq!(
                &tx,
                &block.get("transactions").unwrap().as_array().unwrap()[i]
            );
        }
    }
    let unknown = format!(r#"["{}"]"#, hx(&[0x42; 32]));
    assert!(rpc(node.addr(), "eth_getTransactionByHash", &unknown).is_null());
    assert!(rpc(node.addr(), "eth_getTransactionReceipt", &unknown).is_null());
}

#[test]
fn fixture_transactions_and_receipts_are_found_by_hash() {
    let Some(dir) = mainnet_fixtures() else {
        return;
    };
    let node = DevNode::start(NodeConfig {
        block_receipts: false,
        ..NodeConfig::fixtures(&dir)
    })
    .unwrap();
    let mut checked = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for block_dir in entries {
        let (Ok(block), Ok(receipts)) = (
            std::fs::read(block_dir.join("eth_getBlockByNumber.json")),
            std::fs::read(block_dir.join("eth_getBlockReceipts.json")),
        ) else {
            continue;
        };
        let txs: Vec<String> = sonic_rs::to_array_iter(
            sonic_rs::get(&block[..], ["transactions"])
                .unwrap()
                .as_raw_str(),
        )
        .map(|t| t.unwrap().as_raw_str().to_string())
        .collect();
        let rcs: Vec<String> = sonic_rs::to_array_iter(&receipts[..])
            .map(|r| r.unwrap().as_raw_str().to_string())
            .collect();
        assert_eq!(txs.len(), rcs.len());
        for (i, (tx, rc)) in txs.iter().zip(&rcs).enumerate().step_by(7) {
            let h = s(&json(tx.as_bytes()), "hash").to_string();
            let p = format!(r#"["{h}"]"#);
            assert_eq!(
                &rpc_raw(node.addr(), "eth_getTransactionByHash", &p),
                tx,
                "{i}"
            );
            assert_eq!(
                &rpc_raw(node.addr(), "eth_getTransactionReceipt", &p),
                rc,
                "{i}"
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "{checked}");
}

#[test]
fn batch_limits_follow_geth() {
    let chain = generate_chain(&gen_cfg(4));
    let node = node_with(4, |c| c.max_batch_calls = Some(6));
    let r = reply(exchange(node.addr(), &layout_request(START, START + 3)));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        br#"[{"jsonrpc":"2.0","id":0,"error":{"code":-32600,"message":"batch too large"}}]"#
    );
    let r = reply(exchange(node.addr(), &layout_request(START + 1, START + 3)));
    assert_eq!(
        r.body,
        chain.batch_response(START + 1, START + 3, true).unwrap()
    );
    assert_eq!(node.stats().batch_too_large, 1);

    // The cap counts result bytes: blocks 0 and 1 with receipts fit, the receipts of block 1
    // cross it, so calls 0..=3 answer and 4.. get "response too large".
    let b = |i: usize| &chain.blocks[i];
    let cap = b(0).block_json.len() + b(0).receipts_json.len() + b(1).block_json.len() + 1;
    let node = node_with(4, |c| c.max_response_bytes = Some(cap));
    let got = items(&reply(exchange(node.addr(), &layout_request(START, START + 3))).body);
    let clean = items(&chain.batch_response(START, START + 3, true).unwrap());
    assert_eq!(got.len(), 8);
    assert_eq!(got[..4], clean[..4]);
    for (i, item) in got.iter().enumerate().skip(4) {
        assert_eq!(item.get("id").unwrap().as_u64(), Some(i as u64));
        assert_eq!(error_of(item), (-32003, "response too large".into()));
    }
    assert_eq!(node.stats().response_too_large, 1);
}

#[test]
fn request_times_are_on_the_node_clock() {
    let node = node_with(2, |_| {});
    let before = node.started().elapsed();
    let t0 = Instant::now();
    for _ in 0..12 {
        rpc(node.addr(), "eth_blockNumber", "[]");
        std::thread::sleep(Duration::from_millis(10));
    }
    let spent = t0.elapsed();
    let st = node.stats();
    assert_eq!(st.requests, 12);
    assert_eq!(st.requests_per_second.iter().sum::<u64>(), 12);
    let (first, last) = (st.first_request.unwrap(), st.last_request.unwrap());
    assert!(first >= before && last >= first);
    assert!(last - first <= spent, "{:?} vs {spent:?}", last - first);
    assert!(last - first >= Duration::from_millis(110));
    assert!(st.max_requests_in(1) >= 1 && st.max_requests_in(1) <= 12);
    assert_eq!(st.max_requests_in(1_000), 12);
}

// ------------------------------------------------------------------------------------------------
// growing chain and reorgs
// ------------------------------------------------------------------------------------------------

fn head(addr: SocketAddr) -> u64 {
    qty(&rpc(addr, "eth_blockNumber", "[]"))
}

fn block(addr: SocketAddr, n: u64) -> Value {
    rpc(
        addr,
        "eth_getBlockByNumber",
        &format!(r#"["{n:#x}",false]"#),
    )
}

#[test]
fn a_manual_chain_reveals_one_block_per_step() {
    let node = node_with(6, |c| {
        c.growth = Some(Growth {
            initial_blocks: 2,
            ..Growth::default()
        })
    });
    let chain = generate_chain(&gen_cfg(6));
    let a = node.addr();
    assert_eq!(head(a), START + 1);
    assert!(block(a, START + 2).is_null(), "above the head: unknown");
    let tx = hx(&chain.blocks[2].tx_hashes[0]);
    assert!(rpc(a, "eth_getTransactionReceipt", &format!(r#"["{tx}"]"#)).is_null());
    assert_eq!(
        rpc_raw(a, "eth_getBlockByNumber", r#"["latest",true]"#).as_bytes(),
        &chain.blocks[1].block_json[..]
    );
    for n in START + 2..START + 6 {
        assert_eq!(node.advance(), Some(n));
        assert_eq!(head(a), n);
        assert_eq!(
            rpc_raw(a, "eth_getBlockByNumber", &format!(r#"["{n:#x}",true]"#)).as_bytes(),
            &chain.block(n).unwrap().block_json[..],
            "without reorgs the revealed blocks are the generated ones"
        );
    }
    assert_eq!(node.advance(), None, "all revealed");
    assert!(rpc(a, "eth_getTransactionReceipt", &format!(r#"["{tx}"]"#)).is_object());
}

#[test]
fn a_timed_chain_grows_with_time() {
    let node = node_with(400, |c| {
        c.growth = Some(Growth {
            block_time: Some(Duration::from_millis(20)),
            initial_blocks: 3,
            ..Growth::default()
        })
    });
    let a = node.addr();
    let first = head(a);
    assert!((START + 2..START + 400).contains(&first));
    let t0 = Instant::now();
    let mut last = first;
    while last < first + 3 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
        let h = head(a);
        assert!(h >= last, "the head never goes back without reorgs");
        last = h;
    }
    assert!(last >= first + 3, "head {first} -> {last}");
    assert!(block(a, START + 399).is_null() || last == START + 399);
    assert_eq!(node.stats().head, node.summary().head);
}

/// The visible chain, read in one batch (a consistent snapshot), as (number, hash, parent).
fn visible_chain(addr: SocketAddr, lo: u64, hi: u64) -> Vec<(u64, String, String)> {
    let calls: Vec<String> = (lo..=hi)
        .map(|n| {
            format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"eth_getBlockByNumber","params":["{n:#x}",false]}}"#)
        })
        .collect();
    items(&reply(exchange(addr, format!("[{}]", calls.join(",")).as_bytes())).body)
        .iter()
        .map(|v| v.get("result").unwrap())
        .take_while(|r| !r.is_null())
        .map(|r| {
            (
                qty(r.get("number").unwrap()),
                s(r, "hash").into(),
                s(r, "parentHash").into(),
            )
        })
        .collect()
}

fn assert_linked(chain: &[(u64, String, String)]) {
    for w in chain.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1);
        assert_eq!(w[1].2, w[0].1, "block {} links to block {}", w[1].0, w[0].0);
    }
}

#[test]
fn reorgs_replace_the_last_blocks_by_a_consistent_fork() {
    let growth = Growth {
        initial_blocks: 5,
        reorg_every: Some(3),
        reorg_depth: 2,
        ..Growth::default()
    };
    let node = node_with(20, |c| c.growth = Some(growth.clone()));
    let a = node.addr();
    // A client exporting every block as it appears.
    let mut seen: Vec<(u64, String, String)> = visible_chain(a, START, START + 19);
    assert_eq!(seen.len(), 5);
    let old_receipt_tx = |seen: &[(u64, String, String)], n: u64| -> String {
        let b = rpc(a, "eth_getBlockByNumber", &format!(r#"["{n:#x}",false]"#));
        assert_eq!(s(&b, "hash"), seen.iter().find(|x| x.0 == n).unwrap().1);
        b.get("transactions").unwrap().as_array().unwrap()[0]
            .as_str()
            .unwrap()
            .to_string()
    };
    node.advance();
    node.advance();
    seen = visible_chain(a, START, START + 19);
    assert_eq!(seen.len(), 7);
    assert!(node.reorgs().is_empty());
    let orphan_tx = old_receipt_tx(&seen, START + 6);

    // The third reveal is a reorg: blocks START+5 and START+6 are replaced, START+7 is new.
    assert_eq!(node.advance(), Some(START + 7));
    let reorgs = node.reorgs();
    assert_eq!(reorgs.len(), 1);
    let ev = &reorgs[0];
    assert_eq!(ev.fork, 1);
    assert_eq!(ev.reveal, 3);
    assert_eq!(ev.new_head, START + 7);
    assert_eq!(
        ev.replaced.iter().map(|r| r.number).collect::<Vec<_>>(),
        vec![START + 5, START + 6]
    );
    assert_eq!(hx(&ev.common_ancestor_hash), seen[4].1);
    for r in &ev.replaced {
        let old = &seen[(r.number - START) as usize];
        assert_eq!(hx(&r.old_hash), old.1, "old hashes are what the client saw");
        assert_ne!(r.old_hash, r.new_hash);
    }
    let now = visible_chain(a, START, START + 19);
    assert_eq!(now.len(), 8);
    assert_linked(&now);
    assert_eq!(now[..5], seen[..5], "below the fork nothing changed");
    for r in &ev.replaced {
        assert_eq!(now[(r.number - START) as usize].1, hx(&r.new_hash));
    }
    assert_eq!(now[7].1, hx(&ev.new_head_hash));
    assert_eq!(
        now[5].2, seen[4].1,
        "the fork starts at the common ancestor"
    );
    assert_ne!(
        now[7].2, seen[6].1,
        "the client's last block is no longer the parent"
    );
    assert_eq!(head(a), START + 7);

    // New blocks carry consistent receipts and logs; orphans stay reachable by hash only.
    for (n, hash, _) in &now[5..] {
        let b = rpc(a, "eth_getBlockByNumber", &format!(r#"["{n:#x}",false]"#));
        let rcs = rpc(a, "eth_getBlockReceipts", &format!(r#"["{n:#x}"]"#));
        let txs = b.get("transactions").unwrap().as_array().unwrap();
        let rcs = rcs.as_array().unwrap();
        assert_eq!(txs.len(), rcs.len());
        for (t, r) in txs.iter().zip(rcs.iter()) {
            assert_eq!(s(r, "transactionHash"), t.as_str().unwrap());
            assert_eq!(s(r, "blockHash"), hash);
            assert_eq!(qty(r.get("blockNumber").unwrap()), *n);
            for l in r.get("logs").unwrap().as_array().unwrap().iter() {
                assert_eq!(s(l, "blockHash"), hash);
            }
            let single = rpc(
                a,
                "eth_getTransactionReceipt",
                &format!(r#"["{}"]"#, s(r, "transactionHash")),
            );
            assert_eq!(&single, r);
        }
        let logs = rpc(a, "eth_getLogs", &format!(r#"[{{"blockHash":"{hash}"}}]"#));
        for l in logs.as_array().unwrap().iter() {
            assert_eq!(s(l, "blockHash"), hash);
        }
    }
    let old6 = &seen[6].1;
    let by_hash = rpc(a, "eth_getBlockByHash", &format!(r#"["{old6}",false]"#));
    assert_eq!(s(&by_hash, "hash"), old6, "orphans are kept by hash");
    assert!(rpc(
        a,
        "eth_getTransactionReceipt",
        &format!(r#"["{orphan_tx}"]"#)
    )
    .is_null());

    // Later blocks continue the new fork; the next reorg comes three reveals later.
    assert_eq!(node.advance(), Some(START + 8));
    let next = visible_chain(a, START, START + 19);
    assert_linked(&next);
    assert_eq!(next[8].2, hx(&ev.new_head_hash));
    node.advance();
    node.advance();
    let reorgs = node.reorgs();
    assert_eq!(reorgs.len(), 2);
    assert_eq!(reorgs[1].fork, 2);
    assert_eq!(reorgs[1].replaced[0].number, START + 8);
    assert_linked(&visible_chain(a, START, START + 19));
    assert_eq!(node.stats().reorgs, reorgs);

    // The same steps give the same forks.
    let twin = node_with(20, |c| c.growth = Some(growth));
    for _ in 0..6 {
        twin.advance();
    }
    assert_eq!(
        twin.reorgs()
            .iter()
            .map(|r| r.replaced.clone())
            .collect::<Vec<_>>(),
        reorgs
            .iter()
            .map(|r| r.replaced.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        visible_chain(twin.addr(), START, START + 19),
        visible_chain(a, START, START + 19)
    );
}

#[test]
fn timed_reorgs_keep_the_visible_chain_linked() {
    let node = node_with(300, |c| {
        c.growth = Some(Growth {
            block_time: Some(Duration::from_millis(15)),
            initial_blocks: 4,
            reorg_every: Some(4),
            reorg_depth: 3,
        })
    });
    let t0 = Instant::now();
    while node.reorgs().len() < 2 && t0.elapsed() < Duration::from_secs(30) {
        assert_linked(&visible_chain(node.addr(), START, START + 299));
        std::thread::sleep(Duration::from_millis(10));
    }
    let reorgs = node.reorgs();
    assert!(reorgs.len() >= 2, "{} reorgs", reorgs.len());
    for r in &reorgs {
        assert_eq!(r.replaced.len(), 3);
        assert_eq!(r.reveal % 4, 0);
        assert_eq!(r.new_head, r.replaced[2].number + 1);
    }
    assert_linked(&visible_chain(node.addr(), START, START + 299));
}

#[test]
fn reorgs_need_a_generated_chain() {
    let growth = Some(Growth {
        reorg_every: Some(2),
        ..Growth::default()
    });
    let err = DevNode::start(NodeConfig {
        growth: growth.clone(),
        ..NodeConfig::default()
    });
    assert!(matches!(
        err,
        Err(ethetl_devnode::DevNodeError::Config { .. })
    ));
    let ok = DevNode::start(NodeConfig {
        growth,
        ..NodeConfig::generated(gen_cfg(3))
    });
    assert!(ok.is_ok());
}

// ------------------------------------------------------------------------------------------------
// the binary
// ------------------------------------------------------------------------------------------------

#[test]
fn binary_injects_faults_grows_and_reports() {
    let spec = "503:0.5";
    let parsed: FaultSpec = spec.parse().unwrap();
    let node = DevnodeProcess::start(&[
        "--generate",
        "50",
        "--txs-per-block",
        "2",
        "--start-block",
        "100",
        "--faults",
        spec,
        "--fault-seed",
        "4",
        "--block-time",
        "30",
        "--initial-blocks",
        "2",
        "--exit-after",
        "4",
    ]);
    let addr: SocketAddr = node.addr.parse().unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}"#;
    let mut heads = Vec::new();
    let mut n503 = 0;
    for i in 0..8 {
        let r = reply(exchange(addr, body));
        if parsed.decide(4, i).is_some() {
            assert_eq!(r.status, 503);
            n503 += 1;
        } else {
            assert_eq!(r.status, 200);
            heads.push(qty(json(&r.body).get("result").unwrap()));
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    assert!(!heads.is_empty() && n503 > 0);
    assert!(heads.windows(2).all(|w| w[1] >= w[0]));
    assert!(heads[0] >= 101);
    let out = node.process.finish(Duration::from_secs(60));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("503 {n503}")), "{err}");

    let out = run_devnode(
        &["--faults", "teapot:0.1", "--exit-after", "0"],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown fault kind"));
}
