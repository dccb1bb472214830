//! A selection with a scroll offset, kept in the state so that views and mouse hit-testing
//! agree on which row is where.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListCursor {
    pub selected: usize,
    /// Index of the first visible row.
    pub offset: usize,
}

impl ListCursor {
    /// Moves by `delta` rows within `len`; returns true if the selection changed.
    pub fn move_by(&mut self, delta: isize, len: usize) -> bool {
        let target = if delta < 0 {
            self.selected.saturating_sub(delta.unsigned_abs())
        } else {
            self.selected.saturating_add(delta.unsigned_abs())
        };
        self.select(target, len)
    }

    /// Selects `i` (clamped to `len`); returns true if the selection changed.
    pub fn select(&mut self, i: usize, len: usize) -> bool {
        let i = i.min(len.saturating_sub(1));
        let changed = i != self.selected;
        self.selected = i;
        changed
    }

    /// Adjusts the offset so the selection is visible in `height` rows of a `len` list.
    pub fn scroll_into_view(&mut self, height: usize, len: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
        if height == 0 {
            return;
        }
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
        self.offset = self.offset.min(len.saturating_sub(height));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_and_scrolls() {
        let mut c = ListCursor::default();
        assert!(c.move_by(5, 10));
        c.scroll_into_view(3, 10);
        assert_eq!((c.selected, c.offset), (5, 3));
        assert!(!c.move_by(20, 10) || c.selected == 9);
        c.scroll_into_view(3, 10);
        assert_eq!((c.selected, c.offset), (9, 7));
        c.move_by(-100, 10);
        c.scroll_into_view(3, 10);
        assert_eq!((c.selected, c.offset), (0, 0));
        c.scroll_into_view(3, 0);
        assert_eq!((c.selected, c.offset), (0, 0));
    }
}
