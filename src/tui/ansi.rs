//! A small ANSI SGR parser for build logs: colours (30–37, 90–97, 40–47, 100–107, 38/48;5;n,
//! 38/48;2;r;g;b, 39, 49) and attributes (0, 1, 2, 3, 4, 7 and their resets) become ratatui
//! styles; other escape sequences are dropped; tabs expand to 8 columns; after a carriage
//! return the line starts over (progress bars), as on a terminal.
//!
//! [`strip`] yields exactly the text of [`parse`]'s spans, so search matches line up.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;

enum Token<'a> {
    Text(&'a str),
    Sgr(&'a str),
}

/// Splits `s` into text and SGR parameter strings; other escapes are skipped.
fn tokens(s: &str) -> impl Iterator<Item = Token<'_>> {
    let bytes = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            if bytes[i] != 0x1b {
                let start = i;
                while i < bytes.len() && bytes[i] != 0x1b {
                    i += 1;
                }
                return Some(Token::Text(&s[start..i]));
            }
            // ESC
            i += 1;
            match bytes.get(i) {
                Some(b'[') => {
                    i += 1;
                    let start = i;
                    // Parameter and intermediate bytes, then one final byte 0x40..=0x7e.
                    while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                        i += 1;
                    }
                    let end = i;
                    let fin = bytes.get(i).copied();
                    i = (i + 1).min(bytes.len());
                    if fin == Some(b'm') {
                        return Some(Token::Sgr(&s[start..end]));
                    }
                }
                Some(b']') => {
                    // OSC: up to BEL or ST (ESC \).
                    i += 1;
                    while i < bytes.len() {
                        if bytes[i] == 0x07 {
                            i += 1;
                            break;
                        }
                        if bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'\\') {
                            i += 2;
                            break;
                        }
                        i += 1;
                    }
                }
                Some(_) => i += 1,
                None => {}
            }
        }
        None
    })
}

/// The part of `line` a terminal would show after its carriage returns.
fn after_cr(line: &str) -> &str {
    line.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("")
}

/// Appends `text` to `out`, expanding tabs and dropping control characters.
fn push_text(out: &mut String, text: &str, col: &mut usize) {
    for c in text.chars() {
        if c == '\t' {
            let n = 8 - (*col % 8);
            out.extend(std::iter::repeat_n(' ', n));
            *col += n;
        } else if !c.is_control() {
            out.push(c);
            *col += 1;
        }
    }
}

/// The visible text of `line`, without escapes.
pub fn strip(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut col = 0;
    for t in tokens(after_cr(line)) {
        if let Token::Text(s) = t {
            push_text(&mut out, s, &mut col);
        }
    }
    out
}

/// `line` as styled spans on top of `base`; with `color == false` only attributes are kept.
pub fn parse(line: &str, base: Style, color: bool) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    let mut style = base;
    let mut col = 0;
    for t in tokens(after_cr(line)) {
        match t {
            Token::Text(s) => {
                let mut text = String::with_capacity(s.len());
                push_text(&mut text, s, &mut col);
                if !text.is_empty() {
                    spans.push(Span::styled(text, style));
                }
            }
            Token::Sgr(params) => style = apply_sgr(style, base, params, color),
        }
    }
    spans
}

fn basic(n: u16) -> Color {
    match n {
        0 => Color::Black,
        1 => Color::Red,
        2 => Color::Green,
        3 => Color::Yellow,
        4 => Color::Blue,
        5 => Color::Magenta,
        6 => Color::Cyan,
        _ => Color::Gray,
    }
}

fn bright(n: u16) -> Color {
    match n {
        0 => Color::DarkGray,
        1 => Color::LightRed,
        2 => Color::LightGreen,
        3 => Color::LightYellow,
        4 => Color::LightBlue,
        5 => Color::LightMagenta,
        6 => Color::LightCyan,
        _ => Color::White,
    }
}

/// Reads an extended colour (`5;n` or `2;r;g;b`) from `it`.
fn extended(it: &mut impl Iterator<Item = u16>) -> Option<Color> {
    match it.next()? {
        5 => Some(Color::Indexed(u8::try_from(it.next()?).ok()?)),
        2 => {
            let r = u8::try_from(it.next()?).ok()?;
            let g = u8::try_from(it.next()?).ok()?;
            let b = u8::try_from(it.next()?).ok()?;
            Some(Color::Rgb(r, g, b))
        }
        _ => None,
    }
}

