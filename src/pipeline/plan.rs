//! Cutting the block range into jobs, and the planner thread that issues them.
//!
//! [`Planner`] yields [`RangeJob`]s of at most `batch_size` blocks, with `seq` increasing by
//! one in block order, and never lets a job straddle an output chunk boundary (so each job's
//! rows land in exactly one file per entity). `planner_thread` feeds the I/O pool: it issues
//! a new job only while fewer than `window` jobs are outstanding (a credit comes back from the
//! sink thread for every batch written), re-issues failed jobs once their backoff has passed,
//! and closes the job channel when every job has been written or the run stops.

use crate::config::BlockRange;
use crate::msg::RangeJob;
use crate::pipeline::control::Control;
use crossbeam_channel::{select, Receiver, SendTimeoutError, Sender};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

pub use crate::msg::chunk_of;

/// Iterator over the jobs covering a range.
#[derive(Clone, Debug)]
pub struct Planner {
    range: BlockRange,
    batch_size: u64,
    chunk_size: u64,
    /// Next block to plan; `None` once the range is covered.
    next: Option<u64>,
    seq: u64,
}

impl Planner {
    /// `batch_size` and `chunk_size` must be at least 1.
    pub fn new(range: BlockRange, batch_size: u64, chunk_size: u64) -> Planner {
        Planner {
            range,
            batch_size: batch_size.max(1),
            chunk_size: chunk_size.max(1),
            next: Some(range.start),
            seq: 0,
        }
    }

    /// How many jobs the whole range takes.
    pub fn job_count(&self) -> u64 {
        self.clone().count() as u64
    }
}

impl Iterator for Planner {
    type Item = RangeJob;

    fn next(&mut self) -> Option<RangeJob> {
        let start = self.next?;
        let chunk = chunk_of(start, self.chunk_size, self.range);
        let end = start.saturating_add(self.batch_size - 1).min(chunk.end);
        self.next = if end >= self.range.end {
            None
        } else {
            Some(end + 1)
        };
        let job = RangeJob {
            seq: self.seq,
            start,
            end,
            attempt: 0,
        };
        self.seq += 1;
        Some(job)
    }
}

/// A failed job waiting for its backoff to pass. `job.attempt` is already incremented.
#[derive(Debug)]
pub struct Retry {
    pub job: RangeJob,
    pub not_before: Instant,
}

/// How often blocked loops look at the stop and abort flags.
pub(crate) const TICK: Duration = Duration::from_millis(50);

/// Issues jobs to `jobs` (see the module docs). Returns when every job has been written
/// (all credits are back), when the run stops or aborts, or when the I/O pool or the sink
/// thread has gone away. Dropping `jobs` on return is what ends the I/O threads.
pub(crate) fn planner_thread(
    mut plan: Planner,
    jobs: Sender<RangeJob>,
    retries: Receiver<Retry>,
    credits: Receiver<()>,
    window: usize,
    ctl: &Control,
) {
    let mut free = window.max(1);
    let mut outstanding: usize = 0;
    let mut plan_done = false;
    // Min-heap on (due time, seq) of jobs waiting to be retried.
    let mut waiting: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut waiting_jobs: std::collections::HashMap<u64, RangeJob> = Default::default();

    let send = |job: RangeJob| -> bool {
        let mut job = job;
        loop {
            if ctl.should_stop() {
                return false;
            }
            match jobs.send_timeout(job, TICK) {
                Ok(()) => return true,
                Err(SendTimeoutError::Timeout(j)) => job = j,
                Err(SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    };

    loop {
        if ctl.should_stop() {
            return;
        }
        while credits.try_recv().is_ok() {
            free += 1;
            outstanding = outstanding.saturating_sub(1);
        }
        while let Ok(r) = retries.try_recv() {
            waiting.push(Reverse((r.not_before, r.job.seq)));
            waiting_jobs.insert(r.job.seq, r.job);
        }
        let now = Instant::now();
        if let Some(Reverse((due, seq))) = waiting.peek().copied() {
            if due <= now {
                waiting.pop();
                if let Some(job) = waiting_jobs.remove(&seq) {
                    if !send(job) {
                        return;
                    }
                }
                continue;
            }
        }
        if !plan_done && free > 0 {
            match plan.next() {
                Some(job) => {
                    free -= 1;
                    outstanding += 1;
                    if !send(job) {
                        return;
                    }
                    continue;
                }
                None => plan_done = true,
            }
        }
        if plan_done && outstanding == 0 && waiting.is_empty() {
            return;
        }
        let wait = waiting
            .peek()
            .map(|Reverse((due, _))| due.saturating_duration_since(now))
            .unwrap_or(TICK)
            .min(TICK);
        select! {
            recv(credits) -> m => match m {
                Ok(()) => {
                    free += 1;
                    outstanding = outstanding.saturating_sub(1);
                }
                // The sink thread is gone: nothing more can be written.
                Err(_) => return,
            },
            recv(retries) -> m => if let Ok(r) = m {
                waiting.push(Reverse((r.not_before, r.job.seq)));
                waiting_jobs.insert(r.job.seq, r.job);
            },
            default(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(start: u64, end: u64) -> BlockRange {
        BlockRange { start, end }
    }

    #[test]
    fn chunks() {
        assert_eq!(chunk_of(1234, 1000, r(0, 10_000)), r(1000, 1999));
        assert_eq!(chunk_of(1234, 1000, r(1200, 1500)), r(1200, 1500));
        assert_eq!(chunk_of(u64::MAX, 1000, r(0, u64::MAX)).end, u64::MAX);
    }

    #[test]
    fn small_example() {
        let jobs: Vec<(u64, u64, u64)> = Planner::new(r(995, 1012), 4, 1000)
            .map(|j| (j.seq, j.start, j.end))
            .collect();
        assert_eq!(
            jobs,
            vec![
                (0, 995, 998),
                (1, 999, 999),
                (2, 1000, 1003),
                (3, 1004, 1007),
                (4, 1008, 1011),
                (5, 1012, 1012)
            ]
        );
    }

    #[test]
    fn top_of_u64() {
        let jobs: Vec<_> = Planner::new(r(u64::MAX - 2, u64::MAX), 10, 1000).collect();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].end, u64::MAX);
    }

    proptest! {
        #[test]
        fn jobs_tile_the_range(start in 0u64..5000, len in 1u64..3000, batch in 1u64..50, chunk in 1u64..700) {
            let range = r(start, start + len - 1);
            let mut expect = start;
            for (i, job) in Planner::new(range, batch, chunk).enumerate() {
                prop_assert_eq!(job.seq, i as u64);
                prop_assert_eq!(job.start, expect);
                prop_assert!(job.end >= job.start);
                prop_assert!(job.block_count() <= batch);
                // never straddles an aligned chunk boundary
                prop_assert_eq!(job.start / chunk, job.end / chunk);
                prop_assert_eq!(job.attempt, 0);
                expect = job.end + 1;
            }
            prop_assert_eq!(expect, range.end + 1);
        }
    }
}
