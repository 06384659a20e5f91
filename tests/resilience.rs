//! Whatever the node throws, an export finishes with exactly the rows of a clean run, or stops
//! with a clear reason. Every fault kind of the dev node (HTTP 429 and JSON-RPC rate limits,
//! 5xx, resets, stalls, truncated and invalid bodies, batch and item errors, null blocks and
//! receipts, shuffled, mismatched and wrong-block answers), its endpoint properties (no
//! `eth_getBlockReceipts`, geth's batch-call and response-size limits) and mixes of all of
//! them, on a generated chain and on the shared mainnet fixtures: all five entities must be
//! byte-identical to the clean export, and the per-endpoint counters must match the faults the
//! node says it served. Also: a dead and a silent endpoint next to a good one, Retry-After,
//! `--requests-per-second` measured on the node's clock, a node that never stops rate limiting,
//! and no API key in anything the binary prints or writes.

mod common;

use common::{dead_port, generated_node, mainnet_fixtures, run_ethetl, start_node, tree};
use ethetl::config::{BlockRange, ExportConfig};
use ethetl::msg::{DecodedBatch, Entity, EntitySet, RowFormat};
use ethetl::pipeline::run::{error_chain, run_export};
use ethetl::rpc::retry::Cause;
use ethetl::sink::{Sink, SinkError};
use ethetl::stats::RunReport;
use ethetl_devnode::{DevNode, Era, FaultKind, FaultSpec, GenConfig, NodeConfig, NodeStats};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

// ------------------------------------------------------------------------------------------------
// corpora and the clean runs
// ------------------------------------------------------------------------------------------------

const START: u64 = 20_000_000;
const BLOCKS: u64 = 500;
const TXS: u32 = 5;

fn gen_config() -> GenConfig {
    GenConfig {
        blocks: BLOCKS,
        start_block: START,
        seed: 5,
        txs_per_block: Some(TXS),
        era: Era::Mix,
        chain_id: 1,
    }
}

fn gen_range() -> BlockRange {
    BlockRange::new(START, START + BLOCKS - 1).unwrap()
}

/// Ranges of the shared mainnet fixtures without gaps: blocks with receipts (every entity)
/// and runs of blocks without receipts (blocks and transactions).
const FIXTURE_RANGES: [(u64, u64, bool); 6] = [
    (19_433_902, 19_433_903, true),
    (18_000_000, 18_000_000, true),
    (15_573_637, 15_573_637, true),
    (15_478_281, 15_478_287, false),
    (22_431_080, 22_431_090, false),
    (16_000_003, 16_000_005, false),
];

fn all_entities() -> EntitySet {
    EntitySet::of(&Entity::ALL)
}

fn block_entities() -> EntitySet {
    EntitySet::of(&[Entity::Blocks, Entity::Transactions])
}

/// Rows per entity, in the order the sink received them.
type Rows = [Vec<u8>; Entity::COUNT];

/// Collects every row of every entity in write order.
struct Collect {
    rows: Arc<Mutex<Rows>>,
    done: Vec<u64>,
}

impl Sink for Collect {
    fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
        let mut rows = self.rows.lock().unwrap();
        for e in Entity::ALL {
            rows[e as usize].extend_from_slice(&batch.rows(e).data);
        }
        self.done.push(batch.seq);
        Ok(())
    }

    fn poll(&mut self, _: Duration, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        durable.append(&mut self.done);
        Ok(())
    }

    fn finish(&mut self, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        durable.append(&mut self.done);
        Ok(())
    }
}

/// Export settings for fault runs: small batches, many retries, a short timeout.
fn config(url: &str, range: BlockRange, entities: EntitySet, batch: u64) -> ExportConfig {
    let mut c = ExportConfig::new(url, range).unwrap();
    c.entities = entities;
    c.format = RowFormat::Json;
    c.batch_size = batch;
    c.chunk_size = 1000;
    c.io_threads = 4;
    c.cpu_threads = 2;
    c.max_retries = 20;
    c.timeout = Duration::from_secs(1);
    c
}

fn export(c: &ExportConfig) -> (Rows, RunReport) {
    let rows = Arc::new(Mutex::new(Rows::default()));
    let sink = Collect {
        rows: Arc::clone(&rows),
        done: Vec::new(),
    };
    let report = run_export(c, Box::new(sink)).unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    let rows = std::mem::take(&mut *rows.lock().unwrap());
    (rows, report)
}

/// The clean export of the generated chain (once per test binary).
fn clean_generated() -> &'static Rows {
    static CLEAN: OnceLock<Rows> = OnceLock::new();
    CLEAN.get_or_init(|| {
        let node = generated_node(gen_config());
        let (rows, report) = export(&config(&node.url(), gen_range(), all_entities(), 10));
        // Independent check of the baseline: every block and transaction is there.
        let chain = ethetl_devnode::generate_chain(&gen_config());
        assert_eq!(report.blocks, BLOCKS);
        assert_eq!(report.transactions, chain.tx_count());
        assert_eq!(report.logs, chain.log_count());
        assert_eq!(report.retries, 0);
        for e in Entity::ALL {
            assert!(!rows[e as usize].is_empty(), "{e:?}");
        }
        rows
    })
}

