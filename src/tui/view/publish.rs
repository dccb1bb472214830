//! Publish tab panes: builds list, preconditions, pipeline stepper, upload gauges, build log.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Widget, Wrap};

use super::{bytes, fit, highlight, pane, secs, spinner};
use crate::event::Stage;
use crate::git::Check;
use crate::tui::ansi;
use crate::tui::app::{App, PublishPane, PushState, StageState};
use crate::tui::layout::inner;
use crate::tui::log::Needle;
use crate::tui::model::LastResult;
use crate::tui::theme::Theme;

pub(super) fn builds(app: &App, area: Rect, buf: &mut Buffer) {
    let p = &app.publish;
    let t = &app.theme;
    // A header row takes one line of the panel.
    let rows = usize::from(area.height.saturating_sub(3));
    let title = if p.builds.len() > rows {
        format!(" Builds {}/{} ↕ ", p.cursor.selected + 1, p.builds.len())
    } else {
        " Builds ".to_string()
    };
    let block = pane(title, p.focus == PublishPane::Builds, t);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.area() == 0 {
        return;
    }
    let name_w = p
        .builds
        .iter()
        .map(|b| b.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 16);
    let ver_w = p
        .builds
        .iter()
        .map(|b| b.version.chars().count())
        .max()
        .unwrap_or(7)
        .clamp(7, 12);
    let row = |name: &str, ver: &str, res: Span<'static>, desc: &str, style: Style, dim: Style| {
        let mut spans = vec![
            Span::styled(format!(" {:<name_w$} ", fit(name, name_w)), style),
            Span::styled(format!("{:<ver_w$} ", fit(ver, ver_w)), style),
        ];
        let res_w = res.content.chars().count();
        spans.push(res);
        spans.push(Span::styled(
            format!("{:pad$} {desc}", "", pad = 10usize.saturating_sub(res_w)),
            dim,
        ));
        Line::from(spans)
    };
    let head = row(
        "NAME",
        "VERSION",
        Span::styled("RESULT", t.muted),
        "DESCRIPTION",
        t.muted,
        t.muted,
    );
    buf.set_line(inner.x, inner.y, &head, inner.width);
    if p.builds.is_empty() {
        if inner.height > 1 {
            buf.set_stringn(
                inner.x + 1,
                inner.y + 1,
                "no [build.*] in the manifest",
                usize::from(inner.width.saturating_sub(1)),
                t.muted,
            );
        }
        return;
    }
    let rows = usize::from(inner.height.saturating_sub(1));
    for (i, b) in p.builds.iter().enumerate().skip(p.cursor.offset).take(rows) {
        let y = inner.y + 1 + (i - p.cursor.offset) as u16;
        let selected = i == p.cursor.selected;
        let base = if selected { t.selection } else { t.text };
        // Secondary text keeps the selection readable.
        let dim = if selected { t.selection } else { t.muted };
        let res = match p.last_result(b) {
            Some(LastResult::Building) => Span::styled(
                format!("{} building", spinner(app.tick)),
                base.patch(t.warn),
            ),
            Some(r @ (LastResult::Published(_) | LastResult::Built(_))) => {
                Span::styled(r.label(), base.patch(t.ok))
            }
            Some(r @ LastResult::Failed(_)) => Span::styled(r.label(), base.patch(t.error)),
            Some(r) => Span::styled(r.label(), dim),
            None => Span::styled("–", dim),
        };
        let line = row(&b.name, &b.version, res, &b.description, base, dim);
        if selected {
            buf.set_style(Rect::new(inner.x, y, inner.width, 1), t.selection);
        }
        buf.set_line(inner.x, y, &line, inner.width);
    }
}

/// `✓`/`✗` lines for checks, with hints under failing ones, wrapped to `width` with hanging
/// indents (a message continues under its text, a hint under the hint's text), so nothing is
/// cut off and long paths do not break the alignment.
/// `width` `None`: one line per message and hint (the panel cuts them).
pub(super) fn check_lines(
    checks: &[Check],
    t: &Theme,
    width: Option<usize>,
    fixit: impl Fn(&Check) -> Option<String>,
) -> Vec<Line<'static>> {
    let width = width.unwrap_or(usize::MAX);
    let mut lines = Vec::new();
    for c in checks {
        let (icon, style) = match (c.ok, c.warning) {
            (true, _) => ("✓", t.ok),
            (false, true) => ("!", t.warn),
            (false, false) => ("✗", t.error),
        };
        let text_style = if c.ok { t.text } else { style };
        for (i, part) in super::wrap(&c.message, width.saturating_sub(2))
            .into_iter()
            .enumerate()
        {
            let lead = if i == 0 {
                Span::styled(format!("{icon} "), style)
            } else {
                Span::raw("  ")
            };
            lines.push(Line::from(vec![lead, Span::styled(part, text_style)]));
        }
        if !c.ok {
            if let Some(h) = &c.hint {
                for (i, part) in super::wrap(h, width.saturating_sub(8))
                    .into_iter()
                    .enumerate()
                {
                    let lead = if i == 0 {
                        Span::styled("  hint: ", t.muted)
                    } else {
                        Span::raw("        ")
                    };
                    lines.push(Line::from(vec![lead, Span::styled(part, t.warn)]));
                }
            }
            if let Some(f) = fixit(c) {
                lines.push(Line::from(Span::styled(format!("  {f}"), t.accent)));
            }
        }
    }
    lines
}

