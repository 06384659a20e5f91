//! Run counters and what the user sees while a run goes: counters are merged per batch
//! (never per row), request counters per HTTP request (in total and per endpoint, with a
//! latency histogram, for `/metrics`); progress is an indicatif bar on a terminal (blocks
//! done/total, blocks/s, tx/s, ETA), otherwise one log line every few seconds; the final
//! [`RunReport`] is printed as a summary and can be written as JSON (`--report FILE`).

use crate::msg::BatchCounts;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters the I/O threads bump once per HTTP request.
#[derive(Debug, Default)]
pub struct RequestCounters {
    /// Successful HTTP requests (2xx with a body).
    pub requests: AtomicU64,
    /// Failed requests and rejected answers that were sent again.
    pub retries: AtomicU64,
    /// Response bytes received, retried requests included.
    pub http_bytes: AtomicU64,
    /// Per endpoint (same order as the configured endpoints); empty unless built with
    /// [`RequestCounters::for_endpoints`], and then [`RequestCounters::observe`] is a no-op.
    pub endpoints: Vec<EndpointStats>,
    /// Pipeline requests that failed in a row, over every endpoint (0 after a clean one).
    pub failing: AtomicU64,
    /// The last failure's message (redacted), for `/healthz`.
    pub last_failure: Mutex<Option<String>>,
}

/// Upper bounds (seconds) of the request latency histogram buckets; a last `+Inf` bucket
/// follows.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What a request was for, a label of the per-endpoint counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// A pipeline batch (blocks and receipts of a job).
    Batch = 0,
    /// A single call of `ethetl stream` (`eth_blockNumber`, a block header for a reorg check).
    Head = 1,
}

impl CallKind {
    pub const ALL: [CallKind; 2] = [CallKind::Batch, CallKind::Head];

    pub fn label(self) -> &'static str {
        match self {
            CallKind::Batch => "batch",
            CallKind::Head => "head",
        }
    }
}

/// Requests of one kind to one endpoint.
#[derive(Debug, Default)]
pub struct CallStats {
    /// Requests that got an answer or failed.
    pub requests: AtomicU64,
    /// Of those, failed ones (transport errors, HTTP errors).
    pub errors: AtomicU64,
    /// Response bytes of successful requests.
    pub bytes: AtomicU64,
    /// Summed latency in microseconds.
    pub latency_micros: AtomicU64,
    /// Requests per latency bucket ([`LATENCY_BUCKETS`], then `+Inf`), not cumulative.
    pub buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
}

/// Per-endpoint request counters.
#[derive(Debug)]
pub struct EndpointStats {
    /// The endpoint URL, redacted.
    pub name: String,
    /// Indexed by [`CallKind`].
    pub calls: [CallStats; 2],
}

impl RequestCounters {
    /// Counters with per-endpoint statistics for `names` (redacted URLs, in endpoint order).
    pub fn for_endpoints(names: impl IntoIterator<Item = String>) -> RequestCounters {
        RequestCounters {
            endpoints: names
                .into_iter()
                .map(|name| EndpointStats {
                    name,
                    calls: Default::default(),
                })
                .collect(),
            ..Default::default()
        }
    }

