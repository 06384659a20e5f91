//! Fetching one job's answers, whatever the endpoints do: [`JobFetcher::fetch`] turns a
//! [`RangeJob`] into one response body in exactly the layout the decode stage expects (the
//! `eth_getBlockByNumber` answer of block `start + i` with id `2*i`, its receipts with id
//! `2*i + 1`, see [`crate::rpc::batch`]), or into an error naming block, method and endpoint.
//!
//! How:
//! * Calls go out in batch requests of at most the endpoint's working size ([`Pool::max_calls`],
//!   at most [`DEFAULT_MAX_CALLS`] until an endpoint says more). A request refused as too
//!   large is split (the working size halves and is remembered); one call that is still too
//!   large alone is an error.
//! * Good answers are kept; only calls that failed (an error object, `null`, missing) are asked
//!   again, on another healthy endpoint at once or after a backoff ([`retry::backoff`]). A job
//!   gives up after `--max-retries` failed rounds in a row without a single new answer; rate
//!   limits and splits do not count (see [`FetchPolicy`]).
//! * An endpoint without `eth_getBlockReceipts` (detected once, from its answer) gets the
//!   block first; the transaction hashes are read from it, the receipts are requested with
//!   batched `eth_getTransactionReceipt` calls (ids matched), and the block's receipts answer is
//!   assembled as `{"jsonrpc":"2.0","id":2*i+1,"result":[<receipt>,...]}` from the raw receipt
//!   bytes, in transaction order.
//! * When a single request answered everything cleanly its body is handed on as is;
//!   otherwise the body is spliced together from the raw answer objects (never re-serialized).
//!
//! The decode stage then validates the contents (block numbers, receipts against
//! transactions, block hashes) and sends inconsistent answers back for another try.

use crate::bufpool::BufPool;
use crate::msg::RangeJob;
use crate::rpc::client::{CallAt, RpcClient, RpcError, Where};
use crate::rpc::endpoints::{Lease, Pool, Preference};
use crate::rpc::response::{self, Body, Outcome};
use crate::rpc::retry::{self, CallKind, Cause, Verdict};
use std::io::Write;
use std::time::{Duration, Instant};

/// Calls per batch request until an endpoint is configured otherwise (geth's default limit).
pub const DEFAULT_MAX_CALLS: usize = 1000;
/// Rate-limit answers one job may get before it gives up (they do not count against
/// `--max-retries`).
pub const DEFAULT_RATE_LIMIT_RETRIES: u32 = 30;
/// Time one job may spend being rate limited before it gives up.
pub const DEFAULT_RATE_LIMIT_BUDGET: Duration = Duration::from_secs(15 * 60);

/// How persistent a job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Failed rounds in a row without any new answer (transport errors, timeouts, 5xx, bad
    /// bodies, error objects, nulls) after which a job gives up.
    pub max_retries: u32,
    /// Rate-limit answers after which a job gives up.
    pub rate_limit_retries: u32,
    /// Time from a job's first rate limit after which it gives up.
    pub rate_limit_budget: Duration,
}

impl FetchPolicy {
    pub fn new(max_retries: u32) -> FetchPolicy {
        FetchPolicy {
            max_retries,
            rate_limit_retries: DEFAULT_RATE_LIMIT_RETRIES,
            rate_limit_budget: DEFAULT_RATE_LIMIT_BUDGET,
        }
    }
}

/// What happens around a fetch that the caller wants to know or decide.
pub trait Observer {
    /// Whether to give up at once (the run is stopping).
    fn stopped(&self) -> bool;
    /// A failed exchange that will be retried.
    fn retrying(&self, error: &RpcError, note: &RetryNote);
    /// Something about an endpoint worth telling once (a fallback, a smaller batch, a bench).
    fn notice(&self, message: &str);
    /// An HTTP 2xx answer of `bytes` bytes was read.
    fn answered(&self, bytes: u64);
    /// One request to endpoint `endpoint` ended after `latency`: `Some(bytes)` when every call
    /// of it was answered cleanly, `None` when anything failed (transport, HTTP status, a
    /// JSON-RPC error, an unusable answer).
    fn exchanged(&self, endpoint: usize, latency: Duration, clean: Option<u64>) {
        let _ = (endpoint, latency, clean);
    }
}

/// Details of a retry, for the message.
#[derive(Clone, Debug)]
pub struct RetryNote {
    /// Failed rounds in a row without a new answer (rate limits excluded).
    pub failures: u32,
    /// `--max-retries` + 1.
    pub max_attempts: u32,
    /// Rate-limit answers so far (set for rate limits only).
    pub rate_limited: Option<u32>,
    /// How long the retry waits (unless another endpoint takes it at once).
    pub wait: Duration,
    /// Whether another endpoint may take the retry at once.
    pub other_endpoints: bool,
}

