//! JSON-RPC request handling: parses a request body (single call or batch), answers each call
//! from the [`Store`] and assembles the response from pre-rendered byte ranges without ever
//! re-serializing a result. Errors use the codes and messages geth uses.
//!
//! [`handle_body`] is the one entry point for a request body and [`handle_call`] the one for a
//! single call: later features (fault injection, a growing chain, reorgs) hook in there.

use super::generate::{Addr, H256};
use super::store::{parse_addr, parse_h256, Blob, Span, Store, TxLoc};
use super::UnknownBlock;
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// Everything a request handler reads. Immutable once the node has started.
pub(crate) struct NodeState {
    pub store: Store,
    pub chain_id: u64,
    pub latest: Option<u64>,
    pub unknown_block: UnknownBlock,
    pub client_version: String,
    pub counters: Counters,
}

/// Served-traffic counters (relaxed atomics; read with [`super::DevNode::stats`]).
#[derive(Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub bytes: AtomicU64,
}

impl NodeState {
    /// `eth_blockNumber`: `--latest` or the highest known block.
    pub fn head(&self) -> u64 {
        self.latest.or_else(|| self.store.highest()).unwrap_or(0)
    }
}

// ------------------------------------------------------------------------------------------------
// Response bodies made of shared byte ranges
// ------------------------------------------------------------------------------------------------

enum Part {
    Owned(Vec<u8>),
    Shared(Blob, Span),
}

/// A response body: owned bytes interleaved with ranges of shared blobs. Small pieces are copied
/// into one owned buffer; large ones stay shared (zero copy until the socket write).
#[derive(Default)]
pub(crate) struct Body {
    parts: Vec<Part>,
    pending: Vec<u8>,
    len: usize,
}

const COPY_BELOW: usize = 1024;

impl Body {
    fn bytes(&mut self, b: &[u8]) {
        self.pending.extend_from_slice(b);
        self.len += b.len();
    }

    fn shared(&mut self, blob: &Blob, span: Span) {
        let r = span.range();
        if r.len() < COPY_BELOW {
            self.bytes(&blob[r]);
            return;
        }
        if !self.pending.is_empty() {
            self.parts
                .push(Part::Owned(std::mem::take(&mut self.pending)));
        }
        self.len += r.len();
        self.parts.push(Part::Shared(blob.clone(), span));
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The whole body as one buffer.
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for p in &self.parts {
            match p {
                Part::Owned(v) => out.extend_from_slice(v),
                Part::Shared(b, s) => out.extend_from_slice(&b[s.range()]),
            }
        }
        out.extend_from_slice(&self.pending);
        out
    }

    /// A reader over the body, consuming it.
    pub fn into_reader(mut self) -> BodyReader {
        if !self.pending.is_empty() {
            self.parts
                .push(Part::Owned(std::mem::take(&mut self.pending)));
        }
        BodyReader {
            parts: self.parts,
            idx: 0,
            off: 0,
        }
    }
}

/// Reads a [`Body`] part by part.
pub(crate) struct BodyReader {
    parts: Vec<Part>,
    idx: usize,
    off: usize,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(p) = self.parts.get(self.idx) {
            let src: &[u8] = match p {
                Part::Owned(v) => v,
                Part::Shared(b, s) => &b[s.range()],
            };
            if self.off >= src.len() {
                self.idx += 1;
                self.off = 0;
                continue;
            }
            let n = buf.len().min(src.len() - self.off);
            buf[..n].copy_from_slice(&src[self.off..self.off + n]);
            self.off += n;
            return Ok(n);
        }
        Ok(0)
    }
}

// ------------------------------------------------------------------------------------------------
// Errors and answers
// ------------------------------------------------------------------------------------------------

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RpcError {
    pub code: i64,
    pub message: String,
}

fn err(code: i64, message: impl Into<String>) -> RpcError {
    RpcError {
        code,
        message: message.into(),
    }
}

fn invalid_arg(i: usize, what: impl std::fmt::Display) -> RpcError {
    err(-32602, format!("invalid argument {i}: {what}"))
}

fn header_not_found() -> RpcError {
    err(-32000, "header not found")
}

