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

/// The semantic colours `[theme]` may set.
pub const THEME_NAMES: &[&str] = &[
    "text",
    "ok",
    "error",
    "warn",
    "muted",
    "accent",
    "selection",
    "matched",
    "focus",
    "gauge",
];

impl Theme {
    /// This theme with `[theme]` overrides (`(name, colour, line)`): a colour is a name
    /// (`red`, `lightblue`, `darkgray`…), `#rrggbb` or a 256-colour index. It sets the
    /// foreground (the background for `selection`). A monochrome theme (`NO_COLOR`) stays
    /// monochrome. An unknown name or colour is refused with one sentence naming the entry.
    pub fn with_overrides(
        mut self,
        overrides: &[(String, String, Option<usize>)],
    ) -> Result<Theme, String> {
        use std::str::FromStr as _;
        for (name, colour, line) in overrides {
            let at = match line {
                Some(l) => format!("line {l}: [theme] {name}"),
                None => format!("[theme] {name}"),
            };
            let c = Color::from_str(colour.trim()).map_err(|_| {
                format!(
                    "{at}: {colour:?} is not a colour: use a name (red, lightblue, darkgray…), #rrggbb or 0-255"
                )
            })?;
            let slot = match name.as_str() {
                "text" => &mut self.text,
                "ok" => &mut self.ok,
                "error" => &mut self.error,
                "warn" => &mut self.warn,
                "muted" => &mut self.muted,
                "accent" => &mut self.accent,
                "selection" => &mut self.selection,
                "matched" => &mut self.matched,
                "focus" => &mut self.focus,
                "gauge" => &mut self.gauge,
                _ => {
                    return Err(format!(
                        "{at}: there is no colour {name:?}; the colours are {}",
                        THEME_NAMES.join(", ")
                    ));
                }
            };
            if self.color {
                *slot = if name == "selection" {
                    slot.bg(c)
                } else {
                    slot.fg(c)
                };
            }
        }
        Ok(self)
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::dark()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theme_overrides_set_semantic_colours() {
        let t = Theme::dark()
            .with_overrides(&[
                ("accent".into(), "#ff8800".into(), Some(2)),
                ("selection".into(), "darkgray".into(), Some(3)),
                ("ok".into(), "33".into(), None),
            ])
            .unwrap();
        assert_eq!(t.accent.fg, Some(Color::Rgb(0xff, 0x88, 0)));
        assert!(
            t.accent.add_modifier.contains(Modifier::BOLD),
            "keeps its modifiers"
        );
        assert_eq!(t.selection.bg, Some(Color::DarkGray));
        assert_eq!(t.ok.fg, Some(Color::Indexed(33)));
        let e = Theme::dark()
            .with_overrides(&[("accnt".into(), "red".into(), Some(5))])
            .unwrap_err();
        assert!(
            e.starts_with("line 5: [theme] accnt: there is no colour"),
            "{e}"
        );
        let e = Theme::dark()
            .with_overrides(&[("accent".into(), "reddish".into(), Some(6))])
            .unwrap_err();
        assert!(
            e.starts_with("line 6: [theme] accent: \"reddish\" is not a colour"),
            "{e}"
        );
        // NO_COLOR wins.
        let m = Theme::monochrome()
            .with_overrides(&[("accent".into(), "red".into(), None)])
            .unwrap();
        assert_eq!(m.accent.fg, None);
    }
}
