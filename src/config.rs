//! Turns raw flags ([`crate::cli::ExportArgs`], [`crate::cli::PipelineArgs`]) and the
//! environment (`ETH_RPC_URL`) into a validated [`ExportConfig`]: endpoints checked and redacted for display, the block range
//! resolved from either flag style, entities, format, output target and thread counts decided.
//! Every problem becomes a [`ConfigError`] that names the flag and the offending value.

use crate::cli::{ExportArgs, PipelineArgs};
pub use crate::msg::BlockRange;
use crate::msg::{Entity, EntitySet, RowFormat};
use crate::rpc::client::{TlsRoots, TlsRootsError};
use crate::rpc::endpoints::Billing;
pub use crate::rpc::endpoints::{parse_endpoints, Endpoint, EndpointError};
pub use crate::sink::Output;
use crate::sink::OutputError;
use std::path::PathBuf;
use std::time::Duration;

/// Default blocks per JSON-RPC batch request (5 recent mainnet blocks with receipts ≈ 5 MB of
/// JSON, well under geth's 25 MB / 1,000-call batch limits). Larger batches save little: a
/// batch is one round trip, and the I/O threads overlap round trips; smaller batches keep the
/// data in flight, and so memory, small.
pub const DEFAULT_BATCH_SIZE: u64 = 5;
/// What one recent mainnet block occupies while in flight: ~1 MB of JSON answer plus ~1.4 MB
/// of serialized rows. Used only to size the default window.
pub const BLOCK_FLIGHT_BYTES: u64 = 2_500_000;
/// What the jobs in flight may hold at the default window (see [`default_window`]).
pub const WINDOW_BYTES: u64 = 200 << 20;
/// Default blocks per output file (as cryo's default chunk size).
pub const DEFAULT_CHUNK_SIZE: u64 = 1000;
pub const DEFAULT_MAX_RETRIES: u32 = 5;
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// The entities exported when `--entities` is not given.
pub const DEFAULT_ENTITIES: [Entity; 4] = [
    Entity::Blocks,
    Entity::Transactions,
    Entity::Logs,
    Entity::TokenTransfers,
];
/// geth refuses batches over 1,000 calls; with receipts a block costs two calls.
pub const MAX_BATCH_SIZE: u64 = 500;

/// A validated export.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    pub endpoints: Vec<Endpoint>,
    pub range: BlockRange,
    pub entities: EntitySet,
    pub format: RowFormat,
    /// Blocks per JSON-RPC batch (one HTTP POST).
    pub batch_size: u64,
    pub io_threads: usize,
    pub cpu_threads: usize,
    /// Retries per job after its first failure (0: fail at once).
    pub max_retries: u32,
    /// Limit for one HTTP request, response body included.
    pub timeout: Duration,
    /// Blocks per output file; jobs never straddle a chunk boundary.
    pub chunk_size: u64,
    pub output: Output,
    pub overwrite: bool,
    pub checkpoint: Option<PathBuf>,
    pub report: Option<PathBuf>,
    /// No progress display and no summary.
    pub quiet: bool,
    /// Most jobs in flight beyond the last one written (bounds the reorder buffer and so
    /// memory, whatever the range length). 0: [`default_window`] of the thread counts and
    /// batch size (see [`ExportConfig::effective_window`]).
    pub window: usize,
    /// Requests per second to each endpoint (`None`: unlimited); endpoint options override.
    pub requests_per_second: Option<f64>,
    /// What `requests_per_second` counts.
    pub billing: Billing,
    /// Requests in flight to each endpoint at most (`None`: up to `io_threads`).
    pub max_concurrency: Option<usize>,
    /// Rate-limit answers one job may get before the run fails (they do not count against
    /// `max_retries`).
    pub rate_limit_retries: u32,
    /// Certificates `https://` endpoints are checked against.
    pub tls_roots: TlsRoots,
}

