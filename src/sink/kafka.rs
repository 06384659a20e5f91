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
