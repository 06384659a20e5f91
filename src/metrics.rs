//! Live counters of a run (export or stream) for the `--http` stats server: rows by entity,
//! blocks and transactions, RPC requests per endpoint (shared with the pipeline's
//! [`RequestCounters`]), output delivery counters, checkpoint, head, lag, reorgs and the last
//! error. Everything is an atomic or a short-held mutex, updated per batch (never per row) and
//! read by the server thread; [`Metrics::prometheus`] renders the Prometheus text format
//! (version 0.0.4) and [`Metrics::snapshot`] the `/stats` JSON. [`MeteredSink`] wraps any
//! [`Sink`] to keep the counters up to date during an export.

use crate::checkpoint::Watermark;
use crate::msg::{DecodedBatch, Entity};
use crate::rpc::endpoints::Endpoint;
use crate::sink::{Sink, SinkError, SinkStats};
use crate::stats::{CallKind, RequestCounters, LATENCY_BUCKETS};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Marks an unset block number in an [`AtomicU64`].
const NONE: u64 = u64::MAX;

/// Samples kept for the status page's charts (one per [`SAMPLE_EVERY`]: ten minutes).
pub const HISTORY_LEN: usize = 600;
/// Pipeline requests failing in a row after which `/healthz` says unhealthy.
pub const FAILING_IN_A_ROW: u64 = 5;

/// How often the stats server samples the counters for the charts.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The window of the "recent" rates in `/stats`.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// The last error a run recovered from (or stopped on).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LastError {
    pub message: String,
    /// Unix time, seconds.
    pub unix_time: u64,
}

/// One sample of the counters, for charts.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    /// Seconds since the run started.
    t: f64,
    blocks: u64,
    transactions: u64,
    lag: Option<u64>,
}

/// Live counters of one run; see the module docs.
#[derive(Debug)]
pub struct Metrics {
    /// `export` or `stream`.
    mode: &'static str,
    started: Instant,
    started_unix: u64,
    /// RPC request counters; hand them to the pipeline so they stay live.
    pub counters: Arc<RequestCounters>,
    rows: [AtomicU64; Entity::COUNT],
    output_bytes: AtomicU64,
    blocks: AtomicU64,
    transactions: AtomicU64,
    logs: AtomicU64,
    token_transfers: AtomicU64,
    receipts: AtomicU64,
    current_block: AtomicU64,
    checkpoint_block: AtomicU64,
    head_block: AtomicU64,
    /// Export: the last block of the range.
    last_block: AtomicU64,
    reorgs: AtomicU64,
    orphaned_blocks: AtomicU64,
    max_reorg_depth: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<LastError>>,
    output: Mutex<Option<SinkStats>>,
    history: Mutex<VecDeque<Sample>>,
    /// Milliseconds since start of the last sign of life (a head poll or a written batch).
    last_ok_ms: AtomicU64,
    /// `/healthz` fails when there was no sign of life for this long (milliseconds).
    stale_after_ms: AtomicU64,
    finished: AtomicBool,
}

