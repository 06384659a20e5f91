//! The one place that decides what a failed JSON-RPC exchange means: every transport error,
//! HTTP status, whole-batch error object and per-call error or `null` is turned into a
//! [`Verdict`] (retry and count an attempt, slow down for a rate limit, split a batch that is
//! too large, fall back to per-transaction receipts, or fail at once) with a [`Cause`] for the
//! per-endpoint counters. [`backoff`] says how long to wait before a retry.
//!
//! Rules, in order:
//! * Rate limits — HTTP 429, a JSON-RPC error with code -32005 or 429, or a message that says
//!   "rate limit", "too many requests", "throttl…" or "exceeded … capacity" — are
//!   [`Verdict::RateLimited`]: retried without consuming `--max-retries`.
//! * Size limits — HTTP 413, or an error whose message says "too large", "too big", "batch
//!   size", "batch limit", "response size" (geth: -32600 `batch too large`, -32003 `response too
//!   large`) — are [`Verdict::TooLarge`]: the request is split.
//! * "Method not found" (-32601, or a message naming a method that does not exist / is not
//!   available / not supported) for `eth_getBlockReceipts` is [`Verdict::MethodMissing`]
//!   (fall back to `eth_getTransactionReceipt`); for any other method it is fatal.
//! * Transport errors (connection refused or reset, timeouts, bodies cut short), HTTP 408, 425
//!   and 5xx, bodies that are not JSON, whole-batch error objects, per-call errors, `null`
//!   results and missing or duplicate answers are [`Verdict::Retry`].
//! * Everything else (HTTP 4xx such as 401/403/404, -32602 invalid params, -32600 invalid
//!   request) is [`Verdict::Fatal`]: no retry can fix it.

use std::time::Duration;

/// Why a request was retried (the per-endpoint counters are indexed by this).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The request or the response took longer than `--timeout`.
    Timeout,
    /// Connection refused or reset, DNS failure, a body cut short at the transport level.
    Transport,
    /// HTTP 408, 425 or 5xx.
    Http,
    /// HTTP 429.
    Http429,
    /// A JSON-RPC rate-limit error (HTTP 200).
    RateLimitRpc,
    /// A body that is not JSON (truncated, garbage, an HTML page) or not a batch answer.
    InvalidBody,
    /// One JSON-RPC error object answered the whole batch.
    BatchError,
    /// A JSON-RPC error object answered one call.
    ItemError,
    /// A call answered `null` (block or receipt not indexed yet).
    NullResult,
    /// An answer missing, given twice, or with an id the request never used.
    BadIds,
    /// The decode stage found the answers inconsistent (wrong block, receipts that do not
    /// match the transactions, block hashes that differ).
    Rejected,
}

impl Cause {
    pub const COUNT: usize = 11;
    pub const ALL: [Cause; Cause::COUNT] = [
        Cause::Timeout,
        Cause::Transport,
        Cause::Http,
        Cause::Http429,
        Cause::RateLimitRpc,
        Cause::InvalidBody,
        Cause::BatchError,
        Cause::ItemError,
        Cause::NullResult,
        Cause::BadIds,
        Cause::Rejected,
    ];

    /// The name used in the run summary and the `--report` JSON.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Timeout => "timeout",
            Cause::Transport => "transport",
            Cause::Http => "http_5xx",
            Cause::Http429 => "http_429",
            Cause::RateLimitRpc => "rate_limit_rpc",
            Cause::InvalidBody => "invalid_body",
            Cause::BatchError => "batch_error",
            Cause::ItemError => "item_error",
            Cause::NullResult => "null_result",
            Cause::BadIds => "bad_ids",
            Cause::Rejected => "rejected",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether this cause is a rate limit (retried without consuming an attempt).
    pub fn is_rate_limit(self) -> bool {
        matches!(self, Cause::Http429 | Cause::RateLimitRpc)
    }
}

