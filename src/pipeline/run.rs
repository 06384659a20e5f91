//! Wiring and running the whole pipeline, and the one place that decides how a run ends.
//!
//! ```text
//! planner ─jobs (bounded)─▶ I/O threads ─raw (bounded)─▶ dispatcher ─▶ rayon pool
//!    ▲  ▲                                                    │  ▲          │
//!    │  └──────── retries (rejected answers) ────────────────┘  └─ done ───┘
//!    │                                                          │
//!    └──────── credits (one per batch written) ◀── sink thread ◀┘ decoded (bounded)
//! ```
//!
//! An I/O thread keeps a job until it has every answer (retrying, splitting and switching
//! endpoints inside [`crate::rpc::job`]); answers the decode stage finds inconsistent go back
//! to the planner and are fetched again.
//!
//! Memory is bounded whatever the range length: every data channel is bounded, and the
//! planner keeps at most `window` jobs outstanding beyond the last batch written, which bounds
//! the sink thread's reorder buffer. The sink thread writes batches in `seq` order, collects
//! durable `seq`s from the [`Sink`] and moves the checkpoint over the contiguous durable
//! prefix. Shutdown: each stage drops its senders when its input ends (the planner when every
//! job has been written); the sink thread finishes the sink and writes the final checkpoint;
//! the caller's thread joins every thread and checks its result. A stop request (SIGINT or
//! SIGTERM in the binary) ends planning and takes the same path; a failing stage records its
//! error and raises the abort flag, which every blocking loop checks at least every 50 ms, so
//! the run ends promptly with that error.

use crate::checkpoint::{self, Watermark};
use crate::config::{BlockRange, ExportConfig};
use crate::decode::DecodeOptions;
use crate::msg::{DecodedBatch, RangeJob, RawBatch};
use crate::pipeline::control::Control;
pub use crate::pipeline::control::{error_chain, RunError};
use crate::pipeline::decode::{dispatcher_thread, DecodeFn, DecodeShared};
use crate::pipeline::fetch::{io_thread, FetchShared};
use crate::pipeline::plan::{planner_thread, Planner, Retry, TICK};
use crate::sink::{OpenContext, Sink, SinkError};
use crate::stats::{Progress, RequestCounters, RunReport};
use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender, TryRecvError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The checkpoint file is rewritten at most this often while a run goes (and always at the
/// end): each write costs two fsyncs.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Where a run starts: the requested range, and the checkpoint found (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The range asked for.
    pub requested: BlockRange,
    /// The blocks this run works on (after the checkpoint).
    pub range: BlockRange,
    /// The block in the checkpoint file at start.
    pub checkpoint: Option<u64>,
}

impl Resume {
    /// Checks the checkpoint file (writable, and inside the range if it exists) before any
    /// work, and resolves the blocks left to do.
    pub fn load(config: &ExportConfig) -> Result<Resume, RunError> {
        let requested = config.range;
        let mut resume = Resume {
            requested,
            range: requested,
            checkpoint: None,
        };
        let Some(path) = &config.checkpoint else {
            return Ok(resume);
        };
        checkpoint::check_writable(path)?;
        let cp = checkpoint::read_checkpoint(path)?;
        resume = Resume::at(requested, cp).map_err(|block| RunError::CheckpointOutOfRange {
            path: path.clone(),
            block,
            range: requested,
        })?;
        Ok(resume)
    }

    /// Where a run of `requested` starts when `checkpoint` blocks are done (from the checkpoint
    /// file or a sink's own progress record); `Err(block)` when the block is outside the range
    /// (it must be between the block before the start and the end).
    pub fn at(requested: BlockRange, checkpoint: Option<u64>) -> Result<Resume, u64> {
        let mut resume = Resume {
            requested,
            range: requested,
            checkpoint: None,
        };
        if let Some(cp) = checkpoint {
            if cp > requested.end || cp.saturating_add(1) < requested.start {
                return Err(cp);
            }
            resume.checkpoint = Some(cp);
            if cp < requested.end {
                resume.range.start = requested.start.max(cp + 1);
            }
        }
        Ok(resume)
    }

    /// Whether the checkpoint already covers the whole range.
    pub fn is_done(&self) -> bool {
        self.checkpoint == Some(self.requested.end)
    }
}

/// The locks a job holds while it runs, so that a second process on the same checkpoint or
/// output is refused at once (see [`crate::lock`]); released when dropped. The binary and
/// `ethetl stream` take them before reading the checkpoint and keep them to the end.
#[derive(Debug)]
pub struct JobLock {
    _locks: Vec<crate::lock::LockFile>,
}

impl JobLock {
    /// Locks the checkpoint file (`.<name>.lock` beside it), if there is one, and, when
    /// `output` is set, `config.output` (for files: `DIR/.ethetl.lock`).
    pub fn acquire(config: &ExportConfig, output: bool) -> Result<JobLock, crate::lock::LockError> {
        let mut locks = Vec::new();
        // The output first: it may create the directory the checkpoint is in.
        if output {
            if let Some(lock) = config.output.lock()? {
                locks.push(lock);
            }
        }
        if let Some(cp) = &config.checkpoint {
            let what = format!("checkpoint {}", cp.display());
            let path = crate::lock::checkpoint_lock_path(cp);
            locks.push(crate::lock::LockFile::acquire(&path, &what)?);
        }
        Ok(JobLock { _locks: locks })
    }
}

/// Opens the sink that `config.output` names, for the blocks `resume.range`.
pub fn open_sink(config: &ExportConfig, resume: &Resume) -> Result<Box<dyn Sink>, RunError> {
    config
        .output
        .open(&OpenContext {
            entities: config.entities,
            format: config.format,
            chunk_size: config.chunk_size,
            range: resume.range,
            job: resume.requested,
            overwrite: config.overwrite,
            checkpointed: config.checkpoint.is_some(),
            keep_overlapping: false,
        })
        .map_err(|source| RunError::OpenSink { source })
}

