//! The endpoints of a run and everything known about each while it goes: [`Endpoint`] (a URL
//! checked and redacted for display, parsed from `--rpc` by [`parse_endpoints`]),
//! [`EndpointOptions`] (per-endpoint weight and limits written after the URL), and the
//! [`Pool`] that hands out endpoints to requests.
//!
//! The pool guarantees:
//! * Jobs are spread smooth-weighted round-robin over the endpoints that can take a request
//!   now: not benched, not paused by a rate limit, below their concurrency limit.
//! * An endpoint that fails [`BENCH_AFTER`] times in a row is benched (1 s, doubling per bench,
//!   at most 60 s) while another endpoint is healthy; when the time is up one probe request
//!   goes to it, and its first success makes it healthy again. The last healthy endpoint is
//!   never benched: the run goes on while any endpoint works, and per-job backoff paces it.
//! * A rate limit pauses the endpoint (the node's `Retry-After`, or 100 ms doubling per rate
//!   limit in a row) and halves its concurrency and request rate ([`Adaptive`]); successes win
//!   them back.
//! * `--requests-per-second` is enforced per endpoint by a [`Pacer`] before every request, and
//!   `--max-concurrency` bounds the requests in flight per endpoint.
//! * The largest batch an endpoint accepted is remembered ([`Pool::too_large`]), and so is
//!   whether it has `eth_getBlockReceipts`.
//!
//! Every wait is sliced into [`TICK`]s and gives up as soon as the caller's `stopped` says so.

use crate::redact::Redactor;
use crate::rpc::ratelimit::{Adaptive, Pacer};
use crate::rpc::retry::{rate_limit_pause, Cause};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failures in a row that bench an endpoint.
pub const BENCH_AFTER: u32 = 3;
/// The first bench lasts this long; each further bench doubles it, up to [`MAX_BENCH`].
pub const FIRST_BENCH: Duration = Duration::from_secs(1);
pub const MAX_BENCH: Duration = Duration::from_secs(60);
/// Longest single sleep of a waiting thread (it then checks whether the run stopped).
pub const TICK: Duration = Duration::from_millis(50);

/// How a provider counts requests against `--requests-per-second`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Billing {
    /// Each HTTP request counts once, whatever the batch size.
    #[default]
    Requests,
    /// Each JSON-RPC call in a batch counts once (providers that bill per call).
    Calls,
}

/// One JSON-RPC endpoint and its own settings. `Display` shows the redacted URL only.
#[derive(Clone, Debug)]
pub struct Endpoint {
    redactor: Redactor,
    options: EndpointOptions,
}

impl Endpoint {
    /// Parses one `--rpc` entry: a URL, then optional `key=value` settings separated by
    /// spaces (`weight=N`, `rps=R`, `concurrency=N`, `max-calls=N`, `bill=requests|calls`).
    pub fn parse_entry(entry: &str) -> Result<Endpoint, EndpointError> {
        let mut words = entry.split_whitespace();
        let url = words.next().unwrap_or_default();
        let mut ep = Endpoint::parse(url)?;
        ep.options = EndpointOptions::parse(words).map_err(|e| EndpointError::BadOption {
            url: ep.redacted().to_string(),
            option: shown_option(&ep, &e.option),
            reason: e.reason,
        })?;
        Ok(ep)
    }

    /// This endpoint's own settings.
    pub fn options(&self) -> &EndpointOptions {
        &self.options
    }

    /// Validates an `http://` or `https://` URL with a host.
    pub fn parse(url: &str) -> Result<Endpoint, EndpointError> {
        let url = url.trim();
        let redactor = Redactor::new(url);
        let bad = |reason: String| EndpointError::BadUrl {
            url: redactor.redacted().to_string(),
            reason,
        };
        let uri: ureq::http::Uri = url
            .parse()
            .map_err(|e: ureq::http::uri::InvalidUri| bad(redactor.sanitize(&e.to_string())))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            Some(other) => {
                return Err(bad(format!(
                    "scheme `{}` is not supported (use http:// or https://)",
                    redactor.sanitize(other)
                )))
            }
            None => return Err(bad("missing http:// or https://".into())),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("missing host".into()));
        }
        if let Some(port) = uri.authority().and_then(|a| port_text(a.as_str())) {
            if !matches!(port.parse::<u16>(), Ok(1..)) {
                return Err(bad(format!(
                    "port {} is out of range (1 to 65535)",
                    redactor.sanitize(port)
                )));
            }
        }
        Ok(Endpoint {
            redactor,
            options: EndpointOptions::default(),
        })
    }

    /// The URL to connect to. Never print it: use `Display` or [`Endpoint::redacted`].
    pub fn url(&self) -> &str {
        self.redactor.raw()
    }

    pub fn redacted(&self) -> &str {
        self.redactor.redacted()
    }

    /// Scrubs this endpoint's URL and secrets from `message`.
    pub fn sanitize(&self, message: &str) -> String {
        self.redactor.sanitize(message)
    }
}

