//! Files sink: `DIR/<entity>/<first>-<last>.<jsonl|csv>`, one file per entity per aligned
//! chunk of `chunk_size` blocks (clipped to the range), block numbers zero-padded to
//! [`NAME_WIDTH`] digits so name order is block order.
//!
//! Guarantees: a file is written under a temporary name (`.<name>.tmp`) in the same directory
//! and renamed only when its chunk is complete, after fsync of the file, followed by an fsync of
//! the directory; so an interrupted run never leaves a truncated file under a final name. A
//! `seq` is reported durable only when every file holding its rows has been renamed. A chunk
//! with no rows still gets its (empty) file; a CSV file starts with the header unless it has no
//! rows (as ethereum-etl). If the run ends inside a chunk (a stop), `finish` completes the
//! partial chunk under the name of the blocks it really holds, `<first>-<last written>`, so a
//! resumed run continues with the next block and no block is in two files.
//!
//! A chunk is complete for a reader when its manifest `DIR/_manifests/<first>-<last>.json`
//! exists: written (atomically) after every entity's file of the chunk has its final name,
//! removed before a chunk is written again. A crash between two entities' renames leaves a
//! chunk with some final-named files and no manifest.
//!
//! One writer: the binary locks `DIR/.ethetl.lock` ([`OutputSpec::lock`]) for the whole run.
//! With a checkpoint, files inside the range past it belong to this job (an earlier run wrote
//! them after its last checkpoint write, or before its first) and are replaced; without one
//! they are an error unless `--overwrite`.

use crate::decode::csv_header;
use crate::msg::chunk_of;
use crate::msg::BlockRange;
use crate::msg::{DecodedBatch, Entity, RowFormat};
use crate::sink::{OpenContext, Output, OutputSpec, Sink, SinkError, SinkKind};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The registry entry: `--output DIR` (any value that is not a URL).
pub const KIND: SinkKind = SinkKind {
    name: "files",
    usage: "DIR",
    claims: |raw| crate::sink::url_scheme(raw).is_none(),
    flags: &[],
    parse: |raw, _| {
        Ok(Output(Arc::new(DirOutput {
            dir: PathBuf::from(raw),
        })))
    },
};

/// `--output DIR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirOutput {
    pub dir: PathBuf,
}

impl DirOutput {
    /// The options of a file sink for `ctx`.
    pub fn options(&self, ctx: &OpenContext) -> FileSinkOptions {
        FileSinkOptions {
            dir: self.dir.clone(),
            ctx: ctx.clone(),
        }
    }
}

impl OutputSpec for DirOutput {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn open(&self, ctx: &OpenContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(FileSink::open(self.options(ctx))?))
    }

    fn per_round(&self) -> bool {
        true
    }

    fn lock(&self) -> Result<Option<crate::lock::LockFile>, crate::lock::LockError> {
        let what = format!("output directory {}", self.dir.display());
        let path = self.dir.join(LOCK_FILE);
        let io = |source| crate::lock::LockError::Io {
            what: what.clone(),
            path: path.clone(),
            source,
        };
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(io(std::io::Error::other(
                "it exists and is not a directory",
            )));
        }
        fs::create_dir_all(&self.dir).map_err(io)?;
        crate::lock::LockFile::acquire(&path, &what).map(Some)
    }

    fn display(&self) -> String {
        self.dir.display().to_string()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Why the files sink failed.
#[derive(Debug, thiserror::Error)]
pub enum FileSinkError {
    /// A file operation failed (`op` is what was being done: `create`, `rename`, ...).
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Existing files in the way, or batches that break the sink's contract.
    #[error("{0}")]
    Invalid(String),
}

impl From<FileSinkError> for SinkError {
    fn from(e: FileSinkError) -> SinkError {
        SinkError::new(KIND.name, e)
    }
}

/// Digits of the zero-padded block numbers in file names.
pub const NAME_WIDTH: usize = 10;

/// The lock file of an output directory.
pub const LOCK_FILE: &str = ".ethetl.lock";

/// The directory of the chunk manifests, `DIR/_manifests` (a leading `_`: Spark, Hive and
/// DuckDB globs of `DIR/*/*.jsonl` pass it by).
pub const MANIFEST_DIR: &str = "_manifests";

/// Settings of a [`FileSink`]: where, and what the run is (see [`OpenContext`]: `range` are
/// the blocks this run writes, `job` the whole range it resumes, `checkpointed` makes files
/// wholly inside `range` this job's to replace, `keep_overlapping` leaves files that reach
/// outside `range` alone).
#[derive(Clone, Debug)]
pub struct FileSinkOptions {
    pub dir: PathBuf,
    pub ctx: OpenContext,
}

/// The file name for `first..=last` of a format.
pub fn file_name(first: u64, last: u64, format: RowFormat) -> String {
    format!(
        "{first:0w$}-{last:0w$}.{}",
        extension(format),
        w = NAME_WIDTH
    )
}

pub fn extension(format: RowFormat) -> &'static str {
    match format {
        RowFormat::Json => "jsonl",
        RowFormat::Csv => "csv",
    }
}