/// A job's answers in the decode stage's layout.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// The endpoint that answered last.
    pub endpoint: usize,
    /// At most how deep `body` nests: the deepest answer body it was taken from (measured by
    /// [`response::parse_measured`]), plus the levels assembly may wrap around an answer.
    pub depth: usize,
}

/// Why a job has no answers.
#[derive(Debug)]
pub enum FetchError {
    /// The caller asked to stop.
    Stopped,
    /// Out of attempts, or a failure no retry can fix.
    Failed { attempts: u32, source: RpcError },
}

/// Fetches jobs over a [`Pool`] of endpoints with one [`RpcClient`].
#[derive(Debug)]
pub struct JobFetcher {
    client: RpcClient,
    pool: Pool,
    policy: FetchPolicy,
}

/// Where a kept answer lies: `bufs[buf][start..end]`.
#[derive(Clone, Copy, Debug)]
struct Piece {
    buf: usize,
    start: usize,
    end: usize,
}

/// One call of a job: block `i` (0-based within the job), its receipts, or the receipt of its
/// transaction `j` (fallback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Block(usize),
    Receipts(usize),
    Tx(usize, usize),
}

impl Call {
    fn block(self) -> usize {
        match self {
            Call::Block(i) | Call::Receipts(i) | Call::Tx(i, _) => i,
        }
    }

    fn method(self) -> &'static str {
        match self {
            Call::Block(_) => "eth_getBlockByNumber",
            Call::Receipts(_) => "eth_getBlockReceipts",
            Call::Tx(..) => "eth_getTransactionReceipt",
        }
    }

    /// What the result must be: an object for a block or a receipt, a list for a block's
    /// receipts.
    fn expected_kind(self) -> &'static str {
        match self {
            Call::Receipts(_) => "a list",
            Call::Block(_) | Call::Tx(..) => "an object",
        }
    }

    /// Whether the raw `result` text is of the kind this call answers with.
    fn kind_fits(self, result: &str) -> bool {
        let first = result.bytes().next();
        match self {
            Call::Receipts(_) => first == Some(b'['),
            Call::Block(_) | Call::Tx(..) => first == Some(b'{'),
        }
    }

    fn kind(self) -> CallKind {
        match self {
            Call::Block(_) => CallKind::Block,
            Call::Receipts(_) => CallKind::BlockReceipts,
            Call::Tx(..) => CallKind::TransactionReceipt,
        }
    }
}

/// Receipts of one block fetched per transaction.
#[derive(Debug)]
struct TxReceipts {
    hashes: Vec<String>,
    got: Vec<Option<Piece>>,
}

impl TxReceipts {
    fn complete(&self) -> bool {
        self.got.iter().all(Option::is_some)
    }
}

/// What has been collected for a job so far.
struct State<'j> {
    job: &'j RangeJob,
    n: usize,
    with_receipts: bool,
    bufs: Vec<Vec<u8>>,
    /// Whole answer objects, per block.
    blocks: Vec<Option<Piece>>,
    receipts: Vec<Option<Piece>>,
    /// Raw receipt results per transaction, for blocks fetched the fallback way.
    txs: Vec<Option<TxReceipts>>,
    /// A body that answered every call of the job cleanly, handed on as is.
    whole: Option<usize>,
    /// Calls answered so far (progress).
    answered: usize,
    /// The deepest nesting of a body that answers were kept from.
    depth: usize,
}