pub(super) fn checks(app: &App, area: Rect, buf: &mut Buffer) {
    let p = &app.publish;
    let t = &app.theme;
    let failing = p.failing_checks().count();
    let mut title = vec![Span::raw(" Preconditions ")];
    if p.checks_running {
        title.push(Span::styled(format!("{} ", spinner(app.tick)), t.warn));
    } else if !p.checks.is_empty() {
        title.push(if failing == 0 {
            Span::styled("all pass ", t.ok)
        } else {
            Span::styled(format!("{failing} failing "), t.error)
        });
    }
    let width = usize::from(area.width.saturating_sub(2));
    let mut lines = check_lines(&p.checks, t, Some(width), |c| {
        if c.id == crate::tui::app::publish_pushed_id() {
            Some(format!(
                "{}: push now (fix-it)",
                app.keymap.key_for(crate::tui::keymap::Command::Push)
            ))
        } else if c.id == crate::tui::app::publish_clean_id() {
            p.bump.as_ref().map(|(b, v)| {
                format!(
                    "{}: commit the bump of {b} to {v} and push (fix-it)",
                    app.keymap.key_for(crate::tui::keymap::Command::CommitBump)
                )
            })
        } else {
            None
        }
    });
    if p.checks.is_empty() && !p.checks_running {
        lines.push(Line::from(Span::styled(
            format!(
                "not evaluated yet: {} re-checks",
                app.keymap.key_for(crate::tui::keymap::Command::Recheck)
            ),
            t.muted,
        )));
    }
    match &p.push {
        PushState::Idle => {}
        PushState::Running => lines.push(Line::from(Span::styled(
            format!("{} pushing…", spinner(app.tick)),
            t.warn,
        ))),
        PushState::Done(Ok(p)) => lines.push(Line::from(Span::styled(
            format!("pushed {} to {}", p.branch, p.upstream),
            t.ok,
        ))),
        PushState::Done(Err(e)) => lines.push(Line::from(Span::styled(
            format!("push failed: {e}"),
            t.error,
        ))),
    }
    // Lines are wrapped to the width already: one line, one row.
    let visible = usize::from(area.height.saturating_sub(2));
    let scroll = super::clamp_scroll(p.checks_scroll, lines.len(), visible, &p.checks_scroll_max);
    if let Some(note) = super::scroll_note(scroll, lines.len(), visible) {
        title.push(Span::styled(note, t.muted));
    }
    let block = pane(Line::from(title), p.focus == PublishPane::Checks, t);
    Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0))
        .render(area, buf);
}

pub(super) fn stepper(app: &App, area: Rect, buf: &mut Buffer) {
    let p = &app.publish;
    let t = &app.theme;
    let title = match &p.shown {
        Some((kind, build)) => format!(" {kind} {build} "),
        None => " Pipeline ".into(),
    };
    let block = pane(title, false, t);
    let inner = block.inner(area);
    block.render(area, buf);
    for (i, stage) in Stage::ALL
        .iter()
        .enumerate()
        .take(usize::from(inner.height))
    {
        let state = &p.stages[i];
        let (icon, style, note) = match state {
            StageState::Pending => ("○".to_string(), t.muted, String::new()),
            StageState::Running { since_tick } => {
                let el = app.tick.saturating_sub(*since_tick) * app.tick_ms;
                (
                    spinner(app.tick).to_string(),
                    t.warn,
                    secs(el as f64 / 1000.0),
                )
            }
            StageState::Done { ok: true, duration } => {
                ("✓".to_string(), t.ok, secs(duration.as_secs_f64()))
            }
            StageState::Done {
                ok: false,
                duration,
            } => ("✗".to_string(), t.error, secs(duration.as_secs_f64())),
            StageState::Skipped(_) => ("–".to_string(), t.muted, "skipped".to_string()),
        };
        let name_style = if matches!(state, StageState::Pending) {
            t.muted
        } else {
            t.text
        };
        let line = Line::from(vec![
            Span::styled(format!(" {icon} "), style),
            Span::styled(format!("{:<9}", stage.name()), name_style),
            Span::styled(format!("{note:>8}"), t.muted),
        ]);
        buf.set_line(inner.x, inner.y + i as u16, &line, inner.width);
    }
}

