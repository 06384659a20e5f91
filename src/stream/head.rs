//! The few single JSON-RPC calls `ethetl stream` makes besides the pipeline's batches:
//! `eth_blockNumber` (the head) and `eth_getBlockByNumber(n, false)` (a block's hash, parent
//! and time, to find where a reorg forked). Each call tries the endpoints in turn (starting
//! with the last one that worked), up to `attempts` times with backoff, and is counted per
//! endpoint in the run's [`RequestCounters`] as a `head` call. Errors name the method, the
//! block and the endpoint (redacted); URLs never appear unredacted.

use crate::rpc::client::{backoff, Sanitized};
use crate::rpc::endpoints::Endpoint;
use crate::stats::{CallKind, RequestCounters};
use sonic_rs::JsonValueTrait;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ureq::Agent;

/// A block as `eth_getBlockByNumber(n, false)` describes it (the fields reorg handling needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub number: u64,
    /// `0x`-prefixed, lowercase.
    pub hash: String,
    pub parent_hash: String,
    pub timestamp: u64,
}

/// Why a single call failed (after every attempt).
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("{method}{at} to {endpoint} failed")]
    Transport {
        method: &'static str,
        at: String,
        endpoint: String,
        #[source]
        source: Sanitized,
    },
    #[error("{method}{at} to {endpoint} got HTTP {status}")]
    Status {
        method: &'static str,
        at: String,
        endpoint: String,
        status: u16,
    },
    #[error("{method}{at} to {endpoint} failed (code {code}): {message}")]
    Rpc {
        method: &'static str,
        at: String,
        endpoint: String,
        code: i64,
        message: String,
    },
    #[error("{method}{at} to {endpoint}: unexpected answer: {detail}")]
    Answer {
        method: &'static str,
        at: String,
        endpoint: String,
        detail: String,
    },
    #[error("stopped while waiting to retry {method}{at}")]
    Stopped { method: &'static str, at: String },
}

/// The client (cheap to share between threads).
#[derive(Clone)]
pub struct HeadClient {
    agent: Agent,
    endpoints: Arc<Vec<Endpoint>>,
    counters: Arc<RequestCounters>,
    /// The endpoint to try first (the last one that answered).
    preferred: Arc<AtomicUsize>,
    attempts: u32,
    stop: Arc<AtomicBool>,
}

impl HeadClient {
    /// `attempts` ≥ 1 tries per call; waiting between tries ends early when `stop` is set.
    /// Certificates are checked against `roots` (the pipeline's: `--ca-bundle` or the bundled
    /// ones).
    pub fn new(
        endpoints: Vec<Endpoint>,
        roots: &crate::rpc::client::TlsRoots,
        timeout: Duration,
        attempts: u32,
        counters: Arc<RequestCounters>,
        stop: Arc<AtomicBool>,
    ) -> HeadClient {
        let agent: Agent = Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .accept_encoding("identity")
            .user_agent(concat!("ethetl/", env!("CARGO_PKG_VERSION")))
            .timeout_global(Some(timeout))
            .tls_config(crate::rpc::client::tls_config(roots))
            .build()
            .into();
        HeadClient {
            agent,
            endpoints: Arc::new(endpoints),
            counters,
            preferred: Arc::new(AtomicUsize::new(0)),
            attempts: attempts.max(1),
            stop,
        }
    }

    /// The node's head block number.
    pub fn block_number(&self) -> Result<u64, HeadError> {
        let method = "eth_blockNumber";
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
        self.call(method, String::new(), body, |v, fail| {
            let s = v.as_str().ok_or_else(|| {
                fail(format!(
                    "result is not a string: {}",
                    sonic_rs::to_string(v).unwrap_or_default()
                ))
            })?;
            parse_qty(s).ok_or_else(|| fail(format!("result {s:?} is not a hex quantity")))
        })
    }