    pub fn add_request(&self, bytes: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.http_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one pipeline request ([`RequestCounters::observe`]) and whether requests are
    /// failing in a row.
    pub fn exchanged(&self, endpoint: usize, latency: Duration, clean: Option<u64>) {
        self.observe(endpoint, CallKind::Batch, latency, clean);
        if clean.is_some() {
            self.failing.store(0, Ordering::Relaxed);
        } else {
            self.failing.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Remembers the last failure's message.
    pub fn failed(&self, message: String) {
        if let Ok(mut m) = self.last_failure.lock() {
            *m = Some(message);
        }
    }

    /// Records one request to endpoint `endpoint`: how long it took and the response size
    /// (`None`: the request failed).
    pub fn observe(
        &self,
        endpoint: usize,
        kind: CallKind,
        latency: Duration,
        response_bytes: Option<u64>,
    ) {
        let Some(ep) = self.endpoints.get(endpoint) else {
            return;
        };
        let c = &ep.calls[kind as usize];
        c.requests.fetch_add(1, Ordering::Relaxed);
        match response_bytes {
            Some(bytes) => {
                c.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            None => {
                c.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        c.latency_micros.fetch_add(micros, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        c.buckets[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// How often the plain (non-terminal) progress line is printed.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// Progress display and warnings, shared by every stage (`warn`) and driven by the sink thread
/// (`update`). Quiet mode shows nothing but still counts.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    /// Periodic progress lines (off for runs embedded in `ethetl stream`, which prints its own).
    lines: bool,
    total_blocks: u64,
    started: Instant,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// A bar on a terminal (stderr), log lines otherwise, nothing when `quiet`.
    pub fn new(total_blocks: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total_blocks), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {pos}/{len} blocks, {per_sec}, eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            quiet,
            lines: true,
            total_blocks,
            started: Instant::now(),
            last_log: Mutex::new(Instant::now()),
        }
    }

    /// Shows nothing.
    pub fn hidden(total_blocks: u64) -> Progress {
        Progress::new(total_blocks, true)
    }

    /// Shows warnings and information lines only (unless `quiet`): no bar, no progress lines.
    pub fn messages_only(total_blocks: u64, quiet: bool) -> Progress {
        let mut p = Progress::new(total_blocks, true);
        p.quiet = quiet;
        p.lines = false;
        p
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Prints a warning line (above the bar on a terminal) unless quiet.
    pub fn warn(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(crate::term::escape_controls(&format!("warning: {msg}"))),
            None => crate::say!("warning: {msg}"),
        }
    }

    /// Prints an informational line unless quiet.
    pub fn info(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(crate::term::escape_controls(msg)),
            None => crate::say!("{msg}"),
        }
    }

    /// Called by the sink thread after it wrote batches: `written` blocks so far.
    pub fn update(&self, written: u64, totals: &BatchCounts, checkpoint: Option<u64>) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        if let Some(bar) = &self.bar {
            bar.set_position(written);
            bar.set_message(format!(
                "{} tx, {:.0} tx/s",
                totals.transactions,
                totals.transactions as f64 / secs
            ));
            return;
        }
        if self.quiet || !self.lines {
            return;
        }
        let Ok(mut last) = self.last_log.lock() else {
            return;
        };
        if last.elapsed() < LOG_EVERY {
            return;
        }
        *last = Instant::now();
        let pct = if self.total_blocks == 0 {
            100.0
        } else {
            100.0 * written as f64 / self.total_blocks as f64
        };
        let cp = checkpoint
            .map(|c| format!(", checkpoint {c}"))
            .unwrap_or_default();
        let rate = written as f64 / secs;
        let eta = if rate > 0.0 && written < self.total_blocks {
            format!(
                ", eta {}",
                eta_text((self.total_blocks - written) as f64 / rate)
            )
        } else {
            String::new()
        };
        crate::say!(
            "progress: {written}/{} blocks ({pct:.1}%), {rate:.0} blocks/s, {} tx, {:.0} tx/s{eta}{cp}",
            self.total_blocks,
            totals.transactions,
            totals.transactions as f64 / secs,
        );
    }

    /// Removes the bar (before the summary is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A duration in seconds as `1h02m03s`, `2m03s` or `3s`.
pub fn eta_text(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs.round() as u64
    } else {
        0
    };
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// The outcome of a run, printed as a summary and written as JSON by `--report`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RunReport {
    /// First block of the range this run worked on (after a resume: the block after the
    /// checkpoint).
    pub first_block: u64,
    /// Last block of the requested range, inclusive.
    pub last_block: u64,
    /// Blocks written to the sink.
    pub blocks: u64,
    pub transactions: u64,
    pub logs: u64,
    pub token_transfers: u64,
    pub receipts: u64,
    /// Transfer-like logs that could not be decoded and were skipped.
    pub malformed_transfers: u64,
    /// JSON-RPC response bytes received (retries included).
    pub rpc_bytes: u64,
    /// Serialized row bytes handed to the output.
    pub output_bytes: u64,
    pub requests: u64,
    pub retries: u64,
    pub elapsed_secs: f64,
    /// The last block N such that N and every block before it in the range are durable.
    pub checkpoint: Option<u64>,
    /// Whether the run was stopped by a signal (or a stop flag) before the end of the range.
    pub interrupted: bool,
    /// Per-endpoint requests, retries by cause, rate limits, splits and latency.
    pub endpoints: Vec<crate::rpc::endpoints::EndpointReport>,
}

impl RunReport {
    pub fn blocks_per_sec(&self) -> f64 {
        self.blocks as f64 / self.elapsed_secs.max(1e-9)
    }

    pub fn tx_per_sec(&self) -> f64 {
        self.transactions as f64 / self.elapsed_secs.max(1e-9)
    }

    /// The multi-line summary printed on stderr at the end (one more line per endpoint).
    pub fn summary(&self) -> String {
        let mut s = self.totals_summary();
        for e in &self.endpoints {
            s.push('\n');
            s.push_str(&e.summary_line());
        }
        s
    }

    fn totals_summary(&self) -> String {
        format!(
            "blocks {}..={}: {} blocks, {} transactions, {} logs, {} token transfers, {} receipts\n\
             skipped {} malformed transfer logs\n\
             RPC: {:.1} MB in {} requests, {} retries; output: {:.1} MB\n\
             elapsed {:.2} s: {:.1} blocks/s, {:.1} tx/s",
            self.first_block,
            self.last_block,
            self.blocks,
            self.transactions,
            self.logs,
            self.token_transfers,
            self.receipts,
            self.malformed_transfers,
            self.rpc_bytes as f64 / 1e6,
            self.requests,
            self.retries,
            self.output_bytes as f64 / 1e6,
            self.elapsed_secs,
            self.blocks_per_sec(),
            self.tx_per_sec(),
        )
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        sonic_rs::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub(crate) fn absorb(&mut self, c: &BatchCounts) {
        self.blocks += c.blocks;
        self.transactions += c.transactions;
        self.logs += c.logs;
        self.token_transfers += c.token_transfers;
        self.receipts += c.receipts;
        self.malformed_transfers += c.malformed_transfers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonic_rs::JsonValueTrait;

    #[test]
    fn report_json_and_summary() {
        let mut r = RunReport {
            first_block: 10,
            last_block: 19,
            elapsed_secs: 2.0,
            ..Default::default()
        };
        r.absorb(&BatchCounts {
            blocks: 10,
            transactions: 30,
            logs: 7,
            ..Default::default()
        });
        r.absorb(&BatchCounts {
            transactions: 10,
            ..Default::default()
        });
        assert_eq!(r.transactions, 40);
        assert_eq!(r.tx_per_sec(), 20.0);
        let v: sonic_rs::Value = sonic_rs::from_str(&r.to_json()).unwrap();
        assert_eq!(v["transactions"].as_u64(), Some(40));
        assert!(v["checkpoint"].is_null());
        assert!(r.summary().contains("40 transactions"));
    }
}
