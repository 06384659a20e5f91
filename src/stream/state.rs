//! The state a stream keeps across pipeline runs, and the [`Sink`] each run writes through.
//!
//! The stream runs the export pipeline once per *round* (a range of blocks). Each round gets a
//! [`RoundSink`], a thin handle on the shared [`Core`], which owns the real output:
//!
//! * `seq`s are renumbered onto one sequence for the whole stream (rounds and reorg batches), so
//!   the output sees one contiguous `seq` order as the [`Sink`] contract requires;
//! * every block's `parentHash` is checked against the hash remembered for the block before
//!   (across batches, rounds and restarts); a mismatch refuses the batch, records where, and
//!   fails the round, which the stream turns into reorg handling;
//! * durable `seq`s move the stream's checkpoint (a block is done only when its rows are
//!   durable in the output; reorg batches never move it forward), which is stored with the
//!   remembered hashes at most once a second and whenever the stream asks.
//!
//! Directory outputs get a new file sink per round (files are named after the blocks they
//! hold); other outputs live for the whole stream and are flushed (`finish`) after each round,
//! so they must accept writes after `finish`.

use crate::checkpoint::{self, CheckpointError, Watermark};
use crate::config::BlockRange;
use crate::metrics::Metrics;
use crate::msg::{DecodedBatch, EntitySet};
use crate::sink::OpenContext;
use crate::sink::{Sink, SinkError, SinkStats};

/// Why the stream's output layer (checkpoint, parent-hash checks around the real sink) failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamOutputError {
    /// A broken internal contract.
    #[error("{0}")]
    Internal(String),
    #[error("{context}")]
    Failed {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl From<StreamOutputError> for SinkError {
    fn from(e: StreamOutputError) -> SinkError {
        SinkError::new("stream", e)
    }
}
use crate::stream::chain::ChainMemory;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the checkpoint file is rewritten while batches become durable.
const STORE_EVERY: Duration = Duration::from_secs(1);

/// A block whose `parentHash` is not the hash exported for the block before it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "block {block} does not extend the exported chain: its parent hash is {parent_hash}, but \
     block {} was exported as {expected}", block - 1
)]
pub struct Mismatch {
    pub block: u64,
    pub parent_hash: String,
    pub expected: String,
}

/// Where rows go.
pub(crate) enum Output {
    /// One sink for the whole stream.
    Shared(Box<dyn Sink>),
    /// A file sink per round; `current` is the open one.
    Files {
        spec: crate::sink::Output,
        template: OpenContext,
        current: Option<Box<dyn Sink>>,
    },
}

/// See the module docs.
pub(crate) struct Core {
    output: Output,
    /// The next `seq` handed to the output.
    next_seq: u64,
    /// Written `seq`s above the watermark: their last block, `None` for reorg batches.
    ends: BTreeMap<u64, Option<u64>>,
    watermark: Watermark,
    /// Hashes of written blocks.
    pub chain: ChainMemory,
    /// The checkpoint: the last block N such that N and every block before it are durable.
    pub durable: Option<u64>,
    /// The last block handed to the output.
    pub written: Option<u64>,
    stored: Option<u64>,
    last_store: Instant,
    checkpoint: Option<PathBuf>,
    metrics: Arc<Metrics>,
    /// Set by [`RoundSink::write`] when a batch was refused.
    pub mismatch: Option<Mismatch>,
    scratch: Vec<u64>,
}