/// A call's result before it is put into the envelope.
enum Answer {
    Null,
    /// Small JSON text built for this call.
    Json(Vec<u8>),
    /// A stored result (whole blob or one receipt).
    Stored(Blob, Span),
    /// A JSON array of stored values (logs).
    List(Vec<(Blob, Span)>),
}

fn whole(blob: &Blob) -> Answer {
    Answer::Stored(
        blob.clone(),
        Span {
            start: 0,
            end: blob.len() as u32,
        },
    )
}

fn json_str(s: &str) -> Answer {
    let mut v = Vec::with_capacity(s.len() + 2);
    super::json::plain_str(&mut v, s);
    Answer::Json(v)
}

fn json_qty(n: u64) -> Answer {
    let mut v = Vec::new();
    super::json::qty(&mut v, n);
    Answer::Json(v)
}

// ------------------------------------------------------------------------------------------------
// Entry points
// ------------------------------------------------------------------------------------------------

const NULL_ID: &[u8] = b"null";

/// Answers one HTTP request body (a single call or a batch). Batch answers keep request order.
pub(crate) fn handle_body(st: &NodeState, body: &[u8]) -> Body {
    let mut out = Body::default();
    let value: Value = match sonic_rs::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            st.counters.errors.fetch_add(1, Ordering::Relaxed);
            write_error(&mut out, NULL_ID, &err(-32700, "parse error"));
            return out;
        }
    };
    if let Some(batch) = value.as_array() {
        if batch.is_empty() {
            st.counters.errors.fetch_add(1, Ordering::Relaxed);
            write_error(&mut out, NULL_ID, &err(-32600, "empty batch"));
            return out;
        }
        out.bytes(b"[");
        for (i, call) in batch.iter().enumerate() {
            if i > 0 {
                out.bytes(b",");
            }
            handle_call(st, call, &mut out);
        }
        out.bytes(b"]");
    } else {
        handle_call(st, &value, &mut out);
    }
    out
}

/// Answers one call object and appends its response object to `out`.
pub(crate) fn handle_call(st: &NodeState, call: &Value, out: &mut Body) {
    st.counters.calls.fetch_add(1, Ordering::Relaxed);
    let id: Vec<u8> = match call.get("id") {
        Some(id) if id.is_str() || id.is_number() || id.is_null() => {
            sonic_rs::to_vec(id).unwrap_or_else(|_| NULL_ID.to_vec())
        }
        _ => NULL_ID.to_vec(),
    };
    let result = check_envelope(call).and_then(|(method, params)| dispatch(st, method, params));
    match result {
        Ok(answer) => write_result(out, &id, answer),
        Err(e) => {
            st.counters.errors.fetch_add(1, Ordering::Relaxed);
            write_error(out, &id, &e);
        }
    }
}

fn check_envelope(call: &Value) -> Result<(&str, &[Value]), RpcError> {
    let invalid = || err(-32600, "invalid request");
    if !call.is_object() {
        return Err(invalid());
    }
    if let Some(id) = call.get("id") {
        if !(id.is_str() || id.is_number() || id.is_null()) {
            return Err(invalid());
        }
    }
    if call.get("jsonrpc").and_then(|v| v.as_str()) != Some("2.0") {
        return Err(invalid());
    }
    let method = call
        .get("method")
        .and_then(|m| m.as_str())
        .ok_or_else(invalid)?;
    let params: &[Value] = match call.get("params") {
        None => &[],
        Some(p) if p.is_null() => &[],
        Some(p) => match p.as_array() {
            Some(a) => a,
            None => return Err(err(-32602, "non-array args")),
        },
    };
    Ok((method, params))
}

