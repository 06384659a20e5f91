//! `ethetl stream` against the local dev node with a growing chain: every block up to head − lag
//! exported exactly once (library, driven block by block), reorgs of depth 1–3 (reorg rows
//! matching the node's own record of what it replaced, canonical rows present, orphaned ones
//! identified), a reorg that happens while the stream is stopped (hashes kept in the
//! checkpoint), a reorg deeper than the window, SIGTERM and restart of the binary (no gap, no
//! duplicate), reorg rows on stdout and in the `<prefix>.reorgs` Kafka topic, and the HTTP stats (`/metrics` through a strict
//! Prometheus text parser, `/stats`, `/healthz`).

mod common;

use common::kafka::{brokers, consume_all, unique_prefix};
use common::{ethetl_command, http_get, run_ethetl, start_node, Process};
use ethetl::callback::{items, BlockItem, ReorgItem, TransactionItem};
use ethetl::metrics::Metrics;
use ethetl::stream::{StreamConfig, StreamError, StreamReport, Streamer};
use ethetl::{DecodedBatch, Entity};
use ethetl_devnode::{DevNode, GenConfig, Growth, NodeConfig, ReorgEvent};
use sonic_rs::{JsonContainerTrait, JsonValueTrait};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const START: u64 = 20_000_000;
const TXS: u64 = 4;

/// How long a run of the binary that should end at once may take.
const LIMIT: Duration = Duration::from_secs(60);

fn gen(blocks: u64, seed: u64) -> GenConfig {
    GenConfig {
        blocks,
        start_block: START,
        seed,
        txs_per_block: Some(TXS as u32),
        ..GenConfig::default()
    }
}

/// A node revealing blocks only when told to (`advance`), with reorgs every `every` reveals.
fn manual_node(blocks: u64, initial: u64, reorg: Option<(u64, u64)>) -> DevNode {
    let mut cfg = NodeConfig::generated(gen(blocks, 11));
    cfg.growth = Some(Growth {
        block_time: None,
        initial_blocks: initial,
        reorg_every: reorg.map(|r| r.0),
        reorg_depth: reorg.map_or(2, |r| r.1),
    });
    start_node(cfg)
}

fn hex32(h: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(h))
}

/// The node's hash of block `n` (`eth_getBlockByNumber`), straight from its JSON-RPC.
fn node_hash(node: &DevNode, n: u64) -> Option<String> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x{n:x}",false]}}"#
    );
    let mut resp = ureq::post(&node.url())
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .expect("node answers");
    let text = resp.body_mut().read_to_string().unwrap();
    let v: sonic_rs::Value = sonic_rs::from_str(&text).unwrap();
    v["result"]["hash"].as_str().map(str::to_string)
}

fn node_head(node: &DevNode) -> u64 {
    node.stats().head
}

/// What a callback saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Block {
        number: u64,
        hash: String,
        txs: Vec<String>,
    },
    Reorg {
        number: u64,
        orphaned: String,
        new: String,
        depth: u64,
    },
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn record(log: &Log, batch: &DecodedBatch) -> Result<(), ethetl::callback::BoxError> {
    let mut out = log.lock().unwrap();
    for b in items(batch, Entity::Blocks) {
        let blk: BlockItem = b.parse()?;
        let mut txs = Vec::new();
        for t in items(batch, Entity::Transactions).filter(|t| t.block == blk.number) {
            let tx: TransactionItem = t.parse()?;
            assert_eq!(tx.block_hash, blk.hash, "transaction of another block");
            txs.push(tx.hash.into_owned());
        }
        out.push(Seen::Block {
            number: blk.number,
            hash: blk.hash.into_owned(),
            txs,
        });
    }
    for r in items(batch, Entity::Reorgs) {
        let row: ReorgItem = r.parse()?;
        let v = r.json()?;
        assert_eq!(v["type"].as_str(), Some("reorg"));
        assert_eq!(
            v["item_id"].as_str().map(str::to_string),
            Some(format!("reorg_{}", row.orphaned_hash))
        );
        assert!(v["item_timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        out.push(Seen::Reorg {
            number: row.block_number,
            orphaned: row.orphaned_hash.into_owned(),
            new: row.new_hash.into_owned(),
            depth: row.depth,
        });
    }
    Ok(())
}

fn config(node: &DevNode, lag: u64) -> StreamConfig {
    let mut c = StreamConfig::new(&node.url()).unwrap();
    c.start_block = Some(START);
    c.lag = lag;
    c.poll_interval = Duration::from_millis(20);
    c.export.io_threads = 2;
    c.export.cpu_threads = 1;
    c.export.batch_size = 3;
    c.export.entities = ethetl::msg::EntitySet::of(&[Entity::Blocks, Entity::Transactions]);
    c
}

/// A stream running on a thread with a recording callback.
struct Running {
    log: Log,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Result<StreamReport, StreamError>>,
}

fn start(cfg: StreamConfig) -> Running {
    let log: Log = Arc::default();
    let l = Arc::clone(&log);
    let streamer = Streamer::new(cfg).callback(move |b| record(&l, b));
    let metrics = streamer.metrics();
    let stop = streamer.stop_flag();
    let handle = thread::spawn(move || streamer.run());
    Running {
        log,
        metrics,
        stop,
        handle,
    }
}

