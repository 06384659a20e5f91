//! Where a run may resume: the [`Watermark`] turns durable `seq`s reported in any order into
//! the contiguous acknowledged prefix, and [`write_checkpoint`] stores the last block of that
//! prefix atomically (temporary file in the same directory, fsync, rename, fsync directory), so
//! a crash leaves either the old or the new checkpoint, never a torn one. A crash can repeat
//! work, never skip it.
//!
//! File format: the block number in decimal on the first line (like ethereum-etl's
//! `last_synced_block.txt`); anything after the first line is ignored by [`read_checkpoint`].
//! `ethetl stream` stores the hashes of the last exported blocks there
//! ([`write_checkpoint_with`], [`read_checkpoint_with`]), so the number and the hashes it
//! needs to detect a reorg are always replaced together.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Tracks which `seq`s are durable and yields the contiguous prefix `0..next`.
#[derive(Clone, Debug, Default)]
pub struct Watermark {
    /// The first `seq` that is not yet durable.
    next: u64,
    /// Durable `seq`s above `next` (waiting for the gap below them to close).
    ahead: BTreeSet<u64>,
}

impl Watermark {
    /// A watermark whose first expected `seq` is `first`.
    pub fn starting_at(first: u64) -> Watermark {
        Watermark {
            next: first,
            ahead: BTreeSet::new(),
        }
    }

    /// Marks `seq` durable. Repeated or already-covered `seq`s are ignored. Returns whether the
    /// contiguous prefix grew.
    pub fn ack(&mut self, seq: u64) -> bool {
        if seq < self.next {
            return false;
        }
        if seq != self.next {
            self.ahead.insert(seq);
            return false;
        }
        self.next += 1;
        while self.ahead.first() == Some(&self.next) {
            self.ahead.pop_first();
            self.next += 1;
        }
        true
    }

    /// The first `seq` not yet durable: every `seq` below it is.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The last `seq` of the contiguous durable prefix, or `None` while it is empty.
    pub fn last(&self) -> Option<u64> {
        self.next.checked_sub(1)
    }

    /// How many durable `seq`s wait above a gap.
    pub fn ahead_len(&self) -> usize {
        self.ahead.len()
    }
}

/// Why the checkpoint file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint file {path} does not start with a block number (found {found:?})")]
    Parse { path: PathBuf, found: String },
    #[error("cannot {op} checkpoint {path}")]
    Write {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads a checkpoint: `Ok(None)` if the file does not exist.
pub fn read_checkpoint(path: &Path) -> Result<Option<u64>, CheckpointError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let first = text.lines().next().unwrap_or("").trim();
    first
        .parse::<u64>()
        .map(Some)
        .map_err(|_| CheckpointError::Parse {
            path: path.to_path_buf(),
            found: first.chars().take(40).collect(),
        })
}

/// `path`, or the file it links to when it is a symbolic link (followed up to 8 times): the
/// checkpoint is written, and locked, where it really is, so a link is neither replaced by a
/// plain file nor a way around the lock of the file it names.
pub fn follow_links(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..8 {
        let Ok(target) = fs::read_link(&p) else {
            break;
        };
        p = if target.is_absolute() {
            target
        } else {
            parent_dir(&p).join(target)
        };
    }
    p
}

/// The temporary file `write_checkpoint` uses next to `path`.
fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    path.with_file_name(format!(".{name}.tmp"))
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Fsyncs a directory so a rename inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Atomically replaces the checkpoint at `path` with `block`.
pub fn write_checkpoint(path: &Path, block: u64) -> Result<(), CheckpointError> {
    let tmp = tmp_path(path);
    let err = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Write { op, path, source }
    };
    {
        let mut f = fs::File::create(&tmp).map_err(err("create temporary file for"))?;
        writeln!(f, "{block}").map_err(err("write"))?;
        f.sync_all().map_err(err("fsync"))?;
    }
    fs::rename(&tmp, path).map_err(err("rename temporary file to"))?;
    sync_dir(parent_dir(path)).map_err(err("fsync the directory of"))?;
    Ok(())
}

/// Atomically replaces the checkpoint at `path` with `block` on the first line followed by
/// `extra` (lines without their `\n`; tools that read only the first line are unaffected).
pub fn write_checkpoint_with(
    path: &Path,
    block: u64,
    extra: &[String],
) -> Result<(), CheckpointError> {
    let tmp = tmp_path(path);
    let err = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Write { op, path, source }
    };
    {
        let mut text = format!("{block}\n");
        for line in extra {
            text.push_str(line);
            text.push('\n');
        }
        let mut f = fs::File::create(&tmp).map_err(err("create temporary file for"))?;
        f.write_all(text.as_bytes()).map_err(err("write"))?;
        f.sync_all().map_err(err("fsync"))?;
    }
    fs::rename(&tmp, path).map_err(err("rename temporary file to"))?;
    sync_dir(parent_dir(path)).map_err(err("fsync the directory of"))?;
    Ok(())
}

