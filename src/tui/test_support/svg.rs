//! Buffer → SVG, for README screenshots rendered from the real views: cell backgrounds,
//! coloured text, bold/dim/italic/underline, reverse video; monospace font.

#![allow(dead_code)]

use std::fmt::Write;

use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

const CELL_W: f64 = 8.4;
const CELL_H: f64 = 17.0;
const FONT_SIZE: f64 = 14.0;
pub const DEFAULT_FG: &str = "#d4d7dd";
const DEFAULT_BG: &str = "#1b1d23";

fn named(c: Color) -> Option<&'static str> {
    Some(match c {
        Color::Black => "#2b2f36",
        Color::Red => "#e06c75",
        Color::Green => "#98c379",
        Color::Yellow => "#e5c07b",
        Color::Blue => "#3d6fb4",
        Color::Magenta => "#c678dd",
        Color::Cyan => "#56b6c2",
        Color::Gray => "#abb2bf",
        Color::DarkGray => "#6b7280",
        Color::LightRed => "#ff8a94",
        Color::LightGreen => "#b5e890",
        Color::LightYellow => "#ffd68a",
        Color::LightBlue => "#8cc8ff",
        Color::LightMagenta => "#de9bf0",
        Color::LightCyan => "#7fd8e3",
        Color::White => "#ffffff",
        _ => return None,
    })
}

/// xterm's 256-colour palette.
pub fn indexed(i: u8) -> String {
    const BASIC: [Color; 16] = [
        Color::Black,
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::Gray,
        Color::DarkGray,
        Color::LightRed,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
        Color::White,
    ];
    match i {
        0..=15 => named(BASIC[usize::from(i)])
            .unwrap_or(DEFAULT_FG)
            .to_string(),
        16..=231 => {
            let i = i - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            format!(
                "#{:02x}{:02x}{:02x}",
                level(i / 36),
                level((i / 6) % 6),
                level(i % 6)
            )
        }
        _ => {
            let v = 8 + (i - 232) * 10;
            format!("#{v:02x}{v:02x}{v:02x}")
        }
    }
}

fn hex(c: Option<Color>, default: &str) -> String {
    match c {
        None | Some(Color::Reset) => default.to_string(),
        Some(Color::Rgb(r, g, b)) => format!("#{r:02x}{g:02x}{b:02x}"),
        Some(Color::Indexed(i)) => indexed(i),
        Some(c) => named(c).unwrap_or(default).to_string(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The cell's effective (fg, bg) after reverse video.
fn colours(cell: &ratatui::buffer::Cell) -> (String, String) {
    let fg = hex(Some(cell.fg), DEFAULT_FG);
    let bg = hex(Some(cell.bg), DEFAULT_BG);
    if cell.modifier.contains(Modifier::REVERSED) {
        (bg, fg)
    } else {
        (fg, bg)
    }
}

/// Renders `buf` as a standalone SVG document.
pub fn buffer_to_svg(buf: &Buffer) -> String {
    let area = buf.area;
    let (w, h) = (
        f64::from(area.width) * CELL_W,
        f64::from(area.height) * CELL_H,
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.1} {h:.1}" font-family="'DejaVu Sans Mono','Menlo','Consolas',monospace" font-size="{FONT_SIZE}">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="{DEFAULT_BG}"/>"#
    );
    // Backgrounds: runs of equal colour per row.
    for y in area.top()..area.bottom() {
        let mut x = area.left();
        while x < area.right() {
            let (_, bg) = colours(&buf[(x, y)]);
            let start = x;
            while x < area.right() && colours(&buf[(x, y)]).1 == bg {
                x += 1;
            }
            if bg != DEFAULT_BG {
                let _ = writeln!(
                    out,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{CELL_H}" fill="{bg}"/>"#,
                    f64::from(start - area.left()) * CELL_W,
                    f64::from(y - area.top()) * CELL_H,
                    f64::from(x - start) * CELL_W,
                );
            }
        }
    }
    // Text: runs of equal style per row, each stretched to its cells so columns line up.
    for y in area.top()..area.bottom() {
        let mut x = area.left();
        while x < area.right() {
            let cell = &buf[(x, y)];
            let key = (colours(cell).0, cell.modifier - Modifier::REVERSED);
            let start = x;
            let mut text = String::new();
            while x < area.right() {
                let c = &buf[(x, y)];
                if (colours(c).0, c.modifier - Modifier::REVERSED) != key {
                    break;
                }
                text.push_str(c.symbol());
                x += 1;
            }
            if text.trim().is_empty() && !key.1.contains(Modifier::UNDERLINED) {
                continue;
            }
            let (fg, m) = key;
            let mut attrs = format!(r#"fill="{fg}""#);
            if m.contains(Modifier::BOLD) {
                attrs.push_str(r#" font-weight="bold""#);
            }
            if m.contains(Modifier::ITALIC) {
                attrs.push_str(r#" font-style="italic""#);
            }
            if m.contains(Modifier::UNDERLINED) {
                attrs.push_str(r#" text-decoration="underline""#);
            }
            if m.contains(Modifier::DIM) {
                attrs.push_str(r#" fill-opacity="0.6""#);
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" textLength="{:.1}" lengthAdjust="spacingAndGlyphs" xml:space="preserve" {attrs}>{}</text>"#,
                f64::from(start - area.left()) * CELL_W,
                f64::from(y - area.top()) * CELL_H + FONT_SIZE * 0.95,
                f64::from(x - start) * CELL_W,
                escape(&text),
            );
        }
    }
    out.push_str("</svg>\n");
    out
}
