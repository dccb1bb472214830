//! Semantic style roles. Views ask for `theme.error`, never for a colour.

use ratatui::style::{Color, Modifier, Style};

/// The styles views use, by meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Plain text.
    pub text: Style,
    /// Success: passing checks, finished stages, "published".
    pub ok: Style,
    /// Failure: failing checks, failed stages and builds.
    pub error: Style,
    /// Attention: running stages, retries, hints.
    pub warn: Style,
    /// Secondary text: descriptions, durations, borders of unfocused panes.
    pub muted: Style,
    /// Titles, keys in the footer, the active tab.
    pub accent: Style,
    /// The selected row.
    pub selection: Style,
    /// Fuzzy/search matches.
    pub matched: Style,
    /// Border of the focused pane.
    pub focus: Style,
    /// Filled part of gauges.
    pub gauge: Style,
    /// False when colours must not be used (`NO_COLOR`): ANSI colours in logs are dropped.
    pub color: bool,
}

impl Theme {
    /// The default colour theme (16 ANSI colours, so it follows the terminal's palette).
    pub fn dark() -> Theme {
        Theme {
            text: Style::new(),
            ok: Style::new().fg(Color::Green),
            error: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            warn: Style::new().fg(Color::Yellow),
            muted: Style::new().fg(Color::DarkGray),
            accent: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            selection: Style::new().bg(Color::Blue).fg(Color::White),
            matched: Style::new()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            focus: Style::new().fg(Color::Cyan),
            gauge: Style::new().fg(Color::Green).bg(Color::Black),
            color: true,
        }
    }

    /// For `NO_COLOR`: bold, reverse and underline only; the selection stays visible.
    pub fn monochrome() -> Theme {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        Theme {
            text: Style::new(),
            ok: Style::new(),
            error: bold,
            warn: bold,
            muted: Style::new(),
            accent: bold,
            selection: Style::new().add_modifier(Modifier::REVERSED),
            matched: Style::new().add_modifier(Modifier::UNDERLINED | Modifier::BOLD),
            focus: bold,
            gauge: Style::new().add_modifier(Modifier::REVERSED),
            color: false,
        }
    }

    /// `monochrome` when `NO_COLOR` is set to a non-empty value (see no-color.org).
    pub fn from_env() -> Theme {
        match std::env::var_os("NO_COLOR") {
            Some(v) if !v.is_empty() => Theme::monochrome(),
            _ => Theme::dark(),
        }
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::dark()
    }
}
