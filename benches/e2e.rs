//! The end-to-end benchmark behind `make bench`: starts `ethetl-devnode` on a generated,
//! mainnet-shaped corpus, measures the single-core parse limit over the node's own batch
//! answers, then runs the release `ethetl export` binary once per scenario as a child process
//! and prints one table (blocks/s, tx/s, MB/s of JSON, ethetl CPU seconds per 1,000 blocks,
//! peak RSS, ratio to the parse limit, the node's share of the CPU). The table is also
//! written as JSON under `target/bench/` so runs of different commits can be compared.
//!
//! CPU time and peak RSS are the ethetl child's own (`wait4` rusage); the node is a separate
//! process whose CPU time is read from `/proc/<pid>/stat` and reported apart.
//!
//! ```text
//! cargo bench --bench e2e -- --blocks 1000            # what `make bench` runs
//! cargo bench --bench e2e -- --help
//! ```
//!
//! The binary runs only when given `--bench` (which `cargo bench` passes), so that
//! `cargo test --all-targets` does not start a benchmark.

use argh::FromArgs;
use ethetl::decode::parse_only;
use ethetl::msg::RangeJob;
use ethetl::rpc::batch::write_request;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ALL_ENTITIES: &str = "blocks,transactions,logs,token_transfers,receipts";

#[derive(FromArgs)]
/// ethetl end-to-end benchmark: parse limit, decode only, JSONL files and Kafka, at one I/O +
/// one CPU thread and at default thread counts, against a local node serving a generated
/// corpus from memory.
struct Args {
    /// blocks in the corpus (default 1000)
    #[argh(option, default = "1000")]
    blocks: u64,

    /// seed of the generated corpus (default 1)
    #[argh(option, default = "1")]
    seed: u64,

    /// first block of the corpus (default 23000000)
    #[argh(option, default = "23_000_000")]
    start_block: u64,

    /// corpus era: recent, cancun, shanghai, london or mix (default recent)
    #[argh(option, default = "String::from(\"recent\")")]
    era: String,

    /// blocks per JSON-RPC batch, for ethetl and for the parse-limit pass (default: ethetl's
    /// default, `ethetl::config::DEFAULT_BATCH_SIZE`)
    #[argh(option, default = "ethetl::config::DEFAULT_BATCH_SIZE")]
    batch_size: u64,

    /// runs of each ethetl scenario; the one with the least ethetl CPU time is reported
    /// (default 1; shared machines are noisy, the least disturbed run is the most faithful)
    #[argh(option, default = "1")]
    runs: u32,

    /// parses of each batch answer in the parse-limit pass; the fastest counts (default 3)
    #[argh(option, default = "3")]
    parse_repeats: u32,

    /// request threads of the local node (default 4)
    #[argh(option, default = "4")]
    node_threads: usize,

    /// comma-separated scenarios to run (default all): parse, null-1, null, jsonl-1, jsonl,
    /// kafka-1, kafka, null-x2
    #[argh(option)]
    only: Option<String>,

    /// skip the doubled-corpus run (halves the node's memory)
    #[argh(switch)]
    no_double: bool,

    /// the Kafka bootstrap address host:port (default: $KAFKA_BROKERS, else .kafka/brokers)
    #[argh(option)]
    kafka: Option<String>,

    /// directory for the JSON results and scratch output (default target/bench)
    #[argh(option)]
    out_dir: Option<PathBuf>,

    /// ethetl binary (default: the one cargo built with this benchmark)
    #[argh(option)]
    ethetl: Option<PathBuf>,

    /// a second ethetl binary (e.g. built from an earlier commit) run alternately with --ethetl
    /// in every scenario, so both see the same machine load; its table is printed first
    #[argh(option)]
    baseline: Option<PathBuf>,

    /// label of the --baseline binary in the output (default "baseline")
    #[argh(option, default = "String::from(\"baseline\")")]
    baseline_label: String,

    /// ethetl-devnode binary (default: target/<profile>/ethetl-devnode of this benchmark's
    /// build, built first when missing or stale)
    #[argh(option)]
    devnode: Option<PathBuf>,

