//! The one request layout shared by the fetch stage (which writes it) and the decode stage
//! (which matches answers to it by `id`): for block `start + i` of a job, the
//! `eth_getBlockByNumber(n, true)` call has id `2*i` and `eth_getBlockReceipts(n)` id `2*i + 1`.

use crate::msg::RangeJob;
use std::io::Write;

/// Which call an id stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Block(u64),
    Receipts(u64),
}

impl Call {
    pub fn method(self) -> &'static str {
        match self {
            Call::Block(_) => "eth_getBlockByNumber",
            Call::Receipts(_) => "eth_getBlockReceipts",
        }
    }

    pub fn block(self) -> u64 {
        match self {
            Call::Block(n) | Call::Receipts(n) => n,
        }
    }
}

/// The JSON-RPC id of `call` inside `job`.
pub fn call_id(job: &RangeJob, call: Call) -> u64 {
    match call {
        Call::Block(n) => 2 * (n - job.start),
        Call::Receipts(n) => 2 * (n - job.start) + 1,
    }
}

/// The call an id stands for inside `job`, or `None` for an id the request never used.
pub fn call_for_id(job: &RangeJob, id: u64, with_receipts: bool) -> Option<Call> {
    let n = job.start.checked_add(id / 2)?;
    if n > job.end {
        return None;
    }
    if id.is_multiple_of(2) {
        Some(Call::Block(n))
    } else if with_receipts {
        Some(Call::Receipts(n))
    } else {
        None
    }
}

/// Number of calls in the batch for `job`.
pub fn call_count(job: &RangeJob, with_receipts: bool) -> usize {
    (job.block_count() as usize) * if with_receipts { 2 } else { 1 }
}

/// Writes the JSON-RPC batch request body for `job` into `out` (cleared first).
pub fn write_request(job: &RangeJob, with_receipts: bool, out: &mut Vec<u8>) {
    out.clear();
    out.push(b'[');
    for n in job.start..=job.end {
        if n != job.start {
            out.push(b',');
        }
        let _ = write!(
            out,
            r#"{{"jsonrpc":"2.0","id":{},"method":"eth_getBlockByNumber","params":["0x{:x}",true]}}"#,
            call_id(job, Call::Block(n)),
            n
        );
        if with_receipts {
            let _ = write!(
                out,
                r#",{{"jsonrpc":"2.0","id":{},"method":"eth_getBlockReceipts","params":["0x{:x}"]}}"#,
                call_id(job, Call::Receipts(n)),
                n
            );
        }
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let job = RangeJob {
            seq: 3,
            start: 100,
            end: 104,
            attempt: 0,
        };
        for n in 100..=104 {
            for call in [Call::Block(n), Call::Receipts(n)] {
                assert_eq!(call_for_id(&job, call_id(&job, call), true), Some(call));
            }
        }
        assert_eq!(call_for_id(&job, 10, true), None);
        assert_eq!(call_for_id(&job, 1, false), None);
        assert_eq!(call_count(&job, true), 10);
    }

    #[test]
    fn request_is_valid_json() {
        let job = RangeJob {
            seq: 0,
            start: 18_000_000,
            end: 18_000_001,
            attempt: 0,
        };
        let mut out = Vec::new();
        write_request(&job, true, &mut out);
        let v: sonic_rs::Value = sonic_rs::from_slice(&out).unwrap();
        let s = sonic_rs::to_string(&v).unwrap();
        assert!(s.contains(r#""params":["0x112a880",true]"#), "{s}");
        assert!(
            s.contains(r#""id":3,"method":"eth_getBlockReceipts","params":["0x112a881"]"#),
            "{s}"
        );
    }
}