fn write_head(out: &mut Body, id: &[u8]) {
    out.bytes(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.bytes(id);
}

fn write_result(out: &mut Body, id: &[u8], answer: Answer) {
    write_head(out, id);
    out.bytes(b",\"result\":");
    match answer {
        Answer::Null => out.bytes(b"null"),
        Answer::Json(v) => out.bytes(&v),
        Answer::Stored(blob, span) => out.shared(&blob, span),
        Answer::List(items) => {
            out.bytes(b"[");
            for (i, (blob, span)) in items.iter().enumerate() {
                if i > 0 {
                    out.bytes(b",");
                }
                out.shared(blob, *span);
            }
            out.bytes(b"]");
        }
    }
    out.bytes(b"}");
}

fn write_error(out: &mut Body, id: &[u8], e: &RpcError) {
    write_head(out, id);
    out.bytes(b",\"error\":{\"code\":");
    out.bytes(itoa::Buffer::new().format(e.code).as_bytes());
    out.bytes(b",\"message\":");
    let msg = sonic_rs::to_vec(&e.message).unwrap_or_else(|_| b"\"error\"".to_vec());
    out.bytes(&msg);
    out.bytes(b"}}");
}

// ------------------------------------------------------------------------------------------------
// Methods
// ------------------------------------------------------------------------------------------------

fn dispatch(st: &NodeState, method: &str, params: &[Value]) -> Result<Answer, RpcError> {
    match method {
        "eth_chainId" => {
            arity(params, 0, 0)?;
            Ok(json_qty(st.chain_id))
        }
        "net_version" => {
            arity(params, 0, 0)?;
            Ok(json_str(itoa::Buffer::new().format(st.chain_id)))
        }
        "web3_clientVersion" => {
            arity(params, 0, 0)?;
            Ok(json_str(&st.client_version))
        }
        "eth_syncing" => {
            arity(params, 0, 0)?;
            Ok(Answer::Json(b"false".to_vec()))
        }
        "eth_blockNumber" => {
            arity(params, 0, 0)?;
            Ok(json_qty(st.head()))
        }
        "eth_getBlockByNumber" => get_block_by_number(st, params),
        "eth_getBlockByHash" => get_block_by_hash(st, params),
        "eth_getBlockReceipts" => get_block_receipts(st, params),
        "eth_getTransactionReceipt" => get_transaction_receipt(st, params),
        "eth_getLogs" => get_logs(st, params),
        _ => Err(err(
            -32601,
            format!("the method {method} does not exist/is not available"),
        )),
    }
}

/// geth's argument-count checks.
fn arity(params: &[Value], required: usize, max: usize) -> Result<(), RpcError> {
    if params.len() > max {
        return Err(err(
            -32602,
            format!("too many arguments, want at most {max}"),
        ));
    }
    if params.len() < required {
        return Err(err(
            -32602,
            format!("missing value for required argument {}", params.len()),
        ));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockRef {
    Number(u64),
    /// latest, pending, safe, finalized: all resolve to the head here.
    Head,
    Earliest,
}

fn parse_quantity(s: &str) -> Result<u64, String> {
    let Some(digits) = s.strip_prefix("0x") else {
        return Err("hex string without 0x prefix".into());
    };
    if digits.is_empty() {
        return Err("hex string \"0x\"".into());
    }
    if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err("invalid hex string".into());
    }
    if digits.len() > 16 && digits.trim_start_matches('0').len() > 16 {
        return Err("hex number > 64 bits".into());
    }
    u64::from_str_radix(digits, 16).map_err(|_| "invalid hex string".to_string())
}

fn parse_block_ref(v: &Value, i: usize) -> Result<BlockRef, RpcError> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid_arg(i, "block number must be a hex quantity or a block tag"))?;
    match s {
        "latest" | "pending" | "safe" | "finalized" => Ok(BlockRef::Head),
        "earliest" => Ok(BlockRef::Earliest),
        _ => parse_quantity(s)
            .map(BlockRef::Number)
            .map_err(|m| invalid_arg(i, m)),
    }
}

fn parse_hash_arg(v: &Value, i: usize) -> Result<H256, RpcError> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid_arg(i, "hash must be a hex string"))?;
    if !s.starts_with("0x") {
        return Err(invalid_arg(i, "hex string without 0x prefix"));
    }
    parse_h256(s).ok_or_else(|| {
        invalid_arg(
            i,
            format!(
                "hex string has length {}, want 64 for common.Hash",
                s.len() - 2
            ),
        )
    })
}

