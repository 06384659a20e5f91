//! The blocking JSON-RPC HTTP client shared by the I/O threads: one ureq [`Agent`] (connection
//! pool sized for the I/O threads, identity encoding, no body size cap that a batch could hit,
//! rustls with verified certificates: the bundled Mozilla roots, or only the CAs of
//! `--ca-bundle`; there is no way to turn verification off). [`RpcClient::post`] sends one
//! request body and returns the status, `Retry-After` and body; [`RpcClient::fetch`] sends the
//! whole batch of a job. Failures are typed [`RpcError`]s that name the endpoint (redacted),
//! the blocks and the methods; what each failure means for a retry is decided in
//! [`crate::rpc::retry`].

use crate::bufpool::BufPool;
use crate::msg::RangeJob;
use crate::rpc::batch;
use crate::rpc::endpoints::Endpoint;
use crate::rpc::retry::{self, CallKind, Verdict};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Agent;

pub use crate::rpc::retry::backoff;

/// Responses larger than this are not read to the end: the request is split as if the node
/// had refused it as too large (one call that is larger alone is an error). A default batch of
/// 5 mainnet blocks with receipts is ~10 MB and the largest single block answers are a few
/// MB, so only a hostile node or a `--batch-size` in the hundreds gets here; it bounds what one
/// I/O thread can be made to hold.
pub const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// A node's `Retry-After` is honoured up to this many seconds.
pub const MAX_RETRY_AFTER_SECS: u64 = 60;

/// At most this many bytes of an HTTP error body are quoted in an error message.
const ERROR_BODY_SNIPPET: usize = 200;

/// The HTTP client for a set of endpoints.
#[derive(Clone, Debug)]
pub struct RpcClient {
    agent: Agent,
    endpoints: Vec<Endpoint>,
    /// Where response bodies are read into, and where the decode stage returns them.
    bodies: Arc<BufPool>,
}

impl RpcClient {
    /// `connections` is the number of concurrent requests (the I/O thread count): the pool
    /// keeps that many idle connections per host so every request reuses one. Certificates
    /// are checked against the bundled Mozilla roots.
    pub fn new(endpoints: Vec<Endpoint>, connections: usize, timeout: Duration) -> RpcClient {
        RpcClient::with_roots(endpoints, connections, timeout, &TlsRoots::Bundled)
    }

    /// [`RpcClient::new`] trusting `roots` for `https://` endpoints.
    pub fn with_roots(
        endpoints: Vec<Endpoint>,
        connections: usize,
        timeout: Duration,
        roots: &TlsRoots,
    ) -> RpcClient {
        let per_host = connections.max(1);
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            // Ask for the body as is: gzip decoding costs several times the JSON parse.
            .accept_encoding("identity")
            .user_agent(concat!("ethetl/", env!("CARGO_PKG_VERSION")))
            // A redirect would turn the POST into a GET to wherever the node points: refused,
            // with the status and the target host in the error.
            .max_redirects(0)
            .max_idle_connections_per_host(per_host)
            .max_idle_connections(per_host * endpoints.len().max(1))
            .timeout_global(Some(timeout))
            .tls_config(tls_config(roots))
            .build()
            .into();
        // Bodies in circulation: one per I/O thread plus those queued for and inside the
        // decode stage; keeping a few more than the threads covers them.
        let bodies = Arc::new(BufPool::new(2 * per_host + 8));
        RpcClient {
            agent,
            endpoints,
            bodies,
        }
    }

