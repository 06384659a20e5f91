//! Raw command-line flags, exactly as typed: argh structs and their `--help` text, no logic.
//! Validation and resolution (ranges, URLs, defaults from the environment and the core count)
//! live in [`crate::config`]; environment variables, the config file and aliases are merged
//! into the arguments before argh sees them ([`crate::settings`]).
//!
//! # One flag set for `export` and `stream`
//!
//! argh has no `flatten`, so the flags every pipeline command takes are written once, in
//! [`pipeline_flags!`], and that macro pastes them into both [`ExportArgs`] and
//! [`StreamArgs`] and into [`PipelineArgs`], the plain struct [`crate::config`] resolves.
//! This keeps one definition per flag (name, type, help) while argh still generates each
//! command's parser and `--help` itself: a shared struct parsed from the remaining arguments
//! would split every `--help` in two, and a wrapper type per command would hide the flags from
//! argh's help. The `tests/cli.rs` test compares both commands' `--help` and fails when a
//! shared flag is missing or differs.

use argh::{ArgsInfo, FromArgs};

/// ethetl: export Ethereum/EVM blocks, transactions, logs, token transfers and receipts from
/// JSON-RPC nodes to files, stdout or Kafka, in ethereum-etl 2.4.2's schema.
#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
#[argh(help_triggers("-h", "--help"))]
pub struct Cli {
    /// print the version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,

    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, ArgsInfo, Debug, PartialEq)]
#[argh(subcommand)]
pub enum Command {
    Export(ExportArgs),
    Stream(StreamArgs),
    Config(ConfigArgs),
}

