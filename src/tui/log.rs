//! The build log: a bounded ring buffer of raw lines (ANSI kept), follow mode, and search.
//!
//! Lines are addressed by absolute index (the n-th line ever pushed), so scroll positions
//! and search hits stay put while old lines are evicted.

use std::collections::VecDeque;

use super::ansi;

/// Lines kept by default; older ones are dropped.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Longer lines are cut (a minified bundle on one line must not stall rendering).
pub const MAX_LINE_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub text: String,
    pub stderr: bool,
}

/// An active `/` search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSearch {
    pub pattern: String,
    /// The line of the current match.
    pub current: Option<u64>,
    /// The current match's place among all matching lines (1-based) and their number, as
    /// of the last search step.
    pub count: (usize, usize),
    /// The last step passed the end (or, backwards, the start) and went on from the other.
    pub wrapped: bool,
}

impl LogSearch {
    /// Smart case: case-insensitive unless the pattern has an upper-case letter.
    pub fn ignore_case(&self) -> bool {
        !self.pattern.chars().any(char::is_uppercase)
    }
}

#[derive(Debug, Clone)]
pub struct LogBuffer {
    lines: VecDeque<LogLine>,
    capacity: usize,
    /// Absolute index of `lines[0]`.
    first: u64,
    /// Follow the newest line.
    pub follow: bool,
    /// Absolute index of the top visible line when not following.
    top: u64,
    pub search: Option<LogSearch>,
    /// Absolute index of the current run's first line (lines of earlier runs are gone).
    run_start: u64,
}

impl Default for LogBuffer {
    fn default() -> Self {
        LogBuffer::with_capacity(DEFAULT_CAPACITY)
    }
}

impl LogBuffer {
    pub fn with_capacity(capacity: usize) -> LogBuffer {
        LogBuffer {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            first: 0,
            follow: true,
            top: 0,
            search: None,
            run_start: 0,
        }
    }