impl Metrics {
    /// Counters for a run of `mode` (`export` or `stream`) against `endpoints`.
    pub fn new(mode: &'static str, endpoints: &[Endpoint]) -> Arc<Metrics> {
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Arc::new(Metrics {
            mode,
            started: Instant::now(),
            started_unix,
            counters: Arc::new(RequestCounters::for_endpoints(
                endpoints.iter().map(|e| e.redacted().to_string()),
            )),
            rows: Default::default(),
            output_bytes: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            logs: AtomicU64::new(0),
            token_transfers: AtomicU64::new(0),
            receipts: AtomicU64::new(0),
            current_block: AtomicU64::new(NONE),
            checkpoint_block: AtomicU64::new(NONE),
            head_block: AtomicU64::new(NONE),
            last_block: AtomicU64::new(NONE),
            reorgs: AtomicU64::new(0),
            orphaned_blocks: AtomicU64::new(0),
            max_reorg_depth: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
            output: Mutex::new(None),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_LEN)),
            last_ok_ms: AtomicU64::new(0),
            stale_after_ms: AtomicU64::new(u64::MAX),
            finished: AtomicBool::new(false),
        })
    }

    pub fn mode(&self) -> &'static str {
        self.mode
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts a batch handed to the output: its rows by entity, their bytes, and the blocks'
    /// counters (`counts`), and makes its last block the current one.
    pub fn record_batch(&self, batch: &DecodedBatch) {
        let mut bytes = 0;
        for e in Entity::EVERY {
            let r = batch.rows(e);
            self.rows[e as usize].fetch_add(r.len() as u64, Ordering::Relaxed);
            bytes += r.data.len() as u64;
        }
        self.output_bytes.fetch_add(bytes, Ordering::Relaxed);
        let c = &batch.counts;
        self.blocks.fetch_add(c.blocks, Ordering::Relaxed);
        self.transactions
            .fetch_add(c.transactions, Ordering::Relaxed);
        self.logs.fetch_add(c.logs, Ordering::Relaxed);
        self.token_transfers
            .fetch_add(c.token_transfers, Ordering::Relaxed);
        self.receipts.fetch_add(c.receipts, Ordering::Relaxed);
        if c.blocks > 0 {
            self.current_block.store(batch.end, Ordering::Relaxed);
        }
        self.alive();
    }

    /// The last block handed to the output (moves back after a reorg).
    pub fn set_current_block(&self, block: u64) {
        self.current_block.store(block, Ordering::Relaxed);
    }

    pub fn set_checkpoint(&self, block: u64) {
        self.checkpoint_block.store(block, Ordering::Relaxed);
    }

    /// The node's head, as last polled.
    pub fn set_head(&self, block: u64) {
        self.head_block.store(block, Ordering::Relaxed);
        self.alive();
    }

    /// The last block of an export's range.
    pub fn set_last_block(&self, block: u64) {
        self.last_block.store(block, Ordering::Relaxed);
    }

    /// A reorg that orphaned `orphaned` blocks.
    pub fn record_reorg(&self, orphaned: u64) {
        self.reorgs.fetch_add(1, Ordering::Relaxed);
        self.orphaned_blocks.fetch_add(orphaned, Ordering::Relaxed);
        self.max_reorg_depth.fetch_max(orphaned, Ordering::Relaxed);
    }

    /// An error the run recovered from (or stopped on).
    pub fn record_error(&self, message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(LastError {
                message: message.to_string(),
                unix_time,
            });
        }
    }

    pub fn set_output_stats(&self, stats: Option<SinkStats>) {
        if let Ok(mut o) = self.output.lock() {
            *o = stats;
        }
    }

    /// A sign of life (for `/healthz`).
    pub fn alive(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_ok_ms.store(ms, Ordering::Relaxed);
    }

    /// `/healthz` fails after `after` without a sign of life.
    pub fn set_stale_after(&self, after: Duration) {
        let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        self.stale_after_ms.store(ms, Ordering::Relaxed);
    }

    /// The run is over (its counters will not move any more).
    pub fn set_finished(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    /// `Ok` while healthy, otherwise why not: no sign of life for too long, or the last
    /// [`FAILING_IN_A_ROW`] pipeline requests all failed (a node that answers every call with
    /// an error is alive, but the run goes nowhere).
    pub fn health(&self) -> Result<(), String> {
        if self.finished.load(Ordering::Relaxed) {
            return Ok(());
        }
        let failing = self.counters.failing.load(Ordering::Relaxed);
        if failing >= FAILING_IN_A_ROW {
            let last = self
                .counters
                .last_failure
                .lock()
                .ok()
                .and_then(|m| m.as_ref().map(|m| format!(" (last: {m})")))
                .unwrap_or_default();
            return Err(format!(
                "the last {failing} requests to the node failed{last}"
            ));
        }
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let quiet_for = now.saturating_sub(self.last_ok_ms.load(Ordering::Relaxed));
        if quiet_for > self.stale_after_ms.load(Ordering::Relaxed) {
            let last = self
                .last_error
                .lock()
                .ok()
                .and_then(|e| e.as_ref().map(|e| format!(" (last error: {})", e.message)))
                .unwrap_or_default();
            return Err(format!(
                "no progress and no answer from the node for {:.0} s{last}",
                quiet_for as f64 / 1000.0
            ));
        }
        Ok(())
    }

    fn block(a: &AtomicU64) -> Option<u64> {
        match a.load(Ordering::Relaxed) {
            NONE => None,
            b => Some(b),
        }
    }

    /// `head - current block` (the checkpoint before anything was written); unknown until
    /// both are known.
    fn lag(&self) -> Option<u64> {
        let head = Self::block(&self.head_block)?;
        let current =
            Self::block(&self.current_block).or_else(|| Self::block(&self.checkpoint_block))?;
        Some(head.saturating_sub(current))
    }

    /// Records a sample for the charts (the stats server does, every [`SAMPLE_EVERY`]).
    pub fn sample(&self) {
        let s = Sample {
            t: self.started.elapsed().as_secs_f64(),
            blocks: self.blocks.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
            lag: self.lag(),
        };
        if let Ok(mut h) = self.history.lock() {
            if h.len() == HISTORY_LEN {
                h.pop_front();
            }
            h.push_back(s);
        }
    }

    /// Blocks/s and tx/s over the last [`RATE_WINDOW`] (from the samples; since the start when
    /// there are none that old).
    fn recent_rates(&self, now: Sample) -> (f64, f64) {
        let base = self.history.lock().ok().and_then(|h| {
            h.iter()
                .find(|s| now.t - s.t <= RATE_WINDOW.as_secs_f64() + 0.5)
                .copied()
        });
        let base = base.unwrap_or(Sample {
            t: 0.0,
            blocks: 0,
            transactions: 0,
            lag: None,
        });
        let dt = now.t - base.t;
        if dt <= 0.05 {
            return (0.0, 0.0);
        }
        (
            now.blocks.saturating_sub(base.blocks) as f64 / dt,
            now.transactions.saturating_sub(base.transactions) as f64 / dt,
        )
    }

    /// The `/stats` document.
    pub fn snapshot(&self) -> StatsSnapshot {
        let uptime = self.started.elapsed().as_secs_f64();
        let blocks = self.blocks.load(Ordering::Relaxed);
        let transactions = self.transactions.load(Ordering::Relaxed);
        let (bps, tps) = self.recent_rates(Sample {
            t: uptime,
            blocks,
            transactions,
            lag: None,
        });
        let c = &self.counters;
        let mut errors = 0;
        for ep in &c.endpoints {
            for k in CallKind::ALL {
                errors += ep.calls[k as usize].errors.load(Ordering::Relaxed);
            }
        }
        StatsSnapshot {
            mode: self.mode,
            version: env!("CARGO_PKG_VERSION"),
            started_at: self.started_unix,
            uptime_secs: uptime,
            blocks_streamed: blocks,
            transactions_streamed: transactions,
            logs: self.logs.load(Ordering::Relaxed),
            token_transfers: self.token_transfers.load(Ordering::Relaxed),
            receipts: self.receipts.load(Ordering::Relaxed),
            rows: Entity::EVERY
                .iter()
                .map(|e| (e.name(), self.rows[*e as usize].load(Ordering::Relaxed)))
                .collect(),
            output_bytes: self.output_bytes.load(Ordering::Relaxed),
            current_block: Self::block(&self.current_block),
            checkpoint_block: Self::block(&self.checkpoint_block),
            head: Self::block(&self.head_block),
            last_block: Self::block(&self.last_block),
            lag: self.lag(),
            blocks_per_sec: bps,
            tx_per_sec: tps,
            avg_blocks_per_sec: blocks as f64 / uptime.max(1e-9),
            avg_tx_per_sec: transactions as f64 / uptime.max(1e-9),
            reorgs: self.reorgs.load(Ordering::Relaxed),
            orphaned_blocks: self.orphaned_blocks.load(Ordering::Relaxed),
            max_reorg_depth: self.max_reorg_depth.load(Ordering::Relaxed),
            rpc: RpcSnapshot {
                requests: c.requests.load(Ordering::Relaxed),
                retries: c.retries.load(Ordering::Relaxed),
                errors,
                response_bytes: c.http_bytes.load(Ordering::Relaxed),
            },
            output: self
                .output
                .lock()
                .ok()
                .and_then(|o| *o)
                .map(|s| OutputSnapshot {
                    sent: s.sent,
                    delivered: s.delivered,
                    failed: s.failed,
                    queued: s.queued,
                }),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            healthy: self.health().is_ok(),
            finished: self.finished.load(Ordering::Relaxed),
        }
    }

    /// The `/history` document: per sample, seconds since start, blocks/s since the previous
    /// sample, and the lag.
    pub fn history_json(&self) -> String {
        let h: Vec<Sample> = self
            .history
            .lock()
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default();
        let mut doc = History {
            interval_secs: SAMPLE_EVERY.as_secs_f64(),
            t: Vec::with_capacity(h.len()),
            blocks_per_sec: Vec::with_capacity(h.len()),
            tx_per_sec: Vec::with_capacity(h.len()),
            lag: Vec::with_capacity(h.len()),
        };
        for w in h.windows(2) {
            let dt = (w[1].t - w[0].t).max(1e-9);
            doc.t.push((w[1].t * 10.0).round() / 10.0);
            doc.blocks_per_sec
                .push(w[1].blocks.saturating_sub(w[0].blocks) as f64 / dt);
            doc.tx_per_sec
                .push(w[1].transactions.saturating_sub(w[0].transactions) as f64 / dt);
            doc.lag.push(w[1].lag);
        }
        sonic_rs::to_string(&doc).unwrap_or_else(|_| "{}".into())
    }

    /// The `/metrics` document (Prometheus text format 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut p = Prom::default();
        let snap = self.snapshot();
        p.family("ethetl_info", "gauge", "ethetl's version and what it runs.");
        p.sample(
            "ethetl_info",
            &[("version", snap.version), ("mode", self.mode)],
            1.0,
        );
        p.one(
            "ethetl_uptime_seconds",
            "gauge",
            "Seconds since the run started.",
            snap.uptime_secs,
        );
        p.family(
            "ethetl_rows_total",
            "counter",
            "Rows handed to the output, by entity.",
        );
        for e in Entity::EVERY {
            let n = self.rows[e as usize].load(Ordering::Relaxed);
            p.sample("ethetl_rows_total", &[("entity", e.name())], n as f64);
        }
        p.one(
            "ethetl_output_bytes_total",
            "counter",
            "Serialized row bytes handed to the output.",
            snap.output_bytes as f64,
        );
        for (name, help, v) in [
            (
                "ethetl_blocks_total",
                "Blocks exported.",
                snap.blocks_streamed,
            ),
            (
                "ethetl_transactions_total",
                "Transactions in the exported blocks.",
                snap.transactions_streamed,
            ),
            (
                "ethetl_logs_total",
                "Logs in the exported blocks.",
                snap.logs,
            ),
            (
                "ethetl_token_transfers_total",
                "Token transfers decoded from the exported blocks.",
                snap.token_transfers,
            ),
            (
                "ethetl_receipts_total",
                "Receipts of the exported blocks.",
                snap.receipts,
            ),
        ] {
            p.one(name, "counter", help, v as f64);
        }

        let c = &self.counters;
        p.family(
            "ethetl_rpc_requests_total",
            "counter",
            "JSON-RPC HTTP requests sent, by endpoint (redacted) and kind (batch: pipeline \
             batches; head: head polls and reorg checks).",
        );
        p.family(
            "ethetl_rpc_errors_total",
            "counter",
            "JSON-RPC HTTP requests that failed (transport error, HTTP error status, a JSON-RPC \
             error or an unusable answer in a batch).",
        );
        p.family(
            "ethetl_rpc_response_bytes_total",
            "counter",
            "JSON-RPC response bytes received.",
        );
        p.family(
            "ethetl_rpc_request_duration_seconds",
            "histogram",
            "JSON-RPC HTTP request latency, response body included.",
        );
        for ep in &c.endpoints {
            for k in CallKind::ALL {
                let s = &ep.calls[k as usize];
                let labels = [("endpoint", ep.name.as_str()), ("call", k.label())];
                p.sample_in(
                    "ethetl_rpc_requests_total",
                    &labels,
                    s.requests.load(Ordering::Relaxed) as f64,
                );
                p.sample_in(
                    "ethetl_rpc_errors_total",
                    &labels,
                    s.errors.load(Ordering::Relaxed) as f64,
                );
                p.sample_in(
                    "ethetl_rpc_response_bytes_total",
                    &labels,
                    s.bytes.load(Ordering::Relaxed) as f64,
                );
                let mut cumulative = 0u64;
                for (i, b) in s.buckets.iter().enumerate() {
                    cumulative += b.load(Ordering::Relaxed);
                    let le = LATENCY_BUCKETS
                        .get(i)
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "+Inf".into());
                    p.sample_in(
                        "ethetl_rpc_request_duration_seconds_bucket",
                        &[labels[0], labels[1], ("le", &le)],
                        cumulative as f64,
                    );
                }
                p.sample_in(
                    "ethetl_rpc_request_duration_seconds_sum",
                    &labels,
                    s.latency_micros.load(Ordering::Relaxed) as f64 / 1e6,
                );
                p.sample_in(
                    "ethetl_rpc_request_duration_seconds_count",
                    &labels,
                    cumulative as f64,
                );
            }
        }
        p.flush();
        p.one(
            "ethetl_rpc_retries_total",
            "counter",
            "Pipeline requests (and rejected answers) sent again after a failure.",
            snap.rpc.retries as f64,
        );
        if let Some(o) = snap.output {
            for (name, kind, help, v) in [
                (
                    "ethetl_output_messages_sent_total",
                    "counter",
                    "Messages handed to the output's client (Kafka).",
                    o.sent,
                ),
                (
                    "ethetl_output_messages_delivered_total",
                    "counter",
                    "Messages the output acknowledged.",
                    o.delivered,
                ),
                (
                    "ethetl_output_messages_failed_total",
                    "counter",
                    "Messages whose delivery failed.",
                    o.failed,
                ),
                (
                    "ethetl_output_queue_messages",
                    "gauge",
                    "Messages sent and not yet acknowledged.",
                    o.queued,
                ),
            ] {
                p.one(name, kind, help, v as f64);
            }
        }
        for (name, help, v) in [
            (
                "ethetl_checkpoint_block",
                "The last block N such that N and every block before it are durable.",
                snap.checkpoint_block,
            ),
            (
                "ethetl_current_block",
                "The last block handed to the output.",
                snap.current_block,
            ),
            (
                "ethetl_head_block",
                "The node's head, as last polled.",
                snap.head,
            ),
            (
                "ethetl_lag_blocks",
                "Blocks between the node's head and the current block.",
                snap.lag,
            ),
        ] {
            if let Some(v) = v {
                p.one(name, "gauge", help, v as f64);
            }
        }
        p.one(
            "ethetl_reorgs_total",
            "counter",
            "Chain reorganisations that orphaned exported blocks.",
            snap.reorgs as f64,
        );
        p.one(
            "ethetl_orphaned_blocks_total",
            "counter",
            "Exported blocks orphaned by reorgs (one reorg row each).",
            snap.orphaned_blocks as f64,
        );
        p.one(
            "ethetl_reorg_max_depth_blocks",
            "gauge",
            "The deepest reorg seen, in orphaned blocks.",
            snap.max_reorg_depth as f64,
        );
        p.one(
            "ethetl_errors_total",
            "counter",
            "Errors the run recovered from by trying again (see /stats last_error).",
            snap.errors as f64,
        );
        p.one(
            "ethetl_healthy",
            "gauge",
            "1 while /healthz answers 200.",
            if snap.healthy { 1.0 } else { 0.0 },
        );
        p.out
    }
}

