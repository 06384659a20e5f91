//! The `ethetl` binary exporting to a real Kafka-protocol broker: the shared real blocks arrive
//! in Kafka exactly as the JSONL output has them; `kill -9` at several points and resuming from
//! the checkpoint leaves no gap (duplicates only from what was in flight); a broker frozen for
//! 20 s costs nothing; bad Kafka input fails at once with one line and exit 2.
//!
//! The broker is `KAFKA_BROKERS` or the local tansu of `scripts/kafka-up.sh` (started if needed);
//! the tests that freeze a broker start a tansu of their own (so no other test is disturbed).

mod common;

use common::kafka::{brokers, consume_all, unique_prefix, Got, OwnBroker};
use common::{ethetl_command, jsonl_rows, shared_fixtures, start_node, stderr_of, Process};
use ethetl::msg::Entity;
use ethetl::sink::kafka::topic_name;
use ethetl_devnode::{DevNode, FaultKind, FaultSpec, GenConfig, NodeConfig};
use sonic_rs::{JsonContainerTrait, JsonValueTrait};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ALL: [Entity; 5] = Entity::ALL;
const ENTITIES_ARG: &str = "blocks,transactions,logs,token_transfers,receipts";

/// `ethetl export ARGS` (no ETH_RPC_URL from the environment), stdout discarded.
fn export_command(args: &[&str]) -> Command {
    let mut cmd = ethetl_command(&[&["export"], args].concat());
    cmd.stdout(Stdio::null());
    cmd
}

/// Runs `ethetl export ARGS`, killing it (and failing) after `limit`.
fn run_export(args: &[&str], limit: Duration) -> Output {
    Process::start(export_command(args), "ethetl export").finish(limit)
}

/// (block number, block hash, item_id) of a stream item, read with a JSON parser.
fn item_facts(row: &str) -> (u64, String, String) {
    let v: sonic_rs::Value = sonic_rs::from_str(row).expect("stream item is JSON");
    let obj = v.as_object().expect("stream item is an object");
    let is_block = obj.get(&"type").and_then(|t| t.as_str()) == Some("block");
    let (num_key, hash_key) = if is_block {
        ("number", "hash")
    } else {
        ("block_number", "block_hash")
    };
    let block = obj
        .get(&num_key)
        .and_then(|n| n.as_u64())
        .expect("block number");
    let hash = obj
        .get(&hash_key)
        .and_then(|h| h.as_str())
        .expect("block hash")
        .to_string();
    let id = obj
        .get(&"item_id")
        .and_then(|h| h.as_str())
        .expect("item_id")
        .to_string();
    (block, hash, id)
}

/// Kafka content of one topic equals the JSONL rows: same items (as bytes), keys = block
/// number, headers entity + block_hash, and each partition holds its blocks in JSONL order.
fn compare_topic(got: &[Got], jsonl: &[String], entity: Entity) {
    let mut want: BTreeMap<&str, usize> = BTreeMap::new();
    for r in jsonl {
        *want.entry(r.as_str()).or_default() += 1;
    }
    let mut have: BTreeMap<&str, usize> = BTreeMap::new();
    for m in got {
        let v = std::str::from_utf8(&m.value).expect("utf-8 value");
        let (block, hash, _) = item_facts(v);
        assert_eq!(
            m.key.as_deref(),
            Some(block.to_string().as_str()),
            "key of {v}"
        );
        assert_eq!(m.header("entity"), Some(entity.name()));
        assert_eq!(m.header("block_hash"), Some(hash.as_str()));
        *have.entry(v).or_default() += 1;
    }
    assert_eq!(have, want, "{} topic vs JSONL", entity.name());

    // Position of each row in the JSONL order; per partition, offsets follow it.
    let pos: HashMap<&str, usize> = jsonl
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i))
        .collect();
    let mut by_part: BTreeMap<i32, Vec<&Got>> = BTreeMap::new();
    for m in got {
        by_part.entry(m.partition).or_default().push(m);
    }
    for (p, mut ms) in by_part {
        ms.sort_by_key(|m| m.offset);
        let order: Vec<usize> = ms
            .iter()
            .map(|m| pos[std::str::from_utf8(&m.value).expect("utf-8")])
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "partition {p} of {} is not in block order",
            entity.name()
        );
    }
}

