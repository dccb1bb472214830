//! Views: read-only renderings of [`App`] into a buffer. `impl Widget for &App` draws the
//! whole screen; each pane lives in its own module.

mod catalog;
mod popup;
mod publish;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Widget};

use super::app::{App, Level, TAB_LABELS, TABS_X, Tab};
use super::keymap;
use super::theme::Theme;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.area() == 0 {
            return;
        }
        let a = self.areas();
        // `areas` is computed from `self.size`; draw only what lies inside `area`.
        let clip = |r: Rect| r.intersection(area);
        header(self, clip(a.header), buf);
        match self.tab {
            Tab::Publish => {
                publish::builds(self, clip(a.builds), buf);
                publish::checks(self, clip(a.checks), buf);
                publish::stepper(self, clip(a.stepper), buf);
                publish::upload(self, clip(a.upload), buf);
                publish::log(self, clip(a.log), buf);
            }
            Tab::Catalog => {
                catalog::search(self, clip(a.search), buf);
                catalog::results(self, clip(a.results), buf);
                catalog::details(self, clip(a.details), buf);
                catalog::readiness(self, clip(a.readiness), buf);
            }
        }
        footer(self, clip(a.footer), buf);
        popup::render(self, area, buf);
    }
}

/// Renders the whole screen into a new buffer of `width`×`height` (tests, screenshots).
pub fn render_to_buffer(app: &App, width: u16, height: u16) -> Buffer {
    let area = Rect::new(0, 0, width, height);
    let mut buf = Buffer::empty(area);
    app.render(area, &mut buf);
    buf
}

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub(crate) fn spinner(tick: u64) -> &'static str {
    SPINNER[(tick % SPINNER.len() as u64) as usize]
}

/// A bordered pane; the focused one has an accented border.
pub(crate) fn pane<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    let (border, btype) = if focused {
        (theme.focus, BorderType::Thick)
    } else {
        (theme.muted, BorderType::Rounded)
    };
    Block::new()
        .borders(Borders::ALL)
        .border_type(btype)
        .border_style(border)
        .title(title.into().style(theme.accent))
}

pub(crate) fn level_style(theme: &Theme, level: Level) -> Style {
    match level {
        Level::Info => theme.text,
        Level::Ok => theme.ok,
        Level::Warn => theme.warn,
        Level::Error => theme.error,
    }
}

/// Splits `spans` so the chars at `positions` (sorted char indices into the spans' joined
/// text) get `hl` patched over their style.
pub(crate) fn highlight(
    spans: Vec<Span<'static>>,
    positions: &[usize],
    hl: Style,
) -> Vec<Span<'static>> {
    if positions.is_empty() {
        return spans;
    }
    let mut out = Vec::with_capacity(spans.len() + positions.len() * 2);
    let mut idx = 0usize;
    let mut pos = positions.iter().peekable();
    for span in spans {
        let mut run = String::new();
        let mut run_hl = false;
        for c in span.content.chars() {
            while pos.next_if(|p| **p < idx).is_some() {}
            let is_hl = pos.peek().is_some_and(|p| **p == idx);
            if is_hl != run_hl && !run.is_empty() {
                let style = if run_hl {
                    span.style.patch(hl)
                } else {
                    span.style
                };
                out.push(Span::styled(std::mem::take(&mut run), style));
            }
            run_hl = is_hl;
            run.push(c);
            idx += 1;
        }
        if !run.is_empty() {
            let style = if run_hl {
                span.style.patch(hl)
            } else {
                span.style
            };
            out.push(Span::styled(run, style));
        }
    }
    out
}

/// `1.5 MiB` ([`crate::text::human_bytes`]).
pub(crate) fn bytes(n: u64) -> String {
    crate::text::human_bytes(n)
}

/// A text field's text with its cursor drawn as a highlighted cell (a blank one at the end).
pub(crate) fn input_spans(input: &super::input::TextInput, t: &Theme) -> Vec<Span<'static>> {
    let (before, under, after) = input.split();
    vec![
        Span::styled(before.to_string(), t.text),
        Span::styled(under.map_or(" ".to_string(), String::from), t.selection),
        Span::styled(after.to_string(), t.text),
    ]
}

/// `text` in lines of at most `width` characters, broken at spaces where possible (a word
/// longer than a line, such as a path, is split); at least one line, never an empty width.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut len = 0;
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        // Room for " word" on this line?
        let need = if len == 0 {
            word.len()
        } else {
            len + 1 + word.len()
        };
        if need <= width {
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            line.extend(word.iter());
            len += word.len();
            continue;
        }
        if len > 0 {
            lines.push(std::mem::take(&mut line));
        }
        while word.len() > width {
            lines.push(word.drain(..width).collect());
        }
        line.extend(word.iter());
        len = word.len();
    }
    lines.push(line);
    lines
}