/// Reads a checkpoint and the lines after its first (`Ok(None)` if the file does not exist).
pub fn read_checkpoint_with(path: &Path) -> Result<Option<(u64, Vec<String>)>, CheckpointError> {
    let Some(block) = read_checkpoint(path)? else {
        return Ok(None);
    };
    let text = fs::read_to_string(path).map_err(|source| CheckpointError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let extra = text.lines().skip(1).map(str::to_string).collect();
    Ok(Some((block, extra)))
}

/// Checks at startup, before any work, that the checkpoint can be written: the directory
/// exists and a file can be created in it. Leaves no trace.
pub fn check_writable(path: &Path) -> Result<(), CheckpointError> {
    let tmp = tmp_path(path);
    let err = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Write { op, path, source }
    };
    if path.is_dir() {
        return Err(CheckpointError::Write {
            op: "write",
            path: path.to_path_buf(),
            source: std::io::Error::other("it is a directory"),
        });
    }
    fs::File::create(&tmp).map_err(err("create a file next to"))?;
    fs::remove_file(&tmp).map_err(err("remove the probe file next to"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Model: the prefix is the largest k such that 0..k were all acknowledged.
    fn model_next(acked: &BTreeSet<u64>) -> u64 {
        let mut k = 0;
        while acked.contains(&k) {
            k += 1;
        }
        k
    }

    proptest! {
        #[test]
        fn watermark_matches_model(order in Just((0u64..40).collect::<Vec<_>>()).prop_shuffle(),
                                   take in 0usize..=40,
                                   dups in proptest::collection::vec(0u64..45, 0..10)) {
            let mut w = Watermark::default();
            let mut acked = BTreeSet::new();
            let mut feed: Vec<u64> = order[..take].to_vec();
            feed.extend(dups);
            for s in feed {
                let before = w.next();
                let grew = w.ack(s);
                acked.insert(s);
                prop_assert_eq!(w.next(), model_next(&acked));
                prop_assert_eq!(grew, w.next() > before);
                prop_assert_eq!(w.last(), w.next().checked_sub(1));
            }
        }
    }

    #[test]
    fn starting_offset() {
        let mut w = Watermark::starting_at(5);
        assert!(!w.ack(3));
        assert!(!w.ack(6));
        assert_eq!(w.ahead_len(), 1);
        assert!(w.ack(5));
        assert_eq!(w.next(), 7);
        assert_eq!(w.last(), Some(6));
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last_synced_block.txt");
        assert_eq!(read_checkpoint(&p).unwrap(), None);
        check_writable(&p).unwrap();
        write_checkpoint(&p, 18_000_099).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "18000099\n");
        write_checkpoint(&p, 18_000_199).unwrap();
        assert_eq!(read_checkpoint(&p).unwrap(), Some(18_000_199));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn extra_lines_round_trip_and_keep_the_first_line_plain() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cp");
        let extra = vec!["# note".to_string(), "7 0xab".to_string()];
        write_checkpoint_with(&p, 7, &extra).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "7\n# note\n7 0xab\n");
        assert_eq!(read_checkpoint(&p).unwrap(), Some(7));
        assert_eq!(read_checkpoint_with(&p).unwrap(), Some((7, extra)));
        write_checkpoint(&p, 8).unwrap();
        assert_eq!(read_checkpoint_with(&p).unwrap(), Some((8, Vec::new())));
        assert_eq!(
            read_checkpoint_with(&dir.path().join("none")).unwrap(),
            None
        );
    }

    #[test]
    fn links_are_followed_to_the_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("sub/cp.txt");
        fs::create_dir_all(real.parent().unwrap()).unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("sub/cp.txt", &link).unwrap();
        let p = follow_links(&link);
        assert_eq!(p, dir.path().join("sub/cp.txt"));
        write_checkpoint(&p, 9).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(read_checkpoint(&link).unwrap(), Some(9));
        assert_eq!(follow_links(&real), real);
    }

    #[test]
    fn bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cp");
        fs::write(&p, "hello\n").unwrap();
        assert!(matches!(
            read_checkpoint(&p),
            Err(CheckpointError::Parse { .. })
        ));
        let missing = dir.path().join("no/such/dir/cp");
        assert!(check_writable(&missing).is_err());
        assert!(check_writable(dir.path()).is_err());
    }
}
