//! The I/O stage: N blocking threads, each taking a [`RangeJob`] and turning it into a
//! [`RawBatch`] with [`JobFetcher::fetch`], which spreads the requests over the endpoints,
//! waits for rate limits, retries, splits batches and falls back to per-transaction receipts
//! as needed (see [`crate::rpc::job`]). A job out of attempts, or failing in a way no retry can
//! fix, fails the run with an error naming blocks, method and endpoint. A job that comes back
//! from the decode stage (its answers were inconsistent) is counted against the endpoint that
//! answered it and fetched again.

use crate::config::ExportConfig;
use crate::msg::{RangeJob, RawBatch};
use crate::pipeline::control::{error_chain, Control, RunError};
use crate::pipeline::plan::TICK;
use crate::rpc::client::{RpcClient, RpcError};
use crate::rpc::endpoints::{Pool, PoolConfig};
use crate::rpc::job::{FetchError, FetchPolicy, JobFetcher, Observer, RetryNote};
use crate::stats::{Progress, RequestCounters};
use crossbeam_channel::{Receiver, SendTimeoutError, Sender};
use std::sync::{Arc, Mutex};

/// What every I/O thread shares. Owned (not borrowed) so that after a failure the run can
/// return without waiting for a request that is still in flight: such a thread finishes its
/// request (bounded by `--timeout`), finds the run aborted and exits on its own.
pub(crate) struct FetchShared {
    pub fetcher: JobFetcher,
    pub with_receipts: bool,
    pub counters: Arc<RequestCounters>,
    pub progress: Arc<Progress>,
    pub ctl: Arc<Control>,
    /// Which endpoint answered each outstanding job.
    pub served_by: ServedBy,
}

/// The RPC side of an export: its endpoints with their options and limits, the HTTP client
/// (with `config.tls_roots`) and the retry policy.
fn job_fetcher(config: &ExportConfig) -> JobFetcher {
    let pool = Pool::new(
        config
            .endpoints
            .iter()
            .map(|e| (e.redacted().to_string(), e.options().clone()))
            .collect(),
        &PoolConfig {
            requests_per_second: config.requests_per_second,
            billing: config.billing,
            max_concurrency: config.max_concurrency,
            threads: config.io_threads,
        },
    );
    let client = RpcClient::with_roots(
        config.endpoints.clone(),
        config.io_threads,
        config.timeout,
        &config.tls_roots,
    );
    let mut policy = FetchPolicy::new(config.max_retries);
    policy.rate_limit_retries = config.rate_limit_retries;
    JobFetcher::new(client, pool, policy)
}

impl FetchShared {
    /// Everything the I/O threads of a run of `config` share.
    pub(crate) fn new(
        config: &ExportConfig,
        counters: Arc<RequestCounters>,
        progress: Arc<Progress>,
        ctl: Arc<Control>,
    ) -> FetchShared {
        FetchShared {
            fetcher: job_fetcher(config),
            with_receipts: config.needs_receipts(),
            counters,
            progress,
            ctl,
            // More slots than jobs can be outstanding (the planner's window).
            served_by: ServedBy::new(2 * config.effective_window() + config.io_threads + 1),
        }
    }
}

/// The endpoint that answered each job still in flight, so that a job the decode stage sends
/// back is counted against it. A ring indexed by `seq`: outstanding jobs span fewer `seq`s
/// than its size (the planner's window bounds them), and each slot remembers its `seq`.
pub(crate) struct ServedBy {
    slots: Mutex<Vec<Option<(u64, usize)>>>,
}

impl ServedBy {
    /// `capacity` must exceed the number of jobs that can be outstanding at once.
    pub(crate) fn new(capacity: usize) -> ServedBy {
        ServedBy {
            slots: Mutex::new(vec![None; capacity.max(1)]),
        }
    }

    fn record(&self, seq: u64, endpoint: usize) {
        if let Ok(mut s) = self.slots.lock() {
            let n = s.len() as u64;
            s[(seq % n) as usize] = Some((seq, endpoint));
        }
    }

