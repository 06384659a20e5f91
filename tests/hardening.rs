//! A hostile-but-fair user: kill -9 at any moment and the same command resumes; a second
//! process on the same output is refused; a node that answers with deep nesting, huge
//! strings, escape sequences or redirects gets a clear error and never a crash, bloat or a
//! forged terminal line; secrets stay out of every message.

mod common;

use common::hostile::{batch_answer, Hostile, Reply};
use common::{ethetl_command, Process};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary to completion (killed after `limit`) and returns its output and peak RSS
/// in bytes: the kernel's high-water mark of the process's own memory (`VmHWM`), read every
/// 10 ms while it runs. (`wait4`'s `ru_maxrss` would not do: it counts the memory of this
/// test process, which the child shared until its `exec`.)
fn run_measured(args: &[&str], limit: Duration) -> (Output, u64) {
    let mut child = ethetl_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ethetl");
    let drain = |mut p: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = p.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + limit;
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak_kb = peak_kb.max(hwm.unwrap_or(0));
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, peak_kb * 1024)
}

/// `export --rpc URL --blocks BLOCKS --output null EXTRA...`.
fn null_export<'a>(url: &'a str, blocks: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "export", "--rpc", url, "--blocks", blocks, "--output", "null",
    ];
    v.extend_from_slice(extra);
    v
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run failed cleanly: exit status 2 (not a signal), and an `error:` line naming `needle`.
fn failed_cleanly(out: &Output, needle: &str) -> String {
    let text = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "status {:?}: {text}",
        out.status
    );
    let last = text.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: "), "{text}");
    assert!(
        last.to_lowercase().contains(&needle.to_lowercase()),
        "`{needle}` missing from the error: {text}"
    );
    last
}

// ---------------------------------------------------------------------------------------------
// a hostile node

#[test]
fn any_nesting_depth_is_an_invalid_answer_retried_then_reported_never_a_crash() {
    for depth in [1_000usize, 10_000, 100_000] {
        for inside_result in [false, true] {
            let node = Hostile::start(move |r| {
                if inside_result {
                    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                    Reply::ok(batch_answer(&r.body, |_, _| deep.clone()))
                } else {
                    Reply::ok("[".repeat(depth))
                }
            });
            let url = node.url();
            let (out, _) = run_measured(
                &null_export(&url, "100:+3", &["--max-retries", "1", "--quiet"]),
                Duration::from_secs(60),
            );
            let what = format!("depth {depth}, inside a result: {inside_result}");
            let text = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{what}: {:?} {text}",
                out.status
            );
            assert!(!text.contains("overflow"), "{what}: {text}");
            let last = text.lines().last().unwrap_or_default();
            assert!(last.starts_with("error: "), "{what}: {text}");
            if depth > ethetl::json_depth::MAX_DEPTH {
                assert!(last.contains("nested more than"), "{what}: {text}");
            }
            // The error went through the retry path: the request was sent again.
            assert!(node.requests() >= 2, "{what}: {} requests", node.requests());
        }
    }
}

/// Peak RSS allowed for a run against a hostile node (README, "Memory"): what a small run
/// holds anyway, plus four times the largest response per I/O thread (a body of unknown
/// length grows by doubling while it is read).
fn hostile_bound(io_threads: u64, largest_response: u64) -> u64 {
    (64 << 20) + io_threads * 4 * largest_response
}