impl<'j> State<'j> {
    fn new(job: &'j RangeJob, with_receipts: bool) -> State<'j> {
        let n = job.block_count() as usize;
        State {
            job,
            n,
            with_receipts,
            bufs: Vec::new(),
            blocks: vec![None; n],
            receipts: vec![None; n],
            txs: (0..n).map(|_| None).collect(),
            whole: None,
            answered: 0,
            depth: 0,
        }
    }

    fn piece(&self, p: Piece) -> &[u8] {
        &self.bufs[p.buf][p.start..p.end]
    }

    fn receipts_done(&self, i: usize) -> bool {
        !self.with_receipts
            || self.receipts[i].is_some()
            || self.txs[i].as_ref().is_some_and(TxReceipts::complete)
    }

    fn complete(&self) -> bool {
        self.whole.is_some()
            || (0..self.n).all(|i| self.blocks[i].is_some() && self.receipts_done(i))
    }

    /// The calls still to make, block by block. `block_receipts`: whether the endpoint at
    /// hand has `eth_getBlockReceipts` (otherwise receipts are asked per transaction of
    /// blocks already fetched).
    fn pending(
        &mut self,
        block_receipts: bool,
        at: &dyn Fn(Call) -> (Where, CallAt),
    ) -> Result<Vec<Call>, RpcError> {
        let mut out = Vec::new();
        for i in 0..self.n {
            if self.blocks[i].is_none() {
                out.push(Call::Block(i));
            }
            if self.receipts_done(i) {
                continue;
            }
            if block_receipts {
                out.push(Call::Receipts(i));
                continue;
            }
            let Some(bp) = self.blocks[i] else {
                continue; // the block comes first
            };
            if self.txs[i].is_none() {
                let hashes = block_result(self.piece(bp))
                    .and_then(response::transaction_hashes)
                    .map_err(|detail| {
                        let (at, call) = at(Call::Block(i));
                        RpcError::BadResult {
                            at,
                            call: Box::new(call),
                            detail,
                        }
                    })?;
                let got = vec![None; hashes.len()];
                self.txs[i] = Some(TxReceipts { hashes, got });
            }
            if let Some(t) = &self.txs[i] {
                out.extend(
                    (0..t.got.len())
                        .filter(|&j| t.got[j].is_none())
                        .map(|j| Call::Tx(i, j)),
                );
            }
        }
        Ok(out)
    }

    /// The job's body in the decode layout.
    /// Bodies that are not handed on go back to `pool`.
    fn assemble(mut self, pool: &BufPool) -> Vec<u8> {
        if let Some(b) = self.whole {
            let out = self.bufs.swap_remove(b);
            self.bufs.drain(..).for_each(|b| pool.put(b));
            return out;
        }
        let size: usize = self.bufs.iter().map(Vec::len).sum::<usize>() + 64 * self.n + 2;
        let mut out = pool.take(size);
        out.push(b'[');
        for i in 0..self.n {
            if i > 0 {
                out.push(b',');
            }
            if let Some(p) = self.blocks[i] {
                out.extend_from_slice(self.piece(p));
            }
            if !self.with_receipts {
                continue;
            }
            out.push(b',');
            if let Some(p) = self.receipts[i] {
                out.extend_from_slice(self.piece(p));
            } else if let Some(t) = &self.txs[i] {
                let _ = write!(
                    out,
                    r#"{{"jsonrpc":"2.0","id":{},"result":["#,
                    2 * i as u64 + 1
                );
                for (j, p) in t.got.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    if let Some(p) = p {
                        out.extend_from_slice(self.piece(*p));
                    }
                }
                out.extend_from_slice(b"]}");
            }
        }
        out.push(b']');
        self.bufs.drain(..).for_each(|b| pool.put(b));
        out
    }
}