/// Runs an export of `config.range` (resuming after `config.checkpoint` if it exists) into
/// `sink`, which receives every batch in block order. See [`run_export_with`] to pass a stop
/// flag.
///
/// Any [`Sink`] plugs in. This one counts transactions, batch by batch, against a local dev
/// node serving a generated chain:
///
/// ```
/// use ethetl::config::{BlockRange, ExportConfig};
/// use ethetl::msg::DecodedBatch;
/// use ethetl::pipeline::run::run_export;
/// use ethetl::sink::{Sink, SinkError};
/// use ethetl::Entity;
/// use ethetl_devnode::{DevNode, GenConfig, NodeConfig};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// struct CountTransactions {
///     total: Arc<AtomicU64>,
///     /// Batches handled since the last poll: nothing is buffered, so they are durable.
///     done: Vec<u64>,
/// }
///
/// impl Sink for CountTransactions {
///     fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
///         let rows = batch.rows(Entity::Transactions).len() as u64;
///         self.total.fetch_add(rows, Ordering::Relaxed);
///         self.done.push(batch.seq);
///         Ok(())
///     }
///
///     fn poll(&mut self, _: Duration, durable: &mut Vec<u64>) -> Result<(), SinkError> {
///         durable.append(&mut self.done);
///         Ok(())
///     }
///
///     fn finish(&mut self, durable: &mut Vec<u64>) -> Result<(), SinkError> {
///         durable.append(&mut self.done);
///         Ok(())
///     }
/// }
///
/// let node = DevNode::start(NodeConfig::generated(GenConfig {
///     blocks: 20,
///     start_block: 1_000,
///     txs_per_block: Some(5),
///     ..GenConfig::default()
/// }))
/// .unwrap();
/// let mut config = ExportConfig::new(&node.url(), BlockRange::new(1_000, 1_019).unwrap()).unwrap();
/// config.io_threads = 2;
///
/// let total = Arc::new(AtomicU64::new(0));
/// let sink = CountTransactions { total: Arc::clone(&total), done: Vec::new() };
/// let report = run_export(&config, Box::new(sink)).unwrap();
/// assert_eq!(report.blocks, 20);
/// assert_eq!(report.checkpoint, Some(1_019));
/// assert_eq!(total.load(Ordering::Relaxed), 100);
/// ```
pub fn run_export(config: &ExportConfig, sink: Box<dyn Sink>) -> Result<RunReport, RunError> {
    let _lock = JobLock::acquire(config, false)?;
    let resume = Resume::load(config)?;
    run_export_with(config, &resume, sink, Arc::new(AtomicBool::new(false)))
}

/// Runs the export of `resume.range` into `sink`. Setting `stop` ends the run cleanly: no new
/// requests start, what was fetched is written, the checkpoint is updated, and the report has
/// `interrupted` set.
pub fn run_export_with(
    config: &ExportConfig,
    resume: &Resume,
    sink: Box<dyn Sink>,
    stop: Arc<AtomicBool>,
) -> Result<RunReport, RunError> {
    run_export_hooked(config, resume, sink, stop, &RunHooks::default())
}

/// What a caller that embeds runs in something longer (`ethetl stream`, `--http`) can hand a
/// run.
#[derive(Clone, Debug, Default)]
pub struct RunHooks {
    /// Request counters to bump instead of fresh ones, so they can be read live (and add up
    /// over several runs). The report still counts only this run's requests.
    pub counters: Option<Arc<RequestCounters>>,
    /// No progress bar or progress lines (warnings are still shown unless `quiet`).
    pub messages_only: bool,
}

/// [`run_export_with`] with [`RunHooks`].
pub fn run_export_hooked(
    config: &ExportConfig,
    resume: &Resume,
    sink: Box<dyn Sink>,
    stop: Arc<AtomicBool>,
    hooks: &RunHooks,
) -> Result<RunReport, RunError> {
    let outcome = run_with_decoder(
        config,
        resume,
        sink,
        stop,
        crate::decode::decode_batch,
        hooks,
    );
    // Row buffers kept for reuse are of no use once the run is over.
    crate::bufpool::ROWS.release_idle();
    outcome
}

