//! A nesting-depth guard for JSON from outside: sonic-rs (like most parsers) recurses once per
//! array or object level, so a node that sends ten thousand `[` would overflow the parsing
//! thread's stack and abort the whole process. [`check`] scans the bytes once, without
//! recursion or allocation, and refuses anything nested deeper than a limit before any parser
//! sees it. It does not validate: it only has to be right about depth on valid JSON and never
//! fail on anything else (the parser then says what is wrong).

/// The deepest nesting the I/O threads' light pass ([`crate::rpc::response::parse`]) and the
/// head tracker accept in a body: generous, since a call tracer's output nests two levels per
/// call frame (the EVM allows 1024). sonic-rs's lazy parse needs ~250 bytes of stack a level
/// in a debug build (8,000 levels overflow 2 MB); the threads that run it get
/// [`PARSE_STACK`].
pub const MAX_DEPTH: usize = 2100;

/// The deepest nesting the decoder accepts in a batch of blocks and receipts. The deepest
/// real shape is 8 levels (batch, answer, block, transactions, transaction, access list,
/// entry, storage keys); typed deserialization needs ~40 KB of stack a level in a debug build
/// (about 45 levels overflow 2 MB), so the limit stays well below what [`PARSE_STACK`]
/// holds.
pub const DECODE_DEPTH: usize = 32;

/// Stack size of every thread that parses answers (I/O threads, decode threads): 8 MB of
/// address space, touched only as deep as a parse really goes.
pub const PARSE_STACK: usize = 8 << 20;

/// The body nests deeper than the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("JSON nested more than {limit} levels deep{}", .offset.map(|o| format!(" (at byte {o})")).unwrap_or_default())]
pub struct TooDeep {
    /// The limit that was passed.
    pub limit: usize,
    /// Where the first level over the limit opens, when the bytes were scanned here.
    pub offset: Option<usize>,
}

/// `Err` if `bytes` holds an array or object nested more than `limit` levels deep (a bare
/// `[]` is one level). Brackets inside strings do not count; escapes are honoured.
pub fn check(bytes: &[u8], limit: usize) -> Result<(), TooDeep> {
    max_depth(bytes, limit).map(|_| ())
}

/// [`check`], returning the deepest level seen (0 for a scalar).
pub fn max_depth(bytes: &[u8], limit: usize) -> Result<usize, TooDeep> {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                // Skip the string: to the next unescaped quote.
                i += 1;
                loop {
                    let Some(rest) = bytes.get(i..) else {
                        return Ok(deepest);
                    };
                    match memchr::memchr2(b'"', b'\\', rest) {
                        Some(k) if rest[k] == b'\\' => i += k + 2,
                        Some(k) => {
                            i += k + 1;
                            break;
                        }
                        None => return Ok(deepest), // unterminated: the parser will say
                    }
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(TooDeep {
                        limit,
                        offset: Some(i),
                    });
                }
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(deepest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Depth by the obvious recursive definition, on values sonic-rs parsed.
    fn model(v: &sonic_rs::Value) -> usize {
        use sonic_rs::JsonContainerTrait;
        if let Some(a) = v.as_array() {
            1 + a.iter().map(model).max().unwrap_or(0)
        } else if let Some(o) = v.as_object() {
            1 + o.iter().map(|(_, v)| model(v)).max().unwrap_or(0)
        } else {
            0
        }
    }

    #[test]
    fn counts_levels_outside_strings_only() {
        assert_eq!(check(b"[]", 1), Ok(()));
        assert!(check(b"[[]]", 1).is_err());
        assert_eq!(check(br#"{"a":"[[[[{{{{"}"#, 1), Ok(()));
        assert_eq!(check(br#"["\"[[[", "\\", {}]"#, 2), Ok(()));
        assert!(check(br#"["\\", [[]]]"#, 2).is_err());
        assert_eq!(
            check(br#"[{"a":[1]}]"#, 2),
            Err(TooDeep {
                limit: 2,
                offset: Some(6)
            })
        );
        // Not JSON at all: no error from here, the parser decides.
        for junk in [&b""[..], b"\"", b"\"\\", b"]]]]}}", b"\xff\xfe", b"[\"abc"] {
            assert_eq!(check(junk, 1), Ok(()), "{junk:?}");
        }
    }

    #[test]
    fn reports_the_deepest_level() {
        assert_eq!(max_depth(b"7", 5), Ok(0));
        assert_eq!(max_depth(br#"[{"a":[1]},[]]"#, 5), Ok(3));
        assert_eq!(max_depth(br#"{"a":"[[["}"#, 5), Ok(1));
    }

    #[test]
    fn deep_bodies_are_refused_at_any_depth() {
        assert_eq!(check(&b"[".repeat(1_000), MAX_DEPTH), Ok(()));
        assert!(check(&b"[".repeat(1_000), DECODE_DEPTH).is_err());
        for n in [10_000usize, 100_000, 1_000_000] {
            for open in [&b"["[..], b"{\"a\":", b"[{\"a\":"] {
                let body = open.repeat(n);
                assert!(check(&body, MAX_DEPTH).is_err(), "{n}");
            }
        }
    }

    fn json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            "[a-z\\[\\]{}\"\\\\]{0,6}".prop_map(|s| sonic_rs::to_string(&s).unwrap()),
            any::<i32>().prop_map(|n| n.to_string()),
        ];
        leaf.prop_recursive(12, 64, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec(("[a-z\\[{]{0,3}", inner), 0..4).prop_map(|v| {
                    let members: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("{}:{v}", sonic_rs::to_string(&k).unwrap()))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn agrees_with_the_parsed_depth(text in json()) {
            let v: sonic_rs::Value = sonic_rs::from_str(&text).unwrap();
            let depth = model(&v);
            prop_assert!(check(text.as_bytes(), depth).is_ok());
            if depth > 0 {
                prop_assert!(check(text.as_bytes(), depth - 1).is_err());
            }
        }
    }
}
