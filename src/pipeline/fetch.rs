//! The I/O stage: N blocking threads, each taking a [`RangeJob`], sending its one JSON-RPC
//! batch POST and passing the body on as a [`RawBatch`]. A retryable failure goes back to the
//! planner with its backoff (the thread moves on to the next job at once); a job out of
//! attempts fails the run with an error naming blocks, methods and endpoint.

use crate::pipeline::msg::{RangeJob, RawBatch};
use crate::pipeline::plan::{Retry, TICK};
use crate::pipeline::run::{error_chain, Control, RunError};
use crate::rpc::client::{backoff, RpcClient};
use crate::stats::{CallKind, Progress, RequestCounters};
use crossbeam_channel::{Receiver, SendTimeoutError, Sender};
use std::sync::Arc;
use std::time::Instant;

/// What every I/O thread shares. Owned (not borrowed) so that after a failure the run can
/// return without waiting for a request that is still in flight: such a thread finishes its
/// request (bounded by `--timeout`), finds the run aborted and exits on its own.
pub(crate) struct FetchShared {
    pub client: RpcClient,
    pub with_receipts: bool,
    pub max_retries: u32,
    pub counters: Arc<RequestCounters>,
    pub progress: Arc<Progress>,
    pub ctl: Arc<Control>,
}

/// One I/O thread. Ends when the job channel closes (the planner is done or stopped), when
/// the decode stage has gone, or on a fatal error (recorded in `ctl`). Its clones of `raw` and
/// `retries` are dropped on return.
pub(crate) fn io_thread(
    sh: &FetchShared,
    jobs: Receiver<RangeJob>,
    raw: Sender<RawBatch>,
    retries: Sender<Retry>,
) {
    let mut request = Vec::new();
    for job in jobs.iter() {
        // After a stop, jobs still queued are skipped: what is in flight finishes, nothing new
        // starts. After an abort nothing matters any more.
        if sh.ctl.aborted() {
            return;
        }
        if sh.ctl.should_stop() {
            continue;
        }
        let endpoint = sh.client.endpoint_for(&job);
        let sent = Instant::now();
        let result = sh
            .client
            .fetch(endpoint, &job, sh.with_receipts, &mut request);
        let size = result.as_ref().ok().map(|b| b.len() as u64);
        sh.counters
            .observe(endpoint, CallKind::Batch, sent.elapsed(), size);
        match result {
            Ok(body) => {
                sh.counters.add_request(body.len() as u64);
                let mut batch = RawBatch {
                    job,
                    endpoint,
                    with_receipts: sh.with_receipts,
                    body,
                };
                loop {
                    match raw.send_timeout(batch, TICK) {
                        Ok(()) => break,
                        Err(SendTimeoutError::Timeout(b)) => {
                            if sh.ctl.aborted() {
                                return;
                            }
                            batch = b;
                        }
                        Err(SendTimeoutError::Disconnected(_)) => return,
                    }
                }
            }
            Err(e) if e.is_retryable() && job.attempt < sh.max_retries => {
                sh.counters.add_retry();
                let attempt = job.attempt + 1;
                // The node's Retry-After, when longer than our own backoff, wins.
                let wait = backoff(attempt, job.seq).max(e.retry_after().unwrap_or_default());
                sh.progress.warn(&format!(
                    "{} (attempt {attempt} of {} failed; retrying in {:.1} s)",
                    error_chain(&e),
                    sh.max_retries + 1,
                    wait.as_secs_f64()
                ));
                let retry = Retry {
                    job: RangeJob { attempt, ..job },
                    not_before: Instant::now() + wait,
                };
                // The planner is gone only when the run is stopping: then nothing is retried.
                let _ = retries.send(retry);
            }
            Err(e) => {
                sh.ctl.fail(RunError::Fetch {
                    attempts: job.attempt + 1,
                    source: e,
                });
                return;
            }
        }
    }
}
