//! How a run ends, shared by every stage: the stop and abort flags, the first failure
//! ([`RunError`]), and [`error_chain`] to print it. The stages ([`super::plan`],
//! [`super::fetch`], [`super::decode`]) depend on this module, not on [`super::run`], which
//! wires them.

use crate::checkpoint::CheckpointError;
use crate::config::BlockRange;
use crate::decode::DecodeError;
use crate::rpc::client::RpcError;
use crate::sink::SinkError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("giving up after {attempts} attempt(s)")]
    Fetch {
        attempts: u32,
        #[source]
        source: RpcError,
    },
    /// The decode error names the block (and call) it is about.
    #[error("bad answer from {endpoint} after {attempts} attempt(s)")]
    Decode {
        start: u64,
        end: u64,
        endpoint: String,
        attempts: u32,
        #[source]
        source: Box<DecodeError>,
    },
    #[error("decoding blocks {start}..={end} panicked: {message}")]
    DecodePanic {
        start: u64,
        end: u64,
        message: String,
    },
    #[error("output failed while {during}")]
    Sink {
        during: String,
        #[source]
        source: SinkError,
    },
    #[error("cannot open the output")]
    OpenSink {
        #[source]
        source: SinkError,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Another process writes the same output or checkpoint.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(
        "checkpoint {path} holds block {block}, outside the requested range {range} \
         (it must be between the block before the start and the end)"
    )]
    CheckpointOutOfRange {
        path: PathBuf,
        block: u64,
        range: BlockRange,
    },
    #[error(
        "the output's progress record holds block {block}, outside the requested range {range}"
    )]
    ProgressOutOfRange { block: u64, range: BlockRange },
    #[error("cannot start the {what}")]
    Start {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {0} thread panicked")]
    Panic(String),
    #[error("internal error: the run ended after writing {written} of {total} blocks")]
    Incomplete { written: u64, total: u64 },
}

/// `e` and its sources as one line: `outer: cause: cause`. Causes whose message spans several
/// lines (a JSON parser quoting the input, say) contribute their first line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let first_line = |e: &dyn std::error::Error| {
        let text = e.to_string();
        text.lines().next().unwrap_or("").trim_end().to_string()
    };
    let mut s = first_line(e);
    let mut src = e.source();
    while let Some(c) = src {
        let part = first_line(c);
        if !part.is_empty() && !s.ends_with(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        src = c.source();
    }
    s
}

/// Flags shared by every stage: the caller's stop request, the abort raised by the first
/// failure, and that failure.
pub(crate) struct Control {
    stop: Arc<AtomicBool>,
    abort: AtomicBool,
    error: Mutex<Option<RunError>>,
}

impl Control {
    pub(crate) fn new(stop: Arc<AtomicBool>) -> Control {
        Control {
            stop,
            abort: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }

    /// A stage failed: every stage stops without finishing its work.
    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// No new work should start (a stop was requested, or the run aborted).
    pub(crate) fn should_stop(&self) -> bool {
        self.aborted() || self.stop.load(Ordering::Relaxed)
    }

    /// Records `e` (the first failure wins) and aborts the run.
    pub(crate) fn fail(&self, e: RunError) {
        if let Ok(mut slot) = self.error.lock() {
            if slot.is_none() {
                *slot = Some(e);
            }
        }
        self.abort.store(true, Ordering::Relaxed);
    }

    /// Whether the caller asked the run to stop.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The failure recorded by [`Control::fail`], if any.
    pub(crate) fn take_error(&self) -> Option<RunError> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }
}
