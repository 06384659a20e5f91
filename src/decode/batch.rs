//! The decode driver: one sonic-rs pass over the body, answers matched to calls by id,
//! per-block validation, then every requested entity's rows written block by block (so each
//! [`RowBuf`] is in (block, index) order).

use super::hex;
use super::model::{Answer, Block, Body, Envelope, Expect, Id, Log, Receipt, ReceiptsDoc};
use super::receipt::BlockCtx;
use super::token_transfer::{self, Decoded};
use super::write::{FieldError, ValueError, V};
use super::{
    block, log, receipt, transaction, At, DecodeError, DecodeOptions, Item, ReceiptRows, Span,
};
use crate::msg::{
    BatchCounts, BlockMeta, DecodedBatch, Entity, RangeJob, RawBatch, RowBuf, RowFormat,
};
use crate::rpc::batch::{call_for_id, Call};
use serde::de::DeserializeSeed;
use serde::Deserialize;

/// Parses the body, turning a sonic-rs failure into the most precise error available.
fn parse_body<'a>(
    body: &'a [u8],
    depth: Option<usize>,
    span: Span,
    job: Option<(&RangeJob, bool)>,
) -> Result<Body<'a>, DecodeError> {
    match depth {
        Some(d) if d <= crate::json_depth::DECODE_DEPTH => {}
        Some(_) => {
            return Err(DecodeError::TooDeep {
                span,
                len: body.len(),
                source: crate::json_depth::TooDeep {
                    limit: crate::json_depth::DECODE_DEPTH,
                    offset: None,
                },
            })
        }
        None => depth_guard(body, span)?,
    }
    sonic_rs::from_slice::<Body<'a>>(body).map_err(|e| classify(body, span, job, e))
}

/// Refuses bodies nested too deep for the parser (see [`crate::json_depth`]).
fn depth_guard(body: &[u8], span: Span) -> Result<(), DecodeError> {
    crate::json_depth::check(body, crate::json_depth::DECODE_DEPTH).map_err(|source| {
        DecodeError::TooDeep {
            span,
            len: body.len(),
            source,
        }
    })
}

fn classify(
    body: &[u8],
    span: Span,
    job: Option<(&RangeJob, bool)>,
    source: sonic_rs::Error,
) -> DecodeError {
    use sonic_rs::error::Category;
    match source.classify() {
        Category::Syntax | Category::Eof | Category::Io => DecodeError::Json {
            span,
            len: body.len(),
            source,
        },
        _ => locate(body, span, job).unwrap_or(DecodeError::Shape { span, source }),
    }
}

/// Slow path for a shape error: finds the first call whose `result` does not parse, so the
/// error can name its block and method. `None` when no single result is to blame.
fn locate(body: &[u8], span: Span, job: Option<(&RangeJob, bool)>) -> Option<DecodeError> {
    #[derive(Deserialize)]
    struct LazyEnvelope<'a> {
        #[serde(default)]
        id: Id,
        #[serde(borrow, default)]
        result: Option<sonic_rs::LazyValue<'a>>,
    }
    let envs = match sonic_rs::from_slice::<Vec<LazyEnvelope>>(body) {
        Ok(v) => v,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return Some(DecodeError::Json {
                span,
                len: body.len(),
                source: e,
            })
        }
        Err(_) => return None,
    };
    let (job, with_receipts) = job?;
    for e in envs {
        let (Id::Num(id), Some(result)) = (e.id, e.result) else {
            continue;
        };
        let Some(call) = call_for_id(job, id, with_receipts) else {
            continue;
        };
        let mut de = sonic_rs::Deserializer::from_str(result.as_raw_str());
        if let Err(source) = Expect(call).deserialize(&mut de) {
            return Some(DecodeError::ResultShape {
                block: call.block(),
                method: call.method(),
                source,
            });
        }
    }
    None
}