/// What to do about a failed exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try again (possibly on another endpoint) after a backoff; consumes one attempt.
    Retry(Cause),
    /// The endpoint is rate limiting: pause it (at least `retry_after`), slow it down, and try
    /// again without consuming an attempt.
    RateLimited {
        cause: Cause,
        retry_after: Option<Duration>,
    },
    /// The request (or its answer) is too large for the endpoint: split it.
    TooLarge,
    /// The endpoint has no `eth_getBlockReceipts`: fetch receipts per transaction.
    MethodMissing,
    /// No retry can fix this.
    Fatal,
}

impl Verdict {
    /// Precedence when one answer shows several problems: a rate limit first (it must slow
    /// the endpoint down), then a size limit (the request must be split), then a missing
    /// method (the way receipts are fetched changes), then a fatal error, then a plain retry.
    fn rank(self) -> u8 {
        match self {
            Verdict::RateLimited { .. } => 5,
            Verdict::TooLarge => 4,
            Verdict::MethodMissing => 3,
            Verdict::Fatal => 2,
            Verdict::Retry(_) => 1,
        }
    }

    /// Whether `self` should be acted on rather than `other`: a rate limit first, then a size
    /// limit, a missing method, a fatal error, and a plain retry last.
    pub fn outranks(self, other: Verdict) -> bool {
        self.rank() > other.rank()
    }

    /// Whether this verdict means the exchange may succeed if repeated (anything but fatal).
    pub fn is_retryable(self) -> bool {
        !matches!(self, Verdict::Fatal)
    }
}

/// Which call a JSON-RPC error answered (method-not-found means different things for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    Block,
    BlockReceipts,
    TransactionReceipt,
    /// The error answered the whole batch.
    Batch,
}

/// A transport-level failure (no complete HTTP response).
pub fn transport(e: &ureq::Error) -> Verdict {
    use ureq::Error as E;
    match e {
        E::Timeout(_) => Verdict::Retry(Cause::Timeout),
        // Over `MAX_RESPONSE_BYTES`: ask for less at a time.
        E::BodyExceedsLimit(_) => Verdict::TooLarge,
        E::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Verdict::Retry(Cause::Timeout),
        // A certificate the endpoint's name or our roots do not vouch for: the same every time.
        E::Io(io) if io.get_ref().is_some_and(is_permanent_tls_error) => Verdict::Fatal,
        E::Rustls(r) if is_permanent_tls(r) => Verdict::Fatal,
        E::Io(_)
        | E::ConnectionFailed
        | E::HostNotFound
        | E::Protocol(_)
        | E::BodyStalled
        | E::Rustls(_) => Verdict::Retry(Cause::Transport),
        // TLS failures (an unknown CA, a bad certificate), bad URLs, proxy and configuration
        // errors: the same request will fail the same way.
        _ => Verdict::Fatal,
    }
}

fn is_permanent_tls_error(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<rustls::Error>()
        .is_some_and(is_permanent_tls)
}

fn is_permanent_tls(e: &rustls::Error) -> bool {
    use rustls::Error as R;
    matches!(
        e,
        R::InvalidCertificate(_)
            | R::NoCertificatesPresented
            | R::UnsupportedNameType
            | R::PeerIncompatible(_)
            | R::InvalidCertRevocationList(_)
    )
}

/// A complete HTTP response with a non-2xx status. `body` is the start of the response body
/// (for rate-limit messages sent with odd status codes).
pub fn status(code: u16, retry_after: Option<Duration>, body: &[u8]) -> Verdict {
    match code {
        429 => Verdict::RateLimited {
            cause: Cause::Http429,
            retry_after,
        },
        413 => Verdict::TooLarge,
        _ if says_rate_limited(&String::from_utf8_lossy(&body[..body.len().min(512)])) => {
            Verdict::RateLimited {
                cause: Cause::Http429,
                retry_after,
            }
        }
        408 | 425 => Verdict::Retry(Cause::Http),
        500..=599 => Verdict::Retry(Cause::Http),
        _ => Verdict::Fatal,
    }
}