    pub fn push(&mut self, mut text: String, stderr: bool) {
        if text.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
            self.first += 1;
        }
        self.lines.push_back(LogLine { text, stderr });
    }

    /// Empties the log (a new job starts) and resumes following.
    pub fn clear(&mut self) {
        self.first = self.end();
        self.run_start = self.first;
        self.lines.clear();
        self.follow = true;
        self.top = self.first;
        // A search of the old lines says nothing of the new ones: its label goes too.
        self.search = None;
    }

    /// Where the view is in the current run: the last visible line and the run's line
    /// count, both counted from the run's first line (1-based line, 0 when empty).
    pub fn run_position(&self, height: u16) -> (u64, u64) {
        let end = self.end() - self.run_start;
        let bottom = (self.view_top(height) + u64::from(height)).min(self.end());
        (bottom.saturating_sub(self.run_start).min(end), end)
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Absolute index of the oldest kept line.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// One past the absolute index of the newest line.
    pub fn end(&self) -> u64 {
        self.first + self.lines.len() as u64
    }

    pub fn get(&self, abs: u64) -> Option<&LogLine> {
        let i = usize::try_from(abs.checked_sub(self.first)?).ok()?;
        self.lines.get(i)
    }

    /// The highest top line that still fills a view of `height`.
    fn max_top(&self, height: u16) -> u64 {
        self.end().saturating_sub(u64::from(height)).max(self.first)
    }

    /// The absolute index of the top line of a view `height` lines high.
    pub fn view_top(&self, height: u16) -> u64 {
        if self.follow {
            self.max_top(height)
        } else {
            self.top.clamp(self.first, self.max_top(height))
        }
    }

    /// Scrolls towards older lines; stops following.
    pub fn scroll_up(&mut self, n: u64, height: u16) {
        let top = self.view_top(height);
        self.follow = false;
        self.top = top.saturating_sub(n).max(self.first);
    }

    /// Scrolls towards newer lines; reaching the bottom resumes following.
    pub fn scroll_down(&mut self, n: u64, height: u16) {
        if self.follow {
            return;
        }
        let top = self.view_top(height).saturating_add(n);
        if top >= self.max_top(height) {
            self.follow = true;
        } else {
            self.top = top;
        }
    }

    /// Jumps to the oldest line (stops following).
    pub fn scroll_to_first(&mut self) {
        self.follow = false;
        self.top = self.first;
    }

    /// `G`: back to the newest line, following.
    pub fn resume_follow(&mut self) {
        self.follow = true;
    }

    /// Puts `abs` in view (a third from the top) unless it already is.
    fn reveal(&mut self, abs: u64, height: u16) {
        let top = self.view_top(height);
        if abs >= top && abs < top + u64::from(height) {
            return;
        }
        self.follow = false;
        self.top = abs.saturating_sub(u64::from(height / 3)).max(self.first);
    }

    /// Starts a search for `pattern` from the top of the view; returns the hit.
    pub fn start_search(&mut self, pattern: String, height: u16) -> Option<u64> {
        if pattern.is_empty() {
            self.search = None;
            return None;
        }
        let from = self.view_top(height);
        self.search = Some(LogSearch {
            pattern,
            current: None,
            count: (0, 0),
            wrapped: false,
        });
        let hit = self.find_from(from, true, height);
        // Starting from the view's top is not a wrap, wherever the first match is.
        if let Some(s) = &mut self.search {
            s.wrapped = false;
        }
        hit
    }

    /// `n` (`forward`) / `N`: the next/previous match after the current one, wrapping.
    pub fn search_step(&mut self, forward: bool, height: u16) -> Option<u64> {
        let from = match self.search.as_ref()?.current {
            Some(cur) if forward => cur + 1,
            Some(cur) => cur.checked_sub(1).unwrap_or(u64::MAX),
            None => self.view_top(height),
        };
        self.find_from(from, forward, height)
    }

    fn find_from(&mut self, from: u64, forward: bool, height: u16) -> Option<u64> {
        let search = self.search.as_ref()?;
        let (first, end) = (self.first, self.end());
        if first == end {
            return None;
        }
        let n = end - first;
        let start = from.clamp(first, end - 1) - first;
        let start = if from >= end && forward { 0 } else { start };
        let needle = Needle::new(search);
        let hit = (0..n)
            .map(|k| {
                if forward {
                    (start + k) % n
                } else {
                    (start + n - k) % n
                }
            })
            .map(|i| first + i)
            .find(|abs| self.get(*abs).is_some_and(|l| needle.is_in_line(&l.text)));
        // Every matching line, to place the current one among them.
        let (mut place, mut total) = (0, 0);
        for abs in first..end {
            if self.get(abs).is_some_and(|l| needle.is_in_line(&l.text)) {
                total += 1;
                if Some(abs) == hit {
                    place = total;
                }
            }
        }
        // Wrapped: the hit is not past the previous match in the direction of travel (or,
        // with none yet, not past where the search began).
        let prev = search.current;
        let wrapped = hit.is_some_and(|h| match (prev, forward) {
            (Some(p), true) => h <= p,
            (Some(p), false) => h >= p,
            (None, true) => h < from,
            (None, false) => h > from,
        });
        if let Some(s) = &mut self.search {
            s.current = hit;
            s.count = (place, total);
            s.wrapped = wrapped;
        }
        if let Some(abs) = hit {
            self.reveal(abs, height);
        }
        hit
    }
}

/// A search pattern ready for matching (lower-cased for case-insensitive search).
pub struct Needle {
    chars: Vec<char>,
    ignore_case: bool,
}

