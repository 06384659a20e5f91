//! Where decoded rows go. A [`Sink`] lives on the one sink thread; it is handed every
//! [`DecodedBatch`] in `seq` order and reports which `seq`s are durable (files fsynced and
//! renamed, Kafka deliveries acknowledged), which is what moves the checkpoint.

pub mod file;
pub mod kafka;
pub mod null;
pub mod stdout;

use crate::pipeline::msg::DecodedBatch;
use std::time::Duration;

/// A destination for decoded batches. Implement it to plug a callback into the pipeline.
///
/// Contract: `write` is called with batches in strictly increasing, contiguous `seq` order.
/// `poll` and `finish` append to `durable` the `seq`s whose rows are now safely stored
/// (each `seq` exactly once, in any order). After `finish` returns `Ok`, every written `seq`
/// has been reported. `ethetl stream` ([`crate::stream`]) calls `finish` at the end of every
/// round and then goes on writing (with the next `seq`s), so a sink used there must accept
/// writes after `finish`.
pub trait Sink: Send {
    /// Accepts one batch. May block for backpressure; must not drop rows.
    fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError>;

    /// Gives the sink a chance to make progress (e.g. serve delivery callbacks), waiting at
    /// most `timeout`, and reports newly durable `seq`s.
    fn poll(&mut self, timeout: Duration, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        let _ = (timeout, durable);
        Ok(())
    }

    /// Flushes everything still buffered and reports the remaining durable `seq`s.
    fn finish(&mut self, durable: &mut Vec<u64>) -> Result<(), SinkError>;

    /// Delivery counters, for sinks that have them (Kafka); shown by `--http`'s `/metrics`.
    fn stats(&self) -> Option<SinkStats> {
        None
    }
}

/// Delivery counters of a sink that sends messages (all cumulative except `queued`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Messages handed to the destination's client.
    pub sent: u64,
    /// Messages the destination acknowledged.
    pub delivered: u64,
    /// Messages whose delivery failed.
    pub failed: u64,
    /// Messages sent but not yet acknowledged or failed.
    pub queued: u64,
}

/// Why a sink failed. Every variant says where and keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}")]
    Custom {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Other(String),
    /// librdkafka rejected a setting (`-X`, `--kafka-config` or a default).
    #[error("invalid Kafka setting {key}")]
    KafkaConfig {
        key: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// No broker answered a metadata request in time when the sink opened.
    #[error("cannot reach Kafka brokers {brokers} within {timeout_s} s")]
    KafkaConnect {
        brokers: String,
        timeout_s: u64,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A topic could not be created or did not appear in metadata.
    #[error("Kafka topic {topic} is not usable")]
    KafkaTopic {
        topic: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// librdkafka refused to enqueue a message (other than a full queue, which is waited out).
    #[error("Kafka refused a message of block {block} for topic {topic}")]
    KafkaProduce {
        topic: String,
        block: u64,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// librdkafka gave up delivering a message: the run stops, the checkpoint stays behind it.
    #[error("Kafka delivery failed for block {block} (topic {topic}, partition {partition})")]
    KafkaDelivery {
        topic: String,
        partition: i32,
        /// The message key (block number), `?` if it could not be read back.
        block: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// Any other producer failure (client creation, fatal idempotence error, flush timeout).
    #[error("{context}")]
    Kafka {
        context: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
}