/// [`run_export_hooked`] with the decode function as a parameter (tests of the pipeline
/// itself use a trivial one).
pub(crate) fn run_with_decoder(
    config: &ExportConfig,
    resume: &Resume,
    sink: Box<dyn Sink>,
    stop: Arc<AtomicBool>,
    decode_fn: DecodeFn,
    hooks: &RunHooks,
) -> Result<RunReport, RunError> {
    let mut sink = sink;
    // A sink that stores progress with its data says where to resume; the checkpoint file
    // is not used then.
    let owned;
    let (resume, checkpoint_file) = if sink.owns_progress() {
        let point = sink
            .resume_point()
            .map_err(|source| RunError::OpenSink { source })?;
        owned =
            Resume::at(resume.requested, point).map_err(|block| RunError::ProgressOutOfRange {
                block,
                range: resume.requested,
            })?;
        (&owned, None)
    } else {
        (resume, config.checkpoint.as_deref())
    };
    let range = resume.range;
    let mut report = RunReport {
        first_block: range.start,
        last_block: range.end,
        checkpoint: resume.checkpoint,
        ..Default::default()
    };
    if resume.is_done() {
        return Ok(report);
    }
    let progress = if hooks.messages_only {
        Progress::messages_only(range.len(), config.quiet)
    } else {
        Progress::new(range.len(), config.quiet)
    };

    let ctl = Arc::new(Control::new(stop));
    let counters = hooks.counters.clone().unwrap_or_else(|| {
        Arc::new(RequestCounters::for_endpoints(
            config.endpoints.iter().map(|e| e.redacted().to_string()),
        ))
    });
    // Shared counters may already hold earlier runs' requests.
    let (requests0, retries0, bytes0) = (
        counters.requests.load(Ordering::Relaxed),
        counters.retries.load(Ordering::Relaxed),
        counters.http_bytes.load(Ordering::Relaxed),
    );
    let progress = Arc::new(progress);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.cpu_threads)
        .thread_name(|i| format!("ethetl-decode-{i}"))
        .stack_size(crate::json_depth::PARSE_STACK)
        .build()
        .map_err(|e| RunError::Start {
            what: "decode thread pool",
            source: std::io::Error::other(e),
        })?;

    // Channels. Every data channel is bounded; `retries` and `credits` carry at most `window`
    // messages because at most `window` jobs are outstanding.
    let (job_tx, job_rx) = bounded::<RangeJob>(config.io_threads);
    let (raw_tx, raw_rx) = bounded::<RawBatch>(config.cpu_threads * 2);
    let (dec_tx, dec_rx) = bounded::<DecodedBatch>(config.cpu_threads * 2 + 2);
    let (retry_tx, retry_rx) = unbounded::<Retry>();
    let (credit_tx, credit_rx) = unbounded::<()>();

    let fetch = Arc::new(FetchShared::new(
        config,
        Arc::clone(&counters),
        Arc::clone(&progress),
        Arc::clone(&ctl),
    ));
    let decode = DecodeShared {
        decode: decode_fn,
        opts: DecodeOptions {
            entities: config.entities,
            format: config.format,
        },
        max_retries: config.max_retries,
        max_in_flight: config.cpu_threads * 2,
        bodies: Arc::clone(fetch.fetcher.client().bodies()),
        endpoints: config
            .endpoints
            .iter()
            .map(|e| e.redacted().to_string())
            .collect(),
        counters: &counters,
        progress: &progress,
        ctl: &ctl,
    };
    let sink_shared = SinkShared {
        checkpoint: checkpoint_file,
        progress: &progress,
        ctl: &ctl,
    };
    let plan = Planner::new(range, config.batch_size, config.chunk_size);
    let window = config.effective_window();

    // I/O threads own what they use (see `FetchShared`); the others borrow.
    let mut io_handles = Vec::with_capacity(config.io_threads);
    for i in 0..config.io_threads {
        let (sh, jobs, raw) = (Arc::clone(&fetch), job_rx.clone(), raw_tx.clone());
        match thread::Builder::new()
            .name(format!("ethetl-io-{i}"))
            .stack_size(crate::json_depth::PARSE_STACK)
            .spawn(move || io_thread(&sh, jobs, raw))
        {
            Ok(h) => io_handles.push(h),
            Err(source) => {
                ctl.fail(RunError::Start {
                    what: "I/O threads",
                    source,
                });
                break;
            }
        }
    }
    // Only the threads' clones keep these channels open from here on.
    drop((job_rx, raw_tx));

    let outcome = thread::scope(|s| -> Result<SinkOutcome, RunError> {
        let spawn_err = |what| move |source| RunError::Start { what, source };
        // Each closure owns its channel ends; they drop when the closure returns.
        let sink_handle = thread::Builder::new()
            .name("ethetl-sink".into())
            .spawn_scoped(s, {
                let sh = &sink_shared;
                move || sink_thread(sink, dec_rx, credit_tx, sh)
            })
            .map_err(spawn_err("sink thread"))?;
        let mut handles = Vec::new();
        match thread::Builder::new()
            .name("ethetl-dispatch".into())
            .spawn_scoped(s, {
                let (decode, pool) = (&decode, &pool);
                move || dispatcher_thread(decode, pool, raw_rx, dec_tx, retry_tx)
            }) {
            Ok(h) => handles.push(("decode dispatcher", h)),
            Err(e) => ctl.fail(spawn_err("decode dispatcher thread")(e)),
        }
        match thread::Builder::new()
            .name("ethetl-plan".into())
            .spawn_scoped(s, {
                let ctl = &ctl;
                move || planner_thread(plan, job_tx, retry_rx, credit_rx, window, ctl)
            }) {
            Ok(h) => handles.push(("planner", h)),
            Err(e) => ctl.fail(spawn_err("planner thread")(e)),
        }
        for (name, h) in handles {
            if h.join().is_err() {
                ctl.fail(RunError::Panic(name.into()));
            }
        }
        sink_handle
            .join()
            .map_err(|_| RunError::Panic("sink".into()))
    });
    // The I/O threads. After an abort, one may still be inside a request; give them a moment,
    // then leave the rest to end on their own (they hold nothing the caller needs).
    let grace = Instant::now() + Duration::from_millis(500);
    for h in io_handles {
        if ctl.aborted() {
            while !h.is_finished() && Instant::now() < grace {
                thread::sleep(Duration::from_millis(5));
            }
            if !h.is_finished() {
                continue;
            }
        }
        if h.join().is_err() {
            ctl.fail(RunError::Panic("I/O".into()));
        }
    }
    progress.finish();

    if let Some(e) = ctl.take_error() {
        return Err(e);
    }
    let outcome = outcome?;
    report.absorb_totals(&outcome.totals);
    report.requests = counters.requests.load(Ordering::Relaxed) - requests0;
    report.retries = counters.retries.load(Ordering::Relaxed) - retries0;
    report.rpc_bytes = counters.http_bytes.load(Ordering::Relaxed) - bytes0;
    report.endpoints = fetch.fetcher.pool().report();
    report.elapsed_secs = progress.started().elapsed().as_secs_f64();
    if outcome.checkpoint.is_some() {
        report.checkpoint = outcome.checkpoint;
    }
    let complete = outcome.written_blocks == range.len() && outcome.checkpoint == Some(range.end);
    if !complete {
        if ctl.stop_requested() {
            report.interrupted = true;
        } else {
            return Err(RunError::Incomplete {
                written: outcome.written_blocks,
                total: range.len(),
            });
        }
    }
    Ok(report)
}