/// The `/stats` JSON document.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StatsSnapshot {
    pub mode: &'static str,
    pub version: &'static str,
    /// Unix time the run started.
    pub started_at: u64,
    pub uptime_secs: f64,
    /// Blocks handed to the output.
    pub blocks_streamed: u64,
    /// Transactions in those blocks.
    pub transactions_streamed: u64,
    pub logs: u64,
    pub token_transfers: u64,
    pub receipts: u64,
    /// Rows handed to the output, by entity name.
    pub rows: BTreeMap<&'static str, u64>,
    pub output_bytes: u64,
    pub current_block: Option<u64>,
    pub checkpoint_block: Option<u64>,
    pub head: Option<u64>,
    /// Export: the last block of the range.
    pub last_block: Option<u64>,
    /// `head - current_block`.
    pub lag: Option<u64>,
    /// Over the last ten seconds.
    pub blocks_per_sec: f64,
    pub tx_per_sec: f64,
    /// Since the start.
    pub avg_blocks_per_sec: f64,
    pub avg_tx_per_sec: f64,
    pub reorgs: u64,
    pub orphaned_blocks: u64,
    pub max_reorg_depth: u64,
    pub rpc: RpcSnapshot,
    /// Delivery counters, for outputs that have them (Kafka).
    pub output: Option<OutputSnapshot>,
    /// Errors recovered from by trying again.
    pub errors: u64,
    pub last_error: Option<LastError>,
    pub healthy: bool,
    pub finished: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RpcSnapshot {
    pub requests: u64,
    pub retries: u64,
    pub errors: u64,
    pub response_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OutputSnapshot {
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub queued: u64,
}

#[derive(serde::Serialize)]
struct History {
    interval_secs: f64,
    t: Vec<f64>,
    blocks_per_sec: Vec<f64>,
    tx_per_sec: Vec<f64>,
    lag: Vec<Option<u64>>,
}

/// Prometheus text builder: families are written as HELP/TYPE then their samples; samples of
/// interleaved families (the per-endpoint loop) are buffered per family and written in order.
#[derive(Default)]
struct Prom {
    out: String,
    /// Families declared with `family` whose samples are collected by `sample_in`.
    open: Vec<(String, String)>,
}

impl Prom {
    /// Declares a family; its samples are buffered until [`Prom::flush`].
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let mut head = String::new();
        let _ = writeln!(head, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(head, "# TYPE {name} {kind}");
        self.open.push((name.to_string(), head));
    }

    /// A sample of the family declared last (written at once).
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.sample_in(name, labels, v);
        self.flush();
    }

    /// A sample of any open family (`name` may carry a histogram suffix).
    fn sample_in(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|sfx| {
                let base = name.strip_suffix(sfx)?;
                self.open.iter().any(|(n, _)| n == base).then_some(base)
            })
            .unwrap_or(name);
        let line = sample_line(name, labels, v);
        if let Some((_, text)) = self.open.iter_mut().find(|(n, _)| n == family) {
            text.push_str(&line);
        } else {
            self.out.push_str(&line);
        }
    }

    /// Writes every open family.
    fn flush(&mut self) {
        for (_, text) in self.open.drain(..) {
            self.out.push_str(&text);
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }
}

