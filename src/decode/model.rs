//! The borrowed shapes of a JSON-RPC batch answer: every string borrows from the response body
//! (a `Cow` is owned only when the JSON string holds escapes), unknown fields are skipped, and a
//! missing optional field is `None`. One pass of sonic-rs over the body fills all of it.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// A JSON string borrowed from the body (owned only if it contained escapes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JStr<'a>(pub Cow<'a, str>);

impl JStr<'_> {
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = JStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(JStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// Optional string field.
pub type OStr<'a> = Option<JStr<'a>>;

/// `l1FeeScalar`: OP nodes send a decimal string (`"0.684"`); a JSON number is accepted too.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar<'a> {
    Text(JStr<'a>),
    Num(f64),
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(JStr(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(JStr(Cow::Owned(v.to_owned()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A log's topics: up to four inline (the EVM maximum), more spill to a `Vec`, so a
/// well-formed log costs no allocation for its topics. `null` reads as no topics.
#[derive(Clone, Debug, Default)]
pub struct Topics<'a> {
    inline: [JStr<'a>; 4],
    len: u8,
    spill: Vec<JStr<'a>>,
}

impl<'a> Topics<'a> {
    pub fn len(&self) -> usize {
        self.len as usize + self.spill.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        if i < self.len as usize {
            Some(self.inline[i].as_str())
        } else {
            self.spill.get(i - self.len as usize).map(JStr::as_str)
        }
    }

    /// The topics as two slices (inline part, spilled part), in order.
    pub fn parts(&self) -> (&[JStr<'a>], &[JStr<'a>]) {
        (&self.inline[..self.len as usize], &self.spill)
    }

    fn push(&mut self, t: JStr<'a>) {
        if (self.len as usize) < self.inline.len() {
            self.inline[self.len as usize] = t;
            self.len += 1;
        } else {
            self.spill.push(t);
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Topics<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Topics<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of topic strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut t = Topics::default();
                while let Some(s) = seq.next_element::<JStr<'a>>()? {
                    t.push(s);
                }
                Ok(t)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Topics::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Topics::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Withdrawal<'a> {
    #[serde(borrow)]
    pub index: OStr<'a>,
    #[serde(borrow)]
    pub validator_index: OStr<'a>,
    #[serde(borrow)]
    pub address: OStr<'a>,
    #[serde(borrow)]
    pub amount: OStr<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessItem<'a> {
    #[serde(borrow)]
    pub address: OStr<'a>,
    #[serde(borrow, default)]
    pub storage_keys: Option<Vec<JStr<'a>>>,
}

/// One EIP-7702 authorization (`authority` is a provider extra: the recovered signer).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization<'a> {
    #[serde(borrow)]
    pub chain_id: OStr<'a>,
    #[serde(borrow)]
    pub address: OStr<'a>,
    #[serde(borrow)]
    pub nonce: OStr<'a>,
    #[serde(borrow)]
    pub y_parity: OStr<'a>,
    #[serde(borrow)]
    pub r: OStr<'a>,
    #[serde(borrow)]
    pub s: OStr<'a>,
    #[serde(borrow)]
    pub authority: OStr<'a>,
}

/// A hydrated transaction of `eth_getBlockByNumber(n, true)`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tx<'a> {
    #[serde(borrow)]
    pub hash: JStr<'a>,
    #[serde(borrow)]
    pub nonce: OStr<'a>,
    #[serde(borrow)]
    pub block_hash: OStr<'a>,
    #[serde(borrow)]
    pub block_number: OStr<'a>,
    #[serde(borrow)]
    pub transaction_index: OStr<'a>,
    #[serde(borrow)]
    pub from: OStr<'a>,
    #[serde(borrow)]
    pub to: OStr<'a>,
    #[serde(borrow)]
    pub value: OStr<'a>,
    #[serde(borrow)]
    pub gas: OStr<'a>,
    #[serde(borrow)]
    pub gas_price: OStr<'a>,
    #[serde(borrow)]
    pub input: OStr<'a>,
    #[serde(borrow)]
    pub max_fee_per_gas: OStr<'a>,
    #[serde(borrow)]
    pub max_priority_fee_per_gas: OStr<'a>,
    #[serde(borrow, rename = "type")]
    pub tx_type: OStr<'a>,
    #[serde(borrow)]
    pub max_fee_per_blob_gas: OStr<'a>,
    #[serde(borrow, default)]
    pub blob_versioned_hashes: Option<Vec<JStr<'a>>>,
    #[serde(borrow)]
    pub chain_id: OStr<'a>,
    #[serde(borrow, default)]
    pub access_list: Option<Vec<AccessItem<'a>>>,
    #[serde(borrow, default)]
    pub authorization_list: Option<Vec<Authorization<'a>>>,
    #[serde(borrow)]
    pub y_parity: OStr<'a>,
    #[serde(borrow)]
    pub v: OStr<'a>,
    #[serde(borrow)]
    pub r: OStr<'a>,
    #[serde(borrow)]
    pub s: OStr<'a>,
}

/// The result of `eth_getBlockByNumber(n, true)`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Block<'a> {
    #[serde(borrow)]
    pub number: JStr<'a>,
    #[serde(borrow)]
    pub hash: JStr<'a>,
    #[serde(borrow)]
    pub parent_hash: JStr<'a>,
    #[serde(borrow)]
    pub nonce: OStr<'a>,
    #[serde(borrow)]
    pub sha3_uncles: OStr<'a>,
    #[serde(borrow)]
    pub logs_bloom: OStr<'a>,
    #[serde(borrow)]
    pub transactions_root: OStr<'a>,
    #[serde(borrow)]
    pub state_root: OStr<'a>,
    #[serde(borrow)]
    pub receipts_root: OStr<'a>,
    #[serde(borrow)]
    pub miner: OStr<'a>,
    #[serde(borrow)]
    pub difficulty: OStr<'a>,
    #[serde(borrow)]
    pub total_difficulty: OStr<'a>,
    #[serde(borrow)]
    pub size: OStr<'a>,
    #[serde(borrow)]
    pub extra_data: OStr<'a>,
    #[serde(borrow)]
    pub gas_limit: OStr<'a>,
    #[serde(borrow)]
    pub gas_used: OStr<'a>,
    #[serde(borrow)]
    pub timestamp: JStr<'a>,
    #[serde(borrow)]
    pub base_fee_per_gas: OStr<'a>,
    #[serde(borrow)]
    pub withdrawals_root: OStr<'a>,
    #[serde(borrow, default)]
    pub withdrawals: Option<Vec<Withdrawal<'a>>>,
    #[serde(borrow)]
    pub blob_gas_used: OStr<'a>,
    #[serde(borrow)]
    pub excess_blob_gas: OStr<'a>,
    #[serde(borrow)]
    pub parent_beacon_block_root: OStr<'a>,
    #[serde(borrow)]
    pub requests_hash: OStr<'a>,
    #[serde(borrow)]
    pub mix_hash: OStr<'a>,
    #[serde(borrow, default)]
    pub uncles: Option<Vec<JStr<'a>>>,
    #[serde(borrow)]
    pub transactions: Vec<Tx<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Log<'a> {
    #[serde(borrow)]
    pub address: OStr<'a>,
    #[serde(borrow, default)]
    pub topics: Topics<'a>,
    #[serde(borrow)]
    pub data: OStr<'a>,
    #[serde(borrow)]
    pub block_number: OStr<'a>,
    #[serde(borrow)]
    pub transaction_hash: OStr<'a>,
    #[serde(borrow)]
    pub transaction_index: OStr<'a>,
    #[serde(borrow)]
    pub block_hash: OStr<'a>,
    #[serde(borrow)]
    pub log_index: JStr<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt<'a> {
    #[serde(borrow)]
    pub transaction_hash: JStr<'a>,
    #[serde(borrow)]
    pub transaction_index: OStr<'a>,
    #[serde(borrow)]
    pub block_hash: OStr<'a>,
    #[serde(borrow)]
    pub block_number: OStr<'a>,
    #[serde(borrow)]
    pub cumulative_gas_used: OStr<'a>,
    #[serde(borrow)]
    pub gas_used: OStr<'a>,
    #[serde(borrow)]
    pub contract_address: OStr<'a>,
    #[serde(borrow)]
    pub root: OStr<'a>,
    #[serde(borrow)]
    pub status: OStr<'a>,
    #[serde(borrow)]
    pub effective_gas_price: OStr<'a>,
    #[serde(borrow)]
    pub l1_fee: OStr<'a>,
    #[serde(borrow)]
    pub l1_gas_used: OStr<'a>,
    #[serde(borrow)]
    pub l1_gas_price: OStr<'a>,
    #[serde(borrow)]
    pub l1_fee_scalar: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub blob_gas_price: OStr<'a>,
    #[serde(borrow)]
    pub blob_gas_used: OStr<'a>,
    #[serde(borrow, rename = "gasUsedForL1")]
    pub gas_used_for_l1: OStr<'a>,
    #[serde(borrow, rename = "l1BlockNumber")]
    pub l1_block_number: OStr<'a>,
    #[serde(borrow, default)]
    pub logs: Option<Vec<Log<'a>>>,
}

impl<'a> Receipt<'a> {
    pub fn logs(&self) -> &[Log<'a>] {
        self.logs.as_deref().unwrap_or(&[])
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Deserialize)]
pub struct RpcErrorObj<'a> {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(borrow, default)]
    pub message: OStr<'a>,
}

/// A JSON-RPC id: the request uses numbers; a numeric string is accepted too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Id {
    Num(u64),
    #[default]
    Null,
    /// Anything else, as text for the error message.
    Other(String),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Null => f.write_str("null"),
            Id::Other(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON-RPC id")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id::Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(u64::try_from(v).map_or_else(|_| Id::Other(v.to_string()), Id::Num))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Id, E> {
                Ok(Id::Other(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                Ok(v.parse::<u64>()
                    .map_or_else(|_| Id::Other(format!("{v:?}")), Id::Num))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Id, E> {
                Ok(Id::Other(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Id, E> {
                Ok(Id::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Id, E> {
                Ok(Id::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Id, A::Error> {
                while a.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Id::Other("an array".into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Id, A::Error> {
                while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(Id::Other("an object".into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A non-null `result`, told apart by its JSON shape: an object is a block, an array is a
/// block's receipts. Anything else is kept as its kind for the error message.
#[derive(Debug)]
pub enum Answer<'a> {
    /// Boxed: a block is large and comes once per block, receipts envelopes stay small.
    Block(Box<Block<'a>>),
    Receipts(Vec<Receipt<'a>>),
    Other(&'static str),
}

impl Answer<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Answer::Block(_) => "an object",
            Answer::Receipts(_) => "an array",
            Answer::Other(k) => k,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Answer<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Answer<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a block object or an array of receipts")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Block::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|b| Answer::Block(Box::new(b)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<Receipt<'a>>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(Answer::Receipts)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Answer::Other("a string"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Answer::Other("a boolean"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Answer::Other("a number"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Answer::Other("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Answer::Other("a number"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// One element of the batch answer.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    #[serde(default)]
    pub id: Id,
    #[serde(borrow, default)]
    pub result: Option<Answer<'a>>,
    #[serde(borrow, default)]
    pub error: Option<RpcErrorObj<'a>>,
}

/// The whole body: normally an array; a node that rejects the batch as a whole answers
/// with one error object instead.
#[derive(Debug)]
pub enum Body<'a> {
    Batch(Vec<Envelope<'a>>),
    Single(Box<Envelope<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Body<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Body<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON-RPC batch response (array)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<Envelope<'a>>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(Body::Batch)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Envelope::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|e| Body::Single(Box::new(e)))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A receipts document for the receipts-only entry point: one receipt object or an array.
#[derive(Debug)]
pub struct ReceiptsDoc<'a>(pub Vec<Receipt<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for ReceiptsDoc<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ReceiptsDoc<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a receipt object or an array of receipts")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<Receipt<'a>>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(ReceiptsDoc)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Receipt::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|r| ReceiptsDoc(vec![r]))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Seeds a typed parse of one `result` on the slow (error-locating) path.
pub struct Expect(pub crate::rpc::batch::Call);

impl<'de> DeserializeSeed<'de> for Expect {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0 {
            crate::rpc::batch::Call::Block(_) => Option::<Block<'de>>::deserialize(d).map(drop),
            crate::rpc::batch::Call::Receipts(_) => {
                Option::<Vec<Receipt<'de>>>::deserialize(d).map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_unless_escaped() {
        let body = br#"{"a":"0x12","b":"caf\u00e9"}"#;
        #[derive(Deserialize)]
        struct T<'a> {
            #[serde(borrow)]
            a: JStr<'a>,
            #[serde(borrow)]
            b: JStr<'a>,
        }
        let t: T = sonic_rs::from_slice(body).unwrap();
        assert!(matches!(t.a.0, Cow::Borrowed("0x12")));
        assert!(matches!(t.b.0, Cow::Owned(ref s) if s == "café"));
    }

    #[test]
    fn topics_inline_and_spill() {
        let t: Topics = sonic_rs::from_str(r#"["a","b","c","d","e","f"]"#).unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(t.get(3), Some("d"));
        assert_eq!(t.get(5), Some("f"));
        assert_eq!(t.get(6), None);
        let (a, b) = t.parts();
        assert_eq!((a.len(), b.len()), (4, 2));
        let t: Topics = sonic_rs::from_str("null").unwrap();
        assert!(t.is_empty());
    }

    #[test]
    fn ids() {
        let ids: Vec<Id> = sonic_rs::from_str(r#"[3,"4",null,-1,"x",1.5,[1],{"a":1}]"#).unwrap();
        assert_eq!(ids[0], Id::Num(3));
        assert_eq!(ids[1], Id::Num(4));
        assert_eq!(ids[2], Id::Null);
        assert!(matches!(ids[3], Id::Other(_)));
        assert!(matches!(ids[4], Id::Other(_)));
        assert!(matches!(ids[5], Id::Other(_)));
        assert!(matches!(ids[6], Id::Other(_)));
        assert!(matches!(ids[7], Id::Other(_)));
    }

    #[test]
    fn answer_by_shape() {
        let b: Body = sonic_rs::from_str(
            r#"[{"jsonrpc":"2.0","result":[],"id":1},{"id":0,"result":null},{"id":2,"result":"0x1"},
               {"id":3,"error":{"code":-32000,"message":"header not found"}}]"#,
        )
        .unwrap();
        let Body::Batch(v) = b else { panic!() };
        assert!(matches!(v[0].result, Some(Answer::Receipts(ref r)) if r.is_empty()));
        assert!(v[1].result.is_none());
        assert!(matches!(v[2].result, Some(Answer::Other("a string"))));
        let e = v[3].error.as_ref().unwrap();
        assert_eq!(e.code, Some(-32000));
        assert_eq!(e.message.as_ref().unwrap().as_str(), "header not found");
    }
}