#[test]
fn a_fifty_megabyte_answer_does_not_bloat_the_process() {
    const HUGE: usize = 50 << 20;
    let huge = format!("\"{}\"", "7".repeat(HUGE));
    // Every request: the first call answered with a 50 MB string, every other one with an
    // error, so each round brings one "answer" while the rest are asked again.
    let node = Hostile::start(move |r| {
        let calls = common::hostile::calls(&r.body);
        let mut out = b"[".to_vec();
        for (k, (id, _)) in calls.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            let item = if k == 0 {
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{huge}}}"#)
            } else {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32000,"message":"busy"}}}}"#
                )
            };
            out.extend_from_slice(item.as_bytes());
        }
        out.push(b']');
        Reply::ok(out)
    });
    let url = node.url();
    let (out, rss) = run_measured(
        &null_export(
            &url,
            "1000:+10",
            &[
                "--io-threads",
                "2",
                "--batch-size",
                "10",
                "--max-retries",
                "3",
                "--quiet",
            ],
        ),
        Duration::from_secs(90),
    );
    failed_cleanly(
        &out,
        "the result is a string (52428802 bytes), not an object",
    );
    assert!(node.requests() >= 4, "{} requests", node.requests());
    let bound = hostile_bound(2, HUGE as u64 + (1 << 20));
    eprintln!("peak RSS {} MB (bound {} MB)", rss >> 20, bound >> 20);
    assert!(
        rss < bound,
        "peak RSS {} MB over the bound of {} MB",
        rss >> 20,
        bound >> 20
    );
}

// ---------------------------------------------------------------------------------------------
// kill -9, resume, one writer

const K_START: u64 = 23_000_000;
const K_BLOCKS: u64 = 300;

/// The node of the resume and lock tests: a generated chain, with `extra` flags.
fn chain_node(extra: &[&str]) -> common::DevnodeProcess {
    let (blocks, start) = (K_BLOCKS.to_string(), K_START.to_string());
    let mut args = vec![
        "--generate",
        &blocks,
        "--start-block",
        &start,
        "--txs-per-block",
        "20",
        "--seed",
        "3",
    ];
    args.extend_from_slice(extra);
    common::DevnodeProcess::start(&args)
}

fn killable_node() -> common::DevnodeProcess {
    chain_node(&[])
}

