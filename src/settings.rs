//! Where each setting comes from: merges the command line, `ETHETL_<FLAG>` environment
//! variables and the `--config` TOML file (in that order of precedence) into one argument list
//! for argh, remembers the source of every value, and prints them for `ethetl config`
//! ([`effective_settings`]).
//!
//! The flag list is read from the argh definitions themselves ([`argh::ArgsInfo`]), so a new
//! flag gets its environment variable and its file key without being listed here. Aliases for
//! the names other tools use (ethereum-etl's `--provider-uri`, `--max-workers`, cryo's
//! `--max-concurrent-requests`) are rewritten to ethetl's, and a few names that mean something
//! else here are refused with a pointer to ethetl's own flag.

use crate::msg::{Entity, RowFormat};
use argh::{ArgsInfo, CommandInfoWithArgs, FlagInfoKind, Optionality};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Foreign names accepted as they are: they mean exactly what ethetl's flag means.
const ALIASES: &[(&str, &str)] = &[
    ("--provider-uri", "--rpc"),
    ("--max-workers", "--io-threads"),
    ("--max-concurrent-requests", "--max-concurrency"),
];

/// Foreign names refused with a pointer: close, but not the same thing, or another spelling.
const HINTS: &[(&str, &str)] = &[
    ("-p", "--rpc URL (ethereum-etl's -p/--provider-uri)"),
    ("-w", "--io-threads N (ethereum-etl's -w/--max-workers)"),
    ("--period-seconds", "--poll-interval SECONDS"),
    ("--last-synced-block-file", "--checkpoint FILE"),
    (
        "--block-batch-size",
        "--chunk-size N (blocks per file) or --batch-size N (blocks per request)",
    ),
    ("--export-batch-size", "--batch-size N"),
    ("--output-dir", "--output DIR"),
    ("--rpc-url", "--rpc URL"),
    ("--start", "--start-block N"),
    ("--end", "--end-block N"),
    ("--n-chunks", "--chunk-size N"),
    ("--max-concurrent-chunks", "--io-threads N"),
    ("--kafka-brokers", "--output kafka://host:port"),
];

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// On the command line (under this spelling, e.g. `--provider-uri`).
    Flag(String),
    /// The named environment variable.
    Env(String),
    /// The config file, at this line.
    File { path: PathBuf, line: usize },
    /// Not given: the built-in default.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(spelling) => write!(f, "flag {spelling}"),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::File { path, line } => write!(f, "file {}:{line}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// One command's arguments after merging, ready for argh.
#[derive(Clone, Debug, Default)]
pub struct Merged {
    /// The arguments after the command name.
    pub args: Vec<String>,
    /// Long flag name (`batch-size`, no dashes) → where its value came from; flags not given
    /// anywhere are absent.
    pub sources: BTreeMap<String, Source>,
    /// Long flag name → the values it was given (`["true"]` for a switch).
    pub values: BTreeMap<String, Vec<String>>,
}

impl Merged {
    /// Where the flag `long` (no dashes) came from.
    pub fn source(&self, long: &str) -> Source {
        self.sources.get(long).cloned().unwrap_or(Source::Default)
    }
}

/// What is wrong with the settings. Messages name the flag, variable or file line; values of
/// secret-looking settings are never quoted.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("`{given}` is not an ethetl flag; use {instead}")]
    Foreign { given: String, instead: String },
    #[error("cannot read the config file {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("config file {}:{line}: unknown key `{key}`{hint}", path.display())]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        hint: String,
    },
    #[error("config file {}:{line}: key `{key}` {reason}", path.display())]
    BadValue {
        path: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },
    #[error("environment variable {var}: {reason}")]
    BadEnv { var: String, reason: String },
    #[error("{flag} needs a value")]
    MissingValue { flag: String },
}

/// How a flag takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Switch,
    Value,
    Repeated,
}

/// A flag of one command, from its argh definition.
#[derive(Clone, Debug)]
struct Flag {
    /// `batch-size`
    long: String,
    short: Option<char>,
    kind: Kind,
}

fn flags_of(info: CommandInfoWithArgs) -> Vec<Flag> {
    info.flags
        .iter()
        .filter(|f| f.long != "--help" && !f.hidden)
        .map(|f| Flag {
            long: f.long.trim_start_matches('-').to_string(),
            short: f.short,
            kind: match (&f.kind, &f.optionality) {
                (FlagInfoKind::Switch, _) => Kind::Switch,
                (FlagInfoKind::Option { .. }, Optionality::Repeating) => Kind::Repeated,
                (FlagInfoKind::Option { .. }, _) => Kind::Value,
            },
        })
        .collect()
}

