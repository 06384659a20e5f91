//! Fault injection for the dev node: the faults a real JSON-RPC endpoint shows (rate limits,
//! gateway errors, dropped connections, stalls, cut-off and garbage bodies, wrong or missing
//! items in a batch), a `--faults` spec such as `429:0.1,reset:0.05` or `all:0.2`, and the
//! schedule that decides per request which fault (if any) is served.
//!
//! The schedule is a pure function of `(seed, request index)`: the node numbers its JSON-RPC
//! (POST) requests 0, 1, 2, … in arrival order and request `i` gets
//! [`FaultSpec::decide`]`(seed, i)`, so a client that sends the same request sequence sees the
//! same faults on every run. Sub-choices (which batch item, where a body is cut) come from the
//! same per-request stream. Faults only change what is sent: the node's data is never touched,
//! and a retry of the request gets the clean answer unless the schedule picks a fault for the
//! retry too.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::str::FromStr;

/// One kind of fault. See the `ethetl-devnode --help` text for what each one sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// HTTP 429 with `Retry-After` (seconds) and a JSON-RPC error body.
    TooManyRequests,
    /// HTTP 200 with one JSON-RPC error object -32005 `rate limit exceeded` instead of the answer
    /// (for a batch: instead of the whole array).
    RateLimitRpc,
    /// HTTP 500 `Internal Server Error`.
    Http500,
    /// HTTP 502 `Bad Gateway` (an HTML page, as a load balancer sends it).
    Http502,
    /// HTTP 503 `Service Unavailable`.
    Http503,
    /// The connection is reset (TCP RST) after the request was read; no response bytes.
    Reset,
    /// The correct answer, sent only after the configured stall time.
    Stall,
    /// A prefix of the correct body: either with the full `Content-Length` and the connection
    /// closed early, or with a `Content-Length` matching the prefix (a body cut mid-JSON).
    Truncate,
    /// HTTP 200 with a body that is not JSON (an HTML page, binary noise or nothing).
    InvalidJson,
    /// HTTP 200 with one JSON-RPC error object -32603 `internal error` instead of the answer.
    BatchError,
    /// One item of the answer replaced by error -32000 `execution aborted (timeout = 5s)`.
    ItemError,
    /// One `eth_getBlockByNumber`/`ByHash` item answered `null` (block not yet indexed).
    NullBlock,
    /// One `eth_getBlockReceipts` item answered `null`.
    NullReceipts,
    /// Batch answers out of request order (legal JSON-RPC; a correct client must not care).
    Shuffle,
    /// One `eth_getBlockReceipts` answer with one receipt removed.
    ReceiptsMismatch,
    /// One `eth_getBlockReceipts` answer taken from another block (other `blockHash`).
    WrongBlock,
}

impl FaultKind {
    /// Every kind, in schedule order.
    pub const ALL: [FaultKind; 16] = [
        FaultKind::TooManyRequests,
        FaultKind::RateLimitRpc,
        FaultKind::Http500,
        FaultKind::Http502,
        FaultKind::Http503,
        FaultKind::Reset,
        FaultKind::Stall,
        FaultKind::Truncate,
        FaultKind::InvalidJson,
        FaultKind::BatchError,
        FaultKind::ItemError,
        FaultKind::NullBlock,
        FaultKind::NullReceipts,
        FaultKind::Shuffle,
        FaultKind::ReceiptsMismatch,
        FaultKind::WrongBlock,
    ];

    /// The name used in `--faults` specs.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::TooManyRequests => "429",
            FaultKind::RateLimitRpc => "ratelimit-rpc",
            FaultKind::Http500 => "500",
            FaultKind::Http502 => "502",
            FaultKind::Http503 => "503",
            FaultKind::Reset => "reset",
            FaultKind::Stall => "stall",
            FaultKind::Truncate => "truncate",
            FaultKind::InvalidJson => "invalid-json",
            FaultKind::BatchError => "batch-error",
            FaultKind::ItemError => "item-error",
            FaultKind::NullBlock => "null-block",
            FaultKind::NullReceipts => "null-receipts",
            FaultKind::Shuffle => "shuffle",
            FaultKind::ReceiptsMismatch => "receipts-mismatch",
            FaultKind::WrongBlock => "wrong-block",
        }
    }

    /// Position in [`FaultKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the fault alters items of a JSON-RPC answer (as opposed to the HTTP exchange or
    /// the whole body).
    pub fn is_item_level(self) -> bool {
        matches!(
            self,
            FaultKind::ItemError
                | FaultKind::NullBlock
                | FaultKind::NullReceipts
                | FaultKind::Shuffle
                | FaultKind::ReceiptsMismatch
                | FaultKind::WrongBlock
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault name that is not one of [`FaultKind::ALL`]'s names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault kind {name:?} (known: all, {})", known_kinds())]
pub struct UnknownFaultKind {
    pub name: String,
}

fn known_kinds() -> String {
    FaultKind::ALL
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for FaultKind {
    type Err = UnknownFaultKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownFaultKind { name: s.into() })
    }
}

/// Why a `--faults` spec was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultSpecError {
    #[error("fault spec item {item:?}: expected KIND:RATE (e.g. 429:0.1 or all:0.2)")]
    Syntax { item: String },
    #[error("fault spec item {item:?}")]
    Kind {
        item: String,
        #[source]
        source: UnknownFaultKind,
    },
    #[error("fault spec item {item:?}: rate must be a number in 0..=1")]
    Rate { item: String },
    #[error("fault rates add up to {total}, more than 1")]
    Total { total: f64 },
}