fn export_args(url: &str, out: &std::path::Path, cp: Option<&std::path::Path>) -> Vec<String> {
    let mut v: Vec<String> = [
        "export",
        "--rpc",
        url,
        "--blocks",
        &format!("{K_START}:+{K_BLOCKS}"),
        "--output",
        out.to_str().unwrap(),
        "--chunk-size",
        "10",
        "--batch-size",
        "2",
        "--io-threads",
        "2",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(cp) = cp {
        v.extend(["--checkpoint".to_string(), cp.display().to_string()]);
    }
    v
}

/// Every chunk of `dir` has a manifest whose files exist with the rows and bytes it lists,
/// and nothing else is there but the lock file (no temporary file, no file without a
/// manifest).
fn assert_complete_chunks(dir: &std::path::Path, chunks: usize) {
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    let manifests = common::manifests(dir);
    assert_eq!(manifests.len(), chunks, "{:?}", manifests.keys());
    let mut listed = std::collections::BTreeSet::new();
    for (name, m) in &manifests {
        let files = m.get("files").and_then(|f| f.as_object()).expect(name);
        for (entity, f) in files.iter() {
            let path = f.get("path").and_then(|p| p.as_str()).unwrap().to_string();
            assert!(path.starts_with(&format!("{entity}/")), "{name}: {path}");
            let bytes = std::fs::read(dir.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(
                f.get("bytes").and_then(|b| b.as_u64()),
                Some(bytes.len() as u64)
            );
            let rows = bytes.iter().filter(|b| **b == b'\n').count() as u64;
            assert_eq!(f.get("rows").and_then(|r| r.as_u64()), Some(rows), "{path}");
            listed.insert(path);
        }
    }
    let data: std::collections::BTreeSet<String> = common::tree(dir).into_keys().collect();
    assert_eq!(
        data, listed,
        "files without a manifest, or manifests without files"
    );
    let all = common::files_under(dir);
    assert!(all.iter().all(|f| !f.ends_with(".tmp")), "{all:?}");
}

#[test]
fn killed_at_any_moment_the_same_command_resumes_to_the_same_files() {
    let node = killable_node();
    let url = node.url();
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    let clean_args = export_args(&url, &clean, None);
    common::assert_success(&common::run_ethetl(&clean_args, Duration::from_secs(120)));
    let expected = common::tree(&clean);
    let chunks = (K_BLOCKS / 10) as usize;
    assert_complete_chunks(&clean, chunks);

    let out = tmp.path().join("out");
    let cp = tmp.path().join("last_synced_block.txt");
    let args = export_args(&url, &out, Some(&cp));
    // How long a whole run takes, to spread the kills over it.
    let t = Instant::now();
    common::assert_success(&common::run_ethetl(
        &export_args(&url, &tmp.path().join("timing"), None),
        Duration::from_secs(120),
    ));
    let whole = t.elapsed().as_millis().max(50) as u64;
    let mut killed = 0;
    let mut progress = Vec::new();
    for i in 0..10u64 {
        let mut p = Process::start(ethetl_command(&args), "ethetl");
        // From right after the start to near the end of what is left, never the same twice.
        std::thread::sleep(Duration::from_millis(5 + (i * 7919) % whole));
        if p.try_wait().is_none() {
            killed += 1;
        }
        p.kill();
        let status = p.try_wait().unwrap();
        assert!(
            status.success() || status.signal() == Some(9),
            "run {i}: {status:?}: {}",
            p.stderr_so_far()
        );
        progress.push(ethetl::checkpoint::read_checkpoint(&cp).unwrap());
    }
    assert!(killed >= 5, "only {killed} of 10 runs were killed mid-way");
    let last = common::run_ethetl(&args, Duration::from_secs(120));
    common::assert_success(&last);
    assert_eq!(
        ethetl::checkpoint::read_checkpoint(&cp).unwrap(),
        Some(K_START + K_BLOCKS - 1)
    );
    let got = common::tree(&out);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "checkpoints after each kill: {progress:?}"
    );
    assert!(
        got == expected,
        "the resumed output differs from a clean run's"
    );
    assert_complete_chunks(&out, chunks);
}

#[test]
fn a_second_writer_is_refused_at_once_naming_the_first() {
    let node = killable_node();
    let url = node.url();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // The first one is slowed down by the node (every request stalls 300 ms).
    let slow = chain_node(&["--faults", "stall:1", "--stall-ms", "300"]);
    let cp = tmp.path().join("cp");
    let first = Process::start(
        ethetl_command(&export_args(&slow.url(), &out, Some(&cp))),
        "first ethetl",
    );
    // Its lock file names it once it holds the lock.
    let lock = out.join(ethetl::sink::file::LOCK_FILE);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != first.id().to_string() {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = format!("pid {}", first.id());
    // Same output, other checkpoint; same checkpoint, other output (also through a symbolic
    // link); both the same; no checkpoint.
    let link = tmp.path().join("cp-link");
    std::os::unix::fs::symlink(&cp, &link).unwrap();
    let cases = [
        export_args(&url, &out, Some(&tmp.path().join("cp2"))),
        export_args(&url, &tmp.path().join("other"), Some(&cp)),
        export_args(&url, &tmp.path().join("other2"), Some(&link)),
        export_args(&url, &out, Some(&cp)),
        export_args(&url, &out, None),
    ];
    for args in &cases {
        let t = Instant::now();
        let second = common::run_ethetl(args, Duration::from_secs(30));
        let err = failed_cleanly(&second, "in use by another ethetl process");
        assert!(err.contains(&pid), "{err}");
        assert!(t.elapsed() < Duration::from_secs(10), "not refused at once");
    }
    // `ethetl stream` on the same checkpoint is refused the same way.
    let stream = common::run_ethetl(
        &[
            "stream",
            "--rpc",
            &url,
            "--start-block",
            &K_START.to_string(),
            "--output",
            tmp.path().join("s").to_str().unwrap(),
            "--checkpoint",
            cp.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    let err = failed_cleanly(&stream, "in use by another ethetl process");
    assert!(err.contains(&pid), "{err}");
    // The first run was not disturbed: it completes, and its files are whole.
    let done = first.finish(Duration::from_secs(120));
    common::assert_success(&done);
    assert_complete_chunks(&out, (K_BLOCKS / 10) as usize);
    drop(node);
}

#[test]
fn after_a_write_failure_the_printed_advice_resumes() {
    use std::os::unix::process::CommandExt;
    let node = common::DevnodeProcess::start(&[
        "--generate",
        "200",
        "--start-block",
        &K_START.to_string(),
        "--seed",
        "4",
    ]);
    let url = node.url();
    let tmp = tempfile::tempdir().unwrap();
    let mut clean_args = export_args(&url, &tmp.path().join("clean"), None);
    clean_args[4] = format!("{K_START}:+200");
    common::assert_success(&common::run_ethetl(&clean_args, Duration::from_secs(120)));
    let expected = common::tree(&tmp.path().join("clean"));
    // A file-size limit between the smallest and the largest file: writing fails part-way
    // through the range (EFBIG, as ENOSPC would on a full disk; no privileges needed).
    let mut sizes: Vec<u64> = expected.values().map(|b| b.len() as u64).collect();
    sizes.sort();
    let limit = sizes[sizes.len() * 3 / 4];

    let out = tmp.path().join("out");
    let cp = tmp.path().join("cp");
    let mut args = export_args(&url, &out, Some(&cp));
    args[4] = format!("{K_START}:+200");
    let mut cmd = ethetl_command(&args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let r = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let failed =
        Process::start(cmd, "ethetl with a file-size limit").finish(Duration::from_secs(120));
    let err = failed_cleanly(&failed, "run the same command to");
    match ethetl::checkpoint::read_checkpoint(&cp).unwrap() {
        Some(b) => assert!(
            err.contains(&format!("holds block {b}; run the same command to resume")),
            "{err}"
        ),
        None => assert!(err.contains("no checkpoint was written"), "{err}"),
    }
    assert!(!err.contains("up to date"), "{err}");
    // The advice, followed: the same command.
    common::assert_success(&common::run_ethetl(&args, Duration::from_secs(120)));
    let got = common::tree(&out);
    assert!(got == expected, "{:?}", got.keys().collect::<Vec<_>>());
    assert_complete_chunks(&out, 20);
}

// ---------------------------------------------------------------------------------------------
// the status server

fn stats_server() -> ethetl::http::StatsServer {
    let m = ethetl::metrics::Metrics::new("export", &[]);
    ethetl::http::StatsServer::start("127.0.0.1:0".parse().unwrap(), m).unwrap()
}

/// The status line of whatever `conn` answers (empty if it closed without one).
fn status_line(conn: &mut std::net::TcpStream) -> String {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
        if text.windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_huge_request_header_is_refused_without_reading_it() {
    use std::io::Write;
    let srv = stats_server();
    let mut conn = std::net::TcpStream::connect(srv.addr()).unwrap();
    let mut writer = conn.try_clone().unwrap();
    // 400 MB of one header, written until the server stops taking it.
    let sent = std::thread::spawn(move || {
        let _ = writer.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Big: ");
        let chunk = vec![b'a'; 1 << 20];
        let mut sent = 0usize;
        while sent < 400 << 20 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let status = status_line(&mut conn);
    assert!(status.starts_with("HTTP/1.1 431"), "{status:?}");
    drop(conn);
    let sent = sent.join().unwrap();
    assert!(
        sent < 64 << 20,
        "the server took {} MB of header",
        sent >> 20
    );
    // Still serving.
    assert_eq!(common::http_get(&format!("{}stats", srv.url())).0, 200);
}

#[test]
fn idle_connections_are_capped_and_timed_out() {
    let srv = stats_server();
    // Clients that connect and send nothing.
    let idle: Vec<_> = (0..16)
        .map(|_| std::net::TcpStream::connect(srv.addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = std::net::TcpStream::connect(srv.addr()).unwrap();
    let status = status_line(&mut extra);
    assert!(status.starts_with("HTTP/1.1 503"), "{status:?}");
    // The idle ones are closed once they took too long; then the server answers again.
    let t = Instant::now();
    for mut c in idle {
        let _ = c.set_read_timeout(Some(Duration::from_secs(15)));
        let mut b = [0u8; 16];
        assert!(matches!(c.read(&mut b), Ok(0) | Err(_)));
    }
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(common::http_get(&format!("{}healthz", srv.url())).0, 200);
}

// ---------------------------------------------------------------------------------------------
// what gets printed

#[test]
fn a_node_cannot_write_terminal_control_sequences() {
    // Retitle the terminal, ring the bell, return to the line start and print a fake result.
    const EVIL: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2K\rexport complete: 0 errors\u{9b}31m";
    let message = sonic_rs::to_string(EVIL).unwrap();
    let node = Hostile::start(move |r| Reply::ok(common::hostile::error_answer(&r.body, &message)));
    let url = node.url();
    let (out, _) = run_measured(
        &null_export(&url, "5:+2", &["--max-retries", "1"]),
        Duration::from_secs(60),
    );
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for (i, c) in text.char_indices() {
        assert!(
            !c.is_control() || c == '\n' || c == '\t',
            "raw control character {:?} at {i} in: {text:?}",
            c
        );
    }
    assert!(text.contains("\\u{1b}]0;pwned\\u{7}"), "{text}");
    assert!(text.contains("\\u{9b}31m"), "{text}");
}

#[test]
fn secrets_in_endpoint_settings_are_never_echoed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("endpoints");
    std::fs::write(
        &file,
        "# keys stay in this file\nhttp://127.0.0.1:1/ apikey=SECRET_A1b2C3d4\nhttp://127.0.0.1:1/ weight=SECRET_B9x8\n",
    )
    .unwrap();
    let file_arg = format!("@{}", file.display());
    for rpc in [
        // A space where the URL goes on: the rest is a stray word.
        "http://127.0.0.1:1 /v1/SECRET_C7q",
        file_arg.as_str(),
        // An all-lowercase key in the path.
        "http://127.0.0.1:1/v1/secretkeylowercase",
        "http://127.0.0.1:99999/v1/SECRET_D4",
        "http://user:SECRET_E5@127.0.0.1:1/ rps=SECRET_F6",
    ] {
        let out = common::run_ethetl(
            &[
                "export",
                "--rpc",
                rpc,
                "--blocks",
                "1:+1",
                "--output",
                "null",
                "--max-retries",
                "0",
            ],
            Duration::from_secs(30),
        );
        let text = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert_eq!(out.status.code(), Some(2), "{rpc}: {text}");
        for secret in ["SECRET", "secretkeylowercase"] {
            assert!(!text.contains(secret), "{rpc}: {text}");
        }
        assert!(text.contains("***"), "{rpc}: {text}");
    }
    // Refused before any request: a port that cannot exist.
    let out = common::run_ethetl(
        &[
            "export",
            "--rpc",
            "http://127.0.0.1:99999/",
            "--blocks",
            "1:+1",
            "--output",
            "null",
        ],
        Duration::from_secs(30),
    );
    failed_cleanly(&out, "port 99999 is out of range");
    // `ethetl config` shows the settings, the keys masked.
    let out = common::run_ethetl(
        &[
            "config", "export", "--rpc", &file_arg, "--blocks", "1:+1", "--output", "null",
        ],
        Duration::from_secs(30),
    );
    let text = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(!text.contains("SECRET_"), "{text}");
}

/// Every call answered with a JSON-RPC error object (HTTP 200).
fn erroring_node() -> Hostile {
    Hostile::start(|r| {
        Reply::ok(common::hostile::error_answer(
            &r.body,
            r#""header not found""#,
        ))
    })
}

#[test]
fn healthz_fails_and_errors_are_counted_when_every_call_fails() {
    let node = erroring_node();
    let url = node.url();
    let mut run = Process::start(
        ethetl_command(&[
            "export",
            "--rpc",
            &url,
            "--blocks",
            "100:+40",
            "--output",
            "null",
            "--batch-size",
            "1",
            "--io-threads",
            "4",
            "--max-retries",
            "100",
            "--http",
            "0",
        ]),
        "ethetl",
    );
    let stats = run.stats_url();
    let deadline = Instant::now() + Duration::from_secs(60);
    let why = loop {
        let (status, body) = common::http_get(&format!("{stats}healthz"));
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(Instant::now() < deadline, "/healthz stayed ok: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        why.contains("failed") && why.contains("header not found"),
        "{why}"
    );
    let metrics = common::http_get_ok(&format!("{stats}metrics"));
    let errors: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("ethetl_rpc_errors_total{") && l.contains("call=\"batch\""))
        .filter_map(|l| l.rsplit(" ").next()?.parse::<f64>().ok())
        .sum();
    assert!(errors >= 5.0, "{metrics}");
    run.kill();
}

// ---------------------------------------------------------------------------------------------
// the chain head

fn head_of(url: &str) -> u64 {
    let mut r = ureq::post(url)
        .header("Content-Type", "application/json")
        .send(r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#)
        .unwrap();
    let v: sonic_rs::Value = sonic_rs::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap();
    use sonic_rs::JsonValueTrait;
    let hex = v
        .get("result")
        .and_then(|h| h.as_str())
        .unwrap()
        .to_string();
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn a_lag_beyond_the_head_waits_for_the_chain_to_grow() {
    // A young chain: block 0 at start, one more every 400 ms.
    let node = common::DevnodeProcess::start(&[
        "--generate",
        "40",
        "--start-block",
        "0",
        "--txs-per-block",
        "2",
        "--block-time",
        "400",
        "--initial-blocks",
        "1",
    ]);
    let url = node.url();
    let tmp = tempfile::tempdir().unwrap();
    let out = common::run_ethetl(
        &[
            "stream",
            "--rpc",
            &url,
            "--lag",
            "4",
            "--poll-interval",
            "0.1",
            "--stop-at-block",
            "0",
            "--output",
            tmp.path().join("out").to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let text = common::assert_success(&out);
    assert!(
        text.contains("less than --lag 4: waiting for block 4"),
        "{text}"
    );
    // Block 0 was exported only once it was 4 blocks behind the head.
    assert!(
        head_of(&url) >= 4,
        "head {} after the stream ended: {text}",
        head_of(&url)
    );
    let rows = common::jsonl_rows(&tmp.path().join("out"), "blocks");
    assert_eq!(rows.len(), 1, "{rows:?}");
}

#[test]
fn a_start_beyond_the_head_is_refused_up_front_naming_the_head() {
    let node = killable_node();
    let url = node.url();
    let head = K_START + K_BLOCKS - 1;
    let t = Instant::now();
    let out = common::run_ethetl(
        &[
            "export",
            "--rpc",
            &url,
            "--blocks",
            &format!("{}:+5", head + 10),
            "--output",
            "null",
        ],
        Duration::from_secs(60),
    );
    let err = failed_cleanly(&out, &format!("the node's head is block {head}"));
    assert!(err.contains(&format!("{}", head + 10)), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{:?}: not refused up front",
        t.elapsed()
    );
}

#[test]
fn a_redirect_is_not_followed_and_the_error_names_its_target() {
    let target = Hostile::start(|r| Reply::ok(batch_answer(&r.body, |_, _| "null".into())));
    let location = format!("http://localhost:{}/steal?apikey=SECRET_LOC", target.port());
    let node = Hostile::start(move |_| Reply {
        status: 307,
        headers: vec![("Location".into(), location.clone())],
        body: b"moved".to_vec(),
    });
    let url = node.url();
    let t = Instant::now();
    let out = common::run_ethetl(
        &[
            "export", "--rpc", &url, "--blocks", "7:+2", "--output", "null",
        ],
        Duration::from_secs(60),
    );
    let err = failed_cleanly(&out, "HTTP 307");
    assert!(
        err.contains("a redirect to localhost, not followed"),
        "{err}"
    );
    assert!(!err.contains("SECRET") && !err.contains("steal"), "{err}");
    assert_eq!(target.requests(), 0, "the redirect was followed");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "retried: {:?}",
        t.elapsed()
    );
}
