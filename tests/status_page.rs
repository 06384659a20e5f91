//! The `--http` status page rendered in real headless Chromium: a stream catches up with a dev
//! node whose chain no longer grows (so the numbers hold still), then
//! `scripts/check-status-page.sh` loads the page, lets its scripts run, dumps the DOM and takes
//! a screenshot (kept under the target directory's `tmp/status-page/`). The DOM must show the
//! numbers `/stats` serves and a drawn chart. Without Chromium the test is skipped with a
//! message, unless CI is set (then it fails).

use ethetl_devnode::{DevNode, GenConfig, NodeConfig};
use sonic_rs::JsonValueTrait;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

fn get(url: &str) -> String {
    ureq::get(url)
        .call()
        .expect("GET")
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// The text of the element with `id` in a serialized DOM.
fn shown<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let rest = &dom[at..];
    let open = rest.find('>')?;
    let close = rest[open..].find('<')?;
    Some(rest[open + 1..open + close].trim())
}

/// Kills the child if the test fails before it stopped it.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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
    let node = DevNode::start(NodeConfig::generated(GenConfig {
        blocks: BLOCKS,
        start_block: START,
        seed: 3,
        txs_per_block: Some(6),
        ..GenConfig::default()
    }))
    .expect("start dev node");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ethetl"))
        .args([
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
        ])
        .env_remove("ETH_RPC_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ethetl");
    let mut err = child.stderr.take().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let e2 = Arc::clone(&stderr);
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            e2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let pid = child.id();
    let mut guard = Guard(Some(child));

    let t = Instant::now();
    let url = loop {
        let text = stderr.lock().unwrap().clone();
        if let Some(line) = text.lines().find(|l| l.starts_with("stats: http://")) {
            break line["stats: ".len()..]
                .split(' ')
                .next()
                .unwrap()
                .to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no stats URL: {text}"
        );
        thread::sleep(Duration::from_millis(10));
    };
    let last = START + BLOCKS - 1;
    loop {
        let v: sonic_rs::Value = sonic_rs::from_str(&get(&format!("{url}stats"))).unwrap();
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
    let stats: sonic_rs::Value = sonic_rs::from_str(&get(&format!("{url}stats"))).unwrap();

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

    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut child = guard.0.take().unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("ethetl did not stop after SIGTERM");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = reader.join();
    assert_eq!(status.code(), Some(0), "{}", stderr.lock().unwrap());
}
