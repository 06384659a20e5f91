//! JSON-RPC request handling: parses a request body (single call or batch), answers each call
//! from the [`Store`] and assembles the response from pre-rendered byte ranges without ever
//! re-serializing a result. Errors use the codes and messages geth uses, including geth's batch
//! limits (`batch too large`, `response too large`).
//!
//! [`handle_body`] answers a body cleanly; [`handle_request`] is the server's entry point and
//! also applies the body-level and item-level faults (see [`super::faults`]). Faults only
//! rewrite the answer being built; the store is never modified here.

use super::faults::{FaultKind, FaultRng, FaultSpec};
use super::generate::{Addr, H256};
use super::growth::ReorgEvent;
use super::store::{parse_addr, parse_h256, Blob, BlockEntry, Span, Store};
use super::UnknownBlock;
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// Everything a request handler reads. The chain itself sits behind a lock because a growing
/// chain reveals blocks and reorganises while requests are served.
pub(crate) struct NodeState {
    pub chain: RwLock<Store>,
    pub chain_id: u64,
    pub latest: Option<u64>,
    pub unknown_block: UnknownBlock,
    pub client_version: String,
    /// `false`: `eth_getBlockReceipts` is answered -32601 (method not available).
    pub block_receipts: bool,
    /// geth's `--rpc.batch-request-limit` (0 there = unlimited; `None` here).
    pub max_batch_calls: Option<usize>,
    /// geth's `--rpc.batch-response-max-size`: a cap on the summed `result` bytes of a batch.
    pub max_response_bytes: Option<usize>,
    pub faults: FaultSpec,
    pub fault_seed: u64,
    pub stall: Duration,
    pub retry_after_secs: u64,
    pub started: Instant,
    pub counters: Counters,
    pub reorgs: Mutex<Vec<ReorgEvent>>,
}

/// At most this many one-second buckets of request arrivals are kept (a day).
pub(crate) const MAX_SECONDS: usize = 86_400;

/// Served-traffic counters (relaxed atomics; read with [`super::DevNode::stats`]).
pub(crate) struct Counters {
    pub requests: AtomicU64,
    /// JSON-RPC (POST) requests; the next one gets this number as its fault-schedule index.
    pub rpc_requests: AtomicU64,
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub bytes: AtomicU64,
    pub faults: [AtomicU64; FaultKind::ALL.len()],
    pub batch_too_large: AtomicU64,
    pub response_too_large: AtomicU64,
    /// Nanoseconds since start of the first (`u64::MAX`: none yet) and the last request.
    pub first_request_ns: AtomicU64,
    pub last_request_ns: AtomicU64,
    /// Requests that arrived in each second since start.
    pub per_second: Mutex<Vec<u64>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: AtomicU64::new(0),
            rpc_requests: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            faults: std::array::from_fn(|_| AtomicU64::new(0)),
            batch_too_large: AtomicU64::new(0),
            response_too_large: AtomicU64::new(0),
            first_request_ns: AtomicU64::new(u64::MAX),
            last_request_ns: AtomicU64::new(0),
            per_second: Mutex::new(Vec::new()),
        }
    }
}

