//! The CPU stage: one dispatcher thread receives [`RawBatch`]es and hands each to the rayon
//! pool, which runs [`crate::decode::decode_batch`]. Rayon closures never block: they send
//! their result on an unbounded channel that only the dispatcher reads, and the dispatcher
//! keeps at most `max_in_flight` batches in the pool, so that channel stays small. Decoded
//! batches go on to the sink thread through the bounded `decoded` channel; answers the decoder
//! calls retryable go back to the planner, other failures stop the run.

use crate::bufpool::BufPool;
use crate::decode::{DecodeError, DecodeOptions};
use crate::msg::{DecodedBatch, RangeJob, RawBatch};
use crate::pipeline::control::{error_chain, Control, RunError};
use crate::pipeline::plan::{Retry, TICK};
use crate::rpc::client::backoff;
use crate::stats::{Progress, RequestCounters};
use crossbeam_channel::{never, select, unbounded, Receiver, SendTimeoutError, Sender};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

/// A finished decode: the job, the endpoint that answered, and the outcome.
type Done = (RangeJob, usize, u64, Result<DecodedBatch, DecodeFailure>);

/// Why a batch produced no rows.
#[derive(Debug)]
enum DecodeFailure {
    Error(DecodeError),
    Panic(String),
}

/// The decode function (always [`crate::decode::decode_batch`] outside of tests).
pub(crate) type DecodeFn = fn(&RawBatch, &DecodeOptions) -> Result<DecodedBatch, DecodeError>;

pub(crate) struct DecodeShared<'a> {
    pub decode: DecodeFn,
    pub opts: DecodeOptions,
    pub max_retries: u32,
    pub max_in_flight: usize,
    /// Where spent response bodies go back to (the I/O threads read the next ones into them).
    pub bodies: Arc<BufPool>,
    pub endpoints: Vec<String>,
    pub counters: &'a RequestCounters,
    pub progress: &'a Progress,
    pub ctl: &'a Control,
}

/// The dispatcher. Ends when `raw` is closed and every batch in the pool has come back, when
/// the sink thread has gone, or on abort; `decoded` and its `retries` clone drop on return.
pub(crate) fn dispatcher_thread(
    sh: &DecodeShared<'_>,
    pool: &rayon::ThreadPool,
    raw: Receiver<RawBatch>,
    decoded: Sender<DecodedBatch>,
    retries: Sender<Retry>,
) {
    let (done_tx, done_rx) = unbounded::<Done>();
    let closed = never::<RawBatch>();
    let mut in_flight = 0usize;
    let mut input_open = true;
    loop {
        if sh.ctl.aborted() {
            return;
        }
        if !input_open && in_flight == 0 {
            return;
        }
        let input = if input_open && in_flight < sh.max_in_flight {
            &raw
        } else {
            &closed
        };
        select! {
            recv(input) -> m => match m {
                Ok(batch) => {
                    in_flight += 1;
                    let tx = done_tx.clone();
                    let (opts, decode) = (sh.opts, sh.decode);
                    let bodies = Arc::clone(&sh.bodies);
                    pool.spawn(move || {
                        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            decode(&batch, &opts)
                        }));
                        let outcome = match outcome {
                            Ok(Ok(b)) => Ok(b),
                            Ok(Err(e)) => Err(DecodeFailure::Error(e)),
                            Err(p) => Err(DecodeFailure::Panic(panic_text(&p))),
                        };
                        let bytes = batch.body.len() as u64;
                        let RawBatch { job, endpoint, body, .. } = batch;
                        bodies.put(body);
                        // Unbounded: never blocks inside the pool.
                        let _ = tx.send((job, endpoint, bytes, outcome));
                    });
                }
                Err(_) => input_open = false,
            },
            recv(done_rx) -> m => {
                let Ok((job, endpoint, bytes, outcome)) = m else { return };
                in_flight -= 1;
                match outcome {
                    Ok(mut batch) => {
                        batch.counts.rpc_bytes = bytes;
                        if !send_decoded(&decoded, batch, sh.ctl) {
                            return;
                        }
                    }
                    Err(DecodeFailure::Error(e))
                        if e.is_retryable() && job.attempt < sh.max_retries =>
                    {
                        sh.counters.add_retry();
                        let attempt = job.attempt + 1;
                        let wait = backoff(attempt, job.seq);
                        sh.progress.warn(&format!(
                            "blocks {}..={} from {}: {} (attempt {attempt} of {} failed; retrying in {:.1} s)",
                            job.start,
                            job.end,
                            sh.endpoints.get(endpoint).map(String::as_str).unwrap_or("?"),
                            error_chain(&e),
                            sh.max_retries + 1,
                            wait.as_secs_f64()
                        ));
                        let _ = retries.send(Retry {
                            job: RangeJob { attempt, ..job },
                            not_before: Instant::now() + wait,
                        });
                    }
                    Err(failure) => {
                        let endpoint = sh.endpoints.get(endpoint).cloned().unwrap_or_default();
                        sh.ctl.fail(match failure {
                            DecodeFailure::Error(source) => RunError::Decode {
                                start: job.start,
                                end: job.end,
                                endpoint,
                                attempts: job.attempt + 1,
                                source: Box::new(source),
                            },
                            DecodeFailure::Panic(msg) => RunError::DecodePanic {
                                start: job.start,
                                end: job.end,
                                message: msg,
                            },
                        });
                        return;
                    }
                }
            },
            default(TICK) => {}
        }
    }
}

fn send_decoded(decoded: &Sender<DecodedBatch>, mut batch: DecodedBatch, ctl: &Control) -> bool {
    loop {
        match decoded.send_timeout(batch, TICK) {
            Ok(()) => return true,
            Err(SendTimeoutError::Timeout(b)) => {
                if ctl.aborted() {
                    return false;
                }
                batch = b;
            }
            Err(SendTimeoutError::Disconnected(_)) => return false,
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}