impl ExportConfig {
    /// A configuration with every default: the given endpoint(s) (comma-separated) and range,
    /// default entities, JSONL, output `null` (decode and discard), quiet. Adjust the public fields after.
    pub fn new(rpc: &str, range: BlockRange) -> Result<ExportConfig, ConfigError> {
        let endpoints = parse_endpoints(rpc)?;
        let (io_threads, cpu_threads) = default_threads();
        Ok(ExportConfig {
            endpoints,
            range,
            entities: EntitySet::of(&DEFAULT_ENTITIES),
            format: RowFormat::Json,
            batch_size: DEFAULT_BATCH_SIZE,
            io_threads,
            cpu_threads,
            max_retries: DEFAULT_MAX_RETRIES,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            chunk_size: DEFAULT_CHUNK_SIZE,
            output: Output::null(),
            overwrite: false,
            checkpoint: None,
            report: None,
            quiet: true,
            window: 0,
            requests_per_second: None,
            billing: Billing::Requests,
            max_concurrency: None,
            rate_limit_retries: crate::rpc::job::DEFAULT_RATE_LIMIT_RETRIES,
            tls_roots: TlsRoots::Bundled,
        })
    }

    /// Validates `args`; `env_rpc` is the value of `ETH_RPC_URL` (used when `--rpc` is absent).
    pub fn from_args(
        args: &ExportArgs,
        env_rpc: Option<String>,
    ) -> Result<ExportConfig, ConfigError> {
        let range = resolve_range(args)?;
        ExportConfig::from_pipeline(&args.pipeline(), range, args.overwrite, env_rpc)
    }

    /// Validates the flags `export` and `stream` share, for `range`.
    pub fn from_pipeline(
        args: &PipelineArgs,
        range: BlockRange,
        overwrite: bool,
        env_rpc: Option<String>,
    ) -> Result<ExportConfig, ConfigError> {
        // No endpoint at all is `EndpointError::None`, as an empty list is.
        let rpc = args.rpc.clone().or(env_rpc).unwrap_or_default();
        let endpoints = parse_endpoints(&rpc)?;
        let entities = match &args.entities {
            Some(s) => parse_entities(s)?,
            None => EntitySet::of(&DEFAULT_ENTITIES),
        };
        let format = match args.format.as_deref().map(str::trim) {
            None | Some("jsonl") | Some("json") => RowFormat::Json,
            Some("csv") => RowFormat::Csv,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    flag: "--format",
                    value: other.to_string(),
                    reason: "expected jsonl or csv".into(),
                })
            }
        };
        let output = crate::sink::parse_output(
            args.output.as_deref(),
            &crate::sink::ParseContext {
                args,
                entities,
                format,
            },
        )?;

        let (default_io, default_cpu) = default_threads();
        let io_threads = positive("--io-threads", args.io_threads.unwrap_or(default_io), 1024)?;
        let cpu_threads = positive(
            "--cpu-threads",
            args.cpu_threads.unwrap_or(default_cpu),
            1024,
        )?;
        let batch_size = positive(
            "--batch-size",
            args.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            MAX_BATCH_SIZE,
        )?;
        let chunk_size = positive(
            "--chunk-size",
            args.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE),
            u64::MAX / 2,
        )?;
        let timeout = positive(
            "--timeout",
            args.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS),
            7 * 24 * 3600,
        )?;
        if let Some(r) = args.requests_per_second {
            if !(r.is_finite() && r > 0.0 && r <= 1e6) {
                return Err(ConfigError::Invalid {
                    flag: "--requests-per-second",
                    value: r.to_string(),
                    reason: "expected a number above 0 (fractions allowed)".into(),
                });
            }
        }
        if args.count_calls && args.requests_per_second.is_none() {
            return Err(ConfigError::Conflict(
                "--count-calls only applies with --requests-per-second".into(),
            ));
        }
        let max_concurrency = match args.max_concurrency {
            Some(n) => Some(positive("--max-concurrency", n, 4096)?),
            None => None,
        };
        let tls_roots = match &args.ca_bundle {
            Some(path) => TlsRoots::from_pem_file(std::path::Path::new(path))
                .map_err(|source| ConfigError::CaBundle { source })?,
            None => TlsRoots::Bundled,
        };
        if let Some(c) = &args.checkpoint {
            if c.is_empty() {
                return Err(ConfigError::Invalid {
                    flag: "--checkpoint",
                    value: String::new(),
                    reason: "expected a file path".into(),
                });
            }
        }
        Ok(ExportConfig {
            endpoints,
            range,
            entities,
            format,
            batch_size,
            io_threads,
            cpu_threads,
            max_retries: args.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            timeout: Duration::from_secs(timeout),
            chunk_size,
            output,
            overwrite,
            checkpoint: args
                .checkpoint
                .as_ref()
                .map(|p| crate::checkpoint::follow_links(std::path::Path::new(p))),
            report: args.report.as_ref().map(PathBuf::from),
            quiet: args.quiet,
            window: 0,
            requests_per_second: args.requests_per_second,
            billing: if args.count_calls {
                Billing::Calls
            } else {
                Billing::Requests
            },
            max_concurrency,
            rate_limit_retries: crate::rpc::job::DEFAULT_RATE_LIMIT_RETRIES,
            tls_roots,
        })
    }

    /// The window a run uses: `window`, or when it is 0 the default for the thread counts and
    /// batch size.
    pub fn effective_window(&self) -> usize {
        match self.window {
            0 => default_window(self.io_threads, self.cpu_threads, self.batch_size),
            w => w,
        }
    }

    /// Whether requests include `eth_getBlockReceipts` calls.
    pub fn needs_receipts(&self) -> bool {
        crate::decode::dataset::needs_receipts(self.entities)
    }
}

