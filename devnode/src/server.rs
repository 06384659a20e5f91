//! The serving side of the dev node: a loopback listener, one thread per connection (bounded),
//! at most `threads` requests handled at once, the transport-level faults (status codes,
//! resets, stalls, truncated and garbage bodies) and the growing-chain timer. [`DevNode`] owns
//! every thread; dropping it (or [`DevNode::shutdown`]) closes the listener and all
//! connections and waits for the threads, so no thread outlives the node.

use super::faults::{FaultCounts, FaultKind, FaultRng};
use super::generate::ChainGenerator;
use super::growth::{Grower, ReorgEvent};
use super::handler::{handle_request, Body, NodeState};
use super::http::{Conn, Incoming, Method, Request};
use super::store::Store;
use super::{generate_chain, DevNodeError, NodeConfig};
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request body accepted (larger ones get HTTP 413).
const MAX_REQUEST_BYTES: usize = 32 << 20;
/// Connections beyond this many are closed right after being accepted.
const MAX_CONNECTIONS: usize = 1024;
/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Granularity of sleeps that must notice a shutdown.
const TICK: Duration = Duration::from_millis(20);

/// Traffic served so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// HTTP requests received (all methods).
    pub requests: u64,
    /// JSON-RPC (POST) requests received; the fault schedule numbers them `0..rpc_requests`.
    pub rpc_requests: u64,
    /// JSON-RPC calls answered (a batch counts each element; faulted requests that were not
    /// run count nothing).
    pub calls: u64,
    /// Calls answered with an error object.
    pub errors: u64,
    /// Response body bytes written.
    pub bytes_served: u64,
    /// Faults served, by kind.
    pub faults: FaultCounts,
    /// Batches refused for having more than `max_batch_calls` calls.
    pub batch_too_large: u64,
    /// Batches cut short by `max_response_bytes`.
    pub response_too_large: u64,
    /// Arrival of the first and the last request, measured from the node's start
    /// ([`DevNode::started`]).
    pub first_request: Option<Duration>,
    pub last_request: Option<Duration>,
    /// Requests that arrived in each second since the node's start (index = second; kept for
    /// the first 24 hours).
    pub requests_per_second: Vec<u64>,
    /// What `eth_blockNumber` answers now.
    pub head: u64,
    /// Reorgs performed so far, oldest first.
    pub reorgs: Vec<ReorgEvent>,
}

impl NodeStats {
    /// The largest number of requests that arrived within any run of `window_secs` consecutive
    /// one-second buckets (at least 1) of [`NodeStats::requests_per_second`].
    pub fn max_requests_in(&self, window_secs: usize) -> u64 {
        let w = window_secs.max(1);
        let v = &self.requests_per_second;
        if v.len() <= w {
            return v.iter().sum();
        }
        v.windows(w).map(|s| s.iter().sum()).max().unwrap_or(0)
    }
}

/// What the node holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSummary {
    /// Known block numbers (with any data; for a growing chain including those not yet
    /// revealed).
    pub blocks: u64,
    pub lowest: Option<u64>,
    pub highest: Option<u64>,
    /// What `eth_blockNumber` answers.
    pub head: u64,
    /// Size of the stored hydrated blocks, receipts and stored `eth_getLogs` answers (the
    /// corpus; hashes-only blocks not counted).
    pub json_bytes: u64,
}

/// A counting semaphore bounding concurrent request handling.
struct Permits {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Permit<'a>(&'a Permits);

impl Permits {
    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

/// Live connections: a clone of each socket (to close it on shutdown) and every thread.
#[derive(Default)]
struct Conns {
    next_id: u64,
    open: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    state: NodeState,
    stop: AtomicBool,
    permits: Permits,
    conns: Mutex<Conns>,
    grower: Option<Mutex<Grower>>,
}

impl Shared {
    fn conns(&self) -> std::sync::MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps `d`, returning early (`false`) if the node is stopping.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(TICK));
        }
    }
}

/// A running node. Dropping it stops it.
pub struct DevNode {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    ticker: Option<JoinHandle<()>>,
}

fn config_error(detail: impl Into<String>) -> DevNodeError {
    DevNodeError::Config {
        detail: detail.into(),
    }
}

