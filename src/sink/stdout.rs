//! Stdout sink: rows in block order, interleaved per block as ethereum-etl's stream emits them
//! (the block, its transactions, logs, token transfers, then receipts), JSONL stream items or
//! CSV of a single entity (header before the first row). Each batch is flushed before its `seq`
//! is reported durable. A closed pipe (`| head`) is a [`StdoutError::Closed`] that says after
//! which block it happened (the run fails: the range is incomplete), never a panic; see
//! [`is_broken_pipe`].

use crate::decode::csv_header;
use crate::msg::{DecodedBatch, Entity, EntitySet, RowFormat};
use crate::sink::{OpenContext, Output, OutputError, OutputSpec, Sink, SinkError, SinkKind};
use std::io::{BufWriter, Write};
use std::sync::Arc;

/// The registry entry: `--output -`.
pub const KIND: SinkKind = SinkKind {
    name: "stdout",
    usage: "- (stdout)",
    claims: |raw| raw == "-",
    flags: &[],
    parse: |_, cx| {
        if cx.format == RowFormat::Csv && cx.entities.iter().count() != 1 {
            return Err(OutputError::Conflict(
                "CSV on stdout needs exactly one entity (--entities NAME); use --format jsonl \
                 for several"
                    .into(),
            ));
        }
        Ok(Output(Arc::new(StdoutOutput)))
    },
};

/// `--output -`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StdoutOutput;

impl OutputSpec for StdoutOutput {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn open(&self, ctx: &OpenContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(StdoutSink::new(ctx.entities, ctx.format)))
    }

    fn display(&self) -> String {
        "- (stdout)".into()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Why writing to stdout failed.
#[derive(Debug, thiserror::Error)]
pub enum StdoutError {
    #[error("{op} stdout")]
    Write {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The reader went away (`| head`) before the range was written.
    #[error("stdout was closed by its reader {}", match .after {
        Some(b) => format!("once every row up to block {b} was written (the blocks after it are incomplete)"),
        None => "before the rows of the first batch were all written".to_string(),
    })]
    Closed {
        /// The last block whose rows were all written.
        after: Option<u64>,
        #[source]
        source: std::io::Error,
    },
}

impl From<StdoutError> for SinkError {
    fn from(e: StdoutError) -> SinkError {
        SinkError::new(KIND.name, e)
    }
}

/// Writes rows to a stream (stdout by default).
pub struct StdoutSink<W: Write + Send = std::io::Stdout> {
    out: BufWriter<W>,
    entities: EntitySet,
    format: RowFormat,
    header_written: bool,
    durable: Vec<u64>,
    /// The last block of the last batch written and flushed.
    written_to: Option<u64>,
}

impl StdoutSink<std::io::Stdout> {
    pub fn new(entities: EntitySet, format: RowFormat) -> Self {
        StdoutSink::to_writer(std::io::stdout(), entities, format)
    }
}

impl<W: Write + Send> StdoutSink<W> {
    /// Writes to any stream instead of stdout.
    pub fn to_writer(w: W, entities: EntitySet, format: RowFormat) -> Self {
        StdoutSink {
            out: BufWriter::with_capacity(1 << 20, w),
            entities,
            format,
            header_written: false,
            durable: Vec::new(),
            written_to: None,
        }
    }

    /// The stream, after flushing.
    pub fn into_inner(self) -> Option<W> {
        self.out.into_inner().ok()
    }

    fn write_batch(&mut self, batch: &DecodedBatch) -> std::io::Result<()> {
        let entities: Vec<Entity> = self.entities.iter().collect();
        if self.format == RowFormat::Csv && !self.header_written {
            if let Some(e) = entities.first() {
                if !batch.rows(*e).is_empty() {
                    self.out.write_all(csv_header(*e).as_bytes())?;
                    self.header_written = true;
                }
            }
        }
        // One cursor per entity; rows are in (block, index) order within each entity.
        let mut iters: Vec<_> = entities
            .iter()
            .map(|e| batch.rows(*e).iter().peekable())
            .collect();
        for block in batch.start..=batch.end {
            for it in iters.iter_mut() {
                while let Some((_, row)) = it.next_if(|(b, _)| *b <= block) {
                    self.out.write_all(row)?;
                }
            }
        }
        // Rows tagged outside the batch's range (should not happen) are still written.
        for it in iters.iter_mut() {
            for (_, row) in it {
                self.out.write_all(row)?;
            }
        }
        self.out.flush()
    }
}

/// Whether a sink error is a closed output pipe (the reader went away: `| head`).
pub fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

impl<W: Write + Send> StdoutSink<W> {
    fn error(&self, op: &'static str, source: std::io::Error) -> SinkError {
        SinkError::from(if source.kind() == std::io::ErrorKind::BrokenPipe {
            StdoutError::Closed {
                after: self.written_to,
                source,
            }
        } else {
            StdoutError::Write { op, source }
        })
    }
}

impl<W: Write + Send> Sink for StdoutSink<W> {
    fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
        self.write_batch(&batch)
            .map_err(|source| self.error("write to", source))?;
        self.durable.push(batch.seq);
        self.written_to = Some(batch.end);
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
        self.out
            .flush()
            .map_err(|source| self.error("flush", source))?;
        durable.append(&mut self.durable);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{BatchCounts, RowBuf};

    fn batch(format: RowFormat) -> DecodedBatch {
        let mut rows: [RowBuf; Entity::COUNT] = Default::default();
        let mut push = |e: Entity, block: u64, text: &str| {
            rows[e as usize].data.extend_from_slice(text.as_bytes());
            rows[e as usize].finish_row(block);
        };
        push(Entity::Blocks, 1, "b1\n");
        push(Entity::Blocks, 2, "b2\n");
        push(Entity::Transactions, 1, "t1a\n");
        push(Entity::Transactions, 1, "t1b\n");
        push(Entity::Transactions, 2, "t2\n");
        push(Entity::Logs, 2, "l2\n");
        DecodedBatch {
            seq: 0,
            start: 1,
            end: 2,
            format,
            blocks: Vec::new(),
            rows,
            counts: BatchCounts::default(),
        }
    }

    #[test]
    fn interleaves_by_block() {
        let ents = EntitySet::of(&[Entity::Blocks, Entity::Transactions, Entity::Logs]);
        let mut s = StdoutSink::to_writer(Vec::new(), ents, RowFormat::Json);
        s.write(batch(RowFormat::Json)).unwrap();
        let mut d = Vec::new();
        s.finish(&mut d).unwrap();
        assert_eq!(d, vec![0]);
        let out = String::from_utf8(s.into_inner().unwrap()).unwrap();
        assert_eq!(out, "b1\nt1a\nt1b\nb2\nt2\nl2\n");
    }

    #[test]
    fn only_requested_entities() {
        let ents = EntitySet::of(&[Entity::Transactions]);
        let mut s = StdoutSink::to_writer(Vec::new(), ents, RowFormat::Json);
        s.write(batch(RowFormat::Json)).unwrap();
        let out = String::from_utf8(s.into_inner().unwrap()).unwrap();
        assert_eq!(out, "t1a\nt1b\nt2\n");
    }

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn closed_pipe_is_an_error_not_a_panic() {
        let mut s =
            StdoutSink::to_writer(Closed, EntitySet::of(&[Entity::Blocks]), RowFormat::Json);
        let e = s.write(batch(RowFormat::Json)).unwrap_err();
        assert!(is_broken_pipe(&e));
    }
}
