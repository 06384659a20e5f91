//! The `ethetl` binary: parse flags, validate them, run the export or the stream, report, exit
//! with 0 (done; a stream stopped by a signal or at --stop-at-block), 2 (usage, configuration or
//! fatal error, or an interrupted export). Errors are printed as one line,
//! `error: what: cause: cause`, with RPC URLs redacted.

// Decoding allocates many short-lived row buffers on several threads at once; mimalloc's
// per-thread heaps keep that fast where the system allocator contends.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use argh::FromArgs;
use ethetl::cli::{Cli, Command, ExportArgs, StreamArgs};
use ethetl::config::ExportConfig;
use ethetl::http::{parse_listen, StatsServer};
use ethetl::metrics::{MeteredSink, Metrics};
use ethetl::pipeline::run::{error_chain, open_sink, run_export_hooked, JobLock, Resume, RunHooks};
use ethetl::say;
use ethetl::settings::{self, CommandName, Merged};
use ethetl::stream::{StreamConfig, Streamer};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const USAGE: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os()
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(a) => a,
        Err(bad) => {
            say!("error: argument {bad:?} is not valid UTF-8");
            return ExitCode::from(USAGE);
        }
    };
    let rest = args.get(1..).unwrap_or(&[]);
    // `export`/`stream` flags are merged with the environment and the config file first;
    // `config CMD ...` does the same and prints the result.
    let (show, command, merged) = match rest.first().map(String::as_str) {
        Some("config") if rest.len() > 1 && !rest[1].starts_with('-') => {
            let Some(cmd) = CommandName::parse(&rest[1]) else {
                say!(
                    "error: `ethetl config` takes `export ...` or `stream ...`, not `{}`",
                    rest[1]
                );
                return ExitCode::from(USAGE);
            };
            (true, Some(cmd), merge(cmd, &rest[2..]))
        }
        Some(name) => match CommandName::parse(name) {
            Some(cmd) => (false, Some(cmd), merge(cmd, &rest[1..])),
            None => (false, None, Ok(Merged::default())),
        },
        None => (false, None, Ok(Merged::default())),
    };
    let merged = match merged {
        Ok(m) => m,
        Err(e) => {
            let name = command.map_or("export", CommandName::as_str);
            say!("error: {} (see `ethetl {name} --help`)", error_chain(&e));
            return ExitCode::from(USAGE);
        }
    };
    let argv: Vec<&str> = match command {
        Some(cmd) => std::iter::once(cmd.as_str())
            .chain(merged.args.iter().map(String::as_str))
            .collect(),
        None => rest.iter().map(String::as_str).collect(),
    };
    let cli = match Cli::from_args(&["ethetl"], &argv) {
        Ok(cli) => cli,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    ethetl::term::write_stdout(&early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    let msg: Vec<&str> = early
                        .output
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with("Run "))
                        .collect();
                    let name = command.map_or_else(
                        || match rest.first().map(String::as_str) {
                            Some("config") => "config",
                            _ => "export",
                        },
                        CommandName::as_str,
                    );
                    say!(
                        "error: {} (see `ethetl {name} --help`)",
                        msg.join(" ").trim_end_matches('.')
                    );
                    ExitCode::from(USAGE)
                }
            };
        }
    };
    if cli.version {
        ethetl::term::write_stdout(&format!("ethetl {}\n", env!("CARGO_PKG_VERSION")));
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Some(Command::Export(args)) if show => show_config(
            CommandName::Export,
            &merged,
            ExportConfig::from_args(&args, None).map(|c| (c, None)),
        ),
        Some(Command::Stream(args)) if show => show_config(
            CommandName::Stream,
            &merged,
            StreamConfig::from_args(&args, None).map(|c| (c.export.clone(), Some(c))),
        ),
        Some(Command::Export(args)) => export(&args),
        Some(Command::Stream(args)) => stream(&args),
        Some(Command::Config(_)) => {
            say!("error: `ethetl config` takes a command: `ethetl config export ...` or `ethetl config stream ...`");
            ExitCode::from(USAGE)
        }
        None => {
            say!("error: no command given (try `ethetl export --help` or `ethetl stream --help`)");
            ExitCode::from(USAGE)
        }
    }
}

