//! A light, borrowed look at a JSON-RPC response body, enough for the I/O thread to match
//! answers to calls by `id` and to see which calls failed, without building any value:
//! [`parse`] checks that the whole body is JSON and splits it into [`Item`]s whose raw text
//! (and raw `result` text) are slices of the body. [`transaction_hashes`] pulls the
//! transaction hashes out of a block answer for the per-transaction receipts fallback.

use sonic_rs::{JsonValueTrait, LazyValue};

/// The top level of a response body.
#[derive(Debug)]
pub enum Body<'a> {
    /// A JSON array (a batch answer), items in the order the node sent them.
    Batch(Vec<Item<'a>>),
    /// A single JSON object (typically one error object for the whole batch).
    Single(Item<'a>),
    /// Valid JSON that is neither (a string, a number, `null`).
    Other,
}

/// One response object.
#[derive(Debug)]
pub struct Item<'a> {
    /// The numeric `id`, if the object has one (a string, `null` or missing id is `None`).
    pub id: Option<u64>,
    /// The whole object as the node sent it.
    pub raw: &'a str,
    pub outcome: Outcome<'a>,
}

/// What an answer object says.
#[derive(Debug, PartialEq)]
pub enum Outcome<'a> {
    /// A non-null `result`, as raw JSON text. For an object in the usual layout
    /// (`{"jsonrpc":"2.0","id":N,"result":…}`) this is the text from the value to the closing
    /// brace, which would include any members a node put after `result`; use
    /// [`exact_result`] where only the value will do.
    Result(&'a str),
    /// `"result": null`.
    Null,
    /// An `error` object.
    Error { code: Option<i64>, message: String },
    /// Neither `result` nor `error`, or not an object at all.
    Malformed,
}

/// Why a body cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not (complete, valid) JSON.
    #[error(transparent)]
    Json(#[from] sonic_rs::Error),
    /// Nested deeper than [`crate::json_depth::MAX_DEPTH`]; refused before parsing.
    #[error(transparent)]
    TooDeep(#[from] crate::json_depth::TooDeep),
}

/// Parses a response body. `Err` if it is not (complete, valid) JSON or nests too deep.
pub fn parse(body: &[u8]) -> Result<Body<'_>, BodyError> {
    parse_measured(body).map(|(b, _)| b)
}

/// [`parse`], with the body's nesting depth (measured before parsing, so that the decode
/// stage need not measure it again).
pub fn parse_measured(body: &[u8]) -> Result<(Body<'_>, usize), BodyError> {
    let depth = crate::json_depth::max_depth(body, crate::json_depth::MAX_DEPTH)?;
    parse_unguarded(body).map(|b| (b, depth))
}

/// The parse itself, for bodies whose depth was checked.
fn parse_unguarded(body: &[u8]) -> Result<Body<'_>, BodyError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        Some(b'[') => {
            let mut items = Vec::new();
            for v in sonic_rs::to_array_iter(body) {
                items.push(item(v?)?);
            }
            Ok(Body::Batch(items))
        }
        Some(b'{') => {
            let v: LazyValue<'_> = sonic_rs::from_slice(body)?;
            Ok(Body::Single(item(v)?))
        }
        _ => {
            // Let the parser say what is wrong (empty body, garbage), or accept a scalar.
            let _: LazyValue<'_> = sonic_rs::from_slice(body)?;
            Ok(Body::Other)
        }
    }
}

