//! One writer per output: two processes writing the same directory (or moving the same
//! checkpoint) would interleave half lines under final names. A [`LockFile`] is an exclusive
//! `flock` on a small file that also holds the owner's pid, so the second process is refused
//! at once with a message that names the first. The kernel drops the lock when the owner's
//! file is closed, however the process ends (kill -9 included): a stale lock file on disk is
//! never in the way.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{what} is in use by another ethetl process ({holder}; lock file {path})")]
    Held {
        what: String,
        path: PathBuf,
        /// `pid N`, or why the pid is not known.
        holder: String,
    },
    #[error("cannot lock {what} (lock file {path})")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LockError {
    /// Whether another process holds the lock (rather than the lock file failing).
    pub fn is_held(&self) -> bool {
        matches!(self, LockError::Held { .. })
    }
}

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct LockFile {
    _file: File,
    path: PathBuf,
}

impl LockFile {
    /// Takes the lock on `path` (created if missing) without waiting, and writes this process's
    /// pid into it. `what` names the locked thing in messages (`output directory out`).
    pub fn acquire(path: &Path, what: &str) -> Result<LockFile, LockError> {
        let io = |source| LockError::Io {
            what: what.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = match file.read_to_string(&mut text) {
                    Ok(_) => match text.trim().parse::<u32>() {
                        Ok(pid) => format!("pid {pid}"),
                        Err(_) => "pid not recorded yet".to_string(),
                    },
                    Err(_) => "pid unreadable".to_string(),
                };
                return Err(LockError::Held {
                    what: what.to_string(),
                    path: path.to_path_buf(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(LockFile {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file that guards the checkpoint at `checkpoint`: `.<name>.lock` beside it.
pub fn checkpoint_lock_path(checkpoint: &Path) -> PathBuf {
    let name = checkpoint
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    checkpoint.with_file_name(format!(".{name}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".ethetl.lock");
        let first = LockFile::acquire(&p, "output directory out").unwrap();
        let e = LockFile::acquire(&p, "output directory out").unwrap_err();
        assert!(e.is_held());
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id()))
                && msg.contains("output directory out")
                && msg.contains(".ethetl.lock"),
            "{msg}"
        );
        drop(first);
        // Released with the file: taken again at once, the pid rewritten.
        let again = LockFile::acquire(&p, "output directory out").unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn lock_files_sit_beside_the_checkpoint() {
        assert_eq!(
            checkpoint_lock_path(Path::new("/data/last_synced_block.txt")),
            PathBuf::from("/data/.last_synced_block.txt.lock")
        );
        assert_eq!(
            checkpoint_lock_path(Path::new("cp")),
            PathBuf::from(".cp.lock")
        );
    }
}