/// (I/O threads, CPU threads) from the core count: I/O threads mostly wait on the network.
pub fn default_threads() -> (usize, usize) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    ((2 * cores).clamp(4, 64), cores)
}

/// Jobs allowed in flight beyond the write position: one per thread plus a few to absorb
/// reordering, but no more than about [`WINDOW_BYTES`] of recent mainnet blocks (at least the
/// decode threads' share, so they never starve). Memory then stays flat whatever the range
/// (at the defaults on 2 cores, 219–290 MB of peak RSS was measured; see BENCHMARKS.md).
pub fn default_window(io_threads: usize, cpu_threads: usize, batch_size: u64) -> usize {
    let per_job = batch_size.max(1).saturating_mul(BLOCK_FLIGHT_BYTES);
    let by_memory = usize::try_from(WINDOW_BYTES / per_job).unwrap_or(usize::MAX);
    (io_threads + cpu_threads + 4).min(by_memory.max(cpu_threads + 4))
}

fn positive<T: Copy + PartialOrd + From<u8> + std::fmt::Display>(
    flag: &'static str,
    v: T,
    max: T,
) -> Result<T, ConfigError> {
    if v < T::from(1) || v > max {
        return Err(ConfigError::Invalid {
            flag,
            value: v.to_string(),
            reason: format!("expected 1 to {max}"),
        });
    }
    Ok(v)
}

/// Parses a comma-separated entity list (plural or singular names).
pub fn parse_entities(s: &str) -> Result<EntitySet, ConfigError> {
    let mut set = EntitySet::default();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let e = Entity::from_name(name)
            .or_else(|| Entity::ALL.into_iter().find(|e| e.item_type() == name))
            .ok_or_else(|| ConfigError::UnknownEntity {
                name: name.to_string(),
            })?;
        set.0[e as usize] = true;
    }
    if set.iter().next().is_none() {
        return Err(ConfigError::Invalid {
            flag: "--entities",
            value: s.to_string(),
            reason: format!("no entity given; valid: {}", entity_names()),
        });
    }
    Ok(set)
}

fn entity_names() -> String {
    Entity::ALL.map(Entity::name).join(", ")
}