fn apply_sgr(mut style: Style, base: Style, params: &str, color: bool) -> Style {
    let mut it = params
        .split([';', ':'])
        .map(|p| p.parse::<u16>().unwrap_or(0));
    if params.is_empty() {
        return base;
    }
    let set_fg = |s: Style, c: Option<Color>| match c {
        Some(c) if color => s.fg(c),
        _ => s,
    };
    let set_bg = |s: Style, c: Option<Color>| match c {
        Some(c) if color => s.bg(c),
        _ => s,
    };
    while let Some(p) = it.next() {
        style = match p {
            0 => base,
            1 => style.add_modifier(Modifier::BOLD),
            2 => style.add_modifier(Modifier::DIM),
            3 => style.add_modifier(Modifier::ITALIC),
            4 => style.add_modifier(Modifier::UNDERLINED),
            7 => style.add_modifier(Modifier::REVERSED),
            22 => style.remove_modifier(Modifier::BOLD | Modifier::DIM),
            23 => style.remove_modifier(Modifier::ITALIC),
            24 => style.remove_modifier(Modifier::UNDERLINED),
            27 => style.remove_modifier(Modifier::REVERSED),
            30..=37 => set_fg(style, Some(basic(p - 30))),
            38 => set_fg(style, extended(&mut it)),
            39 => {
                let mut s = style;
                s.fg = base.fg;
                s
            }
            40..=47 => set_bg(style, Some(basic(p - 40))),
            48 => set_bg(style, extended(&mut it)),
            49 => {
                let mut s = style;
                s.bg = base.bg;
                s
            }
            90..=97 => set_fg(style, Some(bright(p - 90))),
            100..=107 => set_bg(style, Some(bright(p - 100))),
            _ => style,
        };
    }
    style
}

#[cfg(test)]
mod tests {
    use super::*;

    fn styled(line: &str) -> Vec<(String, Style)> {
        parse(line, Style::new(), true)
            .into_iter()
            .map(|s| (s.content.into_owned(), s.style))
            .collect()
    }

    #[test]
    fn colours_and_reset() {
        let got = styled("\x1b[31merror\x1b[0m: \x1b[1;92mok\x1b[39m!");
        assert_eq!(
            got,
            vec![
                ("error".into(), Style::new().fg(Color::Red)),
                (": ".into(), Style::new()),
                (
                    "ok".into(),
                    Style::new()
                        .fg(Color::LightGreen)
                        .add_modifier(Modifier::BOLD)
                ),
                ("!".into(), Style::new().add_modifier(Modifier::BOLD)),
            ]
        );
    }

    #[test]
    fn extended_colours() {
        let got = styled("\x1b[38;5;208ma\x1b[38;2;1;2;3mb\x1b[48;5;4mc");
        assert_eq!(got[0].1.fg, Some(Color::Indexed(208)));
        assert_eq!(got[1].1.fg, Some(Color::Rgb(1, 2, 3)));
        assert_eq!(got[2].1.bg, Some(Color::Indexed(4)));
    }

    #[test]
    fn attributes() {
        let got = styled("\x1b[2;3;4;7mx\x1b[22;23;24;27my\x1b[mz");
        assert_eq!(
            got[0].1.add_modifier,
            Modifier::DIM | Modifier::ITALIC | Modifier::UNDERLINED | Modifier::REVERSED
        );
        assert_eq!(got[1].1.add_modifier, Modifier::empty());
        assert_eq!(got[2].1, Style::new());
    }

    #[test]
    fn no_color_keeps_attributes_only() {
        let got = parse("\x1b[1;31mx", Style::new(), false);
        assert_eq!(got[0].style, Style::new().add_modifier(Modifier::BOLD));
    }

    #[test]
    fn other_escapes_tabs_and_cr() {
        assert_eq!(strip("a\x1b[2Kb\x1b]0;title\x07c"), "abc");
        assert_eq!(strip("a\tb"), "a       b");
        assert_eq!(strip("10%\r50%\r100%"), "100%");
        assert_eq!(strip("line\r"), "line");
        assert_eq!(strip("broken \x1b["), "broken ");
        assert_eq!(strip("\x1b"), "");
    }

    #[test]
    fn strip_matches_parse() {
        for line in ["\x1b[31ma\tb\x1b[0m c", "x\ry\x1b[1m\tz", "plain"] {
            let joined: String = parse(line, Style::new(), true)
                .iter()
                .map(|s| s.content.as_ref())
                .collect();
            assert_eq!(joined, strip(line));
        }
    }
}
