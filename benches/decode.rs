//! Decode-stage micro-benchmarks: block parse, receipt join (id matching and validation),
//! transfer decoding and row serialization, each reported as MB/s of the JSON-RPC answer the
//! stage works on (`Throughput::Bytes`), so every stage can be compared with the parse alone.
//!
//! Inputs: the real mainnet block/receipt pairs of `../shared/fixtures/rpc/mainnet` (15573637,
//! 18000000, 19433902, 19433903) when that directory exists, and always a generated batch of
//! recent-era blocks (`ethetl_devnode`, fixed seed).
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time, so
//! other processes competing for the cores (a shared build machine) do not show up as slowdowns.
//!
//! ```text
//! cargo bench --bench decode                 # all groups
//! cargo bench --bench decode -- parse        # one group (criterion filter)
//! ```

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Throughput};
use ethetl::decode::model::{Block, ReceiptsDoc};
use ethetl::decode::receipt::BlockCtx;
use ethetl::decode::write::V;
use ethetl::decode::{
    block, decode_batch, log, parse_only, receipt, token_transfer, transaction, DecodeOptions,
};
use ethetl::msg::{Entity, EntitySet, RangeJob, RawBatch, RowBuf, RowFormat};
use ethetl_devnode::{generate_chain, Era, GenConfig};
use std::path::Path;
use std::time::Duration;

type Criterion = criterion::Criterion<ThreadCpu>;

/// CPU time of the calling thread, in nanoseconds.
struct ThreadCpu;

fn thread_cpu_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

impl Measurement for ThreadCpu {
    type Intermediate = f64;
    type Value = f64;
    fn start(&self) -> f64 {
        thread_cpu_ns()
    }
    fn end(&self, start: f64) -> f64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats CPU nanoseconds like criterion's wall-time values, throughput in bytes per CPU-second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match ns {
            x if x < 1e3 => (1.0, "ns"),
            x if x < 1e6 => (1e-3, "µs"),
            x if x < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(&self, typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let (per_iter, scale, unit) = match *t {
            Throughput::Bytes(b) => (b as f64, 1024.0 * 1024.0, "MiB/s"),
            Throughput::BytesDecimal(b) => (b as f64, 1e6, "MB/s"),
            Throughput::Elements(e) => (e as f64, 1e6, "Melem/s"),
        };
        let _ = typical;
        values
            .iter_mut()
            .for_each(|v| *v = per_iter * 1e9 / *v / scale);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Real pairs (block + all its receipts) in the shared fixtures.
const REAL_PAIRS: [u64; 4] = [15_573_637, 18_000_000, 19_433_902, 19_433_903];

/// Generated batch: as many blocks as one fetch job typically holds.
const GEN_BLOCKS: u64 = 10;
const GEN_START: u64 = 23_000_000;

/// One benchmark input: a block and its receipts as bare results, and the batch answer a
/// node sends for them (ids `2*i` / `2*i + 1`, see `ethetl::rpc::batch`).
struct Input {
    name: String,
    start: u64,
    end: u64,
    /// `(block_json, receipts_json)` per block.
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

fn batch_body(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"[".to_vec();
    for (i, (b, r)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        for (id, result) in [(2 * i, b), (2 * i + 1, r)] {
            if id % 2 == 1 {
                out.push(b',');
            }
            out.extend_from_slice(
                format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":").as_bytes(),
            );
            out.extend_from_slice(result);
            out.push(b'}');
        }
    }
    out.push(b']');
    out
}

fn inputs() -> Vec<Input> {
    let mut v = Vec::new();
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/rpc/mainnet"
    ));
    if dir.is_dir() {
        for n in REAL_PAIRS {
            let read = |f: &str| std::fs::read(dir.join(n.to_string()).join(f));
            match (
                read("eth_getBlockByNumber.json"),
                read("eth_getBlockReceipts.json"),
            ) {
                (Ok(b), Ok(r)) => {
                    let pairs = vec![(b, r)];
                    v.push(Input {
                        name: format!("mainnet-{n}"),
                        start: n,
                        end: n,
                        body: batch_body(&pairs),
                        pairs,
                    });
                }
                _ => eprintln!("skipping mainnet {n}: fixture files missing"),
            }
        }
    } else {
        eprintln!(
            "skipping real blocks: {} not found; using generated blocks only",
            dir.display()
        );
    }
    let chain = generate_chain(&GenConfig {
        blocks: GEN_BLOCKS,
        start_block: GEN_START,
        seed: 1,
        txs_per_block: None,
        era: Era::Recent,
        chain_id: 1,
    });
    let pairs: Vec<_> = chain
        .blocks
        .iter()
        .map(|b| (b.block_json.clone(), b.receipts_json.clone()))
        .collect();
    let end = GEN_START + GEN_BLOCKS - 1;
    let body = chain
        .batch_response(GEN_START, end, true)
        .expect("generated range");
    v.push(Input {
        name: format!("generated-recent-x{GEN_BLOCKS}"),
        start: GEN_START,
        end,
        pairs,
        body,
    });
    v
}