/// The commands whose settings are merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandName {
    Export,
    Stream,
}

impl CommandName {
    pub fn parse(s: &str) -> Option<CommandName> {
        match s {
            "export" => Some(CommandName::Export),
            "stream" => Some(CommandName::Stream),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CommandName::Export => "export",
            CommandName::Stream => "stream",
        }
    }

    fn flags(self) -> Vec<Flag> {
        match self {
            CommandName::Export => flags_of(crate::cli::ExportArgs::get_args_info()),
            CommandName::Stream => flags_of(crate::cli::StreamArgs::get_args_info()),
        }
    }

    fn other(self) -> CommandName {
        match self {
            CommandName::Export => CommandName::Stream,
            CommandName::Stream => CommandName::Export,
        }
    }
}

/// The environment variable for flag `long`: `batch-size` → `ETHETL_BATCH_SIZE`.
pub fn env_var(long: &str) -> String {
    format!("ETHETL_{}", long.replace('-', "_").to_ascii_uppercase())
}

/// Rewrites `--flag=value` into two arguments and aliases into ethetl's names, and refuses the
/// foreign names that mean something else here. Everything after `--` is left alone.
pub fn normalize(args: &[String]) -> Result<Vec<(String, Option<String>)>, SettingsError> {
    // (argument, the spelling the user typed when it was rewritten)
    let mut out = Vec::with_capacity(args.len());
    let mut ended = false;
    for a in args {
        if ended || !a.starts_with('-') || a == "-" {
            ended |= a == "--";
            out.push((a.clone(), None));
            continue;
        }
        let (name, value) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        if let Some((_, ours)) = ALIASES.iter().find(|(theirs, _)| *theirs == name) {
            out.push((ours.to_string(), Some(name.clone())));
        } else if let Some((_, instead)) = HINTS.iter().find(|(theirs, _)| *theirs == name) {
            return Err(SettingsError::Foreign {
                given: name,
                instead: instead.to_string(),
            });
        } else {
            out.push((name, None));
        }
        if let Some(v) = value {
            out.push((v, None));
        }
    }
    Ok(out)
}

