//! Popups: confirmation, text input and the `?` help generated from the keymap table.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Widget, Wrap};

use super::pane;
use crate::tui::app::{App, Popup};
use crate::tui::keymap::{self, Context, Key};
use crate::tui::layout::centered;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let hints = |ctx: Context| super::hints(&app.keymap, &[ctx], t, area.width);
    match &app.popup {
        None => {}
        Some(Popup::Confirm { title, lines, .. }) => {
            let width = lines
                .iter()
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0)
                .clamp(30, 70) as u16
                + 4;
            let mut text: Vec<Line> = lines
                .iter()
                .map(|l| Line::styled(l.clone(), t.text))
                .collect();
            if let Some(first) = text.get_mut(1) {
                first.style = t.warn;
            }
            text.push(Line::raw(""));
            text.push(hints(Context::Confirm));
            // Rows after wrapping to the text width (width minus borders and padding).
            let text_w = usize::from(width.min(area.width).saturating_sub(4)).max(1);
            let rows: usize = text.iter().map(|l| l.width().div_ceil(text_w).max(1)).sum();
            let height = u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2);
            let r = centered(area, width, height);
            Clear.render(r, buf);
            Paragraph::new(text)
                .wrap(Wrap { trim: false })
                .block(
                    pane(format!(" {title} "), true, t)
                        .padding(ratatui::widgets::Padding::horizontal(1)),
                )
                .render(r, buf);
        }
        Some(Popup::Input { title, input, .. }) => {
            let r = centered(area, 52, 6);
            Clear.render(r, buf);
            let mut line = vec![Span::styled("› ", t.accent)];
            line.extend(super::input_spans(input, t));
            let text = vec![Line::from(line), Line::raw(""), hints(Context::Input)];
            Paragraph::new(text)
                .block(
                    pane(format!(" {title} "), true, t)
                        .padding(ratatui::widgets::Padding::horizontal(1)),
                )
                .render(r, buf);
        }
        Some(Popup::Help { scroll }) => help(app, area, buf, *scroll),
        Some(Popup::Failure { message, hint }) => {
            let width = area.width.saturating_sub(4).clamp(20, 80);
            let mut text = vec![Line::styled(message.clone(), t.error)];
            if let Some(h) = hint {
                text.push(Line::raw(""));
                text.push(Line::from(vec![
                    Span::styled("fix: ", t.muted),
                    Span::styled(h.clone(), t.text),
                ]));
            }
            text.push(Line::raw(""));
            text.push(hints(Context::Failure));
            let text_w = usize::from(width.saturating_sub(4)).max(1);
            let rows: usize = text.iter().map(|l| l.width().div_ceil(text_w).max(1)).sum();
            let height = u16::try_from(rows)
                .unwrap_or(u16::MAX)
                .saturating_add(2)
                .min(area.height);
            let r = centered(area, width, height);
            Clear.render(r, buf);
            Paragraph::new(text)
                .wrap(Wrap { trim: false })
                .block(
                    pane(" Failed ".to_string(), true, t)
                        .padding(ratatui::widgets::Padding::horizontal(1)),
                )
                .render(r, buf);
        }
        Some(Popup::Review {
            review,
            verify,
            scroll,
        }) => {
            let mut text = review_lines(review, *verify, t);
            // As tall as the review (borders, a blank line and the hints), at most the screen.
            let want = u16::try_from(text.len() + 4).unwrap_or(u16::MAX);
            let r = centered(
                area,
                area.width.saturating_sub(4).min(100),
                want.min(area.height.saturating_sub(2)),
            );
            Clear.render(r, buf);
            let body_h = usize::from(r.height.saturating_sub(4));
            let overflow = text.len() > body_h;
            let title = if overflow {
                format!(
                    " Review {} · j/k scroll ({}/{}) ",
                    review.reference,
                    usize::from(*scroll).min(text.len()) + 1,
                    text.len()
                )
            } else {
                format!(" Review {} ", review.reference)
            };
            let skip = usize::from(*scroll).min(text.len().saturating_sub(1));
            text.drain(..skip);
            text.truncate(body_h);
            text.push(Line::raw(""));
            text.push(hints(Context::Review));
            Paragraph::new(text)
                .block(pane(title, true, t).padding(ratatui::widgets::Padding::horizontal(1)))
                .render(r, buf);
        }
    }
}