    /// The pool response bodies are read into. Hand a spent body back with
    /// [`BufPool::put`] so that the next response reuses its memory.
    pub fn bodies(&self) -> &Arc<BufPool> {
        &self.bodies
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The endpoint for `job`: round-robin over jobs, moving on to the next endpoint on each
    /// retry.
    pub fn endpoint_for(&self, job: &RangeJob) -> usize {
        let n = self.endpoints.len().max(1) as u64;
        (job.seq.wrapping_add(u64::from(job.attempt)) % n) as usize
    }

    /// Sends the batch request for `job` to endpoint `endpoint` and returns the response body.
    /// `request` is scratch space for the request body (reused across calls).
    pub fn fetch(
        &self,
        endpoint: usize,
        job: &RangeJob,
        with_receipts: bool,
        request: &mut Vec<u8>,
    ) -> Result<Vec<u8>, RpcError> {
        let ep = &self.endpoints[endpoint];
        let at = Where {
            endpoint: ep.redacted().to_string(),
            start: job.start,
            end: job.end,
            methods: methods(with_receipts),
        };
        batch::write_request(job, with_receipts, request);
        let reply = self
            .post(endpoint, request)
            .map_err(|e| RpcError::transport(&e, ep, at.clone()))?;
        reply.into_body(ep, at)
    }

    /// POSTs `body` (a JSON-RPC request) to endpoint `endpoint`. `Err` only when no complete
    /// HTTP response head arrived; the body may still fail to read (see [`Reply::body`]).
    pub fn post(&self, endpoint: usize, body: &[u8]) -> Result<Reply, ureq::Error> {
        let ep = &self.endpoints[endpoint];
        let mut resp = self
            .agent
            .post(ep.url())
            .header("Content-Type", "application/json")
            .send(body)?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(location_host);
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, Duration::from_secs(MAX_RETRY_AFTER_SECS)));
        // Read into a reused buffer sized from Content-Length: no growth copies, and no fresh
        // pages for the kernel to zero.
        let expected = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(0, |n| n.min(MAX_RESPONSE_BYTES) as usize);
        // Without a length (chunked), a buffer of the pool all the same: bodies of unknown
        // length must not each grow a fresh one.
        let mut buf = self
            .bodies
            .take(expected.max(crate::bufpool::MIN_KEPT_CAPACITY));
        let read = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .reader()
            .read_to_end(&mut buf);
        let body = match read {
            Ok(_) => Ok(buf),
            Err(e) => {
                self.bodies.put(buf);
                Err(ureq::Error::from(e))
            }
        };
        Ok(Reply {
            status,
            retry_after,
            location,
            body,
        })
    }

    /// Endpoint `i`.
    pub fn endpoint(&self, i: usize) -> &Endpoint {
        &self.endpoints[i]
    }
}

/// A complete HTTP response head and the body as read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The node's `Retry-After` (seconds or an HTTP date), capped at
    /// [`MAX_RETRY_AFTER_SECS`].
    pub retry_after: Option<Duration>,
    /// The host a redirect (`Location`) points to; `the same host` for a relative one.
    pub location: Option<String>,
    /// The body, or why it could not be read completely.
    pub body: Result<Vec<u8>, ureq::Error>,
}

impl Reply {
    /// The body of a 2xx answer; other statuses and unreadable bodies become errors.
    pub fn into_body(self, ep: &Endpoint, at: Where) -> Result<Vec<u8>, RpcError> {
        if !(200..300).contains(&self.status) {
            let snippet = match (&self.location, &self.body) {
                (Some(host), _) if (300..400).contains(&self.status) => format!(
                    ": a redirect to {}, not followed for a JSON-RPC POST (put the final URL in --rpc)",
                    ep.sanitize(host)
                ),
                (_, Ok(b)) => snippet(b, ep),
                (_, Err(_)) => String::new(),
            };
            return Err(RpcError::Status {
                at,
                status: self.status,
                snippet,
                retry_after: self.retry_after,
            });
        }
        self.body.map_err(|e| RpcError::transport(&e, ep, at))
    }
}

/// The host of a `Location` value, for messages (never its path or query: they may hold a
/// key).
fn location_host(location: &str) -> String {
    match location.parse::<ureq::http::Uri>() {
        Ok(u) => match u.host() {
            Some(h) => crate::term::escape_controls(h),
            None => "the same host".to_string(),
        },
        Err(_) => "an unreadable location".to_string(),
    }
}

/// The TLS settings of every client that talks to the endpoints: certificates checked against
/// `roots`, always.
pub fn tls_config(roots: &TlsRoots) -> TlsConfig {
    let root_certs = match roots {
        TlsRoots::Bundled => RootCerts::WebPki,
        TlsRoots::Pem { certs, .. } => RootCerts::Specific(Arc::new(
            certs
                .iter()
                .map(|der| Certificate::from_der(der).to_owned())
                .collect(),
        )),
    };
    TlsConfig::builder().root_certs(root_certs).build()
}

/// Which certificates `https://` endpoints are checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TlsRoots {
    /// The Mozilla root store compiled into ethetl (webpki-roots).
    #[default]
    Bundled,
    /// Only the CA certificates of a PEM file (`--ca-bundle`), DER-encoded.
    Pem { path: PathBuf, certs: Vec<Vec<u8>> },
}

