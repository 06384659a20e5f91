//! KafkaSink against a real Kafka-protocol broker (tansu from `scripts/kafka-up.sh`, or the
//! cluster in `KAFKA_BROKERS`) and against librdkafka's mock cluster for faults a real broker
//! cannot stage: what is written comes back with the right keys, values, headers and
//! per-partition order, and a batch is reported durable exactly when all its rows are acked.
//!
//! When `KAFKA_BROKERS` is unset the tests run `scripts/kafka-up.sh` themselves (it reuses a
//! running broker), so `cargo test --test kafka` works on its own. The stall test runs a tansu
//! of its own whatever `KAFKA_BROKERS` says, so that freezing it disturbs no other test.

mod common;

use common::kafka::{brokers, consume_all, unique_prefix, Got, OwnBroker};
use ethetl::msg::{BlockMeta, DecodedBatch, Entity, EntitySet, RowBuf, RowFormat};
use ethetl::sink::kafka::{topic_name, KafkaOptions, KafkaSink, KafkaSinkError};
use ethetl::sink::{Sink, SinkError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

const ALL: [Entity; 5] = Entity::ALL;

fn hash_of(block: u64) -> String {
    format!(
        "0x{:064x}",
        block.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xabc
    )
}

/// How many rows of `entity` the generated block `n` has (varies by block, sometimes zero).
fn rows_in(entity: Entity, n: u64) -> u64 {
    match entity {
        Entity::Blocks => 1,
        Entity::Transactions => n % 4,
        Entity::Logs => (n * 7) % 5,
        Entity::TokenTransfers => n % 3,
        Entity::Receipts => n % 4,
        Entity::Reorgs => 0,
    }
}

/// The stream item of row `i` of `entity` in block `n`: what the sink must send, byte for byte,
/// without the trailing newline.
fn item(entity: Entity, n: u64, i: u64) -> String {
    format!(
        r#"{{"type":"{}","block_number":{n},"index":{i},"block_hash":"{}","item_id":"{}_{n}_{i}"}}"#,
        entity.item_type(),
        hash_of(n),
        entity.item_type()
    )
}

/// A hand-built batch of blocks `start..=end` with rows for `entities`.
fn batch(seq: u64, start: u64, end: u64, entities: &[Entity]) -> DecodedBatch {
    let mut rows: [RowBuf; Entity::COUNT] = Default::default();
    for &e in entities {
        let buf = &mut rows[e as usize];
        for n in start..=end {
            for i in 0..rows_in(e, n) {
                buf.data.extend_from_slice(item(e, n, i).as_bytes());
                buf.data.push(b'\n');
                buf.finish_row(n);
            }
        }
    }
    DecodedBatch {
        seq,
        start,
        end,
        format: RowFormat::Json,
        blocks: (start..=end)
            .map(|n| BlockMeta {
                number: n,
                hash: hash_of(n),
                parent_hash: hash_of(n.wrapping_sub(1)),
                timestamp: 1_700_000_000 + n,
                transaction_count: rows_in(Entity::Transactions, n) as u32,
            })
            .collect(),
        rows,
        counts: Default::default(),
    }
}

fn options(brokers: &str, prefix: &str, partitions: i32, entities: &[Entity]) -> KafkaOptions {
    KafkaOptions {
        brokers: brokers.to_string(),
        topic_prefix: prefix.to_string(),
        partitions,
        overrides: Vec::new(),
        entities: EntitySet::of(entities),
    }
}

/// Polls until `want` seqs have been reported (or an error, or `timeout`).
fn poll_until(
    sink: &mut KafkaSink,
    durable: &mut Vec<u64>,
    want: usize,
    timeout: Duration,
) -> Result<(), SinkError> {
    let deadline = Instant::now() + timeout;
    while durable.len() < want && Instant::now() < deadline {
        sink.poll(Duration::from_millis(50), durable)?;
    }
    Ok(())
}

/// Checks one topic read back against the generated rows of blocks `start..=end`.
fn check_topic(got: &[Got], entity: Entity, start: u64, end: u64) {
    // Same multiset of (key, value, headers) as generated.
    let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
    for n in start..=end {
        for i in 0..rows_in(entity, n) {
            *want.entry((n.to_string(), item(entity, n, i))).or_default() += 1;
        }
    }
    let mut have: BTreeMap<(String, String), usize> = BTreeMap::new();
    for m in got {
        let key = m.key.clone().expect("every message has a key");
        let value = String::from_utf8(m.value.clone()).expect("utf-8 value");
        assert!(!value.ends_with('\n'), "value keeps its newline: {value:?}");
        assert_eq!(m.header("entity"), Some(entity.name()), "entity header");
        let block: u64 = key.parse().expect("key is a decimal block number");
        assert_eq!(m.header("block_hash"), Some(hash_of(block).as_str()));
        *have.entry((key, value)).or_default() += 1;
    }
    assert_eq!(have, want, "{} topic content", entity.name());

    // Every key on one partition; per partition, offsets increase with (block, row index).
    let mut part_of: HashMap<&str, i32> = HashMap::new();
    let mut by_part: BTreeMap<i32, Vec<&Got>> = BTreeMap::new();
    for m in got {
        let k = m.key.as_deref().unwrap_or_default();
        let p = *part_of.entry(k).or_insert(m.partition);
        assert_eq!(p, m.partition, "key {k} spread over partitions");
        by_part.entry(m.partition).or_default().push(m);
    }
    for (p, mut ms) in by_part {
        ms.sort_by_key(|m| m.offset);
        let order: Vec<(u64, u64)> = ms
            .iter()
            .map(|m| {
                let v: serde_json_lite::Item = serde_json_lite::parse(&m.value);
                (v.block, v.index)
            })
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(
            order,
            sorted,
            "partition {p} of {} out of block order",
            entity.name()
        );
    }
}

/// The two numbers the generated items carry, read without a JSON dependency.
mod serde_json_lite {
    pub struct Item {
        pub block: u64,
        pub index: u64,
    }
    fn num(s: &str, field: &str) -> u64 {
        let at = s.find(field).expect("field") + field.len();
        s[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .expect("number")
    }
    pub fn parse(v: &[u8]) -> Item {
        let s = std::str::from_utf8(v).expect("utf-8");
        Item {
            block: num(s, "\"block_number\":"),
            index: num(s, "\"index\":"),
        }
    }
}

#[test]
fn rows_come_back_with_keys_headers_and_block_order() {
    let brokers = brokers();
    let prefix = unique_prefix("roundtrip");
    let mut sink = KafkaSink::open(options(&brokers, &prefix, 3, &ALL)).expect("open");
    assert_eq!(sink.topics().len(), 5);
    for t in sink.topics() {
        assert_eq!(t.name, format!("{prefix}.{}", t.entity.name()));
        assert!(t.created, "{} should have been created", t.name);
        assert_eq!(t.partitions, 3, "{}", t.name);
    }

    let (first, batches, per) = (1_000u64, 30u64, 7u64);
    let mut durable = Vec::new();
    for seq in 0..batches {
        let start = first + seq * per;
        sink.write(batch(seq, start, start + per - 1, &ALL))
            .expect("write");
        sink.poll(Duration::ZERO, &mut durable).expect("poll");
    }
    sink.finish(&mut durable).expect("finish");
    let reported: BTreeSet<u64> = durable.iter().copied().collect();
    assert_eq!(
        durable.len(),
        reported.len(),
        "a seq reported twice: {durable:?}"
    );
    assert_eq!(reported, (0..batches).collect::<BTreeSet<u64>>());

    let last = first + batches * per - 1;
    for e in ALL {
        let got = consume_all(&brokers, &topic_name(&prefix, e), Duration::from_secs(60));
        check_topic(&got, e, first, last);
    }
}

#[test]
fn existing_topics_keep_their_layout() {
    let brokers = brokers();
    let prefix = unique_prefix("existing");
    let pre = topic_name(&prefix, Entity::Blocks);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin");
    let res = futures_executor::block_on(admin.create_topics(
        &[NewTopic::new(&pre, 2, TopicReplication::Fixed(-1))],
        &AdminOptions::new(),
    ))
    .expect("create");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");

    let entities = [Entity::Blocks, Entity::Logs];
    let mut sink = KafkaSink::open(options(&brokers, &prefix, 4, &entities)).expect("open");
    let info: HashMap<Entity, (usize, bool)> = sink
        .topics()
        .iter()
        .map(|t| (t.entity, (t.partitions, t.created)))
        .collect();
    assert_eq!(info[&Entity::Blocks], (2, false));
    assert_eq!(info[&Entity::Logs], (4, true));

    let mut durable = Vec::new();
    sink.write(batch(0, 50, 59, &entities)).expect("write");
    sink.finish(&mut durable).expect("finish");
    assert_eq!(durable, vec![0]);
    let got = consume_all(&brokers, &pre, Duration::from_secs(60));
    check_topic(&got, Entity::Blocks, 50, 59);
    assert!(got.iter().all(|m| m.partition < 2));
}

#[test]
fn a_full_queue_is_waited_out_not_dropped() {
    let brokers = brokers();
    let prefix = unique_prefix("queuefull");
    let mut opts = options(&brokers, &prefix, 2, &[Entity::Blocks, Entity::Logs]);
    // A tiny local queue forces QueueFull on almost every send.
    opts.overrides = vec![
        ("queue.buffering.max.messages".into(), "5".into()),
        ("linger.ms".into(), "5".into()),
    ];
    let mut sink = KafkaSink::open(opts).expect("open");
    let mut durable = Vec::new();
    for seq in 0..4u64 {
        let start = 10_000 + seq * 100;
        sink.write(batch(
            seq,
            start,
            start + 99,
            &[Entity::Blocks, Entity::Logs],
        ))
        .expect("write");
    }
    sink.finish(&mut durable).expect("finish");
    durable.sort();
    assert_eq!(durable, vec![0, 1, 2, 3]);
    for e in [Entity::Blocks, Entity::Logs] {
        let got = consume_all(&brokers, &topic_name(&prefix, e), Duration::from_secs(60));
        check_topic(&got, e, 10_000, 10_399);
    }
}

#[test]
fn empty_batches_are_durable_at_once() {
    let brokers = brokers();
    let prefix = unique_prefix("empty");
    let mut sink =
        KafkaSink::open(options(&brokers, &prefix, 1, &[Entity::TokenTransfers])).expect("open");
    // Blocks 3 and 6 have no token transfers (n % 3 == 0): a batch of just block 3 is empty.
    let b = batch(0, 3, 3, &[Entity::TokenTransfers]);
    assert!(b.rows(Entity::TokenTransfers).is_empty());
    sink.write(b).expect("write");
    let mut durable = Vec::new();
    sink.poll(Duration::ZERO, &mut durable).expect("poll");
    assert_eq!(durable, vec![0]);
    sink.finish(&mut durable).expect("finish");
    assert_eq!(durable, vec![0]);
}

#[test]
fn unknown_setting_is_named_and_its_value_hidden() {
    let mut opts = options("127.0.0.1:1", "x", 1, &[Entity::Blocks]);
    opts.overrides = vec![("sasl.pasword".into(), "hunter2".into())];
    let err = KafkaSink::open(opts).expect_err("must fail");
    assert!(
        matches!(err.downcast_ref(), Some(KafkaSinkError::Config { key, .. }) if key == "sasl.pasword")
    );
    let chain = error_chain(&err);
    assert!(chain.contains("sasl.pasword"), "{chain}");
    assert!(!chain.contains("hunter2"), "{chain}");

    let mut opts = options("127.0.0.1:1", "x", 1, &[Entity::Blocks]);
    opts.overrides = vec![("acks".into(), "several".into())];
    let err = KafkaSink::open(opts).expect_err("must fail");
    assert!(
        matches!(err.downcast_ref(), Some(KafkaSinkError::Config { key, .. }) if key == "acks")
    );
}

#[test]
fn unreachable_brokers_fail_at_open() {
    // Nothing listens on a port we bound and closed again.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    let err = KafkaSink::open(options(&addr, "x", 1, &[Entity::Blocks])).expect_err("must fail");
    match err.downcast_ref() {
        Some(KafkaSinkError::Connect { brokers, .. }) => assert_eq!(brokers, &addr),
        _ => panic!("wrong error: {}", error_chain(&err)),
    }
}

#[test]
fn rows_of_an_entity_without_topic_are_refused() {
    let brokers = brokers();
    let prefix = unique_prefix("refuse");
    let mut sink = KafkaSink::open(options(&brokers, &prefix, 1, &[Entity::Blocks])).expect("open");
    let err = sink
        .write(batch(0, 1, 4, &[Entity::Blocks, Entity::Transactions]))
        .expect_err("transactions have no topic");
    assert!(
        error_chain(&err).contains("transactions"),
        "{}",
        error_chain(&err)
    );
    let mut csv = batch(1, 1, 1, &[Entity::Blocks]);
    csv.format = RowFormat::Csv;
    assert!(sink.write(csv).is_err());
}

/// The broker freezes (SIGSTOP) for 20 s while batches keep coming: nothing becomes durable
/// while it is stopped, writes keep being accepted (the local queue absorbs them), and after
/// SIGCONT every row arrives exactly once. Short request timeouts make librdkafka time out and
/// resend the requests that were in flight at the stop, so only idempotence keeps duplicates
/// out (the same run with `enable.idempotence=false` measured 200 duplicate messages).
#[test]
fn broker_stall_loses_nothing_and_duplicates_nothing() {
    let Some(broker) = OwnBroker::start() else {
        return; // OwnBroker::start said why
    };
    let prefix = unique_prefix("stall");
    let entities = [Entity::Blocks, Entity::Logs];
    let mut opts = options(&broker.addr, &prefix, 2, &entities);
    opts.overrides = vec![
        ("request.timeout.ms".into(), "3000".into()),
        ("socket.timeout.ms".into(), "5000".into()),
    ];
    let mut sink = KafkaSink::open(opts).expect("open");
    let stall = Duration::from_secs(20);
    let per = 5u64;
    let mut seq = 0u64;
    let mut durable = Vec::new();
    let mut write_one = |sink: &mut KafkaSink, durable: &mut Vec<u64>| {
        sink.write(batch(seq, seq * per, seq * per + per - 1, &entities))
            .expect("write");
        sink.poll(Duration::from_millis(100), durable)
            .expect("poll");
        seq += 1;
    };
    let t0 = Instant::now();
    for _ in 0..20 {
        write_one(&mut sink, &mut durable);
    }
    broker.signal("STOP");
    let stopped = Instant::now();
    let mut frozen = None;
    while stopped.elapsed() < stall {
        write_one(&mut sink, &mut durable);
        if stopped.elapsed() >= Duration::from_secs(3) {
            // Whatever was acknowledged before the stop has been served by now.
            let n = *frozen.get_or_insert(durable.len());
            assert_eq!(
                durable.len(),
                n,
                "a batch became durable while the broker was stopped"
            );
        }
    }
    broker.signal("CONT");
    for _ in 0..20 {
        write_one(&mut sink, &mut durable);
    }
    let batches = seq;
    sink.finish(&mut durable).expect("finish after the stall");
    eprintln!(
        "stall test: {batches} batches, {:?} stall, run took {:?}",
        stall,
        t0.elapsed()
    );
    durable.sort();
    assert_eq!(durable, (0..batches).collect::<Vec<_>>());
    for e in entities {
        let got = consume_all(
            &broker.addr,
            &topic_name(&prefix, e),
            Duration::from_secs(60),
        );
        check_topic(&got, e, 0, batches * per - 1);
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

// ---- librdkafka mock cluster: faults a real broker cannot stage on demand ----

/// A one-broker mock cluster with the topics of `entities` under `prefix` already there (the
/// mock does not serve CreateTopics, so these tests use the "existing topic" path).
fn mock(
    prefix: &str,
    entities: &[Entity],
    partitions: i32,
) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for &e in entities {
        cluster
            .create_topic(&topic_name(prefix, e), partitions, 1)
            .expect("mock topic");
    }
    cluster
}

#[test]
fn mock_empty_prefix_gives_bare_topic_names() {
    let cluster = mock("", &ALL, 2);
    let sink = KafkaSink::open(options(&cluster.bootstrap_servers(), "", 2, &ALL)).expect("open");
    let names: Vec<&str> = sink.topics().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "blocks",
            "transactions",
            "logs",
            "token_transfers",
            "receipts"
        ]
    );
}

#[test]
fn mock_outage_delays_durability_then_recovers() {
    let prefix = unique_prefix("outage");
    let entities = [Entity::Blocks, Entity::Transactions];
    let cluster = mock(&prefix, &entities, 2);
    let brokers = cluster.bootstrap_servers();
    let mut sink = KafkaSink::open(options(&brokers, &prefix, 2, &entities)).expect("open");
    let mut durable = Vec::new();
    sink.write(batch(0, 100, 109, &entities)).expect("write");
    sink.finish(&mut durable).expect("finish");
    assert_eq!(durable, vec![0]);

    cluster.broker_down(-1).expect("down");
    sink.write(batch(1, 110, 119, &entities))
        .expect("write while down");
    sink.write(batch(2, 120, 129, &entities))
        .expect("write while down");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        sink.poll(Duration::from_millis(50), &mut durable)
            .expect("no failure while messages are retried");
    }
    assert_eq!(
        durable,
        vec![0],
        "nothing may be durable while the broker is down"
    );

    cluster.broker_up(-1).expect("up");
    poll_until(&mut sink, &mut durable, 3, Duration::from_secs(30)).expect("recovers");
    sink.finish(&mut durable).expect("finish");
    durable.sort();
    assert_eq!(durable, vec![0, 1, 2]);
    for e in entities {
        let got = consume_all(&brokers, &topic_name(&prefix, e), Duration::from_secs(30));
        check_topic(&got, e, 100, 129);
    }
}

