//! `ethetl stream`: follow the chain head with the export pipeline, handle reorgs, keep a
//! checkpoint, and stop cleanly.
//!
//! # The loop
//!
//! Poll the head (`eth_blockNumber`); export every block up to `head - lag` with the same
//! pipeline as `ethetl export`, in *rounds* of up to [`StreamConfig::round_blocks`] blocks (so
//! catching up runs at full pipeline speed, and rounds end on output chunk boundaries; after a
//! failed round the next ones are shorter for a while), and once caught up poll again every
//! [`StreamConfig::poll_interval`]. While caught up, each poll
//! also checks that the last exported block is still the node's block at that height, so a
//! reorg at the head is noticed before the next block arrives.
//!
//! # Reorgs
//!
//! The hashes of exported blocks are remembered ([`chain::ChainMemory`]: every block written
//! but not yet durable, and the last [`StreamConfig::max_reorg_depth`] + 1 durable ones). Each
//! block the pipeline hands over must have the remembered hash of the block before as its
//! `parentHash`; the first that does not fails the round (nothing from it on is written).
//! Then the stream flushes the output, walks back from the last exported block asking the node
//! for each height (`eth_getBlockByNumber(n, false)`) until the node's hash matches the
//! remembered one (the fork point), writes one `reorg` row per orphaned block
//! ([`reorg`]: `block_number, orphaned_hash, new_hash, depth, item_id, item_timestamp`) and
//! waits until they are durable, moves the checkpoint back to the fork point, and exports the
//! new canonical blocks. A reorg deeper than the remembered blocks stops the stream with
//! [`StreamError::ReorgTooDeep`].
//!
//! Reorg rows are the [`Entity::Reorgs`] entity: they go wherever rows go (the
//! `<prefix>.reorgs` Kafka topic, `DIR/reorgs/`, stdout, or a caller's [`Sink`]) in a batch of
//! their own, between the orphaned rows and the new canonical ones. Consumers drop rows whose
//! `block_hash` is an `orphaned_hash`. (Reorg rows are an [`Entity`] variant rather than a side
//! channel so that every [`Sink`] carries them without new methods.) With a directory output,
//! each round writes its own files; the re-export after a reorg replaces the files it rewrites
//! whole (their orphaned rows go with them), while orphaned rows in a file it only partly
//! covers stay there, named by the reorg rows either way.
//!
//! # Checkpoint
//!
//! A block is done when its rows (and every earlier block's) are durable in the output; the
//! checkpoint file's first line is the last such block, the following lines the remembered
//! hashes (written together, atomically). A restart resumes after the checkpoint and verifies
//! the next block's parent against the stored hash. Crash windows only repeat work: rows of
//! batches written but not yet acknowledged are written again; if the process dies after a
//! reorg's rows are durable but before the checkpoint moved back, the restart detects the same
//! reorg and writes its rows again.
//!
//! # Stopping
//!
//! Setting the stop flag (SIGINT/SIGTERM in the binary) ends the current round as the export
//! does (requests in flight finish, bounded by the request timeout; what was fetched is
//! written), flushes the output, stores the checkpoint, and returns. So does reaching
//! [`StreamConfig::stop_at_block`]. Errors from the node (head polls, failed rounds) are
//! retried for as long as the stream runs, with growing pauses, and reported in the metrics;
//! output and checkpoint errors end the stream.

pub mod chain;
pub mod head;
pub mod reorg;
mod state;