/// The clean exports of the fixture ranges (once per test binary).
fn clean_fixtures(dir: &PathBuf) -> &'static Vec<Rows> {
    static CLEAN: OnceLock<Vec<Rows>> = OnceLock::new();
    CLEAN.get_or_init(|| {
        let node = start_node(NodeConfig::fixtures(dir));
        FIXTURE_RANGES
            .iter()
            .map(|&(a, b, receipts)| {
                let (rows, report) = export(&fixture_config(&node.url(), a, b, receipts));
                assert_eq!(report.blocks, b - a + 1);
                assert!(!rows[Entity::Transactions as usize].is_empty());
                assert_eq!(
                    rows[Entity::Receipts as usize].is_empty(),
                    !receipts,
                    "{a}..={b}"
                );
                rows
            })
            .collect()
    })
}

fn fixture_config(url: &str, a: u64, b: u64, receipts: bool) -> ExportConfig {
    let entities = if receipts {
        all_entities()
    } else {
        block_entities()
    };
    // One block per request: more requests, so more chances for faults.
    config(url, BlockRange::new(a, b).unwrap(), entities, 1)
}

// ------------------------------------------------------------------------------------------------
// checking a faulty node
// ------------------------------------------------------------------------------------------------

/// What one corpus run through a faulty node gave.
struct Seen {
    reports: Vec<RunReport>,
    node: NodeStats,
}

impl Seen {
    /// Retries of `cause` over every run (one endpoint per run).
    fn retries(&self, cause: Cause) -> u64 {
        self.reports
            .iter()
            .flat_map(|r| &r.endpoints)
            .map(|e| e.retries.get(cause))
            .sum()
    }

    fn total_retries(&self) -> u64 {
        self.reports.iter().map(|r| r.retries).sum()
    }

    fn sum(&self, f: impl Fn(&ethetl::rpc::endpoints::EndpointReport) -> u64) -> u64 {
        self.reports.iter().flat_map(|r| &r.endpoints).map(f).sum()
    }
}

fn assert_same(ours: &Rows, clean: &Rows, what: &str) {
    for e in Entity::ALL {
        let (a, b) = (&ours[e as usize], &clean[e as usize]);
        if a != b {
            let first = a
                .iter()
                .zip(b.iter())
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            panic!(
                "{what}: {} differ from the clean run ({} vs {} bytes, first difference at byte {first})",
                e.name(),
                a.len(),
                b.len()
            );
        }
    }
}

/// Consistency every run must show: the run total equals the per-endpoint retries, and
/// every retry is accounted for by a cause.
fn assert_counters_add_up(r: &RunReport, what: &str) {
    let per_endpoint: u64 = r.endpoints.iter().map(|e| e.retries.total()).sum();
    assert_eq!(r.retries, per_endpoint, "{what}: {:#?}", r.endpoints);
    let requests: u64 = r.endpoints.iter().map(|e| e.requests).sum();
    assert!(requests >= r.requests, "{what}");
}

/// Exports the generated chain through a node set up by `setup` until `enough` says the node
/// has served what the case needs (at most three rounds); every round must give the clean rows.
fn generated_case(
    what: &str,
    setup: impl Fn(&mut NodeConfig),
    tune: impl Fn(&mut ExportConfig),
    enough: impl Fn(&NodeStats) -> bool,
) -> Seen {
    let clean = clean_generated();
    let mut cfg = NodeConfig::generated(gen_config());
    cfg.retry_after_secs = 0;
    cfg.stall = Duration::from_millis(1500);
    setup(&mut cfg);
    let node = start_node(cfg);
    let mut reports = Vec::new();
    for round in 0..3 {
        let mut c = config(&node.url(), gen_range(), all_entities(), 10);
        tune(&mut c);
        let (rows, report) = export(&c);
        assert_same(
            &rows,
            clean,
            &format!("{what}, generated chain, round {round}"),
        );
        assert_counters_add_up(&report, what);
        reports.push(report);
        if enough(&node.stats()) {
            break;
        }
    }
    let node = node.stats();
    assert!(
        enough(&node),
        "{what}: the node never served the fault: {node:?}"
    );
    Seen { reports, node }
}

/// The same over the fixture ranges (at most twelve rounds of all ranges).
fn fixture_case(
    what: &str,
    setup: impl Fn(&mut NodeConfig),
    enough: impl Fn(&NodeStats) -> bool,
) -> Option<Seen> {
    let dir = mainnet_fixtures()?;
    let clean = clean_fixtures(&dir);
    let mut cfg = NodeConfig::fixtures(&dir);
    cfg.retry_after_secs = 0;
    cfg.stall = Duration::from_millis(1500);
    setup(&mut cfg);
    let node = start_node(cfg);
    let mut reports = Vec::new();
    for round in 0..12 {
        for (i, &(a, b, receipts)) in FIXTURE_RANGES.iter().enumerate() {
            let (rows, report) = export(&fixture_config(&node.url(), a, b, receipts));
            assert_same(
                &rows,
                &clean[i],
                &format!("{what}, fixtures {a}..={b}, round {round}"),
            );
            assert_counters_add_up(&report, what);
            reports.push(report);
        }
        if enough(&node.stats()) {
            break;
        }
    }
    let node = node.stats();
    assert!(
        enough(&node),
        "{what}: the node never served the fault: {node:?}"
    );
    Some(Seen { reports, node })
}