impl Counters {
    pub fn fault(&self, kind: FaultKind) {
        self.faults[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the arrival of a request `since_start` after the node started.
    pub fn arrival(&self, since_start: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(since_start.as_nanos()).unwrap_or(u64::MAX - 1);
        let _ = self.first_request_ns.compare_exchange(
            u64::MAX,
            ns,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.last_request_ns.fetch_max(ns, Ordering::Relaxed);
        let sec = since_start.as_secs() as usize;
        if sec < MAX_SECONDS {
            let mut v = self.per_second.lock().unwrap_or_else(|e| e.into_inner());
            if v.len() <= sec {
                v.resize(sec + 1, 0);
            }
            v[sec] += 1;
        }
    }
}

impl NodeState {
    /// A node state with defaults around `store` (used by unit tests and as a base).
    pub fn new(store: Store) -> NodeState {
        NodeState {
            chain: RwLock::new(store),
            chain_id: 1,
            latest: None,
            unknown_block: UnknownBlock::Null,
            client_version: format!("ethetl-devnode/v{}", env!("CARGO_PKG_VERSION")),
            block_receipts: true,
            max_batch_calls: None,
            max_response_bytes: None,
            faults: FaultSpec::none(),
            fault_seed: 0,
            stall: Duration::from_millis(3000),
            retry_after_secs: 1,
            started: Instant::now(),
            counters: Counters::default(),
            reorgs: Mutex::new(Vec::new()),
        }
    }

    /// The chain, for reading. A writer that panicked leaves consistent data behind (every
    /// update is a sequence of complete insertions), so a poisoned lock is still read.
    pub fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.chain.read().unwrap_or_else(|e| e.into_inner())
    }

    /// `eth_blockNumber`: the revealed head of a growing chain, else `--latest` or the highest
    /// known block.
    pub fn head_of(&self, store: &Store) -> u64 {
        if store.visible.is_some() {
            return store.highest_visible().unwrap_or(0);
        }
        self.latest.or_else(|| store.highest()).unwrap_or(0)
    }

    pub fn head(&self) -> u64 {
        self.head_of(&self.read())
    }
}

/// What a handler reads for one request: the node and a consistent view of the chain.
struct Cx<'a> {
    st: &'a NodeState,
    store: &'a Store,
    head: u64,
}

// ------------------------------------------------------------------------------------------------
// Response bodies made of shared byte ranges
// ------------------------------------------------------------------------------------------------

enum Part {
    Owned(Vec<u8>),
    Shared(Blob, Span),
}

impl Part {
    fn bytes(&self) -> &[u8] {
        match self {
            Part::Owned(v) => v,
            Part::Shared(b, s) => &b[s.range()],
        }
    }
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
        self.flush_pending();
        self.len += r.len();
        self.parts.push(Part::Shared(blob.clone(), span));
    }

    fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            self.parts
                .push(Part::Owned(std::mem::take(&mut self.pending)));
        }
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
            out.extend_from_slice(p.bytes());
        }
        out.extend_from_slice(&self.pending);
        out
    }

    /// A reader over the body, consuming it.
    #[cfg(test)]
    pub fn into_reader(mut self) -> BodyReader {
        self.flush_pending();
        BodyReader {
            parts: self.parts,
            idx: 0,
            off: 0,
        }
    }
}

impl super::http::ResponseBody for Body {
    fn len(&self) -> usize {
        self.len
    }

    fn write_prefix(&self, w: &mut dyn Write, mut n: usize) -> std::io::Result<()> {
        for b in self
            .parts
            .iter()
            .map(Part::bytes)
            .chain(std::iter::once(&self.pending[..]))
        {
            if n == 0 {
                break;
            }
            let k = n.min(b.len());
            w.write_all(&b[..k])?;
            n -= k;
        }
        Ok(())
    }
}

/// Reads a [`Body`] part by part.
#[cfg(test)]
pub(crate) struct BodyReader {
    parts: Vec<Part>,
    idx: usize,
    off: usize,
}

