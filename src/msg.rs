//! Every type that crosses a channel between pipeline stages. Only batches cross, never single
//! rows; what crosses is owned (the decode stage borrows from `RawBatch::body` internally and
//! hands on owned, ready-to-write bytes).

/// A contiguous, inclusive range of blocks fetched with one HTTP POST (one JSON-RPC batch).
/// `seq` increases by one per job in block order, so ordering by `seq` is ordering by block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeJob {
    pub seq: u64,
    /// First block, inclusive.
    pub start: u64,
    /// Last block, inclusive.
    pub end: u64,
    /// How many times this job has already failed (0 on the first try).
    pub attempt: u32,
}

impl RangeJob {
    pub fn block_count(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// An inclusive block range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRange {
    pub start: u64,
    pub end: u64,
}

impl BlockRange {
    /// `start..=end`; `None` if `end < start`.
    pub fn new(start: u64, end: u64) -> Option<BlockRange> {
        (end >= start).then_some(BlockRange { start, end })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl std::fmt::Display for BlockRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..={}", self.start, self.end)
    }
}

/// The aligned chunk of `chunk_size` blocks that holds `block`, clipped to `range`.
pub fn chunk_of(block: u64, chunk_size: u64, range: BlockRange) -> BlockRange {
    let aligned = block - block % chunk_size;
    let last = aligned.saturating_add(chunk_size - 1);
    BlockRange {
        start: aligned.max(range.start),
        end: last.min(range.end),
    }
}

/// The raw JSON-RPC batch response for one job, exactly as the node sent it.
///
/// The request that produced it is described by [`crate::rpc::batch`]: call ids tell which
/// block and method each response element answers (responses are matched by `id`, never by
/// position).
#[derive(Debug)]
pub struct RawBatch {
    pub job: RangeJob,
    /// Index of the endpoint that answered (into the configured endpoint list).
    pub endpoint: usize,
    /// Whether `eth_getBlockReceipts` calls were part of the request.
    pub with_receipts: bool,
    /// The HTTP response body (a JSON array of JSON-RPC response objects).
    pub body: Vec<u8>,
    /// At most how deep `body` nests, if the I/O thread measured it while reading the answers
    /// (then the decoder checks this number against its limit instead of scanning the body
    /// again); `None`: the decoder measures it.
    pub depth: Option<usize>,
}

/// The entities ethetl can export. The discriminant indexes [`DecodedBatch::rows`].
///
/// [`Entity::Reorgs`] is not decoded from node data: `ethetl stream` emits one `reorg` row per
/// orphaned block (see [`crate::stream`]). It is therefore not in [`Entity::ALL`] (the
/// entities a user can ask `--entities` for), only in [`Entity::EVERY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Blocks = 0,
    Transactions = 1,
    Logs = 2,
    TokenTransfers = 3,
    Receipts = 4,
    Reorgs = 5,
}

impl Entity {
    /// Slots in per-entity arrays (every variant, [`Entity::Reorgs`] included).
    pub const COUNT: usize = 6;
    /// The entities decoded from node data (what `--entities` chooses from).
    pub const ALL: [Entity; 5] = [
        Entity::Blocks,
        Entity::Transactions,
        Entity::Logs,
        Entity::TokenTransfers,
        Entity::Receipts,
    ];
    /// Every variant, in discriminant order: [`Entity::ALL`] then [`Entity::Reorgs`].
    pub const EVERY: [Entity; Entity::COUNT] = [
        Entity::Blocks,
        Entity::Transactions,
        Entity::Logs,
        Entity::TokenTransfers,
        Entity::Receipts,
        Entity::Reorgs,
    ];

    /// Plural name used on the command line, in directory names and in Kafka topics
    /// (`blocks`, `transactions`, `logs`, `token_transfers`, `receipts`, `reorgs`).
    pub fn name(self) -> &'static str {
        match self {
            Entity::Blocks => "blocks",
            Entity::Transactions => "transactions",
            Entity::Logs => "logs",
            Entity::TokenTransfers => "token_transfers",
            Entity::Receipts => "receipts",
            Entity::Reorgs => "reorgs",
        }
    }

    /// Singular item type used in stream items (`"type": "block"`).
    pub fn item_type(self) -> &'static str {
        match self {
            Entity::Blocks => "block",
            Entity::Transactions => "transaction",
            Entity::Logs => "log",
            Entity::TokenTransfers => "token_transfer",
            Entity::Receipts => "receipt",
            Entity::Reorgs => "reorg",
        }
    }

    /// The decoded entity (one of [`Entity::ALL`]) called `s`; `reorgs` is not one.
    pub fn from_name(s: &str) -> Option<Entity> {
        Entity::ALL.iter().copied().find(|e| e.name() == s)
    }
}