/// One random fault kind at `rate` (fixtures: `fx_rate`), on both corpora; `check` sees each
/// corpus' runs.
fn fault_kind(kind: FaultKind, rate: f64, fx_rate: f64, check: impl Fn(&Seen, &str)) {
    let served = |s: &NodeStats| s.faults.get(kind) > 0;
    let name = format!("{kind} faults");
    let g = generated_case(
        &name,
        |c| {
            c.faults = FaultSpec::only(kind, rate);
            c.fault_seed = 100 + kind.index() as u64;
        },
        |_| {},
        served,
    );
    check(&g, &format!("{name}, generated"));
    eprintln!(
        "{name}: generated chain identical; node served {} faults, {} retries",
        g.node.faults.get(kind),
        g.total_retries()
    );
    if let Some(f) = fixture_case(
        &name,
        |c| {
            c.faults = FaultSpec::only(kind, fx_rate);
            c.fault_seed = 200 + kind.index() as u64;
        },
        served,
    ) {
        check(&f, &format!("{name}, fixtures"));
        eprintln!(
            "{name}: fixtures identical; node served {} faults, {} retries",
            f.node.faults.get(kind),
            f.total_retries()
        );
    }
}

/// Each served fault of `kind` caused exactly one retry of one of `causes`.
fn one_retry_per_fault(kind: FaultKind, causes: &'static [Cause]) -> impl Fn(&Seen, &str) {
    move |s, what| {
        let served = s.node.faults.get(kind);
        let retried: u64 = causes.iter().map(|c| s.retries(*c)).sum();
        assert_eq!(retried, served, "{what}: {:#?}", s.reports[0].endpoints);
        assert_eq!(s.total_retries(), served, "{what}: no other retries");
        assert!(served > 0);
    }
}

// ------------------------------------------------------------------------------------------------
// every fault kind
// ------------------------------------------------------------------------------------------------

#[test]
fn http_429_with_retry_after_is_waited_out_and_not_a_failure() {
    fault_kind(FaultKind::TooManyRequests, 0.2, 0.4, |s, what| {
        one_retry_per_fault(FaultKind::TooManyRequests, &[Cause::Http429])(s, what);
        assert_eq!(
            s.sum(|e| e.rate_limited),
            s.node.faults.get(FaultKind::TooManyRequests)
        );
    });
}

#[test]
fn json_rpc_rate_limit_errors_slow_down_and_retry() {
    fault_kind(FaultKind::RateLimitRpc, 0.2, 0.4, |s, what| {
        one_retry_per_fault(FaultKind::RateLimitRpc, &[Cause::RateLimitRpc])(s, what);
        assert_eq!(
            s.sum(|e| e.rate_limited),
            s.node.faults.get(FaultKind::RateLimitRpc)
        );
    });
}

#[test]
fn http_500_is_retried() {
    fault_kind(
        FaultKind::Http500,
        0.2,
        0.4,
        one_retry_per_fault(FaultKind::Http500, &[Cause::Http]),
    );
}

#[test]
fn http_502_is_retried() {
    fault_kind(
        FaultKind::Http502,
        0.2,
        0.4,
        one_retry_per_fault(FaultKind::Http502, &[Cause::Http]),
    );
}

#[test]
fn http_503_is_retried() {
    fault_kind(
        FaultKind::Http503,
        0.2,
        0.4,
        one_retry_per_fault(FaultKind::Http503, &[Cause::Http]),
    );
}

#[test]
fn connection_resets_are_retried() {
    fault_kind(
        FaultKind::Reset,
        0.2,
        0.4,
        one_retry_per_fault(FaultKind::Reset, &[Cause::Transport]),
    );
}

#[test]
fn stalls_time_out_and_are_retried() {
    // --timeout 1 s, stalls of 1.5 s.
    fault_kind(
        FaultKind::Stall,
        0.05,
        0.15,
        one_retry_per_fault(FaultKind::Stall, &[Cause::Timeout]),
    );
}

#[test]
fn truncated_bodies_are_retried() {
    fault_kind(
        FaultKind::Truncate,
        0.2,
        0.4,
        one_retry_per_fault(FaultKind::Truncate, &[Cause::Transport, Cause::InvalidBody]),
    );
}

#[test]
fn invalid_json_is_retried() {
    fault_kind(
        FaultKind::InvalidJson,
        0.2,
        0.4,
        one_retry_per_fault(FaultKind::InvalidJson, &[Cause::InvalidBody]),
    );
}

#[test]
fn batch_error_objects_are_retried() {
    fault_kind(
        FaultKind::BatchError,
        0.2,
        0.4,
        one_retry_per_fault(FaultKind::BatchError, &[Cause::BatchError]),
    );
}

#[test]
fn item_errors_are_retried_call_by_call() {
    fault_kind(
        FaultKind::ItemError,
        0.2,
        0.4,
        one_retry_per_fault(FaultKind::ItemError, &[Cause::ItemError]),
    );
}

#[test]
fn null_blocks_are_retried() {
    fault_kind(
        FaultKind::NullBlock,
        0.2,
        0.4,
        one_retry_per_fault(FaultKind::NullBlock, &[Cause::NullResult]),
    );
}

#[test]
fn null_receipts_are_retried() {
    fault_kind(
        FaultKind::NullReceipts,
        0.2,
        0.5,
        one_retry_per_fault(FaultKind::NullReceipts, &[Cause::NullResult]),
    );
}