/// Parses the body into borrowed structs and nothing else; counts transactions.
pub(super) fn parse_only(body: &[u8]) -> Result<usize, DecodeError> {
    let parsed = parse_body(body, None, Span(None), None)?;
    let envs = match &parsed {
        Body::Batch(v) => v.as_slice(),
        Body::Single(e) => std::slice::from_ref(&**e),
    };
    Ok(envs
        .iter()
        .map(|e| match &e.result {
            Some(Answer::Block(b)) => b.transactions.len(),
            _ => 0,
        })
        .sum())
}

/// The answer to `call`, or why there is none.
fn answer<'e, 'a>(
    slot: Option<&'e Envelope<'a>>,
    call: Call,
) -> Result<&'e Answer<'a>, DecodeError> {
    let (block, method) = (call.block(), call.method());
    let env = slot.ok_or(DecodeError::MissingAnswer { block, method })?;
    if let Some(err) = &env.error {
        return Err(DecodeError::Rpc {
            block,
            method,
            code: err.code,
            message: err
                .message
                .as_ref()
                .map_or_else(String::new, |m| m.as_str().to_owned()),
        });
    }
    env.result
        .as_ref()
        .ok_or(DecodeError::NullResult { block, method })
}

fn field_err(block: Option<u64>, item: Item) -> impl Fn(FieldError) -> DecodeError {
    move |source| DecodeError::Field {
        at: At { block, item },
        source,
    }
}

/// Reads a `0x` quantity that ethetl itself needs as a number.
fn qty_u64(field: &'static str, s: &str, at: At) -> Result<u64, DecodeError> {
    hex::parse_u64(s).map_err(|e| DecodeError::Field {
        at,
        source: FieldError {
            field,
            value: s.to_owned(),
            source: ValueError::Hex(e),
        },
    })
}

/// Output buffers and counters of one decode call.
struct Out {
    format: RowFormat,
    want: [bool; Entity::COUNT],
    rows: [RowBuf; Entity::COUNT],
    scratch: Vec<u8>,
    counts: BatchCounts,
}

impl Out {
    fn new(opts: &DecodeOptions) -> Out {
        Out {
            format: opts.format,
            want: opts.entities.0,
            rows: Default::default(),
            scratch: Vec::with_capacity(1024),
            counts: BatchCounts::default(),
        }
    }

    fn wants(&self, e: Entity) -> bool {
        self.want[e as usize]
    }

    /// The buffer of `e` and the scratch buffer, borrowed together.
    fn buf(&mut self, e: Entity) -> (&mut RowBuf, &mut Vec<u8>) {
        (&mut self.rows[e as usize], &mut self.scratch)
    }
}

/// Where the receipt family's rows take their block fields from.
enum BlockSource<'x> {
    /// Validated against this block.
    Block(BlockCtx<'x>),
    /// No block: each receipt's and log's own `blockNumber`/`blockHash`.
    Own { timestamp: Option<u64> },
}

impl<'x> BlockSource<'x> {
    fn block(&self) -> Option<u64> {
        match self {
            BlockSource::Block(c) => Some(c.row_block),
            BlockSource::Own { .. } => None,
        }
    }

    fn own(
        number: &'x Option<super::model::JStr<'x>>,
        hash: &'x Option<super::model::JStr<'x>>,
        timestamp: Option<u64>,
    ) -> BlockCtx<'x> {
        BlockCtx {
            number: V::qty(number),
            hash: V::str(hash),
            timestamp,
            row_block: number
                .as_ref()
                .and_then(|n| hex::parse_u64(n.as_str()).ok())
                .unwrap_or(0),
        }
    }

    fn for_receipt(&self, r: &'x Receipt<'x>) -> BlockCtx<'x> {
        match self {
            BlockSource::Block(c) => *c,
            BlockSource::Own { timestamp } => Self::own(&r.block_number, &r.block_hash, *timestamp),
        }
    }

    fn for_log(&self, l: &'x Log<'x>) -> BlockCtx<'x> {
        match self {
            BlockSource::Block(c) => *c,
            BlockSource::Own { timestamp } => Self::own(&l.block_number, &l.block_hash, *timestamp),
        }
    }
}

