//! Raw command-line flags, exactly as typed: argh structs and their `--help` text, no logic.
//! Validation and resolution (ranges, URLs, defaults from the environment and the core count)
//! live in [`crate::config`].

use argh::FromArgs;

/// ethetl: export Ethereum/EVM blocks, transactions, logs, token transfers and receipts from
/// JSON-RPC nodes to files, stdout or Kafka, in ethereum-etl 2.4.2's schema.
#[derive(FromArgs, Debug, PartialEq)]
pub struct Cli {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,

    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand)]
pub enum Command {
    Export(ExportArgs),
    Stream(StreamArgs),
}

/// Export a block range. Files go to DIR/<entity>/<first>-<last>.<jsonl|csv>, one file per
/// --chunk-size aligned blocks; `--output -` streams JSONL items to stdout; `--output null`
/// decodes everything and writes nothing; `--output kafka://host:port` produces to Kafka.
#[derive(FromArgs, Debug, PartialEq, Default)]
#[argh(
    subcommand,
    name = "export",
    example = "ethetl export --rpc http://127.0.0.1:8545 --blocks 18000000:18000100 --output out/",
    example = "ethetl export --start-block 18000000 --end-block 18000099 --entities blocks,transactions --format csv --output out/",
    example = "ethetl export --blocks 18M:+1000 --output - | head",
    example = "ethetl export --blocks 18M:18.001M --output kafka://localhost:9092 --topic-prefix eth",
    note = "Exit status: 0 on success, 2 on a usage, configuration or fatal error, and 2 after an interrupt (SIGINT/SIGTERM), which stops cleanly and reports where the checkpoint is."
)]
pub struct ExportArgs {
    /// the JSON-RPC endpoint(s), http:// or https://, comma-separated; several endpoints share the
    /// jobs round-robin, and one that keeps failing is left out for a while (1 s, doubling up to
    /// 60 s) and probed again while the others go on. Settings may follow a URL, space-separated:
    /// weight=N (share of the jobs), rps=R, concurrency=N, max-calls=N (batch limit),
    /// bill=requests|calls, e.g. "http://a:8545 weight=2,https://b/v2/KEY rps=10". @FILE reads
    /// entries from a file, one per line (keeps API keys off the command line). Default: the
    /// ETH_RPC_URL environment variable. API keys in URLs are never printed.
    #[argh(option)]
    pub rpc: Option<String>,

    /// block range, cryo style: A:B (end exclusive), A:+N (N blocks), or a single block A;
    /// numbers take K/M suffixes and decimals (18M:18.001M, 18000k:+100)
    #[argh(option, short = 'b')]
    pub blocks: Option<String>,

    /// first block, inclusive (ethereum-etl style; use with --end-block instead of --blocks)
    #[argh(option, short = 's')]
    pub start_block: Option<String>,

    /// last block, inclusive (ethereum-etl style; use with --start-block)
    #[argh(option, short = 'e')]
    pub end_block: Option<String>,

    /// comma-separated entities: blocks, transactions, logs, token_transfers, receipts.
    /// Default: blocks,transactions,logs,token_transfers. Receipts are fetched from the node
    /// only if an entity needs them (logs, token_transfers, receipts).
    #[argh(option)]
    pub entities: Option<String>,

    /// row format: jsonl (ethereum-etl stream items, the default) or csv (ethereum-etl export
    /// columns)
    #[argh(option, short = 'f')]
    pub format: Option<String>,

    /// where rows go: a directory, `-` for stdout, `null` to decode and discard (dry runs,
    /// benchmarks), or kafka://host:port[,host:port]
    #[argh(option, short = 'o')]
    pub output: Option<String>,

    /// blocks per JSON-RPC batch request (default 5; with the thread counts it sets how much
    /// data is in flight: about 2.5 MB per recent mainnet block)
    #[argh(option)]
    pub batch_size: Option<u64>,

    /// concurrent HTTP requests, each on its own blocking thread (default: 2 per core, at
    /// least 4)
    #[argh(option)]
    pub io_threads: Option<usize>,

    /// threads that parse responses and build rows (default: one per core)
    #[argh(option)]
    pub cpu_threads: Option<usize>,

    /// retries for transport errors, resets, timeouts, HTTP 5xx, truncated or invalid bodies,
    /// JSON-RPC error objects and null results (blocks or receipts not indexed yet), with
    /// exponential backoff and jitter (250 ms doubling, at most 15 s; at once on another healthy
    /// endpoint): a batch of blocks fails after this many retries in a row without a new answer
    /// (answers already received are kept), and after this many inconsistent answers (wrong
    /// block, receipts that do not match). Default 5; 0 fails at the first error. Rate limits
    /// (HTTP 429, JSON-RPC rate-limit errors) wait for Retry-After and do not count (at most 30
    /// per batch); batches refused as too large are split and do not count either
    #[argh(option)]
    pub max_retries: Option<u32>,

