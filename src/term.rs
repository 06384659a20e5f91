//! Writing to the terminal safely: messages go to stderr without a panic when the reader has
//! gone away (`ethetl ... 2>&1 | head`), and text that came from outside (a node's error
//! message, a file name) cannot carry terminal control sequences.

use std::io::Write;

/// Like `eprintln!`, but a closed or failing stderr is ignored instead of panicking, and
/// control characters are escaped.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::term::write_stderr(format_args!($($arg)*))
    };
}

/// Writes one line to stderr, ignoring errors, with control characters escaped (see
/// [`say!`] and [`escape_controls`]).
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    let text = match args.as_str() {
        Some(s) => escape_controls(s),
        None => escape_controls(&args.to_string()),
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}

/// Writes `text` to stdout, ignoring a closed pipe.
pub fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// `text` with every control character except newline and tab shown as `\u{..}` (ESC, BEL,
/// CR, DEL and the C1 range included), so a message cannot move the cursor, retitle the
/// terminal or overwrite the line.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn is_unsafe(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped() {
        assert_eq!(escape_controls("plain text\n"), "plain text\n");
        assert_eq!(
            escape_controls("bad\x1b]0;title\x07\rfake"),
            "bad\\u{1b}]0;title\\u{7}\\u{d}fake"
        );
        assert_eq!(escape_controls("\u{9b}31m"), "\\u{9b}31m");
    }
}
