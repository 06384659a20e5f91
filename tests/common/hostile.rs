//! A node that answers whatever a test scripts: a loopback HTTP server that hands every request
//! to a closure (optionally after asking a real dev node for the honest answer), for the
//! answers no real node sends on purpose: deep nesting, huge strings, escape sequences,
//! redirects. Bounded: it serves for at most two minutes and stops when dropped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// One request as received.
pub struct Request {
    /// 0, 1, 2, … in arrival order.
    pub index: usize,
    pub method: String,
    pub body: Vec<u8>,
    /// The honest answer of the upstream node (proxy mode), if it answered.
    pub upstream: Option<Vec<u8>>,
}

impl Request {
    /// The request body parsed (a JSON-RPC call or batch).
    pub fn json(&self) -> sonic_rs::Value {
        sonic_rs::from_slice(&self.body).unwrap_or_default()
    }
}

/// What to send back.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct Hostile {
    port: u16,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Hostile {
    /// Answers every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Hostile {
        Hostile::serve(None, Arc::new(handler))
    }

    /// Forwards every request to `upstream` first and hands its answer to `handler` in
    /// [`Request::upstream`].
    pub fn proxy(
        upstream: String,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Hostile {
        Hostile::serve(Some(upstream), Arc::new(handler))
    }

    fn serve(upstream: Option<String>, handler: Arc<Handler>) -> Hostile {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, s) = (Arc::clone(&requests), Arc::clone(&stop));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok(Some(mut req)) = server.recv_timeout(Duration::from_millis(20)) else {
                    continue;
                };
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                let index = count.fetch_add(1, Ordering::SeqCst);
                let upstream_answer = upstream.as_ref().and_then(|u| {
                    let mut r = agent
                        .post(u)
                        .header("Content-Type", "application/json")
                        .send(&body[..])
                        .ok()?;
                    r.body_mut().with_config().limit(1 << 30).read_to_vec().ok()
                });
                let request = Request {
                    index,
                    method: req.method().to_string(),
                    body,
                    upstream: upstream_answer,
                };
                let reply = handler(&request);
                let mut resp =
                    tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
                for (k, v) in reply.headers {
                    if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                        resp.add_header(h);
                    }
                }
                let _ = req.respond(resp);
            }
        });
        Hostile {
            port,
            requests,
            stop,
            handle: Some(handle),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Every call of a JSON-RPC request body: `(id, method)`.
pub fn calls(body: &[u8]) -> Vec<(u64, String)> {
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    let v: sonic_rs::Value = sonic_rs::from_slice(body).unwrap_or_default();
    let one = |c: &sonic_rs::Value| {
        (
            c.get("id").and_then(|i| i.as_u64()).unwrap_or(0),
            c.get("method")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string(),
        )
    };
    match v.as_array() {
        Some(a) => a.iter().map(one).collect(),
        None => vec![one(&v)],
    }
}

/// A batch answer whose every item is `result_for(id, method)` (raw JSON text).
pub fn batch_answer(body: &[u8], result_for: impl Fn(u64, &str) -> String) -> Vec<u8> {
    let mut out = b"[".to_vec();
    for (k, (id, method)) in calls(body).iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"#).as_bytes());
        out.extend_from_slice(result_for(*id, method).as_bytes());
        out.push(b'}');
    }
    out.push(b']');
    out
}

/// A batch answer whose every item is error -32000 with `message` (raw JSON text).
pub fn error_answer(body: &[u8], message: &str) -> Vec<u8> {
    let items: Vec<String> = calls(body)
        .iter()
        .map(|(id, _)| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32000,"message":{message}}}}}"#
            )
        })
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}
