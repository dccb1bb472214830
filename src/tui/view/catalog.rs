//! Catalog tab panes: search box, results with highlighted matches, details, readiness.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Widget};

use super::publish::check_lines;
use super::{bytes, fit, highlight, pane, spinner};
use crate::tui::app::{App, CatalogPane};

pub(super) fn search(app: &App, area: Rect, buf: &mut Buffer) {
    let c = &app.catalog;
    let t = &app.theme;
    let focused = c.focus == CatalogPane::Search;
    let count = if c.loading && c.packages.is_empty() {
        format!(" {} loading ", spinner(app.tick))
    } else if c.load_error.is_some() && c.packages.is_empty() {
        " not loaded ".to_string()
    } else {
        format!(" {}/{} ", c.index.total(), c.packages.len())
    };
    let block = pane(" Search ", focused, t).title(Line::styled(count, t.muted).right_aligned());
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.area() == 0 {
        return;
    }
    let mut spans = vec![Span::styled("› ", t.accent)];
    if focused {
        spans.extend(super::input_spans(&c.input, t));
    } else if c.query().is_empty() {
        spans.push(Span::styled("/ to search", t.muted));
    } else {
        spans.push(Span::styled(c.query().to_string(), t.text));
    }
    buf.set_line(inner.x, inner.y, &Line::from(spans), inner.width);
}

