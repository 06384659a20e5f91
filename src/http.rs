//! The `--http` stats server: tiny_http on one dedicated thread, which also samples the
//! counters once a second for the charts. Endpoints (GET or HEAD):
//!
//! * `/` — a self-contained status page (inline HTML, CSS, JS and SVG; no external resources)
//!   that refreshes itself every second and charts blocks/s and lag over the last minutes;
//! * `/stats` — [`crate::metrics::StatsSnapshot`] as JSON;
//! * `/history` — the chart samples as JSON;
//! * `/metrics` — Prometheus text format 0.0.4 ([`Metrics::prometheus`]);
//! * `/healthz` — `200 ok`, or `503` with the reason when the run made no progress and got no
//!   answer from the node for too long.
//!
//! A bare port binds `127.0.0.1`; any other address is bound as given. There is no
//! authentication and nothing is refused: expose it beyond loopback only on a trusted network.

use crate::metrics::{Metrics, SAMPLE_EVERY};
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The status page served at `/`.
pub const STATUS_PAGE: &str = include_str!("status_page.html");

/// How long the server thread waits for a request before looking at its stop flag.
const TICK: Duration = Duration::from_millis(100);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid --http address `{value}`: expected PORT or ADDR:PORT")]
    Address {
        value: String,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("cannot serve HTTP on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot start the HTTP server thread")]
    Thread {
        #[source]
        source: std::io::Error,
    },
}

/// Parses `--http`: a bare port means `127.0.0.1:PORT`; otherwise `ADDR:PORT` (a host name is
/// resolved; the first address is used).
pub fn parse_listen(value: &str) -> Result<SocketAddr, HttpError> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = v.parse().map_err(|_| HttpError::Address {
            value: value.to_string(),
            source: None,
        })?;
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    let mut addrs = v.to_socket_addrs().map_err(|e| HttpError::Address {
        value: value.to_string(),
        source: Some(e),
    })?;
    addrs.next().ok_or_else(|| HttpError::Address {
        value: value.to_string(),
        source: None,
    })
}

/// A running stats server; stops when dropped.
pub struct StatsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StatsServer {
    /// Binds `addr` (port 0 picks a free port) and serves `metrics` on a new thread.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<StatsServer, HttpError> {
        let server =
            tiny_http::Server::http(addr).map_err(|source| HttpError::Bind { addr, source })?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("ethetl-http".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || serve(&server, &metrics, &stop)
            })
            .map_err(|source| HttpError::Thread { source })?;
        Ok(StatsServer {
            addr: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops serving and waits for the thread (at most a request and a tick).
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StatsServer {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn serve(server: &tiny_http::Server, metrics: &Metrics, stop: &AtomicBool) {
    let mut next_sample = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_sample {
            metrics.sample();
            next_sample += SAMPLE_EVERY;
            if next_sample < now {
                next_sample = now + SAMPLE_EVERY;
            }
        }
        let wait = next_sample
            .saturating_duration_since(Instant::now())
            .min(TICK);
        if let Ok(Some(req)) = server.recv_timeout(wait) {
            respond(req, metrics);
        }
    }
}

fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn respond(req: tiny_http::Request, metrics: &Metrics) {
    let path = req.url().split(['?', '#']).next().unwrap_or("").to_string();
    let method_ok = matches!(
        req.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    );
    let (status, content_type, body): (u16, &str, String) = if !method_ok {
        (
            405,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n".into(),
        )
    } else {
        match path.as_str() {
            "/" | "/index.html" => (200, "text/html; charset=utf-8", STATUS_PAGE.to_string()),
            "/stats" => (
                200,
                "application/json",
                sonic_rs::to_string(&metrics.snapshot()).unwrap_or_else(|_| "{}".into()),
            ),
            "/history" => (200, "application/json", metrics.history_json()),
            "/metrics" => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.prometheus(),
            ),
            "/healthz" => match metrics.health() {
                Ok(()) => (200, "text/plain; charset=utf-8", "ok\n".into()),
                Err(why) => (
                    503,
                    "text/plain; charset=utf-8",
                    format!("unhealthy: {why}\n"),
                ),
            },
            _ => (404, "text/plain; charset=utf-8", "not found\n".into()),
        }
    };
    let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
    for h in [
        header("Content-Type", content_type),
        header("Cache-Control", "no-store"),
    ]
    .into_iter()
    .flatten()
    {
        resp.add_header(h);
    }
    if status == 405 {
        if let Some(h) = header("Allow", "GET, HEAD") {
            resp.add_header(h);
        }
    }
    // The client may have gone away; nothing to do about it.
    let _ = req.respond(resp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("9898").unwrap(),
            "127.0.0.1:9898".parse().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:80").unwrap(),
            "0.0.0.0:80".parse().unwrap()
        );
        assert_eq!(parse_listen("[::1]:9").unwrap(), "[::1]:9".parse().unwrap());
        assert!(parse_listen("99999").is_err());
        assert!(parse_listen("nope").is_err());
        assert!(parse_listen("").is_err());
    }

    #[test]
    fn serves_every_endpoint() {
        let m = Metrics::new("stream", &[]);
        m.set_head(42);
        let srv = StatsServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&m)).unwrap();
        let a = srv.addr();
        let (st, page) = get(a, "/");
        assert_eq!(st, 200);
        assert!(page.contains("<svg id=\"chart\""));
        let (st, stats) = get(a, "/stats?x=1");
        assert_eq!(st, 200);
        let v: sonic_rs::Value = sonic_rs::from_str(&stats).unwrap();
        use sonic_rs::JsonValueTrait;
        assert_eq!(v["head"].as_u64(), Some(42));
        let (st, metrics) = get(a, "/metrics");
        assert_eq!(st, 200);
        assert!(metrics.contains("ethetl_head_block 42\n"), "{metrics}");
        assert_eq!(get(a, "/healthz").0, 200);
        assert_eq!(get(a, "/history").0, 200);
        assert_eq!(get(a, "/nope").0, 404);
        m.set_stale_after(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        let (st, why) = get(a, "/healthz");
        assert_eq!(st, 503, "{why}");
        srv.shutdown();
        assert!(std::net::TcpStream::connect(a).is_err() || get_fails(a));
    }

    /// After shutdown a connection may still be accepted by the OS backlog, but no answer
    /// comes.
    fn get_fails(addr: SocketAddr) -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return true;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
        let _ = write!(s, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut buf = [0u8; 16];
        !matches!(s.read(&mut buf), Ok(n) if n > 0)
    }

    /// The SVG namespace is the only URL the page contains.
    const SVG_NS: &str = "http://www.w3.org/2000/svg";

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let without_ns = STATUS_PAGE.replace(SVG_NS, "");
        for needle in ["http://", "https://", "//cdn", "src=\"", "@import", "url("] {
            assert!(!without_ns.contains(needle), "{needle}");
        }
        // The page reads the fields /stats has.
        let m = Metrics::new("stream", &[]);
        let v: sonic_rs::Value = sonic_rs::to_value(&m.snapshot()).unwrap();
        use sonic_rs::JsonValueTrait;
        for k in [
            "current_block",
            "head",
            "lag",
            "blocks_streamed",
            "transactions_streamed",
            "blocks_per_sec",
            "uptime_secs",
            "last_error",
        ] {
            assert!(v.get(k).is_some(), "{k} missing from /stats");
            assert!(STATUS_PAGE.contains(k), "{k} not shown by the page");
        }
    }
}