    /// Block `n` without its transactions; `None` when the node does not have it.
    pub fn header(&self, n: u64) -> Result<Option<Header>, HeadError> {
        let method = "eth_getBlockByNumber";
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x{n:x}",false]}}"#
        );
        self.call(method, format!(" (block {n})"), &body, |v, fail| {
            if v.is_null() {
                return Ok(None);
            }
            let field = |k: &str| -> Result<String, HeadError> {
                v[k].as_str()
                    .map(str::to_ascii_lowercase)
                    .ok_or_else(|| fail(format!("block has no {k} string")))
            };
            let number = parse_qty(&field("number")?)
                .ok_or_else(|| fail("number is not a hex quantity".into()))?;
            if number != n {
                return Err(fail(format!("asked for block {n}, got block {number}")));
            }
            let timestamp = parse_qty(&field("timestamp")?)
                .ok_or_else(|| fail("timestamp is not a hex quantity".into()))?;
            Ok(Some(Header {
                number,
                hash: field("hash")?,
                parent_hash: field("parentHash")?,
                timestamp,
            }))
        })
    }

    /// Sends `body` (one JSON-RPC call), retrying on any failure, and hands the `result` to
    /// `read`.
    fn call<T>(
        &self,
        method: &'static str,
        at: String,
        body: &str,
        read: impl Fn(&sonic_rs::Value, &dyn Fn(String) -> HeadError) -> Result<T, HeadError>,
    ) -> Result<T, HeadError> {
        let n = self.endpoints.len().max(1);
        let mut last_err = None;
        for attempt in 0..self.attempts {
            if attempt > 0 {
                let wait = backoff(attempt, 0).min(Duration::from_secs(2));
                let until = Instant::now() + wait;
                while Instant::now() < until {
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(last_err.unwrap_or(HeadError::Stopped { method, at }));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let i = (self.preferred.load(Ordering::Relaxed) + attempt as usize) % n;
            match self.call_once(i, method, &at, body, &read) {
                Ok(v) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(HeadError::Stopped { method, at }))
    }

    fn call_once<T>(
        &self,
        i: usize,
        method: &'static str,
        at: &str,
        body: &str,
        read: &impl Fn(&sonic_rs::Value, &dyn Fn(String) -> HeadError) -> Result<T, HeadError>,
    ) -> Result<T, HeadError> {
        let Some(ep) = self.endpoints.get(i) else {
            return Err(HeadError::Answer {
                method,
                at: at.to_string(),
                endpoint: "(none)".into(),
                detail: "no endpoint configured".into(),
            });
        };
        let endpoint = ep.redacted().to_string();
        let sent = Instant::now();
        let result = self.post(ep, method, at, body);
        let size = result.as_ref().ok().map(|b| b.len() as u64);
        self.counters
            .observe(i, CallKind::Head, sent.elapsed(), size);
        let bytes = result?;
        let fail = |detail: String| HeadError::Answer {
            method,
            at: at.to_string(),
            endpoint: endpoint.clone(),
            detail: ep.sanitize(&detail),
        };
        crate::json_depth::check(&bytes, crate::json_depth::MAX_DEPTH)
            .map_err(|e| fail(format!("not a usable answer ({e})")))?;
        let v: sonic_rs::Value = sonic_rs::from_slice(&bytes).map_err(|e| {
            fail(format!(
                "not JSON ({})",
                e.to_string().lines().next().unwrap_or("")
            ))
        })?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(HeadError::Rpc {
                method,
                at: at.to_string(),
                endpoint: endpoint.clone(),
                code: err["code"].as_i64().unwrap_or(0),
                message: ep.sanitize(err["message"].as_str().unwrap_or("")),
            });
        }
        if !v.is_object() || v.get("result").is_none() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
            return Err(fail(format!("no result in {text:?}")));
        }
        read(&v["result"], &fail)
    }

    fn post(
        &self,
        ep: &Endpoint,
        method: &'static str,
        at: &str,
        body: &str,
    ) -> Result<Vec<u8>, HeadError> {
        let transport = |e: ureq::Error| HeadError::Transport {
            method,
            at: at.to_string(),
            endpoint: ep.redacted().to_string(),
            source: Sanitized::of(&e, ep),
        };
        let mut resp = self
            .agent
            .post(ep.url())
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .map_err(transport)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(HeadError::Status {
                method,
                at: at.to_string(),
                endpoint: ep.redacted().to_string(),
                status,
            });
        }
        resp.body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(transport)
    }
}

/// `0x`-prefixed hex quantity.
fn parse_qty(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethetl_devnode::{DevNode, GenConfig, NodeConfig};

    fn client(urls: &[String]) -> (HeadClient, Arc<RequestCounters>) {
        let eps: Vec<Endpoint> = urls.iter().map(|u| Endpoint::parse(u).unwrap()).collect();
        let counters = Arc::new(RequestCounters::for_endpoints(
            eps.iter().map(|e| e.redacted().to_string()),
        ));
        let c = HeadClient::new(
            eps,
            &crate::rpc::client::TlsRoots::Bundled,
            Duration::from_secs(5),
            3,
            Arc::clone(&counters),
            Arc::new(AtomicBool::new(false)),
        );
        (c, counters)
    }

    #[test]
    fn head_and_headers_from_the_dev_node() {
        let node = DevNode::start(NodeConfig::generated(GenConfig {
            blocks: 5,
            start_block: 100,
            txs_per_block: Some(1),
            ..GenConfig::default()
        }))
        .unwrap();
        // A dead endpoint first: the client moves on to the live one.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (c, counters) = client(&[format!("http://127.0.0.1:{dead}/"), node.url()]);
        assert_eq!(c.block_number().unwrap(), 104);
        let h = c.header(103).unwrap().unwrap();
        let next = c.header(104).unwrap().unwrap();
        assert_eq!(next.parent_hash, h.hash);
        assert_eq!(h.number, 103);
        assert!(h.hash.starts_with("0x") && h.hash.len() == 66);
        assert_eq!(c.header(105).unwrap(), None);
        let dead_errors = counters.endpoints[0].calls[CallKind::Head as usize]
            .errors
            .load(Ordering::Relaxed);
        assert_eq!(
            dead_errors, 1,
            "only the first call tried the dead endpoint"
        );
        let live = counters.endpoints[1].calls[CallKind::Head as usize]
            .requests
            .load(Ordering::Relaxed);
        assert_eq!(live, 4);
    }

    #[test]
    fn errors_name_method_block_and_redacted_endpoint() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (c, _) = client(&[format!("http://127.0.0.1:{dead}/v3/secretkey123456")]);
        let e = c.header(7).unwrap_err();
        let text = crate::pipeline::run::error_chain(&e);
        assert!(text.contains("eth_getBlockByNumber (block 7)"), "{text}");
        assert!(!text.contains("secretkey123456"), "{text}");
        assert_eq!(parse_qty("0x1f"), Some(31));
        assert_eq!(parse_qty("1f"), None);
        assert_eq!(parse_qty("0x"), None);
    }
}