fn fold(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

impl Needle {
    pub fn new(search: &LogSearch) -> Needle {
        let ignore_case = search.ignore_case();
        let chars = search
            .pattern
            .chars()
            .map(|c| if ignore_case { fold(c) } else { c })
            .collect();
        Needle { chars, ignore_case }
    }

    /// Char index of the first match in `hay`.
    pub fn find(&self, hay: &str) -> Option<usize> {
        self.find_all(hay).next()
    }

    /// True when the visible text of the raw log `line` contains the needle. Fast path for
    /// ASCII needles: no allocation unless the line has escapes, tabs or carriage returns.
    pub fn is_in_line(&self, line: &str) -> bool {
        if self.chars.is_empty() {
            return false;
        }
        if !self.chars.iter().all(char::is_ascii) {
            return self.find(&ansi::strip(line)).is_some();
        }
        let needle: Vec<u8> = self.chars.iter().map(|&c| c as u8).collect();
        let plain = line.bytes().all(|b| b != 0x1b && b != b'\t' && b != b'\r');
        let stripped;
        let hay = if plain {
            line.as_bytes()
        } else {
            stripped = ansi::strip(line);
            stripped.as_bytes()
        };
        if self.ignore_case {
            hay.windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(&needle))
        } else {
            hay.windows(needle.len()).any(|w| w == needle.as_slice())
        }
    }

    /// Char indices of all non-overlapping matches in `hay`.
    pub fn find_all<'a>(&'a self, hay: &str) -> impl Iterator<Item = usize> + 'a {
        let hay: Vec<char> = hay
            .chars()
            .map(|c| if self.ignore_case { fold(c) } else { c })
            .collect();
        let m = self.chars.len();
        let mut i = 0;
        std::iter::from_fn(move || {
            if m == 0 {
                return None;
            }
            while i + m <= hay.len() {
                if hay[i..i + m] == self.chars[..] {
                    let at = i;
                    i += m;
                    return Some(at);
                }
                i += 1;
            }
            None
        })
    }

    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(n: usize, cap: usize) -> LogBuffer {
        let mut log = LogBuffer::with_capacity(cap);
        for i in 0..n {
            log.push(format!("line {i}"), false);
        }
        log
    }

    #[test]
    fn ring_buffer_is_bounded() {
        let log = filled(1000, 100);
        assert_eq!(log.len(), 100);
        assert_eq!(log.first(), 900);
        assert_eq!(log.get(900).map(|l| l.text.as_str()), Some("line 900"));
        assert!(log.get(899).is_none());
    }

    #[test]
    fn follow_and_scroll() {
        let mut log = filled(100, 1000);
        assert_eq!(log.view_top(10), 90);
        log.scroll_up(5, 10);
        assert!(!log.follow);
        assert_eq!(log.view_top(10), 85);
        log.push("new".into(), false);
        assert_eq!(log.view_top(10), 85, "view stays put while not following");
        log.scroll_down(100, 10);
        assert!(log.follow, "reaching the bottom resumes following");
        log.scroll_to_first();
        assert_eq!(log.view_top(10), 0);
        log.resume_follow();
        assert_eq!(log.view_top(10), 91);
    }

    #[test]
    fn eviction_clamps_the_view() {
        let mut log = filled(100, 100);
        log.scroll_to_first();
        for i in 0..50 {
            log.push(format!("more {i}"), false);
        }
        assert_eq!(log.view_top(10), 50);
    }

    #[test]
    fn search_wraps_both_ways_with_smart_case() {
        let mut log = LogBuffer::with_capacity(100);
        for l in ["a", "Error one", "b", "\x1b[31merror\x1b[0m two", "c"] {
            log.push(l.into(), false);
        }
        log.scroll_to_first();
        let state = |log: &LogBuffer| {
            let s = log.search.as_ref().unwrap();
            (s.count, s.wrapped)
        };
        assert_eq!(log.start_search("error".into(), 2), Some(1));
        assert_eq!(state(&log), ((1, 2), false));
        assert_eq!(log.search_step(true, 2), Some(3));
        assert_eq!(state(&log), ((2, 2), false));
        assert_eq!(log.search_step(true, 2), Some(1), "wraps");
        assert_eq!(state(&log), ((1, 2), true));
        assert_eq!(log.search_step(false, 2), Some(3), "wraps backwards");
        assert_eq!(state(&log), ((2, 2), true));
        assert_eq!(log.search_step(false, 2), Some(1));
        assert_eq!(state(&log), ((1, 2), false));
        log.scroll_to_first();
        assert_eq!(log.start_search("Error".into(), 2), Some(1));
        assert_eq!(log.search_step(true, 2), Some(1), "case-sensitive");
        assert_eq!(
            state(&log),
            ((1, 1), true),
            "one match: every step goes round"
        );
        assert_eq!(log.start_search("nope".into(), 2), None);
        assert_eq!(state(&log), ((0, 0), false));
        // A new run's log drops the search and its label.
        log.start_search("error".into(), 2);
        log.clear();
        assert!(log.search.is_none());
    }

    #[test]
    fn long_lines_are_cut() {
        let mut log = LogBuffer::with_capacity(10);
        log.push("é".repeat(MAX_LINE_BYTES), false);
        assert!(
            log.get(0)
                .is_some_and(|l| l.text.len() <= MAX_LINE_BYTES + 3)
        );
    }

    #[test]
    fn needle_finds_all() {
        let n = Needle::new(&LogSearch {
            count: (0, 0),
            wrapped: false,
            pattern: "ab".into(),
            current: None,
        });
        assert_eq!(n.find_all("xABabab").collect::<Vec<_>>(), vec![1, 3, 5]);
        assert!(n.is_in_line("\x1b[1mA\x1b[0mB"));
        assert!(!n.is_in_line("a\x1b[0mx b"));
        assert!(n.is_in_line("zzAb"));
    }
}
