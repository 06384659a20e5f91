//! Run counters and what the user sees while a run goes: counters are merged per batch
//! (never per row), request counters per HTTP request; progress is an indicatif bar on a
//! terminal, otherwise one log line every few seconds; the final [`RunReport`] is printed as a
//! summary and can be written as JSON (`--report FILE`).

use crate::pipeline::msg::BatchCounts;
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
}

impl RequestCounters {
    pub fn add_request(&self, bytes: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.http_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// How often the plain (non-terminal) progress line is printed.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// Progress display and warnings, shared by every stage (`warn`) and driven by the sink thread
/// (`update`). Quiet mode shows nothing but still counts.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
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
            total_blocks,
            started: Instant::now(),
            last_log: Mutex::new(Instant::now()),
        }
    }

    /// Shows nothing.
    pub fn hidden(total_blocks: u64) -> Progress {
        Progress::new(total_blocks, true)
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
            Some(bar) => bar.println(format!("warning: {msg}")),
            None => eprintln!("warning: {msg}"),
        }
    }

    /// Prints an informational line unless quiet.
    pub fn info(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    /// Called by the sink thread after it wrote batches: `written` blocks so far.
    pub fn update(&self, written: u64, totals: &BatchCounts, checkpoint: Option<u64>) {
        if let Some(bar) = &self.bar {
            bar.set_position(written);
            bar.set_message(format!("{} tx", totals.transactions));
            return;
        }
        if self.quiet {
            return;
        }
        let Ok(mut last) = self.last_log.lock() else {
            return;
        };
        if last.elapsed() < LOG_EVERY {
            return;
        }
        *last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = if self.total_blocks == 0 {
            100.0
        } else {
            100.0 * written as f64 / self.total_blocks as f64
        };
        let cp = checkpoint
            .map(|c| format!(", checkpoint {c}"))
            .unwrap_or_default();
        eprintln!(
            "progress: {written}/{} blocks ({pct:.1}%), {:.0} blocks/s, {} tx{cp}",
            self.total_blocks,
            written as f64 / secs,
            totals.transactions,
        );
    }

    /// Removes the bar (before the summary is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
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
             RPC: {:.1} MB in {} requests, {} retries\n\
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