/// Merges the command line `args` (after the command name) with the environment (`env`
/// looks a variable up) and the config file for `command`.
pub fn merge(
    command: CommandName,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Merged, SettingsError> {
    let flags = command.flags();
    let normalized = normalize(args)?;
    let mut merged = Merged::default();
    let mut config_path: Option<(PathBuf, Source)> = None;

    // Command line: note which flags were given, keep the arguments as they are (minus
    // --config, which is ours).
    let mut i = 0;
    while i < normalized.len() {
        let (arg, spelled) = &normalized[i];
        if arg == "--" {
            merged
                .args
                .extend(normalized[i..].iter().map(|(a, _)| a.clone()));
            break;
        }
        let flag = flags.iter().find(|f| {
            arg.strip_prefix("--") == Some(f.long.as_str())
                || (f.short.is_some() && arg.len() == 2 && arg.chars().nth(1) == f.short)
        });
        let Some(flag) = flag.filter(|_| arg.starts_with('-') && arg != "-") else {
            merged.args.push(arg.clone());
            i += 1;
            continue;
        };
        let spelling = spelled.clone().unwrap_or_else(|| arg.clone());
        if flag.long == "config" {
            let Some((path, _)) = normalized.get(i + 1) else {
                return Err(SettingsError::MissingValue { flag: arg.clone() });
            };
            config_path = Some((PathBuf::from(path), Source::Flag(spelling.clone())));
            merged
                .sources
                .insert("config".into(), Source::Flag(spelling));
            merged.values.insert("config".into(), vec![path.clone()]);
            i += 2;
            continue;
        }
        merged
            .sources
            .insert(flag.long.clone(), Source::Flag(spelling));
        merged.args.push(arg.clone());
        let values = merged.values.entry(flag.long.clone()).or_default();
        if flag.kind == Kind::Switch {
            values.push("true".into());
        } else if let Some((v, _)) = normalized.get(i + 1) {
            merged.args.push(v.clone());
            values.push(v.clone());
            i += 1;
        }
        i += 1;
    }

    // Environment.
    let mut from_env: Vec<(String, Vec<String>, Source)> = Vec::new();
    for flag in &flags {
        if merged.sources.contains_key(&flag.long) {
            continue;
        }
        let mut var = env_var(&flag.long);
        let mut value = env(&var);
        if value.is_none() && flag.long == "rpc" {
            var = "ETH_RPC_URL".into();
            value = env(&var).filter(|v| !v.trim().is_empty());
        }
        let Some(value) = value else { continue };
        if flag.long == "config" {
            config_path = Some((PathBuf::from(&value), Source::Env(var.clone())));
            merged.sources.insert("config".into(), Source::Env(var));
            merged.values.insert("config".into(), vec![value]);
            continue;
        }
        let values = match flag.kind {
            Kind::Switch => match switch_value(&value) {
                Some(true) => vec![],
                Some(false) => continue,
                None => {
                    return Err(SettingsError::BadEnv {
                        var,
                        reason: "expected 1, true, yes, 0, false or no".into(),
                    })
                }
            },
            Kind::Value => vec![value],
            Kind::Repeated => value
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        };
        from_env.push((flag.long.clone(), values, Source::Env(var)));
    }
    for (long, values, source) in from_env {
        merged.values.insert(long.clone(), shown(&values));
        push_flag(&mut merged.args, &flags, &long, values);
        merged.sources.insert(long, source);
    }

    // Config file.
    if let Some((path, _)) = config_path {
        for (long, values, line) in read_file(&path, command, &flags)? {
            if merged.sources.contains_key(&long) {
                continue;
            }
            merged.values.insert(long.clone(), shown(&values));
            push_flag(&mut merged.args, &flags, &long, values);
            merged.sources.insert(
                long,
                Source::File {
                    path: path.clone(),
                    line,
                },
            );
        }
    }
    Ok(merged)
}

/// A flag's values as recorded in [`Merged::values`]: a switch that is on has none.
fn shown(values: &[String]) -> Vec<String> {
    if values.is_empty() {
        vec!["true".into()]
    } else {
        values.to_vec()
    }
}

/// The long names of `command`'s flags, in `--help` order.
pub fn flag_names(command: CommandName) -> Vec<String> {
    command.flags().into_iter().map(|f| f.long).collect()
}

/// Appends `--long` (and its values) before any `--` so argh sees it as a flag.
fn push_flag(args: &mut Vec<String>, flags: &[Flag], long: &str, values: Vec<String>) {
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let kind = flags.iter().find(|f| f.long == long).map(|f| f.kind);
    let mut add = Vec::new();
    match kind {
        Some(Kind::Switch) => add.push(format!("--{long}")),
        Some(Kind::Repeated) => {
            for v in values {
                add.push(format!("--{long}"));
                add.push(v);
            }
        }
        _ => {
            add.push(format!("--{long}"));
            add.extend(values);
        }
    }
    args.splice(at..at, add);
}

fn switch_value(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// Reads the settings for `command` from a TOML file: top-level keys, then the command's own
/// table (`[export]` or `[stream]`), which wins. Returns (flag, values, line).
fn read_file(
    path: &Path,
    command: CommandName,
    flags: &[Flag],
) -> Result<Vec<(String, Vec<String>, usize)>, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: toml_edit::Document<String> =
        toml_edit::Document::parse(text.clone()).map_err(|e| SettingsError::Parse {
            path: path.to_path_buf(),
            // toml_edit quotes the offending line; keep only its position and reason.
            message: parse_message(&e, &text),
        })?;
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map_or(0, |s| {
            text[..s.start.min(text.len())].matches('\n').count() + 1
        })
    };
    let other_flags = command.other().flags();
    let mut top: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    let mut own: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();

    let read_table = |table: &toml_edit::Table,
                      section: Option<CommandName>,
                      out: &mut BTreeMap<String, (Vec<String>, usize)>|
     -> Result<(), SettingsError> {
        for (key, item) in table.iter() {
            let line = line_of(table.key(key).and_then(|k| k.span()));
            let long = key.replace('_', "-");
            if section.is_none() && CommandName::parse(key).is_some() {
                continue; // a command table, read separately
            }
            let mine = flags.iter().find(|f| f.long == long);
            let theirs = other_flags.iter().find(|f| f.long == long);
            // A top-level key may be a flag of either command; a key in `[export]` or
            // `[stream]` must be a flag of that command. The whole file is checked the same
            // way whichever command runs.
            let found = match section {
                None => mine.or(theirs),
                Some(c) if c == command => mine,
                Some(_) => theirs,
            };
            let Some(flag) = found else {
                let hint = match (section, mine.or(theirs)) {
                    (Some(c), Some(_)) => format!(" (it is not a flag of `ethetl {}`)", c.as_str()),
                    _ => ALIASES
                        .iter()
                        .find(|(a, _)| a.trim_start_matches('-') == long)
                        .map(|(_, ours)| {
                            format!(" (ethetl's name is `{}`)", ours.trim_start_matches('-'))
                        })
                        .unwrap_or_else(|| {
                            " (keys are the long flag names, e.g. batch-size)".into()
                        }),
                };
                return Err(SettingsError::UnknownKey {
                    path: path.to_path_buf(),
                    line,
                    key: key.to_string(),
                    hint,
                });
            };
            if long == "config" {
                return Err(SettingsError::BadValue {
                    path: path.to_path_buf(),
                    line,
                    key: key.to_string(),
                    reason: "cannot be set inside a config file".into(),
                });
            }
            let values =
                file_values(item, flag.kind).map_err(|reason| SettingsError::BadValue {
                    path: path.to_path_buf(),
                    line,
                    key: key.to_string(),
                    reason,
                })?;
            // Keys of the other command (its table, or a top-level key only it has) are
            // checked above and not applied.
            if section.is_some_and(|c| c != command) || mine.is_none() {
                continue;
            }
            if let Some(values) = values {
                out.insert(long, (values, line));
            }
        }
        Ok(())
    };
    read_table(doc.as_table(), None, &mut top)?;
    for name in [CommandName::Export, CommandName::Stream] {
        if let Some(item) = doc.as_table().get(name.as_str()) {
            let line = line_of(doc.as_table().key(name.as_str()).and_then(|k| k.span()));
            let Some(table) = item.as_table() else {
                return Err(SettingsError::BadValue {
                    path: path.to_path_buf(),
                    line,
                    key: name.as_str().into(),
                    reason: format!("must be a table ([{}])", name.as_str()),
                });
            };
            read_table(table, Some(name), &mut own)?;
        }
    }
    top.extend(own);
    Ok(top
        .into_iter()
        .map(|(long, (values, line))| (long, values, line))
        .collect())
}

