//! The HTTP side of the dev node: a tiny_http server on a loopback listener and a fixed pool of
//! request threads. [`DevNode`] owns the threads; dropping it (or [`DevNode::shutdown`]) stops
//! them and waits for them, so no thread outlives the node.

use super::handler::{handle_body, Counters, NodeState};
use super::store::Store;
use super::{generate_chain, DevNodeError, NodeConfig};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tiny_http::{Header, Method, Request, Response, StatusCode};

/// Largest request body accepted (larger ones get HTTP 413).
const MAX_REQUEST_BYTES: usize = 32 << 20;
/// How often an idle request thread checks for shutdown.
const POLL: Duration = Duration::from_millis(200);

/// Traffic served so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// HTTP requests received.
    pub requests: u64,
    /// JSON-RPC calls answered (a batch counts each element).
    pub calls: u64,
    /// Calls answered with an error object.
    pub errors: u64,
    /// Response body bytes handed to the HTTP layer.
    pub bytes_served: u64,
}

/// What the node holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSummary {
    /// Known block numbers (with any data).
    pub blocks: u64,
    pub lowest: Option<u64>,
    pub highest: Option<u64>,
    /// What `eth_blockNumber` answers.
    pub head: u64,
    /// Size of the stored hydrated blocks, receipts and stored `eth_getLogs` answers (the
    /// corpus; hashes-only blocks not counted).
    pub json_bytes: u64,
}

/// A running node. Dropping it stops it.
pub struct DevNode {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    state: Arc<NodeState>,
    /// Set by `stop`; request threads exit at their next poll.
    stop: Arc<AtomicBool>,
    /// Request threads; joined (and emptied) by `stop`.
    workers: Vec<JoinHandle<()>>,
}

impl DevNode {
    /// Loads fixtures, generates the configured chain, binds `cfg.bind` and starts serving.
    /// Returns once the node answers requests.
    pub fn start(cfg: NodeConfig) -> Result<DevNode, DevNodeError> {
        if !cfg.bind.ip().is_loopback() {
            return Err(DevNodeError::NonLoopback { addr: cfg.bind });
        }
        let mut store = Store::default();
        if let Some(g) = &cfg.generate {
            store.add_generated(generate_chain(g))?;
        }
        for dir in &cfg.fixtures {
            store.add_fixture_dir(dir)?;
        }
        let state = Arc::new(NodeState {
            store,
            chain_id: cfg.chain_id,
            latest: cfg.latest,
            unknown_block: cfg.unknown_block,
            client_version: format!("ethetl-devnode/v{}", env!("CARGO_PKG_VERSION")),
            counters: Counters::default(),
        });
        let listener = TcpListener::bind(cfg.bind).map_err(|source| DevNodeError::Bind {
            addr: cfg.bind,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| DevNodeError::Bind {
            addr: cfg.bind,
            source,
        })?;
        let server = Arc::new(
            tiny_http::Server::from_listener(listener, None)
                .map_err(|source| DevNodeError::Server { addr, source })?,
        );
        let mut node = DevNode {
            addr,
            server,
            state,
            stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::new(),
        };
        for index in 0..cfg.threads.max(1) {
            let (server, state, stop) =
                (node.server.clone(), node.state.clone(), node.stop.clone());
            let handle = std::thread::Builder::new()
                .name(format!("devnode-{index}"))
                .spawn(move || worker(&server, &state, &stop))
                .map_err(|source| DevNodeError::Thread { index, source })?;
            node.workers.push(handle);
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

    pub fn stats(&self) -> NodeStats {
        let c = &self.state.counters;
        NodeStats {
            requests: c.requests.load(Ordering::Relaxed),
            calls: c.calls.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            bytes_served: c.bytes.load(Ordering::Relaxed),
        }
    }

    pub fn summary(&self) -> NodeSummary {
        let s = &self.state.store;
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
            head: self.state.head(),
            json_bytes,
        }
    }

    /// Stops serving and waits for the request threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            // A request thread that panicked has nothing left to clean up.
            let _ = w.join();
        }
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(server: &tiny_http::Server, state: &NodeState, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        // `None`/`Err`: a timeout, an unblock() from `stop`, or an accept error tiny_http has
        // already dealt with; check `stop` and wait again.
        if let Ok(Some(req)) = server.recv_timeout(POLL) {
            serve(state, req);
        }
    }
}

fn json_header() -> Header {
    Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
        .expect("static header is valid")
}

/// Answers one HTTP request. (Fault injection would sit here: delay, drop, HTTP status.)
fn serve(state: &NodeState, mut req: Request) {
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    match req.method() {
        Method::Post => {
            let cap = req.body_length().unwrap_or(0).min(MAX_REQUEST_BYTES);
            let mut body = Vec::with_capacity(cap);
            let read = req
                .as_reader()
                .take(MAX_REQUEST_BYTES as u64 + 1)
                .read_to_end(&mut body);
            if read.is_err() {
                return; // the client went away mid-request
            }
            if body.len() > MAX_REQUEST_BYTES {
                let _ = req
                    .respond(Response::from_string("request body too large").with_status_code(413));
                return;
            }
            let answer = std::panic::catch_unwind(AssertUnwindSafe(|| handle_body(state, &body)));
            let Ok(answer) = answer else {
                let msg = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#;
                let _ = req.respond(
                    Response::from_string(msg)
                        .with_status_code(500)
                        .with_header(json_header()),
                );
                return;
            };
            let len = answer.len();
            state
                .counters
                .bytes
                .fetch_add(len as u64, Ordering::Relaxed);
            let resp = Response::new(
                StatusCode(200),
                vec![json_header()],
                answer.into_reader(),
                Some(len),
                None,
            )
            .with_chunked_threshold(usize::MAX);
            let _ = req.respond(resp);
        }
        Method::Get => {
            let status = format!(
                r#"{{"node":"ethetl-devnode","chainId":{},"head":{},"blocks":{}}}"#,
                state.chain_id,
                state.head(),
                state.store.blocks.len()
            );
            let _ = req.respond(Response::from_string(status).with_header(json_header()));
        }
        _ => {
            let allow = Header::from_bytes(&b"Allow"[..], &b"GET, POST"[..])
                .expect("static header is valid");
            let _ = req.respond(
                Response::from_string("method not allowed")
                    .with_status_code(405)
                    .with_header(allow),
            );
        }
    }
}
