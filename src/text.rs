//! Foreign text: strings that a catalog owner, a store, a NAR listing or a build controls.
//!
//! Two rules, each in one function, so every face and every writer applies the same one:
//! - [`terminal`]: how such a string is shown on a terminal (the CLI and the workbench alike).
//!   Control characters (C0, DEL, C1), and the Unicode format characters that reorder or hide
//!   text (bidi overrides and isolates, zero-width marks), are shown as escapes (`\x1b`,
//!   `\n`, `\u{202e}`), so a string cannot erase a line, move the cursor, recolour the screen
//!   or pretend to be pubdeck's own output.
//! - [`is_config_token`]: whether a value may be written into a line-oriented config file such
//!   as `nix.conf`, where whitespace separates values, `#` starts a comment and a newline starts
//!   a new setting: only printable ASCII without whitespace, `#`, quotes or backslashes.
//!
//! [`log_line`] is the terminal rule for a build's own log, which keeps its colours (SGR
//! sequences) and escapes every other control sequence.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal raw.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'   // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{feff}'              // byte order mark / zero-width no-break space
        )
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `s` as it may be shown on a terminal: unchanged when it holds nothing unsafe, else with
/// every unsafe character escaped (see the module docs). A backslash stays a backslash: the
/// escapes are for a person to read, not to be parsed back.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A line of a build's log as it may be shown on a terminal: SGR sequences (`ESC [ … m`, the
/// colours a build prints) pass, tabs pass, every other unsafe character is escaped as by
/// [`terminal`], so a log line cannot move the cursor or erase what pubdeck printed.
pub fn log_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\t' && is_unsafe_char(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b'
            && let Some(len) = sgr_len(rest)
        {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if c != '\t' && is_unsafe_char(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// The length of the SGR sequence `ESC [ digits;… m` at the start of `s`, if there is one.
fn sgr_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("\x1b[")?;
    let params = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
        .count();
    (params <= 64 && body.as_bytes().get(params) == Some(&b'm')).then_some(2 + params + 1)
}

/// A byte count as people read it: `512 B`, `1.5 MiB` (binary units, one decimal).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Whether `value` can be written into `nix.conf` (or a similar line-oriented config) as
/// exactly one value: non-empty printable ASCII without whitespace, `#`, `"`, `'`, `\` or `$`.
pub fn is_config_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'#' | b'"' | b'\'' | b'\\' | b'$'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(terminal("myorg/hello 1.0 — ✓"), Cow::Borrowed(_)));
        assert!(matches!(log_line("error:\tx"), Cow::Borrowed(_)));
    }

    #[test]
    fn escapes_controls_and_reordering() {
        assert_eq!(
            terminal("a\x1b[2K\r✓ narinfo\n"),
            "a\\x1b[2K\\r✓ narinfo\\n"
        );
        assert_eq!(terminal("x\u{9b}y"), "x\\u{9b}y");
        assert_eq!(terminal("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(terminal("\x7f"), "\\x7f");
    }

    #[test]
    fn log_lines_keep_colours_only() {
        assert_eq!(log_line("\x1b[1;31merr\x1b[0m"), "\x1b[1;31merr\x1b[0m");
        assert_eq!(
            log_line("\x1b[2Kfake\x1b]0;title\x07"),
            "\\x1b[2Kfake\\x1b]0;title\\x07"
        );
        assert_eq!(log_line("a\rb"), "a\\rb");
    }

    #[test]
    fn config_tokens() {
        assert!(is_config_token(
            "s3://b?endpoint=http://127.0.0.1:9000&region=us-east-1"
        ));
        assert!(is_config_token("myorg-1:AAAA+/=="));
        for bad in ["", "a b", "a\nb", "a#b", "a\tb", "ä", "a\"b", "a\\b", "$x"] {
            assert!(!is_config_token(bad), "{bad:?}");
        }
    }
}