    /// seconds allowed for one HTTP request, including reading the response (default 60)
    #[argh(option)]
    pub timeout: Option<u64>,

    /// most requests per second to each endpoint (fractions allowed; default unlimited).
    /// Requests are spaced evenly (no bursts), so no one-second window sees more; a batch counts
    /// as one request unless --count-calls. Halved while an endpoint rate-limits, regained as it
    /// answers. Per endpoint: rps=R in --rpc
    #[argh(option)]
    pub requests_per_second: Option<f64>,

    /// make --requests-per-second count every JSON-RPC call of a batch, for providers that bill
    /// per call (compute units, credits); batches then carry at most one second's worth of
    /// calls. Per endpoint: bill=calls in --rpc
    #[argh(switch)]
    pub count_calls: bool,

    /// most requests in flight to each endpoint (default: --io-threads); halved while an endpoint
    /// rate-limits, regained as it answers. Per endpoint: concurrency=N in --rpc
    #[argh(option)]
    pub max_concurrency: Option<usize>,

    /// PEM file with the CA certificates to trust for https:// endpoints (a private CA) instead of
    /// the bundled Mozilla roots. Certificates are always verified
    #[argh(option)]
    pub ca_bundle: Option<String>,

    /// blocks per output file; files cover aligned chunks (default 1000)
    #[argh(option)]
    pub chunk_size: Option<u64>,

    /// replace output files that already exist (otherwise an existing file in the range is an
    /// error)
    #[argh(switch)]
    pub overwrite: bool,

    /// checkpoint file: holds the last block N such that N and every block before it in the
    /// range are safely written; an existing one makes the run resume after it
    #[argh(option)]
    pub checkpoint: Option<String>,

    /// write a JSON run summary to this file at the end: counts, bytes, timing, and per endpoint
    /// (URL redacted) requests, calls, retries by cause, rate limits, batch splits, receipts
    /// fallback, benches and latency (mean, p50, max)
    #[argh(option)]
    pub report: Option<String>,

    /// the Kafka topic prefix: topics are <prefix>.<entity>, or bare <entity> when empty (the
    /// default, as ethereum-etl)
    #[argh(option)]
    pub topic_prefix: Option<String>,

    /// partitions for Kafka topics ethetl creates (default 1; existing topics are kept as
    /// they are)
    #[argh(option)]
    pub partitions: Option<i32>,

    /// librdkafka property key=value (repeatable; applied after --kafka-config)
    #[argh(option, short = 'X')]
    pub kafka_property: Vec<String>,

    /// file of librdkafka properties, one key=value per line (# starts a comment)
    #[argh(option)]
    pub kafka_config: Option<String>,

    /// no progress and no final summary on stderr (errors are still printed)
    #[argh(switch, short = 'q')]
    pub quiet: bool,

    /// serve live statistics over HTTP while the export runs: PORT or ADDR:PORT (a bare port
    /// binds 127.0.0.1); see `ethetl stream --help` for the endpoints
    #[argh(option)]
    pub http: Option<String>,
}

/// Follow the chain head: export every block up to head - lag, then keep polling for new ones.
/// Reorgs are detected from parent hashes: one `reorg` row per orphaned block goes to the
/// `reorgs` entity (`<prefix>.reorgs` topic, `DIR/reorgs/`, or stdout) before the new canonical
/// blocks are exported again. Stops cleanly on SIGINT/SIGTERM (exit 0) or at --stop-at-block.
#[derive(FromArgs, Debug, PartialEq, Default)]
#[argh(
    subcommand,
    name = "stream",
    example = "ethetl stream --rpc \"$ETH_RPC_URL\" --output kafka://127.0.0.1:9092 --topic-prefix eth --checkpoint last_synced_block.txt --lag 2 --poll-interval 12 --http 127.0.0.1:9898",
    example = "ethetl stream --start-block 20M --output - --entities blocks,transactions",
    example = "ethetl stream --output out/ --checkpoint out/last_synced_block.txt --stop-at-block 20000100",
    note = "Checkpoint: the first line is the last block N such that N and every block before it are durable in the output (as ethereum-etl's last_synced_block.txt); the lines after it hold the hashes of the last blocks (--max-reorg-depth + 1), which a restarted stream uses to detect reorgs of blocks an earlier run exported. A restart resumes after the checkpoint; rows of the last batches that were not yet acknowledged may be written again, never skipped.",
    note = "HTTP (--http): / is a status page that refreshes itself, /stats is JSON (blocks_streamed, transactions_streamed, logs, token_transfers, current_block, head, lag, rates, uptime, last_error, ...), /metrics is Prometheus text (rows by entity, RPC requests, errors and latency by endpoint, output deliveries, checkpoint, head, lag, reorgs), /healthz answers 200 or 503. There is no authentication: bind a loopback address (the default for a bare port) unless the network is trusted.",
    note = "Exit status: 0 when stopped by SIGINT/SIGTERM (after flushing the output and storing the checkpoint) or at --stop-at-block; 2 on a usage, configuration or fatal error (a failing output, a reorg deeper than --max-reorg-depth). A second signal exits at once with 2. Node errors are retried for as long as the stream runs."
)]
pub struct StreamArgs {
    /// the JSON-RPC endpoint(s), http:// or https://, comma-separated. Default: the
    /// ETH_RPC_URL environment variable. API keys in the URL are never printed.
    #[argh(option)]
    pub rpc: Option<String>,