/// The arguments a file value stands for: `None` for a switch set to false.
fn file_values(item: &toml_edit::Item, kind: Kind) -> Result<Option<Vec<String>>, String> {
    let scalar = |v: &toml_edit::Value| -> Result<String, String> {
        match v {
            toml_edit::Value::String(s) => Ok(s.value().clone()),
            toml_edit::Value::Integer(i) => Ok(i.value().to_string()),
            toml_edit::Value::Float(f) => Ok(f.value().to_string()),
            _ => Err("expects a string or a number".into()),
        }
    };
    let Some(value) = item.as_value() else {
        return Err("expects a value, not a table".into());
    };
    match kind {
        Kind::Switch => match value {
            toml_edit::Value::Boolean(b) => Ok(b.value().then(Vec::new)),
            _ => Err("expects true or false".into()),
        },
        Kind::Value => scalar(value).map(|s| Some(vec![s])),
        Kind::Repeated => match value {
            toml_edit::Value::Array(a) => a.iter().map(scalar).collect::<Result<_, _>>().map(Some),
            v => scalar(v).map(|s| Some(vec![s])),
        },
    }
}

/// A TOML parse error as `line N: reason`, without the quoted source line (which may hold a
/// secret).
fn parse_message(e: &toml_edit::TomlError, text: &str) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let reason = e
        .message()
        .lines()
        .next()
        .unwrap_or("invalid TOML")
        .to_string();
    match line {
        Some(l) => format!("line {l}: {reason}"),
        None => reason,
    }
}

/// The text `ethetl config CMD ...` prints: one `key = value  # source` line per setting,
/// values as given (secrets redacted) or the resolved default.
pub fn effective_settings(
    command: CommandName,
    merged: &Merged,
    config: &crate::config::ExportConfig,
    stream: Option<&crate::stream::StreamConfig>,
) -> String {
    let mut lines = vec![(
        format!(
            "# ethetl {}: effective settings (flag > environment ETHETL_* > config file > default)",
            command.as_str()
        ),
        String::new(),
    )];
    for long in flag_names(command) {
        let source = merged.source(&long);
        let value = match (&source, merged.values.get(&long)) {
            (Source::Default, _) | (_, None) => default_value(&long, config, stream),
            (_, Some(values)) => Some(shown_value(&long, values)),
        };
        match value {
            Some(v) => lines.push((format!("{long} = {v}"), format!("# {source}"))),
            None => lines.push((format!("# {long} (not set)"), String::new())),
        }
    }
    let width = lines
        .iter()
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(0)
        .min(60);
    let mut out = String::new();
    for (line, comment) in lines {
        if comment.is_empty() {
            out.push_str(&line);
        } else {
            out.push_str(&format!("{line:width$}  {comment}"));
        }
        out.push('\n');
    }
    out
}