/// Why a `--ca-bundle` file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsRootsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid PEM file", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: ureq::Error,
    },
    #[error("{} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)", path.display())]
    Empty { path: PathBuf },
}

impl TlsRoots {
    /// Reads the CA certificates of a PEM file (other PEM items, such as keys, are ignored).
    pub fn from_pem_file(path: &Path) -> Result<TlsRoots, TlsRootsError> {
        let bytes = std::fs::read(path).map_err(|source| TlsRootsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&bytes) {
            match item {
                Ok(PemItem::Certificate(c)) => certs.push(c.der().to_vec()),
                Ok(_) => {}
                Err(source) => {
                    return Err(TlsRootsError::Pem {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        }
        if certs.is_empty() {
            return Err(TlsRootsError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(TlsRoots::Pem {
            path: path.to_path_buf(),
            certs,
        })
    }
}

/// Which calls a request carried, for messages.
pub fn methods(with_receipts: bool) -> &'static str {
    if with_receipts {
        "eth_getBlockByNumber + eth_getBlockReceipts"
    } else {
        "eth_getBlockByNumber"
    }
}

fn snippet(body: &[u8], ep: &Endpoint) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_SNIPPET)]);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = ep.sanitize(text.trim());
    if text.is_empty() {
        String::new()
    } else if body.len() > ERROR_BODY_SNIPPET {
        format!(": {text}…")
    } else {
        format!(": {text}")
    }
}

/// Where a request went: the endpoint (redacted), the blocks and the JSON-RPC methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Where {
    pub endpoint: String,
    pub start: u64,
    pub end: u64,
    pub methods: &'static str,
}

impl std::fmt::Display for Where {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "blocks {}..={} ({}) from {}",
            self.start, self.end, self.methods, self.endpoint
        )
    }
}

/// One call of a request, for messages: `block N: method` or `block N, transaction I: method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallAt {
    pub block: u64,
    pub tx_index: Option<usize>,
    pub method: &'static str,
}

impl std::fmt::Display for CallAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tx_index {
            Some(i) => write!(f, "block {}, transaction {i}: {}", self.block, self.method),
            None => write!(f, "block {}: {}", self.block, self.method),
        }
    }
}

fn code_text(code: &Option<i64>) -> String {
    code.map_or_else(|| "no code".to_owned(), |c| format!("code {c}"))
}

/// A failed JSON-RPC exchange.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("request for {at} failed")]
    Transport {
        at: Where,
        retryable: bool,
        #[source]
        source: Sanitized,
    },
    #[error("request for {at} got HTTP {status}{snippet}")]
    Status {
        at: Where,
        status: u16,
        /// The start of the response body, sanitized, prefixed with `": "` (or empty).
        snippet: String,
        /// The node's `Retry-After` (capped at [`MAX_RETRY_AFTER_SECS`]).
        retry_after: Option<Duration>,
    },
    /// A truncated body, garbage, an HTML page.
    #[error("request for {at}: response body ({len} bytes) is not valid JSON")]
    Body {
        at: Where,
        len: usize,
        #[source]
        source: crate::rpc::response::BodyError,
    },
    #[error("request for {at}: the response is {what}, not a batch answer")]
    NotABatch { at: Where, what: &'static str },
    /// One JSON-RPC error object answered the whole batch.
    #[error("request for {at}: the node rejected the batch ({}): {message}", code_text(.code))]
    Rejected {
        at: Where,
        code: Option<i64>,
        message: String,
    },
    /// A JSON-RPC error object answered one call.
    #[error("{call} failed ({}): {message} (from {})", code_text(.code), .at.endpoint)]
    Call {
        at: Where,
        call: Box<CallAt>,
        code: Option<i64>,
        message: String,
    },
    #[error("{call} returned null (the node may not have this block yet) from {}", .at.endpoint)]
    Null { at: Where, call: Box<CallAt> },
    /// Answers missing, duplicated or for calls the request never made.
    #[error("request for {at}: {detail}")]
    Ids { at: Where, detail: String },
    #[error("{call}: the answer is too large for {} even alone ({detail})", .at.endpoint)]
    TooLarge {
        at: Where,
        call: Box<CallAt>,
        detail: String,
    },
    #[error("{call}: unexpected answer from {}: {detail}", .at.endpoint)]
    BadResult {
        at: Where,
        call: Box<CallAt>,
        detail: String,
    },
    #[error("{at}: still rate limited after {tries} tries over {:.0} s", .waited.as_secs_f64())]
    RateLimited {
        at: Where,
        tries: u32,
        waited: Duration,
        #[source]
        last: Box<RpcError>,
    },
}