/// Writes receipt, log and token-transfer rows (whichever are wanted) for `receipts`.
fn write_receipt_family<'x>(
    out: &mut Out,
    receipts: &'x [Receipt<'x>],
    src: &BlockSource<'x>,
) -> Result<(), DecodeError> {
    let format = out.format;
    let want_receipts = out.wants(Entity::Receipts);
    let want_logs = out.wants(Entity::Logs);
    let want_transfers = out.wants(Entity::TokenTransfers);
    let block = src.block();
    out.counts.receipts += receipts.len() as u64;
    for (i, r) in receipts.iter().enumerate() {
        out.counts.logs += r.logs().len() as u64;
        if want_receipts {
            let ctx = src.for_receipt(r);
            let (buf, scratch) = out.buf(Entity::Receipts);
            receipt::write(format, buf, scratch, r, &ctx)
                .map_err(field_err(block, Item::Receipt(i)))?;
        }
        if !(want_logs || want_transfers) {
            continue;
        }
        for (j, l) in r.logs().iter().enumerate() {
            let at = At {
                block,
                item: Item::Log {
                    tx_index: i,
                    log: j,
                },
            };
            let log_index = qty_u64("log_index", l.log_index.as_str(), at)?;
            let tx_hash = l
                .transaction_hash
                .as_ref()
                .map_or(r.transaction_hash.as_str(), |h| h.as_str());
            let ctx = src.for_log(l);
            if want_logs {
                let (buf, scratch) = out.buf(Entity::Logs);
                log::write(format, buf, scratch, l, log_index, tx_hash, &ctx)
                    .map_err(field_err(block, at.item))?;
            }
            if want_transfers {
                let data = l.data.as_ref().map(|d| d.as_str());
                match token_transfer::decode(&l.topics, data) {
                    Decoded::NotTransfer => {}
                    Decoded::Malformed(_) => out.counts.malformed_transfers += 1,
                    Decoded::One(t) => {
                        let (buf, scratch) = out.buf(Entity::TokenTransfers);
                        token_transfer::write(
                            format, buf, scratch, l, &t, log_index, tx_hash, &ctx,
                        )
                        .map_err(field_err(block, at.item))?;
                        out.counts.token_transfers += 1;
                    }
                    Decoded::Batch(b) => {
                        for t in b.iter() {
                            let (buf, scratch) = out.buf(Entity::TokenTransfers);
                            token_transfer::write(
                                format, buf, scratch, l, &t, log_index, tx_hash, &ctx,
                            )
                            .map_err(field_err(block, at.item))?;
                        }
                        out.counts.token_transfers += b.len() as u64;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Checks that `receipts` belong to block `b` (number `n`), transaction by transaction.
fn validate_receipts(n: u64, b: &Block<'_>, receipts: &[Receipt<'_>]) -> Result<(), DecodeError> {
    let bh = b.hash.as_str();
    if receipts.len() != b.transactions.len() {
        return Err(DecodeError::ReceiptCount {
            block: n,
            txs: b.transactions.len(),
            receipts: receipts.len(),
        });
    }
    let hash_err = |item: Item, got: Option<&str>| DecodeError::BlockHash {
        at: At {
            block: Some(n),
            item,
        },
        expected: bh.to_owned(),
        got: got.map(str::to_owned),
    };
    for (i, (tx, r)) in b.transactions.iter().zip(receipts).enumerate() {
        let (th, rh) = (tx.hash.as_str(), r.transaction_hash.as_str());
        if !same_hex(th, rh) {
            return Err(DecodeError::ReceiptOrder {
                block: n,
                tx_index: i,
                tx_hash: th.to_owned(),
                receipt_hash: rh.to_owned(),
            });
        }
        match &r.block_hash {
            Some(h) if same_hex(h.as_str(), bh) => {}
            other => {
                return Err(hash_err(
                    Item::Receipt(i),
                    other.as_ref().map(|h| h.as_str()),
                ))
            }
        }
        for (j, l) in r.logs().iter().enumerate() {
            let item = Item::Log {
                tx_index: i,
                log: j,
            };
            match &l.block_hash {
                Some(h) if same_hex(h.as_str(), bh) => {}
                other => return Err(hash_err(item, other.as_ref().map(|h| h.as_str()))),
            }
            if let Some(lt) = &l.transaction_hash {
                if !same_hex(lt.as_str(), rh) {
                    return Err(DecodeError::LogTransaction {
                        at: At {
                            block: Some(n),
                            item,
                        },
                        expected: rh.to_owned(),
                        got: lt.as_str().to_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}

pub(super) fn decode(raw: &RawBatch, opts: &DecodeOptions) -> Result<DecodedBatch, DecodeError> {
    let job = &raw.job;
    if job.end < job.start {
        return Err(DecodeError::InvalidJob {
            start: job.start,
            end: job.end,
        });
    }
    let span = Span(Some((job.start, job.end)));
    let with_receipts = raw.with_receipts;
    let envs = match parse_body(&raw.body, raw.depth, span, Some((job, with_receipts)))? {
        Body::Batch(v) => v,
        Body::Single(e) => {
            return Err(match e.error {
                Some(err) => DecodeError::BatchRejected {
                    span,
                    code: err.code,
                    message: err.message.map_or_else(String::new, |m| m.0.into_owned()),
                },
                None => DecodeError::NotABatch { span },
            })
        }
    };

    // Match answers to calls by id: slot 2*i is block start+i, slot 2*i+1 its receipts.
    let nblocks = (job.end - job.start + 1) as usize;
    let mut slots: Vec<Option<&Envelope>> = vec![None; 2 * nblocks];
    for env in &envs {
        let id = match &env.id {
            Id::Num(id) => *id,
            Id::Null if env.error.is_some() => {
                // An error not tied to any call (e.g. a batch size limit): the batch failed.
                let err = env.error.as_ref().expect("checked");
                return Err(DecodeError::BatchRejected {
                    span,
                    code: err.code,
                    message: err
                        .message
                        .as_ref()
                        .map_or_else(String::new, |m| m.as_str().to_owned()),
                });
            }
            other => {
                return Err(DecodeError::UnknownId {
                    span,
                    id: other.to_string(),
                })
            }
        };
        let Some(call) = call_for_id(job, id, with_receipts) else {
            return Err(DecodeError::UnknownId {
                span,
                id: id.to_string(),
            });
        };
        let slot = &mut slots[id as usize];
        if slot.is_some() {
            return Err(DecodeError::DuplicateId {
                block: call.block(),
                method: call.method(),
                id,
            });
        }
        *slot = Some(env);
    }

    // Resolve every answer first (error objects, nulls, wrong kinds), then size the row
    // buffers once for the whole batch, then validate and write block by block.
    let mut blocks: Vec<(u64, &Block, Option<&[Receipt]>)> = Vec::with_capacity(nblocks);
    for i in 0..nblocks {
        let n = job.start + i as u64;
        let b = match answer(slots[2 * i], Call::Block(n))? {
            Answer::Block(b) => &**b,
            other => {
                return Err(DecodeError::ResultKind {
                    block: n,
                    method: Call::Block(n).method(),
                    got: other.kind(),
                    expected: "a block object",
                })
            }
        };
        let receipts = if with_receipts {
            match answer(slots[2 * i + 1], Call::Receipts(n))? {
                Answer::Receipts(r) => Some(r.as_slice()),
                other => {
                    return Err(DecodeError::ResultKind {
                        block: n,
                        method: Call::Receipts(n).method(),
                        got: other.kind(),
                        expected: "an array of receipts",
                    })
                }
            }
        } else {
            None
        };
        blocks.push((n, b, receipts));
    }

    let mut out = Out::new(opts);
    reserve(&mut out, &blocks);
    let mut metas = Vec::with_capacity(nblocks);
    for &(n, b, receipts) in &blocks {
        decode_block(&mut out, n, b, receipts, &mut metas)?;
    }

    out.counts.rpc_bytes = raw.body.len() as u64;
    Ok(DecodedBatch {
        seq: job.seq,
        start: job.start,
        end: job.end,
        format: opts.format,
        blocks: metas,
        rows: out.rows,
        counts: out.counts,
    })
}

/// Sizes each wanted entity's buffers once from what the batch holds, so rows are written
/// without any reallocation: a buffer that outgrows its capacity is copied whole into one twice
/// as large, and the copy touches fresh pages, which together cost as much as writing the rows.
///
/// Byte counts are the fixed part of a row (measured on the shared mainnet pairs and generated
/// blocks of every era, rounded up) plus its variable parts (`input`, access lists, blob
/// hashes, authorizations, withdrawals, log `data` and topics). The total gets a few percent
/// of headroom: reserving a little too much only costs untouched address space.
fn reserve(out: &mut Out, blocks: &[(u64, &Block<'_>, Option<&[Receipt<'_>]>)]) {
    let json = out.format == RowFormat::Json;
    let pick = |j: usize, c: usize| if json { j } else { c };
    let (mut n, mut bytes) = ([0usize; Entity::COUNT], [0usize; Entity::COUNT]);
    let len = |s: &Option<super::model::JStr<'_>>| s.as_ref().map_or(0, |s| s.as_str().len());
    let want_transfers = out.wants(Entity::TokenTransfers);
    for (_, b, receipts) in blocks {
        let w = b.withdrawals.as_ref().map_or(0, Vec::len);
        n[Entity::Blocks as usize] += 1;
        bytes[Entity::Blocks as usize] += pick(1850, 1280) + pick(130, 140) * w;
        for tx in &b.transactions {
            n[Entity::Transactions as usize] += 1;
            let access: usize = tx.access_list.as_ref().map_or(0, |items| {
                items
                    .iter()
                    .map(|i| {
                        pick(60, 70) + pick(69, 71) * i.storage_keys.as_ref().map_or(0, Vec::len)
                    })
                    .sum()
            });
            let blobs = tx.blob_versioned_hashes.as_ref().map_or(0, Vec::len);
            let auths = tx.authorization_list.as_ref().map_or(0, Vec::len);
            bytes[Entity::Transactions as usize] += pick(1420, 540)
                + len(&tx.input)
                + access
                + pick(69, 67) * blobs
                + pick(340, 360) * auths;
        }
        for r in receipts.iter().flat_map(|rs| rs.iter()) {
            n[Entity::Receipts as usize] += 1;
            bytes[Entity::Receipts as usize] += pick(740, 240);
            for l in r.logs() {
                n[Entity::Logs as usize] += 1;
                bytes[Entity::Logs as usize] += pick(580, 300) + len(&l.data) + 69 * l.topics.len();
                if want_transfers && is_transfer_topic(l.topics.get(0)) {
                    n[Entity::TokenTransfers as usize] += 1;
                    bytes[Entity::TokenTransfers as usize] += pick(730, 270);
                }
            }
        }
    }
    for e in Entity::ALL {
        if out.wants(e) {
            let buf = &mut out.rows[e as usize];
            let i = e as usize;
            buf.rows.reserve(n[i] + n[i] / 16 + 4);
            let need = bytes[i] + bytes[i] / 16 + 4096;
            if buf.data.capacity() == 0 {
                // Memory a finished batch gave back: already mapped, no page faults.
                buf.data = crate::bufpool::ROWS.take(need);
            } else {
                buf.data.reserve(need);
            }
        }
    }
}

/// Whether `topic0` is one of the token-transfer event topics (sizing only: the rows
/// themselves come from [`token_transfer::decode`]).
fn is_transfer_topic(topic0: Option<&str>) -> bool {
    topic0.is_some_and(|t| {
        [
            token_transfer::TRANSFER_TOPIC,
            token_transfer::TRANSFER_SINGLE_TOPIC,
            token_transfer::TRANSFER_BATCH_TOPIC,
        ]
        .iter()
        .any(|k| token_transfer::is_topic(t, k))
    })
}

/// Case-insensitive equality of hex strings, with the exact comparison first: nodes send
/// lowercase hex, so the byte-wise `memcmp` almost always decides.
#[inline]
fn same_hex(a: &str, b: &str) -> bool {
    a == b || a.eq_ignore_ascii_case(b)
}

/// Validates one block (and its receipts) and writes its rows.
fn decode_block<'x>(
    out: &mut Out,
    n: u64,
    b: &'x Block<'x>,
    receipts: Option<&'x [Receipt<'x>]>,
    metas: &mut Vec<BlockMeta>,
) -> Result<(), DecodeError> {
    let at_block = At {
        block: Some(n),
        item: Item::Block,
    };
    let got = qty_u64("number", b.number.as_str(), at_block)?;
    if got != n {
        return Err(DecodeError::WrongBlock { block: n, got });
    }
    let ts = qty_u64("timestamp", b.timestamp.as_str(), at_block)?;
    let bh = b.hash.as_str();
    for (i, tx) in b.transactions.iter().enumerate() {
        if let Some(h) = &tx.block_hash {
            if !same_hex(h.as_str(), bh) {
                return Err(DecodeError::BlockHash {
                    at: At {
                        block: Some(n),
                        item: Item::Transaction(i),
                    },
                    expected: bh.to_owned(),
                    got: Some(h.as_str().to_owned()),
                });
            }
        }
    }
    if let Some(rs) = receipts {
        validate_receipts(n, b, rs)?;
    }

    let format = out.format;
    if out.wants(Entity::Blocks) {
        let (buf, scratch) = out.buf(Entity::Blocks);
        block::write(format, buf, scratch, b, n, ts).map_err(field_err(Some(n), Item::Block))?;
    }
    if out.wants(Entity::Transactions) {
        for (i, tx) in b.transactions.iter().enumerate() {
            let r = receipts.map(|rs| &rs[i]);
            let (buf, scratch) = out.buf(Entity::Transactions);
            transaction::write(format, buf, scratch, tx, r, n, bh, ts)
                .map_err(field_err(Some(n), Item::Transaction(i)))?;
        }
    }
    if let Some(rs) = receipts {
        let src = BlockSource::Block(BlockCtx {
            number: V::U64(n),
            hash: V::Str(bh),
            timestamp: Some(ts),
            row_block: n,
        });
        write_receipt_family(out, rs, &src)?;
    }

    out.counts.blocks += 1;
    out.counts.transactions += b.transactions.len() as u64;
    metas.push(BlockMeta {
        number: n,
        hash: bh.to_owned(),
        parent_hash: b.parent_hash.as_str().to_owned(),
        timestamp: ts,
        transaction_count: b.transactions.len() as u32,
    });
    Ok(())
}

pub(super) fn decode_receipts(
    json: &[u8],
    opts: &DecodeOptions,
    timestamp: Option<u64>,
) -> Result<ReceiptRows, DecodeError> {
    let span = Span(None);
    depth_guard(json, span)?;
    let doc: ReceiptsDoc =
        sonic_rs::from_slice(json).map_err(|source| classify(json, span, None, source))?;
    let mut out = Out::new(opts);
    write_receipt_family(&mut out, &doc.0, &BlockSource::Own { timestamp })?;
    Ok(ReceiptRows {
        rows: out.rows,
        counts: out.counts,
    })
}
