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
use ethetl::pipeline::run::{error_chain, open_sink, run_export_hooked, Resume, RunHooks};
use ethetl::sink::stdout::is_broken_pipe;
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
            eprintln!("error: argument {bad:?} is not valid UTF-8");
            return ExitCode::from(USAGE);
        }
    };
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli = match Cli::from_args(&["ethetl"], strs.get(1..).unwrap_or(&[])) {
        Ok(cli) => cli,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    print!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    let msg: Vec<&str> = early
                        .output
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with("Run "))
                        .collect();
                    let command = match strs.get(1) {
                        Some(&"stream") => "stream",
                        _ => "export",
                    };
                    eprintln!(
                        "error: {} (see `ethetl {command} --help`)",
                        msg.join(" ").trim_end_matches('.')
                    );
                    ExitCode::from(USAGE)
                }
            };
        }
    };
    if cli.version {
        println!("ethetl {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Some(Command::Export(args)) => export(&args),
        Some(Command::Stream(args)) => stream(&args),
        None => {
            eprintln!(
                "error: no command given (try `ethetl export --help` or `ethetl stream --help`)"
            );
            ExitCode::from(USAGE)
        }
    }
}

fn export(args: &ExportArgs) -> ExitCode {
    let fail = |e: &(dyn std::error::Error + 'static)| {
        eprintln!("error: {}", error_chain(e));
        ExitCode::from(USAGE)
    };
    let config = match ExportConfig::from_args(args, std::env::var("ETH_RPC_URL").ok()) {
        Ok(c) => c,
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
                eprintln!(
                    "nothing to do: checkpoint {path} is already at block {cp}, the end of the range"
                );
            }
            return ExitCode::SUCCESS;
        }
        if !config.quiet {
            eprintln!(
                "resuming after block {cp} (checkpoint {path}): blocks {}..={} left",
                resume.range.start, resume.range.end
            );
        }
    }

    let stop = match stop_flag() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install the signal handler: {e}");
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
                    eprintln!("stats: {} (/stats, /metrics, /healthz)", s.url());
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
        // The reader of stdout went away (`| head`): not an error of ours.
        Err(e) if is_broken_pipe(&e) => return ExitCode::SUCCESS,
        Err(e) => {
            let resume_hint = cp_path
                .as_ref()
                .map(|p| format!(" (checkpoint {p} is up to date; run the same command to resume)"))
                .unwrap_or_default();
            eprintln!("error: {}{resume_hint}", error_chain(&e));
            return ExitCode::from(USAGE);
        }
    };
    if let Some(path) = &config.report {
        if let Err(e) = std::fs::write(path, report.to_json() + "\n") {
            eprintln!("error: cannot write report {}: {e}", path.display());
            return ExitCode::from(USAGE);
        }
    }
    if !config.quiet {
        eprintln!("{}", report.summary());
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
        eprintln!("error: interrupted: stopped cleanly; {at}");
        return ExitCode::from(USAGE);
    }
    ExitCode::SUCCESS
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
        eprintln!("error: {}", error_chain(e));
        ExitCode::from(USAGE)
    };
    let config = match StreamConfig::from_args(args, std::env::var("ETH_RPC_URL").ok()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let stop = match stop_flag() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install the signal handler: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let quiet = config.export.quiet;
    let report_path = config.export.report.clone();
    let cp_path = config
        .export
        .checkpoint
        .as_ref()
        .map(|p| p.display().to_string());
    let streamer = Streamer::new(config).with_stop_flag(stop);
    let server = match &args.http {
        Some(listen) => {
            match parse_listen(listen).and_then(|a| StatsServer::start(a, streamer.metrics())) {
                Ok(s) => {
                    if !quiet {
                        eprintln!("stats: {} (/stats, /metrics, /healthz)", s.url());
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
        // The reader of stdout went away (`| head`): not an error of ours.
        Err(e) if is_broken_pipe(&e) => return ExitCode::SUCCESS,
        Err(e) => {
            let hint = cp_path
                .map(|p| format!(" (checkpoint {p} is up to date; run the same command to resume)"))
                .unwrap_or_default();
            eprintln!("error: {}{hint}", error_chain(&e));
            return ExitCode::from(USAGE);
        }
    };
    if let Some(path) = &report_path {
        if let Err(e) = std::fs::write(path, report.to_json() + "\n") {
            eprintln!("error: cannot write report {}: {e}", path.display());
            return ExitCode::from(USAGE);
        }
    }
    if !quiet {
        eprintln!("{}", report.summary());
    }
    ExitCode::SUCCESS
}
