//! Where every pane goes, as a pure function of the terminal size. The views draw into these
//! rectangles and `App::update` hit-tests mouse clicks against the same ones.

use ratatui::layout::{Constraint, Direction, Layout, Rect};

/// Rows of the pipeline panel: 7 stages + borders.
const PIPELINE_HEIGHT: u16 = 9;
/// Width of the stepper inside the pipeline panel.
const STEPPER_WIDTH: u16 = 26;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Areas {
    pub header: Rect,
    pub footer: Rect,
    pub builds: Rect,
    pub checks: Rect,
    pub stepper: Rect,
    pub upload: Rect,
    pub log: Rect,
    pub search: Rect,
    pub results: Rect,
    pub details: Rect,
    pub readiness: Rect,
}

/// The inside of a bordered block.
pub fn inner(r: Rect) -> Rect {
    Rect {
        x: r.x.saturating_add(1).min(r.right()),
        y: r.y.saturating_add(1).min(r.bottom()),
        width: r.width.saturating_sub(2),
        height: r.height.saturating_sub(2),
    }
}

fn split(dir: Direction, area: Rect, c: impl IntoIterator<Item = Constraint>) -> Vec<Rect> {
    Layout::new(dir, c).split(area).to_vec()
}

/// Lays out a `size` screen; `builds` and `readiness` are row counts the panels would like.
pub fn areas(size: Rect, builds: usize, readiness: usize) -> Areas {
    let rows = split(
        Direction::Vertical,
        size,
        [
            Constraint::Length(1),
            Constraint::Min(0),
            Constraint::Length(1),
        ],
    );
    let (header, body, footer) = (rows[0], rows[1], rows[2]);
    let cols = split(
        Direction::Horizontal,
        body,
        [Constraint::Percentage(42), Constraint::Percentage(58)],
    );
    let (left, right) = (cols[0], cols[1]);

    let want_builds = u16::try_from(builds).unwrap_or(u16::MAX).saturating_add(3);
    let builds_h = want_builds.clamp(3, (left.height / 2).max(3));
    let l = split(
        Direction::Vertical,
        left,
        [Constraint::Length(builds_h), Constraint::Min(0)],
    );
    let r = split(
        Direction::Vertical,
        right,
        [Constraint::Length(PIPELINE_HEIGHT), Constraint::Min(0)],
    );
    let top = split(
        Direction::Horizontal,
        r[0],
        [Constraint::Length(STEPPER_WIDTH), Constraint::Min(0)],
    );

    let cl = split(
        Direction::Vertical,
        left,
        [Constraint::Length(3), Constraint::Min(0)],
    );
    let want_ready = u16::try_from(readiness)
        .unwrap_or(u16::MAX)
        .saturating_add(3);
    let ready_h = want_ready.clamp(4, (right.height / 2).max(4));
    let cr = split(
        Direction::Vertical,
        right,
        [Constraint::Min(0), Constraint::Length(ready_h)],
    );

    Areas {
        header,
        footer,
        builds: l[0],
        checks: l[1],
        stepper: top[0],
        upload: top[1],
        log: r[1],
        search: cl[0],
        results: cl[1],
        details: cr[0],
        readiness: cr[1],
    }
}

/// True when `(x, y)` lies in `r`.
pub fn contains(r: Rect, x: u16, y: u16) -> bool {
    x >= r.x && x < r.right() && y >= r.y && y < r.bottom()
}

/// A `w`×`h` rectangle centred in `area`, clipped to it.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_fits_inside_the_screen() {
        for (w, h) in [(100, 30), (200, 60), (10, 5), (1, 1), (0, 0), (80, 3)] {
            let size = Rect::new(0, 0, w, h);
            let a = areas(size, 4, 6);
            for r in [
                a.header,
                a.footer,
                a.builds,
                a.checks,
                a.stepper,
                a.upload,
                a.log,
                a.search,
                a.results,
                a.details,
                a.readiness,
            ] {
                for r in [r, inner(r)] {
                    assert!(
                        r.right() <= size.right() && r.bottom() <= size.bottom(),
                        "{w}x{h}: {r:?}"
                    );
                }
            }
        }
    }
}
