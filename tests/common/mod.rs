//! Scaffolding every integration test file shares (`mod common;`), so that each file holds only
//! its own cases: the shared fixtures (skipped with a message when missing, unless CI is set),
//! dev nodes (in-process or the `ethetl-devnode` binary, on port 0), the `ethetl` binary run
//! with a time limit and its pipes drained, output directories read back as rows, JSON and CSV
//! compared with ethereum-etl's, and the Kafka broker ([`kafka`]).
#![allow(dead_code)] // each test file uses a part of it

pub mod hostile;
pub mod kafka;

use ethetl::RowBuf;
use ethetl_devnode::{DevNode, GenConfig, NodeConfig};
use sonic_rs::{JsonType, JsonValueTrait, LazyValue};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// fixtures

/// `../shared/fixtures` (recorded mainnet answers and ethereum-etl's output for them). `None`,
/// after printing why, when it is missing; a missing directory fails the test when `CI` is set.
pub fn shared_fixtures() -> Option<PathBuf> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures"));
    if root.is_dir() {
        return Some(root);
    }
    if std::env::var_os("CI").is_some() {
        panic!("../shared/fixtures not found (required when CI is set)");
    }
    eprintln!("skipping: ../shared/fixtures not found");
    None
}

/// The recorded mainnet chain of [`shared_fixtures`], as the dev node serves it.
pub fn mainnet_fixtures() -> Option<PathBuf> {
    shared_fixtures().map(|root| root.join("rpc/mainnet"))
}

/// A file of the repository's own `fixtures/` directory.
pub fn repo_fixture(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A text file, or a panic naming it.
pub fn read_text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ---------------------------------------------------------------------------------------------
// dev nodes

/// An in-process dev node on a free loopback port.
pub fn start_node(cfg: NodeConfig) -> DevNode {
    DevNode::start(cfg).expect("start dev node")
}

/// An in-process dev node serving a generated chain.
pub fn generated_node(gen: GenConfig) -> DevNode {
    start_node(NodeConfig::generated(gen))
}

/// The `ethetl-devnode` binary of this build (built first when missing or stale; see
/// `ethetl_devnode::locate`).
pub fn devnode_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        ethetl_devnode::locate::binary().unwrap_or_else(|e| panic!("ethetl-devnode binary: {e}"))
    })
}

/// `ethetl-devnode ARGS` with stdin closed and stdout/stderr piped, not started.
pub fn devnode_command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    piped(devnode_bin(), args)
}

/// Runs `ethetl-devnode ARGS` to its end (killed, failing the test, after `limit`).
pub fn run_devnode<S: AsRef<OsStr>>(args: &[S], limit: Duration) -> Output {
    Process::start(devnode_command(args), "ethetl-devnode").finish(limit)
}

/// A running `ethetl-devnode` process, killed when dropped.
pub struct DevnodeProcess {
    pub process: Process,
    /// `IP:PORT`, the first line it printed.
    pub addr: String,
}