    /// a free-form label stored in the JSON (e.g. the compiler flags used)
    #[argh(option, default = "String::new()")]
    label: String,
}

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
struct Row {
    scenario: String,
    /// What ran: the command line (node address elided) or a description.
    detail: String,
    blocks: u64,
    transactions: u64,
    rpc_bytes: u64,
    wall_s: f64,
    /// ethetl user + system CPU seconds (for the parse limit: the parsing thread's).
    cpu_s: f64,
    /// Peak RSS of the ethetl process in bytes (none for the in-process parse limit).
    max_rss_bytes: Option<u64>,
    /// Node CPU seconds during the run.
    node_cpu_s: f64,
    blocks_per_s: f64,
    tx_per_s: f64,
    mb_per_s: f64,
    cpu_s_per_1k_blocks: f64,
    blocks_per_cpu_s: f64,
    /// blocks per CPU-second / the parse limit's blocks per CPU-second.
    vs_parse_limit: f64,
    /// node CPU / (node CPU + ethetl CPU).
    node_cpu_share: f64,
    /// Set when the scenario could not run (then every figure is 0).
    skipped: Option<String>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    mem_total_bytes: u64,
    kernel: String,
    /// SIMD levels the benchmark (and so ethetl, built with the same flags) was compiled for.
    compiled_for: String,
}

