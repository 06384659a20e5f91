//! Byte-level fuzzing of every parser that reads a node's answers: the I/O threads' light pass
//! ([`ethetl::rpc::response`]), the depth guard, the decoder of batches and of loose receipts,
//! and the head tracker's JSON. Inputs are real answers (mainnet and L2 fixtures when
//! `../shared/fixtures` is there, a generated chain always) mutated by proptest: flipped,
//! inserted, deleted and duplicated bytes, splices of two answers, truncation, and nesting
//! thousands of levels deep. Nothing may panic or overflow a stack; every input ends in a
//! value or an error.
//!
//! `make test` runs it for a few seconds. For a long run:
//!
//! ```text
//! ETHETL_FUZZ_SECS=600 cargo test --release --test fuzz -- --nocapture
//! ```

mod common;

use ethetl::decode::{decode_batch, decode_receipts, DecodeOptions};
use ethetl::msg::{EntitySet, RangeJob, RawBatch, RowFormat};
use ethetl::rpc::response::{self, Body, Outcome};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One answer body and the job it answers.
#[derive(Clone, Debug)]
struct Seed {
    body: Vec<u8>,
    start: u64,
    end: u64,
    with_receipts: bool,
}

/// Batch bodies of a generated chain, fetched from an in-process dev node exactly as the
/// pipeline asks for them.
fn generated_seeds() -> Vec<Seed> {
    let node = common::generated_node(ethetl_devnode::GenConfig {
        blocks: 12,
        start_block: 19_000_000,
        seed: 11,
        txs_per_block: Some(4),
        era: ethetl_devnode::Era::Mix,
        chain_id: 1,
    });
    let mut seeds = Vec::new();
    for (start, end, with_receipts) in [
        (19_000_000, 19_000_000, true),
        (19_000_001, 19_000_003, true),
        (19_000_004, 19_000_007, false),
        (19_000_008, 19_000_011, true),
    ] {
        let job = RangeJob {
            seq: 0,
            start,
            end,
            attempt: 0,
        };
        let mut request = Vec::new();
        ethetl::rpc::batch::write_request(&job, with_receipts, &mut request);
        let mut r = ureq::post(&node.url())
            .header("Content-Type", "application/json")
            .send(&request[..])
            .unwrap();
        let body = r.body_mut().read_to_vec().unwrap();
        seeds.push(Seed {
            body,
            start,
            end,
            with_receipts,
        });
    }
    seeds
}

/// Single-block batch bodies built from recorded answers (mainnet and L2s).
fn fixture_seeds() -> Vec<Seed> {
    let Some(root) = common::shared_fixtures() else {
        return Vec::new();
    };
    let mut seeds = Vec::new();
    let answer = |id: u64, result: &[u8]| {
        let mut v = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"#).into_bytes();
        v.extend_from_slice(result.trim_ascii());
        v.push(b'}');
        v
    };
    for chain in [
        "mainnet", "arbitrum", "base", "optimism", "gnosis", "sepolia",
    ] {
        let Ok(rd) = std::fs::read_dir(root.join("rpc").join(chain)) else {
            continue;
        };
        let mut dirs: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        dirs.sort();
        let mut taken = 0;
        for dir in &dirs {
            let Some(number) = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let read = |name: &str| std::fs::read(dir.join(name)).ok();
            // Traces are answers too (deeply nested call frames): the light pass and the
            // depth guard read them.
            for trace in ["trace_block.json", "debug_traceBlockByNumber.json"] {
                if let Some(t) = read(trace) {
                    seeds.push(Seed {
                        body: [b"[".to_vec(), answer(0, &t), b"]".to_vec()].concat(),
                        start: number,
                        end: number,
                        with_receipts: false,
                    });
                }
            }
            let Some(block) = read("eth_getBlockByNumber.json") else {
                continue;
            };
            let receipts = read("eth_getBlockReceipts.json");
            let mut body = b"[".to_vec();
            body.extend(answer(0, &block));
            if let Some(r) = &receipts {
                body.push(b',');
                body.extend(answer(1, r));
            }
            body.push(b']');
            seeds.push(Seed {
                body,
                start: number,
                end: number,
                with_receipts: receipts.is_some(),
            });
            taken += 1;
            if taken == 6 {
                break;
            }
        }
    }
    seeds
}

