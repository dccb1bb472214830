//! Terminal output for the plain CLI: colours (off under `NO_COLOR` or off a terminal),
//! aligned tables and checklists, and the error format (one sentence, then `hint:`).

use std::io::IsTerminal;

use crate::git::Check;

/// Which styling a stream gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour only for a terminal, and never under `NO_COLOR` (any non-empty value).
    pub fn for_stream(is_terminal: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: is_terminal && !no_color,
        }
    }

    pub fn stdout() -> Style {
        Style::for_stream(std::io::stdout().is_terminal())
    }

    pub fn stderr() -> Style {
        Style::for_stream(std::io::stderr().is_terminal())
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn ok(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn err(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn warn(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn muted(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// A compact aligned checklist: `✓ id  message`, with the hint under a failing check.
pub fn checklist(checks: &[Check], style: Style) -> String {
    let width = checks
        .iter()
        .map(|c| c.id.as_str().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        let mark = match (c.ok, c.warning) {
            (true, _) => style.ok("✓"),
            (false, true) => style.warn("!"),
            (false, false) => style.err("✗"),
        };
        let message = crate::text::terminal(&c.message);
        out.push_str(&format!("{mark} {:<width$}  {message}\n", c.id));
        if let (false, Some(h)) = (c.ok, &c.hint) {
            out.push_str(&format!(
                "  {:<width$}  {}\n",
                "",
                style.muted(&format!("hint: {}", crate::text::terminal(h)))
            ));
        }
    }
    out
}

/// Left-aligned columns; the last column is not padded. Cells are shown escaped
/// ([`crate::text::terminal`]): they hold names and descriptions from catalogs.
pub fn table(header: &[&str], rows: &[Vec<String>], style: Style) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| crate::text::terminal(c).into_owned())
                .collect()
        })
        .collect();
    let rows = &rows;
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let render = |cells: &[String], bold: bool| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            s.push_str(&if bold { style.bold(cell) } else { cell.clone() });
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = render(&header, true);
    for r in rows {
        out.push_str(&render(r, false));
    }
    out
}

/// `1.5 MiB`, `512 B`.
pub use crate::text::human_bytes;

/// `1d 2h`, `3h`, `45m`, `10s`: the two largest units.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let parts = [
        (s / 86_400, "d"),
        ((s / 3600) % 24, "h"),
        ((s / 60) % 60, "m"),
        (s % 60, "s"),
    ];
    let shown: Vec<String> = parts
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if shown.is_empty() {
        "0s".into()
    } else {
        shown.join(" ")
    }
}

/// Prints an error as one sentence plus an optional hint, to stderr. Both may quote foreign
/// text (a name, a URL, a server's message), so both are shown escaped.
pub fn error(message: &str, hint: Option<&str>) {
    error_with(message, &[], hint);
}

/// [`error`] with `excerpt` lines (a source line and its caret) between message and hint.
pub fn error_with(message: &str, excerpt: &[String], hint: Option<&str>) {
    let style = Style::stderr();
    eprintln!("{} {}", style.err("error:"), crate::text::terminal(message));
    for line in excerpt {
        eprintln!("{}", style.muted(&crate::text::terminal(line)));
    }
    if let Some(h) = hint {
        eprintln!("{} {}", style.muted("hint:"), crate::text::terminal(h));
    }
}

/// How much the command line says on stderr besides results and errors: 0 with `-q`, 1 by
/// default, more with each `-v`. Set once, at the start of a command.
static VERBOSITY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, std::sync::atomic::Ordering::Relaxed);
}

/// `-q` was given: say nothing but results, warnings and errors.
pub fn quiet() -> bool {
    VERBOSITY.load(std::sync::atomic::Ordering::Relaxed) == 0
}

/// `eprintln!` for progress and notes, silent under `-q` (the CLI's own; `cli::progress!`).
macro_rules! progress {
    ($($arg:tt)*) => {
        if !$crate::cli::output::quiet() {
            eprintln!($($arg)*);
        }
    };
}
pub(crate) use progress;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checklist_aligns_and_hints_failures_only() {
        let checks = vec![
            Check::pass(crate::event::CheckId::GitRepo, "in a repo"),
            Check::fail(
                crate::event::CheckId::HasPackages,
                "none installed",
                "flox install hello",
            ),
        ];
        let s = checklist(&checks, Style { color: false });
        assert_eq!(
            s,
            "✓ git-repo      in a repo\n✗ has-packages  none installed\n                hint: flox install hello\n"
        );
    }

    #[test]
    fn colour_is_only_escape_codes() {
        let s = checklist(
            &[Check::fail(crate::event::CheckId::Clean, "b", "c")],
            Style { color: true },
        );
        assert!(s.contains("\x1b[31m✗\x1b[0m"));
        let plain = checklist(
            &[Check::fail(crate::event::CheckId::Clean, "b", "c")],
            Style { color: false },
        );
        assert!(!plain.contains('\x1b'));
    }

    #[test]
    fn table_pads_all_but_last_column() {
        let s = table(
            &["NAME", "DESC"],
            &[
                vec!["a".into(), "x y".into()],
                vec!["long-name".into(), "".into()],
            ],
            Style { color: false },
        );
        assert_eq!(s, "NAME       DESC\na          x y\nlong-name\n");
    }
}