impl DevnodeProcess {
    /// Starts `ethetl-devnode ARGS` (add `--port 0` or leave the default: a free port) and
    /// waits (at most 120 s) for the address it prints first.
    pub fn start<S: AsRef<OsStr>>(args: &[S]) -> DevnodeProcess {
        let mut process = Process::start(devnode_command(args), "ethetl-devnode");
        let addr = process.wait_for_stdout(Duration::from_secs(120), |out| {
            out.split_once('\n').map(|(first, _)| first.to_string())
        });
        DevnodeProcess { process, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

// ---------------------------------------------------------------------------------------------
// processes

/// The `ethetl` binary cargo built for these tests.
pub const ETHETL: &str = env!("CARGO_BIN_EXE_ethetl");

/// `PROGRAM ARGS` with stdin closed and stdout/stderr piped, not started.
fn piped<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// `ethetl ARGS` without `ETH_RPC_URL` or any `ETHETL_*` setting from the environment (a
/// developer's `ETHETL_BATCH_SIZE` must not change what a test sees), stdin closed, stdout and
/// stderr piped; not started.
pub fn ethetl_command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = piped(ETHETL, args);
    cmd.env_remove("ETH_RPC_URL");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETHETL_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `ethetl ARGS` to its end; after `limit` it is killed and the test fails with its
/// stderr.
pub fn run_ethetl<S: AsRef<OsStr>>(args: &[S], limit: Duration) -> Output {
    Process::start(ethetl_command(args), "ethetl").finish(limit)
}

/// Stderr as text.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit status 0; returns stderr.
pub fn assert_success(out: &Output) -> String {
    let stderr = stderr_of(out);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    stderr
}

/// `&[String]` as `&[&str]`.
pub fn str_args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Sends signal `sig` (a name such as "TERM", "STOP", "CONT", "KILL") to process `pid` with
/// `kill(1)`. A failed `kill -CONT` is tolerated (the process may be gone).
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(
        status.success() || sig == "CONT",
        "kill -{sig} {pid} failed"
    );
}

/// A port with nothing listening on it.
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A child process whose piped stdout and stderr are read on threads as they come (so it never
/// blocks on a full pipe, and the text so far can be watched). Killed when dropped unless it
/// exited.
pub struct Process {
    child: Child,
    /// Set once the child is reaped.
    status: Option<ExitStatus>,
    what: String,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The reader threads; each ends when its pipe closes (the child and its heirs exited).
    readers: Vec<JoinHandle<()>>,
}

fn drain(
    pipe: Option<impl Read + Send + 'static>,
    into: &Arc<Mutex<Vec<u8>>>,
) -> Option<JoinHandle<()>> {
    let mut pipe = pipe?;
    let into = Arc::clone(into);
    Some(thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    }))
}

impl Process {
    /// Starts `cmd` (named `what` in failures).
    pub fn start(mut cmd: Command, what: &str) -> Process {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Process::watch(child, what)
    }

