//! The blocking JSON-RPC HTTP client shared by the I/O threads: one ureq [`Agent`] (connection
//! pool sized for the I/O threads, identity encoding, no body size cap that a batch could hit,
//! rustls with verified certificates), one POST per job with the body from
//! [`crate::rpc::batch::write_request`], endpoints picked round-robin. Failures are typed
//! [`RpcError`]s that name the endpoint (redacted) and the block range; whether a failure is
//! worth retrying is decided here ([`RpcError::is_retryable`]), and [`backoff`] says how long
//! to wait before the next attempt.

use crate::config::Endpoint;
use crate::pipeline::msg::RangeJob;
use crate::rpc::batch;
use std::time::Duration;
use ureq::Agent;

/// Responses larger than this are refused (a batch of 500 mainnet blocks with receipts is
/// well under 1 GB; ureq's own default of 10 MB is hit by ordinary batches).
pub const MAX_RESPONSE_BYTES: u64 = 2 << 30;

/// A node's `Retry-After` is honoured up to this many seconds.
pub const MAX_RETRY_AFTER_SECS: u64 = 60;

/// At most this many bytes of an HTTP error body are quoted in an error message.
const ERROR_BODY_SNIPPET: usize = 200;

/// The HTTP client for a set of endpoints.
#[derive(Clone, Debug)]
pub struct RpcClient {
    agent: Agent,
    endpoints: Vec<Endpoint>,
}

impl RpcClient {
    /// `connections` is the number of concurrent requests (the I/O thread count): the pool
    /// keeps that many idle connections per host so every request reuses one.
    pub fn new(endpoints: Vec<Endpoint>, connections: usize, timeout: Duration) -> RpcClient {
        let per_host = connections.max(1);
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            // Ask for the body as is: gzip decoding costs several times the JSON parse.
            .accept_encoding("identity")
            .user_agent(concat!("ethetl/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections_per_host(per_host)
            .max_idle_connections(per_host * endpoints.len().max(1))
            .timeout_global(Some(timeout))
            .build()
            .into();
        RpcClient { agent, endpoints }
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
        let at = || Where {
            endpoint: ep.redacted().to_string(),
            start: job.start,
            end: job.end,
            methods: methods(with_receipts),
        };
        batch::write_request(job, with_receipts, request);
        let transport = |e: ureq::Error| RpcError::Transport {
            retryable: transport_retryable(&e),
            source: Sanitized::of(&e, ep),
            at: at(),
        };
        let mut resp = self
            .agent
            .post(ep.url())
            .header("Content-Type", "application/json")
            .send(&request[..])
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs.min(MAX_RETRY_AFTER_SECS)));
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec();
        if !(200..300).contains(&status) {
            let snippet = match &body {
                Ok(b) => snippet(b, ep),
                Err(_) => String::new(),
            };
            return Err(RpcError::Status {
                at: at(),
                status,
                snippet,
                retry_after,
            });
        }
        body.map_err(transport)
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

fn transport_retryable(e: &ureq::Error) -> bool {
    use ureq::Error as E;
    matches!(
        e,
        E::Timeout(_)
            | E::Io(_)
            | E::ConnectionFailed
            | E::HostNotFound
            | E::Protocol(_)
            | E::BodyStalled
    )
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

/// A failed JSON-RPC HTTP request.
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
        /// The node's `Retry-After` (whole seconds, capped at [`MAX_RETRY_AFTER_SECS`]).
        retry_after: Option<Duration>,
    },
}

impl RpcError {
    /// Transport errors (connection refused or reset, timeouts, truncated bodies) and
    /// HTTP 408, 429 and 5xx may succeed on another attempt; anything else will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            RpcError::Transport { retryable, .. } => *retryable,
            RpcError::Status { status, .. } => {
                matches!(*status, 408 | 425 | 429) || (500..600).contains(status)
            }
        }
    }

    /// How long the node asked us to wait (HTTP `Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RpcError::Status { retry_after, .. } => *retry_after,
            RpcError::Transport { .. } => None,
        }
    }

    pub fn at(&self) -> &Where {
        match self {
            RpcError::Transport { at, .. } | RpcError::Status { at, .. } => at,
        }
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

/// How long to wait before attempt `attempt + 1` (`attempt` ≥ 1 failures so far): 250 ms
/// doubling per failure, capped at 15 s, with jitter (50–100 % of that) so that threads that
/// failed together do not retry together. `salt` varies the jitter per job.
pub fn backoff(attempt: u32, salt: u64) -> Duration {
    let base_ms: u64 = 250u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
    let cap_ms = base_ms.min(15_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let r = splitmix64(salt ^ (u64::from(attempt) << 32) ^ nanos);
    let jitter_ms = cap_ms / 2 + r % (cap_ms / 2 + 1);
    Duration::from_millis(jitter_ms)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

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
    fn backoff_grows_with_jitter_and_cap() {
        for attempt in 1..30 {
            let d = backoff(attempt, 7).as_millis() as u64;
            let cap = (250u64 << (attempt - 1).min(16)).min(15_000);
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d} vs {cap}");
        }
    }

    #[test]
    fn round_robin() {
        let eps = crate::config::parse_endpoints("http://a:1,http://b:2,http://c:3").unwrap();
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
