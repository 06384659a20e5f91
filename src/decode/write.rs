//! The row writer behind every entity: a row's field values ([`V`]), in its
//! [`Dataset`]'s field order, written straight from borrowed slices into a [`RowBuf`] as one
//! compact JSON object (ethereum-etl stream item) or one CSV record (Python `csv` quoting,
//! CRLF), with no per-row heap allocation ([`write_row`]).
//!
//! Also the formatting rules that must match Python byte for byte: `json.dumps(ensure_ascii)`
//! string escaping, `csv.QUOTE_MINIMAL` quoting, `repr(float)`, and
//! `datetime.utcfromtimestamp(t).strftime('%Y-%m-%dT%H:%M:%SZ')`.

use super::dataset::Dataset;
use super::hex::{self, HexError};
use super::model::{AccessItem, Authorization, JStr, Scalar, Withdrawal};
use crate::msg::{RowBuf, RowFormat};
use std::cell::Cell;

/// Why one field's value could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error(transparent)]
    Hex(#[from] HexError),
    #[error("not a finite decimal number")]
    Float,
}

/// A field whose value could not be written: which field, the value as sent, why.
#[derive(Debug, thiserror::Error)]
#[error("field `{field}` = {value:?}")]
pub struct FieldError {
    pub field: &'static str,
    pub value: String,
    #[source]
    pub source: ValueError,
}

/// One field value, borrowed from the parsed answer.
#[derive(Clone, Copy, Debug)]
pub enum V<'x> {
    Null,
    /// A string written as is.
    Str(&'x str),
    /// A string written lowercased (addresses ethereum-etl normalizes).
    Lower(&'x str),
    /// A `0x` hex quantity written as an exact decimal integer.
    Qty(&'x str),
    /// Bare hex digits (an ABI word, already checked to be hex) written as a decimal integer.
    Word(&'x str),
    /// 40 bare hex digits (the tail of an ABI word, checked) written as a lowercase `0x` address.
    Addr(&'x str),
    U64(u64),
    /// `l1FeeScalar`: written the way Python writes `float(x)`.
    Float(&'x Scalar<'x>),
    /// A list of strings (two slices, written one after the other): a JSON array; in CSV the
    /// items joined with `,`.
    Strs(&'x [JStr<'x>], &'x [JStr<'x>]),
    /// Block withdrawals: a JSON array of `{index, validator_index, address, amount}`.
    Withdrawals(&'x [Withdrawal<'x>]),
    /// EIP-2930 access list: a JSON array of `{address, storage_keys}`.
    AccessList(&'x [AccessItem<'x>]),
    /// EIP-7702 authorization list: a JSON array of
    /// `{chain_id, address, nonce, y_parity, r, s[, authority]}`.
    Auths(&'x [Authorization<'x>]),
    /// `item_id`: `<prefix><hash>[_<a>][_<b>]`.
    ItemId(&'static str, &'x str, Option<u64>, Option<u64>),
    /// `item_timestamp`: a Unix time as `%Y-%m-%dT%H:%M:%SZ`.
    Time(u64),
}

impl<'x> V<'x> {
    #[inline]
    pub fn str(o: &'x Option<JStr<'x>>) -> V<'x> {
        o.as_ref().map_or(V::Null, |s| V::Str(s.as_str()))
    }
    #[inline]
    pub fn lower(o: &'x Option<JStr<'x>>) -> V<'x> {
        o.as_ref().map_or(V::Null, |s| V::Lower(s.as_str()))
    }
    #[inline]
    pub fn qty(o: &'x Option<JStr<'x>>) -> V<'x> {
        o.as_ref().map_or(V::Null, |s| V::Qty(s.as_str()))
    }
    #[inline]
    pub fn strs(o: &'x Option<Vec<JStr<'x>>>) -> V<'x> {
        o.as_deref().map_or(V::Null, |s| V::Strs(s, &[]))
    }
    /// A list that ethereum-etl writes as `[]` when absent.
    #[inline]
    pub fn strs_or_empty(o: &'x Option<Vec<JStr<'x>>>) -> V<'x> {
        V::Strs(o.as_deref().unwrap_or(&[]), &[])
    }
    #[inline]
    pub fn u64_opt(o: Option<u64>) -> V<'x> {
        o.map_or(V::Null, V::U64)
    }
}

