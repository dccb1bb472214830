//! A one-line text field: its text and a cursor, edited by the keymap's commands (type,
//! ←/→, Home/End, Backspace, Ctrl-W, Ctrl-U). Used by the input popup and the catalog's search
//! box; pure data, no I/O.

use super::keymap::Command;

/// Text and a cursor (a char index, `0..=len`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextInput {
    value: String,
    cursor: usize,
}

impl TextInput {
    /// `value` with the cursor at its end.
    pub fn new(value: impl Into<String>) -> TextInput {
        let value = value.into();
        TextInput {
            cursor: value.chars().count(),
            value,
        }
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// The cursor as a char index.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The text before the cursor, the char under it (if any) and the text after it.
    pub fn split(&self) -> (&str, Option<char>, &str) {
        let at = self.byte(self.cursor);
        let mut rest = self.value[at..].chars();
        let under = rest.next();
        (&self.value[..at], under, rest.as_str())
    }

    fn byte(&self, chars: usize) -> usize {
        self.value
            .char_indices()
            .nth(chars)
            .map_or(self.value.len(), |(i, _)| i)
    }

    /// Applies an editing command; whether it was one (the text or the cursor may move).
    pub fn edit(&mut self, cmd: &Command) -> bool {
        let len = self.value.chars().count();
        match cmd {
            Command::Insert(c) => {
                let at = self.byte(self.cursor);
                self.value.insert(at, *c);
                self.cursor += 1;
            }
            Command::Backspace => {
                if self.cursor > 0 {
                    let at = self.byte(self.cursor - 1);
                    self.value.remove(at);
                    self.cursor -= 1;
                }
            }
            Command::DeleteWord => {
                // Back over spaces, then over the word before them (as in a shell).
                let chars: Vec<char> = self.value.chars().collect();
                let mut start = self.cursor;
                while start > 0 && chars[start - 1].is_whitespace() {
                    start -= 1;
                }
                while start > 0 && !chars[start - 1].is_whitespace() {
                    start -= 1;
                }
                let (from, to) = (self.byte(start), self.byte(self.cursor));
                self.value.replace_range(from..to, "");
                self.cursor = start;
            }
            Command::ClearInput => {
                self.value.clear();
                self.cursor = 0;
            }
            Command::CursorLeft => self.cursor = self.cursor.saturating_sub(1),
            Command::CursorRight => self.cursor = (self.cursor + 1).min(len),
            Command::CursorHome => self.cursor = 0,
            Command::CursorEnd => self.cursor = len,
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(s: &str) -> TextInput {
        let mut t = TextInput::default();
        for c in s.chars() {
            t.edit(&Command::Insert(c));
        }
        t
    }

    #[test]
    fn cursor_moves_and_edits_where_it_is() {
        let mut t = typed("helo");
        t.edit(&Command::CursorLeft);
        t.edit(&Command::Insert('l'));
        assert_eq!((t.value(), t.cursor()), ("hello", 4));
        t.edit(&Command::CursorHome);
        t.edit(&Command::Backspace);
        assert_eq!(t.value(), "hello", "nothing before the start");
        t.edit(&Command::Insert('>'));
        t.edit(&Command::CursorEnd);
        t.edit(&Command::CursorRight);
        assert_eq!((t.value(), t.cursor()), (">hello", 6));
        assert_eq!(t.split(), (">hello", None, ""));
        t.edit(&Command::CursorLeft);
        assert_eq!(t.split(), (">hell", Some('o'), ""));
    }

    #[test]
    fn ctrl_w_deletes_the_word_before_the_cursor_and_unicode_is_one_char() {
        let mut t = typed("myorg/héllo  wörld  ");
        t.edit(&Command::DeleteWord);
        assert_eq!(t.value(), "myorg/héllo  ");
        t.edit(&Command::DeleteWord);
        assert_eq!(t.value(), "");
        let mut t = typed("ab cd ef");
        for _ in 0..3 {
            t.edit(&Command::CursorLeft);
        }
        t.edit(&Command::DeleteWord);
        assert_eq!((t.value(), t.cursor()), ("ab  ef", 3));
        let mut t = typed("żółw");
        t.edit(&Command::CursorLeft);
        t.edit(&Command::Backspace);
        assert_eq!(t.value(), "żów");
        assert!(!t.edit(&Command::Submit), "not an editing command");
    }
}