fn item(v: LazyValue<'_>) -> Result<Item<'_>, sonic_rs::Error> {
    // `v` borrows the body; the slices below are taken from its raw text.
    let raw: &str = match v.as_raw_cow() {
        std::borrow::Cow::Borrowed(s) => s,
        // Only escaped keys/strings are ever owned, and a whole value never is; treat the
        // impossible case as a malformed item rather than copy.
        std::borrow::Cow::Owned(_) => {
            return Ok(Item {
                id: None,
                raw: "",
                outcome: Outcome::Malformed,
            })
        }
    };
    if !raw.starts_with('{') {
        return Ok(Item {
            id: None,
            raw,
            outcome: Outcome::Malformed,
        });
    }
    if let Some(it) = usual_layout(raw) {
        return Ok(it);
    }
    full_item(raw)
}

/// The answer object as every major node writes it, `{"jsonrpc":"2.0","id":N,"result":…}`,
/// read without scanning the result again (it was validated as part of the body).
fn usual_layout(raw: &str) -> Option<Item<'_>> {
    let rest = raw.strip_prefix(r#"{"jsonrpc":"2.0","id":"#)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id: u64 = rest.get(..digits)?.parse().ok()?;
    let value = rest[digits..]
        .strip_prefix(r#","result":"#)?
        .strip_suffix('}')?
        .trim();
    let outcome = match value {
        "" => return None,
        "null" => Outcome::Null,
        v => Outcome::Result(v),
    };
    Some(Item {
        id: Some(id),
        raw,
        outcome,
    })
}

/// The exact raw text of the `result` member of an answer object, if it has a non-null one.
pub fn exact_result(raw: &str) -> Option<&str> {
    match full_item(raw).ok()?.outcome {
        Outcome::Result(r) => Some(r),
        _ => None,
    }
}

/// Reads an answer object member by member.
fn full_item(raw: &str) -> Result<Item<'_>, sonic_rs::Error> {
    let mut id = None;
    let mut result: Option<LazyValue<'_>> = None;
    let mut error: Option<LazyValue<'_>> = None;
    for kv in sonic_rs::to_object_iter(raw) {
        let (k, v) = kv?;
        match &*k {
            "id" => id = v.as_u64(),
            "result" => result = Some(v),
            "error" => error = Some(v),
            _ => {}
        }
    }
    let outcome = match (error, result) {
        (Some(e), _) if !e.is_null() => Outcome::Error {
            code: e.get("code").and_then(|c| c.as_i64()),
            message: e
                .get("message")
                .and_then(|m| m.as_str().map(str::to_owned))
                .unwrap_or_default(),
        },
        (_, Some(r)) if r.is_null() => Outcome::Null,
        (_, Some(r)) => match r.as_raw_cow() {
            std::borrow::Cow::Borrowed(s) => Outcome::Result(sub_slice(raw, s)),
            std::borrow::Cow::Owned(_) => Outcome::Malformed,
        },
        _ => Outcome::Malformed,
    };
    Ok(Item { id, raw, outcome })
}

/// `inner` re-borrowed from `outer` (it points into it).
fn sub_slice<'a>(outer: &'a str, inner: &str) -> &'a str {
    let start = (inner.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
    outer.get(start..start + inner.len()).unwrap_or("")
}

/// Byte range of `inner` inside `outer`, if `inner` is a slice of it.
pub fn offset_in(outer: &[u8], inner: &str) -> Option<std::ops::Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len()).then_some(start..end)
}