use crate::checkpoint::{self, CheckpointError};
use crate::cli::StreamArgs;
use crate::config::{parse_block_number, BlockRange, ConfigError, ExportConfig};
use crate::metrics::Metrics;
use crate::msg::{DecodedBatch, Entity, EntitySet, RowFormat};
use crate::pipeline::run::{error_chain, run_export_hooked, Resume, RunError, RunHooks};
use crate::sink::{OpenContext, Sink, SinkError};
use crate::stats::eta_text;
use chain::{BadHashLine, ChainMemory};
use head::{HeadClient, HeadError};
use state::{lock, Core, Mismatch, Output as CoreOutput, RoundSink, StreamOutputError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use head::Header;
pub use reorg::Orphan;

/// Default pause between head polls once caught up (ethereum-etl's `--period-seconds`).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// Default deepest reorg handled, in orphaned blocks.
pub const DEFAULT_MAX_REORG_DEPTH: u64 = 128;
/// Default largest round while catching up.
pub const DEFAULT_ROUND_BLOCKS: u64 = 10_000;
/// Longest pause after repeated errors.
pub const MAX_ERROR_PAUSE: Duration = Duration::from_secs(30);
/// How often a status line is printed (unless quiet).
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// Attempts per head poll or header request before the error counts.
const HEAD_ATTEMPTS: u32 = 3;

/// A validated stream.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// Endpoints, entities, format, output, pipeline settings, checkpoint, report, quiet; its
    /// `range` is ignored.
    pub export: ExportConfig,
    /// The first block when there is no checkpoint (default: the head - lag at start).
    pub start_block: Option<u64>,
    /// Stay this many blocks behind the head.
    pub lag: u64,
    /// Pause between head polls once caught up.
    pub poll_interval: Duration,
    /// The deepest reorg handled, in orphaned exported blocks (at least 1); this many durable
    /// blocks plus one are remembered by hash.
    pub max_reorg_depth: u64,
    /// Stop once this block is durable.
    pub stop_at_block: Option<u64>,
    /// Largest round (one pipeline run) while catching up.
    pub round_blocks: u64,
}

impl StreamConfig {
    /// A stream of the given endpoint(s) with every default: no lag, start at the head, poll
    /// every 10 s, default entities, JSONL, output `null` (or the sink given to
    /// [`Streamer::sink`]), no checkpoint, quiet. Adjust the public fields after.
    pub fn new(rpc: &str) -> Result<StreamConfig, ConfigError> {
        Ok(StreamConfig {
            export: ExportConfig::new(rpc, BlockRange { start: 0, end: 0 })?,
            start_block: None,
            lag: 0,
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_reorg_depth: DEFAULT_MAX_REORG_DEPTH,
            stop_at_block: None,
            round_blocks: DEFAULT_ROUND_BLOCKS,
        })
    }

    /// Validates `ethetl stream` flags; `env_rpc` is `ETH_RPC_URL`.
    pub fn from_args(
        args: &StreamArgs,
        env_rpc: Option<String>,
    ) -> Result<StreamConfig, ConfigError> {
        let export = ExportConfig::from_pipeline(
            &args.pipeline(),
            BlockRange { start: 0, end: 0 },
            true,
            env_rpc,
        )?;
        if export.output.kind() == crate::sink::stdout::KIND.name && export.format == RowFormat::Csv
        {
            return Err(ConfigError::Conflict(
                "stream writes JSONL stream items to stdout (reorg items included); use \
                 --format csv with --output DIR"
                    .into(),
            ));
        }
        let block = |flag: &'static str, v: &Option<String>| -> Result<Option<u64>, ConfigError> {
            v.as_deref()
                .map(|s| {
                    parse_block_number(s).map_err(|reason| ConfigError::Invalid {
                        flag,
                        value: s.to_string(),
                        reason,
                    })
                })
                .transpose()
        };
        let start_block = block("--start-block", &args.start_block)?;
        let stop_at_block = block("--stop-at-block", &args.stop_at_block)?;
        if let (Some(s), Some(e)) = (start_block, stop_at_block) {
            if e < s {
                return Err(ConfigError::Conflict(format!(
                    "--stop-at-block {e} is before --start-block {s}"
                )));
            }
        }
        let poll_interval = match &args.poll_interval {
            Some(s) => parse_interval(s).map_err(|reason| ConfigError::Invalid {
                flag: "--poll-interval",
                value: s.clone(),
                reason,
            })?,
            None => DEFAULT_POLL_INTERVAL,
        };
        let max_reorg_depth = args.max_reorg_depth.unwrap_or(DEFAULT_MAX_REORG_DEPTH);
        if !(1..=1_000_000).contains(&max_reorg_depth) {
            return Err(ConfigError::Invalid {
                flag: "--max-reorg-depth",
                value: max_reorg_depth.to_string(),
                reason: "expected 1 to 1000000".into(),
            });
        }
        Ok(StreamConfig {
            export,
            start_block,
            lag: args.lag.unwrap_or(0),
            poll_interval,
            max_reorg_depth,
            stop_at_block,
            round_blocks: DEFAULT_ROUND_BLOCKS,
        })
    }
}