/// Writes one whole row of `ds` into `out` and records it as a row of `block`. `values` are
/// the row's field values in the order of [`Dataset::fields`]. JSON: `{"type":"<item type>"`,
/// then `"key":value` for each of [`Dataset::json`]; CSV: the cells of the export columns
/// ([`Dataset::columns`]), comma-separated, CRLF-terminated. On an error nothing of the row is
/// left in `out`.
#[inline]
pub fn write_row<const N: usize>(
    ds: &Dataset,
    format: RowFormat,
    out: &mut RowBuf,
    scratch: &mut Vec<u8>,
    values: &[V<'_>; N],
    block: u64,
) -> Result<(), FieldError> {
    debug_assert_eq!(N, ds.fields.len(), "{:?}: one value per field", ds.entity);
    let data = &mut out.data;
    let start = data.len();
    let fail = |data: &mut Vec<u8>, i: usize, source: ValueError| {
        data.truncate(start);
        FieldError {
            field: ds.fields[i].name,
            value: describe(&values[i]),
            source,
        }
    };
    match format {
        RowFormat::Json => {
            data.extend_from_slice(b"{\"type\":\"");
            data.extend_from_slice(ds.entity.item_type().as_bytes());
            data.push(b'"');
            for &i in ds.json {
                let i = usize::from(i);
                data.extend_from_slice(b",\"");
                data.extend_from_slice(ds.fields[i].name.as_bytes());
                data.extend_from_slice(b"\":");
                json_value(data, &values[i]).map_err(|e| fail(data, i, e))?;
            }
            data.extend_from_slice(b"}\n");
        }
        RowFormat::Csv => {
            for (i, v) in values.iter().enumerate().take(ds.csv_len) {
                if i > 0 {
                    data.push(b',');
                }
                csv_value(data, scratch, v).map_err(|e| fail(data, i, e))?;
            }
            data.extend_from_slice(b"\r\n");
        }
    }
    out.finish_row(block);
    Ok(())
}

/// The offending value as text, for an error message.
fn describe(v: &V<'_>) -> String {
    match v {
        V::Str(s) | V::Lower(s) | V::Qty(s) | V::Word(s) | V::Addr(s) => (*s).to_owned(),
        V::Float(Scalar::Text(s)) => s.as_str().to_owned(),
        V::Float(Scalar::Num(n)) => n.to_string(),
        other => format!("{other:?}"),
    }
}

#[inline]
fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn push_lower(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().map(|b| b.to_ascii_lowercase()));
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Whether `s` can go between JSON quotes unchanged under Python's `ensure_ascii` rules
/// (printable ASCII, no `"` or `\`).
///
/// Scans in fixed-size chunks without an early exit inside a chunk, which the compiler turns
/// into SIMD compares: `input` and `data` strings can be hundreds of kilobytes.
#[inline]
fn json_plain(s: &[u8]) -> bool {
    #[inline(always)]
    fn special(b: u8) -> bool {
        !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
    }
    !any_byte(s, special)
}

/// Whether any byte satisfies `f`, checked 32 bytes at a time without an early exit inside a
/// chunk (vectorizable). The tail of a string of 32 bytes or more is checked as one last,
/// overlapping 32-byte chunk, so the typical hash (66 bytes) or address (42) needs no byte loop.
#[inline(always)]
fn any_byte(s: &[u8], f: impl Fn(u8) -> bool + Copy) -> bool {
    // A byte mask OR-reduced over a fixed-size array: LLVM turns this into vector compares.
    let block = |c: &[u8; 32]| c.iter().fold(0u8, |acc, &b| acc | u8::from(f(b))) != 0;
    if s.len() < 32 {
        return s.iter().fold(0u8, |acc, &b| acc | u8::from(f(b))) != 0;
    }
    let mut chunks = s.chunks_exact(32);
    let as_block = |c: &[u8]| -> [u8; 32] { c.try_into().unwrap_or([0; 32]) };
    if chunks.any(|c| block(&as_block(c))) {
        return true;
    }
    !chunks.remainder().is_empty() && block(&as_block(&s[s.len() - 32..]))
}

/// Appends the content of a JSON string (no quotes), escaped exactly like Python's
/// `json.dumps(..., ensure_ascii=True)`.
pub fn json_str_content(out: &mut Vec<u8>, s: &str) {
    if json_plain(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let u = |out: &mut Vec<u8>, c: u16| {
        out.extend_from_slice(b"\\u");
        for sh in [12, 8, 4, 0] {
            out.push(HEX[((c >> sh) & 0xf) as usize]);
        }
    };
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(ch as u8),
            _ => {
                let mut units = [0u16; 2];
                for c in ch.encode_utf16(&mut units) {
                    u(out, *c);
                }
            }
        }
    }
}

