//! The `--http` status page rendered in real headless Chromium: a stream catches up with a dev
//! node whose chain no longer grows (so the numbers hold still), then
//! `scripts/check-status-page.sh` loads the page, lets its scripts run, dumps the DOM and takes
//! a screenshot (kept under the target directory's `tmp/status-page/`). The DOM must show the
//! numbers `/stats` serves and a drawn chart. Without Chromium the test is skipped with a
//! message, unless CI is set (then it fails).

mod common;

use common::{ethetl_command, generated_node, http_get_ok, stderr_of, Process};
use ethetl_devnode::GenConfig;
use sonic_rs::JsonValueTrait;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const START: u64 = 20_000_000;
const BLOCKS: u64 = 25;

fn chromium_present() -> bool {
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome-stable",
        "google-chrome",
    ];
    std::env::var("CHROMIUM")
        .ok()
        .into_iter()
        .chain(names.iter().map(|s| s.to_string()))
        .any(|b| {
            Command::new("sh")
                .args(["-c", &format!("command -v '{b}' >/dev/null 2>&1")])
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// The text of the element with `id` in a serialized DOM.
fn shown<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let rest = &dom[at..];
    let open = rest.find('>')?;
    let close = rest[open..].find('<')?;
    Some(rest[open + 1..open + close].trim())
}

#[test]
fn status_page_renders_live_numbers_and_the_chart_in_chromium() {
    if !chromium_present() {
        if std::env::var_os("CI").is_some() {
            panic!("Chromium not found, and CI is set (install the Debian package chromium)");
        }
        eprintln!("skipping: Chromium not found (apt-get install chromium to run this test)");
        return;
    }
    let node = generated_node(GenConfig {
        blocks: BLOCKS,
        start_block: START,
        seed: 3,
        txs_per_block: Some(6),
        ..GenConfig::default()
    });
    let mut cmd = ethetl_command(&[
        "stream",
        "--rpc",
        &node.url(),
        "--start-block",
        &START.to_string(),
        "--poll-interval",
        "0.2",
        "--output",
        "null",
        "--http",
        "127.0.0.1:0",
    ]);
    cmd.stdout(Stdio::null());
    // Killed when dropped, should the test fail before it stopped it.
    let mut child = Process::start(cmd, "ethetl stream");
    let t = Instant::now();
    let url = child.stats_url();
    let last = START + BLOCKS - 1;
    loop {
        let v: sonic_rs::Value = sonic_rs::from_str(&http_get_ok(&format!("{url}stats"))).unwrap();
        if v["checkpoint_block"].as_u64() == Some(last) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the stream did not catch up"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // A few chart samples (one per second).
    thread::sleep(Duration::from_millis(2500));
    let stats: sonic_rs::Value = sonic_rs::from_str(&http_get_ok(&format!("{url}stats"))).unwrap();

    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    let _ = std::fs::remove_dir_all(&out);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-status-page.sh");
    let check = Command::new(&script)
        .args([&url, out.to_str().unwrap()])
        .output()
        .expect("run the check script");
    let script_err = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{script_err}");

    // Independently of the script: the DOM after the page's scripts ran shows /stats.
    let dom = std::fs::read_to_string(out.join("dom.html")).unwrap();
    for key in [
        "blocks_streamed",
        "transactions_streamed",
        "logs",
        "current_block",
        "head",
        "lag",
        "checkpoint_block",
    ] {
        let want = stats[key].as_u64().unwrap().to_string();
        assert_eq!(
            shown(&dom, key),
            Some(want.as_str()),
            "{key} in the rendered page"
        );
    }
    assert_eq!(
        shown(&dom, "blocks_streamed"),
        Some(BLOCKS.to_string().as_str())
    );
    assert_eq!(
        shown(&dom, "transactions_streamed"),
        Some((BLOCKS * 6).to_string().as_str())
    );
    assert_eq!(shown(&dom, "status"), Some("running"));
    let svg = &dom[dom.find("<svg").expect("chart element")..];
    assert!(
        svg.starts_with("<svg id=\"chart\""),
        "{}",
        &svg[..80.min(svg.len())]
    );
    let samples: usize = svg
        .split("data-samples=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(samples >= 1, "{samples}");
    let rate_line = svg.find("id=\"rate-line\"").unwrap();
    let points = svg[rate_line..]
        .split("points=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    assert_eq!(points.split_whitespace().count(), samples, "{points}");
    let png = std::fs::read(out.join("status.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    eprintln!(
        "status page screenshot: {}",
        out.join("status.png").display()
    );

    child.signal("TERM");
    let out = child.finish(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}