/// A given value as printed by `ethetl config` (TOML-quoted, secrets redacted).
fn shown_value(long: &str, values: &[String]) -> String {
    let one = |v: &str| -> String {
        match long {
            "rpc" => v
                .split(',')
                .map(|entry| {
                    let mut words = entry.split_whitespace();
                    let url = words.next().unwrap_or_default();
                    let shown = if url.starts_with('@') {
                        url.to_string()
                    } else {
                        crate::redact::redact_url(url)
                    };
                    std::iter::once(shown)
                        .chain(words.map(str::to_string))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
                .join(","),
            "output" => crate::redact::redact_url(v),
            "kafka-property" => match v.split_once('=') {
                Some((k, _)) if crate::sink::kafka::is_secret_key(k.trim()) => {
                    format!("{}={}", k.trim(), crate::redact::MASK)
                }
                _ => v.to_string(),
            },
            _ => v.to_string(),
        }
    };
    let quote = |v: String| {
        if v.parse::<f64>().is_ok() || v == "true" || v == "false" {
            v
        } else {
            format!("{v:?}")
        }
    };
    if long == "kafka-property" {
        let items: Vec<String> = values.iter().map(|v| quote(one(v))).collect();
        return format!("[{}]", items.join(", "));
    }
    values.last().map(|v| quote(one(v))).unwrap_or_default()
}

/// What a setting resolves to when it is not given, or `None` when it has no value.
fn default_value(
    long: &str,
    c: &crate::config::ExportConfig,
    stream: Option<&crate::stream::StreamConfig>,
) -> Option<String> {
    let q = |s: &str| format!("{s:?}");
    Some(match long {
        "entities" => q(&c
            .entities
            .iter()
            .filter(|e| *e != Entity::Reorgs)
            .map(Entity::name)
            .collect::<Vec<_>>()
            .join(",")),
        "format" => q(match c.format {
            RowFormat::Json => "jsonl",
            RowFormat::Csv => "csv",
        }),
        "batch-size" => c.batch_size.to_string(),
        "io-threads" => c.io_threads.to_string(),
        "cpu-threads" => c.cpu_threads.to_string(),
        "max-retries" => c.max_retries.to_string(),
        "timeout" => c.timeout.as_secs().to_string(),
        "chunk-size" => c.chunk_size.to_string(),
        "requests-per-second" => q("unlimited"),
        "max-concurrency" => c.max_concurrency.unwrap_or(c.io_threads).to_string(),
        "ca-bundle" => q("bundled Mozilla roots"),
        "count-calls" | "quiet" | "overwrite" => "false".into(),
        "topic-prefix" if c.output.kind() == "kafka" => q(""),
        "partitions" if c.output.kind() == "kafka" => "1".into(),
        "lag" => stream?.lag.to_string(),
        "poll-interval" => q(&format!("{}s", stream?.poll_interval.as_secs_f64())),
        "max-reorg-depth" => stream?.max_reorg_depth.to_string(),
        "start-block" if stream.is_some() => q("head - lag"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn aliases_and_equals() {
        let m = merge(
            CommandName::Export,
            &s(&[
                "--provider-uri=http://a:1",
                "--max-workers",
                "3",
                "-b",
                "1:2",
            ]),
            &no_env,
        )
        .unwrap();
        assert_eq!(
            m.args,
            s(&["--rpc", "http://a:1", "--io-threads", "3", "-b", "1:2"])
        );
        assert_eq!(m.source("rpc"), Source::Flag("--provider-uri".into()));
        assert_eq!(m.source("blocks"), Source::Flag("-b".into()));
        let e = merge(CommandName::Export, &s(&["-w", "4"]), &no_env).unwrap_err();
        assert!(e.to_string().contains("--io-threads"), "{e}");
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ethetl.toml");
        std::fs::write(
            &file,
            "batch-size = 7\nio_threads = 3\ntimeout = 9\nlag = 4\nkafka-property = [\"a=1\", \"b=2\"]\n\
             [stream]\ntimeout = 11\n[export]\nquiet = true\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "ETHETL_IO_THREADS" => Some("5".to_string()),
            "ETHETL_BATCH_SIZE" => Some("6".to_string()),
            "ETHETL_CONFIG" => Some(file.display().to_string()),
            _ => None,
        };
        let m = merge(CommandName::Export, &s(&["--batch-size", "8"]), &env).unwrap();
        let pos = |f: &str| m.args.iter().position(|a| a == f).unwrap();
        assert_eq!(m.args[pos("--batch-size") + 1], "8");
        assert_eq!(m.args[pos("--io-threads") + 1], "5");
        assert_eq!(m.args[pos("--timeout") + 1], "9");
        assert!(m.args.contains(&"--quiet".to_string()));
        assert!(!m.args.contains(&"--lag".to_string()));
        assert_eq!(
            m.args.iter().filter(|a| *a == "--kafka-property").count(),
            2
        );
        assert_eq!(
            m.source("io-threads"),
            Source::Env("ETHETL_IO_THREADS".into())
        );
        assert_eq!(
            m.source("timeout"),
            Source::File {
                path: file.clone(),
                line: 3
            }
        );
        assert_eq!(m.source("overwrite"), Source::Default);
        let m = merge(CommandName::Stream, &[], &env).unwrap();
        let pos = |f: &str| m.args.iter().position(|a| a == f).unwrap();
        assert_eq!(m.args[pos("--timeout") + 1], "11");
        assert_eq!(m.args[pos("--lag") + 1], "4");
        assert!(!m.args.contains(&"--quiet".to_string()));
    }

    #[test]
    fn file_errors_name_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let run = |text: &str| {
            std::fs::write(&file, text).unwrap();
            let args = s(&["--config", &file.display().to_string()]);
            merge(CommandName::Export, &args, &no_env)
                .unwrap_err()
                .to_string()
        };
        let e = run("rpc = \"http://a:1\"\n\nbatchsize = 3\n");
        assert!(e.contains(":3: unknown key `batchsize`"), "{e}");
        let e = run("provider-uri = \"http://h/v2/SECRETKEY\"\n");
        assert!(e.contains("`rpc`") && !e.contains("SECRETKEY"), "{e}");
        let e = run("quiet = \"yes\"\n");
        assert!(e.contains(":1: key `quiet` expects true or false"), "{e}");
        let e = run("rpc = \"https://h/v2/SECRETKEY\n");
        assert!(e.contains("line 1") && !e.contains("SECRETKEY"), "{e}");
        let e = run("[export]\nlag = 3\n");
        assert!(e.contains(":2: unknown key `lag`"), "{e}");
        let e = run("[export]\nbatch-size = { a = 1 }\n");
        assert!(e.contains(":2:"), "{e}");
        // The other command's table is checked as well.
        let e = run("[stream]\nlag = true\n");
        assert!(
            e.contains(":2: key `lag` expects a string or a number"),
            "{e}"
        );
        let e = run("[stream]\noverwrite = true\n");
        assert!(
            e.contains(":2: unknown key `overwrite` (it is not a flag of `ethetl stream`)"),
            "{e}"
        );
    }

    #[test]
    fn env_values() {
        let env = |k: &str| match k {
            "ETHETL_QUIET" => Some("maybe".to_string()),
            _ => None,
        };
        let e = merge(CommandName::Export, &[], &env).unwrap_err();
        assert!(e.to_string().contains("ETHETL_QUIET"), "{e}");
        let env = |k: &str| match k {
            "ETH_RPC_URL" => Some("http://a:1".to_string()),
            "ETHETL_KAFKA_PROPERTY" => Some("a=1\nb=2\n".to_string()),
            _ => None,
        };
        let m = merge(CommandName::Stream, &[], &env).unwrap();
        assert_eq!(m.source("rpc"), Source::Env("ETH_RPC_URL".into()));
        assert_eq!(
            m.args.iter().filter(|a| *a == "--kafka-property").count(),
            2
        );
        // Values after `--` are not flags.
        let m = merge(CommandName::Export, &s(&["--", "--quiet"]), &env).unwrap();
        assert_eq!(m.args.last().unwrap(), "--quiet");
        assert_eq!(m.source("quiet"), Source::Default);
    }
}
