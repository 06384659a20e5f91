//! TODO: Kafka sink (rdkafka BaseProducer owned by the sink thread).

use crate::pipeline::msg::EntitySet;

/// Resolved Kafka settings (built by `config` from `--output kafka://...`, `--topic-prefix`,
/// `--partitions`, `-X key=value` and `--kafka-config FILE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaOptions {
    /// `host:port[,host:port...]` (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Topic prefix; topics are `<prefix>.<entity>`, or bare `<entity>` when empty.
    pub topic_prefix: String,
    /// Partitions for topics ethetl creates (existing topics keep their layout).
    pub partitions: i32,
    /// librdkafka properties from `--kafka-config FILE` then `-X` (later wins), applied over
    /// ethetl's defaults.
    pub overrides: Vec<(String, String)>,
    pub entities: EntitySet,
}

use crate::pipeline::msg::DecodedBatch;
use crate::sink::{Sink, SinkError};

/// Kafka sink (placeholder until the producer lands; `open` fails with a clear message).
pub struct KafkaSink {
    _opts: KafkaOptions,
}

impl KafkaSink {
    /// Connects to the brokers, creates missing topics and builds the producer.
    pub fn open(opts: KafkaOptions) -> Result<KafkaSink, SinkError> {
        let _ = opts;
        Err(SinkError::Other(
            "the Kafka sink is not available in this build".into(),
        ))
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
        let _ = batch;
        Err(SinkError::Other(
            "the Kafka sink is not available in this build".into(),
        ))
    }

    fn finish(&mut self, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        let _ = durable;
        Ok(())
    }
}