fn raw(input: &Input) -> RawBatch {
    RawBatch {
        job: RangeJob {
            seq: 0,
            start: input.start,
            end: input.end,
            attempt: 0,
        },
        endpoint: 0,
        with_receipts: true,
        body: input.body.clone(),
        depth: None,
    }
}

fn opts(entities: &[Entity], format: RowFormat) -> DecodeOptions {
    DecodeOptions {
        entities: EntitySet::of(entities),
        format,
    }
}

/// Parse only: sonic-rs into the borrowed structs (the per-core ceiling).
fn parse(c: &mut Criterion, inputs: &[Input]) {
    let mut g = c.benchmark_group("parse");
    for input in inputs {
        g.throughput(Throughput::Bytes(input.body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(&input.name), input, |b, i| {
            b.iter(|| parse_only(black_box(&i.body)).expect("parses"))
        });
    }
    g.finish();
}

/// The nesting-depth guard alone (one pass over the bytes, run before every parse of node
/// answers): its cost next to `parse`.
fn depth_guard(c: &mut Criterion, inputs: &[Input]) {
    let mut g = c.benchmark_group("depth_guard");
    for input in inputs {
        g.throughput(Throughput::Bytes(input.body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(&input.name), input, |b, i| {
            b.iter(|| {
                ethetl::json_depth::check(black_box(&i.body), ethetl::json_depth::MAX_DEPTH)
                    .expect("shallow")
            })
        });
    }
    g.finish();
}

/// Parse + id matching + receipt join and validation, no rows written.
fn join(c: &mut Criterion, inputs: &[Input]) {
    let mut g = c.benchmark_group("receipt_join");
    let o = opts(&[], RowFormat::Json);
    for input in inputs {
        let r = raw(input);
        g.throughput(Throughput::Bytes(input.body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(&input.name), &r, |b, r| {
            b.iter(|| decode_batch(black_box(r), &o).expect("decodes"))
        });
    }
    g.finish();
}

/// Token-transfer decoding over every log of already parsed receipts (throughput: the
/// receipts JSON).
fn transfers(c: &mut Criterion, inputs: &[Input]) {
    let mut g = c.benchmark_group("transfer_decode");
    for input in inputs {
        let docs: Vec<ReceiptsDoc> = input
            .pairs
            .iter()
            .map(|(_, r)| sonic_rs::from_slice(r).expect("receipts parse"))
            .collect();
        let bytes: usize = input.pairs.iter().map(|(_, r)| r.len()).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(&input.name),
            &docs,
            |b, docs| {
                b.iter(|| {
                    let mut n = 0usize;
                    for doc in docs {
                        for r in &doc.0 {
                            for l in r.logs() {
                                let data = l.data.as_ref().map(|d| d.as_str());
                                if let token_transfer::Decoded::One(t) =
                                    token_transfer::decode(black_box(&l.topics), data)
                                {
                                    n += t.value.len();
                                }
                            }
                        }
                    }
                    n
                })
            },
        );
    }
    g.finish();
}

/// Rows of every entity written from already parsed structs (throughput: block + receipts
/// JSON), in both formats.
fn serialize(c: &mut Criterion, inputs: &[Input]) {
    let mut g = c.benchmark_group("serialize");
    for input in inputs {
        let parsed: Vec<(Block, ReceiptsDoc)> = input
            .pairs
            .iter()
            .map(|(b, r)| {
                (
                    sonic_rs::from_slice(b).expect("block parses"),
                    sonic_rs::from_slice(r).expect("receipts parse"),
                )
            })
            .collect();
        let bytes: usize = input.pairs.iter().map(|(b, r)| b.len() + r.len()).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        for format in [RowFormat::Json, RowFormat::Csv] {
            let id = BenchmarkId::new(format!("{format:?}").to_lowercase(), &input.name);
            g.bench_with_input(id, &parsed, |b, parsed| {
                let mut bufs: [RowBuf; Entity::COUNT] = Default::default();
                let mut scratch = Vec::with_capacity(1024);
                b.iter(|| {
                    for buf in &mut bufs {
                        buf.data.clear();
                        buf.rows.clear();
                    }
                    write_rows(format, parsed, &mut bufs, &mut scratch);
                    bufs.iter().map(|b| b.data.len()).sum::<usize>()
                })
            });
        }
    }
    g.finish();
}

fn write_rows(
    format: RowFormat,
    parsed: &[(Block, ReceiptsDoc)],
    bufs: &mut [RowBuf; Entity::COUNT],
    scratch: &mut Vec<u8>,
) {
    let qty = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
    for (b, receipts) in parsed {
        let n = qty(b.number.as_str());
        let ts = qty(b.timestamp.as_str());
        let bh = b.hash.as_str();
        block::write(format, &mut bufs[0], scratch, b, n, ts).expect("block row");
        for (tx, r) in b.transactions.iter().zip(&receipts.0) {
            transaction::write(format, &mut bufs[1], scratch, tx, Some(r), n, bh, ts)
                .expect("transaction row");
        }
        let ctx = BlockCtx {
            number: V::U64(n),
            hash: V::Str(bh),
            timestamp: Some(ts),
            row_block: n,
        };
        for r in &receipts.0 {
            receipt::write(format, &mut bufs[4], scratch, r, &ctx).expect("receipt row");
            let tx_hash = r.transaction_hash.as_str();
            for l in r.logs() {
                let li = qty(l.log_index.as_str());
                log::write(format, &mut bufs[2], scratch, l, li, tx_hash, &ctx).expect("log row");
                let data = l.data.as_ref().map(|d| d.as_str());
                let mut transfer = |t: &token_transfer::Transfer| {
                    token_transfer::write(format, &mut bufs[3], scratch, l, t, li, tx_hash, &ctx)
                        .expect("transfer row")
                };
                match token_transfer::decode(&l.topics, data) {
                    token_transfer::Decoded::One(t) => transfer(&t),
                    token_transfer::Decoded::Batch(b) => b.iter().for_each(|t| transfer(&t)),
                    _ => {}
                }
            }
        }
    }
}

/// The whole decode stage as the pipeline runs it: every entity, both formats.
fn full(c: &mut Criterion, inputs: &[Input]) {
    let mut g = c.benchmark_group("decode_batch");
    for input in inputs {
        let r = raw(input);
        g.throughput(Throughput::Bytes(input.body.len() as u64));
        for format in [RowFormat::Json, RowFormat::Csv] {
            let o = opts(&Entity::ALL, format);
            let id = BenchmarkId::new(format!("{format:?}").to_lowercase(), &input.name);
            g.bench_with_input(id, &r, |b, r| {
                b.iter(|| decode_batch(black_box(r), &o).expect("decodes"))
            });
        }
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let inputs = inputs();
    depth_guard(c, &inputs);
    parse(c, &inputs);
    join(c, &inputs);
    transfers(c, &inputs);
    serialize(c, &inputs);
    full(c, &inputs);
}

criterion_group! {
    name = decode;
    config = criterion::Criterion::default()
        .with_measurement(ThreadCpu)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(decode);