#[test]
fn shared_real_blocks_reach_kafka_as_in_jsonl() {
    let Some(fx) = shared_fixtures() else { return };
    let node = start_node(NodeConfig::fixtures(fx.join("rpc/mainnet")));
    let url = node.url();
    let brokers = brokers();
    let prefix = unique_prefix("e2e-real");
    let out = tempfile::tempdir().expect("tempdir");
    let kafka_out = format!("kafka://{brokers}");
    // The mainnet blocks that have both the block and all its receipts.
    for (i, range) in ["19433902:19433904", "18000000", "15573637"]
        .iter()
        .enumerate()
    {
        let dir = out.path().join(format!("jsonl{i}"));
        let dir = dir.to_str().expect("utf-8 path");
        for output in [dir, kafka_out.as_str()] {
            let mut args = vec![
                "--rpc",
                &url,
                "--blocks",
                range,
                "--entities",
                ENTITIES_ARG,
                "--output",
                output,
                "-q",
            ];
            if output.starts_with("kafka://") {
                args.extend(["--topic-prefix", &prefix, "--partitions", "3"]);
            }
            let o = run_export(&args, Duration::from_secs(120));
            assert!(
                o.status.success(),
                "export {range} to {output}: {}",
                stderr_of(&o)
            );
        }
    }
    for e in ALL {
        let mut rows = Vec::new();
        for i in 0..3 {
            rows.extend(jsonl_rows(&out.path().join(format!("jsonl{i}")), e.name()));
        }
        assert!(
            e == Entity::TokenTransfers || !rows.is_empty(),
            "no {} rows",
            e.name()
        );
        let got = consume_all(&brokers, &topic_name(&prefix, e), Duration::from_secs(60));
        compare_topic(&got, &rows, e);
    }
}

/// A dev node serving a generated chain; with `delay`, every request answers that much late
/// (a `stall` fault on every request), which paces a run so that it can be stopped mid-way.
fn generated(blocks: u64, start: u64, delay: Option<Duration>) -> DevNode {
    let mut cfg = NodeConfig::generated(GenConfig {
        blocks,
        start_block: start,
        seed: 11,
        txs_per_block: Some(3),
        ..GenConfig::default()
    });
    if let Some(d) = delay {
        cfg.faults = FaultSpec::only(FaultKind::Stall, 1.0);
        cfg.stall = d;
    }
    start_node(cfg)
}

/// item_id → block of every item of the range, from a JSONL export of the same chain.
fn expected_items(url: &str, range: &str, dir: &Path) -> HashMap<String, u64> {
    let d = dir.to_str().expect("utf-8 path");
    let o = run_export(
        &[
            "--rpc",
            url,
            "--blocks",
            range,
            "--entities",
            ENTITIES_ARG,
            "--output",
            d,
            "-q",
        ],
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "jsonl export: {}", stderr_of(&o));
    let mut items = HashMap::new();
    for e in ALL {
        for r in jsonl_rows(dir, e.name()) {
            let (block, _, id) = item_facts(&r);
            assert!(items.insert(id, block).is_none(), "item_id twice in JSONL");
        }
    }
    items
}