fn parse_bool_arg(v: &Value, i: usize) -> Result<bool, RpcError> {
    v.as_bool()
        .ok_or_else(|| invalid_arg(i, "json: cannot unmarshal into Go value of type bool"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Block,
    Receipts,
}

/// The block number a reference stands for, among blocks that have `need`.
fn resolve(st: &NodeState, r: BlockRef, need: Need) -> Option<u64> {
    let has = |n: &u64| {
        st.store.blocks.get(n).is_some_and(|e| match need {
            Need::Block => e.full.is_some(),
            Need::Receipts => e.receipts.is_some(),
        })
    };
    match r {
        BlockRef::Number(n) => Some(n),
        BlockRef::Earliest => st.store.blocks.keys().find(|n| has(n)).copied(),
        BlockRef::Head => st
            .store
            .blocks
            .range(..=st.head())
            .rev()
            .map(|(n, _)| n)
            .find(|n| has(n))
            .copied(),
    }
}

fn block_answer(st: &NodeState, n: Option<u64>, full: bool) -> Result<Answer, RpcError> {
    let entry = n.and_then(|n| st.store.blocks.get(&n));
    let blob = entry.and_then(|e| {
        if full {
            e.full.as_ref()
        } else {
            e.hashes_only.as_ref()
        }
    });
    match blob {
        Some(b) => Ok(whole(b)),
        None => match st.unknown_block {
            UnknownBlock::Null => Ok(Answer::Null),
            UnknownBlock::Error => Err(header_not_found()),
        },
    }
}

fn get_block_by_number(st: &NodeState, params: &[Value]) -> Result<Answer, RpcError> {
    arity(params, 2, 2)?;
    let r = parse_block_ref(&params[0], 0)?;
    let full = parse_bool_arg(&params[1], 1)?;
    block_answer(st, resolve(st, r, Need::Block), full)
}

fn get_block_by_hash(st: &NodeState, params: &[Value]) -> Result<Answer, RpcError> {
    arity(params, 2, 2)?;
    let h = parse_hash_arg(&params[0], 0)?;
    let full = parse_bool_arg(&params[1], 1)?;
    block_answer(st, st.store.by_hash.get(&h).copied(), full)
}

fn get_block_receipts(st: &NodeState, params: &[Value]) -> Result<Answer, RpcError> {
    arity(params, 1, 1)?;
    let p = &params[0];
    let n = if let Some(s) = p.as_str() {
        if s.len() == 66 {
            let h = parse_hash_arg(p, 0)?;
            st.store
                .by_hash
                .get(&h)
                .copied()
                .ok_or_else(header_not_found)?
        } else {
            let r = parse_block_ref(p, 0)?;
            resolve(st, r, Need::Receipts).ok_or_else(header_not_found)?
        }
    } else if p.is_object() {
        let bh = p.get("blockHash").filter(|v| !v.is_null());
        let bn = p.get("blockNumber").filter(|v| !v.is_null());
        match (bh, bn) {
            (Some(_), Some(_)) => {
                return Err(invalid_arg(
                    0,
                    "cannot specify both BlockHash and BlockNumber, choose one or the other",
                ))
            }
            (Some(h), None) => {
                let h = parse_hash_arg(h, 0)?;
                st.store
                    .by_hash
                    .get(&h)
                    .copied()
                    .ok_or_else(header_not_found)?
            }
            (None, Some(b)) => {
                let r = parse_block_ref(b, 0)?;
                resolve(st, r, Need::Receipts).ok_or_else(header_not_found)?
            }
            (None, None) => return Err(invalid_arg(0, "hex string without 0x prefix")),
        }
    } else {
        return Err(invalid_arg(
            0,
            "block number or hash must be a string or an object",
        ));
    };
    let entry = st.store.blocks.get(&n).ok_or_else(header_not_found)?;
    match &entry.receipts {
        Some(b) => Ok(whole(b)),
        None => Err(err(-32000, "block receipts not found")),
    }
}

fn get_transaction_receipt(st: &NodeState, params: &[Value]) -> Result<Answer, RpcError> {
    arity(params, 1, 1)?;
    let h = parse_hash_arg(&params[0], 0)?;
    match st.store.txs.get(&h) {
        None => Ok(Answer::Null),
        Some(TxLoc::Single(b)) => Ok(whole(b)),
        Some(TxLoc::InBlock { number, index }) => {
            let found =
                st.store.blocks.get(number).and_then(|e| {
                    Some((e.receipts.as_ref()?, *e.receipt_spans.get(*index as usize)?))
                });
            Ok(match found {
                Some((blob, span)) => Answer::Stored(blob.clone(), span),
                None => Answer::Null,
            })
        }
    }
}

/// A parsed `eth_getLogs` filter.
struct LogFilter {
    addresses: Vec<Addr>,
    /// Per position: empty = wildcard, else any of these.
    topics: Vec<Vec<H256>>,
}

impl LogFilter {
    fn matches(&self, address: &Addr, topics: &[H256]) -> bool {
        if !self.addresses.is_empty() && !self.addresses.contains(address) {
            return false;
        }
        if self.topics.len() > topics.len() {
            return false;
        }
        self.topics
            .iter()
            .zip(topics)
            .all(|(want, got)| want.is_empty() || want.contains(got))
    }
}

fn get_logs(st: &NodeState, params: &[Value]) -> Result<Answer, RpcError> {
    arity(params, 1, 1)?;
    let f = &params[0];
    if !f.is_object() {
        return Err(invalid_arg(0, "filter must be an object"));
    }
    let field = |k: &str| f.get(k).filter(|v| !v.is_null());
    let (lo, hi) = if let Some(bh) = field("blockHash") {
        if field("fromBlock").is_some() || field("toBlock").is_some() {
            return Err(invalid_arg(
                0,
                "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other",
            ));
        }
        let h = parse_hash_arg(bh, 0)?;
        let n = st
            .store
            .by_hash
            .get(&h)
            .copied()
            .ok_or_else(|| err(-32000, "unknown block"))?;
        (n, n)
    } else {
        let head = st.head();
        let bound = |k: &str| -> Result<u64, RpcError> {
            Ok(match field(k) {
                None => head,
                Some(v) => match parse_block_ref(v, 0)? {
                    BlockRef::Head => head,
                    BlockRef::Earliest => 0,
                    BlockRef::Number(n) => n,
                },
            })
        };
        let (lo, hi) = (bound("fromBlock")?, bound("toBlock")?);
        if lo > hi {
            return Err(err(-32000, "invalid block range params"));
        }
        (lo, hi.min(head))
    };
    let mut filter = LogFilter {
        addresses: Vec::new(),
        topics: Vec::new(),
    };
    match field("address") {
        None => {}
        Some(a) if a.is_str() => filter.addresses.push(parse_address_arg(a)?),
        Some(a) => match a.as_array() {
            Some(list) => {
                for x in list.iter() {
                    filter.addresses.push(parse_address_arg(x)?);
                }
            }
            None => return Err(invalid_arg(0, "address must be a string or an array")),
        },
    }
    if let Some(t) = field("topics") {
        let list = t
            .as_array()
            .ok_or_else(|| invalid_arg(0, "topics must be an array"))?;
        if list.len() > 4 {
            return Err(invalid_arg(0, "exceed max topics"));
        }
        for pos in list.iter() {
            let mut want = Vec::new();
            if let Some(s) = pos.as_str() {
                want.push(parse_topic(s)?);
            } else if let Some(alts) = pos.as_array() {
                for alt in alts.iter() {
                    if alt.is_null() {
                        want.clear();
                        break;
                    }
                    let s = alt
                        .as_str()
                        .ok_or_else(|| invalid_arg(0, "invalid topic(s)"))?;
                    want.push(parse_topic(s)?);
                }
            } else if !pos.is_null() {
                return Err(invalid_arg(0, "invalid topic(s)"));
            }
            filter.topics.push(want);
        }
    }
    let mut items = Vec::new();
    if lo <= hi {
        for entry in st.store.blocks.range(lo..=hi).map(|(_, e)| e) {
            let Some(src) = &entry.log_source else {
                continue;
            };
            for lg in &entry.logs {
                if filter.matches(&lg.address, &lg.topics[..lg.n_topics as usize]) {
                    items.push((src.clone(), lg.span));
                }
            }
        }
    }
    Ok(Answer::List(items))
}

fn parse_address_arg(v: &Value) -> Result<Addr, RpcError> {
    v.as_str()
        .and_then(parse_addr)
        .ok_or_else(|| invalid_arg(0, "invalid address"))
}

fn parse_topic(s: &str) -> Result<H256, RpcError> {
    parse_h256(s).ok_or_else(|| invalid_arg(0, "invalid topic(s)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> NodeState {
        NodeState {
            store: Store::default(),
            chain_id: 5,
            latest: None,
            unknown_block: UnknownBlock::Null,
            client_version: "test/1".into(),
            counters: Counters::default(),
        }
    }

    fn call(st: &NodeState, body: &str) -> String {
        String::from_utf8(handle_body(st, body.as_bytes()).to_vec()).unwrap()
    }

    #[test]
    fn envelope_keeps_the_id_and_reports_geth_codes() {
        let st = state();
        assert_eq!(
            call(
                &st,
                r#"{"jsonrpc":"2.0","id":"x-1","method":"eth_chainId","params":[]}"#
            ),
            r#"{"jsonrpc":"2.0","id":"x-1","result":"0x5"}"#
        );
        assert_eq!(
            call(&st, r#"{"jsonrpc":"2.0","id":7,"method":"net_version"}"#),
            r#"{"jsonrpc":"2.0","id":7,"result":"5"}"#
        );
        assert!(call(&st, "{").contains(r#""code":-32700"#));
        assert!(call(&st, "[]").contains(r#""code":-32600"#));
        assert!(call(&st, r#"{"id":1,"method":"eth_chainId"}"#).contains(r#""code":-32600"#));
        assert!(
            call(&st, r#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#).contains(r#""code":-32601"#)
        );
        assert!(call(
            &st,
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":{}}"#
        )
        .contains(r#""code":-32602"#));
    }

    #[test]
    fn quantities_follow_geth_rules() {
        assert_eq!(parse_quantity("0x0"), Ok(0));
        assert_eq!(parse_quantity("0x00ff"), Ok(255));
        assert!(parse_quantity("12").is_err());
        assert!(parse_quantity("0x").is_err());
        assert!(parse_quantity("0xg").is_err());
        assert!(parse_quantity("0x+1").is_err());
        assert!(parse_quantity("0x10000000000000000").is_err());
    }

    fn small_chain_state() -> NodeState {
        let mut st = state();
        let gen = super::super::GenConfig {
            blocks: 3,
            start_block: 16,
            txs_per_block: Some(3),
            ..Default::default()
        };
        st.store
            .add_generated(super::super::generate_chain(&gen))
            .unwrap();
        st
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_get_a_json_answer(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let st = state();
            let out = handle_body(&st, &body).to_vec();
            proptest::prop_assert!(sonic_rs::from_slice::<Value>(&out).is_ok());
        }

        #[test]
        fn any_params_get_a_json_answer(
            method in proptest::sample::select(vec![
                "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getBlockReceipts",
                "eth_getTransactionReceipt", "eth_getLogs", "eth_blockNumber", "eth_chainId",
            ]),
            params in r#"\[((\"0x[0-9a-fA-F]{0,66}\"|\"latest\"|\"earliest\"|true|false|null|-?[0-9]{1,3}|\{\}|\{\"blockHash\":null,\"blockNumber\":\"0x1\"\}|\{\"fromBlock\":\"0x0\",\"toBlock\":\"latest\",\"topics\":\[null,\[\]\]\}|\[\])(,(true|false|null|\"0x1\"|\[\]|\{\}))*)?\]"#,
        ) {
            let st = small_chain_state();
            let body = format!(r#"[{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}]"#);
            let out = handle_body(&st, body.as_bytes()).to_vec();
            let v: Value = sonic_rs::from_slice(&out).unwrap();
            let item = &v.as_array().unwrap()[0];
            proptest::prop_assert!(item.get("result").is_some() != item.get("error").is_some(), "{}", body);
        }
    }

    #[test]
    fn body_reader_reassembles_parts() {
        let blob: Blob = std::sync::Arc::new(vec![b'a'; 5000]);
        let mut b = Body::default();
        b.bytes(b"[");
        b.shared(
            &blob,
            Span {
                start: 10,
                end: 4010,
            },
        );
        b.bytes(b",");
        b.shared(&blob, Span { start: 0, end: 3 });
        b.bytes(b"]");
        let v = b.to_vec();
        assert_eq!(v.len(), b.len());
        assert_eq!(v.len(), 4000 + 3 + 3);
        let mut r = b.into_reader();
        let mut w = Vec::new();
        r.read_to_end(&mut w).unwrap();
        assert_eq!(v, w);
    }
}