#[test]
fn shuffled_answers_are_matched_by_id() {
    fault_kind(FaultKind::Shuffle, 0.3, 0.5, |s, what| {
        // Answers out of order are legal JSON-RPC: nothing to retry.
        assert!(s.node.faults.get(FaultKind::Shuffle) > 0, "{what}");
        assert_eq!(s.total_retries(), 0, "{what}");
    });
}

#[test]
fn receipts_that_do_not_match_are_rejected_and_refetched() {
    fault_kind(
        FaultKind::ReceiptsMismatch,
        0.2,
        0.5,
        one_retry_per_fault(FaultKind::ReceiptsMismatch, &[Cause::Rejected]),
    );
}

#[test]
fn receipts_of_the_wrong_block_are_rejected_and_refetched() {
    fault_kind(
        FaultKind::WrongBlock,
        0.2,
        0.5,
        one_retry_per_fault(FaultKind::WrongBlock, &[Cause::Rejected]),
    );
}

#[test]
fn no_block_receipts_falls_back_to_transaction_receipts() {
    let check = |s: &Seen, what: &str| {
        assert_eq!(s.total_retries(), 0, "{what}");
        for r in &s.reports {
            if r.receipts > 0 {
                assert_eq!(r.endpoints[0].block_receipts, Some(false), "{what}");
            }
        }
        // Detected from the first answers: at most one refused request per I/O thread per run
        // (each with at most 10 eth_getBlockReceipts calls).
        let runs_with_receipts = s.reports.iter().filter(|r| r.receipts > 0).count() as u64;
        assert!(
            s.node.errors >= 1 && s.node.errors <= 4 * 10 * runs_with_receipts,
            "{what}: {:?}",
            s.node
        );
    };
    let g = generated_case(
        "no eth_getBlockReceipts",
        |c| c.block_receipts = false,
        |_| {},
        |_| true,
    );
    // Every transaction's receipt was asked for separately.
    assert!(
        g.node.calls >= BLOCKS + BLOCKS * u64::from(TXS),
        "{:?}",
        g.node
    );
    check(&g, "no eth_getBlockReceipts, generated");
    if let Some(f) = fixture_case(
        "no eth_getBlockReceipts",
        |c| c.block_receipts = false,
        |_| true,
    ) {
        check(&f, "no eth_getBlockReceipts, fixtures");
    }
}

#[test]
fn batches_over_the_call_limit_are_split_and_the_size_remembered() {
    let check = |s: &Seen, limit: u64, what: &str| {
        assert_eq!(s.total_retries(), 0, "{what}");
        assert!(s.node.batch_too_large > 0, "{what}");
        assert!(s.sum(|e| e.splits) > 0, "{what}");
        for r in &s.reports {
            if let Some(m) = r.endpoints[0].max_batch_calls {
                assert!(m <= limit, "{what}: {m}");
            }
        }
        // Remembered: far fewer refusals than requests.
        let requests = s.sum(|e| e.requests);
        assert!(
            s.node.batch_too_large * 3 < requests,
            "{what}: {:?}",
            s.node
        );
    };
    // 10 blocks with receipts = 20 calls; geth-style limit of 6.
    let g = generated_case(
        "batch too large",
        |c| c.max_batch_calls = Some(6),
        |_| {},
        |s| s.batch_too_large > 0,
    );
    check(&g, 6, "batch too large, generated");
    // One block with receipts = 2 calls; limit 1.
    if let Some(f) = fixture_case(
        "batch too large",
        |c| c.max_batch_calls = Some(1),
        |s| s.batch_too_large > 0,
    ) {
        assert_eq!(f.total_retries(), 0);
        assert!(f.sum(|e| e.splits) > 0);
    }
}

#[test]
fn responses_over_the_size_cap_are_split() {
    let check = |s: &Seen, what: &str| {
        assert_eq!(s.total_retries(), 0, "{what}");
        assert!(s.node.response_too_large > 0, "{what}");
        assert!(s.sum(|e| e.splits) > 0, "{what}");
    };
    let g = generated_case(
        "response too large",
        |c| c.max_response_bytes = Some(25_000),
        |_| {},
        |s| s.response_too_large > 0,
    );
    check(&g, "response too large, generated");
    // Mainnet blocks are larger than the cap on their own: block and receipts go apart.
    if let Some(f) = fixture_case(
        "response too large",
        |c| c.max_response_bytes = Some(60_000),
        |s| s.response_too_large > 0,
    ) {
        check(&f, "response too large, fixtures");
    }
}

