//! The dev node's HTTP/1.1 connection layer: reads requests (Content-Length or chunked bodies,
//! `Expect: 100-continue`, keep-alive and pipelining) with httparse, and writes responses with a
//! `Content-Length`, identity-encoded, straight from the handler's byte ranges.
//!
//! It is hand-rolled on `std::net` rather than built on tiny_http because fault injection needs
//! the socket itself: closing a connection without a response (TCP RST), cutting a body short
//! and closing, which tiny_http cannot express (a dropped tiny_http request still sends a 500).

use std::io::{self, BufWriter, Read, Write};
use std::net::TcpStream;

/// Largest request head (request line + headers).
const MAX_HEAD: usize = 64 << 10;
/// Bodies of oversized requests up to this size are read and discarded before the 413 is sent
/// (a client that writes its whole body before reading would otherwise see a broken pipe).
const MAX_DRAIN: u64 = 1 << 30;

/// The request methods the node tells apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Other(String),
}

/// One request read off a connection.
pub(crate) struct Request {
    pub method: Method,
    pub body: Vec<u8>,
    /// Whether the client allows another request on this connection.
    pub keep_alive: bool,
}

/// What [`Conn::read_request`] found.
pub(crate) enum Incoming {
    Request(Request),
    /// The client closed the connection (or it failed) between requests.
    Closed,
    /// The request was refused with an error response already sent; close the connection.
    Refused,
}

/// A response body the connection can write: a length and a way to write a prefix of it.
pub(crate) trait ResponseBody {
    fn len(&self) -> usize;
    /// Writes the first `n` bytes (`n <= len`).
    fn write_prefix(&self, w: &mut dyn Write, n: usize) -> io::Result<()>;
}

impl ResponseBody for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn write_prefix(&self, w: &mut dyn Write, n: usize) -> io::Result<()> {
        w.write_all(&self[..n])
    }
}

/// One server-side HTTP connection.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet consumed (the start of the next request, when pipelined).
    buf: Vec<u8>,
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