#[test]
fn mock_retriable_produce_errors_cause_no_duplicates() {
    let prefix = unique_prefix("retriable");
    let entities = [Entity::Blocks, Entity::Logs];
    let cluster = mock(&prefix, &entities, 1);
    let brokers = cluster.bootstrap_servers();
    let mut sink = KafkaSink::open(options(&brokers, &prefix, 1, &entities)).expect("open");
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ],
    );
    let mut durable = Vec::new();
    for seq in 0..3u64 {
        let start = 500 + seq * 20;
        sink.write(batch(seq, start, start + 19, &entities))
            .expect("write");
    }
    sink.finish(&mut durable).expect("finish");
    durable.sort();
    assert_eq!(durable, vec![0, 1, 2]);
    for e in entities {
        let got = consume_all(&brokers, &topic_name(&prefix, e), Duration::from_secs(30));
        check_topic(&got, e, 500, 559);
    }
}

#[test]
fn mock_permanent_delivery_failure_stops_and_is_never_durable() {
    let prefix = unique_prefix("permanent");
    let cluster = mock(&prefix, &[Entity::Blocks], 1);
    let brokers = cluster.bootstrap_servers();
    let mut sink = KafkaSink::open(options(&brokers, &prefix, 1, &[Entity::Blocks])).expect("open");
    let mut durable = Vec::new();
    sink.write(batch(0, 1, 5, &[Entity::Blocks]))
        .expect("write");
    poll_until(&mut sink, &mut durable, 1, Duration::from_secs(30)).expect("first batch");
    assert_eq!(durable, vec![0]);

    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
    );
    sink.write(batch(1, 6, 10, &[Entity::Blocks]))
        .expect("enqueue");
    let err = poll_until(&mut sink, &mut durable, 2, Duration::from_secs(30))
        .expect_err("the failure must surface from poll");
    assert_eq!(durable, vec![0], "the failed batch must not be durable");
    match err.downcast_ref() {
        Some(KafkaSinkError::Delivery {
            topic,
            partition,
            block,
            ..
        }) => {
            assert_eq!(topic, &topic_name(&prefix, Entity::Blocks));
            assert_eq!(*partition, 0);
            let b: u64 = block.parse().expect("block number");
            assert!((6..=10).contains(&b), "block {b}");
        }
        _ => panic!("wrong error: {}", error_chain(&err)),
    }
    // Later calls keep failing; finish too.
    assert!(sink.write(batch(2, 11, 12, &[Entity::Blocks])).is_err());
    assert!(sink.finish(&mut durable).is_err());
    assert_eq!(durable, vec![0]);
}