pub(super) fn upload(app: &App, area: Rect, buf: &mut Buffer) {
    let p = &app.publish;
    let t = &app.theme;
    let block = pane(" Upload ", false, t);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.area() == 0 {
        return;
    }
    let mut y = inner.y;
    let w = usize::from(inner.width);
    match &p.upload {
        Some(u) => {
            let ratio = if u.total == 0 {
                0.0
            } else {
                (u.sent as f64 / u.total as f64).clamp(0.0, 1.0)
            };
            let label = format!(
                "{} / {}  {:.0}%",
                bytes(u.sent),
                bytes(u.total),
                ratio * 100.0
            );
            Gauge::default()
                .gauge_style(t.gauge)
                .ratio(ratio)
                .label(Span::styled(label, t.text))
                .use_unicode(true)
                .render(Rect::new(inner.x, y, inner.width, 1), buf);
            y += 1;
            if y < inner.bottom() {
                let retries = Span::styled(
                    u.retries.to_string(),
                    if u.retries > 0 { t.warn } else { t.text },
                );
                // Running: the current rate and what is left; finished: the average and the
                // time it took.
                let line = match u.elapsed {
                    Some(took) => Line::from(vec![
                        Span::styled(format!("{}/s", bytes(u.rate as u64)), t.text),
                        Span::styled(" average, took ", t.muted),
                        Span::styled(secs(took), t.text),
                        Span::styled(" retries ", t.muted),
                        retries,
                    ]),
                    None => Line::from(vec![
                        Span::styled(format!("{}/s", bytes(u.rate as u64)), t.text),
                        Span::styled(" ETA ", t.muted),
                        Span::styled(u.eta.map_or("–".to_string(), secs), t.text),
                        Span::styled(" retries ", t.muted),
                        retries,
                    ]),
                };
                buf.set_line(inner.x, y, &line, inner.width);
                y += 1;
            }
        }
        None => {
            buf.set_stringn(inner.x, y, "no upload yet", w, t.muted);
            y += 1;
        }
    }
    let mut facts: Vec<(&str, String)> = Vec::new();
    if let Some(sp) = &p.store_path {
        facts.push(("path", sp.clone()));
    }
    if let Some(n) = p.nar_size {
        facts.push(("NAR", bytes(n)));
    }
    if let Some(k) = &p.key_name {
        facts.push(("key", k.clone()));
    }
    y += 1;
    for (k, v) in facts {
        if y >= inner.bottom() {
            break;
        }
        let line = Line::from(vec![
            Span::styled(format!("{k:<5}"), t.muted),
            Span::styled(fit(&v, w.saturating_sub(5)), t.text),
        ]);
        buf.set_line(inner.x, y, &line, inner.width);
        y += 1;
    }
}

pub(super) fn log(app: &App, area: Rect, buf: &mut Buffer) {
    let p = &app.publish;
    let t = &app.theme;
    let log = &p.log;
    let h = inner(area).height;
    let top = log.view_top(h);
    let mut title = vec![Span::raw(" Build log ")];
    if let Some(s) = &log.search {
        let count = match s.count {
            (_, 0) => "no match".to_string(),
            (0, n) => format!("{n} matches"),
            (i, n) => format!("{i}/{n}"),
        };
        title.push(Span::styled(format!("/{} {count} ", s.pattern), t.warn));
    }
    let position = if log.follow {
        Span::styled(" following ", t.ok)
    } else {
        Span::styled(
            {
                let (at, of) = log.run_position(h);
                format!(" paused {at}/{of} · G follows ")
            },
            t.warn,
        )
    };
    let block = pane(Line::from(title), p.focus == PublishPane::Log, t)
        .title(Line::from(position).right_aligned());
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.area() == 0 {
        return;
    }
    if log.is_empty() {
        buf.set_stringn(
            inner.x,
            inner.y,
            format!(
                "no output yet: {} publishes, {} builds",
                app.keymap.key_for(crate::tui::keymap::Command::Publish),
                app.keymap.key_for(crate::tui::keymap::Command::BuildOnly)
            ),
            usize::from(inner.width),
            t.muted,
        );
        return;
    }
    let needle = log.search.as_ref().map(Needle::new);
    for row in 0..inner.height {
        let abs = top + u64::from(row);
        let Some(line) = log.get(abs) else { break };
        let mut spans = ansi::parse(&line.text, t.text, t.color);
        if let Some(n) = &needle {
            let plain = ansi::strip(&line.text);
            let positions: Vec<usize> = n.find_all(&plain).flat_map(|s| s..s + n.len()).collect();
            let current = log.search.as_ref().and_then(|s| s.current) == Some(abs);
            let style = if current { t.selection } else { t.matched };
            spans = highlight(spans, &positions, style);
        }
        buf.set_line(inner.x, inner.y + row, &Line::from(spans), inner.width);
    }
}