/// The port of an authority (`user@host:port`, `[::1]:port`) as written, if it has one.
fn port_text(authority: &str) -> Option<&str> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.1,
        None => host_port.find(':').map_or("", |i| &host_port[i..]),
    };
    after_host.strip_prefix(':').filter(|p| !p.is_empty())
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.redactor.redacted())
    }
}

/// An endpoint setting as shown in an error: `key=value` unless the key looks like it holds a
/// credential (`apikey=`, `token=`, ...), then `key=***`; a stray word that is not `key=value`
/// is masked whole (it is often the rest of a URL with a key in it, after a space).
fn shown_option(ep: &Endpoint, option: &str) -> String {
    const SECRET: [&str; 7] = ["key", "token", "secret", "pass", "auth", "cred", "sig"];
    match option.split_once('=') {
        Some((k, _)) if SECRET.iter().any(|w| k.to_ascii_lowercase().contains(w)) => {
            format!("{}={}", ep.sanitize(k), crate::redact::MASK)
        }
        Some((k, v)) if !crate::redact::is_plain_value(v) => {
            format!("{}={}", ep.sanitize(k), crate::redact::MASK)
        }
        Some(_) => ep.sanitize(option),
        None => crate::redact::MASK.to_string(),
    }
}

/// Parses `ENTRY[,ENTRY...]`, where an entry is `URL [key=value ...]` (see
/// [`Endpoint::parse_entry`]) or `@FILE`: a file with one entry per line (`#` starts a comment
/// line), which keeps API keys off the command line.
pub fn parse_endpoints(rpc: &str) -> Result<Vec<Endpoint>, EndpointError> {
    let mut entries: Vec<String> = Vec::new();
    for item in rpc.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.strip_prefix('@') {
            Some(file) => {
                let path = PathBuf::from(file.trim());
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| EndpointError::File { path, source })?;
                for line in text.lines().map(str::trim) {
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    entries.extend(
                        line.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string),
                    );
                }
            }
            None => entries.push(item.to_string()),
        }
    }
    if entries.is_empty() {
        return Err(EndpointError::None);
    }
    entries.iter().map(|e| Endpoint::parse_entry(e)).collect()
}

/// An `--rpc` value that cannot be used. The URL is shown redacted; stray words after it are
/// masked.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("no RPC endpoint: pass --rpc URL or set ETH_RPC_URL")]
    None,
    #[error("invalid RPC URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid setting `{option}` for RPC endpoint {url}: {reason}")]
    BadOption {
        url: String,
        option: String,
        reason: String,
    },
    #[error("cannot read the --rpc endpoint file {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Per-endpoint settings given after the URL: `URL weight=2 rps=25 concurrency=4
/// max-calls=200 bill=calls`. Unset fields fall back to the run-wide flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointOptions {
    /// Share of the jobs relative to the other endpoints (default 1).
    pub weight: Option<u32>,
    /// Requests (or calls, see `billing`) per second.
    pub requests_per_second: Option<f64>,
    /// Requests in flight at most.
    pub max_concurrency: Option<usize>,
    /// JSON-RPC calls per batch request at most (the endpoint's batch limit, if known).
    pub max_calls: Option<usize>,
    pub billing: Option<Billing>,
}

/// Why an endpoint option was refused: the option as written and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadOption {
    pub option: String,
    pub reason: String,
}

