//! Where decoded rows go. A [`Sink`] lives on the one sink thread; it is handed every
//! [`DecodedBatch`] in `seq` order and reports which `seq`s are durable (files fsynced and
//! renamed, Kafka deliveries acknowledged), which is what moves the checkpoint.
//!
//! # Adding a sink
//!
//! A sink is one module here: its options, its own error enum (wrapped in [`SinkError`] with
//! the sink's name), a [`SinkKind`] that says which `--output` values it takes and how to
//! parse them into an [`OutputSpec`], and the [`Sink`] itself. Then one line in [`REGISTRY`]
//! and a paragraph in the README. The smallest complete example is [`null`]; [`stdout`] adds
//! a format check, [`kafka`] its own flags and a URL scheme.

pub mod file;
pub mod kafka;
pub mod null;
pub mod stdout;

use crate::cli::PipelineArgs;
use crate::msg::BlockRange;
use crate::msg::{DecodedBatch, EntitySet, RowFormat};
use std::sync::Arc;
use std::time::Duration;

/// Every sink the binary knows, tried in order for an `--output` value: the first whose
/// [`SinkKind::claims`] is true parses it. The files sink comes last: it takes any value that
/// is not a URL.
pub const REGISTRY: &[SinkKind] = &[null::KIND, stdout::KIND, kafka::KIND, file::KIND];

/// A destination for decoded batches. Implement it to plug a callback into the pipeline.
///
/// Contract: `write` is called with batches in strictly increasing, contiguous `seq` order.
/// `poll` and `finish` append to `durable` the `seq`s whose rows are now safely stored
/// (each `seq` exactly once, in any order). After `finish` returns `Ok`, every written `seq`
/// has been reported. `ethetl stream` ([`crate::stream`]) calls `finish` at the end of every
/// round and then goes on writing (with the next `seq`s), so a sink used there must accept
/// writes after `finish`.
///
/// # Progress
///
/// By default the run keeps its resume point in the checkpoint file (`--checkpoint`), moved
/// over the contiguous prefix of durable `seq`s. A sink that can store progress atomically
/// with its data (a progress row in the same database transaction, say) returns `true` from
/// [`Sink::owns_progress`]: the run then asks it where to resume ([`Sink::resume_point`])
/// instead of reading the checkpoint file, and tells it each time the contiguous complete
/// prefix grows ([`Sink::completed`]), so that it stores that block with its next commit.
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

    /// Whether this sink stores the resume point itself, atomically with the data (see the
    /// trait docs). Default: no, the checkpoint file does.
    fn owns_progress(&self) -> bool {
        false
    }

    /// For a sink that owns progress: the last block N of this job such that N and every
    /// block before it in the range are stored, or `None` when nothing is. Called once, before
    /// the first `write`.
    fn resume_point(&mut self) -> Result<Option<u64>, SinkError> {
        Ok(None)
    }

    /// Every block up to `block` (of this run's range) is durable: a sink that owns progress
    /// records it (at the latest with the data it commits next). Called with increasing
    /// blocks, after the `seq`s that hold them were reported durable.
    fn completed(&mut self, block: u64) -> Result<(), SinkError> {
        let _ = block;
        Ok(())
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

/// Any error a sink boxes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a sink failed: the sink's own error (its module's enum), with the sink's name. It
/// displays as that error and hands on its causes, so messages read the same whichever sink
/// failed; [`SinkError::downcast_ref`] gets the sink's error back.
#[derive(Debug)]
pub struct SinkError {
    sink: &'static str,
    source: BoxError,
}

impl SinkError {
    /// Wraps `source`, an error of the sink named `sink`.
    pub fn new(sink: &'static str, source: impl Into<BoxError>) -> SinkError {
        SinkError {
            sink,
            source: source.into(),
        }
    }

    /// The name of the sink that failed (`files`, `kafka`, ...).
    pub fn sink(&self) -> &'static str {
        self.sink
    }

    /// The sink's own error, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.downcast_ref::<E>()
    }
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// What opening a sink needs to know about the run.
#[derive(Clone, Debug)]
pub struct OpenContext {
    /// The entities rows arrive for (a stream adds [`crate::Entity::Reorgs`]).
    pub entities: EntitySet,
    pub format: RowFormat,
    /// Blocks per output file (jobs never straddle a chunk).
    pub chunk_size: u64,
    /// The blocks this run writes (after a resume: from the block after the checkpoint).
    pub range: BlockRange,
    /// The whole range of the job (`range` and the blocks before it that a checkpoint says are
    /// done): output of it written with other settings is an error.
    pub job: BlockRange,
    /// Replace existing output instead of failing.
    pub overwrite: bool,
    /// The run keeps a checkpoint: output inside `range` (past the checkpoint) was written by
    /// an earlier run of this same job that stopped before its checkpoint caught up (a crash,
    /// a full disk), and is replaced without `overwrite`.
    pub checkpointed: bool,
    /// Output that reaches outside `range` is left as it is instead of being an error: a
    /// stream's earlier rounds, whose rows a reorg marks orphaned rather than removes.
    pub keep_overlapping: bool,
}