/// `0.4s`, `12s`, `3m05s`.
pub(crate) fn secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 60.0 {
        format!("{s:.0}s")
    } else {
        let s = s.round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Cuts `s` to `width` chars, ending in `…` when cut.
pub(crate) fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

fn header(app: &App, area: Rect, buf: &mut Buffer) {
    if area.area() == 0 {
        return;
    }
    let t = &app.theme;
    buf.set_stringn(
        area.x,
        area.y,
        " pubdeck ",
        usize::from(area.width),
        t.accent,
    );
    let mut x = area.x + TABS_X;
    for (tab, label) in TAB_LABELS {
        if x >= area.right() {
            break;
        }
        let style = if tab == app.tab { t.selection } else { t.muted };
        let w = usize::from(area.right() - x);
        let (nx, _) = buf.set_stringn(x, area.y, label, w, style);
        x = nx + 1;
    }
    // Status on the right: spinner for running work, then the message.
    let mut spans = Vec::new();
    let busy = app
        .publish
        .job
        .as_ref()
        .map(|j| format!("{} {}", j.kind, j.build));
    if let Some(what) = busy {
        spans.push(Span::styled(
            format!("{} {what} ", spinner(app.tick)),
            t.warn,
        ));
    }
    if let Some(s) = &app.status {
        spans.push(Span::styled(s.text.clone(), level_style(t, s.level)));
        if let Some(hint) = &s.hint {
            spans.push(Span::styled(" · hint: ", t.muted));
            spans.push(Span::styled(hint.clone(), t.text));
        }
    }
    let line = Line::from(spans);
    let width = u16::try_from(line.width())
        .unwrap_or(u16::MAX)
        .saturating_add(1);
    let left = x.max(area.x + area.width.saturating_sub(width));
    if left < area.right() {
        buf.set_line(left, area.y, &line, area.right() - left);
    }
}

/// What a panel's title adds when its `total` rows do not fit in `visible`: the rows shown
/// and how to scroll (` 4–12/30 ↕ `); `None` when everything fits. `scroll` is clamped.
pub(crate) fn scroll_note(scroll: u16, total: usize, visible: usize) -> Option<String> {
    if total <= visible || visible == 0 {
        return None;
    }
    let first = usize::from(scroll).min(total - visible);
    Some(format!(
        " {}–{}/{} ↕ ",
        first + 1,
        (first + visible).min(total),
        total
    ))
}

/// `scroll` clamped to what `total` rows in `visible` allow, remembered in `max` for the
/// app (which has no layout) to clamp its own counter.
pub(crate) fn clamp_scroll(
    scroll: u16,
    total: usize,
    visible: usize,
    max: &std::cell::Cell<u16>,
) -> u16 {
    let m = u16::try_from(total.saturating_sub(visible)).unwrap_or(u16::MAX);
    max.set(m);
    scroll.min(m)
}

/// Key hints for `stack`, as many whole hints as fit in `width`.
pub(crate) fn hints(
    map: &keymap::Keymap,
    stack: &[keymap::Context],
    t: &Theme,
    width: u16,
) -> Line<'static> {
    let entries = map.footer_entries(stack);
    // Help is shown at every width: its room is kept at the end, the rest fill what is left.
    let help = entries
        .iter()
        .find(|(_, _, c)| *c == keymap::Command::Help)
        .map(|(k, d, _)| (k.clone(), *d));
    let width_of = |keys: &str, desc: &str| keys.chars().count() + 1 + desc.chars().count();
    let reserve = help.as_ref().map_or(0, |(k, d)| 3 + width_of(k, d));
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    let mut shown = 0;
    for (keys, desc, _) in entries
        .into_iter()
        .filter(|(_, _, c)| *c != keymap::Command::Help)
    {
        let sep = if shown > 0 { 3 } else { 0 };
        let w = sep + width_of(&keys, desc);
        if used + w + reserve > usize::from(width) {
            break;
        }
        used += w;
        if shown > 0 {
            spans.push(Span::styled(" · ", t.muted));
        }
        spans.push(Span::styled(keys, t.accent));
        spans.push(Span::styled(format!(" {desc}"), t.text));
        shown += 1;
    }
    if let Some((keys, desc)) = help
        && used + reserve - if shown == 0 { 3 } else { 0 } <= usize::from(width)
    {
        if shown > 0 {
            spans.push(Span::styled(" · ", t.muted));
        }
        spans.push(Span::styled(keys, t.accent));
        spans.push(Span::styled(format!(" {desc}"), t.text));
    }
    Line::from(spans)
}

fn footer(app: &App, area: Rect, buf: &mut Buffer) {
    if area.area() == 0 {
        return;
    }
    let t = &app.theme;
    buf.set_line(
        area.x,
        area.y,
        &hints(&app.keymap, &app.contexts(), t, area.width),
        area.width,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Stylize;

    #[test]
    fn highlight_splits_spans() {
        let spans = vec![Span::raw("ab"), Span::styled("cd", Style::new().bold())];
        let hl = Style::new().underlined();
        let out = highlight(spans, &[1, 2], hl);
        let texts: Vec<_> = out.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(texts, ["a", "b", "c", "d"]);
        assert_eq!(out[1].style, hl);
        assert_eq!(out[2].style, Style::new().bold().underlined());
    }

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(secs(0.42), "0.4s");
        assert_eq!(secs(185.0), "3m05s");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }
}