impl EndpointOptions {
    /// Parses `key=value` words (see the type's docs).
    pub fn parse<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Self, BadOption> {
        let mut o = EndpointOptions::default();
        for w in words {
            let bad = |reason: &str| BadOption {
                option: w.to_string(),
                reason: reason.to_string(),
            };
            let Some((k, v)) = w.split_once('=') else {
                return Err(bad(
                    "expected key=value (weight, rps, concurrency, max-calls, bill)",
                ));
            };
            let int = |max: u64| -> Result<u64, BadOption> {
                match v.parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(bad(&format!("expected a whole number from 1 to {max}"))),
                }
            };
            match k {
                "weight" => o.weight = Some(int(1000)? as u32),
                "rps" | "requests-per-second" => match v.parse::<f64>() {
                    Ok(r) if r.is_finite() && r > 0.0 && r <= 1e6 => {
                        o.requests_per_second = Some(r)
                    }
                    _ => return Err(bad("expected a number of requests per second above 0")),
                },
                "concurrency" | "max-concurrency" => o.max_concurrency = Some(int(4096)? as usize),
                "max-calls" | "batch-calls" => o.max_calls = Some(int(100_000)? as usize),
                "bill" => {
                    o.billing = Some(match v {
                        "requests" | "request" => Billing::Requests,
                        "calls" | "call" => Billing::Calls,
                        _ => return Err(bad("expected bill=requests or bill=calls")),
                    })
                }
                _ => {
                    return Err(bad(
                        "unknown option (known: weight, rps, concurrency, max-calls, bill)",
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// Run-wide settings of the pool (each endpoint's own options override them).
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub requests_per_second: Option<f64>,
    pub billing: Billing,
    pub max_concurrency: Option<usize>,
    /// Requests in flight overall at most (the I/O threads): the default per-endpoint limit.
    pub threads: usize,
}

/// The state of one endpoint's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Healthy,
    Benched {
        until: Instant,
    },
    /// The bench is over; one request at a time tests it.
    Probing {
        in_flight: bool,
    },
}

/// Request latencies: count, sum, max and a log-scale histogram (four buckets per doubling)
/// for the median.
#[derive(Clone, Debug)]
struct Latency {
    count: u64,
    sum_us: u64,
    max_us: u64,
    buckets: [u64; 128],
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            count: 0,
            sum_us: 0,
            max_us: 0,
            buckets: [0; 128],
        }
    }
}

impl Latency {
    fn bucket(us: u64) -> usize {
        ((us.max(1) as f64).log2() * 4.0).floor().clamp(0.0, 127.0) as usize
    }

    fn add(&mut self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
        self.buckets[Self::bucket(us)] += 1;
    }

    /// The median, as the geometric middle of its bucket (within about 10 %).
    fn p50_us(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let half = self.count.div_ceil(2);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= half {
                return 2f64.powf((i as f64 + 0.5) / 4.0).min(self.max_us as f64);
            }
        }
        self.max_us as f64
    }

    fn report(&self) -> LatencyReport {
        let mean = if self.count == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.count as f64 / 1000.0
        };
        LatencyReport {
            mean: round3(mean),
            p50: round3(self.p50_us() / 1000.0),
            max: round3(self.max_us as f64 / 1000.0),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Retries of one endpoint by cause (serialized as an object keyed by [`Cause::name`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryCounts(pub [u64; Cause::COUNT]);

impl RetryCounts {
    pub fn get(&self, c: Cause) -> u64 {
        self.0[c.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Causes with a count, in [`Cause::ALL`] order.
    pub fn nonzero(&self) -> impl Iterator<Item = (Cause, u64)> + '_ {
        Cause::ALL
            .into_iter()
            .map(|c| (c, self.get(c)))
            .filter(|(_, n)| *n > 0)
    }
}

impl serde::Serialize for RetryCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(Cause::COUNT))?;
        for c in Cause::ALL {
            m.serialize_entry(c.name(), &self.get(c))?;
        }
        m.end()
    }
}

/// Request latency in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LatencyReport {
    pub mean: f64,
    pub p50: f64,
    pub max: f64,
}

/// What one endpoint did during a run (in the summary and the `--report` JSON).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct EndpointReport {
    /// The URL with secrets redacted.
    pub url: String,
    /// HTTP requests sent (answered or not).
    pub requests: u64,
    /// JSON-RPC calls in those requests.
    pub calls: u64,
    /// Response bytes received.
    pub bytes: u64,
    /// Requests (or calls) sent again, by cause; `http_429` and `rate_limit_rpc` did not
    /// count against `--max-retries`.
    pub retries: RetryCounts,
    /// Rate-limit answers (HTTP 429 and JSON-RPC rate-limit errors).
    pub rate_limited: u64,
    /// Requests refused as too large and split.
    pub splits: u64,
    /// The most calls per batch request this endpoint takes (configured or learned), if
    /// limited.
    pub max_batch_calls: Option<u64>,
    /// Whether it has `eth_getBlockReceipts` (`false`: receipts were fetched per transaction;
    /// `null`: never asked).
    pub block_receipts: Option<bool>,
    /// Times it was benched for failing repeatedly.
    pub benched: u64,
    pub latency_ms: LatencyReport,
}

impl EndpointReport {
    /// One line for the run summary.
    pub fn summary_line(&self) -> String {
        let mut s = format!(
            "endpoint {}: {} requests, {} calls, {:.1} MB",
            self.url,
            self.requests,
            self.calls,
            self.bytes as f64 / 1e6
        );
        let total = self.retries.total();
        if total > 0 {
            let parts: Vec<String> = self
                .retries
                .nonzero()
                .map(|(c, n)| format!("{} {n}", c.name()))
                .collect();
            s.push_str(&format!("; retries {total} ({})", parts.join(", ")));
        } else {
            s.push_str("; no retries");
        }
        if self.rate_limited > 0 {
            s.push_str(&format!("; rate limited {}x", self.rate_limited));
        }
        if self.splits > 0 {
            s.push_str(&format!("; batches split {}x", self.splits));
        }
        if let Some(m) = self.max_batch_calls {
            s.push_str(&format!(", at most {m} calls per batch"));
        }
        if self.block_receipts == Some(false) {
            s.push_str("; receipts per transaction (no eth_getBlockReceipts)");
        }
        if self.benched > 0 {
            s.push_str(&format!("; benched {}x", self.benched));
        }
        s.push_str(&format!(
            "; latency mean {:.1} ms, p50 {:.1} ms, max {:.1} ms",
            self.latency_ms.mean, self.latency_ms.p50, self.latency_ms.max
        ));
        s
    }
}

#[derive(Debug, Default, Clone)]
struct Stats {
    requests: u64,
    calls: u64,
    bytes: u64,
    retries: RetryCounts,
    rate_limited: u64,
    splits: u64,
    benched: u64,
    latency: Latency,
}

/// One endpoint's live state.
#[derive(Debug)]
struct Ep {
    weight: i64,
    /// Smooth weighted round-robin credit.
    current: i64,
    health: Health,
    failures_in_a_row: u32,
    benches_in_a_row: u32,
    paused_until: Option<Instant>,
    rate_limits_in_a_row: u32,
    in_flight: usize,
    adaptive: Adaptive,
    pacer: Option<Pacer>,
    billing: Billing,
    /// Calls per batch request at most (`usize::MAX`: no limit known).
    max_calls: usize,
    block_receipts: Option<bool>,
    stats: Stats,
}

impl Ep {
    /// Whether a request may be sent now (turns an expired bench into probing).
    fn available(&mut self, now: Instant) -> bool {
        if let Health::Benched { until } = self.health {
            if now >= until {
                self.health = Health::Probing { in_flight: false };
            }
        }
        match self.health {
            Health::Benched { .. } | Health::Probing { in_flight: true } => return false,
            Health::Healthy | Health::Probing { in_flight: false } => {}
        }
        if self.paused_until.is_some_and(|t| now < t) {
            return false;
        }
        self.in_flight < self.adaptive.concurrency()
    }