pub(super) fn results(app: &App, area: Rect, buf: &mut Buffer) {
    let c = &app.catalog;
    let t = &app.theme;
    let hits = c.index.hits();
    // The position, as the other lists show it, when the hits do not all fit.
    let rows = usize::from(area.height.saturating_sub(2));
    let title = if hits.len() > rows {
        format!(" Results {}/{} ↕ ", c.cursor.selected + 1, hits.len())
    } else {
        " Results ".to_string()
    };
    let block = pane(title, c.focus == CatalogPane::Results, t);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.area() == 0 {
        return;
    }
    if hits.is_empty() {
        let (msg, style) = match (&c.load_error, c.packages.is_empty(), c.loading) {
            (Some(e), true, _) => (format!("catalog not loaded: {e}"), t.error),
            (None, true, true) => ("loading the catalog…".to_string(), t.muted),
            (None, true, false) => ("the catalog has no packages".to_string(), t.muted),
            _ => ("no match".to_string(), t.muted),
        };
        let width = usize::from(inner.width.saturating_sub(1));
        let lines = super::wrap(&crate::text::terminal(&msg), width);
        let rows = u16::try_from(lines.len())
            .unwrap_or(u16::MAX)
            .min(inner.height);
        for (y, line) in (inner.y..inner.y + rows).zip(&lines) {
            buf.set_stringn(inner.x + 1, y, line, width, style);
        }
        // Nothing matches: the names nearest to the query, nearest first.
        let near: Vec<String> = c
            .index
            .suggestions()
            .iter()
            .filter_map(|&id| c.packages.get(id))
            .map(|p| p.reference())
            .collect();
        if !near.is_empty() && inner.height > rows + 1 {
            let top = inner.y + rows;
            buf.set_stringn(inner.x + 1, top, "did you mean", width, t.muted);
            for (y, name) in (top + 1..inner.y + inner.height).zip(&near) {
                let name = crate::text::terminal(name);
                buf.set_stringn(inner.x + 3, y, &name, width.saturating_sub(2), t.accent);
            }
        }
        return;
    }
    let ref_w = hits
        .iter()
        .skip(c.cursor.offset)
        .take(usize::from(inner.height))
        .filter_map(|h| c.packages.get(h.id))
        .map(|p| p.org.chars().count() + 1 + p.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(usize::from(inner.width) * 3 / 5);
    for (i, hit) in hits
        .iter()
        .enumerate()
        .skip(c.cursor.offset)
        .take(usize::from(inner.height))
    {
        let Some(pkg) = c.packages.get(hit.id) else {
            continue;
        };
        let y = inner.y + (i - c.cursor.offset) as u16;
        let selected = i == c.cursor.selected;
        let base = if selected { t.selection } else { t.text };
        // Secondary text keeps the selection readable.
        let dim = if selected { t.selection } else { t.muted };
        let reference = fit(&pkg.reference(), ref_w);
        let pad = ref_w.saturating_sub(reference.chars().count());
        let mut spans = vec![Span::styled(" ", base)];
        // Indices are into `org/name`, one char per index, so they apply to `reference`.
        spans.extend(highlight(
            vec![Span::styled(reference, base)],
            &hit.indices,
            t.matched,
        ));
        spans.push(Span::styled(
            format!("{:pad$} {:<8} ", "", fit(&pkg.version, 8)),
            dim,
        ));
        spans.push(Span::styled(
            crate::text::terminal(&pkg.description).into_owned(),
            dim,
        ));
        if selected {
            buf.set_style(Rect::new(inner.x, y, inner.width, 1), t.selection);
        }
        buf.set_line(inner.x, y, &Line::from(spans), inner.width);
    }
}

/// Greedy word wrap to `width` columns.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let need = cur.chars().count() + usize::from(!cur.is_empty()) + word.chars().count();
        if !cur.is_empty() && need > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// `/nix/store/<hash>-name` with the hash shortened when the whole path does not fit.
fn store_path(path: &str, width: usize) -> String {
    if path.chars().count() <= width {
        return path.to_string();
    }
    let prefix = crate::nix::STORE_PREFIX;
    match path.strip_prefix(prefix) {
        Some(rest) if rest.len() > 33 && rest.is_char_boundary(8) && rest.is_char_boundary(32) => {
            fit(&format!("{prefix}{}…{}", &rest[..8], &rest[32..]), width)
        }
        _ => fit(path, width),
    }
}

pub(super) fn details(app: &App, area: Rect, buf: &mut Buffer) {
    let c = &app.catalog;
    let t = &app.theme;
    let focused = c.focus == CatalogPane::Details;
    let Some((_, pkg)) = c.selected() else {
        pane(" Details ", focused, t).render(area, buf);
        return;
    };
    let width = usize::from(area.width.saturating_sub(2));
    let mut lines: Vec<Line> = wrap(&crate::text::terminal(&pkg.description), width.max(1))
        .into_iter()
        .map(|l| Line::styled(l, t.text))
        .collect();
    lines.push(Line::raw(""));
    match c.selected_details() {
        None => lines.push(Line::styled(
            format!("{} loading details…", spinner(app.tick)),
            t.muted,
        )),
        Some(d) => {
            let kv = |k: &str, v: String| {
                Line::from(vec![
                    Span::styled(format!("{k:<11}"), t.muted),
                    Span::styled(v, t.text),
                ])
            };
            // The picked version (what `i` and `Y` act on) in brackets; yanked ones say so.
            let picked = c.picked_version();
            let mut spans = vec![Span::styled(format!("{:<11}", "versions"), t.muted)];
            for (i, v) in d.versions.iter().enumerate() {
                if i > 0 {
                    spans.push(Span::styled(", ", t.muted));
                }
                let yanked = d.is_yanked(v);
                let style = if yanked { t.muted } else { t.text };
                let text = if picked.as_deref() == Some(v.as_str()) {
                    format!("[{v}]")
                } else {
                    v.clone()
                };
                spans.push(Span::styled(
                    text,
                    if picked.as_deref() == Some(v.as_str()) {
                        t.accent
                    } else {
                        style
                    },
                ));
                if yanked {
                    spans.push(Span::styled(" (yanked)", t.warn));
                }
            }
            lines.push(Line::from(spans));
            lines.push(kv("repository", d.repository.clone()));
            lines.push(Line::raw(""));
            lines.push(Line::styled("builds", t.accent));
            let rest = width.saturating_sub(11);
            for b in &d.builds {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {:<8} ", b.version), t.text),
                    Span::styled(format!("{:<15}", b.system), t.accent),
                    Span::styled(format!(" by {} · {}", b.publisher, b.published_at), t.muted),
                ]));
                let rev: String = b.revision.chars().take(12).collect();
                lines.push(kv("    path", store_path(&b.store_path, rest)));
                lines.push(Line::from(vec![
                    Span::styled(format!("{:<11}", "    rev"), t.muted),
                    Span::styled(rev, t.text),
                    Span::styled("  key ", t.muted),
                    Span::styled(b.key.clone(), t.text),
                    Span::styled("  NAR ", t.muted),
                    Span::styled(bytes(b.nar_size), t.text),
                ]));
                lines.push(Line::from(vec![
                    Span::styled(format!("{:<11}", "    store"), t.muted),
                    Span::styled(fit(&crate::text::terminal(&b.store_url), rest), t.muted),
                ]));
                if b.closure.len() > 1 {
                    let total: u64 = b.closure.iter().map(|(_, n)| n).sum();
                    lines.push(kv(
                        "    closure",
                        format!("{} paths, {}", b.closure.len(), bytes(total)),
                    ));
                    for (path, size) in &b.closure {
                        lines.push(Line::from(vec![
                            Span::styled(format!("{:<11}{:>9} ", "", bytes(*size)), t.muted),
                            Span::styled(store_path(path, rest.saturating_sub(10)), t.text),
                        ]));
                    }
                }
            }
        }
    }
    let visible = usize::from(area.height.saturating_sub(2));
    let scroll = super::clamp_scroll(
        c.details_scroll,
        lines.len(),
        visible,
        &c.details_scroll_max,
    );
    let mut title = vec![Span::raw(format!(" {} ", pkg.reference()))];
    if let Some(note) = super::scroll_note(scroll, lines.len(), visible) {
        title.push(Span::styled(note, t.muted));
    }
    let block = pane(Line::from(title), focused, t);
    Paragraph::new(lines)
        .block(block)
        .scroll((scroll, 0))
        .render(area, buf);
}

