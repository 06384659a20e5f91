//! `ethetl-devnode`: a local JSON-RPC node for ethetl's tests, demos and benchmarks (see
//! [`ethetl::devnode`]). Prints its address as the first stdout line, then serves until
//! SIGINT/SIGTERM or `--exit-after`.

// mimalloc: generating a large chain allocates millions of small buffers across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use argh::FromArgs;
use ethetl::devnode::{DevNode, Era, GenConfig, NodeConfig, UnknownBlock};
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
/// eth_getBlockReceipts, eth_getTransactionReceipt, eth_getLogs, eth_blockNumber, eth_chainId,
/// net_version, web3_clientVersion, eth_syncing (single calls and batches).
struct Args {
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

    /// request-handling threads (default 4)
    #[argh(option, default = "4")]
    threads: usize,

    /// chain id reported by eth_chainId/net_version and written into generated transactions
    /// (default 1)
    #[argh(option, default = "1")]
    chain_id: u64,

    /// head reported by eth_blockNumber and used for "latest" (default: highest block)
    #[argh(option)]
    latest: Option<u64>,

    /// answer for eth_getBlockByNumber/ByHash of an unknown block: null (geth, default) or
    /// error (-32000 "header not found")
    #[argh(option, default = "UnknownBlock::Null")]
    unknown_block: UnknownBlock,

    /// stop after SECS seconds (fractions allowed)
    #[argh(option)]
    exit_after: Option<f64>,
}

fn main() {
    let args: Args = argh::from_env();
    std::process::exit(match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ethetl-devnode: error: {e:#}");
            2
        }
    });
}

fn run(args: Args) -> anyhow::Result<()> {
    let exit_after = match args.exit_after {
        Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => anyhow::bail!("--exit-after must be a non-negative number of seconds, got {s}"),
        None => None,
    };
    if args.fixtures.is_empty() && args.generate.is_none() {
        eprintln!(
            "ethetl-devnode: warning: no --fixtures and no --generate: serving an empty chain"
        );
    }
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
        "ethetl-devnode: stopped after {} requests, {} calls ({} errors), {:.1} MB served",
        stats.requests,
        stats.calls,
        stats.errors,
        stats.bytes_served as f64 / 1e6
    );
    Ok(())
}