impl DevNode {
    /// Loads fixtures, generates the configured chain, binds `cfg.bind` and starts serving.
    /// Returns once the node answers requests.
    pub fn start(cfg: NodeConfig) -> Result<DevNode, DevNodeError> {
        if !cfg.bind.ip().is_loopback() {
            return Err(DevNodeError::NonLoopback { addr: cfg.bind });
        }
        cfg.faults
            .validate()
            .map_err(|source| DevNodeError::Faults { source })?;
        if let Some(g) = &cfg.growth {
            if g.block_time.is_some_and(|t| t < Duration::from_millis(1)) {
                return Err(config_error("block time must be at least 1 ms"));
            }
            if g.reorg_every.is_some_and(|n| n > 0) {
                if cfg.generate.is_none() || !cfg.fixtures.is_empty() {
                    return Err(config_error(
                        "reorgs need a generated chain and no fixture directories",
                    ));
                }
                if g.reorg_depth == 0 {
                    return Err(config_error("reorg depth must be at least 1"));
                }
            }
        }
        let mut store = Store::default();
        if let Some(g) = &cfg.generate {
            store.add_generated(generate_chain(g))?;
        }
        for dir in &cfg.fixtures {
            store.add_fixture_dir(dir)?;
        }
        let grower = cfg.growth.as_ref().map(|g| {
            let k = g.initial_blocks.max(1) as usize;
            store.visible = store
                .blocks
                .keys()
                .nth(k - 1)
                .copied()
                .or_else(|| store.highest());
            let gen = cfg.generate.as_ref().map(ChainGenerator::new);
            Mutex::new(Grower::new(gen, g.clone()))
        });
        let mut state = NodeState::new(store);
        state.chain_id = cfg.chain_id;
        state.latest = cfg.latest;
        state.unknown_block = cfg.unknown_block;
        state.block_receipts = cfg.block_receipts;
        state.max_batch_calls = cfg.max_batch_calls.filter(|n| *n > 0);
        state.max_response_bytes = cfg.max_response_bytes.filter(|n| *n > 0);
        state.faults = cfg.faults.clone();
        state.fault_seed = cfg.fault_seed;
        state.stall = cfg.stall;
        state.retry_after_secs = cfg.retry_after_secs;

        let listener = TcpListener::bind(cfg.bind).map_err(|source| DevNodeError::Bind {
            addr: cfg.bind,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| DevNodeError::Bind {
            addr: cfg.bind,
            source,
        })?;
        state.started = Instant::now();
        let shared = Arc::new(Shared {
            state,
            stop: AtomicBool::new(false),
            permits: Permits {
                free: Mutex::new(cfg.threads.max(1)),
                cv: Condvar::new(),
            },
            conns: Mutex::new(Conns::default()),
            grower,
        });
        let mut node = DevNode {
            addr,
            shared,
            accept: None,
            ticker: None,
        };
        let sh = node.shared.clone();
        node.accept = Some(
            std::thread::Builder::new()
                .name("devnode-accept".into())
                .spawn(move || accept_loop(&listener, &sh))
                .map_err(|source| DevNodeError::Thread { index: 0, source })?,
        );
        if let Some(t) = cfg.growth.as_ref().and_then(|g| g.block_time) {
            let sh = node.shared.clone();
            node.ticker = Some(
                std::thread::Builder::new()
                    .name("devnode-blocks".into())
                    .spawn(move || ticker(&sh, t))
                    .map_err(|source| DevNodeError::Thread { index: 1, source })?,
            );
        }
        Ok(node)
    }

    /// The bound address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// When the node started serving (the zero of [`NodeStats`]' request times).
    pub fn started(&self) -> Instant {
        self.shared.state.started
    }

    /// Reveals the next block of a growing chain now (or performs the reorg that is due), as
    /// the block timer does. Returns the new head; `None` if the chain does not grow or every
    /// block is already visible.
    pub fn advance(&self) -> Option<u64> {
        let g = self.shared.grower.as_ref()?;
        g.lock()
            .unwrap_or_else(|e| e.into_inner())
            .advance(&self.shared.state)
    }

    /// Reorgs performed so far, oldest first.
    pub fn reorgs(&self) -> Vec<ReorgEvent> {
        self.shared
            .state
            .reorgs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stats(&self) -> NodeStats {
        let st = &self.shared.state;
        let c = &st.counters;
        let first = c.first_request_ns.load(Ordering::Relaxed);
        let time = |ns: u64| (first != u64::MAX).then(|| Duration::from_nanos(ns));
        NodeStats {
            requests: c.requests.load(Ordering::Relaxed),
            rpc_requests: c.rpc_requests.load(Ordering::Relaxed),
            calls: c.calls.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            bytes_served: c.bytes.load(Ordering::Relaxed),
            faults: FaultCounts::from_array(std::array::from_fn(|i| {
                c.faults[i].load(Ordering::Relaxed)
            })),
            batch_too_large: c.batch_too_large.load(Ordering::Relaxed),
            response_too_large: c.response_too_large.load(Ordering::Relaxed),
            first_request: time(first),
            last_request: time(c.last_request_ns.load(Ordering::Relaxed)),
            requests_per_second: c
                .per_second
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            head: st.head(),
            reorgs: self.reorgs(),
        }
    }

    pub fn summary(&self) -> NodeSummary {
        let st = &self.shared.state;
        let s = st.read();
        let blob_len = |b: &Option<super::store::Blob>| b.as_ref().map_or(0, |b| b.len() as u64);
        let json_bytes = s
            .blocks
            .values()
            .map(|e| {
                let logs_only = if e.receipts.is_none() {
                    blob_len(&e.log_source)
                } else {
                    0
                };
                blob_len(&e.full) + blob_len(&e.receipts) + logs_only
            })
            .sum();
        NodeSummary {
            blocks: s.blocks.len() as u64,
            lowest: s.blocks.keys().next().copied(),
            highest: s.highest(),
            head: st.head_of(&s),
            json_bytes,
        }
    }

    /// Stops serving and waits for every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.accept.take() {
            // Wake the blocking accept; it sees `stop` and returns.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = a.join();
        }
        let threads = {
            let mut c = self.shared.conns();
            for (_, s) in c.open.drain() {
                let _ = s.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut c.threads)
        };
        for t in threads {
            // A connection thread that panicked has nothing left to clean up.
            let _ = t.join();
        }
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, sh: &Arc<Shared>) {
    for stream in listener.incoming() {
        if sh.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of descriptors or an aborted handshake: back off briefly and go on.
            std::thread::sleep(TICK);
            continue;
        };
        let mut c = sh.conns();
        c.threads.retain(|t| !t.is_finished());
        if c.open.len() >= MAX_CONNECTIONS {
            continue; // dropping the stream closes it
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = c.next_id;
        c.next_id += 1;
        c.open.insert(id, clone);
        let sh2 = sh.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("devnode-conn-{id}"))
            .spawn(move || {
                connection(&sh2, stream);
                sh2.conns().open.remove(&id);
            });
        match spawned {
            Ok(t) => c.threads.push(t),
            Err(_) => {
                c.open.remove(&id);
            }
        }
    }
}

