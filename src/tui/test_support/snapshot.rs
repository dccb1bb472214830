//! A textual rendering of a buffer for snapshot tests: the text, then every run of cells
//! whose style is not the default, so colours that carry meaning are checked too.

#![allow(dead_code)]

use std::fmt::Write;

use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier, Style};

fn describe(style: Style) -> String {
    let mut parts = Vec::new();
    if let Some(fg) = style.fg.filter(|c| *c != Color::Reset) {
        parts.push(format!("fg={fg}"));
    }
    if let Some(bg) = style.bg.filter(|c| *c != Color::Reset) {
        parts.push(format!("bg={bg}"));
    }
    let m = style.add_modifier;
    for (flag, name) in [
        (Modifier::BOLD, "bold"),
        (Modifier::DIM, "dim"),
        (Modifier::ITALIC, "italic"),
        (Modifier::UNDERLINED, "underline"),
        (Modifier::REVERSED, "reverse"),
    ] {
        if m.contains(flag) {
            parts.push(name.to_string());
        }
    }
    parts.join(" ")
}

/// The buffer's text (one line per row, trailing spaces trimmed) followed by style runs
/// `row:start-end style`.
pub fn buffer_to_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut text = String::new();
    let mut styles = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let mut run: Option<(u16, String)> = None;
        for x in area.left()..area.right() {
            let cell = &buf[(x, y)];
            line.push_str(cell.symbol());
            let d = describe(cell.style());
            let same = run.as_ref().is_some_and(|(_, s)| *s == d);
            if !same {
                if let Some((start, s)) = run.take()
                    && !s.is_empty()
                {
                    let _ = writeln!(styles, "{y}:{start}-{} {s}", x - 1);
                }
                run = Some((x, d));
            }
        }
        if let Some((start, s)) = run.take()
            && !s.is_empty()
        {
            let _ = writeln!(styles, "{y}:{start}-{} {s}", area.right() - 1);
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    format!("{text}--- styles ---\n{styles}")
}
