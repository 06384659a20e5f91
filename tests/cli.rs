//! What a user sees when something is wrong: the real `ethetl` binary against bad flags and
//! against small local servers that misbehave. Every failure must be exactly one line on
//! stderr that names the problem, exit status 2, no RPC secret in the output, and no file
//! under a final name.

mod common;

use common::{data_files, dead_port, ethetl_command, files_under, run_ethetl, Process};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Output, Stdio};
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
        data_files(&out_dir).is_empty(),
        "{:?}",
        data_files(&out_dir)
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
    // One eth_blockNumber up front (the head check), then the 3 attempts.
    assert_eq!(server.requests.load(Ordering::SeqCst), 1 + 3);
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
    // The head check up front, then one attempt.
    assert_eq!(server.requests.load(Ordering::SeqCst), 1 + 1);
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
        data_files(&out_dir).is_empty(),
        "{:?}",
        data_files(&out_dir)
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

// ------------------------------------------------------------------------------------------------
// one flag set, settings from the environment and a file, aliases
// ------------------------------------------------------------------------------------------------

/// `--help` of a command, parsed into flag → (value name, help text with whitespace folded).
fn help_flags(command: &str) -> std::collections::BTreeMap<String, String> {
    let out = ethetl(&[command, "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let options = text
        .split("Options:")
        .nth(1)
        .expect("an Options section")
        .split("\nExamples:")
        .next()
        .unwrap();
    let mut flags = std::collections::BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in options.lines() {
        let t = line.trim();
        let starts_flag =
            t.starts_with("--") || (t.starts_with('-') && t.chars().nth(2) == Some(','));
        if starts_flag && line.starts_with("  ") && !line.starts_with("    ") {
            if let Some((k, v)) = current.take() {
                flags.insert(k, v);
            }
            let long = t
                .split_whitespace()
                .find(|w| w.starts_with("--"))
                .unwrap()
                .trim_end_matches(',')
                .to_string();
            current = Some((long, t.to_string()));
        } else if let Some((_, v)) = current.as_mut() {
            v.push(' ');
            v.push_str(t);
        }
    }
    if let Some((k, v)) = current {
        flags.insert(k, v);
    }
    flags
        .into_iter()
        .map(|(k, v)| (k, v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

#[test]
fn export_and_stream_share_every_pipeline_flag() {
    let export = help_flags("export");
    let stream = help_flags("stream");
    // Flags that only make sense for one command (or mean something else in each).
    let export_only = ["--blocks", "--end-block", "--overwrite", "--start-block"];
    let stream_only = [
        "--lag",
        "--poll-interval",
        "--max-reorg-depth",
        "--stop-at-block",
        "--start-block",
    ];
    for (flag, help) in &export {
        if export_only.contains(&flag.as_str()) {
            continue;
        }
        let other = stream
            .get(flag)
            .unwrap_or_else(|| panic!("`ethetl stream` lacks {flag}"));
        assert_eq!(help, other, "{flag} differs between export and stream");
    }
    for flag in stream.keys() {
        assert!(
            export.contains_key(flag) || stream_only.contains(&flag.as_str()),
            "`ethetl export` lacks {flag}"
        );
    }
    // The flags a rate-limited endpoint needs are among them.
    for f in [
        "--requests-per-second",
        "--count-calls",
        "--max-concurrency",
        "--ca-bundle",
        "--config",
        "--http",
    ] {
        assert!(stream.contains_key(f) && export.contains_key(f), "{f}");
    }
}

#[test]
fn short_help_and_version() {
    for args in [
        &["-h"][..],
        &["export", "-h"],
        &["stream", "-h"],
        &["config", "-h"],
    ] {
        let out = ethetl(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
    for flag in ["-V", "--version"] {
        let out = ethetl(&[flag]);
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ethetl "));
    }
}

/// Runs `ethetl config CMD args...` with `env` set (and nothing else of ethetl's).
fn config_of(args: &[&str], env: &[(&str, &str)]) -> Output {
    let all: Vec<&str> = std::iter::once("config")
        .chain(args.iter().copied())
        .collect();
    ethetl_with(&all, env)
}

/// The `key = value  # source` line of `key` in `ethetl config` output.
fn setting<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{stdout}"))
}

#[test]
fn settings_come_from_flags_then_environment_then_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ethetl.toml");
    std::fs::write(
        &file,
        "# comment\nrpc = \"https://node.example/v2/FILESECRETKEY\"\nbatch-size = 9\ntimeout = 33\n\
         chunk_size = 500\n[stream]\nlag = 7\n",
    )
    .unwrap();
    let path = file.display().to_string();
    let out = config_of(
        &[
            "export",
            "--config",
            &path,
            "--blocks",
            "100:+10",
            "--output",
            "null",
            "--batch-size",
            "3",
            "--provider-uri=http://127.0.0.1:1",
        ],
        &[("ETHETL_TIMEOUT", "44"), ("ETHETL_QUIET", "yes")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        setting(&stdout, "batch-size").contains("= 3")
            && setting(&stdout, "batch-size").contains("# flag --batch-size")
    );
    assert!(
        setting(&stdout, "timeout").contains("= 44")
            && setting(&stdout, "timeout").contains("environment ETHETL_TIMEOUT")
    );
    assert!(
        setting(&stdout, "chunk-size").contains("= 500")
            && setting(&stdout, "chunk-size").contains(":5")
    );
    assert!(setting(&stdout, "rpc").contains("flag --provider-uri"));
    assert!(setting(&stdout, "quiet").contains("= true"));
    assert!(setting(&stdout, "max-retries").contains("# default"));
    assert!(!stdout.contains("\nlag ="), "{stdout}");

    // The file's rpc is a secret path: shown redacted.
    let out = config_of(&["stream", "--output", "null"], &[("ETHETL_CONFIG", &path)]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(setting(&stdout, "lag").contains("= 7"), "{stdout}");
    assert!(
        setting(&stdout, "rpc").contains(&format!("file {path}:2")),
        "{stdout}"
    );
    assert!(!stdout.contains("FILESECRETKEY"), "{stdout}");

    // A Kafka password given with -X is never printed.
    let out = config_of(
        &[
            "export",
            "--rpc",
            "http://127.0.0.1:1",
            "-b",
            "1",
            "-o",
            "kafka://127.0.0.1:9",
            "-X",
            "sasl.password=KAFKAPASSWORD",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("KAFKAPASSWORD"), "{stdout}");
}

#[test]
fn bad_settings_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "rpc = \"http://h/v2/SECRETINFILE\"\nbatchsize = 3\n").unwrap();
    let path = file.display().to_string();
    let out = ethetl(&["export", "--config", &path, "-b", "1", "-o", "null"]);
    let line = one_error_line(&out, &[&path, ":2", "unknown key `batchsize`"]);
    assert!(!line.contains("SECRETINFILE"), "{line}");

    std::fs::write(&file, "batch-size = \"many\"\n").unwrap();
    let out = ethetl(&[
        "export",
        "--config",
        &path,
        "--rpc",
        "http://127.0.0.1:1",
        "-b",
        "1",
        "-o",
        "null",
    ]);
    one_error_line(&out, &["--batch-size", "many"]);

    let out = ethetl_with(
        &["export", "-b", "1", "-o", "null"],
        &[("ETHETL_RPC", "http://h:1 /v1/ENVSECRET")],
    );
    let line = one_error_line(&out, &["rpc"]);
    assert!(!line.contains("ENVSECRET"), "{line}");
    let out = ethetl(&[
        "export",
        "-b",
        "1",
        "-o",
        "null",
        "--rpc",
        "http://h:1 apikey=KEYSECRET",
    ]);
    let line = one_error_line(&out, &["apikey=***"]);
    assert!(!line.contains("KEYSECRET"), "{line}");

    let out = ethetl_with(
        &[
            "export",
            "-b",
            "1",
            "-o",
            "null",
            "--rpc",
            "http://127.0.0.1:1",
        ],
        &[("ETHETL_OVERWRITE", "perhaps")],
    );
    one_error_line(&out, &["ETHETL_OVERWRITE"]);

    let out = ethetl(&["export", "--config", "/nonexistent/ethetl.toml", "-b", "1"]);
    one_error_line(&out, &["/nonexistent/ethetl.toml"]);
}

#[test]
fn foreign_flag_names_point_at_ethetls() {
    let out = ethetl(&["export", "-p", "http://127.0.0.1:1"]);
    one_error_line(&out, &["-p", "--rpc"]);
    let out = ethetl(&["stream", "--period-seconds", "5"]);
    one_error_line(&out, &["--period-seconds", "--poll-interval"]);
    let out = ethetl(&["export", "--last-synced-block-file", "x"]);
    one_error_line(&out, &["--checkpoint"]);
    // Aliases that mean the same are taken.
    let out = ethetl(&[
        "config",
        "export",
        "--provider-uri",
        "http://127.0.0.1:1",
        "--max-workers",
        "3",
        "--max-concurrent-requests",
        "2",
        "-b",
        "1",
        "-o",
        "null",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(setting(&stdout, "io-threads").contains("= 3"));
    assert!(setting(&stdout, "max-concurrency").contains("= 2"));
}

#[test]
fn unknown_output_schemes_are_refused_without_echoing_the_url() {
    for url in [
        "s3://AKIAKEY:SECRETPW@bucket/path",
        "postgresql://etl:SECRETPW@db/chain",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = ethetl_command(&[
            "export",
            "--rpc",
            "http://127.0.0.1:1",
            "-b",
            "1",
            "-o",
            url,
        ]);
        cmd.current_dir(dir.path());
        let out = Process::start(cmd, "ethetl").finish(Duration::from_secs(60));
        let scheme = url.split("://").next().unwrap();
        let line = one_error_line(&out, &[&format!("`{scheme}://`"), "kafka://"]);
        assert!(
            !line.contains("SECRETPW") && !line.contains("AKIAKEY"),
            "{line}"
        );
        assert!(files_under(dir.path()).is_empty(), "nothing may be created");
    }
}

#[test]
fn a_closed_stderr_is_not_a_panic() {
    // `ethetl ... 2>&1 | head -c 0`: the reader is gone before the error is printed.
    let mut cmd = ethetl_command(&["export", "--blocks", "bad-range", "-o", "null"]);
    let mut child = cmd.stdout(Stdio::null()).spawn().unwrap();
    drop(child.stderr.take());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ethetl did not exit within 60 s");
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(2), "exit 2, not a panic (101)");
}

/// Runs the binary with `env` set (and no `ETH_RPC_URL` or `ETHETL_*` variable of the
/// caller's), killing it after 60 s.
fn ethetl_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = ethetl_command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Process::start(cmd, "ethetl").finish(Duration::from_secs(60))
}