fn ticker(sh: &Shared, block_time: Duration) {
    let t0 = Instant::now();
    let mut k: u32 = 1;
    loop {
        let Some(due) = block_time.checked_mul(k).and_then(|d| t0.checked_add(d)) else {
            return;
        };
        if !sh.sleep(due.saturating_duration_since(Instant::now())) {
            return;
        }
        let Some(g) = &sh.grower else { return };
        let advanced = g
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .advance(&sh.state);
        if advanced.is_none() {
            return;
        }
        k = k.saturating_add(1);
    }
}

/// What to do with the connection after a response.
enum Next {
    KeepAlive,
    Close,
    Reset,
}

fn connection(sh: &Shared, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let mut conn = Conn::new(stream);
    while !sh.stop.load(Ordering::Relaxed) {
        let req = match conn.read_request(MAX_REQUEST_BYTES) {
            Ok(Incoming::Request(r)) => r,
            Ok(Incoming::Closed | Incoming::Refused) | Err(_) => return,
        };
        match serve(sh, &mut conn, req) {
            Ok(Next::KeepAlive) => {}
            Ok(Next::Close) | Err(_) => {
                conn.close();
                return;
            }
            Ok(Next::Reset) => {
                conn.reset();
                return;
            }
        }
    }
}

const JSON: &str = "application/json";

fn next_of(keep_alive: bool) -> Next {
    if keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

fn serve(sh: &Shared, conn: &mut Conn, req: Request) -> std::io::Result<Next> {
    let st = &sh.state;
    st.counters.arrival(st.started.elapsed());
    let keep = req.keep_alive;
    match req.method {
        Method::Post => serve_rpc(sh, conn, &req.body, keep),
        Method::Get | Method::Head => {
            let status = {
                let s = st.read();
                format!(
                    r#"{{"node":"ethetl-devnode","chainId":{},"head":{},"blocks":{}}}"#,
                    st.chain_id,
                    st.head_of(&s),
                    s.blocks.len()
                )
            };
            let b = status.as_bytes();
            let send = if req.method == Method::Head {
                0
            } else {
                b.len()
            };
            conn.respond_partial(200, JSON, &[], b, b.len(), send, keep)?;
            Ok(next_of(keep))
        }
        Method::Other(_) => {
            conn.respond(
                405,
                "text/plain; charset=utf-8",
                &[("Allow", "GET, HEAD, POST".into())],
                &b"method not allowed"[..],
                keep,
            )?;
            Ok(next_of(keep))
        }
    }
}

const BODY_429: &str =
    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"rate limit exceeded"}}"#;