/// The `hash` of every transaction of a block `result` (hydrated objects or plain hashes), in
/// block order. `Err` says what is missing.
pub fn transaction_hashes(block: &str) -> Result<Vec<String>, String> {
    let txs = sonic_rs::get_from_str(block, ["transactions"]).map_err(|e| {
        let why = e.to_string();
        let why = why.lines().next().unwrap_or_default().to_string();
        format!("the block has no `transactions` list ({why})")
    })?;
    if !txs.is_array() {
        return Err("`transactions` is not a list".into());
    }
    let mut out = Vec::new();
    for (i, tx) in sonic_rs::to_array_iter(txs.as_raw_str()).enumerate() {
        let tx = tx.map_err(|e| format!("transaction {i}: {e}"))?;
        let hash = if let Some(h) = tx.as_str() {
            h.to_owned()
        } else {
            tx.get("hash")
                .and_then(|h| h.as_str().map(str::to_owned))
                .ok_or_else(|| format!("transaction {i} has no `hash`"))?
        };
        if hash.len() != 66
            || !hash.starts_with("0x")
            || !hash[2..].bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(format!("transaction {i} has a malformed hash"));
        }
        out.push(hash);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_items_borrow_the_body() {
        let body = br#" [{"jsonrpc":"2.0","id":1,"result":{"a":[1,2]}},
            {"jsonrpc":"2.0","id":0,"result":null},
            {"jsonrpc":"2.0","id":2,"error":{"code":-32000,"message":"header not found"}},
            {"jsonrpc":"2.0","id":"x","result":"0x1"},
            {"jsonrpc":"2.0","id":3},
            7]"#;
        let Body::Batch(items) = parse(body).unwrap() else {
            panic!()
        };
        assert_eq!(items.len(), 6);
        assert_eq!(items[0].id, Some(1));
        assert_eq!(items[0].outcome, Outcome::Result(r#"{"a":[1,2]}"#));
        let r = offset_in(body, items[0].raw).unwrap();
        assert!(body[r].starts_with(br#"{"jsonrpc":"2.0","id":1"#));
        if let Outcome::Result(s) = items[0].outcome {
            let r = offset_in(body, s).unwrap();
            assert_eq!(&body[r], br#"{"a":[1,2]}"#);
        }
        assert_eq!(items[1].outcome, Outcome::Null);
        assert_eq!(
            items[2].outcome,
            Outcome::Error {
                code: Some(-32000),
                message: "header not found".into()
            }
        );
        assert_eq!(items[3].id, None);
        assert_eq!(items[4].outcome, Outcome::Malformed);
        assert_eq!(items[5].outcome, Outcome::Malformed);
    }

    #[test]
    fn usual_layout_and_exact_results() {
        let body = br#"[{"jsonrpc":"2.0","id":4,"result":{"a":1}},{"jsonrpc":"2.0","id":5,"result":null},{"jsonrpc":"2.0","id":6,"result":{"b":2},"extra":[1]},{"id":7,"jsonrpc":"2.0","result":"0x1"}]"#;
        let Body::Batch(items) = parse(body).unwrap() else {
            panic!()
        };
        assert_eq!(items[0].id, Some(4));
        assert_eq!(items[0].outcome, Outcome::Result(r#"{"a":1}"#));
        assert_eq!(items[1].outcome, Outcome::Null);
        assert_eq!(items[2].id, Some(6));
        assert_eq!(exact_result(items[2].raw), Some(r#"{"b":2}"#));
        assert_eq!(items[3].id, Some(7));
        assert_eq!(items[3].outcome, Outcome::Result(r#""0x1""#));
        assert_eq!(exact_result(r#"{"id":1,"result":null}"#), None);
    }

    #[test]
    fn bad_bytes_anywhere_are_an_error_not_a_panic() {
        let mut body = br#"[{"jsonrpc":"2.0","id":0,"result":{"x":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}]"#.to_vec();
        for i in 1..body.len() - 1 {
            let saved = body[i];
            for b in [0xffu8, b'"', b'}', 0] {
                body[i] = b;
                let _ = parse(&body);
            }
            body[i] = saved;
        }
        body[50] = 0xff;
        assert!(parse(&body).is_err());
    }

    #[test]
    fn bad_bodies() {
        for bad in [
            &b""[..],
            b"<html>hi</html>",
            br#"[{"jsonrpc":"2.0","id":0,"result":{"number":"0x1""#,
            br#"[{"id":0,"result":1},"#,
            b"\x80\x81\x82",
            br#"[{"id":0,"result":"\xff"}]"#,
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"rate limit exceeded"}}"#)
                .unwrap(),
            Body::Single(Item {
                outcome: Outcome::Error {
                    code: Some(-32005),
                    ..
                },
                ..
            })
        ));
        assert!(matches!(parse(b"null").unwrap(), Body::Other));
    }

    #[test]
    fn hashes() {
        let h1 = format!("0x{}", "ab".repeat(32));
        let h2 = format!("0x{}", "cd".repeat(32));
        let block = format!(
            r#"{{"number":"0x1","transactions":[{{"from":"0x0","hash":"{h1}"}},{{"hash":"{h2}","to":null}}]}}"#
        );
        assert_eq!(transaction_hashes(&block).unwrap(), vec![h1.clone(), h2]);
        let hashes_only = format!(r#"{{"transactions":["{h1}"]}}"#);
        assert_eq!(transaction_hashes(&hashes_only).unwrap(), vec![h1]);
        assert_eq!(
            transaction_hashes(r#"{"transactions":[]}"#).unwrap().len(),
            0
        );
        assert!(transaction_hashes(r#"{"number":"0x1"}"#).is_err());
        assert!(transaction_hashes(r#"{"transactions":[{"hash":"0x12"}]}"#).is_err());
    }
}