#[inline]
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_str_content(out, s);
    out.push(b'"');
}

fn json_lower(out: &mut Vec<u8>, s: &str) {
    if json_plain(s.as_bytes()) {
        out.push(b'"');
        push_lower(out, s);
        out.push(b'"');
    } else {
        json_str(out, &s.to_ascii_lowercase());
    }
}

fn json_opt_qty(out: &mut Vec<u8>, o: &Option<JStr<'_>>) -> Result<(), ValueError> {
    match o {
        Some(s) => Ok(hex::write_decimal(out, s.as_str())?),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

fn json_opt_str(out: &mut Vec<u8>, o: &Option<JStr<'_>>) {
    match o {
        Some(s) => json_str(out, s.as_str()),
        None => out.extend_from_slice(b"null"),
    }
}

#[inline(always)]
fn json_value(out: &mut Vec<u8>, v: &V<'_>) -> Result<(), ValueError> {
    match *v {
        V::Null => out.extend_from_slice(b"null"),
        V::Str(s) => json_str(out, s),
        V::Lower(s) => json_lower(out, s),
        V::Qty(s) => hex::write_decimal(out, s)?,
        V::Word(s) => hex::write_decimal_digits(out, s.as_bytes())?,
        V::Addr(s) => {
            out.extend_from_slice(b"\"0x");
            push_lower(out, s);
            out.push(b'"');
        }
        V::U64(n) => push_u64(out, n),
        V::Float(x) => python_float(out, scalar_value(x)?),
        V::Strs(a, b) => {
            out.push(b'[');
            for (i, s) in a.iter().chain(b.iter()).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_str(out, s.as_str());
            }
            out.push(b']');
        }
        V::Withdrawals(ws) => json_withdrawals(out, ws)?,
        V::AccessList(items) => json_access_list(out, items),
        V::Auths(auths) => json_auths(out, auths)?,
        V::ItemId(prefix, hash, a, b) => {
            out.push(b'"');
            out.extend_from_slice(prefix.as_bytes());
            json_str_content(out, hash);
            for n in [a, b].into_iter().flatten() {
                out.push(b'_');
                push_u64(out, n);
            }
            out.push(b'"');
        }
        V::Time(t) => {
            out.push(b'"');
            write_timestamp(out, t);
            out.push(b'"');
        }
    }
    Ok(())
}

fn json_withdrawals(out: &mut Vec<u8>, ws: &[Withdrawal<'_>]) -> Result<(), ValueError> {
    out.push(b'[');
    for (i, w) in ws.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"index\":");
        json_opt_qty(out, &w.index)?;
        out.extend_from_slice(b",\"validator_index\":");
        json_opt_qty(out, &w.validator_index)?;
        out.extend_from_slice(b",\"address\":");
        json_opt_str(out, &w.address);
        out.extend_from_slice(b",\"amount\":");
        json_opt_qty(out, &w.amount)?;
        out.push(b'}');
    }
    out.push(b']');
    Ok(())
}