/// Every random fault kind at once, on top of geth's batch limits (and, with `fallback`, no
/// `eth_getBlockReceipts`).
fn mixed(fallback: bool) {
    let what = if fallback {
        "all faults, no eth_getBlockReceipts"
    } else {
        "all faults"
    };
    let setup = |c: &mut NodeConfig, calls: usize, bytes: usize| {
        c.faults = FaultSpec::all(0.25);
        c.fault_seed = if fallback { 77 } else { 78 };
        c.block_receipts = !fallback;
        c.max_batch_calls = Some(calls);
        c.max_response_bytes = Some(bytes);
    };
    let g = generated_case(
        what,
        |c| setup(c, if fallback { 40 } else { 8 }, 150_000),
        |_| {},
        |s| s.faults.served().count() >= 8,
    );
    assert!(g.total_retries() > 0 && g.sum(|e| e.splits) > 0);
    eprintln!(
        "{what}: generated chain identical; node served {} ({} requests), ethetl retried {} times: {}",
        g.node.faults,
        g.node.rpc_requests,
        g.total_retries(),
        g.reports[0].endpoints[0].summary_line()
    );
    if let Some(f) = fixture_case(
        what,
        |c| setup(c, if fallback { 20 } else { 3 }, 1_000_000),
        |s| s.faults.served().count() >= 6,
    ) {
        assert!(f.total_retries() > 0);
        eprintln!(
            "{what}: fixtures identical; node served {} ({} requests), ethetl retried {} times",
            f.node.faults,
            f.node.rpc_requests,
            f.total_retries()
        );
    }
}

#[test]
fn a_mix_of_every_fault_changes_nothing() {
    mixed(false);
}

#[test]
fn a_mix_of_every_fault_without_block_receipts_changes_nothing() {
    mixed(true);
}

// ------------------------------------------------------------------------------------------------
// several endpoints
// ------------------------------------------------------------------------------------------------

#[test]
fn dead_and_silent_endpoints_are_benched_and_the_run_completes() {
    let good = generated_node(gen_config());
    // Accepts connections (the kernel does) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let urls = format!(
        "http://127.0.0.1:{}/,http://{}/,{}",
        dead_port(),
        silent.local_addr().unwrap(),
        good.url()
    );
    let c = config(&urls, gen_range(), all_entities(), 10);
    let (rows, report) = export(&c);
    assert_same(&rows, clean_generated(), "dead + silent + good");
    let [dead, mute, ok] = &report.endpoints[..] else {
        panic!("{:?}", report.endpoints)
    };
    assert!(dead.retries.get(Cause::Transport) >= 3, "{dead:?}");
    assert!(mute.retries.get(Cause::Timeout) >= 1, "{mute:?}");
    assert!(dead.benched >= 1, "{dead:?}");
    // The good endpoint answered every request that got an answer.
    assert_eq!(ok.requests, good.stats().rpc_requests);
    assert_eq!(ok.retries.total(), 0);
    assert_eq!(report.requests, ok.requests);
    assert_counters_add_up(&report, "dead + silent + good");
}

#[test]
fn weights_share_the_jobs() {
    let a = generated_node(gen_config());
    let b = generated_node(gen_config());
    let urls = format!("{} weight=3, {}", a.url(), b.url());
    let mut c = config(&urls, gen_range(), all_entities(), 10);
    c.io_threads = 2;
    let (rows, report) = export(&c);
    assert_same(&rows, clean_generated(), "weighted endpoints");
    let (na, nb) = (a.stats().rpc_requests, b.stats().rpc_requests);
    assert_eq!(na + nb, 50);
    // Smooth weighted round-robin: 3 of every 4 jobs go to the first (give or take the
    // moments one endpoint is busy).
    assert!(na >= 30 && nb >= 5, "{na} / {nb}");
    assert_eq!(report.endpoints[0].requests, na);
}

// ------------------------------------------------------------------------------------------------
// rate limits
// ------------------------------------------------------------------------------------------------

#[test]
fn requests_per_second_is_honoured_on_the_nodes_clock() {
    let node = generated_node(gen_config());
    let range = BlockRange::new(START, START + 59).unwrap();
    let mut c = config(&node.url(), range, block_entities(), 1);
    c.requests_per_second = Some(20.0);
    c.io_threads = 6;
    let (_, report) = export(&c);
    assert_eq!(report.blocks, 60);
    let s = node.stats();
    assert_eq!(s.rpc_requests, 60);
    // Evenly spaced: no second of the node's clock saw more than the rate (plus one that
    // starts a window), nor any two seconds more than twice that.
    assert!(s.max_requests_in(1) <= 21, "{:?}", s.requests_per_second);
    assert!(s.max_requests_in(2) <= 42, "{:?}", s.requests_per_second);
}

#[test]
fn rate_can_count_calls_per_endpoint() {
    let node = generated_node(gen_config());
    let range = BlockRange::new(START, START + 59).unwrap();
    // Two blocks with receipts per request = 4 calls; 40 calls/s = 10 requests/s.
    let url = format!("{} rps=40 bill=calls", node.url());
    let mut c = config(&url, range, all_entities(), 2);
    c.io_threads = 6;
    let (_, report) = export(&c);
    assert_eq!(report.blocks, 60);
    let s = node.stats();
    assert_eq!(s.rpc_requests, 30);
    assert!(s.max_requests_in(1) <= 11, "{:?}", s.requests_per_second);
}

#[test]
fn retry_after_is_honoured() {
    // A seed whose schedule rate-limits the first request and not the second.
    let spec = FaultSpec::only(FaultKind::TooManyRequests, 0.5);
    let seed = (0..1000u64)
        .find(|&s| spec.decide(s, 0).is_some() && spec.decide(s, 1).is_none())
        .unwrap();
    let mut cfg = NodeConfig::generated(gen_config());
    cfg.faults = spec;
    cfg.fault_seed = seed;
    cfg.retry_after_secs = 2;
    let node = start_node(cfg);
    // One job, so the two requests are the first answer and its retry.
    let range = BlockRange::new(START, START + 4).unwrap();
    let mut c = config(&node.url(), range, block_entities(), 10);
    c.timeout = Duration::from_secs(10);
    let (_, report) = export(&c);
    let s = node.stats();
    assert_eq!(s.rpc_requests, 2);
    assert_eq!(report.endpoints[0].rate_limited, 1);
    let gap = s.last_request.unwrap() - s.first_request.unwrap();
    assert!(gap >= Duration::from_millis(1950), "retried after {gap:?}");
}