/// One change to a body. Positions and lengths are taken modulo the body's length.
#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize, usize),
    Splice(usize, usize, usize, usize),
    Nest(usize, usize, u8),
    Truncate(usize),
    /// Replace a token-ish byte with one of JSON's structural characters.
    Structural(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<usize>();
    prop_oneof![
        4 => (pos, any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        2 => (pos, proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        2 => (pos, 1usize..4096).prop_map(|(p, n)| Mutation::Delete(p, n)),
        1 => (pos, 1usize..2048, pos)
            .prop_map(|(p, n, to)| Mutation::Duplicate(p, n, to)),
        1 => (any::<usize>(), pos, 1usize..4096, pos)
            .prop_map(|(s, p, n, to)| Mutation::Splice(s, p, n, to)),
        1 => (pos, prop_oneof![Just(40usize), Just(3_000), Just(20_000), Just(150_000)],
              prop_oneof![Just(b'['), Just(b'{')])
            .prop_map(|(p, d, c)| Mutation::Nest(p, d, c)),
        1 => pos.prop_map(Mutation::Truncate),
        3 => (pos, proptest::sample::select(b"[]{}\",:\\0-e.".to_vec()))
            .prop_map(|(p, b)| Mutation::Structural(p, b)),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation, seeds: &[Seed]) {
    let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
    match m {
        Mutation::Set(p, b) | Mutation::Structural(p, b) => {
            if !body.is_empty() {
                let i = p % body.len();
                body[i] = *b;
            }
        }
        Mutation::Insert(p, v) => {
            let i = at(*p, body.len());
            body.splice(i..i, v.iter().copied());
        }
        Mutation::Delete(p, n) => {
            let i = at(*p, body.len());
            let end = (i + n).min(body.len());
            body.drain(i..end);
        }
        Mutation::Duplicate(p, n, to) => {
            let i = at(*p, body.len());
            let piece: Vec<u8> = body[i..(i + n).min(body.len())].to_vec();
            let j = at(*to, body.len());
            body.splice(j..j, piece);
        }
        Mutation::Splice(s, p, n, to) => {
            let other = &seeds[s % seeds.len()].body;
            let i = at(*p, other.len());
            let piece = &other[i..(i + n).min(other.len())];
            let j = at(*to, body.len());
            body.splice(j..j, piece.iter().copied());
        }
        Mutation::Nest(p, depth, open) => {
            let i = at(*p, body.len());
            let prefix: Vec<u8> = if *open == b'{' {
                b"{\"a\":".repeat(*depth)
            } else {
                vec![b'['; *depth]
            };
            body.splice(i..i, prefix);
        }
        Mutation::Truncate(p) => {
            let i = at(*p, body.len());
            body.truncate(i);
        }
    }
}

/// Runs every parser over `body`; a panic fails the test (a stack overflow aborts it).
fn exercise(seed: &Seed, body: Vec<u8>) {
    let _ = ethetl::json_depth::check(&body, ethetl::json_depth::MAX_DEPTH);
    if let Ok(parsed) = response::parse(&body) {
        let items = match parsed {
            Body::Batch(items) => items,
            Body::Single(item) => vec![item],
            Body::Other => Vec::new(),
        };
        for item in &items {
            let _ = response::exact_result(item.raw);
            if let Outcome::Result(r) = item.outcome {
                let _ = response::transaction_hashes(r);
            }
        }
    }
    let raw = RawBatch {
        job: RangeJob {
            seq: 0,
            start: seed.start,
            end: seed.end,
            attempt: 0,
        },
        endpoint: 0,
        with_receipts: seed.with_receipts,
        // As the I/O threads hand it on: measured, or (too deep for them) left to the decoder.
        depth: ethetl::json_depth::max_depth(&body, ethetl::json_depth::MAX_DEPTH).ok(),
        body,
    };
    for format in [RowFormat::Json, RowFormat::Csv] {
        let opts = DecodeOptions {
            entities: EntitySet::of(&ethetl::msg::Entity::ALL),
            format,
        };
        let _ = decode_batch(&raw, &opts);
        let _ = decode_receipts(&raw.body, &opts, Some(1_700_000_000));
    }
    let _ = ethetl::decode::parse_only(&raw.body);
}

#[test]
fn node_answers_never_crash_a_parser() {
    let secs: u64 = std::env::var("ETHETL_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut seeds = generated_seeds();
    seeds.extend(fixture_seeds());
    let seeds = Arc::new(seeds);
    // The parsers run on threads with the pipeline's stack size.
    let worker = std::thread::Builder::new()
        .stack_size(ethetl::json_depth::PARSE_STACK)
        .spawn(move || {
            let budget = Duration::from_secs(secs);
            let t0 = Instant::now();
            let strategy = (0..seeds.len(), proptest::collection::vec(mutation(), 0..6));
            let mut cases = 0u64;
            let mut round = 0u32;
            while t0.elapsed() < budget {
                let mut runner = TestRunner::new(Config {
                    cases: 256,
                    failure_persistence: None,
                    rng_seed: proptest::test_runner::RngSeed::Fixed(u64::from(round)),
                    ..Config::default()
                });
                let result = runner.run(&strategy, |(i, muts)| {
                    let seed = &seeds[i];
                    let mut body = seed.body.clone();
                    for m in &muts {
                        apply(&mut body, m, &seeds);
                    }
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        exercise(seed, body)
                    }));
                    r.map_err(|_| TestCaseError::fail("a parser panicked"))
                });
                if let Err(e) = result {
                    panic!("{e}");
                }
                cases += 256;
                round += 1;
            }
            (cases, seeds.len(), t0.elapsed())
        })
        .unwrap();
    let (cases, seeds, took) = worker.join().expect("no parser crashed");
    eprintln!(
        "fuzz: {cases} mutated answers from {seeds} seeds in {:.0} s, no panic",
        took.as_secs_f64()
    );
}