#[cfg(test)]
impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(p) = self.parts.get(self.idx) {
            let src = p.bytes();
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

fn method_not_found(method: &str) -> RpcError {
    err(
        -32601,
        format!("the method {method} does not exist/is not available"),
    )
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

impl Answer {
    /// Length of the rendered `result` value (what geth's response size cap counts).
    fn len(&self) -> usize {
        match self {
            Answer::Null => 4,
            Answer::Json(v) => v.len(),
            Answer::Stored(_, s) => s.range().len(),
            Answer::List(items) => {
                2 + items.iter().map(|(_, s)| s.range().len()).sum::<usize>()
                    + items.len().saturating_sub(1)
            }
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Answer::Null)
    }
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

/// The stored block a call's answer came from (for item-level faults).
#[derive(Clone, Copy)]
enum Target<'a> {
    None,
    /// `eth_getBlockByNumber` / `eth_getBlockByHash`.
    Block,
    /// `eth_getBlockReceipts` of this block (number, entry).
    Receipts(u64, &'a BlockEntry),
}

/// One answered call.
struct Item<'a> {
    id: Vec<u8>,
    result: Result<Answer, RpcError>,
    target: Target<'a>,
}

/// An answered request body.
enum Reply<'a> {
    /// A single call, or a request-level error (parse error, empty batch) with a null id.
    One(Item<'a>),
    Batch(Vec<Item<'a>>),
}

// ------------------------------------------------------------------------------------------------
// Entry points
// ------------------------------------------------------------------------------------------------

const NULL_ID: &[u8] = b"null";

/// Answers one HTTP request body (a single call or a batch) without faults. Batch answers keep
/// request order.
#[cfg(test)]
pub(crate) fn handle_body(st: &NodeState, body: &[u8]) -> Body {
    handle_request(st, body, None).0
}

/// Answers one HTTP request body, applying `fault` if it is a body-level kind
/// (`ratelimit-rpc`, `batch-error`) or an item-level kind ([`FaultKind::is_item_level`]).
/// Returns the body and whether the fault was applied (an item-level fault that finds nothing
/// to act on is not).
pub(crate) fn handle_request(
    st: &NodeState,
    body: &[u8],
    fault: Option<(FaultKind, &mut FaultRng)>,
) -> (Body, bool) {
    let value: Value = match sonic_rs::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            st.counters.errors.fetch_add(1, Ordering::Relaxed);
            return (
                render(&Reply::One(error_item(NULL_ID, err(-32700, "parse error")))),
                false,
            );
        }
    };
    let batch = value.as_array();
    // Body-level faults replace the whole answer without running the calls.
    if let Some((kind @ (FaultKind::RateLimitRpc | FaultKind::BatchError), _)) = fault {
        let id = match batch {
            Some(_) => NULL_ID.to_vec(),
            None => call_id(&value),
        };
        let e = if kind == FaultKind::RateLimitRpc {
            err(-32005, "rate limit exceeded")
        } else {
            err(-32603, "internal error")
        };
        return (render(&Reply::One(error_item(&id, e))), true);
    }
    let store = st.read();
    let cx = Cx {
        st,
        head: st.head_of(&store),
        store: &store,
    };
    let mut reply = match batch {
        Some(b) => answer_batch(&cx, b),
        None => Reply::One(answer_call(&cx, &value)),
    };
    let applied = match fault {
        Some((kind, rng)) if kind.is_item_level() => apply_item_fault(&cx, kind, rng, &mut reply),
        _ => false,
    };
    (render(&reply), applied)
}

fn error_item<'a>(id: &[u8], e: RpcError) -> Item<'a> {
    Item {
        id: id.to_vec(),
        result: Err(e),
        target: Target::None,
    }
}

/// The call's `id` as JSON (`null` if absent or not a string/number).
fn call_id(call: &Value) -> Vec<u8> {
    match call.get("id") {
        Some(id) if id.is_str() || id.is_number() || id.is_null() => {
            sonic_rs::to_vec(id).unwrap_or_else(|_| NULL_ID.to_vec())
        }
        _ => NULL_ID.to_vec(),
    }
}

fn answer_batch<'a>(cx: &Cx<'a>, batch: &sonic_rs::Array) -> Reply<'a> {
    let st = cx.st;
    if batch.is_empty() {
        st.counters.errors.fetch_add(1, Ordering::Relaxed);
        return Reply::One(error_item(NULL_ID, err(-32600, "empty batch")));
    }
    if st.max_batch_calls.is_some_and(|max| batch.len() > max) {
        // geth answers an over-long batch with a one-element array: error -32600 "batch too
        // large" carrying the id of the first call in the batch (null if none has one).
        st.counters.batch_too_large.fetch_add(1, Ordering::Relaxed);
        st.counters.errors.fetch_add(1, Ordering::Relaxed);
        let id = batch
            .iter()
            .find(|c| {
                c.get("method").is_some_and(|m| m.is_str())
                    && c.get("id").is_some_and(|id| id.is_str() || id.is_number())
            })
            .map(call_id)
            .unwrap_or_else(|| NULL_ID.to_vec());
        return Reply::Batch(vec![error_item(&id, err(-32600, "batch too large"))]);
    }
    let mut items = Vec::with_capacity(batch.len());
    let mut result_bytes = 0usize;
    let mut too_large = false;
    for call in batch.iter() {
        if too_large {
            // geth stops executing once the summed results exceed the cap and answers every
            // remaining call with -32003 "response too large".
            st.counters.errors.fetch_add(1, Ordering::Relaxed);
            items.push(error_item(
                &call_id(call),
                err(-32003, "response too large"),
            ));
            continue;
        }
        let item = answer_call(cx, call);
        if let (Some(max), Ok(a)) = (st.max_response_bytes, &item.result) {
            result_bytes += a.len();
            if result_bytes > max {
                too_large = true;
                st.counters
                    .response_too_large
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        items.push(item);
    }
    Reply::Batch(items)
}

/// Answers one call object.
fn answer_call<'a>(cx: &Cx<'a>, call: &Value) -> Item<'a> {
    let st = cx.st;
    st.counters.calls.fetch_add(1, Ordering::Relaxed);
    let id = call_id(call);
    let result = check_envelope(call).and_then(|(method, params)| dispatch(cx, method, params));
    match result {
        Ok((answer, target)) => Item {
            id,
            result: Ok(answer),
            target,
        },
        Err(e) => {
            st.counters.errors.fetch_add(1, Ordering::Relaxed);
            Item {
                id,
                result: Err(e),
                target: Target::None,
            }
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

// ------------------------------------------------------------------------------------------------
// Rendering
// ------------------------------------------------------------------------------------------------

fn render(reply: &Reply) -> Body {
    let mut out = Body::default();
    match reply {
        Reply::One(item) => write_item(&mut out, item),
        Reply::Batch(items) => {
            out.bytes(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.bytes(b",");
                }
                write_item(&mut out, item);
            }
            out.bytes(b"]");
        }
    }
    out
}

fn write_item(out: &mut Body, item: &Item) {
    match &item.result {
        Ok(a) => write_result(out, &item.id, a),
        Err(e) => write_error(out, &item.id, e),
    }
}

fn write_head(out: &mut Body, id: &[u8]) {
    out.bytes(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.bytes(id);
}

fn write_result(out: &mut Body, id: &[u8], answer: &Answer) {
    write_head(out, id);
    out.bytes(b",\"result\":");
    match answer {
        Answer::Null => out.bytes(b"null"),
        Answer::Json(v) => out.bytes(v),
        Answer::Stored(blob, span) => out.shared(blob, *span),
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
// Item-level faults
// ------------------------------------------------------------------------------------------------

/// Applies an item-level fault to the answer; `false` if the answer has nothing it applies to.
fn apply_item_fault(cx: &Cx, kind: FaultKind, rng: &mut FaultRng, reply: &mut Reply) -> bool {
    if kind == FaultKind::Shuffle {
        let Reply::Batch(items) = reply else {
            return false;
        };
        let n = items.len();
        if n < 2 {
            return false;
        }
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
        if order.iter().enumerate().all(|(i, &j)| i == j) {
            order.rotate_left(1);
        }
        let mut old: Vec<Option<Item>> = std::mem::take(items).into_iter().map(Some).collect();
        *items = order.into_iter().filter_map(|j| old[j].take()).collect();
        return true;
    }
    let items: &mut [Item] = match reply {
        Reply::One(item) => std::slice::from_mut(item),
        Reply::Batch(items) => items,
    };
    // Indices of successful, non-null answers whose target matches.
    let pick = |items: &[Item], rng: &mut FaultRng, want: fn(&Target) -> bool| {
        let cands: Vec<usize> = (0..items.len())
            .filter(|&i| {
                want(&items[i].target) && items[i].result.as_ref().is_ok_and(|a| !a.is_null())
            })
            .collect();
        (!cands.is_empty()).then(|| cands[rng.below(cands.len())])
    };
    let is_block = |t: &Target| matches!(t, Target::Block);
    let is_receipts = |t: &Target| matches!(t, Target::Receipts(..));
    match kind {
        FaultKind::ItemError => {
            if items.is_empty() {
                return false;
            }
            let i = rng.below(items.len());
            items[i].result = Err(err(-32000, "execution aborted (timeout = 5s)"));
            items[i].target = Target::None;
            true
        }
        FaultKind::NullBlock | FaultKind::NullReceipts => {
            let want = if kind == FaultKind::NullBlock {
                is_block
            } else {
                is_receipts
            };
            let Some(i) = pick(items, rng, want) else {
                return false;
            };
            items[i].result = Ok(Answer::Null);
            true
        }
        FaultKind::ReceiptsMismatch => {
            let cands: Vec<usize> = (0..items.len())
                .filter(|&i| match (&items[i].target, &items[i].result) {
                    (Target::Receipts(_, e), Ok(Answer::Stored(..))) => !e.receipt_spans.is_empty(),
                    _ => false,
                })
                .collect();
            if cands.is_empty() {
                return false;
            }
            let i = cands[rng.below(cands.len())];
            let Target::Receipts(_, entry) = items[i].target else {
                return false;
            };
            let Some(blob) = &entry.receipts else {
                return false;
            };
            let drop_at = rng.below(entry.receipt_spans.len());
            let mut v = Vec::with_capacity(blob.len());
            v.push(b'[');
            for (j, s) in entry.receipt_spans.iter().enumerate() {
                if j == drop_at {
                    continue;
                }
                if v.len() > 1 {
                    v.push(b',');
                }
                v.extend_from_slice(&blob[s.range()]);
            }
            v.push(b']');
            items[i].result = Ok(Answer::Json(v));
            true
        }
        FaultKind::WrongBlock => {
            let Some(i) = pick(items, rng, is_receipts) else {
                return false;
            };
            let Target::Receipts(number, entry) = items[i].target else {
                return false;
            };
            let Some(other) = other_receipts(cx, number, entry) else {
                return false;
            };
            items[i].result = Ok(whole(other));
            true
        }
        _ => false,
    }
}

/// Receipts of the nearest other visible block (above first, then below), preferring one with
/// at least one receipt so the wrong `blockHash` shows.
fn other_receipts<'a>(cx: &Cx<'a>, number: u64, entry: &BlockEntry) -> Option<&'a Blob> {
    let this = entry.hash;
    let usable = |e: &&BlockEntry| e.hash != this && e.receipts.is_some();
    let mut fallback = None;
    let above = cx.store.visible_range(number.saturating_add(1), u64::MAX);
    let below = cx.store.visible_range(0, number.saturating_sub(1)).rev();
    for (_, e) in above.take(64).chain(below.take(64)) {
        if !usable(&e) {
            continue;
        }
        if !e.receipt_spans.is_empty() {
            return e.receipts.as_ref();
        }
        fallback = fallback.or(e.receipts.as_ref());
    }
    fallback
}

// ------------------------------------------------------------------------------------------------
// Methods
// ------------------------------------------------------------------------------------------------

fn dispatch<'a>(
    cx: &Cx<'a>,
    method: &str,
    params: &[Value],
) -> Result<(Answer, Target<'a>), RpcError> {
    let st = cx.st;
    let plain = |a: Answer| Ok((a, Target::None));
    match method {
        "eth_chainId" => {
            arity(params, 0, 0)?;
            plain(json_qty(st.chain_id))
        }
        "net_version" => {
            arity(params, 0, 0)?;
            plain(json_str(itoa::Buffer::new().format(st.chain_id)))
        }
        "web3_clientVersion" => {
            arity(params, 0, 0)?;
            plain(json_str(&st.client_version))
        }
        "eth_syncing" => {
            arity(params, 0, 0)?;
            plain(Answer::Json(b"false".to_vec()))
        }
        "eth_blockNumber" => {
            arity(params, 0, 0)?;
            plain(json_qty(cx.head))
        }
        "eth_getBlockByNumber" => Ok((get_block_by_number(cx, params)?, Target::Block)),
        "eth_getBlockByHash" => Ok((get_block_by_hash(cx, params)?, Target::Block)),
        "eth_getBlockReceipts" if st.block_receipts => get_block_receipts(cx, params),
        "eth_getTransactionReceipt" => plain(get_transaction_receipt(cx, params)?),
        "eth_getTransactionByHash" => plain(get_transaction_by_hash(cx, params)?),
        "eth_getLogs" => plain(get_logs(cx, params)?),
        _ => Err(method_not_found(method)),
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

/// The block number a reference stands for, among visible blocks that have `need`.
fn resolve(cx: &Cx, r: BlockRef, need: Need) -> Option<u64> {
    let has = |e: &BlockEntry| match need {
        Need::Block => e.full.is_some(),
        Need::Receipts => e.receipts.is_some(),
    };
    match r {
        BlockRef::Number(n) => Some(n),
        BlockRef::Earliest => cx
            .store
            .visible_range(0, u64::MAX)
            .find(|(_, e)| has(e))
            .map(|(n, _)| *n),
        BlockRef::Head => cx
            .store
            .visible_range(0, cx.head)
            .rev()
            .find(|(_, e)| has(e))
            .map(|(n, _)| *n),
    }
}

fn block_answer(cx: &Cx, entry: Option<&BlockEntry>, full: bool) -> Result<Answer, RpcError> {
    let blob = entry.and_then(|e| {
        if full {
            e.full.as_ref()
        } else {
            e.hashes_only.as_ref()
        }
    });
    match blob {
        Some(b) => Ok(whole(b)),
        None => match cx.st.unknown_block {
            UnknownBlock::Null => Ok(Answer::Null),
            UnknownBlock::Error => Err(header_not_found()),
        },
    }
}

fn get_block_by_number(cx: &Cx, params: &[Value]) -> Result<Answer, RpcError> {
    arity(params, 2, 2)?;
    let r = parse_block_ref(&params[0], 0)?;
    let full = parse_bool_arg(&params[1], 1)?;
    let entry = resolve(cx, r, Need::Block).and_then(|n| cx.store.get(n));
    block_answer(cx, entry, full)
}

fn get_block_by_hash(cx: &Cx, params: &[Value]) -> Result<Answer, RpcError> {
    arity(params, 2, 2)?;
    let h = parse_hash_arg(&params[0], 0)?;
    let full = parse_bool_arg(&params[1], 1)?;
    block_answer(cx, cx.store.by_hash_entry(&h), full)
}

/// A receipts request by block hash: canonical (visible) or orphaned by a reorg.
fn receipts_by_hash<'a>(cx: &Cx<'a>, h: &H256) -> Result<(u64, &'a BlockEntry), RpcError> {
    if let Some(n) = cx.store.number_of(h) {
        let e = cx.store.get(n).ok_or_else(header_not_found)?;
        return Ok((n, e));
    }
    cx.store
        .orphans
        .get(h)
        .map(|e| (e.number, e))
        .ok_or_else(header_not_found)
}

fn get_block_receipts<'a>(cx: &Cx<'a>, params: &[Value]) -> Result<(Answer, Target<'a>), RpcError> {
    arity(params, 1, 1)?;
    let p = &params[0];
    let by_number = |r: BlockRef| -> Result<(u64, &'a BlockEntry), RpcError> {
        let n = resolve(cx, r, Need::Receipts).ok_or_else(header_not_found)?;
        Ok((n, cx.store.get(n).ok_or_else(header_not_found)?))
    };
    let (n, entry) = if let Some(s) = p.as_str() {
        if s.len() == 66 {
            receipts_by_hash(cx, &parse_hash_arg(p, 0)?)?
        } else {
            by_number(parse_block_ref(p, 0)?)?
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
            (Some(h), None) => receipts_by_hash(cx, &parse_hash_arg(h, 0)?)?,
            (None, Some(b)) => by_number(parse_block_ref(b, 0)?)?,
            (None, None) => return Err(invalid_arg(0, "hex string without 0x prefix")),
        }
    } else {
        return Err(invalid_arg(
            0,
            "block number or hash must be a string or an object",
        ));
    };
    match &entry.receipts {
        Some(b) => Ok((whole(b), Target::Receipts(n, entry))),
        None => Err(err(-32000, "block receipts not found")),
    }
}

fn get_transaction_receipt(cx: &Cx, params: &[Value]) -> Result<Answer, RpcError> {
    arity(params, 1, 1)?;
    let h = parse_hash_arg(&params[0], 0)?;
    let in_block = cx.store.tx(&h).and_then(|(loc, e)| {
        Some((
            e.receipts.as_ref()?,
            *e.receipt_spans.get(loc.index as usize)?,
        ))
    });
    Ok(match in_block {
        Some((blob, span)) => Answer::Stored(blob.clone(), span),
        None => match cx.store.single_receipts.get(&h) {
            Some(b) => whole(b),
            None => Answer::Null,
        },
    })
}

fn get_transaction_by_hash(cx: &Cx, params: &[Value]) -> Result<Answer, RpcError> {
    arity(params, 1, 1)?;
    let h = parse_hash_arg(&params[0], 0)?;
    let found = cx
        .store
        .tx(&h)
        .and_then(|(loc, e)| Some((e.full.as_ref()?, *e.tx_spans.get(loc.index as usize)?)));
    Ok(match found {
        Some((blob, span)) => Answer::Stored(blob.clone(), span),
        None => Answer::Null,
    })
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

fn get_logs(cx: &Cx, params: &[Value]) -> Result<Answer, RpcError> {
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
        let n = cx
            .store
            .number_of(&h)
            .ok_or_else(|| err(-32000, "unknown block"))?;
        (n, n)
    } else {
        let head = cx.head;
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
        for entry in cx.store.visible_range(lo, hi).map(|(_, e)| e) {
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
    use std::io::Read;

    fn state_with(store: Store) -> NodeState {
        let mut st = NodeState::new(store);
        st.chain_id = 5;
        st.client_version = "test/1".into();
        st
    }

    fn state() -> NodeState {
        state_with(Store::default())
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

    fn small_chain() -> super::super::GeneratedChain {
        super::super::generate_chain(&super::super::GenConfig {
            blocks: 3,
            start_block: 16,
            txs_per_block: Some(3),
            ..Default::default()
        })
    }

    fn small_chain_state() -> NodeState {
        let mut store = Store::default();
        store.add_generated(small_chain()).unwrap();
        state_with(store)
    }

    /// Blocks and receipts of blocks 16..=18 in the client's batch layout (ids 2i, 2i+1).
    fn layout_batch() -> String {
        let calls: Vec<String> = (0..3u64)
            .flat_map(|i| {
                let n = 16 + i;
                [
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{},"method":"eth_getBlockByNumber","params":["{n:#x}",true]}}"#,
                        2 * i
                    ),
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{},"method":"eth_getBlockReceipts","params":["{n:#x}"]}}"#,
                        2 * i + 1
                    ),
                ]
            })
            .collect();
        format!("[{}]", calls.join(","))
    }

    fn items(body: &[u8]) -> Vec<Value> {
        let v: Value = sonic_rs::from_slice(body).unwrap();
        v.as_array().unwrap().iter().cloned().collect()
    }

    fn with_fault(st: &NodeState, body: &str, kind: FaultKind, seed: u64) -> (Vec<u8>, bool) {
        let mut rng = FaultRng::new(seed, 0);
        let (b, applied) = handle_request(st, body.as_bytes(), Some((kind, &mut rng)));
        (b.to_vec(), applied)
    }

    #[test]
    fn batch_limits_answer_like_geth() {
        let mut st = small_chain_state();
        st.max_batch_calls = Some(5);
        let out = call(&st, &layout_batch());
        assert_eq!(
            out,
            r#"[{"jsonrpc":"2.0","id":0,"error":{"code":-32600,"message":"batch too large"}}]"#
        );
        st.max_batch_calls = Some(6);
        assert_eq!(items(call(&st, &layout_batch()).as_bytes()).len(), 6);

        let chain = small_chain();
        let first_block = chain.blocks[0].block_json.len();
        st.max_response_bytes = Some(first_block + 1);
        let v = items(call(&st, &layout_batch()).as_bytes());
        assert_eq!(v.len(), 6);
        assert!(v[0].get("result").is_some());
        // The receipts of block 16 cross the cap: answered, and every later call refused.
        assert!(v[1].get("result").is_some());
        for (i, item) in v.iter().enumerate().skip(2) {
            let e = item.get("error").unwrap();
            assert_eq!(e.get("code").unwrap().as_i64(), Some(-32003));
            assert_eq!(
                e.get("message").unwrap().as_str(),
                Some("response too large")
            );
            assert_eq!(item.get("id").unwrap().as_u64(), Some(i as u64));
        }
        assert_eq!(st.counters.response_too_large.load(Ordering::Relaxed), 1);
        assert_eq!(st.counters.batch_too_large.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn item_faults_change_one_item_and_leave_the_rest() {
        let st = small_chain_state();
        let chain = small_chain();
        let body = layout_batch();
        let clean = items(call(&st, &body).as_bytes());
        for seed in 0..8 {
            for kind in [
                FaultKind::ItemError,
                FaultKind::NullBlock,
                FaultKind::NullReceipts,
                FaultKind::ReceiptsMismatch,
                FaultKind::WrongBlock,
            ] {
                let (out, applied) = with_fault(&st, &body, kind, seed);
                assert!(applied, "{kind}");
                let got = items(&out);
                assert_eq!(got.len(), 6);
                let changed: Vec<usize> = (0..6).filter(|&i| got[i] != clean[i]).collect();
                assert_eq!(changed.len(), 1, "{kind}: {changed:?}");
                let i = changed[0];
                let item = &got[i];
                assert_eq!(item.get("id").unwrap().as_u64(), Some(i as u64), "{kind}");
                let result = item.get("result");
                match kind {
                    FaultKind::ItemError => {
                        let e = item.get("error").unwrap();
                        assert_eq!(e.get("code").unwrap().as_i64(), Some(-32000));
                    }
                    FaultKind::NullBlock => {
                        assert_eq!(i % 2, 0);
                        assert!(result.unwrap().is_null());
                    }
                    FaultKind::NullReceipts => {
                        assert_eq!(i % 2, 1);
                        assert!(result.unwrap().is_null());
                    }
                    FaultKind::ReceiptsMismatch => {
                        assert_eq!(i % 2, 1);
                        let n = result.unwrap().as_array().unwrap().len();
                        assert_eq!(n, chain.blocks[i / 2].tx_hashes.len() - 1);
                    }
                    FaultKind::WrongBlock => {
                        assert_eq!(i % 2, 1);
                        let r = result.unwrap().as_array().unwrap();
                        let bh = r[0].get("blockHash").unwrap().as_str().unwrap();
                        assert_ne!(bh, format!("0x{}", hex::encode(chain.blocks[i / 2].hash)));
                    }
                    _ => unreachable!(),
                }
            }
            let (out, applied) = with_fault(&st, &body, FaultKind::Shuffle, seed);
            assert!(applied);
            let mut got = items(&out);
            assert_ne!(got, clean);
            got.sort_by_key(|v| v.get("id").unwrap().as_u64());
            assert_eq!(got, clean);
        }
        // Kinds that find nothing to act on leave the answer clean.
        let single = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#;
        for kind in [
            FaultKind::NullReceipts,
            FaultKind::Shuffle,
            FaultKind::WrongBlock,
        ] {
            let (out, applied) = with_fault(&st, single, kind, 1);
            assert!(!applied);
            assert_eq!(out, call(&st, single).into_bytes());
        }
    }

    #[test]
    fn body_faults_replace_the_answer() {
        let st = small_chain_state();
        let (out, applied) = with_fault(&st, &layout_batch(), FaultKind::BatchError, 1);
        assert!(applied);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#
        );
        let single = r#"{"jsonrpc":"2.0","id":"a","method":"eth_chainId"}"#;
        let (out, _) = with_fault(&st, single, FaultKind::RateLimitRpc, 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32005,"message":"rate limit exceeded"}}"#
        );
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
            params in r#"\[((\"0x[0-9a-fA-F]{0,66}\"|\"latest\"|\"earliest\"|true|false|null|-?(0|[1-9][0-9]{0,2})|\{\}|\{\"blockHash\":null,\"blockNumber\":\"0x1\"\}|\{\"fromBlock\":\"0x0\",\"toBlock\":\"latest\",\"topics\":\[null,\[\]\]\}|\[\])(,(true|false|null|\"0x1\"|\[\]|\{\}))*)?\]"#,
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