/// The command's arguments merged with `ETHETL_*` variables and the config file.
fn merge(cmd: CommandName, args: &[String]) -> Result<Merged, settings::SettingsError> {
    settings::merge(cmd, args, &|var| std::env::var(var).ok())
}

/// `ethetl config CMD ...`: validates like the command would, then prints every setting, its
/// value (secrets redacted) and where it came from.
fn show_config(
    cmd: CommandName,
    merged: &Merged,
    resolved: Result<(ExportConfig, Option<StreamConfig>), ethetl::config::ConfigError>,
) -> ExitCode {
    let (config, stream) = match resolved {
        Ok(c) => c,
        Err(e) => {
            say!("error: {}", error_chain(&e));
            return ExitCode::from(USAGE);
        }
    };
    let table = settings::effective_settings(cmd, merged, &config, stream.as_ref());
    ethetl::term::write_stdout(&table);
    ExitCode::SUCCESS
}

fn export(args: &ExportArgs) -> ExitCode {
    let fail = |e: &(dyn std::error::Error + 'static)| {
        say!("error: {}", error_chain(e));
        ExitCode::from(USAGE)
    };
    let config = match ExportConfig::from_args(args, None) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    // Held to the end: a second process on this checkpoint or output is refused at once.
    let _lock = match JobLock::acquire(&config, true) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let resume = match Resume::load(&config) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let cp_path = config.checkpoint.as_ref().map(|p| p.display().to_string());
    if let (Some(cp), Some(path)) = (resume.checkpoint, &cp_path) {
        if resume.is_done() {
            if !config.quiet {
                say!(
                    "nothing to do: checkpoint {path} is already at block {cp}, the end of the range"
                );
            }
            return ExitCode::SUCCESS;
        }
        if !config.quiet {
            say!(
                "resuming after block {cp} (checkpoint {path}): blocks {}..={} left",
                resume.range.start,
                resume.range.end
            );
        }
    }

    if let Err(code) = check_head(&config, &resume) {
        return code;
    }

    let stop = match stop_flag() {
        Ok(s) => s,
        Err(e) => {
            say!("error: cannot install the signal handler: {e}");
            return ExitCode::from(USAGE);
        }
    };

    let mut sink = match open_sink(&config, &resume) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let mut hooks = RunHooks::default();
    let mut server = None;
    let metrics = Metrics::new("export", &config.endpoints);
    if let Some(listen) = &args.http {
        match parse_listen(listen).and_then(|a| StatsServer::start(a, Arc::clone(&metrics))) {
            Ok(s) => {
                if !config.quiet {
                    say!("stats: {} (/stats, /metrics, /healthz)", s.url());
                }
                server = Some(s);
            }
            Err(e) => return fail(&e),
        }
        metrics.set_last_block(resume.range.end);
        if let Some(cp) = resume.checkpoint {
            metrics.set_checkpoint(cp);
        }
        hooks.counters = Some(Arc::clone(&metrics.counters));
        sink = Box::new(MeteredSink::new(sink, Arc::clone(&metrics)));
    }
    let result = run_export_hooked(&config, &resume, sink, stop, &hooks);
    metrics.set_finished();
    drop(server);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let hint = config.checkpoint.as_deref().map(resume_hint);
            say!("error: {}{}", error_chain(&e), hint.unwrap_or_default());
            return ExitCode::from(USAGE);
        }
    };
    if let Some(path) = &config.report {
        if let Err(e) = std::fs::write(path, report.to_json() + "\n") {
            say!("error: cannot write report {}: {e}", path.display());
            return ExitCode::from(USAGE);
        }
    }
    if !config.quiet {
        say!("{}", report.summary());
    }
    if report.interrupted {
        let at = match (report.checkpoint, &cp_path) {
            (Some(b), Some(path)) => {
                format!("checkpoint {path} holds block {b}; run the same command to resume")
            }
            (None, Some(path)) => format!("no block was completed; checkpoint {path} is unchanged"),
            (Some(b), None) => format!(
                "blocks {}..={b} were written completely (pass --checkpoint FILE to resume next time)",
                resume.requested.start
            ),
            (None, None) => "no block was completed".into(),
        };
        say!("error: interrupted: stopped cleanly; {at}");
        return ExitCode::from(USAGE);
    }
    ExitCode::SUCCESS
}