/// Parses `12`, `0.5`, `12s` or `250ms` (at least 1 ms, at most a day).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(secs) = t.strip_suffix('s') {
        (secs, 1.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| "expected seconds (12, 0.5) or milliseconds (250ms)".to_string())?;
    let secs = v * scale;
    if !secs.is_finite() || !(0.001..=86_400.0).contains(&secs) {
        return Err("expected 1 ms to 1 day".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Why a stream stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot open the output")]
    OpenSink {
        #[source]
        source: SinkError,
    },
    #[error("output failed while {during}")]
    Sink {
        during: String,
        #[source]
        source: SinkError,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Another process streams into the same checkpoint or output.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error("checkpoint {path}")]
    HashLine {
        path: PathBuf,
        #[source]
        source: BadHashLine,
    },
    #[error(
        "reorg deeper than --max-reorg-depth {window}: every remembered block ({lowest}..={tip}) \
         was replaced on the node; the stream cannot tell which exported rows are orphaned \
         (re-export from an earlier block, or raise --max-reorg-depth)"
    )]
    ReorgTooDeep { tip: u64, lowest: u64, window: u64 },
    #[error("exporting blocks {range} failed")]
    Run {
        range: BlockRange,
        #[source]
        source: Box<RunError>,
    },
    #[error("reorg rows for blocks {first}..={last} could not be built")]
    ReorgRows {
        first: u64,
        last: u64,
        #[source]
        source: crate::decode::FieldError,
    },
}

/// Why a stream stopped without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stopped {
    /// The stop flag was set (SIGINT/SIGTERM).
    Signal,
    /// `stop_at_block` is durable.
    StopAtBlock,
}

/// What a stream did, printed as a summary and written as JSON by `--report`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StreamReport {
    /// The first block this run exported.
    pub first_block: Option<u64>,
    /// The checkpoint at the end.
    pub checkpoint: Option<u64>,
    /// The node's head at the last poll.
    pub head: Option<u64>,
    pub blocks: u64,
    pub transactions: u64,
    pub logs: u64,
    pub token_transfers: u64,
    pub receipts: u64,
    pub output_bytes: u64,
    pub reorgs: u64,
    pub orphaned_blocks: u64,
    /// Pipeline runs.
    pub rounds: u64,
    /// Errors retried.
    pub errors: u64,
    pub requests: u64,
    pub retries: u64,
    pub rpc_bytes: u64,
    pub elapsed_secs: f64,
    pub stopped: Stopped,
}