    /// Takes over a started child, reading whichever of its pipes are still there.
    pub fn watch(mut child: Child, what: &str) -> Process {
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = [
            drain(child.stdout.take(), &stdout),
            drain(child.stderr.take(), &stderr),
        ]
        .into_iter()
        .flatten()
        .collect();
        Process {
            child,
            status: None,
            what: what.to_string(),
            stdout,
            stderr,
            readers,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Polls `found` over the stdout text so far until it returns `Some`; fails the test after
    /// `limit`, or when the process exits first.
    pub fn wait_for_stdout<T>(&mut self, limit: Duration, found: impl Fn(&str) -> Option<T>) -> T {
        self.wait_for(limit, "stdout", |r| found(&r.stdout_so_far()))
    }

    /// Like [`Process::wait_for_stdout`], over stderr.
    pub fn wait_for_stderr<T>(&mut self, limit: Duration, found: impl Fn(&str) -> Option<T>) -> T {
        self.wait_for(limit, "stderr", |r| found(&r.stderr_so_far()))
    }

    fn wait_for<T>(
        &mut self,
        limit: Duration,
        stream: &str,
        found: impl Fn(&Process) -> Option<T>,
    ) -> T {
        let t = Instant::now();
        loop {
            if let Some(v) = found(self) {
                return v;
            }
            let exited = self.try_wait();
            if exited.is_some() || t.elapsed() > limit {
                // What it wrote until its pipes closed.
                for r in self.readers.drain(..).filter(|_| exited.is_some()) {
                    let _ = r.join();
                }
                if let Some(v) = found(self) {
                    return v;
                }
                panic!(
                    "{}: nothing expected on its {stream} ({}, after {:?}); stdout: {}\nstderr: {}",
                    self.what,
                    exited.map_or("still running".to_string(), |s| format!("exited: {s}")),
                    t.elapsed(),
                    self.stdout_so_far(),
                    self.stderr_so_far()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The `http://IP:PORT/` that `ethetl --http` prints as `stats: http://...` (at most 20 s).
    pub fn stats_url(&mut self) -> String {
        self.wait_for_stderr(Duration::from_secs(20), |text| {
            let line = text.lines().find(|l| l.starts_with("stats: http://"))?;
            Some(line["stats: ".len()..].split(' ').next()?.to_string())
        })
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Sends `sig` (see [`signal`]).
    pub fn signal(&self, sig: &str) {
        signal(self.id(), sig);
    }

    /// SIGKILL (unless it exited) and reap.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Waits for the exit (at most `limit`: then the process is killed and the test fails
    /// with its stderr) and returns everything it wrote.
    pub fn finish(mut self, limit: Duration) -> Output {
        let t = Instant::now();
        let status = loop {
            if let Some(st) = self.try_wait() {
                break st;
            }
            if t.elapsed() > limit {
                self.kill();
                panic!(
                    "{} did not exit within {limit:?}; stderr: {}",
                    self.what,
                    self.stderr_so_far()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Output {
            status,
            stdout: std::mem::take(&mut *self.stdout.lock().unwrap()),
            stderr: std::mem::take(&mut *self.stderr.lock().unwrap()),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// `GET url`: status and body (any status, no error for 4xx/5xx).
pub fn http_get(url: &str) -> (u16, String) {
    let mut resp = ureq::get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

/// `GET url`, which must answer 200; the body.
pub fn http_get_ok(url: &str) -> String {
    let (status, body) = http_get(url);
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

// ---------------------------------------------------------------------------------------------
// outputs

fn walk(dir: &Path, strict: bool, mut file: impl FnMut(String, &Path)) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if strict => panic!("{}: {e}", d.display()),
            Err(_) => continue,
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                file(p.strip_prefix(dir).unwrap().display().to_string(), &p);
            }
        }
    }
}

/// Every data file under `dir` (which must exist): relative path → bytes. Left out: an output
/// directory's lock file (it holds the writer's pid) and its chunk manifests (see
/// [`manifests`]).
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    use ethetl::sink::file::{LOCK_FILE, MANIFEST_DIR};
    let mut out = BTreeMap::new();
    walk(dir, true, |rel, p| {
        if rel != LOCK_FILE && !rel.starts_with(&format!("{MANIFEST_DIR}/")) {
            out.insert(rel, std::fs::read(p).unwrap());
        }
    });
    out
}

/// The chunk manifests of an output directory: file name → parsed JSON.
pub fn manifests(dir: &Path) -> BTreeMap<String, sonic_rs::Value> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir.join(ethetl::sink::file::MANIFEST_DIR)) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let text = std::fs::read(e.path()).unwrap();
        out.insert(name, sonic_rs::from_slice(&text).expect("manifest is JSON"));
    }
    out
}

/// The relative paths of every file under `dir`, sorted (none when `dir` does not exist).
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, false, |rel, _| out.push(rel));
    out.sort();
    out
}

/// The files under an output directory except its lock file (which stays: an unlocked lock
/// file is never in anyone's way).
pub fn data_files(dir: &Path) -> Vec<String> {
    let mut files = files_under(dir);
    files.retain(|f| f != ethetl::sink::file::LOCK_FILE);
    files
}

/// The files of one entity of an output directory (`dir/<entity>/*`), in name order (none when
/// the entity directory does not exist).
pub fn entity_files(dir: &Path, entity: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir.join(entity)) {
        Ok(rd) => rd.map(|e| e.expect("dir entry").path()).collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    files
}

/// The lines of a JSONL text (each must be a non-empty row).
pub fn lines(bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).expect("UTF-8 output");
    text.lines()
        .map(|l| {
            assert!(!l.is_empty(), "empty line in JSONL output");
            l.to_string()
        })
        .collect()
}

/// Every JSONL row of one entity of an output directory, in file-name then line order.
pub fn jsonl_rows(dir: &Path, entity: &str) -> Vec<String> {
    entity_files(dir, entity)
        .iter()
        .flat_map(|f| lines(&std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()))))
        .collect()
}

/// Concatenation of an entity's files of a [`tree`], in name order.
pub fn entity_bytes(t: &BTreeMap<String, Vec<u8>>, entity: &str) -> Vec<u8> {
    t.iter()
        .filter(|(k, _)| k.starts_with(&format!("{entity}/")))
        .flat_map(|(_, v)| v.clone())
        .collect()
}

/// The rows of a decoded batch's buffer, as text.
pub fn row_texts(buf: &RowBuf) -> Vec<String> {
    buf.iter()
        .map(|(_, r)| String::from_utf8(r.to_vec()).unwrap())
        .collect()
}

/// A number field of a JSON row.
pub fn field_u64(row: &str, key: &str) -> u64 {
    let v: sonic_rs::Value = sonic_rs::from_str(row).unwrap();
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {row}"))
}

/// A string field of a JSON row.
pub fn field_str(row: &str, key: &str) -> String {
    let v: sonic_rs::Value = sonic_rs::from_str(row).unwrap();
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {row}"))
        .to_string()
}

/// Records of a CSV text as Python's csv module writes it (ethereum-etl and ethetl): cells
/// quoted when needed, quotes doubled inside, every record ended by CRLF (a bare LF is cell
/// text). Fails the test when the text does not end with CRLF.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let (mut quoted, mut at_start) = (false, true);
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if at_start => (quoted, at_start) = (true, false),
            ',' => {
                row.push(std::mem::take(&mut cell));
                at_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
                at_start = true;
            }
            _ => {
                cell.push(c);
                at_start = false;
            }
        }
    }
    assert!(
        cell.is_empty() && row.is_empty(),
        "CSV text does not end with CRLF"
    );
    rows
}