#[derive(Debug, Serialize)]
struct Results {
    unix_time: u64,
    /// Rows of the --baseline binary, measured alternately with `rows` (empty without one).
    baseline_label: String,
    baseline_rows: Vec<Row>,
    /// Runs per ethetl scenario (the least-CPU run is reported).
    runs: u32,
    commit: String,
    label: String,
    /// Compiler flags of the build, as `scripts/bench.sh` reports them (`ETHETL_BENCH_RUSTFLAGS`).
    rustflags: String,
    machine: Machine,
    corpus: Corpus,
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Corpus {
    blocks: u64,
    start_block: u64,
    seed: u64,
    era: String,
    batch_size: u64,
    transactions: u64,
    json_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("cannot start {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ethetl-devnode did not print its address: {0}")]
    NodeStart(String),
    #[error("no ethetl-devnode binary (pass --devnode)")]
    Locate(#[from] ethetl_devnode::locate::LocateError),
    #[error("{what} failed: {detail}")]
    Failed { what: String, detail: String },
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse-limit pass: request for blocks {start}..={end} failed")]
    Http {
        start: u64,
        end: u64,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("parse-limit pass: blocks {start}..={end} do not parse")]
    Parse {
        start: u64,
        end: u64,
        #[source]
        source: ethetl::decode::DecodeError,
    },
}

fn main() {
    // `cargo bench` appends `--bench`; everything else is ours. Without it this binary was
    // started by `cargo test --all-targets`, which must not run a minutes-long benchmark.
    let argv: Vec<String> = std::env::args().collect();
    if !argv
        .iter()
        .any(|a| a == "--bench" || a == "--help" || a == "help")
    {
        println!("e2e: not run (start it with `cargo bench --bench e2e` or scripts/bench.sh)");
        return;
    }
    let rest: Vec<&str> = argv
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    let args = match <Args as FromArgs>::from_args(&["bench"], &rest) {
        Ok(a) => a,
        Err(early) => {
            let ok = early.status.is_ok();
            if ok {
                println!("{}", early.output);
            } else {
                eprintln!("{}", early.output);
            }
            std::process::exit(if ok { 0 } else { 2 });
        }
    };
    if let Err(e) = run(args) {
        let mut msg = format!("bench: error: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            let _ = write!(msg, ": {s}");
            src = s.source();
        }
        eprintln!("{msg}");
        std::process::exit(2);
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: Args) -> Result<(), BenchError> {
    let ethetl = args
        .ethetl
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ethetl")));
    let devnode = match args.devnode.clone() {
        Some(p) => p,
        None => ethetl_devnode::locate::binary()?,
    };
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| manifest_dir().join("target/bench"));
    let scratch = out_dir.join("scratch");
    std::fs::create_dir_all(&scratch).map_err(|source| BenchError::Io {
        what: "create",
        path: scratch.clone(),
        source,
    })?;
    let wanted = |s: &str| {
        args.only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|x| x.trim() == s))
    };
    let double = !args.no_double && wanted("null-x2");
    let node_blocks = if double { 2 * args.blocks } else { args.blocks };

    eprintln!(
        "bench: starting ethetl-devnode with {node_blocks} generated {} blocks (seed {})",
        args.era, args.seed
    );
    let node = Node::start(&devnode, &args, node_blocks)?;
    let url = format!("http://{}/", node.addr);

    let mut rows = Vec::new();
    let mut baseline_rows = Vec::new();
    let mut binaries = vec![ethetl.clone()];
    binaries.extend(args.baseline.clone());
    eprintln!("bench: parse limit (one thread, parse_only over the node's batch answers)");
    let parse = parse_limit(
        &url,
        args.start_block,
        args.blocks,
        args.batch_size,
        args.parse_repeats.max(1),
    )?;
    let corpus = Corpus {
        blocks: args.blocks,
        start_block: args.start_block,
        seed: args.seed,
        era: args.era.clone(),
        batch_size: args.batch_size,
        transactions: parse.transactions,
        json_bytes: parse.rpc_bytes,
    };
    let limit = parse.blocks_per_cpu_s;
    if wanted("parse") {
        rows.push(parse.clone());
        if args.baseline.is_some() {
            baseline_rows.push(parse.clone());
        }
    }

    let kafka = kafka_address(args.kafka.as_deref());
    let run_tag = format!("bench{}", unix_time());
    // (key for --only, table name, (I/O, CPU) threads or the defaults, corpus factor)
    type Scenario = (&'static str, &'static str, Option<(usize, usize)>, u64);
    let scenarios: [Scenario; 7] = [
        ("null-1", "decode only, 1 I/O + 1 CPU", Some((1, 1)), 1),
        ("null", "decode only, defaults", None, 1),
        ("jsonl-1", "JSONL files, 1 I/O + 1 CPU", Some((1, 1)), 1),
        ("jsonl", "JSONL files, defaults", None, 1),
        ("kafka-1", "Kafka, 1 I/O + 1 CPU", Some((1, 1)), 1),
        ("kafka", "Kafka, defaults", None, 1),
        ("null-x2", "decode only, defaults, corpus x2", None, 2),
    ];
    for (key, name, threads, factor) in scenarios {
        if !wanted(key) || (key == "null-x2" && !double) {
            continue;
        }
        let blocks = args.blocks * factor;
        let mut cmd_args: Vec<String> = vec![
            "export".into(),
            "--rpc".into(),
            url.clone(),
            "--blocks".into(),
            format!("{}:+{}", args.start_block, blocks),
            "--entities".into(),
            ALL_ENTITIES.into(),
            "--format".into(),
            "jsonl".into(),
            "--batch-size".into(),
            args.batch_size.to_string(),
            "--quiet".into(),
        ];
        if let Some((io, cpu)) = threads {
            cmd_args.extend([
                "--io-threads".into(),
                io.to_string(),
                "--cpu-threads".into(),
                cpu.to_string(),
            ]);
        }
        let files_dir = scratch.join(format!("out-{key}"));
        let topic_prefix = format!("{run_tag}-{key}");
        match key {
            "jsonl" | "jsonl-1" => {
                let _ = std::fs::remove_dir_all(&files_dir);
                cmd_args.extend([
                    "--output".into(),
                    files_dir.display().to_string(),
                    "--overwrite".into(),
                ]);
            }
            "kafka" | "kafka-1" => match &kafka {
                Some(addr) => cmd_args.extend([
                    "--output".into(),
                    format!("kafka://{addr}"),
                    "--topic-prefix".into(),
                    topic_prefix.clone(),
                ]),
                None => {
                    eprintln!("bench: {name}: skipped (no broker)");
                    rows.push(skipped(name, "no broker"));
                    if args.baseline.is_some() {
                        baseline_rows.push(skipped(name, "no broker"));
                    }
                    continue;
                }
            },
            _ => cmd_args.extend(["--output".into(), "null".into()]),
        }
        let mut best: Vec<Option<Row>> = vec![None; binaries.len()];
        for run in 1..=args.runs.max(1) {
            for (bin, best) in binaries.iter().zip(best.iter_mut()) {
                eprintln!(
                    "bench: {name} (run {run} of {}, {})",
                    args.runs.max(1),
                    bin.display()
                );
                let row = run_ethetl(bin, name, &cmd_args, &scratch, &node, blocks, limit);
                let _ = std::fs::remove_dir_all(&files_dir);
                if let (true, Some(addr)) = (key.starts_with("kafka"), &kafka) {
                    // The broker keeps what it was sent: drop it before the next run.
                    delete_topics(addr, &topic_prefix);
                }
                let row = row?;
                if best.as_ref().is_none_or(|b| row.cpu_s < b.cpu_s) {
                    *best = Some(row);
                }
            }
        }
        let mut best = best.into_iter();
        rows.extend(best.next().flatten());
        baseline_rows.extend(best.next().flatten());
    }
    let node_cpu_total = node.cpu_s();
    drop(node);

    let results = Results {
        unix_time: unix_time(),
        baseline_label: if args.baseline.is_some() {
            args.baseline_label.clone()
        } else {
            String::new()
        },
        baseline_rows,
        runs: args.runs.max(1),
        commit: git_commit(),
        label: args.label.clone(),
        rustflags: std::env::var("ETHETL_BENCH_RUSTFLAGS").unwrap_or_default(),
        machine: machine(),
        corpus,
        rows,
    };
    print_table(&results, node_cpu_total);
    save(&results, &out_dir)?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn skipped(name: &str, why: &str) -> Row {
    Row {
        scenario: name.into(),
        detail: String::new(),
        blocks: 0,
        transactions: 0,
        rpc_bytes: 0,
        wall_s: 0.0,
        cpu_s: 0.0,
        max_rss_bytes: None,
        node_cpu_s: 0.0,
        blocks_per_s: 0.0,
        tx_per_s: 0.0,
        mb_per_s: 0.0,
        cpu_s_per_1k_blocks: 0.0,
        blocks_per_cpu_s: 0.0,
        vs_parse_limit: 0.0,
        node_cpu_share: 0.0,
        skipped: Some(why.into()),
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    scenario: &str,
    detail: String,
    blocks: u64,
    transactions: u64,
    rpc_bytes: u64,
    wall_s: f64,
    cpu_s: f64,
    max_rss_bytes: Option<u64>,
    node_cpu_s: f64,
    limit: Option<f64>,
) -> Row {
    let wall = wall_s.max(1e-9);
    let cpu = cpu_s.max(1e-9);
    let blocks_per_cpu_s = blocks as f64 / cpu;
    Row {
        scenario: scenario.into(),
        detail,
        blocks,
        transactions,
        rpc_bytes,
        wall_s,
        cpu_s,
        max_rss_bytes,
        node_cpu_s,
        blocks_per_s: blocks as f64 / wall,
        tx_per_s: transactions as f64 / wall,
        mb_per_s: rpc_bytes as f64 / 1e6 / wall,
        cpu_s_per_1k_blocks: cpu_s * 1000.0 / (blocks as f64).max(1.0),
        blocks_per_cpu_s,
        vs_parse_limit: limit.map_or(1.0, |l| blocks_per_cpu_s / l),
        node_cpu_share: if node_cpu_s + cpu_s > 0.0 {
            node_cpu_s / (node_cpu_s + cpu_s)
        } else {
            0.0
        },
        skipped: None,
    }
}

/// The local node, stopped (SIGTERM, then reaped) on drop.
struct Node {
    child: Child,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

impl Node {
    fn start(bin: &Path, args: &Args, blocks: u64) -> Result<Node, BenchError> {
        let mut child = Command::new(bin)
            .args([
                "--generate",
                &blocks.to_string(),
                "--seed",
                &args.seed.to_string(),
                "--start-block",
                &args.start_block.to_string(),
                "--era",
                &args.era,
                "--threads",
                &args.node_threads.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| BenchError::Spawn {
                what: bin.display().to_string(),
                source,
            })?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let addr = match read {
            Ok(n) if n > 0 => line.trim().parse::<SocketAddr>().ok(),
            _ => None,
        };
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::NodeStart(format!("{read:?}, line {line:?}")));
        };
        Ok(Node {
            child,
            addr,
            _stdout: stdout,
        })
    }

    /// The node's user + system CPU seconds so far.
    fn cpu_s(&self) -> f64 {
        proc_cpu_s(self.child.id()).unwrap_or(0.0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of `pid` from /proc/<pid>/stat, in seconds.
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / tck.max(1.0))
}

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// One thread, `parse_only` over the node's batch answers for the corpus, fetched batch by
/// batch. Only the parse is timed (thread CPU time); each answer is parsed `repeats` times and
/// the fastest parse counts.
fn parse_limit(
    url: &str,
    start: u64,
    blocks: u64,
    batch: u64,
    repeats: u32,
) -> Result<Row, BenchError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .build()
        .into();
    let (mut cpu, mut wall, mut bytes, mut txs) = (0.0f64, 0.0f64, 0u64, 0u64);
    let mut req = Vec::new();
    let end_all = start + blocks - 1;
    let mut s = start;
    while s <= end_all {
        let e = (s + batch - 1).min(end_all);
        let job = RangeJob {
            seq: 0,
            start: s,
            end: e,
            attempt: 0,
        };
        write_request(&job, true, &mut req);
        let http = |source| BenchError::Http {
            start: s,
            end: e,
            source: Box::new(source),
        };
        let mut resp = agent
            .post(url)
            .header("content-type", "application/json")
            .send(&req[..])
            .map_err(http)?;
        let body = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(http)?;
        let (mut best_cpu, mut best_wall, mut n) = (f64::MAX, f64::MAX, 0);
        for _ in 0..repeats {
            let (c0, w0) = (thread_cpu_s(), Instant::now());
            n = parse_only(std::hint::black_box(&body)).map_err(|source| BenchError::Parse {
                start: s,
                end: e,
                source,
            })?;
            best_cpu = best_cpu.min(thread_cpu_s() - c0);
            best_wall = best_wall.min(w0.elapsed().as_secs_f64());
        }
        cpu += best_cpu;
        wall += best_wall;
        bytes += body.len() as u64;
        txs += n as u64;
        s = e + 1;
    }
    let mut r = row(
        "parse limit (1 thread)",
        "ethetl::decode::parse_only over the node's batch answers".into(),
        blocks,
        txs,
        bytes,
        wall,
        cpu,
        None,
        0.0,
        None,
    );
    r.vs_parse_limit = 1.0;
    Ok(r)
}

/// Runs `ethetl` with `args`, waits for it with `wait4` and builds its row from its rusage
/// and its `--report`.
fn run_ethetl(
    bin: &Path,
    name: &str,
    args: &[String],
    scratch: &Path,
    node: &Node,
    blocks: u64,
    limit: f64,
) -> Result<Row, BenchError> {
    let report = scratch.join("report.json");
    let stderr_path = scratch.join("ethetl.stderr");
    let _ = std::fs::remove_file(&report);
    let stderr = std::fs::File::create(&stderr_path).map_err(|source| BenchError::Io {
        what: "create",
        path: stderr_path.clone(),
        source,
    })?;
    let node_cpu0 = node.cpu_s();
    let t0 = Instant::now();
    let child = Command::new(bin)
        .args(args)
        .arg("--report")
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|source| BenchError::Spawn {
            what: bin.display().to_string(),
            source,
        })?;
    let (status, usage) = wait4(child.id());
    let wall = t0.elapsed().as_secs_f64();
    let node_cpu = node.cpu_s() - node_cpu0;
    let detail = args
        .iter()
        .map(|a| {
            if a.starts_with("http://") {
                "http://NODE".to_owned()
            } else {
                a.replace(&manifest_dir().display().to_string(), ".")
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let fail = |detail: String| BenchError::Failed {
        what: format!("{name} ({detail})"),
        detail: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    };
    let (status, usage) = match (status, usage) {
        (Some(s), Some(u)) => (s, u),
        _ => return Err(fail("wait4 failed".into())),
    };
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(fail(format!("exit status {status:#x}")));
    }
    let rep = std::fs::read_to_string(&report).map_err(|source| BenchError::Io {
        what: "read",
        path: report.clone(),
        source,
    })?;
    let v: sonic_rs::Value = sonic_rs::from_str(&rep).map_err(|e| BenchError::Failed {
        what: format!("{name}: reading --report"),
        detail: e.to_string(),
    })?;
    use sonic_rs::JsonValueTrait;
    let get = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    if get("blocks") != blocks {
        return Err(BenchError::Failed {
            what: name.into(),
            detail: format!("ethetl reports {} blocks, expected {blocks}", get("blocks")),
        });
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    Ok(row(
        name,
        detail,
        blocks,
        get("transactions"),
        get("rpc_bytes"),
        wall,
        cpu,
        Some(usage.ru_maxrss as u64 * 1024),
        node_cpu,
        Some(limit),
    ))
}

/// Waits for child `pid`, returning its raw wait status and resource usage.
fn wait4(pid: u32) -> (Option<libc::c_int>, Option<libc::rusage>) {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to a status word and an rusage; `pid` is our unreaped child.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            return (Some(status), Some(usage));
        }
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return (None, None);
    }
}

/// The broker address from `--kafka`, `$KAFKA_BROKERS` or `.kafka/brokers`, if one accepts a
/// TCP connection.
fn kafka_address(flag: Option<&str>) -> Option<String> {
    let addr = flag
        .map(str::to_owned)
        .or_else(|| std::env::var("KAFKA_BROKERS").ok())
        .or_else(|| std::fs::read_to_string(manifest_dir().join(".kafka/brokers")).ok())?;
    let addr = addr.trim().trim_start_matches("kafka://").to_owned();
    let first = addr.split(',').next()?.to_owned();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&first)
        .ok()?
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    reachable.then_some(addr)
}