/// How rows are serialized by the decode stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFormat {
    /// One ethereum-etl stream item per row (`type`, fields, `item_id`, `item_timestamp`),
    /// compact JSON, each row terminated by `\n`. Used for JSONL files, stdout and Kafka.
    Json,
    /// ethereum-etl export columns (plus appended ones), each row terminated by `\r\n`
    /// (Python's csv module, which ethereum-etl uses, ends lines with CRLF).
    Csv,
}

/// Where one row ends inside [`RowBuf::data`], and which block it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowMeta {
    /// Exclusive end offset of this row (terminator included) in `data`.
    pub end: u32,
    pub block: u64,
}

/// Serialized rows of one entity for one batch, back to back, in (block, index) order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowBuf {
    pub data: Vec<u8>,
    pub rows: Vec<RowMeta>,
}

/// The bytes go back to [`crate::bufpool::ROWS`], for the decode stage to write the next
/// batch's rows into.
impl Drop for RowBuf {
    fn drop(&mut self) {
        crate::bufpool::ROWS.put(std::mem::take(&mut self.data));
    }
}

impl RowBuf {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Marks the bytes appended to `data` since the previous row as one row of `block`.
    pub fn finish_row(&mut self, block: u64) {
        self.rows.push(RowMeta {
            end: self.data.len() as u32,
            block,
        });
    }

    /// Iterates `(block, row bytes including terminator)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let mut start = 0usize;
        self.rows.iter().map(move |m| {
            let row = &self.data[start..m.end as usize];
            start = m.end as usize;
            (m.block, row)
        })
    }
}

/// What the sink and the checkpoint need to know about each block of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockMeta {
    pub number: u64,
    /// `0x`-prefixed lowercase hex, as the node sent it.
    pub hash: String,
    pub parent_hash: String,
    pub timestamp: u64,
    pub transaction_count: u32,
}

/// Counters for one batch, merged by the sink thread into the run totals (never per row).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub blocks: u64,
    pub transactions: u64,
    pub logs: u64,
    pub token_transfers: u64,
    pub receipts: u64,
    /// Logs with the Transfer/TransferSingle/TransferBatch topic that could not be decoded
    /// (wrong topic/data count, short or non-hex data): skipped, never a wrong row.
    pub malformed_transfers: u64,
    /// Bytes of JSON-RPC response consumed.
    pub rpc_bytes: u64,
}

impl BatchCounts {
    pub fn add(&mut self, o: &BatchCounts) {
        self.blocks += o.blocks;
        self.transactions += o.transactions;
        self.logs += o.logs;
        self.token_transfers += o.token_transfers;
        self.receipts += o.receipts;
        self.malformed_transfers += o.malformed_transfers;
        self.rpc_bytes += o.rpc_bytes;
    }
}

/// One job's worth of decoded, serialized rows, ready for the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedBatch {
    pub seq: u64,
    /// First block, inclusive.
    pub start: u64,
    /// Last block, inclusive.
    pub end: u64,
    pub format: RowFormat,
    /// One entry per block, in block order (`blocks[i].number == start + i`).
    pub blocks: Vec<BlockMeta>,
    /// Rows per entity, indexed by `Entity as usize`; entities not requested stay empty.
    pub rows: [RowBuf; Entity::COUNT],
    pub counts: BatchCounts,
}

impl DecodedBatch {
    pub fn rows(&self, entity: Entity) -> &RowBuf {
        &self.rows[entity as usize]
    }

    /// The block hash of `number`, which must lie inside this batch.
    pub fn block_hash(&self, number: u64) -> Option<&str> {
        number
            .checked_sub(self.start)
            .and_then(|i| self.blocks.get(i as usize))
            .map(|b| b.hash.as_str())
    }
}

/// A set of entities (which ones the user asked for).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntitySet(pub [bool; Entity::COUNT]);

impl EntitySet {
    pub fn of(entities: &[Entity]) -> EntitySet {
        let mut s = EntitySet::default();
        for e in entities {
            s.0[*e as usize] = true;
        }
        s
    }

    pub fn contains(&self, e: Entity) -> bool {
        self.0[e as usize]
    }

    /// The entities in the set, in discriminant order ([`Entity::Reorgs`] last).
    pub fn iter(&self) -> impl Iterator<Item = Entity> + '_ {
        Entity::EVERY.into_iter().filter(|e| self.contains(*e))
    }
}