fn json_access_list(out: &mut Vec<u8>, items: &[AccessItem<'_>]) {
    out.push(b'[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"address\":");
        json_opt_str(out, &it.address);
        out.extend_from_slice(b",\"storage_keys\":[");
        for (j, k) in it.storage_keys.iter().flatten().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            json_str(out, k.as_str());
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
}

fn json_auths(out: &mut Vec<u8>, auths: &[Authorization<'_>]) -> Result<(), ValueError> {
    out.push(b'[');
    for (i, a) in auths.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"chain_id\":");
        json_opt_qty(out, &a.chain_id)?;
        out.extend_from_slice(b",\"address\":");
        json_opt_str(out, &a.address);
        out.extend_from_slice(b",\"nonce\":");
        json_opt_qty(out, &a.nonce)?;
        out.extend_from_slice(b",\"y_parity\":");
        json_opt_qty(out, &a.y_parity)?;
        out.extend_from_slice(b",\"r\":");
        json_opt_str(out, &a.r);
        out.extend_from_slice(b",\"s\":");
        json_opt_str(out, &a.s);
        if let Some(auth) = &a.authority {
            out.extend_from_slice(b",\"authority\":");
            json_str(out, auth.as_str());
        }
        out.push(b'}');
    }
    out.push(b']');
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Whether Python's `csv.QUOTE_MINIMAL` would quote this cell.
#[inline]
fn csv_needs_quotes(s: &[u8]) -> bool {
    any_byte(s, |b| {
        (b == b',') | (b == b'"') | (b == b'\r') | (b == b'\n')
    })
}

/// Appends `s` quoted (inner `"` doubled).
fn csv_quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Appends one CSV cell the way Python's `csv.writer` (QUOTE_MINIMAL) writes it.
#[inline]
pub fn csv_cell(out: &mut Vec<u8>, s: &[u8]) {
    if csv_needs_quotes(s) {
        csv_quoted(out, s);
    } else {
        out.extend_from_slice(s);
    }
}

fn csv_value(out: &mut Vec<u8>, scratch: &mut Vec<u8>, v: &V<'_>) -> Result<(), ValueError> {
    match *v {
        V::Null => {}
        V::Str(s) => csv_cell(out, s.as_bytes()),
        V::Lower(s) => {
            if csv_needs_quotes(s.as_bytes()) {
                csv_quoted(out, s.to_ascii_lowercase().as_bytes());
            } else {
                push_lower(out, s);
            }
        }
        V::Qty(s) => hex::write_decimal(out, s)?,
        V::Word(s) => hex::write_decimal_digits(out, s.as_bytes())?,
        V::Addr(s) => {
            out.extend_from_slice(b"0x");
            push_lower(out, s);
        }
        V::U64(n) => push_u64(out, n),
        V::Float(x) => python_float(out, scalar_value(x)?),
        V::Strs(a, b) => {
            let n = a.len() + b.len();
            let quote = n > 1
                || a.iter()
                    .chain(b)
                    .any(|s| csv_needs_quotes(s.as_str().as_bytes()));
            if !quote {
                if let Some(s) = a.first().or(b.first()) {
                    out.extend_from_slice(s.as_str().as_bytes());
                }
            } else {
                scratch.clear();
                for (i, s) in a.iter().chain(b.iter()).enumerate() {
                    if i > 0 {
                        scratch.push(b',');
                    }
                    scratch.extend_from_slice(s.as_str().as_bytes());
                }
                csv_quoted(out, scratch);
            }
        }
        // ethereum-etl leaves the cell empty for no withdrawals; a non-empty list is written
        // as a valid JSON array (ethereum-etl writes the objects without the brackets).
        V::Withdrawals([]) => {}
        V::Withdrawals(ws) => {
            scratch.clear();
            json_withdrawals(scratch, ws)?;
            csv_quoted(out, scratch);
        }
        V::AccessList(items) => {
            scratch.clear();
            json_access_list(scratch, items);
            csv_cell(out, scratch);
        }
        V::Auths(auths) => {
            scratch.clear();
            json_auths(scratch, auths)?;
            csv_cell(out, scratch);
        }
        V::ItemId(..) | V::Time(_) => {
            scratch.clear();
            json_value(scratch, v)?;
            // Drop the JSON quotes; the content has no CSV specials in practice, but check.
            let inner = &scratch[1..scratch.len() - 1];
            csv_cell(out, inner);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Python float

/// The `f64` ethereum-etl's `float(x)` would produce.
fn scalar_value(x: &Scalar<'_>) -> Result<f64, ValueError> {
    let v = match x {
        Scalar::Num(n) => *n,
        Scalar::Text(s) => parse_python_float(s.as_str()).ok_or(ValueError::Float)?,
    };
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ValueError::Float)
    }
}

/// Parses decimal text as Python's `float(str)` does for finite values (surrounding ASCII
/// whitespace allowed). `None` for anything else (including `inf`/`nan` and `_` separators).
pub fn parse_python_float(s: &str) -> Option<f64> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let ok = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !ok {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A fixed-capacity `fmt::Write` target on the stack.
struct StackBuf {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Appends `repr(x)` as CPython writes it (shortest round-trip digits; exponent form when the
/// decimal exponent is < -4 or >= 16; `.0` added to integral values). `x` must be finite.
pub fn python_float(out: &mut Vec<u8>, x: f64) {
    use std::fmt::Write;
    let mut sb = StackBuf {
        buf: [0; 40],
        len: 0,
    };
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7", "0e0".
    if write!(sb, "{x:e}").is_err() {
        // Cannot happen for a finite f64 (at most 25 bytes); keep the plain form.
        let _ = write!(out_adapter(out), "{x}");
        return;
    }
    let s = &sb.buf[..sb.len];
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let epos = s.iter().position(|&b| b == b'e').unwrap_or(s.len());
    let mantissa = &s[..epos];
    let exp: i32 = std::str::from_utf8(&s[(epos + 1).min(s.len())..])
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    // Digits without the point; decpt = position of the decimal point relative to them.
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &b in mantissa {
        if b != b'.' {
            digits[nd] = b;
            nd += 1;
        }
    }
    let digits = &digits[..nd];
    let decpt = exp + 1;
    if neg {
        out.push(b'-');
    }
    if !(-4 < decpt && decpt <= 16) {
        out.push(digits[0]);
        if nd > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        let e = decpt - 1;
        out.push(if e < 0 { b'-' } else { b'+' });
        let ea = e.unsigned_abs();
        if ea < 10 {
            out.push(b'0');
        }
        push_u64(out, ea as u64);
    } else if decpt <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-decpt) as usize));
        out.extend_from_slice(digits);
    } else {
        let d = decpt as usize;
        if d >= nd {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', d - nd));
            out.extend_from_slice(b".0");
        } else {
            out.extend_from_slice(&digits[..d]);
            out.push(b'.');
            out.extend_from_slice(&digits[d..]);
        }
    }
}

fn out_adapter(out: &mut Vec<u8>) -> impl std::fmt::Write + '_ {
    struct A<'o>(&'o mut Vec<u8>);
    impl std::fmt::Write for A<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    A(out)
}