/// Kafka messages per item_id over every topic under `prefix`.
fn kafka_items(brokers: &str, prefix: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for e in ALL {
        for m in consume_all(brokers, &topic_name(prefix, e), Duration::from_secs(120)) {
            let (_, _, id) = item_facts(std::str::from_utf8(&m.value).expect("utf-8"));
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
}

fn read_checkpoint(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().next()?.trim().parse().ok()
}

#[test]
fn kill_9_and_resume_leaves_no_gap() {
    let (start, blocks) = (5_000_000u64, 2_000u64);
    let range = format!("{start}:+{blocks}");
    let last = start + blocks - 1;
    let clean = generated(blocks, start, None);
    let tmp = tempfile::tempdir().expect("tempdir");
    let want = expected_items(&clean.url(), &range, &tmp.path().join("jsonl"));
    clean.shutdown();

    // Every request answers 20 ms late (one request at a time, 4 blocks each: about 10 s for
    // the range), so each run lasts long enough to be killed mid-way.
    let node = generated(blocks, start, Some(Duration::from_millis(20)));
    let url = node.url();
    let brokers = brokers();
    let prefix = unique_prefix("e2e-crash");
    let cp = tmp.path().join("checkpoint");
    let cp_s = cp.to_str().expect("utf-8 path").to_string();
    let kafka_out = format!("kafka://{brokers}");
    let args = [
        "--rpc",
        &url,
        "--blocks",
        &range,
        "--entities",
        ENTITIES_ARG,
        "--output",
        &kafka_out,
        "--topic-prefix",
        &prefix,
        "--partitions",
        "3",
        "--checkpoint",
        &cp_s,
        "--batch-size",
        "4",
        "--io-threads",
        "2",
        "-q",
    ];

    // Kill when the checkpoint has moved past each mark (or after a while without it).
    let marks = [start + 200, start + 600, start + 1_000, start + 1_400];
    let mut kills: Vec<Option<u64>> = Vec::new();
    for mark in marks {
        let mut child = Process::start(export_command(&args), "ethetl export");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut exited = None;
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait() {
                exited = Some(st);
                break;
            }
            if read_checkpoint(&cp).is_some_and(|c| c >= mark) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(st) = exited {
            let o = child.finish(Duration::from_secs(10));
            panic!("ethetl ended before the kill ({st}): {}", stderr_of(&o));
        }
        // Let some batches go in flight beyond the stored checkpoint, then SIGKILL.
        std::thread::sleep(Duration::from_millis(150));
        child.kill();
        assert!(child.try_wait().is_some(), "kill -9 and reap");
        kills.push(read_checkpoint(&cp));
    }
    assert!(
        kills.iter().all(|c| c.is_none_or(|c| c < last)),
        "a run finished before its kill: {kills:?}"
    );
    let o = run_export(&args, Duration::from_secs(180));
    assert!(o.status.success(), "final run: {}", stderr_of(&o));
    assert_eq!(read_checkpoint(&cp), Some(last));

    let have = kafka_items(&brokers, &prefix);
    let missing: Vec<&String> = want.keys().filter(|id| !have.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} items lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let stray: Vec<&String> = have.keys().filter(|id| !want.contains_key(*id)).collect();
    assert!(
        stray.is_empty(),
        "items outside the range: {:?}",
        stray.first()
    );

    // An item may repeat once per kill whose checkpoint lay before its block (it was in
    // flight then), never otherwise.
    let mut duplicates = 0usize;
    for (id, n) in &have {
        let block = want[id];
        let allowed = 1 + kills.iter().filter(|c| c.is_none_or(|c| block > c)).count();
        assert!(
            *n <= allowed,
            "{id} (block {block}) arrived {n} times, at most {allowed} allowed"
        );
        duplicates += n - 1;
    }
    eprintln!(
        "kill -9 test: {} items, {} kills at checkpoints {:?}, {} duplicate messages",
        want.len(),
        kills.len(),
        kills,
        duplicates
    );
}

#[test]
fn broker_stall_mid_run_completes_without_loss_or_duplicates() {
    let Some(broker) = OwnBroker::start() else {
        return; // OwnBroker::start said why
    };
    let (start, blocks) = (7_000_000u64, 600u64);
    let range = format!("{start}:+{blocks}");
    let clean = generated(blocks, start, None);
    let tmp = tempfile::tempdir().expect("tempdir");
    let want = expected_items(&clean.url(), &range, &tmp.path().join("jsonl"));
    clean.shutdown();

    let node = generated(blocks, start, Some(Duration::from_millis(15)));
    let url = node.url();
    let prefix = unique_prefix("e2e-stall");
    let cp = tmp.path().join("checkpoint");
    let cp_s = cp.to_str().expect("utf-8 path").to_string();
    let kafka_out = format!("kafka://{}", broker.addr);
    // Short request timeouts make librdkafka resend what was in flight at the stop: only
    // idempotence keeps those resends from becoming duplicates.
    let args = [
        "--rpc",
        &url,
        "--blocks",
        &range,
        "--entities",
        ENTITIES_ARG,
        "--output",
        &kafka_out,
        "--topic-prefix",
        &prefix,
        "--partitions",
        "2",
        "--checkpoint",
        &cp_s,
        "--batch-size",
        "4",
        "--io-threads",
        "2",
        "-X",
        "request.timeout.ms=3000",
        "-X",
        "socket.timeout.ms=5000",
        "-q",
    ];
    let t0 = Instant::now();
    let child = Process::start(export_command(&args), "ethetl export");
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_checkpoint(&cp).is_none_or(|c| c < start + 40) {
        assert!(Instant::now() < deadline, "no progress before the stall");
        std::thread::sleep(Duration::from_millis(10));
    }
    broker.signal("STOP");
    // The checkpoint is stored every second: 3 s into the stop it holds everything the broker
    // acknowledged before it, and from then on it must not move until the broker is back.
    std::thread::sleep(Duration::from_secs(3));
    let frozen = read_checkpoint(&cp);
    std::thread::sleep(Duration::from_secs(17));
    let before_cont = read_checkpoint(&cp);
    broker.signal("CONT");
    let o = child.finish(Duration::from_secs(180));
    assert!(o.status.success(), "run after the stall: {}", stderr_of(&o));
    assert_eq!(read_checkpoint(&cp), Some(start + blocks - 1));
    assert_eq!(
        before_cont, frozen,
        "the checkpoint moved while the broker was stopped"
    );
    assert!(
        frozen.is_some_and(|c| c < start + blocks - 1),
        "the run was over before the stall: {frozen:?}"
    );

    let have = kafka_items(&broker.addr, &prefix);
    assert_eq!(have.len(), want.len(), "distinct items");
    assert!(
        want.keys().all(|id| have.contains_key(id)),
        "an item was lost"
    );
    let dups: usize = have.values().map(|n| n - 1).sum();
    assert_eq!(dups, 0, "duplicate messages after the stall");
    eprintln!(
        "stall test: {} items, 20 s SIGSTOP, whole run {:?}, 0 duplicates",
        want.len(),
        t0.elapsed()
    );
}

/// One `error:` line on stderr, exit status 2, and the checkpoint file as it was.
fn assert_fails_cleanly(args: &[&str], cp: &Path, cp_before: Option<&str>, expect: &str) {
    let o = run_export(args, Duration::from_secs(60));
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "exit status; stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error:"), "{err}");
    assert!(
        lines[0].contains(expect),
        "{err:?} should mention {expect:?}"
    );
    assert_eq!(
        std::fs::read_to_string(cp).ok().as_deref(),
        cp_before,
        "checkpoint changed"
    );
}