impl RunReport {
    fn absorb_totals(&mut self, t: &RunReport) {
        self.blocks += t.blocks;
        self.transactions += t.transactions;
        self.logs += t.logs;
        self.token_transfers += t.token_transfers;
        self.receipts += t.receipts;
        self.malformed_transfers += t.malformed_transfers;
        self.output_bytes += t.output_bytes;
    }
}

/// What the sink thread borrows.
struct SinkShared<'a> {
    checkpoint: Option<&'a Path>,
    progress: &'a Progress,
    ctl: &'a Control,
}

/// What the sink thread hands back.
#[derive(Default)]
struct SinkOutcome {
    /// Row counters (only the count fields are used).
    totals: RunReport,
    written_blocks: u64,
    /// Last block of the contiguous durable prefix, if any batch became durable.
    checkpoint: Option<u64>,
}

/// The one sink thread: reorders by `seq`, writes in order, returns a credit per batch
/// written, polls for durable `seq`s, moves and stores the checkpoint. Ends when `decoded`
/// closes (then finishes the sink) or on abort (then leaves the sink unfinished). Drops
/// `credits` on return, which ends the planner.
fn sink_thread(
    mut sink: Box<dyn Sink>,
    decoded: Receiver<DecodedBatch>,
    credits: Sender<()>,
    sh: &SinkShared<'_>,
) -> SinkOutcome {
    let mut out = SinkOutcome::default();
    let mut reorder: BTreeMap<u64, DecodedBatch> = BTreeMap::new();
    let mut next_write = 0u64;
    // Last block of each written `seq` not yet below the watermark.
    let mut ends: BTreeMap<u64, u64> = BTreeMap::new();
    let mut watermark = Watermark::default();
    let mut durable = Vec::new();
    let mut stored: Option<u64> = None;
    let mut last_store = Instant::now();
    let mut input_open = true;
    // The last block handed to `Sink::completed`.
    let mut told: Option<u64> = None;
    let tell = |sink: &mut dyn Sink, cp: Option<u64>, told: &mut Option<u64>| match cp {
        Some(block) if *told != Some(block) => {
            *told = Some(block);
            sink.completed(block)
        }
        _ => Ok(()),
    };

    let fail = |during: String, source: SinkError| {
        sh.ctl.fail(RunError::Sink { during, source });
    };
    // Moves the watermark over newly durable seqs; returns the checkpoint block.
    let advance = |durable: &mut Vec<u64>,
                   watermark: &mut Watermark,
                   ends: &mut BTreeMap<u64, u64>,
                   cp: &mut Option<u64>| {
        let mut grew = false;
        for s in durable.drain(..) {
            grew |= watermark.ack(s);
        }
        if grew {
            if let Some(last) = watermark.last() {
                if let Some(end) = ends.get(&last) {
                    *cp = Some(*end);
                }
                let keep = ends.split_off(&(last + 1));
                *ends = keep;
            }
        }
    };
    let store = |cp: Option<u64>, stored: &mut Option<u64>| -> bool {
        let (Some(path), Some(block)) = (sh.checkpoint, cp) else {
            return true;
        };
        if *stored == Some(block) {
            return true;
        }
        match checkpoint::write_checkpoint(path, block) {
            Ok(()) => {
                *stored = Some(block);
                true
            }
            Err(e) => {
                sh.ctl.fail(e.into());
                false
            }
        }
    };

    while input_open {
        select! {
            recv(decoded) -> m => match m {
                Ok(b) => { reorder.insert(b.seq, b); }
                Err(_) => input_open = false,
            },
            default(TICK) => {}
        }
        if sh.ctl.aborted() {
            store(out.checkpoint, &mut stored);
            return out;
        }
        // Take whatever else is ready without waiting.
        while input_open {
            match decoded.try_recv() {
                Ok(b) => {
                    reorder.insert(b.seq, b);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => input_open = false,
            }
        }
        while let Some(b) = reorder.remove(&next_write) {
            let (start, end) = (b.start, b.end);
            ends.insert(b.seq, end);
            out.totals.absorb(&b.counts);
            out.totals.output_bytes += b.rows.iter().map(|r| r.data.len() as u64).sum::<u64>();
            out.written_blocks += end - start + 1;
            if let Err(e) = sink.write(b) {
                fail(format!("writing blocks {start}..={end}"), e);
                store(out.checkpoint, &mut stored);
                return out;
            }
            next_write += 1;
            let _ = credits.send(());
        }
        if let Err(e) = sink.poll(Duration::ZERO, &mut durable) {
            fail("waiting for acknowledgements".into(), e);
            store(out.checkpoint, &mut stored);
            return out;
        }
        advance(&mut durable, &mut watermark, &mut ends, &mut out.checkpoint);
        if let Err(e) = tell(&mut *sink, out.checkpoint, &mut told) {
            fail("recording progress".into(), e);
            store(out.checkpoint, &mut stored);
            return out;
        }
        if last_store.elapsed() >= CHECKPOINT_EVERY {
            if !store(out.checkpoint, &mut stored) {
                return out;
            }
            last_store = Instant::now();
        }
        sh.progress.update(
            out.written_blocks,
            &blocks_counts(&out.totals),
            out.checkpoint,
        );
    }
    // Input closed: every stage upstream has finished. Batches left in `reorder` sit after a
    // gap (the run was stopped) and are not written.
    if let Err(e) = sink.finish(&mut durable) {
        fail("finishing the output".into(), e);
        store(out.checkpoint, &mut stored);
        return out;
    }
    advance(&mut durable, &mut watermark, &mut ends, &mut out.checkpoint);
    if let Err(e) = tell(&mut *sink, out.checkpoint, &mut told) {
        fail("recording progress".into(), e);
    }
    store(out.checkpoint, &mut stored);
    sh.progress.update(
        out.written_blocks,
        &blocks_counts(&out.totals),
        out.checkpoint,
    );
    out
}

fn blocks_counts(r: &RunReport) -> crate::msg::BatchCounts {
    crate::msg::BatchCounts {
        blocks: r.blocks,
        transactions: r.transactions,
        logs: r.logs,
        token_transfers: r.token_transfers,
        receipts: r.receipts,
        malformed_transfers: r.malformed_transfers,
        rpc_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    //! The pipeline's own behaviour (order, retries, bounds, stop, failure) against a scripted
    //! local node, with a trivial decoder that emits one row `"<block>\n"` per block.
    use super::*;
    use crate::decode::DecodeError;
    use crate::msg::{BatchCounts, Entity, RowBuf, RowFormat};
    use crate::rpc::retry::Cause;
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    /// What the scripted node does with request number `i` (0-based) for blocks `first..`.
    #[derive(Clone, Copy, Debug)]
    enum Act {
        Answer,
        DelayMs(u64),
        Status(u16),
        NullBlock,
        /// Every block answered as the block after it: an inconsistent answer.
        WrongNumber,
        /// `"number"` as a JSON number: a shape no retry fixes.
        BadShape,
    }

    struct Node {
        port: u16,
        requests: Arc<AtomicUsize>,
        receipts_calls: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        handles: Vec<thread::JoinHandle<()>>,
    }

    impl Node {
        fn start(script: impl Fn(usize, u64) -> Act + Send + Sync + 'static) -> Node {
            let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
            let port = server.server_addr().to_ip().unwrap().port();
            let requests = Arc::new(AtomicUsize::new(0));
            let receipts_calls = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let script = Arc::new(script);
            let handles = (0..4)
                .map(|_| {
                    let (server, requests, receipts_calls, stop, script) = (
                        Arc::clone(&server),
                        Arc::clone(&requests),
                        Arc::clone(&receipts_calls),
                        Arc::clone(&stop),
                        Arc::clone(&script),
                    );
                    thread::spawn(move || {
                        let deadline = Instant::now() + Duration::from_secs(60);
                        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                            let Ok(Some(mut req)) = server.recv_timeout(Duration::from_millis(20))
                            else {
                                continue;
                            };
                            let mut body = Vec::new();
                            let _ = req.as_reader().read_to_end(&mut body);
                            let calls: sonic_rs::Value = sonic_rs::from_slice(&body).unwrap();
                            let i = requests.fetch_add(1, Ordering::SeqCst);
                            let first = block_of(&calls.as_array().unwrap()[0]);
                            let act = script(i, first);
                            if let Act::DelayMs(ms) = act {
                                thread::sleep(Duration::from_millis(ms));
                            }
                            if let Act::Status(code) = act {
                                let _ = req.respond(
                                    tiny_http::Response::from_string("busy").with_status_code(code),
                                );
                                continue;
                            }
                            let mut out = Vec::new();
                            for c in calls.as_array().unwrap().iter() {
                                let id = c["id"].as_u64().unwrap();
                                let n = block_of(c);
                                let result = if c["method"].as_str() == Some("eth_getBlockReceipts")
                                {
                                    receipts_calls.fetch_add(1, Ordering::SeqCst);
                                    "[]".to_string()
                                } else if matches!(act, Act::NullBlock) {
                                    "null".to_string()
                                } else if matches!(act, Act::BadShape) {
                                    format!("{{\"number\":{n}}}")
                                } else if matches!(act, Act::WrongNumber) {
                                    format!("{{\"number\":\"0x{:x}\"}}", n + 1)
                                } else {
                                    format!("{{\"number\":\"0x{n:x}\"}}")
                                };
                                out.push(format!(
                                    "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result}}}"
                                ));
                            }
                            let _ = req.respond(tiny_http::Response::from_string(format!(
                                "[{}]",
                                out.join(",")
                            )));
                        }
                    })
                })
                .collect();
            Node {
                port,
                requests,
                receipts_calls,
                stop,
                handles,
            }
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}/", self.port)
        }
    }

    impl Drop for Node {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            for h in self.handles.drain(..) {
                let _ = h.join();
            }
        }
    }

    fn block_of(call: &sonic_rs::Value) -> u64 {
        let hex = call["params"][0].as_str().unwrap();
        u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap()
    }

    /// One row `"<n>\n"` per block, after checking the node answered every block by id.
    fn fake_decode(raw: &RawBatch, opts: &DecodeOptions) -> Result<DecodedBatch, DecodeError> {
        const METHOD: &str = "eth_getBlockByNumber";
        let v: sonic_rs::Value =
            sonic_rs::from_slice(&raw.body).map_err(|source| DecodeError::ResultShape {
                block: raw.job.start,
                method: METHOD,
                source,
            })?;
        let mut rows: [RowBuf; crate::msg::Entity::COUNT] = Default::default();
        let answers = v.as_array().ok_or(DecodeError::MissingAnswer {
            block: raw.job.start,
            method: METHOD,
        })?;
        for n in raw.job.start..=raw.job.end {
            let id = crate::rpc::batch::call_id(&raw.job, crate::rpc::batch::Call::Block(n));
            let a = answers
                .iter()
                .find(|a| a["id"].as_u64() == Some(id))
                .ok_or(DecodeError::MissingAnswer {
                    block: n,
                    method: METHOD,
                })?;
            if a["result"].is_null() {
                return Err(DecodeError::NullResult {
                    block: n,
                    method: METHOD,
                });
            }
            let got = a["result"]["number"]
                .as_str()
                .ok_or(DecodeError::ResultKind {
                    block: n,
                    method: METHOD,
                    got: "a number",
                    expected: "a hex string",
                })?;
            if got != format!("0x{n:x}") {
                return Err(DecodeError::WrongBlock { block: n, got: 0 });
            }
            let buf = &mut rows[Entity::Blocks as usize];
            buf.data.extend_from_slice(format!("{n}\n").as_bytes());
            buf.finish_row(n);
        }
        Ok(DecodedBatch {
            seq: raw.job.seq,
            start: raw.job.start,
            end: raw.job.end,
            format: opts.format,
            blocks: Vec::new(),
            rows,
            counts: BatchCounts {
                blocks: raw.job.block_count(),
                ..Default::default()
            },
        })
    }

    /// Records what it is given; acknowledges in bursts of three, newest first, to exercise
    /// the watermark; can fail, stall or raise a stop flag at a given seq.
    #[derive(Default, Clone)]
    struct Recorder {
        written: Arc<Mutex<Vec<(u64, u64, u64)>>>,
        rows: Arc<Mutex<Vec<u8>>>,
        pending: Vec<u64>,
        fail_at: Option<u64>,
        stall_at: Option<(u64, Arc<AtomicBool>)>,
        stop_at: Option<(u64, Arc<AtomicBool>)>,
    }

    impl Sink for Recorder {
        fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
            if self.fail_at == Some(batch.seq) {
                return Err(SinkError::new(
                    "test",
                    std::io::Error::other(format!("disk full at seq {}", batch.seq)),
                ));
            }
            if let Some((seq, release)) = &self.stall_at {
                if *seq == batch.seq {
                    let t = Instant::now();
                    while !release.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(20) {
                        thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            if let Some((seq, stop)) = &self.stop_at {
                if *seq == batch.seq {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            self.written
                .lock()
                .unwrap()
                .push((batch.seq, batch.start, batch.end));
            self.rows
                .lock()
                .unwrap()
                .extend_from_slice(&batch.rows(Entity::Blocks).data);
            self.pending.push(batch.seq);
            Ok(())
        }

        fn poll(&mut self, _: Duration, durable: &mut Vec<u64>) -> Result<(), SinkError> {
            if self.pending.len() >= 3 {
                durable.extend(self.pending.drain(..).rev());
            }
            Ok(())
        }

        fn finish(&mut self, durable: &mut Vec<u64>) -> Result<(), SinkError> {
            durable.extend(self.pending.drain(..).rev());
            Ok(())
        }
    }

    fn config(node: &Node, start: u64, end: u64) -> ExportConfig {
        let mut c = ExportConfig::new(&node.url(), BlockRange { start, end }).unwrap();
        c.entities = crate::msg::EntitySet::of(&[Entity::Blocks]);
        c.format = RowFormat::Json;
        c.batch_size = 7;
        c.chunk_size = 50;
        c.io_threads = 4;
        c.cpu_threads = 2;
        c.max_retries = 0;
        c.timeout = Duration::from_secs(10);
        c
    }

    fn run(c: &ExportConfig, sink: Recorder, stop: Arc<AtomicBool>) -> Result<RunReport, RunError> {
        let resume = Resume::load(c)?;
        run_with_decoder(
            c,
            &resume,
            Box::new(sink),
            stop,
            fake_decode,
            &RunHooks::default(),
        )
    }

    fn expected_rows(start: u64, end: u64) -> Vec<u8> {
        (start..=end)
            .flat_map(|n| format!("{n}\n").into_bytes())
            .collect()
    }

    /// A [`Recorder`] that keeps its own progress record, as a database sink would.
    struct OwnsProgress {
        inner: Recorder,
        stored: Option<u64>,
        completed: Arc<Mutex<Vec<u64>>>,
    }

    impl Sink for OwnsProgress {
        fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
            self.inner.write(batch)
        }
        fn poll(&mut self, t: Duration, durable: &mut Vec<u64>) -> Result<(), SinkError> {
            self.inner.poll(t, durable)
        }
        fn finish(&mut self, durable: &mut Vec<u64>) -> Result<(), SinkError> {
            self.inner.finish(durable)
        }
        fn owns_progress(&self) -> bool {
            true
        }
        fn resume_point(&mut self) -> Result<Option<u64>, SinkError> {
            Ok(self.stored)
        }
        fn completed(&mut self, block: u64) -> Result<(), SinkError> {
            self.completed.lock().unwrap().push(block);
            Ok(())
        }
    }

    #[test]
    fn a_sink_that_owns_progress_decides_where_to_resume() {
        let node = Node::start(|_, _| Act::Answer);
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(&node, 1000, 1199);
        // A checkpoint file that says otherwise is neither read nor written.
        c.checkpoint = Some(dir.path().join("cp.txt"));
        std::fs::write(dir.path().join("cp.txt"), "1010\n").unwrap();
        let rec = Recorder::default();
        let completed = Arc::new(Mutex::new(Vec::new()));
        let sink = OwnsProgress {
            inner: rec.clone(),
            stored: Some(1099),
            completed: Arc::clone(&completed),
        };
        let resume = Resume::load(&c).unwrap();
        let go = |sink: OwnsProgress| {
            run_with_decoder(
                &c,
                &resume,
                Box::new(sink),
                Arc::default(),
                fake_decode,
                &RunHooks::default(),
            )
        };
        let report = go(sink).unwrap();
        assert_eq!(*rec.rows.lock().unwrap(), expected_rows(1100, 1199));
        assert_eq!(report.blocks, 100);
        assert_eq!(report.checkpoint, Some(1199));
        let completed = completed.lock().unwrap().clone();
        assert_eq!(completed.last(), Some(&1199));
        assert!(completed.windows(2).all(|w| w[0] < w[1]), "{completed:?}");
        assert!(completed.iter().all(|b| (1100..=1199).contains(b)));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cp.txt")).unwrap(),
            "1010\n"
        );
        // A progress record outside the range is refused before any request.
        let sink = OwnsProgress {
            inner: Recorder::default(),
            stored: Some(5),
            completed: Arc::default(),
        };
        let before = node.requests.load(Ordering::SeqCst);
        let e = go(sink).unwrap_err();
        assert!(
            matches!(e, RunError::ProgressOutOfRange { block: 5, .. }),
            "{e}"
        );
        assert_eq!(node.requests.load(Ordering::SeqCst), before);
    }

    #[test]
    fn writes_every_block_in_order_despite_reordering() {
        // Requests finish out of order: every third one is slow.
        let node = Node::start(|i, _| {
            if i % 3 == 0 {
                Act::DelayMs(30)
            } else {
                Act::Answer
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(&node, 1000, 1499);
        c.checkpoint = Some(dir.path().join("cp.txt"));
        let rec = Recorder::default();
        let report = run(&c, rec.clone(), Arc::default()).unwrap();
        assert_eq!(*rec.rows.lock().unwrap(), expected_rows(1000, 1499));
        let written = rec.written.lock().unwrap().clone();
        for (i, w) in written.iter().enumerate() {
            assert_eq!(w.0, i as u64, "seq order");
        }
        assert_eq!(report.blocks, 500);
        assert_eq!(report.checkpoint, Some(1499));
        assert!(!report.interrupted);
        assert_eq!(
            report.requests as usize,
            node.requests.load(Ordering::SeqCst)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cp.txt")).unwrap(),
            "1499\n"
        );
        // blocks only: no receipts were asked for
        assert_eq!(node.receipts_calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn receipts_requested_when_needed() {
        let node = Node::start(|_, _| Act::Answer);
        let mut c = config(&node, 0, 9);
        c.entities = crate::msg::EntitySet::of(&[Entity::Blocks, Entity::Logs]);
        run(&c, Recorder::default(), Arc::default()).unwrap();
        assert_eq!(node.receipts_calls.load(Ordering::SeqCst), 10);
    }

    #[test]
    fn retries_transient_http_errors() {
        // The first two requests for block 21's batch get 503, then it works.
        let fails = Arc::new(AtomicUsize::new(0));
        let f = Arc::clone(&fails);
        let node = Node::start(move |_, first| {
            if first == 21 && f.fetch_add(1, Ordering::SeqCst) < 2 {
                Act::Status(503)
            } else {
                Act::Answer
            }
        });
        let mut c = config(&node, 0, 99);
        c.max_retries = 2;
        let rec = Recorder::default();
        let report = run(&c, rec.clone(), Arc::default()).unwrap();
        assert_eq!(report.retries, 2);
        assert_eq!(*rec.rows.lock().unwrap(), expected_rows(0, 99));
    }

    #[test]
    fn gives_up_after_max_retries_with_a_clear_error() {
        let node = Node::start(|_, first| {
            if first == 21 {
                Act::Status(502)
            } else {
                Act::Answer
            }
        });
        let mut c = config(&node, 0, 99);
        c.max_retries = 1;
        let t = Instant::now();
        let e = run(&c, Recorder::default(), Arc::default()).unwrap_err();
        let msg = error_chain(&e);
        assert!(msg.contains("giving up after 2 attempt(s)"), "{msg}");
        assert!(
            msg.contains("blocks 21..=27 (eth_getBlockByNumber)"),
            "{msg}"
        );
        assert!(msg.contains("HTTP 502"), "{msg}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn decode_failure_stops_the_run() {
        let node = Node::start(|_, first| {
            if first == 14 {
                Act::WrongNumber
            } else {
                Act::Answer
            }
        });
        let c = config(&node, 0, 999);
        let rec = Recorder::default();
        let e = run(&c, rec.clone(), Arc::default()).unwrap_err();
        assert!(
            matches!(
                e,
                RunError::Decode {
                    start: 14,
                    end: 20,
                    ..
                }
            ),
            "{e:?}"
        );
        // nothing at or after the bad batch was written
        assert!(rec.written.lock().unwrap().iter().all(|w| w.2 < 14));
    }

    #[test]
    fn retries_answers_the_decoder_calls_retryable() {
        // The node answers the wrong blocks for 28..=34 on the first two attempts.
        let wrong = Arc::new(AtomicUsize::new(0));
        let n = Arc::clone(&wrong);
        let node = Node::start(move |_, first| {
            if first == 28 && n.fetch_add(1, Ordering::SeqCst) < 2 {
                Act::WrongNumber
            } else {
                Act::Answer
            }
        });
        let mut c = config(&node, 0, 99);
        c.max_retries = 3;
        let rec = Recorder::default();
        let report = run(&c, rec.clone(), Arc::default()).unwrap();
        assert_eq!(report.retries, 2);
        assert_eq!(report.endpoints[0].retries.get(Cause::Rejected), 2);
        assert_eq!(*rec.rows.lock().unwrap(), expected_rows(0, 99));
    }

    #[test]
    fn null_results_are_retried_then_named() {
        // The node does not have blocks 28..=34 yet on the first two attempts, then never.
        let nulls = Arc::new(AtomicUsize::new(0));
        let n = Arc::clone(&nulls);
        let node = Node::start(move |_, first| {
            if first == 28 && n.fetch_add(1, Ordering::SeqCst) < 2 {
                Act::NullBlock
            } else {
                Act::Answer
            }
        });
        let mut c = config(&node, 0, 99);
        c.max_retries = 3;
        let rec = Recorder::default();
        let report = run(&c, rec.clone(), Arc::default()).unwrap();
        assert_eq!(report.retries, 2);
        assert_eq!(report.endpoints[0].retries.get(Cause::NullResult), 2);
        assert_eq!(*rec.rows.lock().unwrap(), expected_rows(0, 99));

        let node = Node::start(|_, first| {
            if first == 28 {
                Act::NullBlock
            } else {
                Act::Answer
            }
        });
        let mut c = config(&node, 0, 99);
        c.max_retries = 1;
        let e = run(&c, Recorder::default(), Arc::default()).unwrap_err();
        let msg = error_chain(&e);
        assert!(
            msg.contains("giving up after 2 attempt(s)")
                && msg.contains("block 28: eth_getBlockByNumber returned null")
                && msg.contains(&node.url()),
            "{msg}"
        );
    }

    #[test]
    fn answers_no_retry_can_fix_fail_at_once() {
        let node = Node::start(|_, first| {
            if first == 28 {
                Act::BadShape
            } else {
                Act::Answer
            }
        });
        let mut c = config(&node, 0, 99);
        c.max_retries = 5;
        let e = run(&c, Recorder::default(), Arc::default()).unwrap_err();
        assert!(
            matches!(
                e,
                RunError::Decode {
                    start: 28,
                    attempts: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(error_chain(&e).contains("block 28"), "{}", error_chain(&e));
    }

    #[test]
    fn sink_failure_stops_the_run() {
        let node = Node::start(|_, _| Act::Answer);
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(&node, 0, 9999);
        c.checkpoint = Some(dir.path().join("cp"));
        let rec = Recorder {
            fail_at: Some(10),
            ..Default::default()
        };
        let e = run(&c, rec.clone(), Arc::default()).unwrap_err();
        let msg = error_chain(&e);
        // seq 10 is blocks 64..=70 (batches of 7 cut at the 50-block chunk boundaries)
        assert!(
            msg.contains("writing blocks 64..=70") && msg.contains("disk full"),
            "{msg}"
        );
        // The checkpoint (if any batch was acknowledged before the failure: acks come in
        // bursts of three) sits at the end of a written batch and never covers the failed one.
        let written = rec.written.lock().unwrap().clone();
        assert!(written.iter().all(|w| w.2 < 64), "{written:?}");
        if let Ok(text) = std::fs::read_to_string(dir.path().join("cp")) {
            let cp: u64 = text.trim().parse().unwrap();
            assert!(written.iter().any(|w| w.2 == cp), "{cp}");
        }
        assert!(node.requests.load(Ordering::SeqCst) < 200);
    }

    #[test]
    fn outstanding_jobs_are_bounded_by_the_window() {
        let node = Node::start(|_, _| Act::Answer);
        let release = Arc::new(AtomicBool::new(false));
        let mut c = config(&node, 0, 99_999);
        c.batch_size = 1;
        c.window = 10;
        let rec = Recorder {
            stall_at: Some((0, Arc::clone(&release))),
            ..Default::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (c2, stop2) = (c.clone(), Arc::clone(&stop));
        let h = thread::spawn(move || run(&c2, rec, stop2));
        thread::sleep(Duration::from_millis(400));
        let seen = node.requests.load(Ordering::SeqCst);
        assert!(
            (1..=10).contains(&seen),
            "{seen} requests while the sink was stalled"
        );
        stop.store(true, Ordering::SeqCst);
        release.store(true, Ordering::SeqCst);
        let report = h.join().unwrap().unwrap();
        assert!(report.interrupted);
    }

    #[test]
    fn stop_ends_cleanly_with_a_contiguous_checkpoint() {
        let node = Node::start(|_, _| Act::Answer);
        let dir = tempfile::tempdir().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut c = config(&node, 0, 99_999);
        c.checkpoint = Some(dir.path().join("cp"));
        let rec = Recorder {
            stop_at: Some((20, Arc::clone(&stop))),
            ..Default::default()
        };
        let report = run(&c, rec.clone(), Arc::clone(&stop)).unwrap();
        assert!(report.interrupted);
        let written = rec.written.lock().unwrap().clone();
        let last = written.last().unwrap().2;
        assert_eq!(report.checkpoint, Some(last));
        assert_eq!(*rec.rows.lock().unwrap(), expected_rows(0, last));
        let cp = std::fs::read_to_string(dir.path().join("cp")).unwrap();
        assert_eq!(cp.trim(), last.to_string());
        // far fewer requests than the range needs
        assert!(node.requests.load(Ordering::SeqCst) < 200);

        // Resuming continues after the checkpoint.
        let mut c2 = config(&node, 0, last + 30);
        c2.checkpoint = c.checkpoint.clone();
        let rec2 = Recorder::default();
        let report2 = run(&c2, rec2.clone(), Arc::default()).unwrap();
        assert_eq!(report2.first_block, last + 1);
        assert_eq!(
            *rec2.rows.lock().unwrap(),
            expected_rows(last + 1, last + 30)
        );
    }

    #[test]
    fn checkpoint_outside_the_range_is_refused() {
        let node = Node::start(|_, _| Act::Answer);
        let dir = tempfile::tempdir().unwrap();
        let cp = dir.path().join("cp");
        let mut c = config(&node, 100, 199);
        c.checkpoint = Some(cp.clone());
        for (block, ok) in [
            (98, false),
            (99, true),
            (150, true),
            (199, true),
            (200, false),
        ] {
            std::fs::write(&cp, format!("{block}\n")).unwrap();
            assert_eq!(Resume::load(&c).is_ok(), ok, "{block}");
        }
        std::fs::write(&cp, "199\n").unwrap();
        assert!(Resume::load(&c).unwrap().is_done());
        c.checkpoint = Some(dir.path().join("missing-dir/cp"));
        assert!(matches!(Resume::load(&c), Err(RunError::Checkpoint(_))));
    }
}
