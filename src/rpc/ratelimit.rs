//! Per-endpoint throttles: a [`Pacer`] (a token bucket of depth one, in GCRA form) that spaces
//! requests so that an endpoint never sees more than its `--requests-per-second` in any
//! one-second window, and an [`Adaptive`] limit (AIMD) that halves an endpoint's concurrency
//! and rate whenever it answers with a rate limit and creeps back up with every success.

use std::time::{Duration, Instant};

/// Spaces requests `cost / rate` seconds apart (cost 1 per HTTP request, or the number of
/// calls where a provider bills per call). Reservations are made in order, so concurrent
/// threads get consecutive slots; there is no burst allowance, so any window of one second
/// holds at most `rate` units (plus the one that starts it).
#[derive(Clone, Debug)]
pub struct Pacer {
    /// Units per second (> 0).
    rate: f64,
    /// The theoretical arrival time of the next unit.
    next: Option<Instant>,
}

impl Pacer {
    /// `rate` must be positive and finite (config validation ensures it).
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            rate: if rate.is_finite() && rate > 0.0 {
                rate
            } else {
                f64::MAX
            },
            next: None,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Reserves a slot for a request of `cost` units at `factor` (0 < factor ≤ 1) of the
    /// configured rate and returns when the request may start (now or later).
    pub fn reserve(&mut self, cost: f64, factor: f64, now: Instant) -> Instant {
        let start = match self.next {
            Some(t) if t > now => t,
            _ => now,
        };
        let per_sec = self.rate * factor.clamp(1e-6, 1.0);
        let gap = Duration::from_secs_f64((cost.max(1.0) / per_sec).min(3600.0));
        self.next = Some(start + gap);
        start
    }
}

/// Additive-increase, multiplicative-decrease limit on one endpoint's concurrency and rate.
#[derive(Clone, Debug)]
pub struct Adaptive {
    /// Requests in flight allowed now (1 ≤ concurrency ≤ max_concurrency).
    concurrency: f64,
    max_concurrency: f64,
    /// Share of the configured request rate allowed now (MIN_FACTOR ≤ factor ≤ 1).
    factor: f64,
}

/// The rate never drops below this share of the configured one.
const MIN_FACTOR: f64 = 1.0 / 64.0;
/// Share of the configured rate won back by each success.
const FACTOR_STEP: f64 = 0.02;

impl Adaptive {
    pub fn new(max_concurrency: usize) -> Adaptive {
        let max = max_concurrency.max(1) as f64;
        Adaptive {
            concurrency: max,
            max_concurrency: max,
            factor: 1.0,
        }
    }

    /// Requests allowed in flight now.
    pub fn concurrency(&self) -> usize {
        self.concurrency.floor().max(1.0) as usize
    }

    /// Share of the configured rate allowed now.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The endpoint said "slow down": halve both.
    pub fn rate_limited(&mut self) {
        self.concurrency = (self.concurrency / 2.0).max(1.0);
        self.factor = (self.factor / 2.0).max(MIN_FACTOR);
    }

    /// A request succeeded: one more request in flight per `concurrency` successes, and a
    /// little more rate.
    pub fn succeeded(&mut self) {
        self.concurrency = (self.concurrency + 1.0 / self.concurrency).min(self.max_concurrency);
        self.factor = (self.factor + FACTOR_STEP).min(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_requests_and_counts_cost() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10.0);
        let starts: Vec<Duration> = (0..5).map(|_| p.reserve(1.0, 1.0, t0) - t0).collect();
        let ms: Vec<u128> = starts.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 100, 200, 300, 400]);
        // A batch billed as 5 calls takes five slots.
        let s = p.reserve(5.0, 1.0, t0) - t0;
        assert_eq!(s.as_millis(), 500);
        assert_eq!((p.reserve(1.0, 1.0, t0) - t0).as_millis(), 1000);
        // Half the rate: twice the gap.
        let mut p = Pacer::new(10.0);
        p.reserve(1.0, 0.5, t0);
        assert_eq!((p.reserve(1.0, 0.5, t0) - t0).as_millis(), 200);
        // Idle time is not saved up: no burst after a pause.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.reserve(1.0, 1.0, later), later);
        assert_eq!(
            (p.reserve(1.0, 1.0, later) - later).as_millis(),
            100,
            "no burst"
        );
    }

    #[test]
    fn any_second_holds_at_most_rate_plus_one() {
        let t0 = Instant::now();
        let mut p = Pacer::new(7.0);
        let starts: Vec<Instant> = (0..50).map(|_| p.reserve(1.0, 1.0, t0)).collect();
        for (i, s) in starts.iter().enumerate() {
            let in_window = starts[i..]
                .iter()
                .take_while(|t| t.duration_since(*s) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 8, "{in_window} requests in one second");
        }
    }

    #[test]
    fn aimd() {
        let mut a = Adaptive::new(8);
        assert_eq!(a.concurrency(), 8);
        a.rate_limited();
        assert_eq!(a.concurrency(), 4);
        assert_eq!(a.factor(), 0.5);
        for _ in 0..10 {
            a.rate_limited();
        }
        assert_eq!(a.concurrency(), 1);
        assert!(a.factor() >= MIN_FACTOR);
        for _ in 0..200 {
            a.succeeded();
        }
        assert_eq!(a.concurrency(), 8);
        assert_eq!(a.factor(), 1.0);
    }
}