/// A validated `--output`: knows which sink it is and how to open it.
pub trait OutputSpec: std::fmt::Debug + Send + Sync {
    /// The sink's name, as in [`SinkKind::name`].
    fn kind(&self) -> &'static str;

    /// Opens the sink.
    fn open(&self, ctx: &OpenContext) -> Result<Box<dyn Sink>, SinkError>;

    /// Whether a stream opens a new sink for every round (files: each round writes its own
    /// files over the blocks it covers) instead of one for the whole stream.
    fn per_round(&self) -> bool {
        false
    }

    /// Takes the lock that makes this process the output's only writer, for outputs that
    /// have one (files: `DIR/.ethetl.lock`); held until dropped. Default: none.
    fn lock(&self) -> Result<Option<crate::lock::LockFile>, crate::lock::LockError> {
        Ok(None)
    }

    /// The output as shown to the user (secrets redacted).
    fn display(&self) -> String;

    /// For tests and embedders that need the concrete options.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A validated `--output`, cheap to clone.
#[derive(Clone, Debug)]
pub struct Output(pub Arc<dyn OutputSpec>);

impl Output {
    /// `DIR/<entity>/<first>-<last>.<ext>` files.
    pub fn dir(dir: impl Into<std::path::PathBuf>) -> Output {
        Output(Arc::new(file::DirOutput { dir: dir.into() }))
    }

    /// JSONL stream items (or CSV of one entity) on stdout.
    pub fn stdout() -> Output {
        Output(Arc::new(stdout::StdoutOutput))
    }

    /// Decode and count, write nothing.
    pub fn null() -> Output {
        Output(Arc::new(null::NullOutput))
    }

    /// Kafka with these options (their `entities` are set when the sink opens).
    pub fn kafka(options: kafka::KafkaOptions) -> Output {
        Output(Arc::new(options))
    }

    /// The sink's name (`files`, `stdout`, `null`, `kafka`).
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// The concrete options, if they are a `T`.
    pub fn options<T: 'static>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }
}

impl std::ops::Deref for Output {
    type Target = dyn OutputSpec;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl PartialEq for Output {
    fn eq(&self, other: &Output) -> bool {
        self.kind() == other.kind() && self.display() == other.display()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.display())
    }
}

/// What parsing an `--output` value may need besides the value itself.
pub struct ParseContext<'a> {
    /// Every shared flag as given (sink-specific ones among them).
    pub args: &'a PipelineArgs,
    pub entities: EntitySet,
    pub format: RowFormat,
}