/// The `result` of a whole answer object.
fn block_result(item: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(item).map_err(|e| e.to_string())?;
    let r = sonic_rs::get_from_str(text, ["result"]).map_err(|e| e.to_string())?;
    let raw = r.as_raw_str();
    let start = (raw.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    text.get(start..start + raw.len())
        .ok_or_else(|| "the block answer has no result".to_string())
}

/// The outcome of one exchange.
enum Exchange {
    /// Every call of the request was answered, with a body of `bytes` bytes.
    Done { bytes: u64 },
    /// The most important problem seen (see [`Verdict::outranks`]); `fitted`: calls answered
    /// with anything but a size refusal (what a response-size cap let through).
    Problem {
        verdict: Verdict,
        error: RpcError,
        fitted: usize,
    },
}

/// Keeps the problem that matters most.
#[derive(Default)]
struct Worst(Option<(Verdict, RpcError)>);

impl Worst {
    fn add(&mut self, verdict: Verdict, error: RpcError) {
        match &self.0 {
            Some((v, _)) if !verdict.outranks(*v) => {}
            _ => self.0 = Some((verdict, error)),
        }
    }
}

impl JobFetcher {
    pub fn new(client: RpcClient, pool: Pool, policy: FetchPolicy) -> JobFetcher {
        JobFetcher {
            client,
            pool,
            policy,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn client(&self) -> &RpcClient {
        &self.client
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Fetches every answer of `job` (blocks, and receipts if `with_receipts`); see the module
    /// docs.
    pub fn fetch(
        &self,
        job: &RangeJob,
        with_receipts: bool,
        obs: &dyn Observer,
    ) -> Result<Fetched, FetchError> {
        let mut st = State::new(job, with_receipts);
        // Failed rounds in a row without a new answer.
        let mut failures = 0u32;
        let mut pref = Preference::default();
        let mut rate_limits = 0u32;
        let mut first_rate_limit: Option<Instant> = None;
        let mut last_endpoint = 0;
        let mut request = Vec::new();
        let stopped = || obs.stopped();
        let give_up = |attempts: u32, source: RpcError| FetchError::Failed { attempts, source };
        loop {
            if st.complete() {
                // A whole body is handed on as measured; an assembled one wraps answers in at
                // most three levels (the batch, an answer object, a receipts list).
                let depth = if st.whole.is_some() {
                    st.depth
                } else {
                    st.depth + 3
                };
                return Ok(Fetched {
                    depth,
                    body: st.assemble(self.client.bodies()),
                    endpoint: last_endpoint,
                });
            }
            let Some(lease) = self.pool.acquire(pref, &stopped) else {
                return Err(FetchError::Stopped);
            };
            let ep = lease.endpoint();
            let block_receipts = self.pool.block_receipts(ep) != Some(false);
            let locate = |c: Call| self.locate(job, ep, &[c], c);
            let pending = st
                .pending(block_receipts, &locate)
                .map_err(|e| give_up(failures + 1, e))?;
            if pending.is_empty() {
                continue; // only zero-transaction blocks were left: complete now
            }
            let max = match self.pool.max_calls(ep) {
                usize::MAX => DEFAULT_MAX_CALLS,
                m => m,
            };
            let chunk = &pending[..pending.len().min(max)];
            if !lease.pace(chunk.len(), &stopped) {
                return Err(FetchError::Stopped);
            }
            // The whole job in the shared layout, nothing kept yet: a clean answer can go on
            // as it is.
            let answered = st.answered;
            let full = st.bufs.is_empty()
                && chunk.len() == pending.len()
                && chunk.len() == st.n * if with_receipts { 2 } else { 1 };
            let sent = Instant::now();
            let outcome = self.exchange(&lease, &mut st, chunk, full, &mut request, obs);
            let clean = match outcome {
                Exchange::Done { bytes } => Some(bytes),
                Exchange::Problem { .. } => None,
            };
            obs.exchanged(ep, sent.elapsed(), clean);
            drop(lease);
            last_endpoint = ep;
            if st.answered > answered {
                failures = 0;
            }
            let (verdict, error, fitted) = match outcome {
                Exchange::Done { .. } => {
                    self.pool.succeeded(ep);
                    pref = Preference::default();
                    continue;
                }
                Exchange::Problem {
                    verdict,
                    error,
                    fitted,
                } => (verdict, error, fitted),
            };
            match verdict {
                Verdict::RateLimited { cause, retry_after } => {
                    rate_limits += 1;
                    let since = *first_rate_limit.get_or_insert_with(Instant::now);
                    if rate_limits > self.policy.rate_limit_retries
                        || since.elapsed() > self.policy.rate_limit_budget
                    {
                        let at = error.at().clone();
                        return Err(give_up(
                            failures + 1,
                            RpcError::RateLimited {
                                at,
                                tries: rate_limits,
                                waited: since.elapsed(),
                                last: Box::new(error),
                            },
                        ));
                    }
                    let pause = self.pool.rate_limited(ep, cause, retry_after, job.seq);
                    obs.retrying(
                        &error,
                        &RetryNote {
                            failures,
                            max_attempts: self.policy.max_retries + 1,
                            rate_limited: Some(rate_limits),
                            wait: pause,
                            other_endpoints: self.pool.len() > 1,
                        },
                    );
                    pref = Preference {
                        avoid: Some(ep),
                        not_before: None,
                    };
                }
                Verdict::TooLarge => {
                    if chunk.len() == 1 {
                        return Err(give_up(
                            failures + 1,
                            error_too_large(self, job, ep, chunk[0], &error),
                        ));
                    }
                    if let Some(limit) = self.pool.too_large(ep, chunk.len(), fitted) {
                        obs.notice(&format!(
                            "{} refused a batch of {} calls as too large; sending at most {limit} calls per request to it",
                            self.pool.name(ep),
                            chunk.len()
                        ));
                    }
                }
                Verdict::MethodMissing => {
                    if self.pool.set_block_receipts(ep, false) {
                        obs.notice(&format!(
                            "{} has no eth_getBlockReceipts; fetching receipts with eth_getTransactionReceipt from it",
                            self.pool.name(ep)
                        ));
                    }
                }
                Verdict::Retry(cause) => {
                    failures += 1;
                    if failures > self.policy.max_retries {
                        return Err(give_up(failures, error));
                    }
                    let benched = self.pool.failed(ep, cause);
                    let wait = retry::backoff(failures, job.seq);
                    obs.retrying(
                        &error,
                        &RetryNote {
                            failures,
                            max_attempts: self.policy.max_retries + 1,
                            rate_limited: None,
                            wait,
                            other_endpoints: self.pool.len() > 1,
                        },
                    );
                    if let Some(d) = benched {
                        obs.notice(&format!(
                            "{} failed repeatedly; not using it for {:.0} s",
                            self.pool.name(ep),
                            d.as_secs_f64()
                        ));
                    }
                    pref = Preference {
                        avoid: Some(ep),
                        not_before: Some(Instant::now() + wait),
                    };
                }
                Verdict::Fatal => return Err(give_up(failures + 1, error)),
            }
        }
    }

    /// Where a request of `calls` went, and the call `one` of it.
    fn locate(&self, job: &RangeJob, ep: usize, calls: &[Call], one: Call) -> (Where, CallAt) {
        let first = calls.iter().map(|c| c.block()).min().unwrap_or(0) as u64;
        let last = calls.iter().map(|c| c.block()).max().unwrap_or(0) as u64;
        let has = |f: fn(&Call) -> bool| calls.iter().any(f);
        let methods = match (
            has(|c| matches!(c, Call::Block(_))),
            has(|c| matches!(c, Call::Receipts(_))),
            has(|c| matches!(c, Call::Tx(..))),
        ) {
            (true, true, false) => "eth_getBlockByNumber + eth_getBlockReceipts",
            (true, false, true) => "eth_getBlockByNumber + eth_getTransactionReceipt",
            (true, true, true) => {
                "eth_getBlockByNumber + eth_getBlockReceipts + eth_getTransactionReceipt"
            }
            (false, true, true) => "eth_getBlockReceipts + eth_getTransactionReceipt",
            (false, true, false) => "eth_getBlockReceipts",
            (false, false, true) => "eth_getTransactionReceipt",
            _ => "eth_getBlockByNumber",
        };
        let at = Where {
            endpoint: self.pool.name(ep).to_string(),
            start: job.start + first,
            end: job.start + last,
            methods,
        };
        let call = CallAt {
            block: job.start + one.block() as u64,
            tx_index: match one {
                Call::Tx(_, j) => Some(j),
                _ => None,
            },
            method: one.method(),
        };
        (at, call)
    }

    /// Sends `calls` over `lease`, keeps every good answer in `st`, and says what went wrong.
    /// `full`: the request asks for everything the job needs and nothing was kept before (a
    /// clean answer is then handed on as is).
    fn exchange(
        &self,
        lease: &Lease<'_>,
        st: &mut State<'_>,
        calls: &[Call],
        full: bool,
        request: &mut Vec<u8>,
        obs: &dyn Observer,
    ) -> Exchange {
        let ep = lease.endpoint();
        let job = st.job;
        let n = st.n;
        write_request(st, calls, request);
        let at = || self.locate(job, ep, calls, calls[0]).0;
        let endpoint = self.client.endpoint(ep);
        self.pool.sent(ep, calls.len());
        let t0 = Instant::now();
        let reply = match self.client.post(ep, request) {
            Ok(r) => r,
            Err(e) => {
                self.pool.finished(ep, t0.elapsed(), 0);
                return Exchange::Problem {
                    verdict: retry::transport(&e),
                    error: RpcError::transport(&e, endpoint, at()),
                    fitted: 0,
                };
            }
        };
        let latency = t0.elapsed();
        let len = reply.body.as_ref().map_or(0, Vec::len);
        self.pool.finished(ep, latency, len);
        let status = reply.status;
        if !(200..300).contains(&status) {
            let head: Vec<u8> = match &reply.body {
                Ok(b) => b[..b.len().min(512)].to_vec(),
                Err(_) => Vec::new(),
            };
            let verdict = retry::status(status, reply.retry_after, &head);
            let error = match reply.into_body(endpoint, at()) {
                Err(e) => e,
                Ok(_) => unreachable_status(at(), status),
            };
            return Exchange::Problem {
                verdict,
                error,
                fitted: 0,
            };
        }
        let body = match reply.body {
            Ok(b) => b,
            Err(e) => {
                return Exchange::Problem {
                    verdict: retry::transport(&e),
                    error: RpcError::transport(&e, endpoint, at()),
                    fitted: 0,
                }
            }
        };
        obs.answered(body.len() as u64);
        let bytes = body.len() as u64;

        // Which position of `calls` an id stands for.
        let mut slot = vec![usize::MAX; 2 * n];
        for (k, c) in calls.iter().enumerate() {
            match c {
                Call::Block(i) => slot[2 * i] = k,
                Call::Receipts(i) => slot[2 * i + 1] = k,
                Call::Tx(..) => {}
            }
        }
        let position = |id: u64| -> Option<usize> {
            let id = usize::try_from(id).ok()?;
            if id < 2 * n {
                return Some(slot[id]).filter(|k| *k != usize::MAX);
            }
            let k = id - 2 * n;
            (k < calls.len() && matches!(calls[k], Call::Tx(..))).then_some(k)
        };
        let call_at = |k: usize| self.locate(job, ep, calls, calls[k]);

        let mut worst = Worst::default();
        let mut kept: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
        let mut seen = vec![false; calls.len()];
        let mut twice = vec![false; calls.len()];
        let mut receipts_seen = false;
        let mut fitted = 0usize;
        let (items, depth) = match response::parse_measured(&body) {
            Err(source) => {
                return Exchange::Problem {
                    verdict: Verdict::Retry(Cause::InvalidBody),
                    error: RpcError::Body {
                        at: at(),
                        len: body.len(),
                        source,
                    },
                    fitted: 0,
                }
            }
            Ok((Body::Other, _)) => {
                return Exchange::Problem {
                    verdict: Verdict::Retry(Cause::InvalidBody),
                    error: RpcError::NotABatch {
                        at: at(),
                        what: "a JSON scalar",
                    },
                    fitted: 0,
                }
            }
            Ok((Body::Single(item), _)) => {
                return match item.outcome {
                    Outcome::Error { code, message } => Exchange::Problem {
                        verdict: retry::rpc_error(code, &message, CallKind::Batch),
                        error: RpcError::Rejected {
                            at: at(),
                            code,
                            message: endpoint.sanitize(&message),
                        },
                        fitted: 0,
                    },
                    _ => Exchange::Problem {
                        verdict: Verdict::Retry(Cause::InvalidBody),
                        error: RpcError::NotABatch {
                            at: at(),
                            what: "a single answer object",
                        },
                        fitted: 0,
                    },
                };
            }
            Ok((Body::Batch(items), depth)) => (items, depth),
        };
        let item_count = items.len();
        for item in items {
            let Some(k) = item.id.and_then(position) else {
                match item.outcome {
                    // An error without a usable id speaks for the whole batch.
                    Outcome::Error { code, message } if item.id.is_none() => worst.add(
                        retry::rpc_error(code, &message, CallKind::Batch),
                        RpcError::Rejected {
                            at: at(),
                            code,
                            message: endpoint.sanitize(&message),
                        },
                    ),
                    _ => worst.add(
                        Verdict::Retry(Cause::BadIds),
                        RpcError::Ids {
                            at: at(),
                            detail: format!(
                                "an answer has id {}, which matches no call of the request",
                                id_text(item.raw)
                            ),
                        },
                    ),
                }
                continue;
            };
            if seen[k] {
                twice[k] = true;
                let (at, call) = call_at(k);
                worst.add(
                    Verdict::Retry(Cause::BadIds),
                    RpcError::Ids {
                        at,
                        detail: format!("more than one answer to {call}"),
                    },
                );
                continue;
            }
            seen[k] = true;
            match &item.outcome {
                Outcome::Error { code, message } => {
                    if retry::rpc_error(*code, message, calls[k].kind()) != Verdict::TooLarge {
                        fitted += 1;
                    }
                }
                _ => fitted += 1,
            }
            match item.outcome {
                Outcome::Result(result) if !calls[k].kind_fits(result) => {
                    // Checked before it is kept: a 50 MB string where a block should be is
                    // never held while the rest of the job is asked again.
                    let (at, call) = call_at(k);
                    worst.add(
                        Verdict::Retry(Cause::InvalidBody),
                        RpcError::BadResult {
                            at,
                            call: Box::new(call),
                            detail: format!(
                                "the result is {} ({} bytes), not {}",
                                json_kind(result),
                                result.len(),
                                calls[k].expected_kind()
                            ),
                        },
                    );
                }
                Outcome::Result(result) => {
                    let slice = match calls[k] {
                        Call::Block(_) | Call::Receipts(_) => item.raw,
                        // Spliced into an array: only the exact value will do.
                        Call::Tx(..) => response::exact_result(item.raw).unwrap_or(result),
                    };
                    if matches!(calls[k], Call::Receipts(_)) {
                        receipts_seen = true;
                    }
                    if let Some(r) = response::offset_in(&body, slice) {
                        kept.push((k, r));
                    }
                }
                Outcome::Null => {
                    let (at, call) = call_at(k);
                    worst.add(
                        Verdict::Retry(Cause::NullResult),
                        RpcError::Null {
                            at,
                            call: Box::new(call),
                        },
                    );
                }
                Outcome::Error { code, message } => {
                    let (at, call) = call_at(k);
                    worst.add(
                        retry::rpc_error(code, &message, calls[k].kind()),
                        RpcError::Call {
                            at,
                            call: Box::new(call),
                            code,
                            message: endpoint.sanitize(&message),
                        },
                    );
                }
                Outcome::Malformed => {
                    let (at, call) = call_at(k);
                    worst.add(
                        Verdict::Retry(Cause::InvalidBody),
                        RpcError::Ids {
                            at,
                            detail: format!("the answer to {call} has neither result nor error"),
                        },
                    );
                }
            }
        }
        if let Some(k) = seen.iter().position(|s| !s) {
            let (at, call) = call_at(k);
            let missing = seen.iter().filter(|s| !**s).count();
            worst.add(
                Verdict::Retry(Cause::BadIds),
                RpcError::Ids {
                    at,
                    detail: format!(
                        "no answer to {call}{}",
                        if missing > 1 {
                            format!(" (and {} more calls)", missing - 1)
                        } else {
                            String::new()
                        }
                    ),
                },
            );
        }
        if receipts_seen {
            self.pool.set_block_receipts(ep, true);
        }
        kept.retain(|(k, _)| !twice[*k]);
        if kept.is_empty() {
            self.client.bodies().put(body);
        } else {
            let whole = full && worst.0.is_none() && item_count == calls.len();
            // A body only partly kept is copied down to the answers kept, so that what the
            // job holds is never more than its good answers (a failed answer can be huge).
            let kept_bytes: usize = kept.iter().map(|(_, r)| r.len()).sum();
            let (body, kept) = if whole || kept_bytes >= body.len() / 2 {
                (body, kept)
            } else {
                compact(body, kept, self.client.bodies())
            };
            let buf = st.bufs.len();
            if whole {
                st.whole = Some(buf);
            }
            st.depth = st.depth.max(depth);
            st.answered += kept.len();
            for (k, r) in kept {
                let p = Piece {
                    buf,
                    start: r.start,
                    end: r.end,
                };
                match calls[k] {
                    Call::Block(i) => st.blocks[i] = Some(p),
                    Call::Receipts(i) => st.receipts[i] = Some(p),
                    Call::Tx(i, j) => {
                        if let Some(t) = &mut st.txs[i] {
                            t.got[j] = Some(p);
                        }
                    }
                }
            }
            st.bufs.push(body);
        }
        match worst.0 {
            None => Exchange::Done { bytes },
            Some((verdict, error)) => Exchange::Problem {
                verdict,
                error,
                fitted,
            },
        }
    }
}

/// The `kept` ranges of `body` copied into a buffer of their own (returned with their new
/// ranges); `body` goes back to `pool`.
fn compact(
    body: Vec<u8>,
    kept: Vec<(usize, std::ops::Range<usize>)>,
    pool: &BufPool,
) -> (Vec<u8>, Vec<(usize, std::ops::Range<usize>)>) {
    let mut out = Vec::with_capacity(kept.iter().map(|(_, r)| r.len()).sum());
    let moved = kept
        .into_iter()
        .map(|(k, r)| {
            let start = out.len();
            out.extend_from_slice(&body[r]);
            (k, start..out.len())
        })
        .collect();
    pool.put(body);
    (out, moved)
}

/// The error for one call that is too large even alone.
fn error_too_large(
    f: &JobFetcher,
    job: &RangeJob,
    ep: usize,
    call: Call,
    cause: &RpcError,
) -> RpcError {
    let (at, call) = f.locate(job, ep, &[call], call);
    RpcError::TooLarge {
        at,
        call: Box::new(call),
        detail: cause.to_string(),
    }
}

/// A 2xx status reaching the non-2xx branch cannot happen; keep a typed error anyway.
fn unreachable_status(at: Where, status: u16) -> RpcError {
    RpcError::Status {
        at,
        status,
        snippet: String::new(),
        retry_after: None,
    }
}

/// The JSON kind of a raw value, for messages.
fn json_kind(raw: &str) -> &'static str {
    match raw.bytes().next() {
        Some(b'"') => "a string",
        Some(b'[') => "a list",
        Some(b'{') => "an object",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// The `id` of an answer object as written, for messages (at most 40 characters).
fn id_text(raw: &str) -> String {
    match sonic_rs::get_from_str(raw, ["id"]) {
        Ok(v) => v.as_raw_str().chars().take(40).collect(),
        Err(_) => "(none)".into(),
    }
}

/// Writes the batch request for `calls` (ids: block `i` → `2*i`, its receipts → `2*i + 1`,
/// the transaction receipt at position `k` → `2*n + k`). For a whole job this is exactly
/// [`crate::rpc::batch::write_request`]'s layout.
fn write_request(st: &State<'_>, calls: &[Call], out: &mut Vec<u8>) {
    out.clear();
    out.push(b'[');
    for (k, c) in calls.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        let _ = match *c {
            Call::Block(i) => write!(
                out,
                r#"{{"jsonrpc":"2.0","id":{},"method":"eth_getBlockByNumber","params":["0x{:x}",true]}}"#,
                2 * i as u64,
                st.job.start + i as u64
            ),
            Call::Receipts(i) => write!(
                out,
                r#"{{"jsonrpc":"2.0","id":{},"method":"eth_getBlockReceipts","params":["0x{:x}"]}}"#,
                2 * i as u64 + 1,
                st.job.start + i as u64
            ),
            Call::Tx(i, j) => {
                let hash = st.txs[i]
                    .as_ref()
                    .and_then(|t| t.hashes.get(j))
                    .map(String::as_str)
                    .unwrap_or_default();
                write!(
                    out,
                    r#"{{"jsonrpc":"2.0","id":{},"method":"eth_getTransactionReceipt","params":["{hash}"]}}"#,
                    (2 * st.n + k) as u64
                )
            }
        };
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_job_request_matches_the_shared_layout() {
        let job = RangeJob {
            seq: 0,
            start: 18_000_000,
            end: 18_000_004,
            attempt: 0,
        };
        for with_receipts in [false, true] {
            let mut st = State::new(&job, with_receipts);
            let calls = st.pending(true, &|_| unreachable!()).unwrap();
            let mut ours = Vec::new();
            write_request(&st, &calls, &mut ours);
            let mut shared = Vec::new();
            crate::rpc::batch::write_request(&job, with_receipts, &mut shared);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(shared).unwrap()
            );
        }
    }

    #[test]
    fn fallback_assembles_receipts_in_transaction_order() {
        let job = RangeJob {
            seq: 0,
            start: 7,
            end: 8,
            attempt: 0,
        };
        let mut st = State::new(&job, true);
        let h = |c: &str| format!("0x{}", c.repeat(64));
        let b0 = format!(
            r#"{{"jsonrpc":"2.0","id":0,"result":{{"number":"0x7","transactions":[{{"hash":"{}"}},{{"hash":"{}"}}]}}}}"#,
            h("a"),
            h("b")
        );
        let b1 = r#"{"jsonrpc":"2.0","id":2,"result":{"number":"0x8","transactions":[]}}"#;
        let body = format!("[{b1},{b0}]").into_bytes();
        let r0 = response::offset_in(
            &body,
            &std::str::from_utf8(&body).unwrap()[b1.len() + 2..body.len() - 1],
        )
        .unwrap();
        let r1 = 1..1 + b1.len();
        st.bufs.push(body);
        st.blocks[0] = Some(Piece {
            buf: 0,
            start: r0.start,
            end: r0.end,
        });
        st.blocks[1] = Some(Piece {
            buf: 0,
            start: r1.start,
            end: r1.end,
        });
        let calls = st.pending(false, &|_| unreachable!()).unwrap();
        assert_eq!(calls, vec![Call::Tx(0, 0), Call::Tx(0, 1)]);
        let mut req = Vec::new();
        write_request(&st, &calls, &mut req);
        let req = String::from_utf8(req).unwrap();
        assert!(
            req.contains(&format!(
                r#""id":4,"method":"eth_getTransactionReceipt","params":["{}"]"#,
                h("a")
            )),
            "{req}"
        );
        assert!(
            req.contains(&format!(
                r#""id":5,"method":"eth_getTransactionReceipt","params":["{}"]"#,
                h("b")
            )),
            "{req}"
        );
        // Receipts arrive (in any order) in another body.
        let rb = br#"{"transactionHash":"B"}{"transactionHash":"A"}"#.to_vec();
        st.bufs.push(rb);
        st.txs[0].as_mut().unwrap().got = vec![
            Some(Piece {
                buf: 1,
                start: 23,
                end: 46,
            }),
            Some(Piece {
                buf: 1,
                start: 0,
                end: 23,
            }),
        ];
        assert!(st.complete());
        let out = String::from_utf8(st.assemble(&BufPool::new(1))).unwrap();
        let v: sonic_rs::Value = sonic_rs::from_str(&out).unwrap();
        let expected = format!(
            r#"[{b0},{{"jsonrpc":"2.0","id":1,"result":[{{"transactionHash":"A"}},{{"transactionHash":"B"}}]}},{b1},{{"jsonrpc":"2.0","id":3,"result":[]}}]"#
        );
        let e: sonic_rs::Value = sonic_rs::from_str(&expected).unwrap();
        assert_eq!(v, e);
    }
}