pub(super) fn readiness(app: &App, area: Rect, buf: &mut Buffer) {
    let c = &app.catalog;
    let t = &app.theme;
    let width = usize::from(area.width.saturating_sub(2));
    let selected = c.selected_ref();
    let lines = match c.selected_readiness() {
        // Wrapped to the panel (a hint's nix.conf lines are long); the panel scrolls.
        Some(checks) => check_lines(checks, t, Some(width), |_| None),
        None if selected.is_some() => vec![Line::styled(
            format!("{} checking…", spinner(app.tick)),
            t.muted,
        )],
        None => Vec::new(),
    };
    // The install line takes the last row.
    let install = c
        .install
        .as_ref()
        .filter(|i| Some(&i.package) == selected.as_ref());
    let inner_h = area.height.saturating_sub(2);
    let list_h = inner_h.saturating_sub(u16::from(install.is_some()));
    let scroll = super::clamp_scroll(
        c.readiness_scroll,
        lines.len(),
        usize::from(list_h),
        &c.readiness_scroll_max,
    );
    let mut title = vec![Span::raw(" Install readiness ")];
    if let Some(note) = super::scroll_note(scroll, lines.len(), usize::from(list_h)) {
        title.push(Span::styled(note, t.muted));
        title.push(Span::styled("J/K ", t.muted));
    }
    let block = pane(Line::from(title), false, t);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.area() == 0 {
        return;
    }
    let lines: Vec<Line> = lines
        .into_iter()
        .skip(usize::from(scroll))
        .take(usize::from(list_h))
        .collect();
    Paragraph::new(lines).render(
        Rect {
            height: list_h,
            ..inner
        },
        buf,
    );
    let Some(i) = install else {
        return;
    };
    let row = Rect::new(inner.x, inner.bottom() - 1, inner.width, 1);
    let w = usize::from(inner.width);
    match &i.result {
        None => match i.total {
            Some(total) if total > 0 => {
                let ratio = (i.done as f64 / total as f64).clamp(0.0, 1.0);
                let label = format!("downloading {} / {}", bytes(i.done), bytes(total));
                Gauge::default()
                    .gauge_style(t.gauge)
                    .ratio(ratio)
                    .label(Span::styled(fit(&label, w), t.text))
                    .use_unicode(true)
                    .render(row, buf);
            }
            _ => {
                buf.set_stringn(
                    row.x,
                    row.y,
                    format!("{} installing {}…", spinner(app.tick), i.package),
                    w,
                    t.warn,
                );
            }
        },
        Some(Ok(m)) => {
            let text = format!("✓ installed {}@{} as `{}`", m.package, m.version, m.id);
            buf.set_stringn(row.x, row.y, text, w, t.ok);
        }
        Some(Err(e)) => {
            buf.set_stringn(row.x, row.y, format!("✗ install failed: {e}"), w, t.error);
        }
    }
}