    /// When this endpoint may become available without any request finishing.
    fn wakes_at(&self) -> Option<Instant> {
        let bench = match self.health {
            Health::Benched { until } => Some(until),
            _ => None,
        };
        match (bench, self.paused_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Which endpoint a retry prefers: another one than `avoid` that has not failed lately, at
/// once; otherwise any, from `not_before` on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Preference {
    pub avoid: Option<usize>,
    pub not_before: Option<Instant>,
}

/// The endpoints of a run (see the module docs).
#[derive(Debug)]
pub struct Pool {
    names: Vec<String>,
    eps: Mutex<Vec<Ep>>,
    /// Signalled whenever a request finishes or an endpoint's state changes.
    changed: Condvar,
}

/// The right to send one request to one endpoint; dropping it frees the slot.
#[must_use]
pub struct Lease<'p> {
    pool: &'p Pool,
    ep: usize,
    probe: bool,
}

impl Pool {
    /// `endpoints`: (redacted URL, options) per endpoint.
    pub fn new(endpoints: Vec<(String, EndpointOptions)>, cfg: &PoolConfig) -> Pool {
        let mut names = Vec::with_capacity(endpoints.len());
        let mut eps = Vec::with_capacity(endpoints.len());
        for (name, o) in endpoints {
            names.push(name);
            let conc = o
                .max_concurrency
                .or(cfg.max_concurrency)
                .unwrap_or(cfg.threads)
                .max(1);
            eps.push(Ep {
                weight: i64::from(o.weight.unwrap_or(1).max(1)),
                current: 0,
                health: Health::Healthy,
                failures_in_a_row: 0,
                benches_in_a_row: 0,
                paused_until: None,
                rate_limits_in_a_row: 0,
                in_flight: 0,
                adaptive: Adaptive::new(conc),
                pacer: o
                    .requests_per_second
                    .or(cfg.requests_per_second)
                    .map(Pacer::new),
                billing: o.billing.unwrap_or(cfg.billing),
                max_calls: o.max_calls.unwrap_or(usize::MAX).max(1),
                block_receipts: None,
                stats: Stats::default(),
            });
        }
        Pool {
            names,
            eps: Mutex::new(eps),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Ep>> {
        self.eps.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The redacted URL of endpoint `i`.
    pub fn name(&self, i: usize) -> &str {
        self.names.get(i).map(String::as_str).unwrap_or("?")
    }

    /// Waits for an endpoint that can take a request now (see [`Preference`]) and reserves a
    /// slot on it. `None` once `stopped()` says so.
    pub fn acquire(&self, pref: Preference, stopped: &dyn Fn() -> bool) -> Option<Lease<'_>> {
        let mut eps = self.lock();
        loop {
            if stopped() {
                return None;
            }
            let now = Instant::now();
            let backing_off = pref.not_before.is_some_and(|t| now < t);
            let strict = if backing_off { pref.avoid } else { None };
            let chosen = if backing_off {
                // Only another endpoint that has not failed lately may take it before the
                // backoff is over.
                pick(&mut eps, now, |i, e| {
                    Some(i) != strict && e.failures_in_a_row == 0 && e.health == Health::Healthy
                })
            } else {
                pick(&mut eps, now, |_, _| true)
            };
            if let Some(i) = chosen {
                let e = &mut eps[i];
                e.in_flight += 1;
                let probe = matches!(e.health, Health::Probing { .. });
                if probe {
                    e.health = Health::Probing { in_flight: true };
                }
                return Some(Lease {
                    pool: self,
                    ep: i,
                    probe,
                });
            }
            let mut wake = eps.iter().filter_map(Ep::wakes_at).min();
            if backing_off {
                wake = wake.min(pref.not_before).or(pref.not_before);
            }
            let wait = wake
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(TICK)
                .clamp(Duration::from_millis(1), TICK);
            eps = self
                .changed
                .wait_timeout(eps, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The most calls endpoint `i` takes in one batch request (`usize::MAX`: unknown).
    /// Where the endpoint bills per call, no request carries more calls than its rate allows
    /// in one second.
    pub fn max_calls(&self, i: usize) -> usize {
        let eps = self.lock();
        let e = &eps[i];
        match (&e.pacer, e.billing) {
            (Some(p), Billing::Calls) => e.max_calls.min((p.rate().floor() as usize).max(1)),
            _ => e.max_calls,
        }
    }

    /// Whether endpoint `i` has `eth_getBlockReceipts` (`None`: not known yet).
    pub fn block_receipts(&self, i: usize) -> Option<bool> {
        self.lock()[i].block_receipts
    }

    /// Records what an answer showed about `eth_getBlockReceipts`; `true` if that is news.
    pub fn set_block_receipts(&self, i: usize, supported: bool) -> bool {
        let mut eps = self.lock();
        let changed = eps[i].block_receipts != Some(supported);
        eps[i].block_receipts = Some(supported);
        changed
    }

    /// Counts a request of `calls` calls sent to `i`.
    pub fn sent(&self, i: usize, calls: usize) {
        let mut eps = self.lock();
        eps[i].stats.requests += 1;
        eps[i].stats.calls += calls as u64;
    }

    /// Counts a finished exchange (answered or failed) and its response bytes.
    pub fn finished(&self, i: usize, latency: Duration, bytes: usize) {
        let mut eps = self.lock();
        eps[i].stats.latency.add(latency);
        eps[i].stats.bytes += bytes as u64;
    }

    /// A request to `i` succeeded: it is healthy, and its adaptive limits grow.
    pub fn succeeded(&self, i: usize) {
        let mut eps = self.lock();
        let e = &mut eps[i];
        e.failures_in_a_row = 0;
        e.rate_limits_in_a_row = 0;
        if matches!(e.health, Health::Probing { .. }) {
            e.health = Health::Healthy;
            e.benches_in_a_row = 0;
        }
        e.adaptive.succeeded();
        drop(eps);
        self.changed.notify_all();
    }

    /// A request to `i` failed for `cause` and will be retried. Returns how long `i` was
    /// benched for, if this failure benched it.
    pub fn failed(&self, i: usize, cause: Cause) -> Option<Duration> {
        let mut eps = self.lock();
        let now = Instant::now();
        eps[i].stats.retries.0[cause.index()] += 1;
        eps[i].failures_in_a_row += 1;
        let probing = matches!(eps[i].health, Health::Probing { .. });
        let others_healthy = eps
            .iter()
            .enumerate()
            .any(|(j, e)| j != i && e.health == Health::Healthy);
        let bench = (probing || eps[i].failures_in_a_row >= BENCH_AFTER) && others_healthy;
        let e = &mut eps[i];
        if !bench {
            if probing {
                // No other endpoint to turn to: keep using this one.
                e.health = Health::Healthy;
            }
            return None;
        }
        let d = FIRST_BENCH
            .saturating_mul(1u32 << e.benches_in_a_row.min(10))
            .min(MAX_BENCH);
        e.health = Health::Benched { until: now + d };
        e.benches_in_a_row += 1;
        e.failures_in_a_row = 0;
        e.stats.benched += 1;
        drop(eps);
        self.changed.notify_all();
        Some(d)
    }

    /// Counts an answer the decode stage rejected (a retry of the whole job) against `i`.
    pub fn rejected(&self, i: usize) -> Option<Duration> {
        self.failed(i, Cause::Rejected)
    }

    /// `i` answered with a rate limit: pause it (at least `retry_after`) and halve its
    /// concurrency and rate. Returns the pause.
    pub fn rate_limited(
        &self,
        i: usize,
        cause: Cause,
        retry_after: Option<Duration>,
        salt: u64,
    ) -> Duration {
        let mut eps = self.lock();
        let e = &mut eps[i];
        e.stats.retries.0[cause.index()] += 1;
        e.stats.rate_limited += 1;
        e.rate_limits_in_a_row += 1;
        let pause =
            rate_limit_pause(e.rate_limits_in_a_row, salt).max(retry_after.unwrap_or_default());
        let until = Instant::now() + pause;
        e.paused_until = Some(e.paused_until.map_or(until, |t| t.max(until)));
        e.adaptive.rate_limited();
        if matches!(e.health, Health::Probing { .. }) {
            // It answered: it is alive.
            e.health = Health::Healthy;
            e.benches_in_a_row = 0;
        }
        drop(eps);
        self.changed.notify_all();
        pause
    }

    /// `i` refused a request of `calls` calls as too large, answering `answered` of them (a
    /// response-size cap answers the calls that fit): from now on it gets at most half as
    /// many, or as many as fitted if that is more. Returns the new limit if it changed.
    pub fn too_large(&self, i: usize, calls: usize, answered: usize) -> Option<usize> {
        let mut eps = self.lock();
        let e = &mut eps[i];
        e.stats.splits += 1;
        let limit = (calls / 2)
            .max(answered.min(calls.saturating_sub(1)))
            .max(1);
        if limit < e.max_calls {
            e.max_calls = limit;
            Some(limit)
        } else {
            None
        }
    }

    /// Counts an extra retry cause against `i` without touching its health (e.g. a null
    /// receipt found while assembling).
    pub fn count(&self, i: usize, cause: Cause) {
        self.lock()[i].stats.retries.0[cause.index()] += 1;
    }

    /// Everything each endpoint did so far.
    pub fn report(&self) -> Vec<EndpointReport> {
        let eps = self.lock();
        eps.iter()
            .zip(&self.names)
            .map(|(e, name)| EndpointReport {
                url: name.clone(),
                requests: e.stats.requests,
                calls: e.stats.calls,
                bytes: e.stats.bytes,
                retries: e.stats.retries.clone(),
                rate_limited: e.stats.rate_limited,
                splits: e.stats.splits,
                max_batch_calls: (e.max_calls != usize::MAX).then_some(e.max_calls as u64),
                block_receipts: e.block_receipts,
                benched: e.stats.benched,
                latency_ms: e.stats.latency.report(),
            })
            .collect()
    }
}

/// Smooth weighted round-robin over the available endpoints that pass `ok`.
fn pick(eps: &mut [Ep], now: Instant, ok: impl Fn(usize, &Ep) -> bool) -> Option<usize> {
    let mut total = 0i64;
    let mut best: Option<usize> = None;
    for i in 0..eps.len() {
        if !eps[i].available(now) || !ok(i, &eps[i]) {
            continue;
        }
        eps[i].current += eps[i].weight;
        total += eps[i].weight;
        if best.is_none_or(|b| eps[i].current > eps[b].current) {
            best = Some(i);
        }
    }
    let b = best?;
    eps[b].current -= total;
    Some(b)
}

impl Lease<'_> {
    pub fn endpoint(&self) -> usize {
        self.ep
    }

    /// Waits until the endpoint's rate limit lets a request of `calls` calls go. `false` if
    /// `stopped()` said so first.
    pub fn pace(&self, calls: usize, stopped: &dyn Fn() -> bool) -> bool {
        let start = {
            let mut eps = self.pool.lock();
            let e = &mut eps[self.ep];
            let cost = match e.billing {
                Billing::Requests => 1.0,
                Billing::Calls => calls.max(1) as f64,
            };
            let factor = e.adaptive.factor();
            match &mut e.pacer {
                Some(p) => p.reserve(cost, factor, Instant::now()),
                None => return true,
            }
        };
        sleep_until(start, stopped)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut eps = self.pool.lock();
        let e = &mut eps[self.ep];
        e.in_flight = e.in_flight.saturating_sub(1);
        if self.probe {
            if let Health::Probing { in_flight: true } = e.health {
                e.health = Health::Probing { in_flight: false };
            }
        }
        drop(eps);
        self.pool.changed.notify_all();
    }
}

/// Sleeps until `t` in [`TICK`] slices; `false` if `stopped()` turned true first.
pub fn sleep_until(t: Instant, stopped: &dyn Fn() -> bool) -> bool {
    loop {
        if stopped() {
            return false;
        }
        let now = Instant::now();
        if now >= t {
            return true;
        }
        std::thread::sleep((t - now).min(TICK));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(weights: &[u32], threads: usize) -> Pool {
        Pool::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    (
                        format!("http://e{i}/"),
                        EndpointOptions {
                            weight: Some(*w),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            &PoolConfig {
                requests_per_second: None,
                billing: Billing::Requests,
                max_concurrency: None,
                threads,
            },
        )
    }

    fn never() -> impl Fn() -> bool {
        || false
    }

    fn take(p: &Pool, pref: Preference) -> usize {
        p.acquire(pref, &never()).unwrap().endpoint()
    }

    #[test]
    fn options_parse() {
        let o = EndpointOptions::parse(
            "weight=3 rps=12.5 concurrency=4 max-calls=200 bill=calls".split(' '),
        )
        .unwrap();
        assert_eq!(o.weight, Some(3));
        assert_eq!(o.requests_per_second, Some(12.5));
        assert_eq!(o.max_concurrency, Some(4));
        assert_eq!(o.max_calls, Some(200));
        assert_eq!(o.billing, Some(Billing::Calls));
        for bad in [
            "weight",
            "weight=0",
            "rps=-1",
            "rps=x",
            "bill=bytes",
            "colour=red",
        ] {
            let e = EndpointOptions::parse([bad]).unwrap_err();
            assert_eq!(e.option, bad);
        }
    }

    #[test]
    fn weighted_round_robin() {
        let p = pool(&[1, 1, 1], 8);
        let picks: Vec<usize> = (0..6).map(|_| take(&p, Preference::default())).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        let p = pool(&[3, 1], 8);
        let picks: Vec<usize> = (0..8).map(|_| take(&p, Preference::default())).collect();
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 6, "{picks:?}");
    }

    #[test]
    fn concurrency_limit_blocks_until_a_lease_drops() {
        let p = Pool::new(
            vec![(
                "e".into(),
                EndpointOptions {
                    max_concurrency: Some(2),
                    ..Default::default()
                },
            )],
            &PoolConfig {
                requests_per_second: None,
                billing: Billing::Requests,
                max_concurrency: None,
                threads: 8,
            },
        );
        let a = p.acquire(Preference::default(), &never()).unwrap();
        let _b = p.acquire(Preference::default(), &never()).unwrap();
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let t = Instant::now();
                let _c = p.acquire(Preference::default(), &never()).unwrap();
                t.elapsed()
            });
            std::thread::sleep(Duration::from_millis(150));
            drop(a);
            assert!(h.join().unwrap() >= Duration::from_millis(100));
        });
        // A stop ends the wait.
        let stop = || true;
        assert!(p.acquire(Preference::default(), &stop).is_none());
    }

    #[test]
    fn failing_endpoint_is_benched_then_probed() {
        let p = pool(&[1, 1], 8);
        for _ in 0..BENCH_AFTER - 1 {
            assert_eq!(p.failed(0, Cause::Transport), None);
        }
        assert_eq!(p.failed(0, Cause::Transport), Some(FIRST_BENCH));
        // Only endpoint 1 is handed out while 0 sits on the bench.
        for _ in 0..5 {
            assert_eq!(take(&p, Preference::default()), 1);
        }
        assert_eq!(p.report()[0].benched, 1);
        assert_eq!(p.report()[0].retries.get(Cause::Transport), 3);
        // The last healthy endpoint is never benched.
        for _ in 0..10 {
            assert_eq!(p.failed(1, Cause::Http), None);
        }
        // Once the bench is over, one probe goes to 0; a failed probe benches it for longer.
        {
            let mut eps = p.lock();
            eps[0].health = Health::Benched {
                until: Instant::now(),
            };
            eps[1].failures_in_a_row = 0;
        }
        // Four leases at once: exactly one probe goes to 0.
        let leases: Vec<Lease> = (0..4)
            .map(|_| p.acquire(Preference::default(), &never()).unwrap())
            .collect();
        assert_eq!(leases.iter().filter(|l| l.endpoint() == 0).count(), 1);
        drop(leases);
        assert_eq!(p.failed(0, Cause::Transport), Some(FIRST_BENCH * 2));
        // A successful probe makes it healthy again.
        p.lock()[0].health = Health::Probing { in_flight: false };
        p.succeeded(0);
        let picks: Vec<usize> = (0..4).map(|_| take(&p, Preference::default())).collect();
        assert!(picks.contains(&0), "{picks:?}");
    }

    #[test]
    fn retry_prefers_another_healthy_endpoint_then_waits() {
        let p = pool(&[1, 1], 8);
        let later = Instant::now() + Duration::from_millis(200);
        let pref = Preference {
            avoid: Some(0),
            not_before: Some(later),
        };
        assert_eq!(take(&p, pref), 1);
        // Endpoint 1 failed too: nothing may be used before the backoff is over.
        p.failed(1, Cause::Http);
        let t = Instant::now();
        let _ = take(&p, pref);
        assert!(Instant::now() >= later, "{:?}", t.elapsed());
    }

    #[test]
    fn rate_limit_pauses_and_halves() {
        let p = pool(&[1, 1], 8);
        let pause = p.rate_limited(0, Cause::Http429, Some(Duration::from_millis(300)), 1);
        assert!(pause >= Duration::from_millis(300));
        for _ in 0..3 {
            assert_eq!(take(&p, Preference::default()), 1);
        }
        {
            let eps = p.lock();
            assert_eq!(eps[0].adaptive.concurrency(), 4);
        }
        let r = &p.report()[0];
        assert_eq!((r.rate_limited, r.retries.get(Cause::Http429)), (1, 1));
    }

    #[test]
    fn too_large_halves_and_remembers() {
        let p = pool(&[1], 4);
        assert_eq!(p.max_calls(0), usize::MAX);
        assert_eq!(p.too_large(0, 20, 0), Some(10));
        assert_eq!(p.too_large(0, 40, 0), None);
        // A response-size cap answered 7 of 10: 7 fit.
        assert_eq!(p.too_large(0, 10, 7), Some(7));
        assert_eq!(p.too_large(0, 3, 2), Some(2));
        assert_eq!(p.too_large(0, 2, 2), Some(1));
        assert_eq!(p.max_calls(0), 1);
        assert_eq!(p.report()[0].splits, 5);
        assert_eq!(p.report()[0].max_batch_calls, Some(1));
    }

    #[test]
    fn pacing_spaces_requests() {
        let p = Pool::new(
            vec![("e".into(), EndpointOptions::default())],
            &PoolConfig {
                requests_per_second: Some(20.0),
                billing: Billing::Calls,
                max_concurrency: None,
                threads: 4,
            },
        );
        let t = Instant::now();
        for _ in 0..3 {
            let l = p.acquire(Preference::default(), &never()).unwrap();
            assert!(l.pace(2, &never()));
        }
        // A request never carries more calls than one second allows.
        assert_eq!(p.max_calls(0), 20);
        // 3 requests of 2 calls at 20 calls/s: the third starts 200 ms after the first.
        assert!(
            t.elapsed() >= Duration::from_millis(195),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn latency_summary() {
        let mut l = Latency::default();
        for ms in [10u64, 11, 12, 13, 200] {
            l.add(Duration::from_millis(ms));
        }
        let r = l.report();
        assert_eq!(r.max, 200.0);
        assert!((r.mean - 49.2).abs() < 1e-9, "{r:?}");
        assert!((11.0..=14.0).contains(&r.p50), "{r:?}");
    }
}
