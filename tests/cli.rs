//! What a user sees when something is wrong: the real `ethetl` binary against bad flags and
//! against small local servers that misbehave. Every failure must be exactly one line on
//! stderr that names the problem, exit status 2, no RPC secret in the output, and no file
//! under a final name.

mod common;

use common::{dead_port, ethetl_command, files_under, run_ethetl, Process};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs the binary with `args` (no ETH_RPC_URL from the environment), killing it after 60 s.
fn ethetl(args: &[&str]) -> Output {
    run_ethetl(args, Duration::from_secs(60))
}

fn ethetl_env(args: &[&str], rpc_env: Option<&str>) -> Output {
    let mut cmd = ethetl_command(args);
    if let Some(v) = rpc_env {
        cmd.env("ETH_RPC_URL", v);
    }
    Process::start(cmd, "ethetl").finish(Duration::from_secs(60))
}

/// Asserts the run failed with exit 2 and exactly one `error: ` line containing every one of
/// `needles`; returns that line.
fn one_error_line(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(
            lines[0].to_lowercase().contains(&n.to_lowercase()),
            "`{n}` missing from: {stderr}"
        );
    }
    lines[0].to_string()
}

/// A local HTTP server answering every request with `status` and `body`, counting requests.
struct Server {
    port: u16,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn reply(status: u16, body: &'static str) -> Server {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&requests), Arc::clone(&stop));
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(90);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok(Some(mut req)) = server.recv_timeout(Duration::from_millis(20)) {
                    let mut sink = Vec::new();
                    let _ = req.as_reader().read_to_end(&mut sink);
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = req
                        .respond(tiny_http::Response::from_string(body).with_status_code(status));
                }
            }
        });
        Server {
            port,
            requests,
            stop,
            handle: Some(handle),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// A URL carrying secrets in the path and the query.
    fn secret_url(&self) -> String {
        format!("http://127.0.0.1:{}/v2/SECRETKEY?apikey=SECRET2", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn assert_no_secret(out: &Output) {
    for stream in [&out.stderr, &out.stdout] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains("SECRET"), "secret leaked: {text}");
    }
}

#[test]
fn help_explains_the_flags() {
    let out = ethetl(&["export", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--rpc",
        "--blocks",
        "--start-block",
        "--end-block",
        "--entities",
        "--format",
        "--output",
        "--batch-size",
        "--io-threads",
        "--cpu-threads",
        "--max-retries",
        "--timeout",
        "--chunk-size",
        "--overwrite",
        "--checkpoint",
        "--report",
        "--topic-prefix",
        "--partitions",
        "--kafka-config",
        "ETH_RPC_URL",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }
}

#[test]
fn end_before_start() {
    let rpc = "http://127.0.0.1:9";
    let out = ethetl(&[
        "export", "--rpc", rpc, "--blocks", "100:50", "--output", "null",
    ]);
    one_error_line(&out, &["100:50", "before start"]);
    let out = ethetl(&[
        "export",
        "--rpc",
        rpc,
        "--start-block",
        "100",
        "--end-block",
        "99",
        "--output",
        "null",
    ]);
    one_error_line(&out, &["end block 99 is before start block 100"]);
}

#[test]
fn empty_and_overflowing_ranges() {
    let rpc = "http://127.0.0.1:9";
    let out = ethetl(&[
        "export", "--rpc", rpc, "--blocks", "5:5", "--output", "null",
    ]);
    one_error_line(&out, &["empty"]);
    let out = ethetl(&[
        "export", "--rpc", rpc, "--blocks", "5:+0", "--output", "null",
    ]);
    one_error_line(&out, &["empty"]);
    let out = ethetl(&[
        "export",
        "--rpc",
        rpc,
        "--blocks",
        "18446744073709551615:+2",
        "--output",
        "null",
    ]);
    one_error_line(&out, &["largest block number"]);
    let out = ethetl(&[
        "export",
        "--rpc",
        rpc,
        "--blocks",
        "99999999999999999999:+1",
        "--output",
        "null",
    ]);
    one_error_line(&out, &["larger than the largest block number"]);
}

#[test]
fn both_range_styles_is_an_error() {
    let out = ethetl(&[
        "export",
        "--rpc",
        "http://127.0.0.1:9",
        "--blocks",
        "1:2",
        "--start-block",
        "1",
        "--end-block",
        "2",
        "--output",
        "null",
    ]);
    one_error_line(&out, &["either --blocks or --start-block"]);
}

#[test]
fn unknown_entity_lists_the_valid_ones() {
    let out = ethetl(&[
        "export",
        "--rpc",
        "http://127.0.0.1:9",
        "--blocks",
        "1:2",
        "--entities",
        "blocks,traces",
        "--output",
        "null",
    ]);
    one_error_line(
        &out,
        &[
            "traces",
            "blocks, transactions, logs, token_transfers, receipts",
        ],
    );
}

#[test]
fn url_that_does_not_parse() {
    for bad in ["not a url", "ftp://127.0.0.1/", "127.0.0.1:8545"] {
        let out = ethetl(&[
            "export", "--rpc", bad, "--blocks", "1:2", "--output", "null",
        ]);
        one_error_line(&out, &["invalid RPC URL"]);
    }
    let out = ethetl(&[
        "export",
        "--rpc",
        "wss://host/v2/SECRETKEY?apikey=SECRET2",
        "--blocks",
        "1:2",
        "--output",
        "null",
    ]);
    one_error_line(&out, &["invalid RPC URL", "wss://host/v2/***?apikey=***"]);
    assert_no_secret(&out);
}

#[test]
fn missing_rpc_and_env_fallback() {
    let out = ethetl(&["export", "--blocks", "1:2", "--output", "null"]);
    one_error_line(&out, &["ETH_RPC_URL"]);
    // ETH_RPC_URL is used when --rpc is absent: here it points at nothing.
    let url = format!("http://127.0.0.1:{}/v2/SECRETKEY", dead_port());
    let out = ethetl_env(
        &[
            "export",
            "--blocks",
            "1:2",
            "--output",
            "null",
            "--max-retries",
            "0",
        ],
        Some(&url),
    );
    one_error_line(&out, &["blocks 1..=1"]);
    assert_no_secret(&out);
}

#[test]
fn csv_on_stdout_needs_one_entity() {
    let out = ethetl(&[
        "export",
        "--rpc",
        "http://127.0.0.1:9",
        "--blocks",
        "1:2",
        "--format",
        "csv",
        "--output",
        "-",
    ]);
    one_error_line(&out, &["exactly one entity"]);
}

#[test]
fn unknown_flag_is_one_line() {
    let out = ethetl(&["export", "--frobnicate"]);
    one_error_line(&out, &["--frobnicate"]);
}

#[test]
fn unreachable_node() {
    let port = dead_port();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let url = format!("http://127.0.0.1:{port}/v2/SECRETKEY?apikey=SECRET2");
    let out = ethetl(&[
        "export",
        "--rpc",
        &url,
        "--blocks",
        "18000000:+3",
        "--output",
        out_dir.to_str().unwrap(),
        "--max-retries",
        "0",
    ]);
    one_error_line(
        &out,
        &[
            "blocks 18000000..=18000002",
            "eth_getBlockByNumber",
            &format!("127.0.0.1:{port}/v2/***?apikey=***"),
        ],
    );
    assert_no_secret(&out);
    assert!(
        files_under(&out_dir).is_empty(),
        "{:?}",
        files_under(&out_dir)
    );
}

#[test]
fn retries_then_gives_up_with_backoff() {
    let server = Server::reply(503, "overloaded");
    let out = ethetl(&[
        "export",
        "--rpc",
        &server.secret_url(),
        "--blocks",
        "7:+1",
        "--entities",
        "blocks",
        "--output",
        "null",
        "--max-retries",
        "2",
        "--quiet",
    ]);
    // With --quiet the retry warnings are not shown: only the final error.
    one_error_line(
        &out,
        &["after 3 attempt", "HTTP 503", "overloaded", "blocks 7..=7"],
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
    assert_no_secret(&out);
}

#[test]
fn http_error_is_not_retried_when_it_cannot_help() {
    let server = Server::reply(401, "invalid api key");
    let out = ethetl(&[
        "export",
        "--rpc",
        &server.secret_url(),
        "--blocks",
        "1:+1",
        "--output",
        "null",
        "--max-retries",
        "5",
    ]);
    one_error_line(&out, &["HTTP 401", "invalid api key"]);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_no_secret(&out);
}

/// Runs an export to a directory against a server answering `body`, expecting a failure
/// that leaves no file under a final name; returns the error line.
fn bad_answer(body: &'static str, needles: &[&str]) -> String {
    let server = Server::reply(200, body);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = ethetl(&[
        "export",
        "--rpc",
        &server.secret_url(),
        "--blocks",
        "18000000:+1",
        "--output",
        out_dir.to_str().unwrap(),
        "--max-retries",
        "0",
    ]);
    let line = one_error_line(&out, needles);
    assert_no_secret(&out);
    assert!(
        files_under(&out_dir).is_empty(),
        "{:?}",
        files_under(&out_dir)
    );
    line
}

#[test]
fn non_json_response() {
    bad_answer(
        "<html>hello</html>",
        &["blocks 18000000..=18000000", "not valid JSON"],
    );
}

#[test]
fn truncated_json_response() {
    bad_answer(
        r#"[{"jsonrpc":"2.0","id":0,"result":{"number":"0x112a880","hash":"0x"#,
        &["blocks 18000000..=18000000", "not valid JSON"],
    );
}

#[test]
fn json_rpc_error_object() {
    bad_answer(
        r#"[{"jsonrpc":"2.0","id":0,"error":{"code":-32000,"message":"header not found"}},{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"header not found"}}]"#,
        &["block 18000000", "-32000", "header not found"],
    );
}

#[test]
fn block_the_node_does_not_have() {
    bad_answer(
        r#"[{"jsonrpc":"2.0","id":0,"result":null},{"jsonrpc":"2.0","id":1,"result":null}]"#,
        &["block 18000000", "eth_getBlockByNumber", "null"],
    );
}

#[test]
fn body_shorter_than_its_content_length() {
    // A raw socket: promise 1000 bytes, send a few, hang up.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let h = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let mut buf = [0u8; 65536];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{\"jsonrpc\":\"2.0\",\"id\":0,",
                    );
                    return;
                }
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    let url = format!("http://127.0.0.1:{port}/v2/SECRETKEY");
    let out = ethetl(&[
        "export",
        "--rpc",
        &url,
        "--blocks",
        "5:+1",
        "--output",
        "null",
        "--max-retries",
        "0",
    ]);
    one_error_line(&out, &["blocks 5..=5"]);
    assert_no_secret(&out);
    h.join().unwrap();
}

#[test]
fn unwritable_checkpoint_fails_before_any_request() {
    let server = Server::reply(200, "[]");
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("no/such/dir/cp.txt");
    let out = ethetl(&[
        "export",
        "--rpc",
        &server.url(),
        "--blocks",
        "1:+5",
        "--output",
        "null",
        "--checkpoint",
        cp.to_str().unwrap(),
    ]);
    one_error_line(&out, &["checkpoint", "no/such/dir/cp.txt"]);
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn checkpoint_outside_the_range() {
    let server = Server::reply(200, "[]");
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.txt");
    for (block, needle) in [("500", "holds block 500"), ("10", "holds block 10")] {
        std::fs::write(&cp, format!("{block}\n")).unwrap();
        let out = ethetl(&[
            "export",
            "--rpc",
            &server.url(),
            "--blocks",
            "100:200",
            "--output",
            "null",
            "--checkpoint",
            cp.to_str().unwrap(),
        ]);
        one_error_line(&out, &[needle, "outside the requested range"]);
    }
    std::fs::write(&cp, "garbage\n").unwrap();
    let out = ethetl(&[
        "export",
        "--rpc",
        &server.url(),
        "--blocks",
        "100:200",
        "--output",
        "null",
        "--checkpoint",
        cp.to_str().unwrap(),
    ]);
    one_error_line(&out, &["does not start with a block number"]);
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn checkpoint_at_the_end_means_nothing_to_do() {
    let server = Server::reply(200, "[]");
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.txt");
    std::fs::write(&cp, "199\n").unwrap();
    let out = ethetl(&[
        "export",
        "--rpc",
        &server.url(),
        "--blocks",
        "100:200",
        "--output",
        "null",
        "--checkpoint",
        cp.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to do"));
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn kafka_flags_need_kafka_output() {
    let out = ethetl(&[
        "export",
        "--rpc",
        "http://127.0.0.1:9",
        "--blocks",
        "1:2",
        "--output",
        "null",
        "--topic-prefix",
        "eth",
    ]);
    one_error_line(&out, &["--topic-prefix only applies"]);
    let out = ethetl(&[
        "export",
        "--rpc",
        "http://127.0.0.1:9",
        "--blocks",
        "1:2",
        "--output",
        "kafka://",
    ]);
    one_error_line(&out, &["kafka://host:port"]);
}