/// One entry of the [`REGISTRY`].
pub struct SinkKind {
    /// Short name, used in messages and by [`OutputSpec::kind`].
    pub name: &'static str,
    /// The `--output` forms it takes, for messages (`kafka://host:port[,host:port]`).
    pub usage: &'static str,
    /// Whether an `--output` value is for this sink.
    pub claims: fn(&str) -> bool,
    /// The long names of the flags only this sink uses: given with another output they are an
    /// error.
    pub flags: &'static [&'static str],
    /// Validates the value (and the sink's flags) into an opener.
    pub parse: fn(&str, &ParseContext<'_>) -> Result<Output, OutputError>,
}

/// An `--output` value (or a sink's own flag) that cannot be used. Messages name the flag and
/// value; a URL's credentials are never repeated.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("no output: pass --output DIR, `--output -` (stdout), `--output null` or --output kafka://host:port")]
    Missing,
    /// An `--output` URL whose scheme no sink takes (the rest of the URL is not repeated: it
    /// may hold a password).
    #[error("unknown output scheme `{scheme}://` in --output; outputs: {known}")]
    UnknownScheme { scheme: String, known: String },
    #[error("invalid {flag} `{value}`: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// Flags or formats that do not go together with this output.
    #[error("{0}")]
    Conflict(String),
    #[error("cannot read --kafka-config file {path}")]
    KafkaConfigFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Parses `--output` with the [`REGISTRY`]: the first sink that claims `raw` parses it; flags
/// of the other sinks are refused; a URL scheme no sink knows is an error (never a directory
/// of that name).
pub fn parse_output(raw: Option<&str>, cx: &ParseContext<'_>) -> Result<Output, OutputError> {
    let raw = raw.filter(|r| !r.is_empty()).ok_or(OutputError::Missing)?;
    let kind =
        REGISTRY
            .iter()
            .find(|k| (k.claims)(raw))
            .ok_or_else(|| OutputError::UnknownScheme {
                scheme: url_scheme(raw).unwrap_or_default().to_string(),
                known: REGISTRY
                    .iter()
                    .map(|k| k.usage)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    for other in REGISTRY.iter().filter(|k| k.name != kind.name) {
        for flag in other.flags {
            if cx.args.is_set(flag) == Some(true) && !kind.flags.contains(flag) {
                return Err(OutputError::Conflict(format!(
                    "--{flag} only applies to --output {}",
                    other.usage
                )));
            }
        }
    }
    (kind.parse)(raw, cx)
}

/// `scheme` of a `scheme://...` value (letters, digits, `+-.`, starting with a letter).
pub fn url_scheme(raw: &str) -> Option<&str> {
    let (scheme, _) = raw.split_once("://")?;
    let mut chars = scheme.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    ok.then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Output, OutputError> {
        let args = PipelineArgs::default();
        parse_output(
            Some(raw),
            &ParseContext {
                args: &args,
                entities: EntitySet::of(&crate::config::DEFAULT_ENTITIES),
                format: RowFormat::Json,
            },
        )
    }

    #[test]
    fn registry_routes_outputs() {
        assert_eq!(parse("null").unwrap().kind(), "null");
        assert_eq!(parse("-").unwrap().kind(), "stdout");
        assert_eq!(parse("kafka://k:9092").unwrap().kind(), "kafka");
        assert_eq!(parse("out/dir").unwrap().kind(), "files");
        assert_eq!(parse("./a://b").unwrap().kind(), "files");
        let e = parse("s3://user:SECRETPW@bucket/path")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`s3://`") && e.contains("kafka://"), "{e}");
        assert!(!e.contains("SECRETPW") && !e.contains("bucket"), "{e}");
        assert!(matches!(parse(""), Err(OutputError::Missing)));
    }

    #[test]
    fn sink_error_reads_as_its_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe");
        let e = SinkError::new(
            "stdout",
            stdout::StdoutError::Write {
                op: "write to",
                source: io,
            },
        );
        assert_eq!(e.to_string(), "write to stdout");
        assert_eq!(e.sink(), "stdout");
        assert!(e.downcast_ref::<stdout::StdoutError>().is_some());
        assert!(stdout::is_broken_pipe(&e));
    }
}