// ---------------------------------------------------------------------------------------------
// Timestamps

/// Appends a Unix time as `%Y-%m-%dT%H:%M:%SZ` (UTC, proleptic Gregorian calendar).
///
/// Every row of a block carries the same time, so the last one formatted on this thread is
/// kept and copied.
pub fn write_timestamp(out: &mut Vec<u8>, t: u64) {
    /// Longer than any formatted u64 time (a 15-digit year + 15).
    const MAX: usize = 40;
    thread_local! {
        static LAST: Cell<Option<(u64, [u8; MAX], usize)>> = const { Cell::new(None) };
    }
    if let Some((last, text, n)) = LAST.get() {
        if last == t {
            out.extend_from_slice(&text[..n]);
            return;
        }
    }
    let start = out.len();
    format_timestamp(out, t);
    let n = out.len() - start;
    if n <= MAX {
        let mut text = [0u8; MAX];
        text[..n].copy_from_slice(&out[start..]);
        LAST.set(Some((t, text, n)));
    }
}

fn format_timestamp(out: &mut Vec<u8>, t: u64) {
    let days = t / 86_400;
    let secs = t % 86_400;
    // Howard Hinnant's civil_from_days, shifted to start the era on 0000-03-01.
    let z = days as i128 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    let y = y as u64;
    if y < 1000 {
        out.extend(std::iter::repeat_n(b'0', 4 - digits10(y)));
    }
    push_u64(out, y);
    let two = |out: &mut Vec<u8>, sep: u8, v: u64| {
        out.push(sep);
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    two(out, b'-', m as u64);
    two(out, b'-', d as u64);
    two(out, b'T', secs / 3600);
    two(out, b':', secs / 60 % 60);
    two(out, b':', secs % 60);
    out.push(b'Z');
}

fn digits10(v: u64) -> usize {
    itoa::Buffer::new().format(v).len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::borrow::Cow;

    fn pyf(x: f64) -> String {
        let mut o = Vec::new();
        python_float(&mut o, x);
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn python_float_repr() {
        // Expected strings are CPython's repr() of the same doubles.
        let cases: &[(f64, &str)] = &[
            (0.684, "0.684"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (100.0, "100.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (0.0000123, "1.23e-05"),
            (1e-300, "1e-300"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-2.5, "-2.5"),
            (9999999999999998.0, "9999999999999998.0"),
            (12345.678, "12345.678"),
        ];
        for (x, want) in cases {
            assert_eq!(pyf(*x), *want, "{x:e}");
        }
    }

    #[test]
    fn python_float_parse() {
        assert_eq!(parse_python_float("0.684"), Some(0.684));
        assert_eq!(parse_python_float(" 1 "), Some(1.0));
        assert_eq!(parse_python_float("1e3"), Some(1000.0));
        assert_eq!(parse_python_float(".5"), Some(0.5));
        assert_eq!(parse_python_float("inf"), None);
        assert_eq!(parse_python_float("nan"), None);
        assert_eq!(parse_python_float("1e400"), None);
        assert_eq!(parse_python_float("0x1"), None);
        assert_eq!(parse_python_float(""), None);
        assert_eq!(parse_python_float("abc"), None);
    }

    proptest! {
        /// The written text parses back to the same double (round trip), and the exponent
        /// form is used exactly when CPython uses it.
        #[test]
        fn python_float_round_trips(x in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            let s = pyf(x);
            prop_assert_eq!(s.parse::<f64>().unwrap().to_bits(), x.to_bits());
            let e = format!("{:e}", x.abs());
            let exp: i32 = e.split('e').nth(1).unwrap().parse().unwrap();
            let sci = !(-4..16).contains(&exp);
            prop_assert_eq!(s.contains('e'), sci, "{}", s);
            if !sci { prop_assert!(s.contains('.')); }
        }
    }

    fn ts(t: u64) -> String {
        let mut o = Vec::new();
        write_timestamp(&mut o, t);
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(ts(1693066895), "2023-08-26T16:21:35Z");
        assert_eq!(ts(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(ts(4107542399), "2100-02-28T23:59:59Z");
        assert_eq!(ts(4107542400), "2100-03-01T00:00:00Z");
        assert_eq!(ts(253402300799), "9999-12-31T23:59:59Z");
        // Repeated and alternating times (the last one is cached per thread).
        for _ in 0..2 {
            assert_eq!(ts(1693066895), "2023-08-26T16:21:35Z");
            assert_eq!(ts(1693066895), "2023-08-26T16:21:35Z");
            assert_eq!(ts(0), "1970-01-01T00:00:00Z");
        }
    }

    proptest! {
        /// The chunked scans agree with a byte-by-byte check at every length and position
        /// (chunk boundaries, the overlapping tail).
        #[test]
        fn chunked_scans_match_bytewise(len in 0usize..200, at in 0usize..200, special in prop::sample::select(vec![b'"', b'\\', b'\n', b'\r', b',', 0x7f, 0x1f, 0xc3])) {
            let mut s = vec![b'a'; len];
            if at < len {
                s[at] = special;
            }
            let plain = s.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
            prop_assert_eq!(json_plain(&s), plain);
            let quote = s.iter().any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
            prop_assert_eq!(csv_needs_quotes(&s), quote);
        }
    }

    proptest! {
        /// Against an independent day-by-day count from 1970.
        #[test]
        fn timestamp_matches_naive_calendar(days in 0u64..80_000, secs in 0u64..86_400) {
            let (mut y, mut rem) = (1970u64, days);
            let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
            loop {
                let len = if leap(y) { 366 } else { 365 };
                if rem < len { break; }
                rem -= len;
                y += 1;
            }
            let mdays = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            let mut m = 0;
            while rem >= mdays[m] { rem -= mdays[m]; m += 1; }
            let want = format!("{y:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", m + 1, rem + 1, secs / 3600, secs / 60 % 60, secs % 60);
            prop_assert_eq!(ts(days * 86_400 + secs), want);
        }
    }

    fn cell(s: &str) -> String {
        let mut o = Vec::new();
        csv_cell(&mut o, s.as_bytes());
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(cell("abc"), "abc");
        assert_eq!(cell(""), "");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("a\nb"), "\"a\nb\"");
        assert_eq!(cell("a\rb"), "\"a\rb\"");
        assert_eq!(cell(" lead"), " lead");
        assert_eq!(cell("semi;colon\ttab"), "semi;colon\ttab");
    }

    /// A reader for Python-style CSV cells, to check the writer independently.
    fn read_cell(s: &str) -> String {
        if let Some(inner) = s.strip_prefix('"') {
            inner.strip_suffix('"').unwrap().replace("\"\"", "\"")
        } else {
            assert!(!s.contains(['"', ',', '\r', '\n']));
            s.to_owned()
        }
    }

    proptest! {
        #[test]
        fn csv_cell_round_trips(s in "[a-z,\"\r\n 0-9]{0,20}") {
            prop_assert_eq!(read_cell(&cell(&s)), s);
        }
    }

    fn js(s: &str) -> String {
        let mut o = Vec::new();
        json_str(&mut o, s);
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn json_escaping_like_python() {
        assert_eq!(js("0xabc"), "\"0xabc\"");
        assert_eq!(js("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            js("\n\r\t\u{8}\u{c}\u{1}\u{7f}"),
            r#""\n\r\t\b\f\u0001\u007f""#
        );
        assert_eq!(js("é"), r#""\u00e9""#);
        assert_eq!(js("😀"), r#""\ud83d\ude00""#);
    }

    proptest! {
        #[test]
        fn json_escaping_round_trips(s in "\\PC{0,30}") {
            let j = js(&s);
            prop_assert!(j.is_ascii());
            let back: String = sonic_rs::from_str(&j).unwrap();
            prop_assert_eq!(back, s);
        }
    }

    use crate::decode::dataset::{nullable, order, Field, FieldType};
    use crate::msg::Entity;

    const FIELDS: &[Field] = &[
        nullable("n", FieldType::U256),
        nullable("s", FieldType::Text),
        nullable("l", FieldType::Hex),
        nullable("z", FieldType::Hex),
        nullable("t", FieldType::List),
        nullable("one", FieldType::List),
        nullable("e", FieldType::List),
        nullable("id", FieldType::Text),
        nullable("ts", FieldType::Timestamp),
    ];
    static DS: Dataset = Dataset {
        entity: Entity::Logs,
        methods: &[],
        fields: FIELDS,
        csv_len: 9,
        json: &order(FIELDS, ["n", "s", "l", "z", "t", "one", "e", "id", "ts"]),
    };

    #[test]
    fn rows_json_and_csv() {
        let topics = [JStr(Cow::Borrowed("0xa")), JStr(Cow::Borrowed("0xb"))];
        let vs = [
            V::Qty("0x10"),
            V::Str("x,y"),
            V::Lower("0xABC"),
            V::Null,
            V::Strs(&topics, &[]),
            V::Strs(&topics[..1], &[]),
            V::Strs(&[], &[]),
            V::ItemId("log_", "0xh", Some(3), None),
            V::Time(0),
        ];
        let mut buf = RowBuf::default();
        let mut scratch = Vec::new();
        write_row(&DS, RowFormat::Json, &mut buf, &mut scratch, &vs, 7).unwrap();
        write_row(&DS, RowFormat::Csv, &mut buf, &mut scratch, &vs, 8).unwrap();
        let rows: Vec<_> = buf.iter().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 7);
        assert_eq!(
            std::str::from_utf8(rows[0].1).unwrap(),
            "{\"type\":\"log\",\"n\":16,\"s\":\"x,y\",\"l\":\"0xabc\",\"z\":null,\"t\":[\"0xa\",\"0xb\"],\
             \"one\":[\"0xa\"],\"e\":[],\"id\":\"log_0xh_3\",\"ts\":\"1970-01-01T00:00:00Z\"}\n"
        );
        assert_eq!(
            std::str::from_utf8(rows[1].1).unwrap(),
            "16,\"x,y\",0xabc,,\"0xa,0xb\",0xa,,log_0xh_3,1970-01-01T00:00:00Z\r\n"
        );
    }

    #[test]
    fn field_error_names_field_and_keeps_row_clean() {
        const FIELDS: &[Field] = &[
            nullable("a", FieldType::Integer),
            nullable("gas", FieldType::U256),
        ];
        static DS: Dataset = Dataset {
            entity: Entity::Blocks,
            methods: &[],
            fields: FIELDS,
            csv_len: 2,
            json: &order(FIELDS, ["a", "gas"]),
        };
        let mut buf = RowBuf::default();
        let mut scratch = Vec::new();
        write_row(
            &DS,
            RowFormat::Json,
            &mut buf,
            &mut scratch,
            &[V::U64(1), V::U64(2)],
            1,
        )
        .unwrap();
        let before = buf.clone();
        for format in [RowFormat::Json, RowFormat::Csv] {
            let vs = [V::U64(1), V::Qty("0xzz")];
            let e = write_row(&DS, format, &mut buf, &mut scratch, &vs, 2).unwrap_err();
            assert_eq!(e.field, "gas");
            assert_eq!(e.value, "0xzz");
            assert!(matches!(
                e.source,
                ValueError::Hex(HexError::BadDigit { .. })
            ));
            // Nothing of the failed row stays behind; earlier rows are untouched.
            assert_eq!(buf, before);
        }
    }
}