#[test]
fn a_node_that_never_stops_rate_limiting_ends_with_a_clear_error() {
    let mut cfg = NodeConfig::generated(gen_config());
    cfg.faults = FaultSpec::only(FaultKind::TooManyRequests, 1.0);
    cfg.retry_after_secs = 0;
    let node = start_node(cfg);
    let range = BlockRange::new(START, START + 4).unwrap();
    let mut c = config(&node.url(), range, block_entities(), 10);
    c.max_retries = 0;
    c.rate_limit_retries = 4;
    let rows = Arc::new(Mutex::new(Rows::default()));
    let sink = Collect {
        rows,
        done: Vec::new(),
    };
    let e = run_export(&c, Box::new(sink)).unwrap_err();
    let msg = error_chain(&e);
    assert!(
        msg.contains("still rate limited after 5 tries")
            && msg.contains("HTTP 429")
            && msg.contains(&format!("blocks {START}..={}", START + 4)),
        "{msg}"
    );
    // Rate limits did not use up --max-retries 0: five requests were made.
    assert_eq!(node.stats().rpc_requests, 5);
}

// ------------------------------------------------------------------------------------------------
// the binary: summary, report, secrets
// ------------------------------------------------------------------------------------------------

fn ethetl(args: &[&str]) -> std::process::Output {
    run_ethetl(args, Duration::from_secs(120))
}