impl StreamReport {
    /// The multi-line summary printed on stderr at the end.
    pub fn summary(&self) -> String {
        let range = match (self.first_block, self.checkpoint) {
            (Some(a), Some(b)) if b >= a => format!("blocks {a}..={b}"),
            _ => "no new block".into(),
        };
        let secs = self.elapsed_secs.max(1e-9);
        format!(
            "stream: {range}: {} blocks, {} transactions, {} logs, {} token transfers, {} receipts\n\
             reorgs: {} ({} orphaned blocks); errors retried: {}\n\
             RPC: {:.1} MB in {} requests, {} retries; output: {:.1} MB\n\
             elapsed {}: {:.1} blocks/s, {:.1} tx/s; checkpoint {}",
            self.blocks,
            self.transactions,
            self.logs,
            self.token_transfers,
            self.receipts,
            self.reorgs,
            self.orphaned_blocks,
            self.errors,
            self.rpc_bytes as f64 / 1e6,
            self.requests,
            self.retries,
            self.output_bytes as f64 / 1e6,
            eta_text(self.elapsed_secs),
            self.blocks as f64 / secs,
            self.transactions as f64 / secs,
            self.checkpoint
                .map_or_else(|| "none".to_string(), |c| c.to_string()),
        )
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        sonic_rs::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Errors returned by a [`Streamer::callback`] function.
pub type CallbackError = Box<dyn std::error::Error + Send + Sync>;

/// Runs a stream: the embedding API behind `ethetl stream`.
///
/// ```no_run
/// use ethetl::stream::{StreamConfig, Streamer};
/// use ethetl::Entity;
///
/// let mut config = StreamConfig::new("http://127.0.0.1:8545").unwrap();
/// config.lag = 2;
/// let streamer = Streamer::new(config).callback(|batch| {
///     for row in ethetl::callback::items(batch, Entity::Transactions) {
///         let tx: ethetl::callback::TransactionItem = row.parse()?;
///         println!("{} {}", tx.block_number, tx.hash);
///     }
///     Ok(())
/// });
/// let stop = streamer.stop_flag(); // set it (from another thread) to stop
/// # let _ = stop;
/// let report = streamer.run().unwrap();
/// ```
pub struct Streamer {
    config: StreamConfig,
    sink: Option<Box<dyn Sink>>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Streamer {
    pub fn new(config: StreamConfig) -> Streamer {
        let metrics = Metrics::new("stream", &config.export.endpoints);
        Streamer {
            config,
            sink: None,
            stop: Arc::new(AtomicBool::new(false)),
            metrics,
        }
    }

    /// Writes to `sink` instead of the configured output. It receives every batch in order
    /// (blocks, then after a reorg a batch of [`Entity::Reorgs`] rows); `finish` is called at
    /// the end of every round and it must accept writes afterwards.
    pub fn sink(mut self, sink: Box<dyn Sink>) -> Streamer {
        self.sink = Some(sink);
        self
    }

    /// Calls `f` with every batch (see [`Streamer::sink`]); a batch is durable once `f`
    /// returns `Ok`. An `Err` stops the stream with that error.
    pub fn callback<F>(self, f: F) -> Streamer
    where
        F: FnMut(&DecodedBatch) -> Result<(), CallbackError> + Send + 'static,
    {
        self.sink(Box::new(crate::callback::CallbackSink::new(f)))
    }

    /// Uses `stop` as the stop flag (the binary passes the one its signal handlers set).
    pub fn with_stop_flag(mut self, stop: Arc<AtomicBool>) -> Streamer {
        self.stop = stop;
        self
    }

    /// Setting this flag stops the stream cleanly.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The live counters (serve them with [`crate::http::StatsServer`]).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Runs until stopped (see the module docs).
    pub fn run(self) -> Result<StreamReport, StreamError> {
        let Streamer {
            config,
            sink,
            stop,
            metrics,
        } = self;
        // One stream per checkpoint and output, for as long as it runs.
        let _lock = crate::pipeline::run::JobLock::acquire(&config.export, sink.is_none())?;
        let window = config.max_reorg_depth.max(1);
        let (durable, chain) = match &config.export.checkpoint {
            Some(path) => {
                checkpoint::check_writable(path)?;
                match checkpoint::read_checkpoint_with(path)? {
                    Some((block, extra)) => {
                        let chain =
                            ChainMemory::parse(window, block, &extra).map_err(|source| {
                                StreamError::HashLine {
                                    path: path.clone(),
                                    source,
                                }
                            })?;
                        (Some(block), chain)
                    }
                    None => (None, ChainMemory::new(window)),
                }
            }
            None => (None, ChainMemory::new(window)),
        };
        let output = match sink {
            Some(s) => CoreOutput::Shared(s),
            None => open_output(&config)?,
        };
        let core = Arc::new(Mutex::new(Core::new(
            output,
            chain,
            durable,
            config.export.checkpoint.clone(),
            Arc::clone(&metrics),
        )));
        let head = HeadClient::new(
            config.export.endpoints.clone(),
            &config.export.tls_roots,
            config.export.timeout,
            HEAD_ATTEMPTS,
            Arc::clone(&metrics.counters),
            Arc::clone(&stop),
        );
        // Unhealthy after three missed polls, allowing for slow requests.
        metrics.set_stale_after(
            config.poll_interval * 3 + config.export.timeout * HEAD_ATTEMPTS + MAX_ERROR_PAUSE,
        );
        metrics.alive();
        let mut run = Run {
            config: &config,
            stop: &stop,
            metrics: &metrics,
            core: &core,
            head: &head,
            errors_in_row: 0,
            rounds: 0,
            first_block: None,
            last_status: Instant::now(),
            status_blocks: 0,
            caught_up: false,
            told_lag: false,
            round_cap: config.round_blocks.max(1),
        };
        let outcome = run.main(durable);
        // Whatever happened, make what was written durable and store the checkpoint.
        let flushed = lock(&core).flush();
        lock(&core).end_round();
        metrics.set_finished();
        let stopped = outcome?;
        flushed.map_err(|source| StreamError::Sink {
            during: "flushing the output at the end".into(),
            source,
        })?;
        let snap = metrics.snapshot();
        let checkpoint = lock(&core).durable;
        Ok(StreamReport {
            first_block: run.first_block,
            checkpoint,
            head: snap.head,
            blocks: snap.blocks_streamed,
            transactions: snap.transactions_streamed,
            logs: snap.logs,
            token_transfers: snap.token_transfers,
            receipts: snap.receipts,
            output_bytes: snap.output_bytes,
            reorgs: snap.reorgs,
            orphaned_blocks: snap.orphaned_blocks,
            rounds: run.rounds,
            errors: snap.errors,
            requests: snap.rpc.requests,
            retries: snap.rpc.retries,
            rpc_bytes: snap.rpc.response_bytes,
            elapsed_secs: snap.uptime_secs,
            stopped,
        })
    }
}

/// Opens the configured output for a stream: reorg rows go with the others. An output that
/// opens per round (files) is opened by each round ([`Core::begin`]).
fn open_output(config: &StreamConfig) -> Result<CoreOutput, StreamError> {
    let e = &config.export;
    let mut with_reorgs = e.entities;
    with_reorgs.0[Entity::Reorgs as usize] = true;
    let ctx = OpenContext {
        entities: with_reorgs,
        format: e.format,
        chunk_size: e.chunk_size,
        range: BlockRange { start: 0, end: 0 },
        job: BlockRange { start: 0, end: 0 },
        overwrite: true,
        checkpointed: e.checkpoint.is_some(),
        keep_overlapping: true,
    };
    if e.output.per_round() {
        return Ok(CoreOutput::Files {
            spec: e.output.clone(),
            template: OpenContext {
                entities: e.entities,
                ..ctx
            },
            current: None,
        });
    }
    e.output
        .open(&ctx)
        .map(CoreOutput::Shared)
        .map_err(|source| StreamError::OpenSink { source })
}

/// How a round ended.
enum Round {
    Done { interrupted: bool },
    Mismatch(Mismatch),
    Failed(RunError),
}

/// How reorg handling ended.
enum Reorg {
    /// Rows written, checkpoint moved back to `fork`.
    Handled,
    /// The node still has the last exported block: the mismatch came from an answer that
    /// changed while it was fetched, or the node's chain is shorter than ours for now.
    NothingOrphaned,
    Failed(HeadError),
}

/// One stream's loop state.
struct Run<'a> {
    config: &'a StreamConfig,
    stop: &'a Arc<AtomicBool>,
    metrics: &'a Metrics,
    core: &'a Arc<Mutex<Core>>,
    head: &'a HeadClient,
    errors_in_row: u32,
    rounds: u64,
    first_block: Option<u64>,
    last_status: Instant,
    status_blocks: u64,
    caught_up: bool,
    /// Whether the wait for the head to pass `--lag` was announced.
    told_lag: bool,
    /// The largest round for now: halved after a failed round (a flaky node fails a long
    /// round far more often than a short one, and a failed round writes nothing after the
    /// failing batch), doubled back after each good one.
    round_cap: u64,
}

impl Run<'_> {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn info(&self, msg: &str) {
        if !self.config.export.quiet {
            crate::say!("{msg}");
        }
    }

