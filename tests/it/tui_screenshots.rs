//! The committed README screenshots must match what the views render now.
//! `PUBDECK_UPDATE_SCREENSHOTS=1 cargo test --test it tui_screenshots::` (or
//! `scripts/screenshots.sh`) rewrites them.

use crate::support;

use std::path::Path;

use support::screenshots;

#[test]
fn screenshots_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    let update = std::env::var("PUBDECK_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, app) in screenshots::all() {
        let want = screenshots::svg(&app);
        let path = dir.join(name);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if update {
                std::fs::write(&path, want).unwrap();
                eprintln!("wrote {}", path.display());
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "screenshots out of date: {stale:?}; run scripts/screenshots.sh and commit screenshots/"
    );
}

#[test]
fn svg_renders_backgrounds_text_and_attributes() {
    use ratatui::buffer::Buffer;
    use ratatui::layout::Rect;
    use ratatui::style::{Color, Style, Stylize};
    use support::svg::{DEFAULT_FG, buffer_to_svg, indexed};

    let mut buf = Buffer::empty(Rect::new(0, 0, 6, 1));
    buf.set_string(
        0,
        0,
        "a<b",
        Style::new().fg(Color::Red).bg(Color::Blue).bold(),
    );
    buf.set_string(3, 0, "x", Style::new().reversed());
    let svg = buffer_to_svg(&buf);
    assert!(svg.contains(r##"fill="#3d6fb4""##), "{svg}");
    assert!(svg.contains(r#"font-weight="bold""#));
    assert!(svg.contains("a&lt;b"));
    // Reverse video: default fg becomes the background.
    assert!(svg.contains(&format!(r#"fill="{DEFAULT_FG}"/>"#)));
    assert_eq!(indexed(196), "#ff0000");
    assert_eq!(indexed(232), "#080808");
}