impl Running {
    /// Waits until the checkpoint is `block` and the stream saw head `head`.
    fn wait_for(&self, block: u64, head: u64) {
        let t = Instant::now();
        loop {
            let s = self.metrics.snapshot();
            if s.checkpoint_block == Some(block) && s.head == Some(head) {
                return;
            }
            assert!(
                !self.handle.is_finished(),
                "the stream ended early (checkpoint {:?}, head {:?})",
                s.checkpoint_block,
                s.head
            );
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "stream did not reach block {block} with head {head}: checkpoint {:?}, head {:?}, \
                 last error {:?}",
                s.checkpoint_block,
                s.head,
                s.last_error
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(self) -> (Vec<Seen>, StreamReport) {
        self.stop.store(true, Ordering::SeqCst);
        let report = self.handle.join().unwrap().expect("stream ends cleanly");
        let log = self.log.lock().unwrap().clone();
        (log, report)
    }
}

fn block_numbers(log: &[Seen]) -> Vec<u64> {
    log.iter()
        .filter_map(|s| match s {
            Seen::Block { number, .. } => Some(*number),
            Seen::Reorg { .. } => None,
        })
        .collect()
}

#[test]
fn follows_the_head_with_lag_exactly_once() {
    let node = manual_node(40, 6, None);
    let lag = 2;
    let run = start(config(&node, lag));
    let mut head = node_head(&node);
    run.wait_for(head - lag, head);
    for _ in 0..12 {
        head = node.advance().unwrap();
        // The stream never exports a block less than `lag` behind the head.
        run.wait_for(head - lag, head);
        let exported = block_numbers(&run.log.lock().unwrap());
        assert_eq!(exported.last(), Some(&(head - lag)));
    }
    let (log, report) = run.stop();
    assert_eq!(
        block_numbers(&log),
        (START..=head - lag).collect::<Vec<_>>()
    );
    // Every block's transactions are the node's: count, and hashes match its blocks.
    for s in &log {
        if let Seen::Block { number, hash, txs } = s {
            assert_eq!(Some(hash.clone()), node_hash(&node, *number));
            assert_eq!(txs.len() as u64, TXS);
        }
    }
    assert_eq!(report.checkpoint, Some(head - lag));
    assert_eq!(report.blocks, head - lag - START + 1);
    assert_eq!(report.transactions, report.blocks * TXS);
    assert_eq!(report.reorgs, 0);
    assert_eq!(report.stopped, ethetl::stream::Stopped::Signal);
}

/// How a log of rows was read back.
#[derive(Clone, Copy)]
struct ReadBack {
    /// In output order (otherwise only contents and counts are checked).
    ordered: bool,
    /// Every row ever written is there (files rewritten whole after a reorg lose their
    /// orphaned rows).
    complete: bool,
}

const IN_ORDER: ReadBack = ReadBack {
    ordered: true,
    complete: true,
};

#[test]
fn without_a_start_block_or_checkpoint_the_stream_starts_at_the_head() {
    let node = manual_node(30, 9, None);
    let mut cfg = config(&node, 1);
    cfg.start_block = None;
    let run = start(cfg);
    let mut head = node_head(&node);
    run.wait_for(head - 1, head);
    head = node.advance().unwrap();
    run.wait_for(head - 1, head);
    let (log, report) = run.stop();
    assert_eq!(block_numbers(&log), vec![head - 2, head - 1]);
    assert_eq!(report.first_block, Some(head - 2));
}

/// Checks a log against the node's reorg record and its final chain.
fn check_reorgs(node: &DevNode, log: &[Seen], events: &[ReorgEvent], last: u64, read: ReadBack) {
    let ordered = read.ordered;
    // Every reorg the node made replaced blocks the stream had exported (it was caught up):
    // one row per replaced block, with the node's old and new hashes and the reorg's depth.
    let expected: Vec<Seen> = events
        .iter()
        .flat_map(|ev| {
            ev.replaced.iter().map(|r| Seen::Reorg {
                number: r.number,
                orphaned: hex32(&r.old_hash),
                new: hex32(&r.new_hash),
                depth: ev.replaced.len() as u64,
            })
        })
        .collect();
    let got: Vec<Seen> = log
        .iter()
        .filter(|s| matches!(s, Seen::Reorg { .. }))
        .cloned()
        .collect();
    assert_eq!(got, expected);

    let canonical: BTreeMap<u64, String> = (START..=last)
        .map(|n| (n, node_hash(node, n).expect("canonical block")))
        .collect();
    let orphaned: BTreeSet<String> = expected
        .iter()
        .map(|s| match s {
            Seen::Reorg { orphaned, .. } => orphaned.clone(),
            Seen::Block { .. } => unreachable!(),
        })
        .collect();
    let mut count: HashMap<String, usize> = HashMap::new();
    for (i, s) in log.iter().enumerate() {
        let Seen::Block { number, hash, .. } = s else {
            continue;
        };
        *count.entry(hash.clone()).or_default() += 1;
        if canonical.get(number) == Some(hash) {
            continue;
        }
        // A non-canonical row is orphaned, and its reorg row comes after it.
        assert!(
            orphaned.contains(hash),
            "block {number} {hash} is neither canonical nor orphaned"
        );
        assert!(
            log[i..]
                .iter()
                .any(|r| matches!(r, Seen::Reorg { orphaned, .. } if orphaned == hash)),
            "the reorg row for {hash} does not follow its block row"
        );
    }
    for (n, h) in &canonical {
        assert_eq!(
            count.get(h),
            Some(&1),
            "canonical block {n} {h} exported once"
        );
    }
    for h in &orphaned {
        if read.complete {
            assert_eq!(
                count.get(h),
                Some(&1),
                "orphaned block {h} was exported once"
            );
        } else {
            assert!(
                count.get(h).is_none_or(|n| *n == 1),
                "orphaned block {h} twice"
            );
        }
    }
    // After a reorg row, the new canonical block of that height follows.
    for (i, s) in log.iter().enumerate().filter(|_| ordered) {
        if let Seen::Reorg { number, new, .. } = s {
            let next = log[i..].iter().find_map(|b| match b {
                Seen::Block {
                    number: n, hash, ..
                } if n == number => Some(hash.clone()),
                _ => None,
            });
            if canonical.get(number) == Some(new) {
                assert_eq!(next.as_ref(), Some(new), "block {number} exported again");
            }
        }
    }
}

#[test]
fn reorgs_of_depth_one_to_three() {
    for depth in 1..=3u64 {
        let node = manual_node(60, 6, Some((4, depth)));
        let run = start(config(&node, 0));
        let mut head = node_head(&node);
        run.wait_for(head, head);
        for _ in 0..13 {
            head = node.advance().unwrap();
            run.wait_for(head, head);
        }
        let (log, report) = run.stop();
        let events = node.reorgs();
        assert_eq!(
            events.len(),
            3,
            "depth {depth}: the node reorganised every 4th block"
        );
        assert!(events.iter().all(|e| e.replaced.len() as u64 == depth));
        check_reorgs(&node, &log, &events, head, IN_ORDER);
        assert_eq!(report.reorgs, 3);
        assert_eq!(report.orphaned_blocks, 3 * depth);
        assert_eq!(report.checkpoint, Some(head));
    }
}

#[test]
fn a_reorg_while_stopped_is_found_from_the_checkpoint_hashes() {
    // Reorg on the 3rd reveal, replacing 2 blocks.
    let node = manual_node(40, 6, Some((3, 2)));
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("last_synced_block.txt");
    let mut cfg = config(&node, 0);
    cfg.export.checkpoint = Some(cp.clone());
    let run = start(cfg.clone());
    let mut head = node_head(&node);
    for _ in 0..2 {
        head = node.advance().unwrap();
        run.wait_for(head, head);
    }
    let (first, _) = run.stop();
    // The checkpoint: the block number alone on the first line, then hashes of exported blocks.
    let text = std::fs::read_to_string(&cp).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(head.to_string().as_str()));
    let stored: Vec<(u64, String)> = lines
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (n, h) = l.split_once(' ').unwrap();
            (n.parse().unwrap(), h.to_string())
        })
        .collect();
    assert_eq!(stored.first().map(|s| s.0), Some(head));
    for (n, h) in &stored {
        assert_eq!(Some(h.clone()), node_hash(&node, *n));
    }

    // While stopped, the node replaces the last two blocks.
    head = node.advance().unwrap();
    let events = node.reorgs();
    assert_eq!(events.len(), 1);
    let run = start(cfg);
    run.wait_for(head, head);
    let (second, report) = run.stop();
    assert_eq!(report.reorgs, 1);
    let mut all = first;
    all.extend(second);
    check_reorgs(&node, &all, &events, head, IN_ORDER);
}