#[test]
fn mock_delivery_times_out_while_broker_stays_down() {
    let prefix = unique_prefix("timeout");
    let cluster = mock(&prefix, &[Entity::Blocks], 1);
    let brokers = cluster.bootstrap_servers();
    let mut opts = options(&brokers, &prefix, 1, &[Entity::Blocks]);
    opts.overrides = vec![("message.timeout.ms".into(), "2000".into())];
    let mut sink = KafkaSink::open(opts).expect("open");
    cluster.broker_down(-1).expect("down");
    sink.write(batch(0, 1, 3, &[Entity::Blocks]))
        .expect("enqueue");
    let mut durable = Vec::new();
    let err = sink.finish(&mut durable).expect_err("must fail");
    assert!(durable.is_empty());
    let chain = error_chain(&err);
    assert!(
        matches!(err.downcast_ref(), Some(KafkaSinkError::Delivery { .. })),
        "wrong error: {chain}"
    );
    assert!(chain.to_lowercase().contains("timed out"), "{chain}");
}

/// Idempotence errors from the broker: an out-of-order sequence cannot be repaired and stops
/// the run (the batch stays not durable); an unknown producer id is recovered by librdkafka.
#[test]
fn mock_idempotence_errors_stop_or_recover() {
    for (err, recovers) in [
        (
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
            false,
        ),
        (RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID, true),
    ] {
        let prefix = unique_prefix("idempotence");
        let cluster = mock(&prefix, &[Entity::Blocks], 1);
        let brokers = cluster.bootstrap_servers();
        let mut sink =
            KafkaSink::open(options(&brokers, &prefix, 1, &[Entity::Blocks])).expect("open");
        let mut durable = Vec::new();
        sink.write(batch(0, 1, 5, &[Entity::Blocks]))
            .expect("write");
        poll_until(&mut sink, &mut durable, 1, Duration::from_secs(30)).expect("first batch");
        cluster.request_errors(RDKafkaApiKey::Produce, &[err; 5]);
        sink.write(batch(1, 6, 10, &[Entity::Blocks]))
            .expect("enqueue");
        let polled = poll_until(&mut sink, &mut durable, 2, Duration::from_secs(30));
        let finished = sink.finish(&mut durable);
        if recovers {
            polled.expect("recovered");
            finished.expect("finish");
            assert_eq!(durable, vec![0, 1], "{err:?}");
            let got = consume_all(
                &brokers,
                &topic_name(&prefix, Entity::Blocks),
                Duration::from_secs(30),
            );
            check_topic(&got, Entity::Blocks, 1, 10);
        } else {
            let e = polled.expect_err("must fail");
            assert!(
                matches!(e.downcast_ref(), Some(KafkaSinkError::Delivery { .. })),
                "{}",
                error_chain(&e)
            );
            assert!(finished.is_err());
            assert_eq!(durable, vec![0], "{err:?}");
        }
    }
}
