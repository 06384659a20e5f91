//! Tiny JSON writers for pre-rendered node replies: hex data, hex quantities (minimal digits,
//! `0x0` for zero, as geth prints them) and compact objects. Output is always valid compact JSON.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the lowercase hex digits of `bytes` (no prefix, no quotes).
pub(crate) fn hex_raw(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + 2 * bytes.len(), 0);
    // The destination is exactly twice the input, so this cannot fail.
    let _ = hex::encode_to_slice(bytes, &mut out[start..]);
}

/// Appends `"0x<hex>"` (data encoding: every byte, leading zeros kept).
pub(crate) fn data(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(b"\"0x");
    hex_raw(out, bytes);
    out.push(b'"');
}

/// Appends `"0x<hex>"` for a quantity (minimal digits, `0x0` for zero).
pub(crate) fn qty(out: &mut Vec<u8>, v: u64) {
    qty128(out, v as u128);
}

/// Appends `"0x<hex>"` for a 128-bit quantity.
pub(crate) fn qty128(out: &mut Vec<u8>, v: u128) {
    out.extend_from_slice(b"\"0x");
    if v == 0 {
        out.push(b'0');
    } else {
        let digits = (128 - v.leading_zeros()).div_ceil(4);
        for i in (0..digits).rev() {
            out.push(HEX[((v >> (4 * i)) & 0xf) as usize]);
        }
    }
    out.push(b'"');
}

/// Appends `"0x<hex>"` for a big-endian unsigned integer of any width (minimal digits).
pub(crate) fn qty_be(out: &mut Vec<u8>, be: &[u8]) {
    let first = be.iter().position(|&b| b != 0);
    out.extend_from_slice(b"\"0x");
    match first {
        None => out.push(b'0'),
        Some(i) => {
            let b = be[i];
            if b >> 4 != 0 {
                out.push(HEX[(b >> 4) as usize]);
            }
            out.push(HEX[(b & 0xf) as usize]);
            hex_raw(out, &be[i + 1..]);
        }
    }
    out.push(b'"');
}

/// Appends a JSON string literal for text that needs no escaping (checked in debug builds).
pub(crate) fn plain_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(!s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// A compact JSON object being written: `key` inserts the separator and `"key":`, the caller
/// then writes the value into the returned buffer.
pub(crate) struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    pub(crate) fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    pub(crate) fn end(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn quantities_are_minimal() {
        assert_eq!(s(|o| qty(o, 0)), "\"0x0\"");
        assert_eq!(s(|o| qty(o, 1)), "\"0x1\"");
        assert_eq!(s(|o| qty(o, 0x12889af)), "\"0x12889af\"");
        assert_eq!(s(|o| qty(o, u64::MAX)), "\"0xffffffffffffffff\"");
        assert_eq!(
            s(|o| qty128(o, u128::MAX)),
            format!("\"0x{}\"", "f".repeat(32))
        );
        assert_eq!(s(|o| qty_be(o, &[0, 0, 0])), "\"0x0\"");
        assert_eq!(s(|o| qty_be(o, &[0, 0x0a, 0xbc])), "\"0xabc\"");
        assert_eq!(s(|o| qty_be(o, &[0x1f, 0x00])), "\"0x1f00\"");
        assert_eq!(
            s(|o| qty_be(o, &[0xff; 32])),
            format!("\"0x{}\"", "f".repeat(64))
        );
    }

    #[test]
    fn data_keeps_leading_zeros() {
        assert_eq!(s(|o| data(o, &[])), "\"0x\"");
        assert_eq!(s(|o| data(o, &[0, 1, 0xab])), "\"0x0001ab\"");
    }

    #[test]
    fn objects_are_compact() {
        let out = s(|o| {
            let mut obj = Obj::new(o);
            qty(obj.key("a"), 10);
            obj.key("b").extend_from_slice(b"null");
            obj.end();
        });
        assert_eq!(out, r#"{"a":"0xa","b":null}"#);
    }
}