/// Which faults to serve and how often: a rate (probability per request) per kind; the rates
/// add up to at most 1. Parsed from `KIND:RATE[,KIND:RATE…]`, where `all:R` spreads `R` evenly
/// over every kind and `none` (or an empty string) means no faults; a kind named twice adds up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultSpec {
    /// Indexed by [`FaultKind::index`].
    rates: [f64; FaultKind::ALL.len()],
}

impl FaultSpec {
    /// No faults.
    pub fn none() -> Self {
        FaultSpec::default()
    }

    /// One kind at `rate`.
    pub fn only(kind: FaultKind, rate: f64) -> Self {
        FaultSpec::none().with(kind, rate)
    }

    /// Every kind, `total / 16` each.
    pub fn all(total: f64) -> Self {
        let mut s = FaultSpec::none();
        for k in FaultKind::ALL {
            s = s.with(k, total / FaultKind::ALL.len() as f64);
        }
        s
    }

    /// Adds `rate` to `kind`'s rate (no validation; [`FaultSpec::validate`] checks).
    pub fn with(mut self, kind: FaultKind, rate: f64) -> Self {
        self.rates[kind.index()] += rate;
        self
    }

    pub fn rate(&self, kind: FaultKind) -> f64 {
        self.rates[kind.index()]
    }

    pub fn total_rate(&self) -> f64 {
        self.rates.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.rates.iter().all(|r| *r <= 0.0)
    }

    /// Rates are finite, non-negative and add up to at most 1.
    pub fn validate(&self) -> Result<(), FaultSpecError> {
        for k in FaultKind::ALL {
            let r = self.rate(k);
            if !r.is_finite() || !(0.0..=1.0).contains(&r) {
                return Err(FaultSpecError::Rate {
                    item: format!("{}:{r}", k.name()),
                });
            }
        }
        let total = self.total_rate();
        if total > 1.0 + 1e-9 {
            return Err(FaultSpecError::Total { total });
        }
        Ok(())
    }

    /// The fault scheduled for JSON-RPC request number `request` (0-based, in arrival order)
    /// under `seed`. A scheduled item-level fault that does not apply to the request (say
    /// `null-receipts` for a batch without `eth_getBlockReceipts`) is not served; the request is
    /// answered cleanly.
    pub fn decide(&self, seed: u64, request: u64) -> Option<FaultKind> {
        self.draw(seed, request).map(|(k, _)| k)
    }