/// Print the effective configuration of an `export` or `stream` command line: every setting
/// with its value (secrets redacted) and where it came from (flag, environment, config file
/// or default), then exit without running anything.
#[derive(FromArgs, ArgsInfo, Debug, PartialEq, Default)]
#[argh(
    subcommand,
    name = "config",
    help_triggers("-h", "--help"),
    example = "ethetl config export --config ethetl.toml --blocks 18M:+100",
    example = "ETHETL_BATCH_SIZE=10 ethetl config stream --output kafka://127.0.0.1:9092"
)]
pub struct ConfigArgs {
    /// the command and its flags, as they would be given to ethetl: `export ...` or
    /// `stream ...`
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

/// Pastes the flags shared by `export` and `stream` after the command's own fields:
/// `pipeline_flags!(callback!{ tokens })` calls `callback!{ tokens { shared fields } }`.
/// Each shared field is its `///` help, one `#[argh(...)]`, then `name: Type,` where the type
/// is a plain or one-parameter generic name (`bool`, `Option<u64>`, `Vec<String>`): types are
/// matched as tokens, not as `ty` fragments, because argh's derive recognises `Option` and
/// `Vec` by their tokens and cannot see inside an interpolated `ty`.
macro_rules! pipeline_flags {
    ($callback:ident ! { $($head:tt)* }) => {
        $callback! { $($head)* {
            /// settings file (TOML): every flag has a key of the same name (rpc = "...",
            /// batch-size = 10); `[export]` and `[stream]` tables hold keys for one command.
            /// Flags beat ETHETL_<FLAG> environment variables, which beat the file. Default:
            /// the ETHETL_CONFIG environment variable, else none
            #[argh(option)]
            config: Option<String>,

            /// the JSON-RPC endpoint(s), http:// or https://, comma-separated; several
            /// endpoints share the jobs round-robin, and one that keeps failing is left out for
            /// a while (1 s, doubling up to 60 s) and probed again while the others go on.
            /// Settings may follow a URL, space-separated: weight=N (share of the jobs), rps=R,
            /// concurrency=N, max-calls=N (batch limit), bill=requests|calls, e.g. "http://a:8545
            /// weight=2,https://b/v2/KEY rps=10". @FILE reads entries from a file, one per line
            /// (keeps API keys off the command line). Default: ETHETL_RPC, else ETH_RPC_URL. API
            /// keys in URLs are never printed. Alias: --provider-uri
            #[argh(option)]
            rpc: Option<String>,

            /// comma-separated entities: blocks, transactions, logs, token_transfers, receipts.
            /// Default: blocks,transactions,logs,token_transfers. Receipts are fetched from the
            /// node only if an entity needs them (logs, token_transfers, receipts). A stream
            /// also writes reorg rows
            #[argh(option)]
            entities: Option<String>,

            /// row format: jsonl (ethereum-etl stream items, the default) or csv
            /// (ethereum-etl export columns; directory output, or stdout with one entity)
            #[argh(option, short = 'f')]
            format: Option<String>,

            /// where rows go: a directory (DIR/<entity>/<first>-<last>.<jsonl|csv>, files of
            /// aligned --chunk-size blocks), `-` for stdout, `null` to decode and discard (dry
            /// runs, benchmarks), or kafka://host:port[,host:port]
            #[argh(option, short = 'o')]
            output: Option<String>,

            /// blocks per JSON-RPC batch request (default 5; with the thread counts it sets how
            /// much data is in flight: about 2.5 MB per recent mainnet block)
            #[argh(option)]
            batch_size: Option<u64>,

            /// concurrent HTTP requests, each on its own blocking thread (default: 2 per core,
            /// at least 4). Alias: --max-workers
            #[argh(option)]
            io_threads: Option<usize>,

            /// threads that parse responses and build rows (default: one per core)
            #[argh(option)]
            cpu_threads: Option<usize>,

            /// retries for transport errors, resets, timeouts, HTTP 5xx, truncated or invalid
            /// bodies, JSON-RPC error objects and null results (blocks or receipts not indexed
            /// yet), with exponential backoff and jitter (250 ms doubling, at most 15 s; at once
            /// on another healthy endpoint): a batch of blocks fails after this many retries in
            /// a row without a new answer (answers already received are kept), and after this
            /// many inconsistent answers (wrong block, receipts that do not match); a stream then
            /// tries the round again after a pause. Default 5; 0 fails at the first error. Rate
            /// limits (HTTP 429, JSON-RPC rate-limit errors) wait for Retry-After and do not
            /// count (at most 30 per batch); batches refused as too large are split and do not
            /// count either
            #[argh(option)]
            max_retries: Option<u32>,

            /// seconds allowed for one HTTP request, including reading the response (default
            /// 60); also bounds how long a stop waits for requests in flight
            #[argh(option)]
            timeout: Option<u64>,

            /// most requests per second to each endpoint (fractions allowed; default
            /// unlimited). Requests are spaced evenly (no bursts), so no one-second window sees
            /// more; a batch counts as one request unless --count-calls. Halved while an
            /// endpoint rate-limits, regained as it answers. Per endpoint: rps=R in --rpc
            #[argh(option)]
            requests_per_second: Option<f64>,

            /// make --requests-per-second count every JSON-RPC call of a batch, for providers
            /// that bill per call (compute units, credits); batches then carry at most one
            /// second's worth of calls. Per endpoint: bill=calls in --rpc
            #[argh(switch)]
            count_calls: bool,

            /// most requests in flight to each endpoint (default: --io-threads); halved while an
            /// endpoint rate-limits, regained as it answers. Per endpoint: concurrency=N in
            /// --rpc. Alias: --max-concurrent-requests
            #[argh(option)]
            max_concurrency: Option<usize>,

            /// PEM file with the CA certificates to trust for https:// endpoints (a private CA)
            /// instead of the bundled Mozilla roots. Certificates are always verified
            #[argh(option)]
            ca_bundle: Option<String>,

            /// blocks per output file; files cover aligned chunks (default 1000)
            #[argh(option)]
            chunk_size: Option<u64>,

            /// checkpoint file: its first line is the last block N such that N and every block
            /// before it are safely written (as ethereum-etl's last_synced_block.txt); an
            /// existing one makes the run resume after it
            #[argh(option)]
            checkpoint: Option<String>,

            /// write a JSON run summary to this file at the end: counts, bytes, timing, and per
            /// endpoint (URL redacted) requests, calls, retries by cause, rate limits, batch
            /// splits, receipts fallback, benches and latency (mean, p50, max)
            #[argh(option)]
            report: Option<String>,

            /// the Kafka topic prefix: topics are <prefix>.<entity> (<prefix>.reorgs for a
            /// stream's reorg rows), or bare <entity> when empty (the default, as
            /// ethereum-etl)
            #[argh(option)]
            topic_prefix: Option<String>,

            /// partitions for Kafka topics ethetl creates (default 1; existing topics are kept
            /// as they are)
            #[argh(option)]
            partitions: Option<i32>,

            /// librdkafka property key=value (repeatable; applied after --kafka-config)
            #[argh(option, short = 'X')]
            kafka_property: Vec<String>,

            /// file of librdkafka properties, one key=value per line (# starts a comment)
            #[argh(option)]
            kafka_config: Option<String>,

            /// serve live statistics over HTTP: PORT or ADDR:PORT (a bare port binds 127.0.0.1;
            /// port 0 picks a free one, printed on stderr): / is a status page, /stats JSON,
            /// /metrics Prometheus text, /healthz 200 or 503
            #[argh(option)]
            http: Option<String>,

            /// no progress, status lines or final summary on stderr (errors are still printed)
            #[argh(switch, short = 'q')]
            quiet: bool,
        } }
    };
}

/// Defines a command struct from its own fields followed by the shared ones (see
/// [`pipeline_flags!`]).
macro_rules! command_struct {
    (
        $(#[$cm:meta])*
        pub struct $name:ident { $( $(#[$fm:meta])* $f:ident : $t:ident $(<$g:ident>)?, )* }
        { $( $(#[doc = $sdoc:literal])* #[argh($($sargh:tt)*)] $sf:ident : $st:ident $(<$sg:ident>)?, )* }
    ) => {
        $(#[$cm])*
        pub struct $name {
            $( $(#[$fm])* pub $f: $t $(<$g>)?, )*
            $( $(#[doc = $sdoc])* #[argh($($sargh)*)] pub $sf: $st $(<$sg>)?, )*
        }

        impl $name {
            /// The shared flags, for [`crate::config`].
            pub fn pipeline(&self) -> PipelineArgs {
                PipelineArgs { $( $sf: self.$sf.clone(), )* }
            }
        }
    };
}

/// Defines [`PipelineArgs`] from the shared fields (see [`pipeline_flags!`]).
macro_rules! pipeline_struct {
    ( { $( $(#[doc = $sdoc:literal])* #[argh($($sargh:tt)*)] $sf:ident : $st:ident $(<$sg:ident>)?, )* } ) => {
        /// The flags `export` and `stream` share, as typed (see the module docs). Build it from
        /// parsed flags with `ExportArgs::pipeline`/`StreamArgs::pipeline`, or fill it in
        /// directly when embedding.
        #[derive(Clone, Debug, PartialEq, Default)]
        pub struct PipelineArgs {
            $( $(#[doc = $sdoc])* pub $sf: $st $(<$sg>)?, )*
        }

        impl PipelineArgs {
            /// The long names (`batch-size`) of the shared flags, in `--help` order.
            pub const FLAGS: &'static [&'static str] = &[$(stringify!($sf)),*];

            /// Whether the flag named `long` (`"topic-prefix"`, without dashes) was given: an
            /// option with a value, a switch that is on, a repeatable flag given at least once.
            /// `None` for a name that is not a shared flag.
            pub fn is_set(&self, long: &str) -> Option<bool> {
                let field = long.replace('-', "_");
                $(
                    if field == stringify!($sf) {
                        return Some(Given::given(&self.$sf));
                    }
                )*
                None
            }
        }
    };
}

/// Whether a flag's value means "given".
trait Given {
    fn given(&self) -> bool;
}

impl<T> Given for Option<T> {
    fn given(&self) -> bool {
        self.is_some()
    }
}

impl Given for bool {
    fn given(&self) -> bool {
        *self
    }
}

impl<T> Given for Vec<T> {
    fn given(&self) -> bool {
        !self.is_empty()
    }
}

pipeline_flags!(pipeline_struct! {});

pipeline_flags!(command_struct! {
    /// Export a block range. Files go to DIR/<entity>/<first>-<last>.<jsonl|csv>, one file per
    /// --chunk-size aligned blocks; `--output -` streams JSONL items to stdout; `--output null`
    /// decodes everything and writes nothing; `--output kafka://host:port` produces to Kafka.
    #[derive(FromArgs, ArgsInfo, Debug, PartialEq, Default)]
    #[argh(
        subcommand,
        name = "export",
        help_triggers("-h", "--help"),
        example = "ethetl export --rpc http://127.0.0.1:8545 --blocks 18000000:18000100 --output out/",
        example = "ethetl export --start-block 18000000 --end-block 18000099 --entities blocks,transactions --format csv --output out/",
        example = "ethetl export --blocks 18M:+1000 --output - | head",
        example = "ethetl export --blocks 18M:18.001M --output kafka://localhost:9092 --topic-prefix eth",
        note = "Settings: every flag can also be set by an environment variable ETHETL_<FLAG> (ETHETL_BATCH_SIZE=10; switches take 1/true/yes or 0/false/no; repeatable flags one value per line) or a key in the --config file. A flag beats the environment, which beats the file. `ethetl config export ...` shows the result and where each value came from.",
        note = "Exit status: 0 on success, 2 on a usage, configuration or fatal error, and 2 after an interrupt (SIGINT/SIGTERM), which stops cleanly and reports where the checkpoint is."
    )]
    pub struct ExportArgs {
        /// block range, cryo style: A:B (end exclusive), A:+N (N blocks), or a single block A;
        /// numbers take K/M suffixes and decimals (18M:18.001M, 18000k:+100)
        #[argh(option, short = 'b')]
        blocks: Option<String>,

        /// first block, inclusive (ethereum-etl style; use with --end-block instead of
        /// --blocks)
        #[argh(option, short = 's')]
        start_block: Option<String>,

        /// last block, inclusive (ethereum-etl style; use with --start-block)
        #[argh(option, short = 'e')]
        end_block: Option<String>,

        /// replace output files that already exist (otherwise an existing file in the range
        /// is an error)
        #[argh(switch)]
        overwrite: bool,
    }
});

pipeline_flags!(command_struct! {
    /// Follow the chain head: export every block up to head - lag, then keep polling for new
    /// ones. Reorgs are detected from parent hashes: one `reorg` row per orphaned block goes to
    /// the `reorgs` entity (`<prefix>.reorgs` topic, `DIR/reorgs/`, or stdout) before the new
    /// canonical blocks are exported again. Stops cleanly on SIGINT/SIGTERM (exit 0) or at
    /// --stop-at-block. With a directory output, each round writes its own files, and files of
    /// blocks the stream writes again are replaced.
    #[derive(FromArgs, ArgsInfo, Debug, PartialEq, Default)]
    #[argh(
        subcommand,
        name = "stream",
        help_triggers("-h", "--help"),
        example = "ethetl stream --rpc \"$ETH_RPC_URL\" --output kafka://127.0.0.1:9092 --topic-prefix eth --checkpoint last_synced_block.txt --lag 2 --poll-interval 12 --http 127.0.0.1:9898",
        example = "ethetl stream --start-block 20M --output - --entities blocks,transactions",
        example = "ethetl stream --output out/ --checkpoint out/last_synced_block.txt --stop-at-block 20000100",
        note = "Checkpoint: the first line is the last block N such that N and every block before it are durable in the output (as ethereum-etl's last_synced_block.txt); the lines after it hold the hashes of the last blocks (--max-reorg-depth + 1), which a restarted stream uses to detect reorgs of blocks an earlier run exported. A restart resumes after the checkpoint; rows of the last batches that were not yet acknowledged may be written again, never skipped.",
        note = "HTTP (--http): / is a status page that refreshes itself, /stats is JSON (blocks_streamed, transactions_streamed, logs, token_transfers, current_block, head, lag, rates, uptime, last_error, ...), /metrics is Prometheus text (rows by entity, RPC requests, errors and latency by endpoint, output deliveries, checkpoint, head, lag, reorgs), /healthz answers 200 or 503. There is no authentication: bind a loopback address (the default for a bare port) unless the network is trusted.",
        note = "Settings: every flag can also be set by an environment variable ETHETL_<FLAG> or a key in the --config file (see `ethetl export --help`); `ethetl config stream ...` shows the result.",
        note = "Exit status: 0 when stopped by SIGINT/SIGTERM (after flushing the output and storing the checkpoint) or at --stop-at-block; 2 on a usage, configuration or fatal error (a failing output, a reorg deeper than --max-reorg-depth). A second signal exits at once with 2. Node errors are retried for as long as the stream runs."
    )]
    pub struct StreamArgs {
        /// first block to export when there is no checkpoint yet (default: the head - lag at
        /// start); an existing checkpoint wins
        #[argh(option, short = 's')]
        start_block: Option<String>,

        /// stay this many blocks behind the head (default 0); reorgs shallower than the lag
        /// never reach the output
        #[argh(option)]
        lag: Option<u64>,

        /// seconds between head polls once caught up, decimals allowed (default 10; e.g. 12,
        /// 0.5, 250ms)
        #[argh(option)]
        poll_interval: Option<String>,

        /// the deepest reorg, in orphaned exported blocks, that can be handled (default 128):
        /// the hashes of that many blocks plus one are remembered; a deeper one stops the
        /// stream with an error
        #[argh(option)]
        max_reorg_depth: Option<u64>,

        /// stop (exit 0) once this block is exported and durable
        #[argh(option)]
        stop_at_block: Option<String>,
    }
});