#[test]
fn the_binary_prints_per_endpoint_counters_and_never_a_key() {
    let mut cfg = NodeConfig::generated(gen_config());
    cfg.faults = FaultSpec::all(0.3);
    cfg.fault_seed = 9;
    cfg.retry_after_secs = 0;
    cfg.stall = Duration::from_millis(1500);
    cfg.max_batch_calls = Some(12);
    let faulty = start_node(cfg);
    let clean = generated_node(gen_config());
    let dir = tempfile::tempdir().unwrap();
    let port = |n: &DevNode| n.addr().port();
    let keyed = format!(
        "http://127.0.0.1:{}/v2/SECRETKEY1?apikey=SECRETVALUE2 weight=2,https://user:SECRETPASS3@127.0.0.1:{}/SECRETKEY4",
        port(&faulty),
        dead_port()
    );
    let blocks = format!("{START}:+{BLOCKS}");
    let all = "blocks,transactions,logs,token_transfers,receipts";
    let out_faulty = dir.path().join("faulty");
    let report = dir.path().join("report.json");
    let out = ethetl(&[
        "export",
        "--rpc",
        &keyed,
        "--blocks",
        &blocks,
        "--entities",
        all,
        "--output",
        out_faulty.to_str().unwrap(),
        "--batch-size",
        "10",
        "--max-retries",
        "20",
        "--timeout",
        "1",
        "--report",
        report.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report_text = std::fs::read_to_string(&report).unwrap();
    for text in [&stderr, &report_text] {
        assert!(!text.contains("SECRET"), "a key leaked: {text}");
    }
    assert!(
        stderr.contains("warning: "),
        "faults were reported: {stderr}"
    );
    let summary: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("endpoint "))
        .collect();
    assert_eq!(summary.len(), 2, "{stderr}");
    assert!(
        summary[0].starts_with(&format!(
            "endpoint http://127.0.0.1:{}/v2/***?apikey=***: ",
            port(&faulty)
        )) && summary[0].contains("retries")
            && summary[0].contains("latency mean"),
        "{}",
        summary[0]
    );
    assert!(
        summary[1].contains("https://user:***@127.0.0.1:"),
        "{}",
        summary[1]
    );
    eprintln!("{stderr}");

    let rep: sonic_rs::Value = sonic_rs::from_str(&report_text).unwrap();
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    let eps = rep["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 2);
    let retries = |e: &sonic_rs::Value| -> u64 {
        e["retries"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    };
    let total: u64 = eps.iter().map(retries).sum();
    assert!(total > 0);
    assert_eq!(rep["retries"].as_u64(), Some(total));
    assert!(eps[0]["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(eps[0]["max_batch_calls"].as_u64().unwrap() <= 12);
    assert!(eps[1]["retries"]["transport"].as_u64().unwrap() > 0);

    // The clean run, endpoints from a file: the same files, byte for byte.
    let list = dir.path().join("endpoints.txt");
    std::fs::write(
        &list,
        format!(
            "# primary\nhttp://127.0.0.1:{}/v2/SECRETKEY5 rps=1000\n",
            port(&clean)
        ),
    )
    .unwrap();
    let out_clean = dir.path().join("clean");
    let out = ethetl(&[
        "export",
        "--rpc",
        &format!("@{}", list.display()),
        "--blocks",
        &blocks,
        "--entities",
        all,
        "--output",
        out_clean.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("SECRET"), "{stderr}");
    assert!(stderr.contains("/v2/***: "), "{stderr}");
    let (a, b) = (tree(&out_faulty), tree(&out_clean));
    assert_eq!(a.len(), 5);
    assert!(a == b, "the faulty run's files differ from the clean run's");
}

#[test]
fn bad_endpoint_settings_and_ca_bundles_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let cases: [(Vec<String>, &[&str]); 5] = [
        (
            vec!["--rpc".into(), "http://h:1/v2/SECRETKEY weight=0".into()],
            &["weight=0", "http://h:1/v2/***"],
        ),
        (
            vec!["--rpc".into(), "http://h:1/ colour=red".into()],
            &["colour=red", "unknown option"],
        ),
        (
            vec![
                "--rpc".into(),
                format!("@{}", dir.path().join("missing").display()),
            ],
            &["cannot read the --rpc endpoint file"],
        ),
        (
            vec![
                "--rpc".into(),
                "http://h:1/".into(),
                "--ca-bundle".into(),
                not_pem.display().to_string(),
            ],
            &["--ca-bundle", "no certificate"],
        ),
        (
            vec!["--rpc".into(), "http://h:1/".into(), "--count-calls".into()],
            &["--count-calls", "--requests-per-second"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args: Vec<String> = ["export", "--blocks", "1:+1", "--output", "null"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ethetl(&argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        for n in needles {
            assert!(stderr.contains(n), "`{n}` missing: {stderr}");
        }
        assert!(!stderr.contains("SECRET"), "{stderr}");
    }
}

// ------------------------------------------------------------------------------------------------
// TLS
// ------------------------------------------------------------------------------------------------

/// Test-only certificates (never used outside these tests): a CA, and a certificate for
/// 127.0.0.1/localhost it signed, valid 2000–2100. Made with `openssl ecparam -name
/// prime256v1`, `openssl req` and `openssl ca -startdate 20000101000000Z -enddate
/// 21000101000000Z` (CA: basicConstraints CA:TRUE, keyCertSign; leaf: serverAuth,
/// subjectAltName IP:127.0.0.1, DNS:localhost).
mod tls {
    pub const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBZjCCAQygAwIBAgICEAAwCgYIKoZIzj0EAwIwGTEXMBUGA1UEAwwOZXRoZXRs
IHRlc3QgQ0EwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBkxFzAV
BgNVBAMMDmV0aGV0bCB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
IDjH7oVjqKRALDry8G5cRwY/dB77gc9UUlnEOrRqh2P/y0zpZhoMLzItFTgwzskd
QAN00c2Y8bJeN1PqFoZkKqNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8E
BAMCAQYwHQYDVR0OBBYEFH/Og6t0Xdb525XINA5n3RWGote0MAoGCCqGSM49BAMC
A0gAMEUCIEv4fo56WyXvMpVuyBlxltMSLe6VCZvxTPVQynrc5HcvAiEAuMCakKb5
KtEfLnVsMWAA0KxjwiUqRvfzV9x6MccWCBk=
-----END CERTIFICATE-----
";
    pub const LEAF: &str = "-----BEGIN CERTIFICATE-----
MIIBsjCCAVigAwIBAgICEAEwCgYIKoZIzj0EAwIwGTEXMBUGA1UEAwwOZXRoZXRs
IHRlc3QgQ0EwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBQxEjAQ
BgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJ4gRi/h
z57rx6QNohtrxIEUWVG8NsJ0tqX7RKKYBdR34CBYHLHyTa9mxWwY51aCwFUeXtXz
56JNsqVf7/LgD9OjgZIwgY8wDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8EBAMCB4Aw
EwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYDVR0RBBMwEYcEfwAAAYIJbG9jYWxob3N0
MB8GA1UdIwQYMBaAFH/Og6t0Xdb525XINA5n3RWGote0MB0GA1UdDgQWBBTqYgoR
p3aDnZbS3ajN1bn7hVHjUjAKBggqhkjOPQQDAgNIADBFAiAB112NxF5sGFDgCI5L
RJFq6yaWZVXp5wa5EKu33teONQIhANPeVvML+QzffHym6VmxZAy3+W97nwzhuuK2
wvJ6Tnq/
-----END CERTIFICATE-----
";
    pub const LEAF_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgGq5TY7oirzUwf7du
GLtWF+avx2QB4rPXoNMoo34ZaI6hRANCAASeIEYv4c+e68ekDaIba8SBFFlRvDbC
dLal+0SimAXUd+AgWByx8k2vZsVsGOdWgsBVHl7V8+eiTbKlX+/y4A/T
-----END PRIVATE KEY-----
";

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// An HTTPS front for a plain-HTTP JSON-RPC node: terminates TLS with [`LEAF`] and
    /// forwards every POST body.
    pub struct Front {
        pub port: u16,
        /// TCP connections accepted.
        pub connections: Arc<AtomicUsize>,
        /// Requests forwarded (after a completed handshake).
        pub requests: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    impl Front {
        pub fn start(upstream: String) -> Front {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(LEAF.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap();
            let key = PrivateKeyDer::from_pem_slice(LEAF_KEY.as_bytes()).unwrap();
            let config = Arc::new(
                rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
            );
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            let (connections, requests, stop) = (
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicBool::new(false)),
            );
            let (c, r, s) = (
                Arc::clone(&connections),
                Arc::clone(&requests),
                Arc::clone(&stop),
            );
            let handle = std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(90);
                let mut workers = Vec::new();
                while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok((tcp, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    c.fetch_add(1, Ordering::SeqCst);
                    let (config, upstream, r) =
                        (Arc::clone(&config), upstream.clone(), Arc::clone(&r));
                    workers.push(std::thread::spawn(move || {
                        let _ = tcp.set_nonblocking(false);
                        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        serve(rustls::StreamOwned::new(conn, tcp), &upstream, &r);
                    }));
                }
                for w in workers {
                    let _ = w.join();
                }
            });
            Front {
                port,
                connections,
                requests,
                stop,
                handle: Some(handle),
            }
        }
    }

    /// Answers HTTP/1.1 POSTs on one connection until it closes or fails.
    fn serve(stream: impl Read + Write, upstream: &str, requests: &AtomicUsize) {
        let mut io = BufReader::new(stream);
        let agent = ureq::Agent::new_with_defaults();
        loop {
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                match io.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            if io.read_exact(&mut body).is_err() {
                return;
            }
            requests.fetch_add(1, Ordering::SeqCst);
            let answer = agent
                .post(upstream)
                .header("Content-Type", "application/json")
                .send(&body[..])
                .and_then(|mut r| r.body_mut().with_config().limit(1 << 30).read_to_vec())
                .unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                answer.len()
            );
            let out = io.get_mut();
            if out.write_all(head.as_bytes()).is_err()
                || out.write_all(&answer).is_err()
                || out.flush().is_err()
            {
                return;
            }
        }
    }

    impl Drop for Front {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }
}

#[test]
fn https_certificates_are_always_verified_and_a_ca_bundle_adds_a_private_ca() {
    use std::sync::atomic::Ordering;
    let node = generated_node(gen_config());
    let front = tls::Front::start(node.url());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, tls::CA).unwrap();
    let url = format!("https://127.0.0.1:{}/v2/SECRETKEY", front.port);
    let blocks = format!("{START}:+20");

    // The bundled roots do not know the test CA: refused at once, never retried.
    let out = ethetl(&[
        "export",
        "--rpc",
        &url,
        "--blocks",
        &blocks,
        "--output",
        "null",
        "--max-retries",
        "5",
        "--batch-size",
        "20",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("certificate") && stderr.contains("https://127.0.0.1:"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET"), "{stderr}");
    assert_eq!(front.requests.load(Ordering::SeqCst), 0);
    // The head check's connection and the pipeline's one: not retried.
    assert_eq!(front.connections.load(Ordering::SeqCst), 2, "not retried");

    // Trusting the test CA: the same rows as over plain HTTP.
    let (via_tls, plain) = (dir.path().join("tls"), dir.path().join("plain"));
    for (rpc, out_dir, bundle) in [(&url, &via_tls, true), (&node.url(), &plain, false)] {
        let mut args = vec![
            "export",
            "--rpc",
            rpc,
            "--blocks",
            &blocks,
            "--entities",
            "blocks,transactions,logs,token_transfers,receipts",
            "--output",
            out_dir.to_str().unwrap(),
            "-q",
        ];
        if bundle {
            args.extend(["--ca-bundle", ca.to_str().unwrap()]);
        }
        let out = ethetl(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(front.requests.load(Ordering::SeqCst) > 0);
    let (a, b) = (tree(&via_tls), tree(&plain));
    assert_eq!(a.len(), 5);
    assert!(a == b, "rows over TLS differ");
}

#[test]
fn a_call_too_large_even_alone_is_a_clear_error() {
    // HTTP 413 for everything: the batch is split down to single calls, then given up.
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut calls_seen = Vec::new();
        while let Ok(Some(mut req)) = server.recv_timeout(Duration::from_secs(2)) {
            let mut body = Vec::new();
            let _ = std::io::Read::read_to_end(req.as_reader(), &mut body);
            // A batch (the pipeline), or the single eth_blockNumber of the head check.
            match sonic_rs::from_slice::<Vec<sonic_rs::Value>>(&body) {
                Ok(calls) => calls_seen.push(calls.len()),
                Err(_) => calls_seen.push(0),
            }
            let _ = req.respond(
                tiny_http::Response::from_string("request entity too large").with_status_code(413),
            );
        }
        calls_seen
    });
    let out = ethetl(&[
        "export",
        "--rpc",
        &format!("http://127.0.0.1:{port}/v2/SECRETKEY"),
        "--blocks",
        "7:+4",
        "--output",
        "null",
        "--io-threads",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ")
            && last.contains("block 7: eth_getBlockByNumber: the answer is too large")
            && last.contains("HTTP 413"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET"), "{stderr}");
    // The head check (a single call, refused too: the run goes on), then 4 blocks with
    // receipts: 8 calls, then 4, 2, 1.
    assert_eq!(h.join().unwrap(), vec![0, 8, 4, 2, 1]);
}

#[test]
fn help_explains_the_resilience_flags() {
    let out = ethetl(&["export", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--requests-per-second",
        "--count-calls",
        "--max-concurrency",
        "--ca-bundle",
        "--max-retries",
        "weight=N",
        "rps=R",
        "bill=requests|calls",
        "@FILE",
        "Retry-After",
        "always verified",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from --help:\n{text}"
        );
    }
}