/// The review as the workbench shows it: destination, closure, the diff against the last
/// version, and whether a second build will be compared first.
pub fn review_lines(
    r: &crate::publish::review::Review,
    verify: bool,
    t: &crate::tui::Theme,
) -> Vec<Line<'static>> {
    use super::bytes;
    // Names, URLs and paths come from the catalog, the store and the NAR listing.
    let f = |s: &str| crate::text::terminal(s).into_owned();
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<9}"), t.muted),
            Span::styled(v, t.text),
        ])
    };
    let mut out = vec![
        kv("catalog", format!("{} (org {})", f(&r.catalog), f(&r.org))),
        kv("store", f(&r.store_url)),
        kv("key", f(&r.key_name)),
        kv(
            "closure",
            format!(
                "{} store path{}, {} unpacked, {} to upload",
                r.closure.len(),
                if r.closure.len() == 1 { "" } else { "s" },
                bytes(r.nar_total),
                bytes(r.upload_bytes)
            ),
        ),
    ];
    for p in &r.closure {
        let mut spans = vec![
            Span::styled(format!("  {:>10}  ", bytes(p.nar_size)), t.muted),
            Span::styled(f(&p.store_path), t.text),
        ];
        if p.in_store {
            spans.push(Span::styled(" (in the store)", t.muted));
        }
        out.push(Line::from(spans));
    }
    match &r.previous {
        None => out.push(kv("against", "nothing: the first version".into())),
        Some(p) => {
            let sign = if p.size_delta >= 0 { "+" } else { "-" };
            out.push(kv(
                "against",
                format!(
                    "{} ({}), {sign}{} unpacked",
                    f(&p.version),
                    bytes(p.nar_size),
                    bytes(p.size_delta.unsigned_abs())
                ),
            ));
            if let Some(note) = &p.note {
                out.push(Line::styled(format!("  {}", f(note)), t.muted));
            }
            if let Some(d) = &p.diff {
                if d.is_empty() {
                    out.push(Line::styled(
                        "  no file added, removed or changed in size or type",
                        t.muted,
                    ));
                }
                for e in &d.added {
                    out.push(Line::from(vec![
                        Span::styled("  + ", t.ok),
                        Span::styled(
                            format!("{} ({})", f(&e.path), f(&e.node.to_string())),
                            t.text,
                        ),
                    ]));
                }
                for e in &d.removed {
                    out.push(Line::from(vec![
                        Span::styled("  - ", t.error),
                        Span::styled(
                            format!("{} ({})", f(&e.path), f(&e.node.to_string())),
                            t.text,
                        ),
                    ]));
                }
                for c in &d.changed {
                    out.push(Line::from(vec![
                        Span::styled("  ~ ", t.warn),
                        Span::styled(
                            format!(
                                "{} ({} → {})",
                                f(&c.path),
                                f(&c.before.to_string()),
                                f(&c.after.to_string())
                            ),
                            t.text,
                        ),
                    ]));
                }
            }
        }
    }
    out.push(Line::raw(""));
    out.push(Line::from(vec![
        Span::styled(if verify { "[x] " } else { "[ ] " }, t.accent),
        Span::styled(
            "build again in a fresh clone and compare before uploading (r)",
            t.text,
        ),
    ]));
    out
}

/// The help text, one section per context (the contexts active under the popup first),
/// generated from the keymap table.
pub fn help_lines(app: &App) -> Vec<Vec<Line<'static>>> {
    let t = &app.theme;
    // What was active before the popup opened: the current tab and pane.
    let under = {
        let mut a = App::new(app.theme, app.size);
        a.tab = app.tab;
        a.publish.focus = app.publish.focus;
        a.catalog.focus = app.catalog.focus;
        a.contexts()
    };
    let mut order: Vec<Context> = under.clone();
    order.extend(Context::ALL.iter().filter(|c| !under.contains(c)));
    let key_w = app.keymap.widest_keys();
    let mut sections = Vec::new();
    for ctx in order {
        let mut lines = Vec::new();
        let mut title = vec![Span::styled(ctx.title().to_string(), t.accent)];
        if under.contains(&ctx) {
            title.push(Span::styled(" ●", t.ok));
        }
        lines.push(Line::from(title));
        for b in app.keymap.bindings(ctx) {
            let keys = keymap::keys_label(&b.keys);
            lines.push(Line::from(vec![
                Span::styled(
                    format!(" {keys:<key_w$} "),
                    if b.keys.contains(&Key::AnyChar) {
                        t.muted
                    } else {
                        t.text
                    },
                ),
                Span::styled(b.description.to_string(), t.muted),
            ]));
        }
        lines.push(Line::raw(""));
        sections.push(lines);
    }
    sections.push(vec![
        Line::styled("Mouse", t.accent),
        Line::styled("  wheel scrolls the pane under it", t.muted),
        Line::styled("  click focuses a pane, selects a row", t.muted),
    ]);
    sections
}

fn help(app: &App, area: Rect, buf: &mut Buffer, scroll: u16) {
    let t = &app.theme;
    let r = centered(
        area,
        area.width.saturating_sub(4).min(110),
        area.height.saturating_sub(2),
    );
    Clear.render(r, buf);
    let block = pane(" Keys (● active here) ", true, t)
        .title(Line::styled(" j/k scroll · Esc closes ", t.muted).right_aligned());
    let inner = block.inner(r);
    block.render(r, buf);
    if inner.area() == 0 {
        return;
    }
    let sections = help_lines(app);
    let columns: u16 = if inner.width >= 120 {
        3
    } else if inner.width >= 64 {
        2
    } else {
        1
    };
    // Flow sections into columns of roughly equal height.
    let total: usize = sections.iter().map(Vec::len).sum();
    let per = total.div_ceil(usize::from(columns));
    let mut cols: Vec<Vec<Line>> = vec![Vec::new()];
    for s in sections {
        let cur = cols.len() - 1;
        if !cols[cur].is_empty()
            && cols[cur].len() + s.len() / 2 > per
            && cols.len() < usize::from(columns)
        {
            cols.push(Vec::new());
        }
        if let Some(last) = cols.last_mut() {
            last.extend(s);
        }
    }
    let col_w = inner.width / columns;
    for (i, lines) in cols.into_iter().enumerate() {
        let x = inner.x + col_w * i as u16;
        let rect = Rect::new(x, inner.y, col_w.min(inner.right() - x), inner.height);
        Paragraph::new(lines).scroll((scroll, 0)).render(rect, buf);
    }
}