#[test]
fn bad_kafka_input_fails_with_one_line_and_exit_2() {
    let node = generated(50, 100, None);
    let url = node.url();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cp = tmp.path().join("checkpoint");
    std::fs::write(&cp, "109\n").expect("write checkpoint");
    let cp_s = cp.to_str().expect("utf-8 path");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let nowhere = format!("kafka://127.0.0.1:{closed}");
    assert_fails_cleanly(
        &[
            "--rpc",
            &url,
            "--blocks",
            "100:+50",
            "--output",
            &nowhere,
            "--checkpoint",
            cp_s,
            "-q",
        ],
        &cp,
        Some("109\n"),
        &format!("127.0.0.1:{closed}"),
    );

    let kafka_out = format!("kafka://{}", brokers());
    let prefix = unique_prefix("e2e-bad");
    assert_fails_cleanly(
        &[
            "--rpc",
            &url,
            "--blocks",
            "100:+50",
            "--output",
            &kafka_out,
            "--topic-prefix",
            &prefix,
            "-X",
            "no.such.property=1",
            "--checkpoint",
            cp_s,
            "-q",
        ],
        &cp,
        Some("109\n"),
        "no.such.property",
    );

    // A checkpoint path whose parent is a file cannot be written, even by root.
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, "x").expect("write");
    let bad_cp = blocker.join("checkpoint");
    assert_fails_cleanly(
        &[
            "--rpc",
            &url,
            "--blocks",
            "100:+50",
            "--output",
            &kafka_out,
            "--topic-prefix",
            &prefix,
            "--checkpoint",
            bad_cp.to_str().expect("utf-8"),
            "-q",
        ],
        &bad_cp,
        None,
        "checkpoint",
    );
}