/// Asks the node for its head once (one `eth_blockNumber`) before any work: a range that
/// starts beyond it is refused with the head named (no amount of retrying makes those blocks
/// exist; `ethetl stream` waits for them), one that ends beyond it gets a warning. A node that
/// does not answer is left to the run's own retries and errors.
fn check_head(config: &ExportConfig, resume: &Resume) -> Result<(), ExitCode> {
    let client = ethetl::stream::head::HeadClient::new(
        config.endpoints.clone(),
        &config.tls_roots,
        config.timeout.min(std::time::Duration::from_secs(10)),
        1,
        Arc::new(ethetl::stats::RequestCounters::default()),
        Arc::new(AtomicBool::new(false)),
    );
    let Ok(head) = client.block_number() else {
        return Ok(());
    };
    let range = resume.range;
    if range.start > head {
        say!(
            "error: block {} is beyond the chain: the node's head is block {head} (export up to \
             the head, or follow the chain with `ethetl stream --start-block {}`)",
            range.start,
            range.start
        );
        return Err(ExitCode::from(USAGE));
    }
    if range.end > head && !config.quiet {
        say!(
            "warning: blocks {}..={} are beyond the node's head (block {head}); they are asked \
             for until they exist or --max-retries runs out",
            head + 1,
            range.end
        );
    }
    Ok(())
}

/// What a failed run tells about its checkpoint, read back from the file (so that it is true
/// even when the last write failed): the same command resumes after the block it holds, or,
/// when none was written yet, starts over (the files it wrote are this job's and replaced).
fn resume_hint(path: &std::path::Path) -> String {
    let p = path.display();
    match ethetl::checkpoint::read_checkpoint(path) {
        Ok(Some(b)) => format!(" (checkpoint {p} holds block {b}; run the same command to resume)"),
        Ok(None) => {
            format!(" (no checkpoint was written to {p} yet; run the same command to start again)")
        }
        Err(e) => format!(" ({})", error_chain(&e)),
    }
}

/// SIGINT/SIGTERM set the returned flag (a clean stop); a second signal exits at once with 2.
fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, i32::from(USAGE), Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

fn stream(args: &StreamArgs) -> ExitCode {
    let fail = |e: &(dyn std::error::Error + 'static)| {
        say!("error: {}", error_chain(e));
        ExitCode::from(USAGE)
    };
    let config = match StreamConfig::from_args(args, None) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let stop = match stop_flag() {
        Ok(s) => s,
        Err(e) => {
            say!("error: cannot install the signal handler: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let quiet = config.export.quiet;
    let report_path = config.export.report.clone();
    let checkpoint = config.export.checkpoint.clone();
    let streamer = Streamer::new(config).with_stop_flag(stop);
    let server = match &args.http {
        Some(listen) => {
            match parse_listen(listen).and_then(|a| StatsServer::start(a, streamer.metrics())) {
                Ok(s) => {
                    if !quiet {
                        say!("stats: {} (/stats, /metrics, /healthz)", s.url());
                    }
                    Some(s)
                }
                Err(e) => return fail(&e),
            }
        }
        None => None,
    };
    let result = streamer.run();
    drop(server);
    let report = match result {
        Ok(r) => r,
        // Refused before it started: the checkpoint is another process's.
        Err(e @ ethetl::stream::StreamError::Lock(_)) => return fail(&e),
        Err(e) => {
            let hint = checkpoint.as_deref().map(resume_hint);
            say!("error: {}{}", error_chain(&e), hint.unwrap_or_default());
            return ExitCode::from(USAGE);
        }
    };
    if let Some(path) = &report_path {
        if let Err(e) = std::fs::write(path, report.to_json() + "\n") {
            say!("error: cannot write report {}: {e}", path.display());
            return ExitCode::from(USAGE);
        }
    }
    if !quiet {
        say!("{}", report.summary());
    }
    ExitCode::SUCCESS
}