// ---------------------------------------------------------------------------------------------
// JSON rows against ethereum-etl's

/// Compares JSON values without losing big integers: numbers compare as their decimal text (or
/// as f64 when either side has a fraction or exponent), strings as decoded text. Every key of
/// an expected object must be in `got` (which may have more).
pub fn json_eq(path: &str, exp: &LazyValue<'_>, got: &LazyValue<'_>) -> Result<(), String> {
    let (te, tg) = (exp.get_type(), got.get_type());
    let mismatch = || {
        format!(
            "{path}: expected {} got {}",
            exp.as_raw_str(),
            got.as_raw_str()
        )
    };
    match (te, tg) {
        (JsonType::Number, JsonType::Number) => {
            let (a, b) = (exp.as_raw_str(), got.as_raw_str());
            let is_float = |s: &str| s.contains(['.', 'e', 'E']);
            if is_float(a) || is_float(b) {
                let (x, y): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
                if x != y {
                    return Err(mismatch());
                }
            } else if a != b {
                return Err(mismatch());
            }
        }
        (JsonType::String, JsonType::String) => {
            let a: String = sonic_rs::from_str(exp.as_raw_str()).unwrap();
            let b: String = sonic_rs::from_str(got.as_raw_str()).unwrap();
            if a != b {
                return Err(mismatch());
            }
        }
        (JsonType::Null, JsonType::Null) => {}
        (JsonType::Boolean, JsonType::Boolean) => {
            if exp.as_bool() != got.as_bool() {
                return Err(mismatch());
            }
        }
        (JsonType::Array, JsonType::Array) => {
            let a: Vec<LazyValue> = sonic_rs::from_str(exp.as_raw_str()).unwrap();
            let b: Vec<LazyValue> = sonic_rs::from_str(got.as_raw_str()).unwrap();
            if a.len() != b.len() {
                return Err(format!("{path}: {} items, got {}", a.len(), b.len()));
            }
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                json_eq(&format!("{path}[{i}]"), x, y)?;
            }
        }
        (JsonType::Object, JsonType::Object) => {
            let got_map = object_map(got.as_raw_str());
            for r in sonic_rs::to_object_iter(exp.as_raw_str()) {
                let (k, v) = r.unwrap();
                let Some(g) = got_map.get(&*k) else {
                    return Err(format!("{path}.{k}: missing"));
                };
                json_eq(&format!("{path}.{k}"), &v, g)?;
            }
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// A JSON object's members by key.
pub fn object_map(raw: &str) -> BTreeMap<String, LazyValue<'_>> {
    sonic_rs::to_object_iter(raw)
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_string(), v)
        })
        .collect()
}

/// A JSON object's keys, in order.
pub fn object_keys(raw: &str) -> Vec<String> {
    sonic_rs::to_object_iter(raw)
        .map(|r| r.unwrap().0.to_string())
        .collect()
}

/// Every key of `exp` must be in `got` with an equal value ([`json_eq`]); with `ordered`,
/// `exp`'s keys must also be the first keys of `got`, in the same order. Returns the number of
/// keys compared.
pub fn row_eq(exp: &str, got: &str, ordered: bool) -> Result<usize, String> {
    let ev: LazyValue = sonic_rs::get(exp, &[] as &[&str]).unwrap();
    let gv: LazyValue = sonic_rs::get(got, &[] as &[&str]).unwrap();
    if ordered {
        let (ek, gk) = (object_keys(exp), object_keys(got));
        if gk.len() < ek.len() || gk[..ek.len()] != ek[..] {
            return Err(format!("key order: expected {ek:?} got {gk:?}"));
        }
    }
    json_eq("", &ev, &gv)?;
    Ok(object_keys(exp).len())
}

/// An ERC-1155 token transfer row (ethetl's addition: ethereum-etl does not extract them).
pub fn is_erc1155(row: &str) -> bool {
    row.contains("\"token_standard\":\"erc1155\"")
}