impl RpcError {
    /// A transport failure of a request to `ep`, its text scrubbed of the URL's secrets.
    pub fn transport(e: &ureq::Error, ep: &Endpoint, at: Where) -> RpcError {
        RpcError::Transport {
            retryable: retry::transport(e).is_retryable(),
            source: Sanitized::of(e, ep),
            at,
        }
    }

    /// Whether another attempt may succeed (see [`crate::rpc::retry`] for the rules).
    pub fn is_retryable(&self) -> bool {
        self.verdict().is_retryable()
    }

    /// What [`crate::rpc::retry`] makes of this error.
    pub fn verdict(&self) -> Verdict {
        use crate::rpc::retry::Cause;
        match self {
            RpcError::Transport { retryable, .. } => {
                if *retryable {
                    Verdict::Retry(Cause::Transport)
                } else {
                    Verdict::Fatal
                }
            }
            RpcError::Status {
                status,
                snippet,
                retry_after,
                ..
            } => retry::status(*status, *retry_after, snippet.as_bytes()),
            RpcError::Body { .. } | RpcError::NotABatch { .. } => {
                Verdict::Retry(Cause::InvalidBody)
            }
            RpcError::Rejected { code, message, .. } => {
                retry::rpc_error(*code, message, CallKind::Batch)
            }
            RpcError::Call {
                call,
                code,
                message,
                ..
            } => retry::rpc_error(*code, message, call_kind(call.method)),
            RpcError::Null { .. } => Verdict::Retry(Cause::NullResult),
            RpcError::Ids { .. } => Verdict::Retry(Cause::BadIds),
            RpcError::TooLarge { .. } | RpcError::BadResult { .. } => Verdict::Fatal,
            RpcError::RateLimited { .. } => Verdict::Fatal,
        }
    }

    /// How long the node asked us to wait (HTTP `Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RpcError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn at(&self) -> &Where {
        match self {
            RpcError::Transport { at, .. }
            | RpcError::Status { at, .. }
            | RpcError::Body { at, .. }
            | RpcError::NotABatch { at, .. }
            | RpcError::Rejected { at, .. }
            | RpcError::Call { at, .. }
            | RpcError::Null { at, .. }
            | RpcError::Ids { at, .. }
            | RpcError::TooLarge { at, .. }
            | RpcError::BadResult { at, .. }
            | RpcError::RateLimited { at, .. } => at,
        }
    }
}

fn call_kind(method: &str) -> CallKind {
    match method {
        "eth_getBlockReceipts" => CallKind::BlockReceipts,
        "eth_getTransactionReceipt" => CallKind::TransactionReceipt,
        _ => CallKind::Block,
    }
}

/// An HTTP library error rendered to text with the endpoint URL and its secrets removed.
/// The library's error (and its sources) may quote the raw URL, so it is not kept as a
/// `source`: its full text, sanitized, is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitized {
    message: String,
}

impl Sanitized {
    pub fn of(e: &(dyn std::error::Error + 'static), ep: &Endpoint) -> Sanitized {
        let mut text = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            let part = s.to_string();
            if !text.contains(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            src = s.source();
        }
        Sanitized {
            message: ep.sanitize(&text),
        }
    }
}

impl std::fmt::Display for Sanitized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Sanitized {}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(start: u64, end: u64) -> RangeJob {
        RangeJob {
            seq: 0,
            start,
            end,
            attempt: 0,
        }
    }

    fn client(url: &str) -> RpcClient {
        RpcClient::new(
            vec![Endpoint::parse(url).unwrap()],
            2,
            Duration::from_secs(5),
        )
    }

    /// Request bodies and headers a test server saw.
    type Seen = Vec<(Vec<u8>, Vec<String>)>;

