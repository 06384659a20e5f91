//! The Kafka part of the test scaffolding: find (or start) the test broker, make unique topic
//! prefixes, and read topics back to the end with a group-less `BaseConsumer`.

use super::signal;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The broker address the tests use: `KAFKA_BROKERS` if set (any cluster), otherwise the local
/// tansu broker started (or reused) by `scripts/kafka-up.sh`.
pub fn brokers() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(b) = std::env::var("KAFKA_BROKERS") {
                if !b.trim().is_empty() {
                    return b.trim().to_string();
                }
            }
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka-up.sh");
            let out = Command::new("bash")
                .arg(script)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
            assert!(
                out.status.success(),
                "{script} failed (set KAFKA_BROKERS to use another broker):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .clone()
}

/// A topic prefix no other test run uses.
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("ethetl-test-{name}-{}-{nanos}", std::process::id())
}

/// One message read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Reads every partition of `topic` from the beginning until each reports end-of-partition (no
/// consumer group; tansu's "latest" offsets are not trusted). Gives up after `timeout`.
pub fn consume_all(brokers: &str, topic: &str, timeout: Duration) -> Vec<Got> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "ethetl-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    assert!(!parts.is_empty(), "topic {topic} has no partitions");
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut at_eof = std::collections::HashSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while at_eof.len() < parts.len() {
        assert!(
            Instant::now() < deadline,
            "reading {topic}: only {} of {} partitions reached their end within {timeout:?} ({} messages read)",
            at_eof.len(),
            parts.len(),
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                at_eof.remove(&m.partition());
                out.push(Got {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_eof.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
        }
    }
    out
}

/// A tansu broker of the test's own (so that stopping it disturbs no other test), on a free
/// loopback port with in-memory storage. Killed when dropped.
pub struct OwnBroker {
    pub addr: String,
    child: std::process::Child,
}

impl OwnBroker {
    /// Starts one. Returns `None` (the caller skips) only when no tansu binary can be had
    /// while `KAFKA_BROKERS` names another cluster and `CI` is unset; otherwise a missing
    /// binary fails the test.
    pub fn start() -> Option<OwnBroker> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka-up.sh");
        let out = Command::new("bash")
            .args([script, "--binary"])
            .output()
            .expect("run kafka-up.sh --binary");
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            let other_cluster = std::env::var("KAFKA_BROKERS").is_ok_and(|b| !b.trim().is_empty());
            if other_cluster && std::env::var_os("CI").is_none() {
                eprintln!("skipping: no tansu binary for a broker of the test's own: {why}");
                return None;
            }
            panic!("kafka-up.sh --binary failed:\n{why}");
        }
        let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let broker = OwnBroker { addr, child };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&broker.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not answer on {}",
                broker.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(broker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. "STOP", "CONT") to the broker process.
    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        signal(self.child.id(), "CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