/// A JSON-RPC error object answering `call` (or the whole batch).
pub fn rpc_error(code: Option<i64>, message: &str, call: CallKind) -> Verdict {
    let m = message.to_ascii_lowercase();
    let cause = if call == CallKind::Batch {
        Cause::BatchError
    } else {
        Cause::ItemError
    };
    if matches!(code, Some(-32005) | Some(429)) || says_rate_limited(&m) {
        return Verdict::RateLimited {
            cause: Cause::RateLimitRpc,
            retry_after: None,
        };
    }
    if code == Some(-32003) || says_too_large(&m) {
        return Verdict::TooLarge;
    }
    if code == Some(-32601) || says_method_missing(&m) {
        return match call {
            CallKind::BlockReceipts => Verdict::MethodMissing,
            _ => Verdict::Fatal,
        };
    }
    match code {
        // Invalid request / invalid params: the request itself is wrong for this node.
        Some(-32600) | Some(-32602) => Verdict::Fatal,
        _ => Verdict::Retry(cause),
    }
}

fn says_rate_limited(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("rate limit")
        || m.contains("rate-limit")
        || m.contains("ratelimit")
        || m.contains("too many requests")
        || m.contains("throttl")
        || (m.contains("exceeded") && m.contains("capacity"))
}

fn says_too_large(m: &str) -> bool {
    m.contains("too large")
        || m.contains("too big")
        || m.contains("batch size")
        || m.contains("batch limit")
        || m.contains("response size")
}

fn says_method_missing(m: &str) -> bool {
    m.contains("method")
        && (m.contains("not found")
            || m.contains("does not exist")
            || m.contains("not supported")
            || m.contains("unsupported")
            || m.contains("not available"))
}

/// How long to wait before attempt `attempt + 1` (`attempt` ≥ 1 failures so far): 250 ms
/// doubling per failure, capped at 15 s, with jitter (50–100 % of that) so that threads that
/// failed together do not retry together. `salt` varies the jitter per job.
pub fn backoff(attempt: u32, salt: u64) -> Duration {
    jittered(250, 15_000, attempt, salt)
}

/// How long a rate-limited endpoint pauses when the node gave no (or a shorter) `Retry-After`:
/// 100 ms doubling per rate limit in a row, capped at 10 s, with jitter.
pub fn rate_limit_pause(in_a_row: u32, salt: u64) -> Duration {
    jittered(100, 10_000, in_a_row, salt)
}