    /// The scheduled fault and the random stream for its sub-choices.
    pub(crate) fn draw(&self, seed: u64, request: u64) -> Option<(FaultKind, FaultRng)> {
        if self.is_empty() {
            return None;
        }
        let mut rng = FaultRng::new(seed, request);
        let u = rng.f64();
        let mut acc = 0.0;
        for k in FaultKind::ALL {
            let r = self.rate(k);
            if r <= 0.0 {
                continue;
            }
            acc += r;
            if u < acc {
                return Some((k, rng));
            }
        }
        None
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = FaultSpec::none();
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(spec);
        }
        for item in s.split(',') {
            let item = item.trim();
            let Some((kind, rate)) = item.rsplit_once(':') else {
                return Err(FaultSpecError::Syntax { item: item.into() });
            };
            let rate: f64 = rate
                .trim()
                .parse()
                .map_err(|_| FaultSpecError::Rate { item: item.into() })?;
            if !rate.is_finite() || !(0.0..=1.0).contains(&rate) {
                return Err(FaultSpecError::Rate { item: item.into() });
            }
            match kind.trim() {
                "all" => {
                    for k in FaultKind::ALL {
                        spec = spec.with(k, rate / FaultKind::ALL.len() as f64);
                    }
                }
                name => {
                    let k: FaultKind = name.parse().map_err(|source| FaultSpecError::Kind {
                        item: item.into(),
                        source,
                    })?;
                    spec = spec.with(k, rate);
                }
            }
        }
        spec.validate()?;
        Ok(spec)
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for k in FaultKind::ALL {
            let r = self.rate(k);
            if r > 0.0 {
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                write!(f, "{}:{r}", k.name())?;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Faults served so far, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    counts: [u64; FaultKind::ALL.len()],
}

impl FaultCounts {
    pub(crate) fn from_array(counts: [u64; FaultKind::ALL.len()]) -> Self {
        FaultCounts { counts }
    }

    pub fn get(&self, kind: FaultKind) -> u64 {
        self.counts[kind.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Kinds served at least once, with their counts.
    pub fn served(&self) -> impl Iterator<Item = (FaultKind, u64)> + '_ {
        FaultKind::ALL
            .iter()
            .map(|k| (*k, self.get(*k)))
            .filter(|(_, n)| *n > 0)
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, n) in self.served() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k} {n}")?;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random stream of one request: ChaCha8 keyed by splitmix64 of (seed, request index).
pub(crate) struct FaultRng(ChaCha8Rng);

impl FaultRng {
    pub fn new(seed: u64, request: u64) -> Self {
        let mut st = seed ^ 0x6661_756c_7473_0000;
        let a = splitmix64(&mut st);
        st ^= request;
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&a.to_le_bytes());
        for i in 1..4 {
            key[8 * i..8 * i + 8].copy_from_slice(&splitmix64(&mut st).to_le_bytes());
        }
        FaultRng(ChaCha8Rng::from_seed(key))
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.0.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        let s: FaultSpec = "429:0.1,500:0.05,reset:0.05".parse().unwrap();
        assert_eq!(s.rate(FaultKind::TooManyRequests), 0.1);
        assert_eq!(s.rate(FaultKind::Http500), 0.05);
        assert_eq!(s.rate(FaultKind::Reset), 0.05);
        assert!((s.total_rate() - 0.2).abs() < 1e-12);
        assert_eq!(s.to_string(), "429:0.1,500:0.05,reset:0.05");
        let all: FaultSpec = "all:0.32".parse().unwrap();
        for k in FaultKind::ALL {
            assert!((all.rate(k) - 0.02).abs() < 1e-12, "{k}");
        }
        assert_eq!("none".parse::<FaultSpec>().unwrap(), FaultSpec::none());
        assert_eq!(
            "stall:0.1,stall:0.2"
                .parse::<FaultSpec>()
                .unwrap()
                .rate(FaultKind::Stall),
            0.1 + 0.2
        );
        for k in FaultKind::ALL {
            assert_eq!(k.name().parse::<FaultKind>().unwrap(), k);
            assert_eq!(FaultKind::ALL[k.index()], k);
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(matches!(
            "429".parse::<FaultSpec>(),
            Err(FaultSpecError::Syntax { .. })
        ));
        assert!(matches!(
            "teapot:0.1".parse::<FaultSpec>(),
            Err(FaultSpecError::Kind { .. })
        ));
        assert!(matches!(
            "429:x".parse::<FaultSpec>(),
            Err(FaultSpecError::Rate { .. })
        ));
        assert!(matches!(
            "429:1.5".parse::<FaultSpec>(),
            Err(FaultSpecError::Rate { .. })
        ));
        assert!(matches!(
            "429:0.6,500:0.6".parse::<FaultSpec>(),
            Err(FaultSpecError::Total { .. })
        ));
    }

    #[test]
    fn schedule_is_deterministic_and_follows_the_rates() {
        let spec: FaultSpec = "429:0.2,reset:0.1".parse().unwrap();
        let a: Vec<_> = (0..5000).map(|i| spec.decide(7, i)).collect();
        let b: Vec<_> = (0..5000).map(|i| spec.decide(7, i)).collect();
        assert_eq!(a, b);
        let c: Vec<_> = (0..5000).map(|i| spec.decide(8, i)).collect();
        assert_ne!(a, c, "another seed gives another schedule");
        let n429 = a
            .iter()
            .filter(|k| **k == Some(FaultKind::TooManyRequests))
            .count();
        let nreset = a.iter().filter(|k| **k == Some(FaultKind::Reset)).count();
        let other = a
            .iter()
            .filter(|k| k.is_some_and(|k| k != FaultKind::TooManyRequests && k != FaultKind::Reset))
            .count();
        // 5000 draws: expected 1000 and 500, far inside these bounds.
        assert!((800..1200).contains(&n429), "{n429}");
        assert!((350..650).contains(&nreset), "{nreset}");
        assert_eq!(other, 0);
        assert!((0..100).all(|i| FaultSpec::none().decide(1, i).is_none()));
        assert!((0..100).all(|i| FaultSpec::all(1.0).decide(1, i).is_some()));
    }
}