    /// first block to export when there is no checkpoint yet (default: the head - lag at
    /// start); an existing checkpoint wins
    #[argh(option, short = 's')]
    pub start_block: Option<String>,

    /// stay this many blocks behind the head (default 0); reorgs shallower than the lag never
    /// reach the output
    #[argh(option)]
    pub lag: Option<u64>,

    /// seconds between head polls once caught up, decimals allowed (default 10; e.g. 12,
    /// 0.5, 250ms)
    #[argh(option)]
    pub poll_interval: Option<String>,

    /// the deepest reorg, in orphaned exported blocks, that can be handled (default 128): the
    /// hashes of that many blocks plus one are remembered; a deeper one stops the stream with
    /// an error
    #[argh(option)]
    pub max_reorg_depth: Option<u64>,

    /// stop (exit 0) once this block is exported and durable
    #[argh(option)]
    pub stop_at_block: Option<String>,

    /// comma-separated entities: blocks, transactions, logs, token_transfers, receipts
    /// (default blocks,transactions,logs,token_transfers); reorg rows are always emitted
    #[argh(option)]
    pub entities: Option<String>,

    /// row format: jsonl (the default) or csv (directory output only)
    #[argh(option, short = 'f')]
    pub format: Option<String>,

    /// where rows go: a directory (files per round, DIR/<entity>/<first>-<last>.<ext>; files
    /// of blocks the stream writes again are replaced), `-` for stdout, `null`, or
    /// kafka://host:port[,host:port]
    #[argh(option, short = 'o')]
    pub output: Option<String>,

    /// blocks per JSON-RPC batch request (default 5; with the thread counts it sets how much
    /// data is in flight: about 2.5 MB per recent mainnet block)
    #[argh(option)]
    pub batch_size: Option<u64>,

    /// concurrent HTTP requests while catching up (default: 2 per core, at least 4)
    #[argh(option)]
    pub io_threads: Option<usize>,

    /// threads that parse responses and build rows (default: one per core)
    #[argh(option)]
    pub cpu_threads: Option<usize>,

    /// retries per batch request before the round is given up and tried again after a pause
    /// (default 5)
    #[argh(option)]
    pub max_retries: Option<u32>,

    /// seconds allowed for one HTTP request (default 60); also bounds how long a stop waits
    /// for requests in flight
    #[argh(option)]
    pub timeout: Option<u64>,

    /// with a directory output: the largest file, in aligned blocks (default 1000)
    #[argh(option)]
    pub chunk_size: Option<u64>,

    /// checkpoint file (see below); without one, every start begins at --start-block or the
    /// head
    #[argh(option)]
    pub checkpoint: Option<String>,

    /// write a JSON summary of the run to this file when the stream stops
    #[argh(option)]
    pub report: Option<String>,

    /// the Kafka topic prefix: topics are <prefix>.<entity> (<prefix>.reorgs for reorg rows),
    /// or bare <entity> when empty (the default)
    #[argh(option)]
    pub topic_prefix: Option<String>,

    /// partitions for Kafka topics ethetl creates (default 1)
    #[argh(option)]
    pub partitions: Option<i32>,

    /// librdkafka property key=value (repeatable; applied after --kafka-config)
    #[argh(option, short = 'X')]
    pub kafka_property: Vec<String>,

    /// file of librdkafka properties, one key=value per line (# starts a comment)
    #[argh(option)]
    pub kafka_config: Option<String>,

    /// serve live statistics over HTTP: PORT or ADDR:PORT (a bare port binds 127.0.0.1;
    /// port 0 picks a free one, printed on stderr)
    #[argh(option)]
    pub http: Option<String>,

    /// only errors on stderr (no status lines, no summary)
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}