/// Parses `<first>-<last>.<ext>` back into its range.
fn parse_name(name: &str, ext: &str) -> Option<BlockRange> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    let (a, b) = stem.split_once('-')?;
    if a.is_empty() || b.is_empty() {
        return None;
    }
    BlockRange::new(a.parse().ok()?, b.parse().ok()?)
}

/// Refuses a job whose range already holds complete chunks written with other entities or
/// another format (a resume with changed flags would mix them silently), unless `overwrite`;
/// removes manifest temporary files a killed run left inside the range.
fn check_manifests(
    opts: &FileSinkOptions,
    dir: &Path,
    inside: impl Fn(BlockRange) -> bool,
) -> Result<(), SinkError> {
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    let ours: Vec<&str> = opts.ctx.entities.iter().map(|e| e.name()).collect();
    let mut want = ours.clone();
    want.sort_unstable();
    let entries = fs::read_dir(dir).map_err(io_err("list directory", dir))?;
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(r) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| parse_name(n, "json"))
        {
            if inside(r) && (opts.ctx.overwrite || opts.ctx.checkpointed) {
                fs::remove_file(&path).map_err(io_err("remove abandoned file", &path))?;
            }
            continue;
        }
        let Some(r) = parse_name(&name, "json") else {
            continue;
        };
        if opts.ctx.overwrite || r.end < opts.ctx.job.start || r.start > opts.ctx.job.end {
            continue;
        }
        let text = fs::read(&path).map_err(io_err("read", &path))?;
        let m: sonic_rs::Value = sonic_rs::from_slice(&text).unwrap_or_default();
        let format = m.get("format").and_then(|f| f.as_str()).unwrap_or("?");
        let mut theirs: Vec<&str> = m
            .get("files")
            .and_then(|f| f.as_object())
            .map(|o| o.iter().map(|(k, _)| k).collect())
            .unwrap_or_default();
        theirs.sort_unstable();
        if format != extension(opts.ctx.format) || theirs != want {
            return Err(SinkError::from(FileSinkError::Invalid(format!(
                "{} already holds blocks {r} as {format} with entities {} (manifest {}); this \
                 run writes {} with entities {}: keep the flags of the run that wrote it, or \
                 use another --output directory",
                opts.dir.display(),
                theirs.join(","),
                path.display(),
                extension(opts.ctx.format),
                ours.join(","),
            ))));
        }
    }
    Ok(())
}

/// One entity's file of the open chunk.
struct ChunkFile {
    entity: Entity,
    dir: PathBuf,
    tmp: PathBuf,
    /// `None` once closed.
    out: Option<BufWriter<File>>,
    rows: u64,
    bytes: u64,
}

/// The chunk being written.
struct OpenChunk {
    range: BlockRange,
    /// Last block written so far.
    written_to: u64,
    /// `seq`s with rows in this chunk, durable when it is complete.
    seqs: Vec<u64>,
    files: Vec<ChunkFile>,
}