#[test]
fn a_reorg_deeper_than_the_window_is_an_error() {
    let node = manual_node(40, 8, Some((2, 3)));
    let mut cfg = config(&node, 0);
    cfg.max_reorg_depth = 2;
    let run = start(cfg);
    let head = node_head(&node);
    run.wait_for(head, head);
    let head = node.advance().unwrap(); // plain reveal
    run.wait_for(head, head);
    assert!(node.advance().is_some()); // a reorg replacing 3 exported blocks
    let t = Instant::now();
    while !run.handle.is_finished() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the stream did not stop"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let e = run.handle.join().unwrap().unwrap_err();
    assert!(
        matches!(e, StreamError::ReorgTooDeep { window: 2, .. }),
        "{e:?}"
    );
    let msg = ethetl::pipeline::run::error_chain(&e);
    assert!(msg.contains("--max-reorg-depth 2"), "{msg}");
}

#[test]
fn node_errors_are_retried_and_nothing_is_lost_or_repeated() {
    // A quarter of the requests fail (HTTP 500 or a reset connection); batches are not retried
    // inside the pipeline, so failed rounds are tried again by the stream.
    let mut cfg = NodeConfig::generated(gen(40, 13));
    cfg.faults = "500:0.2,reset:0.05".parse().unwrap();
    cfg.fault_seed = 4;
    let node = start_node(cfg);
    let mut c = config(&node, 0);
    c.export.max_retries = 0;
    c.stop_at_block = Some(START + 39);
    let log: Log = Arc::default();
    let l = Arc::clone(&log);
    let streamer = Streamer::new(c).callback(move |b| record(&l, b));
    let metrics = streamer.metrics();
    let stop = streamer.stop_flag();
    let h = thread::spawn(move || streamer.run());
    let t = Instant::now();
    while !h.is_finished() {
        if t.elapsed() > Duration::from_secs(60) {
            stop.store(true, Ordering::SeqCst);
            panic!(
                "the stream did not reach its stop block: {:?}",
                metrics.snapshot()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    let report = h.join().unwrap().unwrap();
    assert_eq!(report.stopped, ethetl::stream::Stopped::StopAtBlock);
    assert_eq!(
        block_numbers(&log.lock().unwrap()),
        (START..=START + 39).collect::<Vec<_>>()
    );
    assert!(node.stats().faults.total() > 0, "no fault was served");
    assert!(report.errors > 0, "failed rounds are counted");
    let snap = metrics.snapshot();
    let last = snap.last_error.expect("the last error is kept");
    assert!(
        last.message.contains("HTTP 500") || last.message.contains("failed"),
        "{}",
        last.message
    );
}

#[test]
fn reorg_rows_land_in_their_own_files() {
    // Reorg every 4th reveal replacing 3 blocks; files of 4 blocks, so reorg rows straddle
    // file chunks sometimes.
    let node = manual_node(40, 6, Some((4, 3)));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut cfg = config(&node, 0);
    cfg.export.output = ethetl::config::Output::dir(out.clone());
    cfg.export.chunk_size = 4;
    let streamer = Streamer::new(cfg);
    let metrics = streamer.metrics();
    let stop = streamer.stop_flag();
    let h = thread::spawn(move || streamer.run());
    let wait_for = |block: u64| {
        let t = Instant::now();
        while metrics.snapshot().checkpoint_block != Some(block) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{:?}",
                metrics.snapshot()
            );
            thread::sleep(Duration::from_millis(5));
        }
    };
    let mut head = node_head(&node);
    wait_for(head);
    for _ in 0..9 {
        head = node.advance().unwrap();
        wait_for(head);
    }
    stop.store(true, Ordering::SeqCst);
    h.join().unwrap().unwrap();

    let read_dir = |entity: &str| -> Vec<sonic_rs::Value> {
        let d = out.join(entity);
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut rows = Vec::new();
        for n in names {
            assert!(!n.contains(".tmp"), "{n}");
            for line in std::fs::read_to_string(d.join(&n)).unwrap().lines() {
                rows.push(sonic_rs::from_str(line).unwrap());
            }
        }
        rows
    };
    let mut log: Vec<Seen> = read_dir("blocks")
        .iter()
        .map(|v| Seen::Block {
            number: v["number"].as_u64().unwrap(),
            hash: v["hash"].as_str().unwrap().to_string(),
            txs: Vec::new(),
        })
        .collect();
    log.extend(read_dir("reorgs").iter().map(|v| Seen::Reorg {
        number: v["block_number"].as_u64().unwrap(),
        orphaned: v["orphaned_hash"].as_str().unwrap().to_string(),
        new: v["new_hash"].as_str().unwrap().to_string(),
        depth: v["depth"].as_u64().unwrap(),
    }));
    let events = node.reorgs();
    assert_eq!(events.len(), 2);
    check_reorgs(
        &node,
        &log,
        &events,
        head,
        ReadBack {
            ordered: false,
            complete: false,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The binary.

fn timed_node(blocks: u64, initial: u64, block_ms: u64, reorg: Option<(u64, u64)>) -> DevNode {
    let mut cfg = NodeConfig::generated(gen(blocks, 5));
    cfg.growth = Some(Growth {
        block_time: Some(Duration::from_millis(block_ms)),
        initial_blocks: initial,
        reorg_every: reorg.map(|r| r.0),
        reorg_depth: reorg.map_or(2, |r| r.1),
    });
    start_node(cfg)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Block numbers of every `blocks/*.jsonl` row under `dir`, in file-name order.
fn file_blocks(dir: &Path) -> Vec<u64> {
    let blocks = dir.join("blocks");
    let mut names: Vec<_> = match std::fs::read_dir(&blocks) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => return Vec::new(),
    };
    names.sort();
    let mut out = Vec::new();
    for n in names {
        assert!(!n.contains(".tmp"), "temporary file left: {n}");
        let text = std::fs::read_to_string(blocks.join(&n)).unwrap();
        for line in text.lines() {
            let v: sonic_rs::Value = sonic_rs::from_str(line).unwrap();
            out.push(v["number"].as_u64().unwrap());
        }
    }
    out
}

#[test]
fn sigterm_stops_cleanly_and_a_restart_continues_without_gap_or_duplicate() {
    let node = timed_node(80, 10, 120, None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cp = dir.path().join("cp.txt");
    let base = args(&[
        "stream",
        "--rpc",
        &node.url(),
        "--start-block",
        &START.to_string(),
        "--lag",
        "1",
        "--poll-interval",
        "100ms",
        "--output",
        out.to_str().unwrap(),
        "--checkpoint",
        cp.to_str().unwrap(),
        "--entities",
        "blocks,transactions",
        "--batch-size",
        "2",
        "--io-threads",
        "2",
        "--chunk-size",
        "5",
    ]);
    let child = Process::start(ethetl_command(&base), "ethetl stream");
    // Let it follow the head for a while (a dozen new blocks).
    let t = Instant::now();
    while node_head(&node) < START + 22 {
        assert!(t.elapsed() < Duration::from_secs(30));
        thread::sleep(Duration::from_millis(20));
    }
    child.signal("TERM");
    let first = child.finish(Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&first.stderr).into_owned();
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("stream: blocks"),
        "summary missing: {stderr}"
    );
    let c1: u64 = std::fs::read_to_string(&cp)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(c1 >= START + 15, "checkpoint {c1}");
    // Everything up to the checkpoint is on disk, once, and nothing beyond it.
    assert_eq!(file_blocks(&out), (START..=c1).collect::<Vec<_>>());

    // Restart: resumes after the checkpoint and stops at a given block.
    let stop_at = START + 40;
    let mut again = base.clone();
    again.extend(args(&["--stop-at-block", &stop_at.to_string(), "--report"]));
    let report = dir.path().join("report.json");
    again.push(report.to_str().unwrap().to_string());
    let child = Process::start(ethetl_command(&again), "ethetl stream");
    let second = child.finish(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&second.stderr).into_owned();
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("resuming after block {c1}")),
        "{stderr}"
    );
    assert_eq!(file_blocks(&out), (START..=stop_at).collect::<Vec<_>>());
    let r: sonic_rs::Value =
        sonic_rs::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["first_block"].as_u64(), Some(c1 + 1));
    assert_eq!(r["checkpoint"].as_u64(), Some(stop_at));
    assert_eq!(r["blocks"].as_u64(), Some(stop_at - c1));
    assert_eq!(r["stopped"].as_str(), Some("stop-at-block"));
    // Files hold the node's blocks.
    for n in [START, c1, c1 + 1, stop_at] {
        let hash = node_hash(&node, n).unwrap();
        let all = std::fs::read_dir(out.join("blocks"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect::<String>();
        assert!(all.contains(&hash), "block {n}");
    }
}

#[test]
fn reorg_rows_on_stdout_follow_the_node() {
    let node = timed_node(80, 8, 150, Some((5, 2)));
    let child_args = args(&[
        "stream",
        "--rpc",
        &node.url(),
        "--start-block",
        &START.to_string(),
        "--poll-interval",
        "0.05",
        "--output",
        "-",
        "--entities",
        "blocks",
        "--batch-size",
        "2",
        "--stop-at-block",
        &(START + 33).to_string(),
    ]);
    let child = Process::start(ethetl_command(&child_args), "ethetl stream");
    let out = child.finish(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut log = Vec::new();
    for line in text.lines() {
        let v: sonic_rs::Value = sonic_rs::from_str(line).unwrap();
        match v["type"].as_str() {
            Some("block") => log.push(Seen::Block {
                number: v["number"].as_u64().unwrap(),
                hash: v["hash"].as_str().unwrap().to_string(),
                txs: Vec::new(),
            }),
            Some("reorg") => log.push(Seen::Reorg {
                number: v["block_number"].as_u64().unwrap(),
                orphaned: v["orphaned_hash"].as_str().unwrap().to_string(),
                new: v["new_hash"].as_str().unwrap().to_string(),
                depth: v["depth"].as_u64().unwrap(),
            }),
            other => panic!("unexpected item type {other:?}"),
        }
    }
    let events = node.reorgs();
    assert!(
        !events.is_empty(),
        "the node reorganised while the stream ran"
    );
    // Timing decides whether the stream had exported a replaced block; every reorg row must
    // match the node's record, and every exported block that was replaced must have one.
    let replaced: HashMap<String, (u64, String)> = events
        .iter()
        .flat_map(|e| {
            e.replaced
                .iter()
                .map(|r| (hex32(&r.old_hash), (r.number, hex32(&r.new_hash))))
        })
        .collect();
    let mut rows = 0;
    for s in &log {
        if let Seen::Reorg {
            number,
            orphaned,
            new,
            depth,
        } = s
        {
            rows += 1;
            let (n, _) = replaced
                .get(orphaned)
                .unwrap_or_else(|| panic!("reorg row for a hash the node never replaced: {s:?}"));
            assert_eq!(n, number);
            assert!((1..=2).contains(depth), "{s:?}");
            // The new hash is the node's at that height when the stream looked; later reorgs
            // may have replaced it again, so it is either canonical now or replaced itself.
            assert!(
                node_hash(&node, *number).as_ref() == Some(new) || replaced.contains_key(new),
                "{s:?}"
            );
        }
    }
    let exported: BTreeSet<String> = log
        .iter()
        .filter_map(|s| match s {
            Seen::Block { hash, .. } => Some(hash.clone()),
            Seen::Reorg { .. } => None,
        })
        .collect();
    let orphan_rows: BTreeSet<String> = log
        .iter()
        .filter_map(|s| match s {
            Seen::Reorg { orphaned, .. } => Some(orphaned.clone()),
            Seen::Block { .. } => None,
        })
        .collect();
    for h in exported.iter().filter(|h| replaced.contains_key(*h)) {
        assert!(
            orphan_rows.contains(h),
            "exported block {h} was replaced without a reorg row"
        );
    }
    assert!(rows > 0 || exported.iter().all(|h| !replaced.contains_key(h)));
    // The canonical chain up to the stop block is there, each block once. (8 blocks visible at
    // start, a reorg every 5th reveal replacing the last 2: the k-th reveal's reorg replaces
    // START+k+5 and START+k+6, so nothing at or below START+33 changes after the stream
    // stopped.)
    for n in START..=START + 33 {
        let h = node_hash(&node, n).unwrap();
        let times = log
            .iter()
            .filter(|s| matches!(s, Seen::Block { hash, .. } if *hash == h))
            .count();
        assert_eq!(times, 1, "canonical block {n}");
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP statistics.

/// One sample of a Prometheus text document.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict parser of the Prometheus text format 0.0.4: `# HELP`/`# TYPE` at most once per
/// family and before its samples, samples of a family contiguous, valid metric and label
/// names, quoted and escaped label values, no duplicate series, histograms with cumulative
/// `_bucket`s ending in `le="+Inf"` equal to `_count`. Returns the samples and the family types.
fn parse_prometheus(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    fn name_ok(s: &str) -> bool {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }
    fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
        for sfx in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(sfx) {
                if types.get(base).map(String::as_str) == Some("histogram") {
                    return base;
                }
            }
        }
        name
    }
    assert!(text.ends_with('\n'), "the document ends with a newline");
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: BTreeSet<String> = BTreeSet::new();
    let mut samples = Vec::new();
    let mut finished_families: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series: BTreeSet<String> = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("line {}: {line}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kw = parts.next().unwrap();
            let name = parts.next().unwrap_or_else(|| panic!("{at}"));
            assert!(name_ok(name), "{at}");
            match kw {
                "HELP" => assert!(helps.insert(name.to_string()), "HELP twice: {at}"),
                "TYPE" => {
                    let t = parts.next().unwrap_or_else(|| panic!("{at}"));
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "{at}"
                    );
                    assert!(
                        !samples
                            .iter()
                            .any(|s: &Sample| family_of(&s.name, &types) == name),
                        "TYPE after samples: {at}"
                    );
                    assert!(
                        types.insert(name.to_string(), t.to_string()).is_none(),
                        "TYPE twice: {at}"
                    );
                }
                _ => {}
            }
            continue;
        }
        // name{labels} value
        let (name, rest) = match line.find(['{', ' ']) {
            Some(p) => line.split_at(p),
            None => panic!("{at}"),
        };
        assert!(name_ok(name), "{at}");
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let end;
            loop {
                // label name
                let start = chars.peek().map(|c| c.0).unwrap_or_else(|| panic!("{at}"));
                if r[start..].starts_with('}') {
                    end = Some(start + 1);
                    break;
                }
                let eq = r[start..].find('=').unwrap_or_else(|| panic!("{at}")) + start;
                let lname = &r[start..eq];
                assert!(name_ok(lname) && !lname.starts_with("__"), "{at}");
                while chars.peek().is_some_and(|c| c.0 <= eq) {
                    chars.next();
                }
                assert_eq!(chars.next().map(|c| c.1), Some('"'), "{at}");
                let mut value = String::new();
                loop {
                    match chars
                        .next()
                        .unwrap_or_else(|| panic!("unterminated value: {at}"))
                        .1
                    {
                        '\\' => match chars.next().unwrap_or_else(|| panic!("{at}")).1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => panic!("bad escape \\{c}: {at}"),
                        },
                        '"' => break,
                        '\n' => panic!("{at}"),
                        c => value.push(c),
                    }
                }
                assert!(
                    labels.insert(lname.to_string(), value).is_none(),
                    "label twice: {at}"
                );
                match chars.next().unwrap_or_else(|| panic!("{at}")) {
                    (_, ',') => {}
                    (p, '}') => {
                        end = Some(p + 1);
                        break;
                    }
                    _ => panic!("{at}"),
                }
            }
            rest = &r[end.unwrap()..];
        }
        let value_text = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{at}"));
        let mut fields = value_text.split(' ');
        let v = fields.next().unwrap();
        let value: f64 = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => v.parse().unwrap_or_else(|_| panic!("bad value: {at}")),
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp: {at}"));
        }
        assert!(fields.next().is_none(), "{at}");
        let family = family_of(name, &types).to_string();
        if current.as_deref() != Some(family.as_str()) {
            assert!(
                !finished_families.contains(&family),
                "family {family} split: {at}"
            );
            if let Some(c) = current.take() {
                finished_families.insert(c);
            }
            current = Some(family.clone());
        }
        let key = format!("{name}{labels:?}");
        assert!(series.insert(key), "duplicate series: {at}");
        if types.get(&family).is_some_and(|t| t == "counter") {
            assert!(value >= 0.0, "negative counter: {at}");
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    // Histograms: cumulative buckets, +Inf == _count.
    for (fam, t) in &types {
        if t != "histogram" {
            continue;
        }
        // Series labels without `le` → (le, cumulative count) per bucket.
        type Buckets = Vec<(f64, f64)>;
        let mut groups: BTreeMap<Vec<(String, String)>, Buckets> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == format!("{fam}_bucket")) {
            let le = s.labels.get("le").expect("bucket without le");
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            let rest: Vec<(String, String)> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            groups.entry(rest).or_default().push((le, s.value));
        }
        for (labels, buckets) in groups {
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{fam} {labels:?}"
            );
            assert_eq!(buckets.last().unwrap().0, f64::INFINITY);
            let lm: BTreeMap<String, String> = labels.into_iter().collect();
            let count = samples
                .iter()
                .find(|s| s.name == format!("{fam}_count") && s.labels == lm)
                .expect("_count");
            assert_eq!(count.value, buckets.last().unwrap().1);
            assert!(samples
                .iter()
                .any(|s| s.name == format!("{fam}_sum") && s.labels == lm));
        }
    }
    (samples, types)
}