    /// Sleeps `d`, waking early when stopped.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }

    /// Records a recoverable error and pauses (longer after each error in a row).
    fn recover(&mut self, what: &str, e: &(dyn std::error::Error + 'static)) {
        self.errors_in_row += 1;
        let msg = format!("{what}: {}", error_chain(e));
        self.metrics.record_error(&msg);
        let factor = 1u32 << (self.errors_in_row - 1).min(10);
        let pause = (self.config.poll_interval.max(Duration::from_millis(100)) * factor)
            .min(MAX_ERROR_PAUSE);
        if !self.config.export.quiet {
            crate::say!(
                "warning: {msg} (trying again in {:.1} s)",
                pause.as_secs_f64()
            );
        }
        self.sleep(pause);
    }

    fn status(&mut self, force: bool) {
        if self.config.export.quiet || !(force || self.last_status.elapsed() >= STATUS_EVERY) {
            return;
        }
        let snap = self.metrics.snapshot();
        let secs = self.last_status.elapsed().as_secs_f64().max(1e-9);
        let rate = snap.blocks_streamed.saturating_sub(self.status_blocks) as f64 / secs;
        self.last_status = Instant::now();
        self.status_blocks = snap.blocks_streamed;
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        crate::say!(
            "stream: block {} (head {}, lag {}), {rate:.1} blocks/s, {} blocks and {} transactions \
             so far, {} reorgs, checkpoint {}",
            opt(snap.current_block),
            opt(snap.head),
            opt(snap.lag),
            snap.blocks_streamed,
            snap.transactions_streamed,
            snap.reorgs,
            opt(snap.checkpoint_block),
        );
    }

    fn main(&mut self, durable: Option<u64>) -> Result<Stopped, StreamError> {
        let cfg = self.config;
        let mut next = durable.map(|d| d + 1).or(cfg.start_block);
        match (durable, &cfg.export.checkpoint) {
            (Some(d), Some(p)) => {
                let ignored = cfg
                    .start_block
                    .filter(|s| *s != d + 1)
                    .map(|s| format!(" (--start-block {s} is ignored)"))
                    .unwrap_or_default();
                self.info(&format!(
                    "resuming after block {d} (checkpoint {}){ignored}",
                    p.display()
                ));
            }
            _ => match cfg.start_block {
                Some(s) => self.info(&format!("streaming from block {s}")),
                None => self.info("streaming from the head"),
            },
        }
        loop {
            if self.stopping() {
                return Ok(Stopped::Signal);
            }
            let durable = lock(self.core).durable;
            if let (Some(s), Some(d)) = (cfg.stop_at_block, durable) {
                if d >= s {
                    self.info(&format!("reached --stop-at-block {s}"));
                    return Ok(Stopped::StopAtBlock);
                }
            }
            let head = match self.head.block_number() {
                Ok(h) => h,
                Err(e) => {
                    self.recover("polling the head", &e);
                    continue;
                }
            };
            self.metrics.set_head(head);
            // No block is `--lag` behind the head yet (a young chain): wait, never start at 0.
            let Some(mut target) = head.checked_sub(cfg.lag) else {
                if !self.told_lag {
                    self.told_lag = true;
                    self.info(&format!(
                        "the head is block {head}, less than --lag {}: waiting for block {}",
                        cfg.lag, cfg.lag
                    ));
                }
                self.sleep(cfg.poll_interval);
                continue;
            };
            if let Some(s) = cfg.stop_at_block {
                target = target.min(s);
            }
            let start = *next.get_or_insert(target);
            if start > target {
                if !self.caught_up {
                    self.caught_up = true;
                    self.status(true);
                }
                match self.tip_replaced() {
                    Ok(true) => {
                        self.reorg(None)?;
                        next = lock(self.core).durable.map(|d| d + 1).or(next);
                        continue;
                    }
                    Ok(false) => self.errors_in_row = 0,
                    Err(e) => {
                        self.recover("checking the last exported block", &e);
                        continue;
                    }
                }
                self.status(false);
                self.sleep(cfg.poll_interval);
                continue;
            }
            if start + cfg.round_blocks < target {
                self.caught_up = false;
            }
            let end = round_end(start, target, self.round_cap, cfg.export.chunk_size);
            let range = BlockRange { start, end };
            let round = self.round(range)?;
            self.rounds += 1;
            if self.first_block.is_none() && lock(self.core).durable.is_some_and(|d| d >= start) {
                self.first_block = Some(start);
            }
            match round {
                Round::Done { interrupted } => {
                    self.errors_in_row = 0;
                    self.round_cap = self
                        .round_cap
                        .saturating_mul(2)
                        .min(cfg.round_blocks.max(1));
                    if interrupted {
                        return Ok(Stopped::Signal);
                    }
                }
                Round::Mismatch(m) => {
                    self.reorg(Some(m))?;
                }
                Round::Failed(e) => {
                    self.round_cap =
                        (self.round_cap.min(range.len()) / 2).max(cfg.export.batch_size);
                    self.recover(&format!("exporting blocks {range}"), &e);
                }
            }
            next = lock(self.core).durable.map(|d| d + 1).or(next);
            self.status(false);
        }
    }

    /// Runs the pipeline over `range` and flushes the output.
    fn round(&mut self, range: BlockRange) -> Result<Round, StreamError> {
        let cfg = self.config;
        let mut export = cfg.export.clone();
        export.range = range;
        export.checkpoint = None;
        export.report = None;
        let resume = Resume {
            requested: range,
            range,
            checkpoint: None,
        };
        let base = {
            let mut core = lock(self.core);
            core.begin(range, cfg.export.entities)
                .map_err(|source| StreamError::Sink {
                    during: format!("opening the output for blocks {range}"),
                    source,
                })?;
            core.next_seq()
        };
        let sink = RoundSink {
            core: Arc::clone(self.core),
            base,
        };
        let hooks = RunHooks {
            counters: Some(Arc::clone(&self.metrics.counters)),
            messages_only: true,
        };
        let result = run_export_hooked(
            &export,
            &resume,
            Box::new(sink),
            Arc::clone(self.stop),
            &hooks,
        );
        let mut core = lock(self.core);
        let flushed = core.flush();
        core.end_round();
        let mismatch = core.mismatch.take();
        drop(core);
        flushed.map_err(|source| StreamError::Sink {
            during: format!("flushing blocks {range}"),
            source,
        })?;
        if let Some(m) = mismatch {
            return Ok(Round::Mismatch(m));
        }
        match result {
            Ok(report) => Ok(Round::Done {
                interrupted: report.interrupted,
            }),
            Err(
                e @ (RunError::Fetch { .. }
                | RunError::Decode { .. }
                | RunError::DecodePanic { .. }),
            ) => Ok(Round::Failed(e)),
            Err(source) => Err(StreamError::Run {
                range,
                source: Box::new(source),
            }),
        }
    }

    /// Whether the node replaced the last exported block.
    fn tip_replaced(&self) -> Result<bool, HeadError> {
        let tip = lock(self.core)
            .chain
            .last()
            .map(|(n, h)| (n, h.to_string()));
        let Some((n, hash)) = tip else {
            return Ok(false);
        };
        Ok(match self.head.header(n)? {
            Some(h) => !h.hash.eq_ignore_ascii_case(&hash),
            None => false,
        })
    }

    /// Handles a reorg (see the module docs); `mismatch` is what the round saw, if a round
    /// saw it.
    fn reorg(&mut self, mismatch: Option<Mismatch>) -> Result<(), StreamError> {
        match self.walk_back()? {
            Reorg::Handled => {
                self.errors_in_row = 0;
                Ok(())
            }
            Reorg::NothingOrphaned => {
                if let Some(m) = mismatch {
                    self.recover("the node's answer changed while it was read", &m);
                }
                Ok(())
            }
            Reorg::Failed(e) => {
                self.recover("looking for the fork point of a reorg", &e);
                Ok(())
            }
        }
    }

    fn walk_back(&mut self) -> Result<Reorg, StreamError> {
        let cfg = self.config;
        let mut core = lock(self.core);
        core.flush().map_err(|source| StreamError::Sink {
            during: "flushing before a reorg".into(),
            source,
        })?;
        let Some((tip, _)) = core.chain.last() else {
            return Ok(Reorg::NothingOrphaned);
        };
        let lowest = core.chain.first().unwrap_or(tip);
        let mut orphans = Vec::new();
        let mut fork = None;
        let mut n = tip;
        while let Some(remembered) = core.chain.get(n).map(str::to_string) {
            let node = match self.head.header(n) {
                Ok(Some(h)) => h,
                // The node's chain is shorter than ours for now: look again later.
                Ok(None) => return Ok(Reorg::NothingOrphaned),
                Err(e) => return Ok(Reorg::Failed(e)),
            };
            if node.hash.eq_ignore_ascii_case(&remembered) {
                fork = Some(n);
                break;
            }
            orphans.push(Orphan {
                number: n,
                orphaned_hash: remembered,
                new_hash: node.hash,
                new_timestamp: node.timestamp,
            });
            if n == lowest {
                break;
            }
            n -= 1;
        }
        let fork = match fork {
            Some(f) => f,
            None if core.chain.trimmed() => {
                return Err(StreamError::ReorgTooDeep {
                    tip,
                    lowest,
                    window: core.chain.window(),
                })
            }
            // Everything this stream remembers was replaced, and it remembers every block it
            // exported: the fork is below the first of them.
            None => lowest.saturating_sub(1),
        };
        if orphans.is_empty() {
            return Ok(Reorg::NothingOrphaned);
        }
        orphans.reverse();
        let (first, last) = (orphans[0].number, tip);
        let batches = reorg::batches(&orphans, cfg.export.format, cfg.export.chunk_size).map_err(
            |source| StreamError::ReorgRows {
                first,
                last,
                source,
            },
        )?;
        let sink_err = |source| StreamError::Sink {
            during: format!("writing reorg rows for blocks {first}..={last}"),
            source,
        };
        for b in batches {
            core.begin(
                BlockRange {
                    start: b.start,
                    end: b.end,
                },
                EntitySet::of(&[Entity::Reorgs]),
            )
            .map_err(sink_err)?;
            core.write_reorgs(b).map_err(sink_err)?;
        }
        core.flush().map_err(sink_err)?;
        core.end_round();
        if core.pending() > 0 {
            return Err(sink_err(SinkError::from(StreamOutputError::Internal(
                "the output did not acknowledge every reorg row".into(),
            ))));
        }
        core.rewind(fork)?;
        drop(core);
        let depth = orphans.len() as u64;
        self.metrics.record_reorg(depth);
        self.info(&format!(
            "reorg: blocks {first}..={last} were replaced on the node (depth {depth}, fork at \
             block {fork}); {depth} reorg rows written, exporting again from block {}",
            fork + 1
        ));
        Ok(Reorg::Handled)
    }
}

/// The last block of a round starting at `start`: at most `round_blocks` blocks, not past
/// `target`, and, when more rounds follow, at the end of an output chunk if one ends inside.
fn round_end(start: u64, target: u64, round_blocks: u64, chunk_size: u64) -> u64 {
    let max_end = start.saturating_add(round_blocks.max(1) - 1);
    let end = target.min(max_end);
    if end == target {
        return end;
    }
    let chunk = chunk_size.max(1);
    let aligned = (end + 1) / chunk * chunk;
    if aligned > start {
        aligned - 1
    } else {
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("12"), Ok(Duration::from_secs(12)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("3s"), Ok(Duration::from_secs(3)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("-1").is_err());
        assert!(parse_interval("abc").is_err());
        assert!(parse_interval("1e9").is_err());
    }

    #[test]
    fn rounds_end_on_chunk_boundaries_while_catching_up() {
        // caught-up: up to the target
        assert_eq!(round_end(105, 110, 10_000, 1000), 110);
        // behind: a full round, cut back to the chunk end inside it
        assert_eq!(round_end(500, 50_000, 10_000, 1000), 9_999);
        assert_eq!(round_end(0, 50_000, 10_000, 1000), 9_999);
        // no chunk boundary inside the round: the whole round
        assert_eq!(round_end(1, 50_000, 10, 1000), 10);
        assert_eq!(round_end(7, 7, 1, 1), 7);
    }
}