fn sample_line(name: &str, labels: &[(&str, &str)], v: f64) -> String {
    let mut s = String::from(name);
    if !labels.is_empty() {
        s.push('{');
        for (i, (k, val)) in labels.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{k}=\"{}\"", escape_label(val));
        }
        s.push('}');
    }
    s.push(' ');
    s.push_str(&format_value(v));
    s.push('\n');
    s
}

/// A sample value: integers without a fraction, others in Rust's shortest round-trip form.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Label values escape `\`, `"` and newlines.
pub fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text escapes `\` and newlines.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Wraps a [`Sink`] to keep [`Metrics`] current during an export: counts each batch as it is
/// written, moves the checkpoint gauge over the contiguous durable prefix, and copies the
/// sink's delivery counters.
pub struct MeteredSink {
    inner: Box<dyn Sink>,
    metrics: Arc<Metrics>,
    /// Last block of each written `seq` not yet below the watermark.
    ends: BTreeMap<u64, u64>,
    watermark: Watermark,
    scratch: Vec<u64>,
}

impl MeteredSink {
    pub fn new(inner: Box<dyn Sink>, metrics: Arc<Metrics>) -> MeteredSink {
        MeteredSink {
            inner,
            metrics,
            ends: BTreeMap::new(),
            watermark: Watermark::default(),
            scratch: Vec::new(),
        }
    }

    fn absorb(&mut self, durable: &mut Vec<u64>) {
        for s in self.scratch.drain(..) {
            self.watermark.ack(s);
            durable.push(s);
        }
        if let Some(last) = self.watermark.last() {
            if let Some(end) = self.ends.get(&last) {
                self.metrics.set_checkpoint(*end);
            }
            self.ends = self.ends.split_off(&(last + 1));
        }
        self.metrics.set_output_stats(self.inner.stats());
    }
}

impl Sink for MeteredSink {
    fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
        self.metrics.record_batch(&batch);
        self.ends.insert(batch.seq, batch.end);
        self.inner.write(batch)
    }

    fn poll(&mut self, timeout: Duration, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        let r = self.inner.poll(timeout, &mut self.scratch);
        self.absorb(durable);
        r
    }

    fn finish(&mut self, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        let r = self.inner.finish(&mut self.scratch);
        self.absorb(durable);
        r
    }

    fn stats(&self) -> Option<SinkStats> {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{BatchCounts, RowBuf, RowFormat};
    use crate::sink::null::NullSink;

    fn batch(seq: u64, start: u64, end: u64, txs: u64) -> DecodedBatch {
        let mut rows: [RowBuf; Entity::COUNT] = Default::default();
        for b in start..=end {
            rows[Entity::Blocks as usize]
                .data
                .extend_from_slice(b"{}\n");
            rows[Entity::Blocks as usize].finish_row(b);
        }
        DecodedBatch {
            seq,
            start,
            end,
            format: RowFormat::Json,
            blocks: Vec::new(),
            rows,
            counts: BatchCounts {
                blocks: end - start + 1,
                transactions: txs,
                ..Default::default()
            },
        }
    }

    #[test]
    fn metered_sink_counts_and_moves_the_checkpoint() {
        let ep = Endpoint::parse("http://127.0.0.1:1/key123").unwrap();
        let m = Metrics::new("export", &[ep]);
        let mut s = MeteredSink::new(Box::new(NullSink::new()), Arc::clone(&m));
        s.write(batch(0, 10, 14, 7)).unwrap();
        s.write(batch(1, 15, 19, 3)).unwrap();
        let mut d = Vec::new();
        s.poll(Duration::ZERO, &mut d).unwrap();
        assert_eq!(d, vec![0, 1]);
        let snap = m.snapshot();
        assert_eq!(snap.blocks_streamed, 10);
        assert_eq!(snap.transactions_streamed, 10);
        assert_eq!(snap.rows["blocks"], 10);
        assert_eq!(snap.output_bytes, 30);
        assert_eq!(snap.checkpoint_block, Some(19));
        assert_eq!(snap.current_block, Some(19));
        assert_eq!(snap.head, None);
        assert_eq!(snap.lag, None);
        m.set_head(25);
        assert_eq!(m.snapshot().lag, Some(6));
    }

    #[test]
    fn prometheus_text_is_well_formed() {
        let ep = Endpoint::parse("http://127.0.0.1:1/path\"with\\odd").unwrap();
        let m = Metrics::new("stream", &[ep]);
        m.counters
            .observe(0, CallKind::Batch, Duration::from_millis(30), Some(100));
        m.counters
            .observe(0, CallKind::Batch, Duration::from_secs(100), None);
        m.record_reorg(2);
        let text = m.prometheus();
        // Every family is declared once, before its samples, and samples follow their family.
        let mut declared = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(!declared.contains(&name), "{name} declared twice");
                declared.push(name.clone());
                current = name;
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(name.starts_with(&current), "{name} outside {current}");
            }
        }
        assert!(text.contains("call=\"batch\",le=\"0.05\"} 1\n"), "{text}");
        assert!(text.contains("call=\"batch\",le=\"0.025\"} 0\n"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("ethetl_rpc_errors_total{"), "{text}");
        assert!(text.contains("ethetl_reorgs_total 1\n"), "{text}");
        assert!(text.contains("ethetl_orphaned_blocks_total 2\n"), "{text}");
        assert!(
            !text.contains("ethetl_head_block"),
            "unknown head is left out"
        );
    }

    #[test]
    fn health_goes_stale_and_recovers() {
        let m = Metrics::new("stream", &[]);
        m.set_stale_after(Duration::from_millis(30));
        m.alive();
        assert!(m.health().is_ok());
        std::thread::sleep(Duration::from_millis(80));
        m.record_error("node down");
        let e = m.health().unwrap_err();
        assert!(e.contains("node down"), "{e}");
        m.set_head(5);
        assert!(m.health().is_ok());
    }

    #[test]
    fn history_rates_come_from_consecutive_samples() {
        let m = Metrics::new("stream", &[]);
        m.sample();
        std::thread::sleep(Duration::from_millis(50));
        m.record_batch(&batch(0, 0, 9, 0));
        m.sample();
        let v: sonic_rs::Value = sonic_rs::from_str(&m.history_json()).unwrap();
        use sonic_rs::{JsonContainerTrait, JsonValueTrait};
        let rates = v["blocks_per_sec"].as_array().unwrap();
        assert_eq!(rates.len(), 1);
        let r = rates[0].as_f64().unwrap();
        // 10 blocks in at least 50 ms
        assert!(r > 0.0 && r <= 10.0 / 0.05, "{r}");
    }
}
