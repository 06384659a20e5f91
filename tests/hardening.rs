//! A hostile-but-fair user: kill -9 at any moment and the same command resumes; a second
//! process on the same output is refused; a node that answers with deep nesting, huge
//! strings, escape sequences or redirects gets a clear error and never a crash, bloat or a
//! forged terminal line; secrets stay out of every message.

mod common;

use common::hostile::{batch_answer, Hostile, Reply};
use common::{ethetl_command, files_under, Process};
use std::io::Read;
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
                &[
                    "export",
                    "--rpc",
                    &url,
                    "--blocks",
                    "100:+3",
                    "--output",
                    "null",
                    "--max-retries",
                    "1",
                    "--quiet",
                ],
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
        &[
            "export",
            "--rpc",
            &url,
            "--blocks",
            "1000:+10",
            "--output",
            "null",
            "--io-threads",
            "2",
            "--batch-size",
            "10",
            "--max-retries",
            "3",
            "--quiet",
        ],
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