/// Locks the core; a poisoned lock only means another thread panicked while holding it, and
/// that thread's run has failed already: the state is still consistent at batch granularity.
pub(crate) fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    pub fn new(
        output: Output,
        chain: ChainMemory,
        durable: Option<u64>,
        checkpoint: Option<PathBuf>,
        metrics: Arc<Metrics>,
    ) -> Core {
        if let Some(d) = durable {
            metrics.set_checkpoint(d);
        }
        Core {
            output,
            next_seq: 0,
            ends: BTreeMap::new(),
            watermark: Watermark::default(),
            chain,
            durable,
            written: durable,
            stored: durable,
            last_store: Instant::now(),
            checkpoint,
            metrics,
            mismatch: None,
            scratch: Vec::new(),
        }
    }

    /// The `seq` the next written batch gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Prepares the output for writing `range` with `entities` (opens a round's file sink).
    pub fn begin(&mut self, range: BlockRange, entities: EntitySet) -> Result<(), SinkError> {
        if let Output::Files {
            spec,
            template,
            current,
        } = &mut self.output
        {
            if let Some(mut old) = current.take() {
                old.finish(&mut self.scratch)?;
            }
            let ctx = OpenContext {
                range,
                job: range,
                entities,
                overwrite: true,
                ..template.clone()
            };
            *current = Some(spec.open(&ctx)?);
        }
        self.absorb();
        Ok(())
    }

    fn sink(&mut self) -> Result<&mut dyn Sink, SinkError> {
        match &mut self.output {
            Output::Shared(s) => Ok(s.as_mut()),
            Output::Files {
                current: Some(s), ..
            } => Ok(s.as_mut()),
            Output::Files { current: None, .. } => Err(SinkError::from(
                StreamOutputError::Internal("internal error: no output file is open".into()),
            )),
        }
    }

    pub fn stats(&self) -> Option<SinkStats> {
        match &self.output {
            Output::Shared(s) => s.stats(),
            Output::Files { current, .. } => current.as_ref().and_then(|s| s.stats()),
        }
    }

    /// Checks that `batch` extends the remembered chain.
    pub fn check_links(&self, batch: &DecodedBatch) -> Result<(), Mismatch> {
        let mut expected = batch
            .start
            .checked_sub(1)
            .and_then(|p| self.chain.get(p))
            .map(str::to_string);
        for b in &batch.blocks {
            if let Some(exp) = &expected {
                if !b.parent_hash.eq_ignore_ascii_case(exp) {
                    return Err(Mismatch {
                        block: b.number,
                        parent_hash: b.parent_hash.clone(),
                        expected: exp.clone(),
                    });
                }
            }
            expected = Some(b.hash.clone());
        }
        Ok(())
    }

    /// Writes a batch of blocks (already checked) under the next `seq`.
    pub fn write_blocks(&mut self, mut batch: DecodedBatch) -> Result<u64, SinkError> {
        let count = batch.end - batch.start + 1;
        if batch.blocks.len() as u64 != count
            || batch
                .blocks
                .iter()
                .zip(batch.start..)
                .any(|(b, n)| b.number != n)
        {
            return Err(SinkError::from(StreamOutputError::Internal(format!(
                "batch of blocks {}..={} does not describe each of its blocks (needed to check \
                 parent hashes)",
                batch.start, batch.end
            ))));
        }
        for b in &batch.blocks {
            self.chain.insert(b.number, &b.hash);
        }
        let seq = self.next_seq;
        batch.seq = seq;
        self.ends.insert(seq, Some(batch.end));
        self.metrics.record_batch(&batch);
        self.written = Some(batch.end);
        self.sink()?.write(batch)?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Writes a batch of reorg rows under the next `seq`.
    pub fn write_reorgs(&mut self, mut batch: DecodedBatch) -> Result<(), SinkError> {
        let seq = self.next_seq;
        batch.seq = seq;
        self.ends.insert(seq, None);
        self.metrics.record_batch(&batch);
        self.sink()?.write(batch)?;
        self.next_seq += 1;
        Ok(())
    }

    /// Polls the output; returns the newly durable `seq`s.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<u64>, SinkError> {
        let mut got = Vec::new();
        self.sink()?.poll(timeout, &mut got)?;
        self.scratch.extend_from_slice(&got);
        self.absorb();
        if self.last_store.elapsed() >= STORE_EVERY {
            self.store().map_err(|e| {
                SinkError::from(StreamOutputError::Failed {
                    context: "cannot store the checkpoint".into(),
                    source: Box::new(e),
                })
            })?;
        }
        Ok(got)
    }

    /// Flushes the output (everything written becomes durable or this fails), stores the
    /// checkpoint, and returns the newly durable `seq`s.
    pub fn flush(&mut self) -> Result<Vec<u64>, SinkError> {
        let mut got = Vec::new();
        match &mut self.output {
            Output::Shared(s) => s.finish(&mut got)?,
            Output::Files { current, .. } => {
                if let Some(s) = current.as_mut() {
                    s.finish(&mut got)?;
                }
            }
        }
        self.scratch.extend_from_slice(&got);
        self.absorb();
        self.store().map_err(|e| {
            SinkError::from(StreamOutputError::Failed {
                context: "cannot store the checkpoint".into(),
                source: Box::new(e),
            })
        })?;
        Ok(got)
    }

    /// Closes a round's file sink (after [`Core::flush`]).
    pub fn end_round(&mut self) {
        if let Output::Files { current, .. } = &mut self.output {
            *current = None;
        }
    }

    /// Moves the watermark over the `seq`s in `scratch` and the checkpoint with it.
    fn absorb(&mut self) {
        let mut grew = false;
        for s in self.scratch.drain(..) {
            grew |= self.watermark.ack(s);
        }
        if !grew {
            return;
        }
        let Some(last) = self.watermark.last() else {
            return;
        };
        let done = {
            let rest = self.ends.split_off(&(last + 1));
            std::mem::replace(&mut self.ends, rest)
        };
        if let Some(end) = done.values().rev().find_map(|e| *e) {
            self.durable = Some(end);
            self.metrics.set_checkpoint(end);
            self.chain.trim(end);
        }
        self.metrics.set_output_stats(self.stats());
    }

    /// Written `seq`s not yet durable.
    pub fn pending(&self) -> usize {
        self.ends.len()
    }

    /// Stores the checkpoint (and the hashes) if it moved since the last store.
    pub fn store(&mut self) -> Result<(), CheckpointError> {
        self.last_store = Instant::now();
        let (Some(path), Some(block)) = (&self.checkpoint, self.durable) else {
            return Ok(());
        };
        if self.stored == Some(block) {
            return Ok(());
        }
        checkpoint::write_checkpoint_with(path, block, &self.chain.lines_up_to(block))?;
        self.stored = Some(block);
        Ok(())
    }

    /// After a reorg whose rows are durable: forgets the orphaned blocks, moves the checkpoint
    /// back to the fork point and stores it at once.
    pub fn rewind(&mut self, fork: u64) -> Result<(), CheckpointError> {
        self.chain.truncate_after(fork);
        if self.durable.is_some_and(|d| d > fork) {
            self.durable = Some(fork);
            self.metrics.set_checkpoint(fork);
        }
        if self.written.is_some_and(|w| w > fork) {
            self.written = Some(fork);
            self.metrics.set_current_block(fork);
        }
        // Force the store even if the same block was stored before the reorg.
        self.stored = None;
        self.store()
    }
}