/// Resolves `--blocks` or `--start-block`/`--end-block` into an inclusive range.
pub fn resolve_range(args: &ExportArgs) -> Result<BlockRange, ConfigError> {
    match (&args.blocks, &args.start_block, &args.end_block) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(ConfigError::Conflict(
            "give either --blocks or --start-block/--end-block, not both".into(),
        )),
        (Some(b), None, None) => parse_blocks(b),
        (None, Some(s), Some(e)) => {
            let start = parse_block_number(s).map_err(|reason| ConfigError::Invalid {
                flag: "--start-block",
                value: s.clone(),
                reason,
            })?;
            let end = parse_block_number(e).map_err(|reason| ConfigError::Invalid {
                flag: "--end-block",
                value: e.clone(),
                reason,
            })?;
            BlockRange::new(start, end).ok_or_else(|| ConfigError::BadRange {
                value: format!("--start-block {s} --end-block {e}"),
                reason: format!("end block {end} is before start block {start}"),
            })
        }
        (None, Some(_), None) => Err(ConfigError::Conflict(
            "--start-block needs --end-block (the last block, inclusive)".into(),
        )),
        (None, None, Some(_)) => Err(ConfigError::Conflict(
            "--end-block needs --start-block".into(),
        )),
        (None, None, None) => Err(ConfigError::NoRange),
    }
}

/// Parses cryo-style `A:B` (end exclusive), `A:+N` or a single block `A`.
pub fn parse_blocks(s: &str) -> Result<BlockRange, ConfigError> {
    let bad = |reason: String| ConfigError::BadRange {
        value: s.to_string(),
        reason,
    };
    let s = s.trim();
    let Some((a, b)) = s.split_once(':') else {
        let n = parse_block_number(s).map_err(bad)?;
        return Ok(BlockRange { start: n, end: n });
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return Err(bad("missing start block before `:`".into()));
    }
    let start = parse_block_number(a).map_err(bad)?;
    if b.is_empty() {
        return Err(bad(
            "missing end after `:` (open-ended ranges are not supported; use A:B or A:+N)".into(),
        ));
    }
    if let Some(n) = b.strip_prefix('+') {
        let count = parse_block_number(n).map_err(bad)?;
        if count == 0 {
            return Err(bad("the range is empty (+0 blocks)".into()));
        }
        let end = start
            .checked_add(count - 1)
            .ok_or_else(|| bad("the range goes past the largest block number".into()))?;
        return Ok(BlockRange { start, end });
    }
    let end_excl = parse_block_number(b).map_err(bad)?;
    if end_excl < start {
        return Err(bad(format!(
            "end block {end_excl} is before start block {start}"
        )));
    }
    if end_excl == start {
        return Err(bad(format!(
            "the range is empty (the end, {end_excl}, is exclusive; use {start}:+1 for one block)"
        )));
    }
    Ok(BlockRange {
        start,
        end: end_excl - 1,
    })
}

/// Parses a block number as people type them: `18000000`, `18_000_000`, `18M`, `18.5M`,
/// `18000k`, `1.2B`. The result must be a whole number that fits in 64 bits.
pub fn parse_block_number(s: &str) -> Result<u64, String> {
    let t: String = s.trim().chars().filter(|c| *c != '_').collect();
    if t.is_empty() {
        return Err("missing block number".into());
    }
    let (digits, mult_exp) = match t.as_bytes()[t.len() - 1] {
        b'k' | b'K' => (&t[..t.len() - 1], 3u32),
        b'm' | b'M' => (&t[..t.len() - 1], 6),
        b'b' | b'B' | b'g' | b'G' => (&t[..t.len() - 1], 9),
        _ => (&t[..], 0),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let bad = || {
        format!(
            "`{}` is not a block number (examples: 18000000, 18M, 18.5M, 18000k)",
            s.trim()
        )
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let too_big = || format!("`{}` is larger than the largest block number", s.trim());
    // value = (int . frac) * 10^mult_exp, computed exactly in u128.
    let frac = frac.trim_end_matches('0');
    if frac.len() as u32 > mult_exp {
        return Err(format!("`{}` is not a whole block number", s.trim()));
    }
    let mut value: u128 = 0;
    for c in int.bytes().chain(frac.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(c - b'0')))
            .ok_or_else(too_big)?;
    }
    value = value
        .checked_mul(10u128.pow(mult_exp - frac.len() as u32))
        .ok_or_else(too_big)?;
    u64::try_from(value).map_err(|_| too_big())
}

