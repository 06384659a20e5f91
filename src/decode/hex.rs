//! Hex quantities (`0x`-prefixed, as JSON-RPC sends them) to exact decimal text, without
//! allocating: a `u64` fast path, and ruint's `U256` for anything wider (up to 256 bits).
//!
//! Accepted: `0x`/`0X` followed by one or more hex digits of either case, any length, leading
//! zeros allowed (`0x0`, `0x00ff`, `0xABC`). Rejected with a [`HexError`]: no prefix, nothing
//! after the prefix (`0x`), a non-hex digit, more than 256 significant bits.

use ruint::aliases::U256;

/// Why a hex quantity could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("not a hex quantity: missing 0x prefix")]
    NoPrefix,
    #[error("not a hex quantity: no digits after 0x")]
    Empty,
    #[error("not a hex quantity: byte {byte:#04x} at offset {offset} is not a hex digit")]
    BadDigit { byte: u8, offset: usize },
    #[error("hex quantity wider than {max_bits} bits ({digits} significant hex digits)")]
    TooWide { max_bits: u32, digits: usize },
}

const BAD: u8 = 0xff;

/// Hex digit value per byte, `BAD` for non-digits.
static HEX_VAL: [u8; 256] = {
    let mut t = [BAD; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// 10^19, the largest power of ten that fits a `u64`: decimal output goes in 19-digit chunks.
const CHUNK: u64 = 10_000_000_000_000_000_000;
const CHUNK_DIGITS: usize = 19;

/// Whether every byte of `s` is a hex digit (either case). `true` for an empty slice.
#[inline]
pub fn is_hex_digits(s: &[u8]) -> bool {
    s.iter().all(|&b| HEX_VAL[b as usize] != BAD)
}

/// Strips the `0x`/`0X` prefix and returns the digits (not checked here).
#[inline]
fn strip_prefix(s: &str) -> Result<&[u8], HexError> {
    let b = s.as_bytes();
    if b.len() < 2 || b[0] != b'0' || (b[1] != b'x' && b[1] != b'X') {
        return Err(HexError::NoPrefix);
    }
    if b.len() == 2 {
        return Err(HexError::Empty);
    }
    Ok(&b[2..])
}

/// Offset of the first non-hex byte in `digits` (reported with the `0x` prefix counted).
fn check_digits(digits: &[u8], prefix_len: usize) -> Result<(), HexError> {
    match digits.iter().position(|&b| HEX_VAL[b as usize] == BAD) {
        Some(i) => Err(HexError::BadDigit {
            byte: digits[i],
            offset: i + prefix_len,
        }),
        None => Ok(()),
    }
}

/// Accumulates at most 16 hex digits into a `u64`; `Err(offset)` at the first non-digit.
#[inline]
fn fold_u64(digits: &[u8]) -> Result<u64, usize> {
    let mut v = 0u64;
    for (i, &b) in digits.iter().enumerate() {
        let d = HEX_VAL[b as usize];
        if d == BAD {
            return Err(i);
        }
        v = (v << 4) | d as u64;
    }
    Ok(v)
}

/// Splits off leading zero digits.
#[inline]
fn significant(digits: &[u8]) -> (usize, &[u8]) {
    let zeros = digits.iter().take_while(|&&b| b == b'0').count();
    (zeros, &digits[zeros..])
}

/// Parses a `0x` quantity into a `u64` (error if it needs more than 64 bits).
pub fn parse_u64(s: &str) -> Result<u64, HexError> {
    let digits = strip_prefix(s)?;
    parse_u64_digits(digits, 2)
}

fn parse_u64_digits(digits: &[u8], prefix_len: usize) -> Result<u64, HexError> {
    let (zeros, sig) = significant(digits);
    if sig.len() > 16 {
        check_digits(sig, prefix_len + zeros)?;
        return Err(HexError::TooWide {
            max_bits: 64,
            digits: sig.len(),
        });
    }
    fold_u64(sig).map_err(|i| HexError::BadDigit {
        byte: sig[i],
        offset: prefix_len + zeros + i,
    })
}

/// Appends the decimal text of the `0x` quantity `s` to `out`. Nothing is appended on error.
pub fn write_decimal(out: &mut Vec<u8>, s: &str) -> Result<(), HexError> {
    let digits = strip_prefix(s)?;
    write_decimal_digits_at(out, digits, 2)
}

/// Appends the decimal text of bare hex `digits` (no `0x`, e.g. one 64-digit ABI word).
/// An empty slice is zero.
pub fn write_decimal_digits(out: &mut Vec<u8>, digits: &[u8]) -> Result<(), HexError> {
    write_decimal_digits_at(out, digits, 0)
}

fn write_decimal_digits_at(
    out: &mut Vec<u8>,
    digits: &[u8],
    prefix_len: usize,
) -> Result<(), HexError> {
    let (zeros, sig) = significant(digits);
    let bad = |i: usize| HexError::BadDigit {
        byte: sig[i],
        offset: prefix_len + zeros + i,
    };
    if sig.len() <= 16 {
        let v = fold_u64(sig).map_err(bad)?;
        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        return Ok(());
    }
    if sig.len() > 64 {
        check_digits(sig, prefix_len + zeros)?;
        return Err(HexError::TooWide {
            max_bits: 256,
            digits: sig.len(),
        });
    }
    // Little-endian 64-bit limbs, 16 hex digits each, from the least significant end.
    let mut limbs = [0u64; 4];
    let mut end = sig.len();
    for limb in limbs.iter_mut() {
        if end == 0 {
            break;
        }
        let start = end.saturating_sub(16);
        *limb = fold_u64(&sig[start..end]).map_err(|i| bad(start + i))?;
        end = start;
    }
    write_u256(out, &U256::from_limbs(limbs));
    Ok(())
}

/// Appends the decimal text of a `U256`.
pub fn write_u256(out: &mut Vec<u8>, v: &U256) {
    // 2^256 < 10^78: at most 5 chunks of 19 digits.
    let mut chunks = [0u64; 5];
    let mut n = 0;
    for c in v.to_base_le(CHUNK) {
        chunks[n] = c;
        n += 1;
    }
    if n == 0 {
        out.push(b'0');
        return;
    }
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(chunks[n - 1]).as_bytes());
    for &c in chunks[..n - 1].iter().rev() {
        let s = buf.format(c).as_bytes();
        out.extend(std::iter::repeat_n(b'0', CHUNK_DIGITS - s.len()));
        out.extend_from_slice(s);
    }
}

/// The decimal text of a `0x` quantity (convenience for tests and error paths; allocates).
pub fn to_decimal_string(s: &str) -> Result<String, HexError> {
    let mut out = Vec::with_capacity(24);
    write_decimal(&mut out, s)?;
    // Only ASCII digits were written.
    Ok(String::from_utf8(out).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(s: &str) -> Result<String, HexError> {
        to_decimal_string(s)
    }

    #[test]
    fn small_values() {
        assert_eq!(dec("0x0").unwrap(), "0");
        assert_eq!(dec("0x00").unwrap(), "0");
        assert_eq!(dec("0x1").unwrap(), "1");
        assert_eq!(dec("0xa").unwrap(), "10");
        assert_eq!(dec("0xff").unwrap(), "255");
        assert_eq!(dec("0xFF").unwrap(), "255");
        assert_eq!(dec("0XfF").unwrap(), "255");
        assert_eq!(dec("0x112a880").unwrap(), "18000000");
        // Odd digit counts are normal for quantities.
        assert_eq!(dec("0xabc").unwrap(), "2748");
        assert_eq!(dec("0x00abc").unwrap(), "2748");
        assert_eq!(dec(&format!("0x{}", "f".repeat(63))).unwrap(), {
            // 2^252 - 1
            (U256::from(1u8) << 252usize)
                .wrapping_sub(U256::from(1u8))
                .to_string()
        });
        assert_eq!(dec("0x000000000000000000000000000000000001").unwrap(), "1");
        assert_eq!(dec("0xffffffffffffffff").unwrap(), u64::MAX.to_string());
        assert_eq!(parse_u64("0xffffffffffffffff").unwrap(), u64::MAX);
        assert_eq!(
            parse_u64("0x0000000000000000000000ffffffffffffffff").unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn wide_values() {
        assert_eq!(dec("0x10000000000000000").unwrap(), "18446744073709551616");
        // 2^256 - 1, a well-known constant.
        assert_eq!(
            dec(&format!("0x{}", "f".repeat(64))).unwrap(),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
        assert_eq!(
            dec(&format!("0x{}{}", "0".repeat(30), "F".repeat(64))).unwrap(),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
        // 10^19 exactly: a chunk boundary.
        assert_eq!(dec("0x8ac7230489e80000").unwrap(), "10000000000000000000");
        // 10^38 (needs padding of inner chunks).
        assert_eq!(
            dec("0x4b3b4ca85a86c47a098a224000000000").unwrap(),
            "100000000000000000000000000000000000000"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(dec(""), Err(HexError::NoPrefix));
        assert_eq!(dec("0"), Err(HexError::NoPrefix));
        assert_eq!(dec("ff"), Err(HexError::NoPrefix));
        assert_eq!(dec("1x5"), Err(HexError::NoPrefix));
        assert_eq!(dec("0x"), Err(HexError::Empty));
        assert_eq!(
            dec("0xg"),
            Err(HexError::BadDigit {
                byte: b'g',
                offset: 2
            })
        );
        assert_eq!(
            dec("0x12 "),
            Err(HexError::BadDigit {
                byte: b' ',
                offset: 4
            })
        );
        assert_eq!(
            dec("0x-1"),
            Err(HexError::BadDigit {
                byte: b'-',
                offset: 2
            })
        );
        let long_bad = format!("0x{}z", "1".repeat(40));
        assert_eq!(
            dec(&long_bad),
            Err(HexError::BadDigit {
                byte: b'z',
                offset: 42
            })
        );
        let too_wide = format!("0x1{}", "0".repeat(64));
        assert_eq!(
            dec(&too_wide),
            Err(HexError::TooWide {
                max_bits: 256,
                digits: 65
            })
        );
        assert_eq!(
            parse_u64("0x10000000000000000"),
            Err(HexError::TooWide {
                max_bits: 64,
                digits: 17
            })
        );
        // Nothing is written on error.
        let mut out = b"x".to_vec();
        assert!(write_decimal(&mut out, &format!("0x{}g", "1".repeat(30))).is_err());
        assert_eq!(out, b"x");
    }

    #[test]
    fn bare_words() {
        let mut out = Vec::new();
        write_decimal_digits(&mut out, b"").unwrap();
        out.push(b' ');
        write_decimal_digits(&mut out, &[b'0'; 64]).unwrap();
        out.push(b' ');
        write_decimal_digits(
            &mut out,
            b"00000000000000000000000000000000000000000000000029a2241af62c0000",
        )
        .unwrap();
        assert_eq!(out, b"0 0 3000000000000000000");
    }

    proptest! {
        #[test]
        fn u64_matches_std(v: u64, zeros in 0usize..20, upper: bool) {
            let mut h = format!("{v:x}");
            if upper { h = h.to_uppercase(); }
            let s = format!("0x{}{}", "0".repeat(zeros), h);
            prop_assert_eq!(dec(&s).unwrap(), v.to_string());
            prop_assert_eq!(parse_u64(&s).unwrap(), v);
        }

        #[test]
        fn u128_matches_std(v: u128, zeros in 0usize..5) {
            let s = format!("0x{}{:x}", "0".repeat(zeros), v);
            prop_assert_eq!(dec(&s).unwrap(), v.to_string());
        }

        #[test]
        fn u256_matches_ruint_display(limbs: [u64; 4], zeros in 0usize..5, upper: bool) {
            let v = U256::from_limbs(limbs);
            let mut h = format!("{v:x}");
            if upper { h = h.to_uppercase(); }
            let s = format!("0x{}{}", "0".repeat(zeros), h);
            prop_assert_eq!(dec(&s).unwrap(), v.to_string());
        }

        #[test]
        fn non_hex_is_an_error(prefix in "[0-9a-f]{0,70}", bad in "[g-zG-Z_ .+-]", suffix in "[0-9a-f]{0,5}") {
            let s = format!("0x{prefix}{bad}{suffix}");
            prop_assert!(dec(&s).is_err());
            prop_assert!(parse_u64(&s).is_err());
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = dec(&s);
            let _ = parse_u64(&s);
        }
    }
}