/// The [`Sink`] one round's pipeline writes through (see the module docs). `seq`s it is
/// given start at 0; the core's start at `base`.
pub(crate) struct RoundSink {
    pub core: Arc<Mutex<Core>>,
    pub base: u64,
}

impl RoundSink {
    fn local(&self, global: Vec<u64>, durable: &mut Vec<u64>) {
        durable.extend(global.into_iter().filter_map(|g| g.checked_sub(self.base)));
    }
}

impl Sink for RoundSink {
    fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
        let mut core = lock(&self.core);
        if self.base + batch.seq != core.next_seq() {
            return Err(SinkError::from(StreamOutputError::Internal(format!(
                "internal error: batch seq {} of blocks {}..={} arrived out of order",
                batch.seq, batch.start, batch.end
            ))));
        }
        if let Err(m) = core.check_links(&batch) {
            core.mismatch = Some(m.clone());
            return Err(SinkError::from(StreamOutputError::Failed {
                context: "chain reorganisation detected".into(),
                source: Box::new(m),
            }));
        }
        core.write_blocks(batch).map(|_| ())
    }

    fn poll(&mut self, timeout: Duration, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        let got = lock(&self.core).poll(timeout)?;
        self.local(got, durable);
        Ok(())
    }

    fn finish(&mut self, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        let got = lock(&self.core).flush()?;
        self.local(got, durable);
        Ok(())
    }

    fn stats(&self) -> Option<SinkStats> {
        lock(&self.core).stats()
    }
}