fn jittered(base_ms: u64, cap_ms: u64, n: u32, salt: u64) -> Duration {
    let ms = base_ms
        .saturating_mul(1u64 << n.saturating_sub(1).min(16))
        .min(cap_ms);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let r = splitmix64(salt ^ (u64::from(n) << 32) ^ nanos);
    Duration::from_millis(ms / 2 + r % (ms / 2 + 1))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A `Retry-After` header value: delay-seconds or an HTTP date, capped at `cap`.
pub fn parse_retry_after(value: &str, cap: Duration) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(cap));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    let wait = when
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Some(wait.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors() {
        use std::io::{Error, ErrorKind};
        let io = |e: Error| ureq::Error::Io(e);
        assert_eq!(
            transport(&io(Error::from(ErrorKind::ConnectionReset))),
            Verdict::Retry(Cause::Transport)
        );
        assert_eq!(
            transport(&io(Error::from(ErrorKind::TimedOut))),
            Verdict::Retry(Cause::Timeout)
        );
        let bad_cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(
            transport(&io(Error::new(ErrorKind::InvalidData, bad_cert))),
            Verdict::Fatal
        );
        let garbled = rustls::Error::DecryptError;
        assert_eq!(
            transport(&io(Error::new(ErrorKind::InvalidData, garbled))),
            Verdict::Retry(Cause::Transport)
        );
        assert_eq!(
            transport(&ureq::Error::ConnectionFailed),
            Verdict::Retry(Cause::Transport)
        );
        assert_eq!(transport(&ureq::Error::BadUri("x".into())), Verdict::Fatal);
    }

    #[test]
    fn statuses() {
        let ra = Some(Duration::from_secs(2));
        assert_eq!(
            status(429, ra, b""),
            Verdict::RateLimited {
                cause: Cause::Http429,
                retry_after: ra
            }
        );
        assert_eq!(status(413, None, b""), Verdict::TooLarge);
        for s in [500, 502, 503, 504, 408, 425] {
            assert_eq!(status(s, None, b"x"), Verdict::Retry(Cause::Http), "{s}");
        }
        for s in [400, 401, 403, 404, 405] {
            assert_eq!(status(s, None, b"nope"), Verdict::Fatal, "{s}");
        }
        // A provider that says "rate limit" with a 503 (or a 403) is rate limiting.
        assert!(matches!(
            status(503, None, b"{\"error\":\"Rate limit reached\"}"),
            Verdict::RateLimited { .. }
        ));
    }

    #[test]
    fn rpc_errors() {
        use CallKind::*;
        assert!(matches!(
            rpc_error(Some(-32005), "limit exceeded", Block),
            Verdict::RateLimited {
                cause: Cause::RateLimitRpc,
                ..
            }
        ));
        assert!(matches!(
            rpc_error(Some(-32000), "Too Many Requests", Batch),
            Verdict::RateLimited { .. }
        ));
        assert_eq!(
            rpc_error(Some(-32600), "batch too large", Block),
            Verdict::TooLarge
        );
        assert_eq!(
            rpc_error(Some(-32003), "response too large", BlockReceipts),
            Verdict::TooLarge
        );
        assert_eq!(
            rpc_error(
                Some(-32601),
                "the method eth_getBlockReceipts does not exist/is not available",
                BlockReceipts
            ),
            Verdict::MethodMissing
        );
        assert_eq!(
            rpc_error(Some(-32000), "Method not supported", BlockReceipts),
            Verdict::MethodMissing
        );
        assert_eq!(
            rpc_error(Some(-32601), "method not found", Block),
            Verdict::Fatal
        );
        assert_eq!(
            rpc_error(Some(-32602), "invalid argument 0", Block),
            Verdict::Fatal
        );
        assert_eq!(
            rpc_error(Some(-32000), "execution aborted (timeout = 5s)", Block),
            Verdict::Retry(Cause::ItemError)
        );
        assert_eq!(
            rpc_error(Some(-32000), "block receipts not found", BlockReceipts),
            Verdict::Retry(Cause::ItemError)
        );
        assert_eq!(
            rpc_error(Some(-32603), "internal error", Batch),
            Verdict::Retry(Cause::BatchError)
        );
        assert_eq!(
            rpc_error(None, "header not found", TransactionReceipt),
            Verdict::Retry(Cause::ItemError)
        );
    }

    #[test]
    fn precedence() {
        let rl = Verdict::RateLimited {
            cause: Cause::Http429,
            retry_after: None,
        };
        assert!(rl.outranks(Verdict::TooLarge));
        assert!(Verdict::TooLarge.outranks(Verdict::MethodMissing));
        assert!(Verdict::MethodMissing.outranks(Verdict::Fatal));
        assert!(Verdict::Fatal.outranks(Verdict::Retry(Cause::ItemError)));
        assert!(!Verdict::Retry(Cause::NullResult).outranks(Verdict::Retry(Cause::ItemError)));
    }

    #[test]
    fn backoff_grows_with_jitter_and_cap() {
        for attempt in 1..30 {
            let d = backoff(attempt, 7).as_millis() as u64;
            let cap = (250u64 << (attempt - 1).min(16)).min(15_000);
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d} vs {cap}");
            let p = rate_limit_pause(attempt, 7).as_millis() as u64;
            let cap = (100u64 << (attempt - 1).min(16)).min(10_000);
            assert!(
                p >= cap / 2 && p <= cap,
                "rate limit {attempt}: {p} vs {cap}"
            );
        }
    }

    #[test]
    fn retry_after_values() {
        let cap = Duration::from_secs(60);
        assert_eq!(parse_retry_after(" 7 ", cap), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("3600", cap), Some(cap));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", cap),
            Some(Duration::ZERO)
        );
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(later), cap).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon", cap), None);
    }
}