const BODY_500: &str = "Internal Server Error\n";
const BODY_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
const BODY_503: &str = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
const BODY_HTML_200: &str =
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking your browser before accessing the RPC endpoint.</body></html>";

/// A response sent instead of running the calls: status, content type, extra headers, body.
type Canned = (u16, &'static str, Vec<(&'static str, String)>, Vec<u8>);

fn serve_rpc(sh: &Shared, conn: &mut Conn, body: &[u8], keep: bool) -> std::io::Result<Next> {
    let st = &sh.state;
    let index = st.counters.rpc_requests.fetch_add(1, Ordering::Relaxed);
    let mut fault = st.faults.draw(st.fault_seed, index);
    let plain: &'static str = "text/plain; charset=utf-8";
    let html: &'static str = "text/html";
    // Transport-level faults that never run the calls.
    if let Some((kind, rng)) = &mut fault {
        let early: Option<Canned> = match kind {
            FaultKind::TooManyRequests => Some((
                429,
                JSON,
                vec![("Retry-After", st.retry_after_secs.to_string())],
                BODY_429.into(),
            )),
            FaultKind::Http500 => Some((500, plain, vec![], BODY_500.into())),
            FaultKind::Http502 => Some((502, html, vec![], BODY_502.into())),
            FaultKind::Http503 => Some((503, html, vec![], BODY_503.into())),
            FaultKind::InvalidJson => Some((200, JSON, vec![], garbage(rng))),
            FaultKind::Reset => {
                st.counters.fault(FaultKind::Reset);
                return Ok(Next::Reset);
            }
            _ => None,
        };
        if let Some((status, ctype, extra, b)) = early {
            st.counters.fault(*kind);
            let _permit = sh.permits.acquire();
            conn.respond(status, ctype, &extra, &b[..], keep)?;
            add_bytes(st, b.len());
            return Ok(next_of(keep));
        }
        if *kind == FaultKind::Stall {
            st.counters.fault(FaultKind::Stall);
            if !sh.sleep(st.stall) {
                return Ok(Next::Close);
            }
        }
    }
    let _permit = sh.permits.acquire();
    let (answer, truncate): (Body, Option<&mut FaultRng>) = match &mut fault {
        Some((kind, rng)) if *kind == FaultKind::Truncate => {
            (handle_request(st, body, None).0, Some(rng))
        }
        Some((kind, rng)) if *kind != FaultKind::Stall => {
            let (b, applied) = handle_request(st, body, Some((*kind, rng)));
            if applied {
                st.counters.fault(*kind);
            }
            (b, None)
        }
        _ => (handle_request(st, body, None).0, None),
    };
    let len = answer.len();
    if let (Some(rng), true) = (truncate, len >= 2) {
        st.counters.fault(FaultKind::Truncate);
        let cut = 1 + rng.below(len - 1);
        add_bytes(st, cut);
        if rng.below(2) == 0 {
            // The full length announced, the connection closed after `cut` bytes.
            conn.respond_partial(200, JSON, &[], &answer, len, cut, false)?;
            return Ok(Next::Close);
        }
        // A complete HTTP message whose body is cut mid-JSON.
        conn.respond_partial(200, JSON, &[], &answer, cut, cut, keep)?;
        return Ok(next_of(keep));
    }
    conn.respond(200, JSON, &[], &answer, keep)?;
    add_bytes(st, len);
    Ok(next_of(keep))
}

fn add_bytes(st: &NodeState, n: usize) {
    st.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
}

/// A body that is not JSON: an HTML interstitial, binary noise, or nothing.
fn garbage(rng: &mut FaultRng) -> Vec<u8> {
    match rng.below(3) {
        0 => BODY_HTML_200.as_bytes().to_vec(),
        1 => {
            // Bytes that cannot start a JSON text (0x80..=0xff are never valid there).
            (0..64).map(|_| 0x80 | rng.below(128) as u8).collect()
        }
        _ => Vec::new(),
    }
}
