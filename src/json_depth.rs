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
///
/// On x86-64 it works 64 bytes at a time, as simdjson's first stage does: SSE2 compares give
/// bit masks of quotes, backslashes and brackets; the escaped characters are worked out only
/// where a block has a backslash (hex-heavy node answers almost never do); the inside of
/// strings is the prefix XOR of the unescaped quotes; then one step per bracket outside
/// strings. Elsewhere it goes byte by byte, jumping over strings with `memchr`.
pub fn max_depth(bytes: &[u8], limit: usize) -> Result<usize, TooDeep> {
    #[cfg(target_arch = "x86_64")]
    {
        max_depth_blocks(bytes, limit)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        max_depth_bytewise(bytes, limit)
    }
}

#[cfg(target_arch = "x86_64")]
fn max_depth_blocks(bytes: &[u8], limit: usize) -> Result<usize, TooDeep> {
    let mut scan = Scan::default();
    let mut chunks = bytes.chunks_exact(64);
    let mut base = 0;
    for chunk in &mut chunks {
        scan.block(chunk.try_into().expect("64 bytes"), base, limit)?;
        base += 64;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [b' '; 64];
        last[..rest.len()].copy_from_slice(rest);
        scan.block(&last, base, limit)?;
    }
    Ok(scan.deepest)
}

/// The bytes of `c` equal to `"`, `\\`, `[` or `{`, `]` or `}`, as bit masks (bit k: byte k).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn masks(c: &[u8; 64]) -> (u64, u64, u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let (mut quote, mut backslash, mut open, mut close) = (0u64, 0u64, 0u64, 0u64);
    // `[`/`{` and `]`/`}` differ by 0x20 only.
    let (q, bs, op, cl, fold) = (
        _mm_set1_epi8(b'"' as i8),
        _mm_set1_epi8(b'\\' as i8),
        _mm_set1_epi8(b'{' as i8),
        _mm_set1_epi8(b'}' as i8),
        _mm_set1_epi8(0x20),
    );
    for part in 0..4 {
        // SAFETY: `part * 16 + 16 <= 64`, and the unaligned load reads exactly those 16 bytes.
        let v = unsafe { _mm_loadu_si128(c.as_ptr().add(part * 16).cast::<__m128i>()) };
        let folded = _mm_or_si128(v, fold);
        let bits = |m| u64::from(_mm_movemask_epi8(m) as u16) << (part * 16);
        quote |= bits(_mm_cmpeq_epi8(v, q));
        backslash |= bits(_mm_cmpeq_epi8(v, bs));
        open |= bits(_mm_cmpeq_epi8(folded, op));
        close |= bits(_mm_cmpeq_epi8(folded, cl));
    }
    (quote, backslash, open, close)
}

/// Byte by byte, jumping over strings with `memchr` (the scan where SSE2 is not there, and the
/// reference the block scan is tested against).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn max_depth_bytewise(bytes: &[u8], limit: usize) -> Result<usize, TooDeep> {
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

/// What a scan carries from one 64-byte block to the next.
#[cfg(target_arch = "x86_64")]
#[derive(Default)]
struct Scan {
    depth: usize,
    deepest: usize,
    /// The previous block ended inside a string.
    in_string: bool,
    /// The previous block ended with a backslash that escapes this block's first byte.
    escape_next: bool,
}

#[cfg(target_arch = "x86_64")]
impl Scan {
    fn block(&mut self, c: &[u8; 64], base: usize, limit: usize) -> Result<(), TooDeep> {
        // SAFETY: SSE2 is part of the x86-64 baseline, so the feature `masks` enables is
        // always there.
        let (quote, backslash, open, close) = unsafe { masks(c) };
        let mut escaped = 0u64;
        if backslash != 0 || self.escape_next {
            let mut pending = self.escape_next;
            for k in 0..64 {
                if pending {
                    escaped |= 1 << k;
                    pending = false;
                } else if backslash >> k & 1 == 1 {
                    pending = true;
                }
            }
            self.escape_next = pending;
        }
        let mut inside = prefix_xor(quote & !escaped);
        if self.in_string {
            inside = !inside;
        }
        self.in_string = inside >> 63 == 1;
        let plain = !inside & !escaped;
        let opens = open & plain;
        let mut brackets = opens | (close & plain);
        while brackets != 0 {
            let k = brackets.trailing_zeros();
            if opens >> k & 1 == 1 {
                self.depth += 1;
                if self.depth > limit {
                    return Err(TooDeep {
                        limit,
                        offset: Some(base + k as usize),
                    });
                }
                self.deepest = self.deepest.max(self.depth);
            } else {
                self.depth = self.depth.saturating_sub(1);
            }
            brackets &= brackets - 1;
        }
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
/// Bit k of the result is the XOR of bits 0..=k of `x`: set from an opening quote up to (not
/// including) its closing quote.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
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

    /// The same rules one byte at a time: a backslash escapes the next byte, an unescaped
    /// quote toggles "inside a string", brackets outside strings move the depth.
    fn reference(bytes: &[u8], limit: usize) -> Result<usize, TooDeep> {
        let (mut depth, mut deepest, mut inside, mut escaped) = (0usize, 0usize, false, false);
        for (i, &b) in bytes.iter().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' => escaped = true,
                b'"' => inside = !inside,
                b'[' | b'{' if !inside => {
                    depth += 1;
                    if depth > limit {
                        return Err(TooDeep {
                            limit,
                            offset: Some(i),
                        });
                    }
                    deepest = deepest.max(depth);
                }
                b']' | b'}' if !inside => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        Ok(deepest)
    }

    proptest! {
        #[test]
        fn blocks_of_64_agree_with_the_byte_by_byte_rules(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"\"\\[]{}a ;".to_vec()),
                0..400,
            ),
            limit in 0usize..12,
        ) {
            prop_assert_eq!(max_depth(&bytes, limit), reference(&bytes, limit));
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
            // Both scans, whichever this platform uses.
            prop_assert_eq!(max_depth(text.as_bytes(), 64), Ok(depth));
            prop_assert_eq!(max_depth_bytewise(text.as_bytes(), 64), Ok(depth));
        }
    }
}
