//! The `--http` stats server: one dedicated thread accepts connections and samples the
//! counters once a second for the charts; each connection is served on a short-lived thread of
//! its own. Endpoints (GET or HEAD):
//!
//! * `/` — a self-contained status page (inline HTML, CSS, JS and SVG; no external resources)
//!   that refreshes itself every second and charts blocks/s and lag over the last minutes;
//! * `/stats` — [`crate::metrics::StatsSnapshot`] as JSON;
//! * `/history` — the chart samples as JSON;
//! * `/metrics` — Prometheus text format 0.0.4 ([`Metrics::prometheus`]);
//! * `/healthz` — `200 ok`, or `503` with the reason when the run made no progress and got no
//!   answer from the node for too long, or when every recent call failed.
//!
//! A bare port binds `127.0.0.1`; any other address is bound as given. There is no
//! authentication: expose it beyond loopback only on a trusted network. What a client can
//! make it hold is bounded: a request head of at most [`MAX_HEAD`] bytes (`431` beyond),
//! [`MAX_CONNECTIONS`] connections at once (`503` beyond), [`CLIENT_TIMEOUT`] to send the
//! request and to take the answer; one request per connection (`Connection: close`).

use crate::metrics::{Metrics, SAMPLE_EVERY};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request head (request line and headers) read; a longer one gets `431`.
pub const MAX_HEAD: usize = 8 << 10;
/// Connections served at once; more are answered `503` and closed.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request, and to read the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The status page served at `/`.
pub const STATUS_PAGE: &str = include_str!("status_page.html");

/// How long the accept loop sleeps when no connection is waiting.
const TICK: Duration = Duration::from_millis(20);

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
        let bind = |source: std::io::Error| HttpError::Bind {
            addr,
            source: Box::new(source),
        };
        let listener = TcpListener::bind(addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let bound = listener.local_addr().unwrap_or(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("ethetl-http".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || serve(&listener, &metrics, &stop)
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

fn serve(listener: &TcpListener, metrics: &Arc<Metrics>, stop: &AtomicBool) {
    let active = Arc::new(AtomicUsize::new(0));
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
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(TICK);
                continue;
            }
            // Out of file descriptors and the like: try again shortly.
            Err(_) => {
                std::thread::sleep(TICK);
                continue;
            }
        };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(CLIENT_TIMEOUT));
        let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
        if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            let mut conn = conn;
            let _ = conn.set_write_timeout(Some(Duration::from_millis(200)));
            write_response(&mut conn, false, 503, "text/plain; charset=utf-8", "busy\n");
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (m, a) = (Arc::clone(metrics), Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .name("ethetl-http-conn".into())
            .spawn(move || {
                handle(conn, &m);
                a.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What a request head says, or why it is refused.
enum Head {
    Request { method: String, path: String },
    Refuse(u16, &'static str),
}

/// Reads one request head (at most [`MAX_HEAD`] bytes). `None`: the client went away or was
/// too slow.
fn read_head(conn: &mut TcpStream) -> Option<Head> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                return Some(Head::Request {
                    method: req.method.unwrap_or("").to_string(),
                    path: req.path.unwrap_or("").to_string(),
                })
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Some(Head::Refuse(431, "request header fields too large\n"))
            }
            Err(_) => return Some(Head::Refuse(400, "bad request\n")),
        }
        if buf.len() >= MAX_HEAD {
            return Some(Head::Refuse(431, "request header fields too large\n"));
        }
        // A client that sends a byte now and then is still too slow.
        if Instant::now() > deadline {
            return None;
        }
        let want = (MAX_HEAD - buf.len()).min(chunk.len());
        match conn.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn handle(mut conn: TcpStream, metrics: &Metrics) {
    respond(&mut conn, metrics);
    linger(&mut conn);
}

fn respond(conn: &mut TcpStream, metrics: &Metrics) {
    let (method, path) = match read_head(conn) {
        None => return,
        Some(Head::Refuse(status, text)) => {
            write_response(conn, false, status, "text/plain; charset=utf-8", text);
            return;
        }
        Some(Head::Request { method, path }) => (method, path),
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        write_response(
            conn,
            false,
            405,
            "text/plain; charset=utf-8",
            "only GET and HEAD\n",
        );
        return;
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let (status, content_type, body): (u16, &str, String) = match path {
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
    };
    write_response(conn, head_only, status, content_type, &body);
}

/// Writes a complete response and closes the connection (the client may have gone away:
/// nothing to do about that).
fn write_response(
    conn: &mut TcpStream,
    head_only: bool,
    status: u16,
    content_type: &str,
    body: &str,
) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    if !head_only {
        let _ = conn.write_all(body.as_bytes());
    }
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Write);
}

/// Lets the client read the answer before the socket closes: closing with unread request
/// bytes would reset the connection and could discard the answer. At most 200 ms and 64 KB
/// (a client still sending after that is not waiting for an answer).
fn linger(conn: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let until = Instant::now() + Duration::from_millis(200);
    let mut left = 64usize << 10;
    while Instant::now() < until && left > 0 {
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
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