/// Starts `ethetl stream --http 127.0.0.1:0 EXTRA...` and returns its stats URL once it is
/// printed.
fn stream_with_http(node: &DevNode, extra: &[&str]) -> (Process, String) {
    let mut a = args(&[
        "stream",
        "--rpc",
        &node.url(),
        "--start-block",
        &START.to_string(),
        "--http",
        "127.0.0.1:0",
    ]);
    a.extend(args(extra));
    let mut child = Process::start(ethetl_command(&a), "ethetl stream");
    let url = child.stats_url();
    (child, url)
}

#[test]
fn metrics_stats_and_health_over_http() {
    // A chain that stops growing: once caught up the numbers stay put.
    let blocks = 30;
    let node = timed_node(blocks, 20, 50, None);
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    let (child, url) = stream_with_http(
        &node,
        &[
            "--checkpoint",
            cp.to_str().unwrap(),
            "--output",
            "null",
            "--poll-interval",
            "0.1",
        ],
    );
    let last = START + blocks - 1;
    let t = Instant::now();
    let stats = loop {
        let (st, body) = http_get(&format!("{url}stats"));
        assert_eq!(st, 200);
        let v: sonic_rs::Value = sonic_rs::from_str(&body).unwrap();
        if v["checkpoint_block"].as_u64() == Some(last) && v["head"].as_u64() == Some(last) {
            break v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "not caught up: {body}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    // The generator's own transaction and log counts.
    let chain = ethetl_devnode::generate_chain(&gen(blocks, 5));
    let txs: u64 = chain.blocks.iter().map(|b| b.tx_hashes.len() as u64).sum();
    let logs: u64 = chain
        .blocks
        .iter()
        .map(|b| {
            let r: sonic_rs::Value = sonic_rs::from_slice(&b.receipts_json).unwrap();
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x["logs"].as_array().unwrap().len() as u64)
                .sum::<u64>()
        })
        .sum();
    assert_eq!(stats["mode"].as_str(), Some("stream"));
    assert_eq!(stats["blocks_streamed"].as_u64(), Some(blocks));
    assert_eq!(stats["transactions_streamed"].as_u64(), Some(txs));
    assert_eq!(stats["logs"].as_u64(), Some(logs));
    assert!(stats["token_transfers"].as_u64().is_some());
    assert_eq!(stats["current_block"].as_u64(), Some(last));
    assert_eq!(stats["lag"].as_u64(), Some(0));
    assert_eq!(stats["reorgs"].as_u64(), Some(0));
    assert!(stats["blocks_per_sec"].as_f64().is_some_and(|r| r >= 0.0));
    assert!(stats["avg_blocks_per_sec"]
        .as_f64()
        .is_some_and(|r| r > 0.0));
    assert!(stats["uptime_secs"].as_f64().is_some_and(|u| u > 0.0));
    assert!(stats["last_error"].is_null());
    assert_eq!(stats["healthy"].as_bool(), Some(true));

    let (st, text) = http_get(&format!("{url}metrics"));
    assert_eq!(st, 200);
    let (samples, types) = parse_prometheus(&text);
    let one = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}"))
            .value
    };
    assert_eq!(
        one("ethetl_rows_total", &[("entity", "blocks")]),
        blocks as f64
    );
    assert_eq!(
        one("ethetl_rows_total", &[("entity", "transactions")]),
        txs as f64
    );
    assert_eq!(one("ethetl_rows_total", &[("entity", "logs")]), logs as f64);
    assert_eq!(one("ethetl_rows_total", &[("entity", "reorgs")]), 0.0);
    assert_eq!(one("ethetl_blocks_total", &[]), blocks as f64);
    assert_eq!(one("ethetl_transactions_total", &[]), txs as f64);
    assert_eq!(one("ethetl_checkpoint_block", &[]), last as f64);
    assert_eq!(one("ethetl_head_block", &[]), last as f64);
    assert_eq!(one("ethetl_lag_blocks", &[]), 0.0);
    assert_eq!(one("ethetl_reorgs_total", &[]), 0.0);
    assert_eq!(
        types.get("ethetl_rows_total").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        types
            .get("ethetl_rpc_request_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    // RPC: the node's own request count bounds ours; batches and head polls both counted.
    let endpoint = node.url();
    let batch = one(
        "ethetl_rpc_requests_total",
        &[("endpoint", &endpoint), ("call", "batch")],
    );
    let head = one(
        "ethetl_rpc_requests_total",
        &[("endpoint", &endpoint), ("call", "head")],
    );
    assert!(batch >= (blocks / 10) as f64, "{batch}");
    assert!(head >= 1.0);
    let served = node.stats().rpc_requests as f64;
    assert!(batch + head <= served, "{batch} + {head} > {served}");
    assert_eq!(
        one(
            "ethetl_rpc_request_duration_seconds_count",
            &[("endpoint", &endpoint), ("call", "batch")]
        ),
        batch
    );
    assert_eq!(
        one(
            "ethetl_rpc_errors_total",
            &[("endpoint", &endpoint), ("call", "batch")]
        ),
        0.0
    );

    let (st, body) = http_get(&format!("{url}healthz"));
    assert_eq!((st, body.as_str()), (200, "ok\n"));
    let (st, page) = http_get(&url);
    assert_eq!(st, 200);
    assert!(page.contains("id=\"chart\""));

    child.signal("TERM");
    let out = child.finish(Duration::from_secs(20));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn stream_help_and_flag_errors() {
    let out = run_ethetl(&["stream", "--help"], LIMIT);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--lag",
        "--poll-interval",
        "--start-block",
        "--stop-at-block",
        "--max-reorg-depth",
        "--checkpoint",
        "--http",
        "/metrics",
        "SIGTERM",
    ] {
        assert!(
            help.contains(flag),
            "{flag} missing from stream --help:\n{help}"
        );
    }
    for (bad, needle) in [
        (vec!["--poll-interval", "soon"], "--poll-interval"),
        (vec!["--max-reorg-depth", "0"], "--max-reorg-depth"),
        (
            vec!["--output", "-", "--format", "csv", "--entities", "blocks"],
            "JSONL",
        ),
        (vec!["--http", "nowhere"], "--http"),
        (vec!["--start-block", "9", "--stop-at-block", "8"], "before"),
    ] {
        let mut a = vec!["stream", "--rpc", "http://127.0.0.1:9/", "--output"];
        if !bad.contains(&"--output") {
            a.push("null");
        } else {
            a.pop();
        }
        a.extend(bad.iter().copied());
        let out = run_ethetl(&a, LIMIT);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{a:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{a:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn export_serves_live_stats_and_ends_with_a_summary() {
    // Every request stalls 150 ms: 24 one-block requests on one thread take a few seconds.
    let mut cfg = NodeConfig::generated(gen(24, 9));
    cfg.faults = "stall:1".parse().unwrap();
    cfg.stall = Duration::from_millis(150);
    let node = start_node(cfg);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let a = args(&[
        "export",
        "--rpc",
        &node.url(),
        "--blocks",
        &format!("{START}:+24"),
        "--output",
        "null",
        "--batch-size",
        "1",
        "--io-threads",
        "1",
        "--max-retries",
        "0",
        "--http",
        "127.0.0.1:0",
        "--report",
        report.to_str().unwrap(),
    ]);
    let mut child = Process::start(ethetl_command(&a), "ethetl export");
    let t = Instant::now();
    let url = child.stats_url();
    // Mid-run: some blocks done, not all; the range end is known, the head is not polled.
    let mid = loop {
        let (_, body) = http_get(&format!("{url}stats"));
        let v: sonic_rs::Value = sonic_rs::from_str(&body).unwrap();
        let done = v["blocks_streamed"].as_u64().unwrap();
        if done >= 3 {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{body}");
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(mid["mode"].as_str(), Some("export"));
    assert!(
        mid["blocks_streamed"].as_u64().unwrap() < 24,
        "the run was not slowed down"
    );
    assert_eq!(mid["last_block"].as_u64(), Some(START + 23));
    assert!(mid["head"].is_null());
    let cp = mid["checkpoint_block"].as_u64().unwrap();
    assert!((START..START + 23).contains(&cp), "{cp}");
    let (_, text) = http_get(&format!("{url}metrics"));
    let (samples, _) = parse_prometheus(&text);
    let batches = samples
        .iter()
        .find(|s| {
            s.name == "ethetl_rpc_requests_total"
                && s.labels.get("call").map(String::as_str) == Some("batch")
        })
        .unwrap()
        .value;
    assert!(batches >= 3.0, "{batches}");
    let slow = samples
        .iter()
        .find(|s| {
            s.name == "ethetl_rpc_request_duration_seconds_bucket"
                && s.labels.get("call").map(String::as_str) == Some("batch")
                && s.labels.get("le").map(String::as_str) == Some("0.1")
        })
        .unwrap()
        .value;
    assert_eq!(
        slow, 0.0,
        "every request stalled 150 ms, none is in the 0.1 s bucket"
    );

    let out = child.finish(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The summary: blocks, transactions, logs, transfers, bytes, retries, time, rates.
    for needle in [
        "24 blocks",
        "transactions",
        "logs",
        "token transfers",
        "MB",
        "retries",
        "blocks/s",
        "tx/s",
    ] {
        assert!(
            stderr.contains(needle),
            "{needle} missing from the summary: {stderr}"
        );
    }
    let r: sonic_rs::Value =
        sonic_rs::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["blocks"].as_u64(), Some(24));
    assert_eq!(r["transactions"].as_u64(), Some(24 * TXS));
    assert!(r["output_bytes"].as_u64().unwrap() > 0);
    assert!(r["elapsed_secs"].as_f64().unwrap() > 0.0);
}

#[test]
fn kafka_output_gets_reorg_rows_in_their_own_topic() {
    let brokers = brokers();
    let prefix = unique_prefix("stream-reorgs");
    // Reorg on every 3rd reveal, replacing 2 blocks.
    let node = manual_node(40, 6, Some((3, 2)));
    let (child, url) = stream_with_http(
        &node,
        &[
            "--output",
            &format!("kafka://{brokers}"),
            "--topic-prefix",
            &prefix,
            "--entities",
            "blocks,transactions",
            "--poll-interval",
            "0.02",
        ],
    );
    let wait_for = |block: u64| {
        let t = Instant::now();
        loop {
            let (_, body) = http_get(&format!("{url}stats"));
            let v: sonic_rs::Value = sonic_rs::from_str(&body).unwrap();
            if v["checkpoint_block"].as_u64() == Some(block) && v["head"].as_u64() == Some(block) {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "not at {block}: {body}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    };
    let mut head = node_head(&node);
    wait_for(head);
    for _ in 0..7 {
        head = node.advance().unwrap();
        wait_for(head);
    }
    let (_, metrics) = http_get(&format!("{url}metrics"));
    child.signal("TERM");
    let out = child.finish(Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The output's delivery counters were exported.
    let (samples, _) = parse_prometheus(&metrics);
    let delivered = samples
        .iter()
        .find(|s| s.name == "ethetl_output_messages_delivered_total")
        .expect("Kafka delivery counter")
        .value;
    assert!(delivered > 0.0);

    let events = node.reorgs();
    assert_eq!(events.len(), 2);
    let reorgs = consume_all(
        &brokers,
        &format!("{prefix}.reorgs"),
        Duration::from_secs(30),
    );
    let blocks = consume_all(
        &brokers,
        &format!("{prefix}.blocks"),
        Duration::from_secs(30),
    );
    let mut log = Vec::new();
    for m in &blocks {
        let v: sonic_rs::Value = sonic_rs::from_slice(&m.value).unwrap();
        let hash = v["hash"].as_str().unwrap().to_string();
        assert_eq!(m.header("block_hash"), Some(hash.as_str()));
        log.push(Seen::Block {
            number: v["number"].as_u64().unwrap(),
            hash,
            txs: Vec::new(),
        });
    }
    // Kafka keeps no order across topics: compare contents and counts.
    for m in &reorgs {
        let v: sonic_rs::Value = sonic_rs::from_slice(&m.value).unwrap();
        let orphaned = v["orphaned_hash"].as_str().unwrap().to_string();
        assert_eq!(m.header("block_hash"), Some(orphaned.as_str()));
        assert_eq!(m.header("entity"), Some("reorgs"));
        assert_eq!(
            m.key.as_deref().map(str::to_string),
            v["block_number"].as_u64().map(|n| n.to_string())
        );
        log.push(Seen::Reorg {
            number: v["block_number"].as_u64().unwrap(),
            orphaned,
            new: v["new_hash"].as_str().unwrap().to_string(),
            depth: v["depth"].as_u64().unwrap(),
        });
    }
    check_reorgs(
        &node,
        &log,
        &events,
        head,
        ReadBack {
            ordered: false,
            complete: true,
        },
    );
}

#[test]
fn stream_honours_the_rate_limit_flags() {
    // The binary with --requests-per-second: the node's own clock sees no second with more
    // pipeline requests than the limit allows (plus head polls, which are not batches).
    let node = DevNode::start(NodeConfig::generated(gen(40, 9))).expect("start dev node");
    let first = START;
    let out_dir = tempfile::tempdir().unwrap();
    let url = node.url();
    let start = first.to_string();
    let stop = (first + 29).to_string();
    let out = out_dir.path().display().to_string();
    let o = run_ethetl(
        &[
            "stream",
            "--rpc",
            &url,
            "--start-block",
            &start,
            "--stop-at-block",
            &stop,
            "--batch-size",
            "1",
            "--requests-per-second",
            "10",
            "--max-concurrency",
            "2",
            "--poll-interval",
            "0.05",
            "--output",
            &out,
            "--quiet",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        file_blocks(out_dir.path()),
        (first..=first + 29).collect::<Vec<_>>()
    );
    let s = node.stats();
    // 30 one-block batches at 10/s take about 3 s; head polls add a few more requests.
    assert!(s.rpc_requests >= 30, "{s:?}");
    let batches_per_second = s.max_requests_in(1);
    assert!(
        batches_per_second <= 10 + 1 + 4,
        "{:?}",
        s.requests_per_second
    );
    assert!(
        s.requests_per_second.len() >= 3,
        "{:?}",
        s.requests_per_second
    );
}