/// A problem with the command line or environment. Messages name the flag and value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("no block range: pass --blocks A:B (end exclusive) or --start-block A --end-block B (inclusive)")]
    NoRange,
    #[error("invalid block range `{value}`: {reason}")]
    BadRange { value: String, reason: String },
    #[error("unknown entity `{name}`; valid entities: {}", entity_names())]
    UnknownEntity { name: String },
    #[error("invalid {flag} `{value}`: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid --ca-bundle")]
    CaBundle {
        #[source]
        source: TlsRootsError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> BlockRange {
        BlockRange { start, end }
    }

    #[test]
    fn default_window_follows_threads_then_memory() {
        // 2 cores: one job per thread plus slack.
        assert_eq!(default_window(4, 2, 5), 10);
        // 16 cores: memory caps it at WINDOW_BYTES of 5-block jobs.
        let cap = (WINDOW_BYTES / (5 * BLOCK_FLIGHT_BYTES)) as usize;
        assert_eq!(default_window(32, 16, 5), cap.max(20));
        // Huge batches: never below what keeps the decode threads busy.
        assert_eq!(default_window(4, 2, 500), 6);
        let mut c =
            ExportConfig::new("http://127.0.0.1:1", BlockRange::new(0, 9).unwrap()).unwrap();
        c.io_threads = 4;
        c.cpu_threads = 2;
        assert_eq!(c.window, 0);
        assert_eq!(
            c.effective_window(),
            default_window(4, 2, DEFAULT_BATCH_SIZE)
        );
        c.window = 3;
        assert_eq!(c.effective_window(), 3);
    }

    #[test]
    fn block_numbers() {
        assert_eq!(parse_block_number("18000000"), Ok(18_000_000));
        assert_eq!(parse_block_number("18_000_000"), Ok(18_000_000));
        assert_eq!(parse_block_number("18M"), Ok(18_000_000));
        assert_eq!(parse_block_number("18.001M"), Ok(18_001_000));
        assert_eq!(parse_block_number("18000k"), Ok(18_000_000));
        assert_eq!(parse_block_number("1.5K"), Ok(1_500));
        assert_eq!(parse_block_number(".5M"), Ok(500_000));
        assert_eq!(parse_block_number("2.50M"), Ok(2_500_000));
        assert_eq!(parse_block_number("1B"), Ok(1_000_000_000));
        assert_eq!(parse_block_number("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_block_number("18446744073709551616").is_err());
        assert!(parse_block_number("99999999999999999999999999999999999999999M").is_err());
        assert!(parse_block_number("1.0001K").is_err());
        assert!(parse_block_number("1.5").is_err());
        assert!(parse_block_number("abc").is_err());
        assert!(parse_block_number("-5").is_err());
        assert!(parse_block_number("").is_err());
        assert!(parse_block_number("M").is_err());
        assert!(parse_block_number("0x10").is_err());
    }

    #[test]
    fn blocks_flag() {
        assert_eq!(
            parse_blocks("18000000:18000100").unwrap(),
            r(18_000_000, 18_000_099)
        );
        assert_eq!(
            parse_blocks("18M:18.001M").unwrap(),
            r(18_000_000, 18_000_999)
        );
        assert_eq!(
            parse_blocks("18000k:+100").unwrap(),
            r(18_000_000, 18_000_099)
        );
        assert_eq!(parse_blocks("5").unwrap(), r(5, 5));
        assert_eq!(parse_blocks("0:1").unwrap(), r(0, 0));
        assert!(parse_blocks("10:5").is_err());
        assert!(parse_blocks("10:10").is_err());
        assert!(parse_blocks("10:+0").is_err());
        assert!(parse_blocks("10:").is_err());
        assert!(parse_blocks(":10").is_err());
        assert!(parse_blocks("18446744073709551615:+2").is_err());
        assert_eq!(
            parse_blocks("18446744073709551615:+1").unwrap(),
            r(u64::MAX, u64::MAX)
        );
    }

    fn args(blocks: &str) -> ExportArgs {
        ExportArgs {
            rpc: Some("http://127.0.0.1:8545".into()),
            blocks: Some(blocks.into()),
            output: Some("null".into()),
            ..Default::default()
        }
    }

    #[test]
    fn range_flag_styles() {
        let mut a = args("1:2");
        a.start_block = Some("5".into());
        assert!(matches!(resolve_range(&a), Err(ConfigError::Conflict(_))));
        let a = ExportArgs {
            start_block: Some("100".into()),
            end_block: Some("199".into()),
            ..Default::default()
        };
        assert_eq!(resolve_range(&a).unwrap(), r(100, 199));
        let a = ExportArgs {
            start_block: Some("200".into()),
            end_block: Some("199".into()),
            ..Default::default()
        };
        let e = resolve_range(&a).unwrap_err().to_string();
        assert!(e.contains("before start"), "{e}");
        assert!(matches!(
            resolve_range(&ExportArgs::default()),
            Err(ConfigError::NoRange)
        ));
    }

    #[test]
    fn entities() {
        let s = parse_entities("blocks, transactions,receipts").unwrap();
        assert!(s.contains(Entity::Receipts) && !s.contains(Entity::Logs));
        assert!(crate::decode::dataset::needs_receipts(s));
        assert!(!crate::decode::dataset::needs_receipts(
            parse_entities("block,transaction").unwrap()
        ));
        let e = parse_entities("blocks,traces").unwrap_err().to_string();
        assert!(
            e.contains("traces") && e.contains("token_transfers") && e.contains("receipts"),
            "{e}"
        );
        assert!(parse_entities(" , ").is_err());
    }

    #[test]
    fn urls() {
        assert!(Endpoint::parse("http://127.0.0.1:8545").is_ok());
        assert!(Endpoint::parse("https://eth.example/v2/KEY").is_ok());
        for bad in [
            "127.0.0.1:8545",
            "ftp://h/",
            "http://",
            "not a url",
            "ws://h:1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        let e = Endpoint::parse("wss://h/v2/SECRETKEY?k=SECRETVAL")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRETKEY") && !e.contains("SECRETVAL"), "{e}");
        let eps = parse_endpoints("http://a:1, http://b:2").unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[1].to_string(), "http://b:2");
    }

    #[test]
    fn outputs() {
        let c = ExportConfig::from_args(&args("1:2"), None).unwrap();
        assert_eq!(c.output.kind(), "null");
        assert!(!c.needs_receipts() || c.entities.contains(Entity::Logs));
        let mut a = args("1:2");
        a.output = Some("-".into());
        a.format = Some("csv".into());
        assert!(matches!(
            ExportConfig::from_args(&a, None),
            Err(ConfigError::Output(OutputError::Conflict(_)))
        ));
        a.entities = Some("blocks".into());
        assert_eq!(
            ExportConfig::from_args(&a, None).unwrap().output.kind(),
            "stdout"
        );
        let mut a = args("1:2");
        a.output = Some("kafka://k1:9092,k2:9092".into());
        a.kafka_property = vec!["linger.ms=50".into()];
        a.topic_prefix = Some("eth".into());
        let out = ExportConfig::from_args(&a, None).unwrap().output;
        let k = out
            .options::<crate::sink::kafka::KafkaOptions>()
            .expect("kafka options");
        assert_eq!(k.brokers, "k1:9092,k2:9092");
        assert_eq!(k.overrides, vec![("linger.ms".into(), "50".into())]);
        assert_eq!(k.topic_prefix, "eth");
        let mut a = args("1:2");
        a.topic_prefix = Some("eth".into());
        let e = ExportConfig::from_args(&a, None).unwrap_err().to_string();
        assert!(
            e.contains("--topic-prefix only applies to --output kafka://"),
            "{e}"
        );
        let mut a = args("1:2");
        a.rpc = None;
        assert!(matches!(
            ExportConfig::from_args(&a, None),
            Err(ConfigError::Endpoint(EndpointError::None))
        ));
        assert!(ExportConfig::from_args(&a, Some("http://h:1".into())).is_ok());
        let mut a = args("1:2");
        a.batch_size = Some(0);
        assert!(ExportConfig::from_args(&a, None).is_err());
    }
}
