//! `ethetl-devnode`: a local JSON-RPC node for ethetl's tests, demos and benchmarks (see
//! [`ethetl_devnode`]). Prints its address as the first stdout line, then serves until
//! SIGINT/SIGTERM or `--exit-after`; optionally injects reproducible faults, grows the chain
//! over time and reorganises it. Prints traffic, faults and reorgs on exit. `--version`/`-V`
//! print `ethetl-devnode <version>`; `-h` is `--help`.

// mimalloc: generating a large chain allocates millions of small buffers across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use argh::FromArgs;
use ethetl_devnode::{DevNode, Era, FaultSpec, GenConfig, Growth, NodeConfig, UnknownBlock};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(FromArgs)]
/// Local Ethereum JSON-RPC node for tests, demos and benchmarks. Serves fixture directories
/// byte-for-byte and/or a deterministic, mainnet-shaped generated chain on loopback only.
/// Prints its address (127.0.0.1:PORT) as the first line on stdout once it is ready, then serves
/// until SIGINT/SIGTERM or --exit-after. Methods: eth_getBlockByNumber, eth_getBlockByHash,
/// eth_getBlockReceipts, eth_getTransactionReceipt, eth_getTransactionByHash, eth_getLogs,
/// eth_blockNumber, eth_chainId, net_version, web3_clientVersion, eth_syncing (single calls and
/// batches).
///
/// Faults (--faults KIND:RATE[,KIND:RATE...], or all:RATE spread over every kind): JSON-RPC
/// requests are numbered 0,1,2,... in arrival order and request i gets a fault drawn from
/// (--fault-seed, i), so the same request sequence sees the same faults. Kinds: 429 (HTTP 429,
/// Retry-After), ratelimit-rpc (HTTP 200, one error -32005 "rate limit exceeded" instead of the
/// answer), 500, 502, 503 (HTTP errors), reset (TCP RST, no response), stall (answer after
/// --stall-ms), truncate (body cut short: full Content-Length and connection closed, or a
/// Content-Length matching the cut), invalid-json (HTTP 200, non-JSON body), batch-error (one
/// error -32603 "internal error" instead of the answer), item-error (one item -32000 "execution
/// aborted (timeout = 5s)"), null-block / null-receipts (one block / receipts item null),
/// shuffle (batch answers out of order), receipts-mismatch (one receipts array missing a
/// receipt), wrong-block (one receipts array from another block). Faults never change the
/// node's data: a retry gets the clean answer unless it draws a fault itself.
///
/// Stream mode (--block-time MS): the chain starts with --initial-blocks visible and reveals one
/// more block every MS milliseconds; latest/eth_blockNumber follow. With --reorg-every N
/// --reorg-depth D (generated chains only), every N-th reveal replaces the last D blocks by a
/// deterministic alternative fork one block longer (new hashes and transactions, consistent
/// parentHash chain from the common ancestor).
struct Args {
    /// print the version and exit
    #[argh(switch, short = 'V')]
    version: bool,

    /// fixture chain directory laid out as <DIR>/<block>/eth_getBlockByNumber.json,
    /// eth_getBlockReceipts.json, eth_getTransactionReceipt/<hash>.json (e.g.
    /// ../shared/fixtures/rpc/mainnet); repeatable
    #[argh(option)]
    fixtures: Vec<PathBuf>,

    /// generate N blocks (deterministic for --seed)
    #[argh(option)]
    generate: Option<u64>,

    /// seed of the generated chain (default 1)
    #[argh(option, default = "1")]
    seed: u64,

    /// number of the first generated block (default 23000000)
    #[argh(option, default = "23_000_000")]
    start_block: u64,

    /// exactly T transactions in every generated block (default: the era's mean, varying per
    /// block: recent 250, cancun 129, shanghai 167, london 147)
    #[argh(option)]
    txs_per_block: Option<u32>,

    /// block shape: recent (alias prague), cancun, shanghai, london, or mix (rotates london,
    /// shanghai, cancun, recent by block number); default recent
    #[argh(option, default = "Era::Recent")]
    era: Era,

    /// TCP port on 127.0.0.1 (default 0: pick a free port)
    #[argh(option, default = "0")]
    port: u16,

