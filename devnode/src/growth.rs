//! A growing chain for stream-mode clients: the node starts with only the first blocks visible
//! and reveals one more block per tick (a timer or [`super::DevNode::advance`]); `latest` and
//! `eth_blockNumber` follow the revealed head and blocks above it are unknown.
//!
//! Reorgs: every `reorg_every` reveals, instead of a plain reveal, the last `reorg_depth`
//! visible blocks are replaced by an alternative fork that is one block longer (the new head is
//! the old head + 1). The fork's blocks are generated deterministically from the seed and the
//! fork number ([`ChainGenerator::fork_block`]): new hashes, new transactions, receipts and
//! logs, a consistent `parentHash` chain whose first block's parent is the common ancestor.
//! Blocks revealed after a reorg continue the newest fork. Orphaned blocks remain reachable by
//! hash (as geth keeps side-chain blocks) but not by number, and their transactions are no
//! longer found. Every reorg is recorded as a [`ReorgEvent`].

use super::generate::{ChainGenerator, H256};
use super::handler::NodeState;
use super::store::BlockEntry;
use std::time::Duration;

/// How a chain grows (see [`super::NodeConfig::growth`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Growth {
    /// Reveal one block every `block_time` (at least 1 ms); `None`: blocks are revealed only
    /// by [`super::DevNode::advance`].
    pub block_time: Option<Duration>,
    /// Blocks visible at start (at least 1; more than stored: all visible).
    pub initial_blocks: u64,
    /// Every this many reveals, a reorg (needs a generated chain and no fixtures). `None` or 0:
    /// never.
    pub reorg_every: Option<u64>,
    /// How many visible blocks a reorg replaces (at least 1; at most all visible blocks;
    /// default 2).
    pub reorg_depth: u64,
}

impl Default for Growth {
    fn default() -> Self {
        Growth {
            block_time: None,
            initial_blocks: 1,
            reorg_every: None,
            reorg_depth: 2,
        }
    }
}

/// One block replaced by a reorg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplacedBlock {
    pub number: u64,
    /// The hash clients may already have seen (now an orphan).
    pub old_hash: H256,
    /// The hash of the block at that height on the new fork.
    pub new_hash: H256,
}

/// A reorg the node performed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReorgEvent {
    /// Number of the fork the chain switched to (1 for the first reorg, …).
    pub fork: u64,
    /// Hash of the last block both forks share (the first new block's `parentHash`).
    pub common_ancestor_hash: H256,
    /// The orphaned blocks and their replacements, ascending.
    pub replaced: Vec<ReplacedBlock>,
    /// The new head (one above the last replaced block) and its hash.
    pub new_head: u64,
    pub new_head_hash: H256,
    /// How many blocks had been revealed when it happened (a multiple of `reorg_every`).
    pub reveal: u64,
    /// When it happened, measured from the node's start.
    pub at: Duration,
}

/// Reveals blocks and performs reorgs on a node's store. One per node, behind a mutex.
pub(crate) struct Grower {
    gen: Option<ChainGenerator>,
    growth: Growth,
    /// The fork new blocks belong to (0: the main chain).
    fork: u64,
    revealed: u64,
}

impl Grower {
    pub fn new(gen: Option<ChainGenerator>, growth: Growth) -> Self {
        Grower {
            gen,
            growth,
            fork: 0,
            revealed: 0,
        }
    }

    fn reorg_due(&self) -> bool {
        match (self.gen.is_some(), self.growth.reorg_every) {
            (true, Some(every)) if every > 0 && self.growth.reorg_depth > 0 => {
                self.revealed.is_multiple_of(every)
            }
            _ => false,
        }
    }

    /// Reveals the next block (or performs a reorg when one is due). Returns the new head, or
    /// `None` when every stored block is already visible.
    pub fn advance(&mut self, st: &NodeState) -> Option<u64> {
        let (head, next, lowest, head_hash) = {
            let s = st.read();
            let head = s.visible?;
            let next = *s.blocks.range(head.checked_add(1)?..).next()?.0;
            let lowest = *s.blocks.keys().next()?;
            let head_hash = s.blocks.get(&head).and_then(|e| e.hash);
            (head, next, lowest, head_hash)
        };
        self.revealed += 1;
        if self.reorg_due() {
            if let Some(ev) = self.reorg(st, head, next, lowest) {
                st.reorgs.lock().unwrap_or_else(|e| e.into_inner()).push(ev);
                return Some(next);
            }
        }
        // After a reorg, stored blocks above the head still continue the old fork: regenerate
        // the next one on the current fork.
        let replacement = match (&self.gen, self.fork, head_hash) {
            (Some(gen), fork, Some(parent)) if fork != 0 => {
                Some(BlockEntry::generated(gen.fork_block(fork, next, parent)))
            }
            _ => None,
        };
        let mut s = st.chain.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = replacement {
            s.replace(next, entry);
        }
        s.visible = Some(next);
        Some(next)
    }

    /// Replaces the last `reorg_depth` visible blocks (`..=head`) and reveals `next`, all on a
    /// new fork.
    fn reorg(&mut self, st: &NodeState, head: u64, next: u64, lowest: u64) -> Option<ReorgEvent> {
        let gen = self.gen.as_ref()?;
        let first = head
            .saturating_sub(self.growth.reorg_depth.saturating_sub(1))
            .max(lowest);
        let (ancestor, old) = {
            let s = st.read();
            let ancestor = s.blocks.get(&first)?.parent_hash?;
            let old: Vec<(u64, H256)> = s
                .blocks
                .range(first..=head)
                .map(|(n, e)| Some((*n, e.hash?)))
                .collect::<Option<_>>()?;
            (ancestor, old)
        };
        let fork = self.fork + 1;
        let mut parent = ancestor;
        let mut blocks = Vec::new();
        for (n, _) in old.iter().copied().chain(std::iter::once((next, [0; 32]))) {
            let b = gen.fork_block(fork, n, parent);
            parent = b.hash;
            blocks.push(b);
        }
        self.fork = fork;
        let replaced = old
            .iter()
            .zip(&blocks)
            .map(|((number, old_hash), b)| ReplacedBlock {
                number: *number,
                old_hash: *old_hash,
                new_hash: b.hash,
            })
            .collect();
        let new_head_hash = parent;
        let mut s = st.chain.write().unwrap_or_else(|e| e.into_inner());
        for b in blocks {
            s.replace(b.number, BlockEntry::generated(b));
        }
        s.visible = Some(next);
        drop(s);
        Some(ReorgEvent {
            fork,
            common_ancestor_hash: ancestor,
            replaced,
            new_head: next,
            new_head_hash,
            reveal: self.revealed,
            at: st.started.elapsed(),
        })
    }
}