    /// Serves `n` requests with `reply(request body) -> (status, body)` and returns the
    /// request bodies and headers it saw.
    fn serve(
        n: usize,
        reply: impl Fn(&[u8]) -> (u16, Vec<u8>) + Send + 'static,
    ) -> (u16, std::thread::JoinHandle<Seen>) {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..n {
                let Ok(Some(mut req)) = server.recv_timeout(Duration::from_secs(10)) else {
                    break;
                };
                let mut body = Vec::new();
                req.as_reader().read_to_end(&mut body).unwrap();
                let headers = req
                    .headers()
                    .iter()
                    .map(|h| format!("{}: {}", h.field, h.value))
                    .collect();
                let (status, out) = reply(&body);
                let _ = req.respond(tiny_http::Response::from_data(out).with_status_code(status));
                seen.push((body, headers));
            }
            seen
        });
        (port, h)
    }

    #[test]
    fn posts_batch_and_reads_large_body() {
        let big = vec![b' '; 12 << 20]; // over ureq's default 10 MB read limit
        let (port, h) = serve(1, move |_| (200, big.clone()));
        let c = client(&format!("http://127.0.0.1:{port}/"));
        let mut req = Vec::new();
        let body = c.fetch(0, &job(5, 6), true, &mut req).unwrap();
        assert_eq!(body.len(), 12 << 20);
        let seen = h.join().unwrap();
        let mut expected = Vec::new();
        batch::write_request(&job(5, 6), true, &mut expected);
        assert_eq!(seen[0].0, expected);
        let headers = seen[0].1.join("\n").to_ascii_lowercase();
        assert!(headers.contains("accept-encoding: identity"), "{headers}");
        assert!(
            headers.contains("content-type: application/json"),
            "{headers}"
        );
    }

    #[test]
    fn http_errors_are_typed_and_redacted() {
        let (port, h) = serve(2, |_| (503, b"busy, try later".to_vec()));
        let url = format!("http://127.0.0.1:{port}/v2/SECRETKEY?apikey=SECRET2");
        let c = client(&url);
        let e = c.fetch(0, &job(7, 9), false, &mut Vec::new()).unwrap_err();
        assert!(e.is_retryable());
        let msg = e.to_string();
        assert!(msg.contains("HTTP 503") && msg.contains("busy"), "{msg}");
        assert!(msg.contains("blocks 7..=9 (eth_getBlockByNumber)"), "{msg}");
        assert!(!msg.contains("SECRET"), "{msg}");
        drop(h);
    }

    #[test]
    fn retry_after_is_read() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let h = std::thread::spawn(move || {
            if let Ok(Some(req)) = server.recv_timeout(Duration::from_secs(10)) {
                let header = tiny_http::Header::from_bytes("Retry-After", "7").unwrap();
                let _ = req.respond(
                    tiny_http::Response::from_string("slow down")
                        .with_status_code(429)
                        .with_header(header),
                );
            }
        });
        let c = client(&format!("http://127.0.0.1:{port}/"));
        let e = c.fetch(0, &job(1, 1), false, &mut Vec::new()).unwrap_err();
        h.join().unwrap();
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn connection_refused_is_retryable_and_redacted() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://user:passw0rd@127.0.0.1:{port}/v2/SECRETKEY?apikey=SECRET2");
        let c = client(&url);
        let e = c.fetch(0, &job(1, 1), true, &mut Vec::new()).unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            chain.push_str(&format!(": {s}"));
            src = s.source();
        }
        assert!(
            !chain.contains("SECRET") && !chain.contains("passw0rd"),
            "{chain}"
        );
        assert!(chain.contains("eth_getBlockReceipts"), "{chain}");
    }

    #[test]
    fn status_classification() {
        let at = Where {
            endpoint: "e".into(),
            start: 0,
            end: 0,
            methods: "m",
        };
        for (s, r) in [
            (429, true),
            (500, true),
            (502, true),
            (408, true),
            (400, false),
            (404, false),
            (401, false),
        ] {
            let e = RpcError::Status {
                at: at.clone(),
                status: s,
                snippet: String::new(),
                retry_after: None,
            };
            assert_eq!(e.is_retryable(), r, "{s}");
        }
    }

    #[test]
    fn round_robin() {
        let eps =
            crate::rpc::endpoints::parse_endpoints("http://a:1,http://b:2,http://c:3").unwrap();
        let c = RpcClient::new(eps, 1, Duration::from_secs(1));
        let mut j = job(0, 0);
        let picks: Vec<usize> = (0..4)
            .map(|s| {
                j.seq = s;
                c.endpoint_for(&j)
            })
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0]);
        j.attempt = 1;
        assert_eq!(c.endpoint_for(&j), 1);
    }
}