    /// loopback address to bind (default 127.0.0.1; non-loopback addresses are refused)
    #[argh(option, default = "IpAddr::V4(Ipv4Addr::LOCALHOST)")]
    host: IpAddr,

    /// requests handled at once (default 4; every connection has its own thread, this bounds
    /// how many of them work on a request at the same time)
    #[argh(option, default = "4")]
    threads: usize,

    /// chain id reported by eth_chainId/net_version and written into generated transactions
    /// (default 1)
    #[argh(option, default = "1")]
    chain_id: u64,

    /// head reported by eth_blockNumber and used for "latest" (default: highest block;
    /// ignored in stream mode)
    #[argh(option)]
    latest: Option<u64>,

    /// answer for eth_getBlockByNumber/ByHash of an unknown block: null (geth, default) or
    /// error (-32000 "header not found")
    #[argh(option, default = "UnknownBlock::Null")]
    unknown_block: UnknownBlock,

    /// stop after SECS seconds (fractions allowed)
    #[argh(option)]
    exit_after: Option<f64>,

    /// faults to inject: KIND:RATE[,KIND:RATE...] or all:RATE (rates are per-request
    /// probabilities adding up to at most 1), e.g. 429:0.1,500:0.05,reset:0.05; default none
    #[argh(option)]
    faults: Option<String>,

    /// seed of the fault schedule (default 0)
    #[argh(option, default = "0")]
    fault_seed: u64,

    /// how long a stall fault waits before answering, in milliseconds (default 3000)
    #[argh(option, default = "3000")]
    stall_ms: u64,

    /// seconds sent in the Retry-After header of a 429 fault (default 1)
    #[argh(option, default = "1")]
    retry_after: u64,

    /// answer eth_getBlockReceipts with -32601 "the method eth_getBlockReceipts does not
    /// exist/is not available" (clients must use eth_getTransactionReceipt)
    #[argh(switch)]
    no_block_receipts: bool,

    /// answer batches with more than N calls as geth does: [{"id":<first id>,"error":{"code":
    /// -32600,"message":"batch too large"}}] (geth's default limit is 1000; default unlimited)
    #[argh(option)]
    max_batch_calls: Option<usize>,

    /// cap the summed result bytes of a batch as geth does: calls after the one crossing the cap
    /// get -32003 "response too large" (geth's default is 25000000; default unlimited)
    #[argh(option)]
    max_response_bytes: Option<usize>,

    /// stream mode: reveal one more block every MS milliseconds
    #[argh(option)]
    block_time: Option<u64>,

    /// stream mode: blocks visible at start (default 1)
    #[argh(option, default = "1")]
    initial_blocks: u64,

    /// stream mode: every N-th revealed block comes with a reorg (generated chains only)
    #[argh(option)]
    reorg_every: Option<u64>,

    /// stream mode: how many blocks a reorg replaces (default 2)
    #[argh(option, default = "2")]
    reorg_depth: u64,
}

/// Exit status of a usage error (bad or unknown flag), as for any other failure.
const USAGE: i32 = 2;

fn main() {
    let args = match parse_args(std::env::args_os()) {
        Ok(args) => args,
        Err(code) => std::process::exit(code),
    };
    if args.version {
        println!("ethetl-devnode {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    std::process::exit(match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ethetl-devnode: error: {e:#}");
            2
        }
    });
}

/// Parses the command line like `argh::from_env`, but with `-h` accepted for `--help` (argh
/// knows only `--help`). `Err` carries the exit status once help or the error is printed.
fn parse_args(argv: impl Iterator<Item = std::ffi::OsString>) -> Result<Args, i32> {
    let argv: Vec<String> = match argv.map(|a| a.into_string()).collect() {
        Ok(a) => a,
        Err(bad) => {
            eprintln!("ethetl-devnode: error: argument {bad:?} is not valid UTF-8");
            return Err(USAGE);
        }
    };
    let rest: Vec<&str> = argv
        .iter()
        .skip(1)
        .map(|a| if a == "-h" { "--help" } else { a.as_str() })
        .collect();
    Args::from_args(&["ethetl-devnode"], &rest).map_err(|early| match early.status {
        Ok(()) => {
            print!("{}", early.output);
            0
        }
        Err(()) => {
            eprintln!(
                "{}\nRun ethetl-devnode --help for more information.",
                early.output.trim_end()
            );
            USAGE
        }
    })
}

