//! Null sink: counts rows and bytes and writes nothing (dry runs, benchmarks of fetch and
//! decode). Every batch is durable as soon as it is written.

use crate::msg::{DecodedBatch, Entity};
use crate::sink::{OpenContext, Output, OutputSpec, Sink, SinkError, SinkKind};
use std::sync::Arc;

/// The registry entry: `--output null`.
pub const KIND: SinkKind = SinkKind {
    name: "null",
    usage: "null",
    claims: |raw| raw == "null",
    flags: &[],
    parse: |_, _| Ok(Output(Arc::new(NullOutput))),
};

/// `--output null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NullOutput;

impl OutputSpec for NullOutput {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn open(&self, _: &OpenContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(NullSink::new()))
    }

    fn display(&self) -> String {
        "null".into()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Discards rows, counting them.
#[derive(Debug, Default)]
pub struct NullSink {
    /// Rows seen per entity (indexed by `Entity as usize`).
    pub rows: [u64; Entity::COUNT],
    /// Serialized bytes seen.
    pub bytes: u64,
    pub batches: u64,
    durable: Vec<u64>,
}

impl NullSink {
    pub fn new() -> NullSink {
        NullSink::default()
    }
}

impl Sink for NullSink {
    fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
        for (i, rows) in batch.rows.iter().enumerate() {
            self.rows[i] += rows.len() as u64;
            self.bytes += rows.data.len() as u64;
        }
        self.batches += 1;
        self.durable.push(batch.seq);
        Ok(())
    }

    fn poll(
        &mut self,
        _timeout: std::time::Duration,
        durable: &mut Vec<u64>,
    ) -> Result<(), SinkError> {
        durable.append(&mut self.durable);
        Ok(())
    }

    fn finish(&mut self, durable: &mut Vec<u64>) -> Result<(), SinkError> {
        durable.append(&mut self.durable);
        Ok(())
    }
}