    fn take(&self, seq: u64) -> Option<usize> {
        let mut s = self.slots.lock().ok()?;
        let n = s.len() as u64;
        let slot = &mut s[(seq % n) as usize];
        match *slot {
            Some((q, ep)) if q == seq => {
                *slot = None;
                Some(ep)
            }
            _ => None,
        }
    }
}

/// Reports a fetch's events to the run's counters and progress display.
struct Events<'a> {
    sh: &'a FetchShared,
}

impl Observer for Events<'_> {
    fn stopped(&self) -> bool {
        self.sh.ctl.should_stop()
    }

    fn retrying(&self, error: &RpcError, note: &RetryNote) {
        self.sh.counters.add_retry();
        self.sh.counters.failed(error_chain(error));
        let what = match note.rate_limited {
            Some(n) => format!(
                "rate limited ({n} of at most {} times; not counted as a failed attempt); \
                 this endpoint pauses {:.1} s",
                self.sh.fetcher.policy().rate_limit_retries,
                note.wait.as_secs_f64()
            ),
            None if note.other_endpoints => format!(
                "attempt {} of {} failed; retrying on another endpoint, or here in {:.1} s",
                note.failures,
                note.max_attempts,
                note.wait.as_secs_f64()
            ),
            None => format!(
                "attempt {} of {} failed; retrying in {:.1} s",
                note.failures,
                note.max_attempts,
                note.wait.as_secs_f64()
            ),
        };
        self.sh
            .progress
            .warn(&format!("{} ({what})", error_chain(error)));
    }

    fn notice(&self, message: &str) {
        self.sh.progress.info(message);
    }

    fn answered(&self, bytes: u64) {
        self.sh.counters.add_request(bytes);
    }

    fn exchanged(&self, endpoint: usize, latency: std::time::Duration, clean: Option<u64>) {
        self.sh.counters.exchanged(endpoint, latency, clean);
    }
}

/// One I/O thread. Ends when the job channel closes (the planner is done or stopped), when
/// the decode stage has gone, or on a fatal error (recorded in `ctl`). Its clone of `raw` is
/// dropped on return.
pub(crate) fn io_thread(sh: &FetchShared, jobs: Receiver<RangeJob>, raw: Sender<RawBatch>) {
    let events = Events { sh };
    for job in jobs.iter() {
        // After a stop, jobs still queued are skipped: what is in flight finishes, nothing new
        // starts. After an abort nothing matters any more.
        if sh.ctl.aborted() {
            return;
        }
        if sh.ctl.should_stop() {
            continue;
        }
        if job.attempt > 0 {
            // Back from the decode stage: the answers were rejected.
            if let Some(ep) = sh.served_by.take(job.seq) {
                if let Some(d) = sh.fetcher.pool().rejected(ep) {
                    events.notice(&format!(
                        "{} gave inconsistent answers repeatedly; not using it for {:.0} s",
                        sh.fetcher.pool().name(ep),
                        d.as_secs_f64()
                    ));
                }
            }
        }
        match sh.fetcher.fetch(&job, sh.with_receipts, &events) {
            Ok(fetched) => {
                sh.served_by.record(job.seq, fetched.endpoint);
                let mut batch = RawBatch {
                    job,
                    endpoint: fetched.endpoint,
                    with_receipts: sh.with_receipts,
                    body: fetched.body,
                    depth: Some(fetched.depth),
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
            // Stopping: this job is not written, and the checkpoint stays before it.
            Err(FetchError::Stopped) => {}
            Err(FetchError::Failed { attempts, source }) => {
                sh.ctl.fail(RunError::Fetch { attempts, source });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_by_remembers_outstanding_jobs() {
        let s = ServedBy::new(4);
        s.record(10, 1);
        s.record(11, 0);
        assert_eq!(s.take(10), Some(1));
        assert_eq!(s.take(10), None, "taken once");
        // seq 15 reuses 11's slot: 11 is forgotten, never misattributed.
        s.record(15, 2);
        assert_eq!(s.take(11), None);
        assert_eq!(s.take(15), Some(2));
    }
}