fn run(args: Args) -> anyhow::Result<()> {
    let exit_after = match args.exit_after {
        Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => anyhow::bail!("--exit-after must be a non-negative number of seconds, got {s}"),
        None => None,
    };
    let faults: FaultSpec = match &args.faults {
        Some(spec) => spec.parse().with_context(|| format!("--faults {spec:?}"))?,
        None => FaultSpec::none(),
    };
    let growth = match args.block_time {
        Some(ms) => Some(Growth {
            block_time: Some(Duration::from_millis(ms)),
            initial_blocks: args.initial_blocks,
            reorg_every: args.reorg_every,
            reorg_depth: args.reorg_depth,
        }),
        None if args.reorg_every.is_some() => {
            anyhow::bail!("--reorg-every needs --block-time")
        }
        None => None,
    };
    if args.fixtures.is_empty() && args.generate.is_none() {
        eprintln!(
            "ethetl-devnode: warning: no --fixtures and no --generate: serving an empty chain"
        );
    }
    let fault_desc = if faults.is_empty() {
        String::new()
    } else {
        format!("injecting faults {faults} (seed {})", args.fault_seed)
    };
    let cfg = NodeConfig {
        fixtures: args.fixtures,
        generate: args.generate.map(|blocks| GenConfig {
            blocks,
            start_block: args.start_block,
            seed: args.seed,
            txs_per_block: args.txs_per_block,
            era: args.era,
            chain_id: args.chain_id,
        }),
        bind: SocketAddr::new(args.host, args.port),
        threads: args.threads,
        chain_id: args.chain_id,
        latest: args.latest,
        unknown_block: args.unknown_block,
        block_receipts: !args.no_block_receipts,
        max_batch_calls: args.max_batch_calls,
        max_response_bytes: args.max_response_bytes,
        faults,
        fault_seed: args.fault_seed,
        stall: Duration::from_millis(args.stall_ms),
        retry_after_secs: args.retry_after,
        growth,
    };
    let started = Instant::now();
    let node = DevNode::start(cfg)?;
    let ready_in = started.elapsed();

    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", node.addr())?;
    out.flush()?;
    drop(out);

    let s = node.summary();
    eprintln!(
        "ethetl-devnode: serving {} blocks ({}..{}), head {}, {:.1} MB of block and receipts JSON, ready in {:.2}s",
        s.blocks,
        s.lowest.map_or("-".into(), |n| n.to_string()),
        s.highest.map_or("-".into(), |n| n.to_string()),
        s.head,
        s.json_bytes as f64 / 1e6,
        ready_in.as_secs_f64()
    );
    if !fault_desc.is_empty() {
        eprintln!("ethetl-devnode: {fault_desc}");
    }

    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone())?;
    }
    let serving = Instant::now();
    while !term.load(Ordering::Relaxed) && exit_after.is_none_or(|d| serving.elapsed() < d) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = node.stats();
    node.shutdown();
    eprintln!(
        "ethetl-devnode: stopped after {} requests, {} calls ({} errors), {:.1} MB served, head {}",
        stats.requests,
        stats.calls,
        stats.errors,
        stats.bytes_served as f64 / 1e6,
        stats.head
    );
    if stats.faults.total() > 0 || stats.batch_too_large > 0 || stats.response_too_large > 0 {
        eprintln!(
            "ethetl-devnode: faults served: {} (total {}); batches too large: {}, responses too large: {}",
            stats.faults,
            stats.faults.total(),
            stats.batch_too_large,
            stats.response_too_large
        );
    }
    for r in &stats.reorgs {
        let first = r.replaced.first().map_or(r.new_head, |b| b.number);
        eprintln!(
            "ethetl-devnode: reorg to fork {} at {:.1}s: blocks {}..={} replaced, new head {} 0x{}",
            r.fork,
            r.at.as_secs_f64(),
            first,
            r.new_head.saturating_sub(1),
            r.new_head,
            hex::encode(r.new_head_hash)
        );
    }
    Ok(())
}