/// Writes row files (see the module docs).
pub struct FileSink {
    opts: FileSinkOptions,
    open: Option<OpenChunk>,
    durable: Vec<u64>,
    /// With `overwrite`: existing files inside the range under other names (an earlier run
    /// with another chunk size, or one that was interrupted). Each is removed once the blocks
    /// it covers have been written anew, so no block ends up in two files.
    stale: Vec<(BlockRange, PathBuf)>,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SinkError {
    let path = path.display().to_string();
    move |source| SinkError::from(FileSinkError::Io { op, path, source })
}

impl FileSink {
    /// Creates the entity directories and checks that no complete file already covers part
    /// of the range (unless `overwrite`).
    pub fn open(opts: FileSinkOptions) -> Result<FileSink, SinkError> {
        let ext = extension(opts.ctx.format);
        let replace = opts.ctx.overwrite || opts.ctx.checkpointed;
        let inside = |r: BlockRange| r.start >= opts.ctx.range.start && r.end <= opts.ctx.range.end;
        let mut stale = Vec::new();
        let manifests = opts.dir.join(MANIFEST_DIR);
        fs::create_dir_all(&manifests).map_err(io_err("create directory", &manifests))?;
        check_manifests(&opts, &manifests, inside)?;
        for entity in opts.ctx.entities.iter() {
            let dir = opts.dir.join(entity.name());
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
            let mut names: Vec<String> = fs::read_dir(&dir)
                .map_err(io_err("list directory", &dir))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                // A temporary file of a chunk of this range: left by a run that was killed.
                let abandoned = name
                    .strip_prefix('.')
                    .and_then(|n| n.strip_suffix(".tmp"))
                    .and_then(|n| parse_name(n, ext));
                if abandoned.is_some_and(inside) && replace {
                    let path = dir.join(&name);
                    fs::remove_file(&path).map_err(io_err("remove abandoned file", &path))?;
                    continue;
                }
                if let Some(r) = parse_name(&name, ext) {
                    let overlaps = r.start <= opts.ctx.range.end && r.end >= opts.ctx.range.start;
                    if replace && inside(r) {
                        stale.push((r, dir.join(&name)));
                    } else if overlaps && !inside(r) && !opts.ctx.keep_overlapping {
                        // Replacing part of it would leave its other blocks in two files.
                        let fix = if opts.ctx.checkpointed && r.start < opts.ctx.range.start {
                            format!(
                                "it reaches back before the blocks left after the checkpoint: \
                                 set the checkpoint to block {} to rewrite it whole",
                                r.start.saturating_sub(1)
                            )
                        } else {
                            "remove it, or give a range that covers it whole".to_string()
                        };
                        return Err(SinkError::from(FileSinkError::Invalid(format!(
                            "output file {} holds blocks {r}, partly outside the blocks {} this \
                             run writes: it cannot be replaced in part ({fix})",
                            dir.join(&name).display(),
                            opts.ctx.range
                        ))));
                    } else if overlaps && !replace {
                        return Err(SinkError::from(FileSinkError::Invalid(format!(
                            "output file {} already exists and covers blocks {}..={} of the \
                             requested range; pass --overwrite to replace it (or --checkpoint \
                             FILE to resume the run that wrote it)",
                            dir.join(&name).display(),
                            r.start.max(opts.ctx.range.start),
                            r.end.min(opts.ctx.range.end),
                        ))));
                    }
                }
            }
        }
        let mut sink = FileSink {
            opts,
            open: None,
            durable: Vec::new(),
            stale,
        };
        // Resuming an export: the files past the checkpoint go now, before the checkpoint can
        // move past any of them (with another chunk size their rewrite would otherwise leave
        // both versions of some blocks on disk until the last of them is written again).
        if sink.opts.ctx.checkpointed && !sink.opts.ctx.keep_overlapping {
            for (r, path) in std::mem::take(&mut sink.stale) {
                sink.remove_manifest(r)?;
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove replaced file", &path)(e)),
                }
            }
        }
        Ok(sink)
    }

    fn open_chunk(&self, range: BlockRange) -> Result<OpenChunk, SinkError> {
        let mut files = Vec::new();
        for entity in self.opts.ctx.entities.iter() {
            let dir = self.opts.dir.join(entity.name());
            let tmp = dir.join(format!(
                ".{}.tmp",
                file_name(range.start, range.end, self.opts.ctx.format)
            ));
            let f = File::create(&tmp).map_err(io_err("create", &tmp))?;
            files.push(ChunkFile {
                entity,
                dir,
                tmp,
                out: Some(BufWriter::with_capacity(1 << 20, f)),
                rows: 0,
                bytes: 0,
            });
        }
        Ok(OpenChunk {
            range,
            written_to: range.start.wrapping_sub(1),
            seqs: Vec::new(),
            files,
        })
    }

    /// Flushes, fsyncs and renames every file of `chunk` to its final name for
    /// `chunk.range.start..=last`, then fsyncs the directories and marks its `seq`s durable.
    fn complete(&mut self, mut chunk: OpenChunk, last: u64) -> Result<(), SinkError> {
        let name = file_name(chunk.range.start, last, self.opts.ctx.format);
        let range = BlockRange {
            start: chunk.range.start,
            end: last,
        };
        // A chunk written again is incomplete until its files are all replaced.
        self.remove_manifest(range)?;
        for f in &mut chunk.files {
            let out = f.out.take().expect("chunk files are open until completed");
            let file = out
                .into_inner()
                .map_err(|e| io_err("write", &f.tmp)(e.into_error()))?;
            file.sync_all().map_err(io_err("fsync", &f.tmp))?;
            drop(file);
            let dest = f.dir.join(&name);
            let ours = self.stale.iter().any(|(_, p)| p == &dest);
            if !self.opts.ctx.overwrite && !ours && dest.exists() {
                return Err(SinkError::from(FileSinkError::Invalid(format!(
                    "output file {} appeared while writing; pass --overwrite to replace it",
                    dest.display()
                ))));
            }
            fs::rename(&f.tmp, &dest).map_err(io_err("rename to final name", &dest))?;
        }
        // Stale files now wholly rewritten (never one just written: same name, replaced).
        let done = self.opts.ctx.range.start..=last;
        let mut i = 0;
        while i < self.stale.len() {
            let (r, path) = &self.stale[i];
            if done.contains(&r.start) && done.contains(&r.end) {
                if path.file_name().map(|n| n.to_string_lossy()) != Some(name.as_str().into()) {
                    let (r, path) = (*r, path.clone());
                    self.remove_manifest(r)?;
                    fs::remove_file(&path).map_err(io_err("remove replaced file", &path))?;
                }
                self.stale.swap_remove(i);
            } else {
                i += 1;
            }
        }
        for f in &chunk.files {
            crate::checkpoint::sync_dir(&f.dir).map_err(io_err("fsync directory", &f.dir))?;
        }
        self.write_manifest(range, &name, &chunk.files)?;
        chunk.files.clear();
        self.durable.append(&mut chunk.seqs);
        Ok(())
    }

    fn manifest_path(&self, range: BlockRange) -> PathBuf {
        self.opts.dir.join(MANIFEST_DIR).join(format!(
            "{:0w$}-{:0w$}.json",
            range.start,
            range.end,
            w = NAME_WIDTH
        ))
    }

    /// Removes the manifest of `range`, if there is one (and makes the removal durable).
    fn remove_manifest(&self, range: BlockRange) -> Result<(), SinkError> {
        let path = self.manifest_path(range);
        match fs::remove_file(&path) {
            Ok(()) => {
                let dir = crate::checkpoint::parent_dir(&path);
                crate::checkpoint::sync_dir(dir).map_err(io_err("fsync directory", dir))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove manifest", &path)(e)),
        }
    }

    /// Writes the manifest of a chunk whose files all have their final name `name`: the range,
    /// the format and each entity's file, rows and bytes.
    fn write_manifest(
        &self,
        range: BlockRange,
        name: &str,
        files: &[ChunkFile],
    ) -> Result<(), SinkError> {
        let format = extension(self.opts.ctx.format);
        let mut text = format!(
            r#"{{"first_block":{},"last_block":{},"format":"{format}","files":{{"#,
            range.start, range.end
        );
        for (i, f) in files.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let entity = f.entity.name();
            text.push_str(&format!(
                r#""{entity}":{{"path":"{entity}/{name}","rows":{},"bytes":{}}}"#,
                f.rows, f.bytes
            ));
        }
        text.push_str("}}\n");
        let path = self.manifest_path(range);
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        {
            let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
            f.write_all(text.as_bytes())
                .map_err(io_err("write", &tmp))?;
            f.sync_all().map_err(io_err("fsync", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("rename to final name", &path))?;
        let dir = crate::checkpoint::parent_dir(&path);
        crate::checkpoint::sync_dir(dir).map_err(io_err("fsync directory", dir))
    }
}

impl Sink for FileSink {
    fn write(&mut self, batch: DecodedBatch) -> Result<(), SinkError> {
        let chunk_range = chunk_of(batch.start, self.opts.ctx.chunk_size, self.opts.ctx.range);
        if batch.end > chunk_range.end {
            return Err(SinkError::from(FileSinkError::Invalid(format!(
                "batch of blocks {}..={} straddles the file chunk {chunk_range}",
                batch.start, batch.end
            ))));
        }
        let mut chunk = match self.open.take() {
            Some(c) if c.range == chunk_range => c,
            Some(c) => {
                return Err(SinkError::from(FileSinkError::Invalid(format!(
                    "batch of blocks {}..={} arrived while chunk {} was incomplete (written to {})",
                    batch.start, batch.end, c.range, c.written_to
                ))))
            }
            None => self.open_chunk(chunk_range)?,
        };
        if batch.start != chunk.written_to.wrapping_add(1) {
            let expected = chunk.written_to.wrapping_add(1);
            self.open = Some(chunk);
            return Err(SinkError::from(FileSinkError::Invalid(format!(
                "batch of blocks {}..={} is out of order: expected block {expected} next",
                batch.start, batch.end
            ))));
        }
        for f in &mut chunk.files {
            let rows = batch.rows(f.entity);
            if rows.is_empty() {
                continue;
            }
            let out = f.out.as_mut().expect("open");
            if f.rows == 0 && self.opts.ctx.format == RowFormat::Csv {
                let header = csv_header(f.entity).as_bytes();
                out.write_all(header).map_err(io_err("write", &f.tmp))?;
                f.bytes += header.len() as u64;
            }
            out.write_all(&rows.data).map_err(io_err("write", &f.tmp))?;
            f.rows += rows.len() as u64;
            f.bytes += rows.data.len() as u64;
        }
        chunk.seqs.push(batch.seq);
        chunk.written_to = batch.end;
        if batch.end == chunk.range.end {
            self.complete(chunk, batch.end)
        } else {
            self.open = Some(chunk);
            Ok(())
        }
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
        if let Some(chunk) = self.open.take() {
            if chunk.seqs.is_empty() {
                self.open = Some(chunk); // removed by Drop
            } else {
                let last = chunk.written_to;
                self.complete(chunk, last)?;
            }
        }
        durable.append(&mut self.durable);
        Ok(())
    }
}

impl Drop for FileSink {
    /// A chunk still open here was abandoned (the run failed): remove its temporary files.
    fn drop(&mut self) {
        if let Some(chunk) = self.open.take() {
            for f in chunk.files {
                drop(f.out);
                let _ = fs::remove_file(&f.tmp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{BatchCounts, EntitySet, RowBuf};

    fn batch(seq: u64, start: u64, end: u64) -> DecodedBatch {
        let mut rows: [RowBuf; Entity::COUNT] = Default::default();
        for b in start..=end {
            let buf = &mut rows[Entity::Blocks as usize];
            buf.data
                .extend_from_slice(format!("{{\"number\":{b}}}\n").as_bytes());
            buf.finish_row(b);
        }
        DecodedBatch {
            seq,
            start,
            end,
            format: RowFormat::Json,
            blocks: Vec::new(),
            rows,
            counts: BatchCounts::default(),
        }
    }

    fn opts(dir: &Path, range: BlockRange) -> FileSinkOptions {
        FileSinkOptions {
            dir: dir.to_path_buf(),
            ctx: OpenContext {
                entities: EntitySet::of(&[Entity::Blocks, Entity::Logs]),
                format: RowFormat::Json,
                chunk_size: 10,
                range,
                job: range,
                overwrite: false,
                checkpointed: false,
                keep_overlapping: false,
            },
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn chunks_become_visible_only_when_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let range = BlockRange { start: 5, end: 24 };
        let mut s = FileSink::open(opts(tmp.path(), range)).unwrap();
        let mut durable = Vec::new();
        s.write(batch(0, 5, 7)).unwrap();
        s.poll(Default::default(), &mut durable).unwrap();
        assert!(durable.is_empty());
        assert_eq!(
            listing(&tmp.path().join("blocks")),
            vec![".0000000005-0000000009.jsonl.tmp"]
        );
        s.write(batch(1, 8, 9)).unwrap();
        s.poll(Default::default(), &mut durable).unwrap();
        assert_eq!(durable, vec![0, 1]);
        assert_eq!(
            listing(&tmp.path().join("blocks")),
            vec!["0000000005-0000000009.jsonl"]
        );
        // logs had no rows: an empty file all the same
        let logs = tmp.path().join("logs/0000000005-0000000009.jsonl");
        assert_eq!(fs::read(&logs).unwrap().len(), 0);
        let text =
            fs::read_to_string(tmp.path().join("blocks/0000000005-0000000009.jsonl")).unwrap();
        let numbers: Vec<u64> = text
            .lines()
            .map(|l| {
                l.trim_start_matches("{\"number\":")
                    .trim_end_matches('}')
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(numbers, (5..=9).collect::<Vec<_>>());
        // a partial chunk at finish is named after what it holds
        s.write(batch(2, 10, 13)).unwrap();
        s.finish(&mut durable).unwrap();
        assert_eq!(durable, vec![0, 1, 2]);
        assert_eq!(
            listing(&tmp.path().join("blocks")),
            vec!["0000000005-0000000009.jsonl", "0000000010-0000000013.jsonl"]
        );
        drop(s);
        // the range overlaps existing files now
        let e = FileSink::open(opts(tmp.path(), range))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("already exists") && e.contains("--overwrite"),
            "{e}"
        );
        // a range after them is fine
        assert!(FileSink::open(opts(tmp.path(), BlockRange { start: 14, end: 24 })).is_ok());
        // --overwrite: the partial 10-13 file goes once 10-19 is written anew
        let mut o = opts(tmp.path(), BlockRange { start: 10, end: 24 });
        o.ctx.overwrite = true;
        let mut s = FileSink::open(o).unwrap();
        s.write(batch(0, 10, 19)).unwrap();
        s.write(batch(1, 20, 24)).unwrap();
        s.finish(&mut durable).unwrap();
        assert_eq!(
            listing(&tmp.path().join("blocks")),
            vec![
                "0000000005-0000000009.jsonl",
                "0000000010-0000000019.jsonl",
                "0000000020-0000000024.jsonl"
            ]
        );
    }

    #[test]
    fn a_file_reaching_outside_the_range_is_never_replaced_in_part() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = FileSink::open(opts(tmp.path(), BlockRange { start: 0, end: 9 })).unwrap();
        s.write(batch(0, 0, 9)).unwrap();
        drop(s);
        // 5..=14 overlaps 0..=9: rewriting 5..=9 would leave them in two files.
        for (overwrite, checkpointed) in [(true, false), (false, true), (false, false)] {
            let mut o = opts(tmp.path(), BlockRange { start: 5, end: 14 });
            (o.ctx.overwrite, o.ctx.checkpointed) = (overwrite, checkpointed);
            let e = FileSink::open(o).err().unwrap().to_string();
            assert!(e.contains("cannot be replaced in part"), "{e}");
        }
        // A stream's later round leaves earlier rounds' files alone.
        let mut o = opts(tmp.path(), BlockRange { start: 5, end: 14 });
        (o.ctx.overwrite, o.ctx.keep_overlapping) = (true, true);
        assert!(FileSink::open(o).is_ok());
    }

    /// Blocks per file name, over every `.jsonl` file of `blocks/` (each block once).
    fn blocks_on_disk(dir: &Path) -> Vec<u64> {
        let mut v: Vec<u64> = listing(&dir.join("blocks"))
            .iter()
            .filter_map(|n| parse_name(n, "jsonl"))
            .flat_map(|r| r.start..=r.end)
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn a_resume_with_another_chunk_size_never_holds_a_block_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let whole = BlockRange { start: 0, end: 99 };
        let mut durable = Vec::new();
        // Killed after 0..=49 in chunks of 25, the checkpoint still at 24.
        let mut o = opts(tmp.path(), whole);
        (o.ctx.chunk_size, o.ctx.checkpointed) = (25, true);
        let mut s = FileSink::open(o).unwrap();
        s.write(batch(0, 0, 24)).unwrap();
        s.write(batch(1, 25, 49)).unwrap();
        drop(s);
        // Resumed with chunks of 10 from 25, killed with the checkpoint at 39.
        let mut o = opts(tmp.path(), BlockRange { start: 25, end: 99 });
        (o.ctx.job, o.ctx.checkpointed) = (whole, true);
        let mut s = FileSink::open(o).unwrap();
        assert_eq!(blocks_on_disk(tmp.path()), (0..=24).collect::<Vec<_>>());
        s.write(batch(0, 25, 29)).unwrap();
        s.write(batch(1, 30, 39)).unwrap();
        s.poll(Default::default(), &mut durable).unwrap();
        drop(s);
        assert_eq!(blocks_on_disk(tmp.path()), (0..=39).collect::<Vec<_>>());
        // The same command again, from 40: no file in the way, every block once.
        let mut o = opts(tmp.path(), BlockRange { start: 40, end: 99 });
        (o.ctx.job, o.ctx.checkpointed) = (whole, true);
        let mut s = FileSink::open(o).unwrap();
        for (i, a) in (40..100).step_by(10).enumerate() {
            s.write(batch(i as u64, a, a + 9)).unwrap();
        }
        s.finish(&mut durable).unwrap();
        assert_eq!(blocks_on_disk(tmp.path()), (0..=99).collect::<Vec<_>>());
        // One manifest per chunk on disk: 0..=24, 25..=29, 30..=39, then six of ten.
        let manifests = listing(&tmp.path().join(MANIFEST_DIR));
        assert_eq!(manifests.len(), 3 + 6, "{manifests:?}");
        assert_eq!(manifests[0], "0000000000-0000000024.json");
        assert_eq!(manifests[1], "0000000025-0000000029.json");
    }

    #[test]
    fn a_resume_with_other_entities_or_format_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let whole = BlockRange { start: 0, end: 99 };
        let mut o = opts(tmp.path(), whole);
        o.ctx.checkpointed = true;
        let mut s = FileSink::open(o).unwrap();
        s.write(batch(0, 0, 9)).unwrap();
        drop(s);
        let mut o = opts(tmp.path(), BlockRange { start: 10, end: 99 });
        (o.ctx.job, o.ctx.checkpointed) = (whole, true);
        o.ctx.entities = EntitySet::of(&[Entity::Blocks]);
        let e = FileSink::open(o.clone()).err().unwrap().to_string();
        assert!(
            e.contains("already holds blocks 0..=9") && e.contains("entities blocks,logs"),
            "{e}"
        );
        o.ctx.entities = EntitySet::of(&[Entity::Blocks, Entity::Logs]);
        o.ctx.format = RowFormat::Csv;
        let e = FileSink::open(o.clone()).err().unwrap().to_string();
        assert!(e.contains("as jsonl") && e.contains("writes csv"), "{e}");
        o.ctx.format = RowFormat::Json;
        assert!(FileSink::open(o).is_ok());
    }

    #[test]
    fn csv_header_only_above_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = opts(tmp.path(), BlockRange { start: 0, end: 9 });
        o.ctx.format = RowFormat::Csv;
        let mut s = FileSink::open(o).unwrap();
        let mut b = batch(0, 0, 9);
        b.format = RowFormat::Csv;
        s.write(b).unwrap();
        let blocks =
            fs::read_to_string(tmp.path().join("blocks/0000000000-0000000009.csv")).unwrap();
        let header = csv_header(Entity::Blocks);
        assert!(!header.is_empty());
        assert!(blocks.starts_with(header), "{blocks}");
        assert_eq!(blocks.matches(header).count(), 1);
        // no rows: an empty file, without even the header (as ethereum-etl)
        let logs = fs::read(tmp.path().join("logs/0000000000-0000000009.csv")).unwrap();
        assert!(logs.is_empty());
    }

    #[test]
    fn abandoned_chunk_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let mut s = FileSink::open(opts(tmp.path(), BlockRange { start: 0, end: 9 })).unwrap();
            s.write(batch(0, 0, 3)).unwrap();
        }
        assert!(listing(&tmp.path().join("blocks")).is_empty());
        assert!(listing(&tmp.path().join("logs")).is_empty());
    }

    #[test]
    fn out_of_order_batch_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = FileSink::open(opts(tmp.path(), BlockRange { start: 0, end: 9 })).unwrap();
        s.write(batch(0, 0, 3)).unwrap();
        assert!(s.write(batch(1, 5, 6)).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(
            file_name(18_000_000, 18_000_999, RowFormat::Csv),
            "0018000000-0018000999.csv"
        );
        assert_eq!(
            parse_name("0018000000-0018000999.csv", "csv"),
            Some(BlockRange {
                start: 18_000_000,
                end: 18_000_999
            })
        );
        assert_eq!(parse_name(".0018000000-0018000999.csv.tmp", "csv"), None);
        assert_eq!(parse_name("x.csv", "csv"), None);
    }
}