/// Deletes the topics `<prefix>.<entity>` a Kafka scenario wrote (best effort: a failure only
/// leaves data in the broker).
fn delete_topics(brokers: &str, prefix: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = match rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: cannot delete topics {prefix}.*: {e}");
            return;
        }
    };
    let names: Vec<String> = ALL_ENTITIES
        .split(',')
        .map(|e| format!("{prefix}.{e}"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    match futures_executor::block_on(admin.delete_topics(&refs, &opts)) {
        Ok(results) => {
            for r in results {
                if let Err((topic, code)) = r {
                    eprintln!("bench: cannot delete topic {topic}: {code}");
                }
            }
        }
        Err(e) => eprintln!("bench: cannot delete topics {prefix}.*: {e}"),
    }
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn git_commit() -> String {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(manifest_dir())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = out(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty =
        out(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(
            || std::env::consts::ARCH.to_owned(),
            |s| s.trim().to_owned(),
        );
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_bytes = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| String::new(), |s| s.trim().to_owned());
    let mut simd = Vec::new();
    if cfg!(target_feature = "avx2") {
        simd.push("avx2");
    }
    if cfg!(target_feature = "pclmulqdq") {
        simd.push("pclmulqdq");
    }
    if cfg!(target_feature = "avx512f") {
        simd.push("avx512f");
    }
    if cfg!(target_feature = "neon") {
        simd.push("neon");
    }
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total_bytes,
        kernel,
        compiled_for: if simd.is_empty() {
            format!("{} baseline", std::env::consts::ARCH)
        } else {
            format!("{} +{}", std::env::consts::ARCH, simd.join("+"))
        },
    }
}

fn fmt_int(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(r: &Results, node_cpu_total: f64) {
    let m = &r.machine;
    println!();
    println!(
        "ethetl bench @ {}{} on {} x {}, {:.1} GiB RAM, built for {}{}",
        r.commit,
        if r.label.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.label)
        },
        m.cores,
        m.cpu,
        m.mem_total_bytes as f64 / (1u64 << 30) as f64,
        m.compiled_for,
        if r.rustflags.is_empty() {
            String::new()
        } else {
            format!(" (RUSTFLAGS: {})", r.rustflags)
        }
    );
    let c = &r.corpus;
    println!(
        "corpus: {} {} blocks from {} (seed {}), {} transactions, {:.1} MB of block+receipts JSON ({:.2} MB/block), batches of {}",
        fmt_int(c.blocks as f64),
        c.era,
        c.start_block,
        c.seed,
        fmt_int(c.transactions as f64),
        c.json_bytes as f64 / 1e6,
        c.json_bytes as f64 / 1e6 / (c.blocks as f64).max(1.0),
        c.batch_size
    );
    if r.runs > 1 {
        println!(
            "each ethetl row: the run with the least CPU time of {}",
            r.runs
        );
    }
    if !r.baseline_rows.is_empty() {
        println!();
        println!("{}:", r.baseline_label);
        print_rows(&r.baseline_rows);
        println!();
        println!(
            "{}:",
            if r.label.is_empty() {
                "this build"
            } else {
                &r.label
            }
        );
    }
    print_rows(&r.rows);
    println!(
        "vs parse limit: ethetl blocks per CPU-second / parse-limit blocks per CPU-second. node CPU share: node CPU / (node + ethetl CPU); node CPU in total: {node_cpu_total:.1} s (generation included)."
    );
}

/// One table (and the doubled-corpus RSS line) for the rows of one binary.
fn print_rows(rows: &[Row]) {
    println!();
    println!("| scenario | blocks/s | tx/s | MB/s JSON | ethetl CPU-s per 1k blocks | peak RSS | vs parse limit | node CPU share |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        if let Some(why) = &row.skipped {
            println!("| {} | skipped ({why}) | | | | | | |", row.scenario);
            continue;
        }
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {} | {:.0} % | {} |",
            row.scenario,
            fmt_int(row.blocks_per_s),
            fmt_int(row.tx_per_s),
            row.mb_per_s,
            row.cpu_s_per_1k_blocks,
            row.max_rss_bytes
                .map_or("-".into(), |b| format!("{:.0} MB", b as f64 / 1e6)),
            row.vs_parse_limit * 100.0,
            if row.max_rss_bytes.is_some() {
                format!("{:.0} %", row.node_cpu_share * 100.0)
            } else {
                "-".into()
            },
        );
    }
    println!();
    let rss = |name: &str| {
        rows.iter()
            .find(|x| x.scenario == name && x.skipped.is_none())
            .and_then(|x| x.max_rss_bytes)
    };
    if let (Some(a), Some(b)) = (
        rss("decode only, defaults"),
        rss("decode only, defaults, corpus x2"),
    ) {
        println!(
            "peak RSS with the corpus doubled: {:.0} MB vs {:.0} MB ({:.2}x)",
            b as f64 / 1e6,
            a as f64 / 1e6,
            b as f64 / a as f64
        );
    }
}

fn save(r: &Results, dir: &Path) -> Result<(), BenchError> {
    let json = sonic_rs::to_string_pretty(r).map_err(|e| BenchError::Failed {
        what: "serializing the results".into(),
        detail: e.to_string(),
    })?;
    for name in [format!("bench-{}.json", r.unix_time), "latest.json".into()] {
        let path = dir.join(name);
        std::fs::write(&path, &json).map_err(|source| BenchError::Io {
            what: "write",
            path: path.clone(),
            source,
        })?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}
