//! The hashes of the blocks a stream exported: enough to check that each new block extends the
//! chain we wrote (its `parentHash` is the hash we remember for the block before) and, when it
//! does not, to walk back to the fork point. Every block written but not yet durable is kept,
//! plus the last `window + 1` durable ones (a reorg orphaning `window` blocks still finds its
//! fork point among them); they are stored with the checkpoint (lines after the
//! block number, newest first) so a restarted stream still detects a reorg of blocks an earlier
//! run exported.

use std::collections::BTreeMap;

/// First line after the block number in a checkpoint file written by `ethetl stream`.
pub const HEADER_LINE: &str = "# ethetl stream: hashes of the last exported blocks, newest first";

/// A line of the checkpoint file that is not `<block> <0x hash>`.
#[derive(Debug, thiserror::Error)]
#[error("line {line} after the block number is not `<block> <0x hash>` (found {found:?})")]
pub struct BadHashLine {
    /// 1-based line number in the file.
    pub line: usize,
    pub found: String,
}

/// Remembered block hashes (see the module docs).
#[derive(Clone, Debug)]
pub struct ChainMemory {
    window: u64,
    hashes: BTreeMap<u64, String>,
    /// Whether blocks were forgotten (the window moved on), so the memory does not reach back
    /// to the first block this stream exported.
    trimmed: bool,
}

impl ChainMemory {
    /// An empty memory for reorgs of up to `window` (≥ 1) blocks: it keeps `window + 1`
    /// durable blocks.
    pub fn new(window: u64) -> ChainMemory {
        ChainMemory {
            window: window.max(1),
            hashes: BTreeMap::new(),
            trimmed: false,
        }
    }

    /// The memory stored in a checkpoint file at `checkpoint`: `extra` are the lines after the
    /// block number. Lines for blocks after the checkpoint are ignored; comments (`#`) and
    /// blank lines are skipped.
    pub fn parse(
        window: u64,
        checkpoint: u64,
        extra: &[String],
    ) -> Result<ChainMemory, BadHashLine> {
        let mut m = ChainMemory::new(window);
        for (i, line) in extra.iter().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let bad = || BadHashLine {
                line: i + 2,
                found: t.chars().take(90).collect(),
            };
            let (n, h) = t.split_once(' ').ok_or_else(bad)?;
            let n: u64 = n.parse().map_err(|_| bad())?;
            let h = h.trim();
            if !is_hash(h) {
                return Err(bad());
            }
            if n <= checkpoint {
                m.hashes.insert(n, h.to_ascii_lowercase());
            }
        }
        // A full memory means earlier blocks were forgotten.
        m.trimmed = m.hashes.len() as u64 > m.window;
        m.trim(checkpoint);
        Ok(m)
    }

    pub fn window(&self) -> u64 {
        self.window
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether blocks older than the first remembered one were exported and forgotten.
    pub fn trimmed(&self) -> bool {
        self.trimmed
    }

    pub fn get(&self, n: u64) -> Option<&str> {
        self.hashes.get(&n).map(String::as_str)
    }

    /// The highest remembered block and its hash.
    pub fn last(&self) -> Option<(u64, &str)> {
        self.hashes
            .iter()
            .next_back()
            .map(|(n, h)| (*n, h.as_str()))
    }

    /// The lowest remembered block.
    pub fn first(&self) -> Option<u64> {
        self.hashes.keys().next().copied()
    }

    /// Remembers block `n` (written, maybe not durable yet).
    pub fn insert(&mut self, n: u64, hash: &str) {
        self.hashes.insert(n, hash.to_ascii_lowercase());
    }

    /// Forgets durable blocks more than `window` below `durable` (the checkpoint block).
    pub fn trim(&mut self, durable: u64) {
        let keep_from = durable.saturating_sub(self.window);
        if self.hashes.keys().next().is_some_and(|f| *f < keep_from) {
            self.hashes = self.hashes.split_off(&keep_from);
            self.trimmed = true;
        }
    }

    /// Forgets every block after `n` (they were orphaned).
    pub fn truncate_after(&mut self, n: u64) {
        if let Some(next) = n.checked_add(1) {
            self.hashes.split_off(&next);
        }
    }

    /// The lines to store after checkpoint block `durable`: [`HEADER_LINE`] then
    /// `<block> <hash>` for the last `window + 1` blocks up to `durable`, newest first.
    pub fn lines_up_to(&self, durable: u64) -> Vec<String> {
        let mut out = vec![HEADER_LINE.to_string()];
        out.extend(
            self.hashes
                .range(..=durable)
                .rev()
                .take(self.window.saturating_add(1) as usize)
                .map(|(n, h)| format!("{n} {h}")),
        );
        out
    }
}

/// `0x` and 64 hex digits.
pub fn is_hash(s: &str) -> bool {
    s.len() == 66 && s.starts_with("0x") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u64) -> String {
        format!("0x{n:064x}")
    }

    #[test]
    fn round_trip_through_checkpoint_lines() {
        let mut m = ChainMemory::new(2);
        for n in 10..=15 {
            m.insert(n, &h(n));
        }
        // 13 durable: keep 11..=13 (a 2-block reorg of 12, 13 forks at 11) and the written
        // 14, 15.
        m.trim(13);
        assert_eq!(m.first(), Some(11));
        assert!(m.trimmed());
        let lines = m.lines_up_to(13);
        assert_eq!(lines[0], HEADER_LINE);
        assert_eq!(lines[1], format!("13 {}", h(13)));
        assert_eq!(lines.len(), 4);
        let back = ChainMemory::parse(2, 13, &lines).unwrap();
        assert_eq!(back.get(11), Some(h(11).as_str()));
        assert_eq!(back.last().unwrap().0, 13);
        assert!(back.trimmed());
        // fewer than a full memory: nothing was forgotten
        let short = ChainMemory::parse(5, 13, &lines).unwrap();
        assert!(!short.trimmed());
        // lines above the checkpoint are ignored
        let lower = ChainMemory::parse(2, 12, &lines).unwrap();
        assert_eq!(lower.last().unwrap().0, 12);
    }

    #[test]
    fn truncate_and_bad_lines() {
        let mut m = ChainMemory::new(10);
        for n in 0..5 {
            m.insert(n, &h(n));
        }
        m.truncate_after(2);
        assert_eq!(m.last().unwrap().0, 2);
        m.truncate_after(u64::MAX);
        assert_eq!(m.len(), 3);
        let e = ChainMemory::parse(10, 5, &["5 0x12".to_string()]).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(ChainMemory::parse(10, 5, &["x ".to_string() + &h(1)]).is_err());
        assert!(ChainMemory::parse(10, 5, &["".into(), "# c".into()])
            .unwrap()
            .is_empty());
        assert!(is_hash(&h(7)) && !is_hash("0x") && !is_hash(&h(7)[1..]));
    }
}