struct Head {
    method: Method,
    keep_alive: bool,
    content_length: Option<u64>,
    chunked: bool,
    expect_continue: bool,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(8 << 10),
        }
    }

    /// Reads more bytes into `buf`; `Ok(false)` at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        let old = self.buf.len();
        self.buf.resize(old + (16 << 10), 0);
        let r = self.stream.read(&mut self.buf[old..]);
        match r {
            Ok(n) => {
                self.buf.truncate(old + n);
                Ok(n > 0)
            }
            Err(e) => {
                self.buf.truncate(old);
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(true);
                }
                Err(e)
            }
        }
    }

    /// Reads until `buf` holds at least `n` bytes; `Ok(false)` if the stream ended first.
    fn fill_to(&mut self, n: usize) -> io::Result<bool> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn parse_head(&mut self) -> Result<Option<Head>, u16> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let used = match req.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if self.buf.len() > MAX_HEAD {
                    Err(431)
                } else {
                    Ok(None)
                }
            }
            Err(httparse::Error::TooManyHeaders) => return Err(431),
            Err(_) => return Err(400),
        };
        let version = req.version.unwrap_or(1);
        let method = match req.method.unwrap_or("") {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            m => Method::Other(m.to_string()),
        };
        let mut head = Head {
            method,
            keep_alive: version >= 1,
            content_length: None,
            chunked: false,
            expect_continue: false,
        };
        for h in req.headers.iter() {
            let value = std::str::from_utf8(h.value).unwrap_or("").trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                head.content_length = Some(value.parse().map_err(|_| 400u16)?);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                if value.to_ascii_lowercase().ends_with("chunked") {
                    head.chunked = true;
                } else {
                    return Err(501);
                }
            } else if h.name.eq_ignore_ascii_case("connection") {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    head.keep_alive = false;
                } else if v.contains("keep-alive") {
                    head.keep_alive = true;
                }
            } else if h.name.eq_ignore_ascii_case("expect") {
                head.expect_continue = value.eq_ignore_ascii_case("100-continue");
            }
        }
        self.buf.drain(..used);
        Ok(Some(head))
    }

    /// Reads the next request. Bodies above `max_body` bytes are refused with 413.
    pub fn read_request(&mut self, max_body: usize) -> io::Result<Incoming> {
        let head = loop {
            if !self.buf.is_empty() {
                match self.parse_head() {
                    Ok(Some(h)) => break h,
                    Ok(None) => {}
                    Err(status) => {
                        self.respond_simple(status, "bad request head")?;
                        return Ok(Incoming::Refused);
                    }
                }
            }
            if !self.fill()? {
                return Ok(Incoming::Closed);
            }
        };
        let body = if head.chunked {
            if head.expect_continue {
                self.write_continue()?;
            }
            match self.read_chunked(max_body)? {
                Some(b) => b,
                None => return Ok(Incoming::Refused),
            }
        } else {
            let len = head.content_length.unwrap_or(0);
            if len > max_body as u64 {
                if !head.expect_continue && len <= MAX_DRAIN {
                    self.drain(len)?;
                }
                self.respond_simple(413, "request body too large")?;
                return Ok(Incoming::Refused);
            }
            if head.expect_continue && len > 0 {
                self.write_continue()?;
            }
            let len = len as usize;
            if !self.fill_to(len)? {
                return Ok(Incoming::Closed);
            }
            self.buf.drain(..len).collect()
        };
        Ok(Incoming::Request(Request {
            method: head.method,
            body,
            keep_alive: head.keep_alive,
        }))
    }

    fn write_continue(&mut self) -> io::Result<()> {
        self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
    }

    /// Reads and discards `len` body bytes.
    fn drain(&mut self, mut len: u64) -> io::Result<()> {
        loop {
            let have = (self.buf.len() as u64).min(len);
            self.buf.drain(..have as usize);
            len -= have;
            if len == 0 || !self.fill()? {
                return Ok(());
            }
        }
    }

    /// Reads one line (without CRLF) of a chunked body.
    fn read_line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(Some(line));
            }
            if self.buf.len() > MAX_HEAD || !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// A chunked body, or `None` after refusing it (too large or malformed).
    fn read_chunked(&mut self, max_body: usize) -> io::Result<Option<Vec<u8>>> {
        let mut body = Vec::new();
        loop {
            let Some(line) = self.read_line()? else {
                return Ok(None);
            };
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let Ok(size) = usize::from_str_radix(size_hex, 16) else {
                self.respond_simple(400, "bad chunk size")?;
                return Ok(None);
            };
            if size == 0 {
                // trailers, up to the empty line
                loop {
                    match self.read_line()? {
                        Some(l) if l.is_empty() => return Ok(Some(body)),
                        Some(_) => {}
                        None => return Ok(None),
                    }
                }
            }
            if body.len().saturating_add(size) > max_body {
                self.respond_simple(413, "request body too large")?;
                return Ok(None);
            }
            if !self.fill_to(size + 2)? {
                return Ok(None);
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    fn respond_simple(&mut self, status: u16, text: &str) -> io::Result<()> {
        self.respond(
            status,
            "text/plain; charset=utf-8",
            &[],
            text.as_bytes(),
            false,
        )
    }

    fn write_head(
        w: &mut dyn Write,
        status: u16,
        content_type: &str,
        extra: &[(&str, String)],
        content_length: usize,
        keep_alive: bool,
    ) -> io::Result<()> {
        write!(
            w,
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {content_length}\r\n",
            reason(status)
        )?;
        for (k, v) in extra {
            write!(w, "{k}: {v}\r\n")?;
        }
        if !keep_alive {
            w.write_all(b"Connection: close\r\n")?;
        }
        w.write_all(b"\r\n")
    }

    /// Sends a complete response.
    pub fn respond(
        &mut self,
        status: u16,
        content_type: &str,
        extra: &[(&str, String)],
        body: &(impl ResponseBody + ?Sized),
        keep_alive: bool,
    ) -> io::Result<()> {
        self.respond_partial(
            status,
            content_type,
            extra,
            body,
            body.len(),
            body.len(),
            keep_alive,
        )
    }

    /// Sends a response head declaring `declared` body bytes, then the first `send` bytes of
    /// `body` (`send <= body.len()`).
    #[allow(clippy::too_many_arguments)]
    pub fn respond_partial(
        &mut self,
        status: u16,
        content_type: &str,
        extra: &[(&str, String)],
        body: &(impl ResponseBody + ?Sized),
        declared: usize,
        send: usize,
        keep_alive: bool,
    ) -> io::Result<()> {
        let mut w = BufWriter::with_capacity(64 << 10, &self.stream);
        Self::write_head(&mut w, status, content_type, extra, declared, keep_alive)?;
        body.write_prefix(&mut w, send.min(body.len()))?;
        w.flush()
    }

    /// Closes the connection with a TCP RST (no FIN, no response bytes) where the platform
    /// allows it, else with a plain close.
    pub fn reset(self) {
        set_linger_zero(&self.stream);
        drop(self.stream);
    }

    /// Closes the connection (FIN) after what has been written.
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(unix)]
fn set_linger_zero(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the descriptor is a valid, open socket owned by `stream` for the duration of
    // the call; the option value is a properly initialised `linger` of the size passed.
    let _ = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

#[cfg(not(unix))]
fn set_linger_zero(_stream: &TcpStream) {}
