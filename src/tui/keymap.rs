//! The one keymap table. Dispatch ([`resolve`]), the footer hints and the `?` help popup all
//! read [`KEYMAP`], so what help says is what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Where a binding applies. The active contexts form a stack (innermost first, see
/// `App::contexts`); the first context with a matching binding wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Even inside popups and text inputs.
    Always,
    /// Everywhere outside popups.
    Global,
    Publish,
    Builds,
    Checks,
    Log,
    Catalog,
    Search,
    Results,
    Details,
    Confirm,
    Review,
    Input,
    Help,
}

impl Context {
    /// Display order of the help popup.
    pub const ALL: [Context; 14] = [
        Context::Global,
        Context::Always,
        Context::Publish,
        Context::Builds,
        Context::Checks,
        Context::Log,
        Context::Catalog,
        Context::Search,
        Context::Results,
        Context::Details,
        Context::Confirm,
        Context::Review,
        Context::Input,
        Context::Help,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Context::Always => "Always",
            Context::Global => "Anywhere",
            Context::Publish => "Publish tab",
            Context::Builds => "Builds list",
            Context::Checks => "Preconditions",
            Context::Log => "Build log",
            Context::Catalog => "Catalog tab",
            Context::Search => "Search box",
            Context::Results => "Results",
            Context::Details => "Details",
            Context::Confirm => "Confirmation",
            Context::Review => "Review before upload",
            Context::Input => "Text input",
            Context::Help => "Help",
        }
    }

    /// True where unbound printable keys are typed into a text field.
    pub fn is_text(self) -> bool {
        matches!(self, Context::Search | Context::Input)
    }
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Quit,
    Help,
    TabPublish,
    TabCatalog,
    NextPane,
    PrevPane,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    /// Bottom of a list; in the log, also resumes follow mode.
    Bottom,
    Publish,
    BuildOnly,
    Cancel,
    Recheck,
    Push,
    /// The fix-it after a version edit: commit the manifest and push.
    CommitBump,
    EditVersion,
    /// Opens the log search input.
    LogSearch,
    SearchNext,
    SearchPrev,
    /// Writes the build log to a file.
    SaveLog,
    FocusSearch,
    FocusResults,
    Install,
    /// Yanks (or un-yanks) the picked version of the selected package.
    Yank,
    /// Picks the previous (older) / next (newer) version of the selected package.
    VersionOlder,
    VersionNewer,
    ReloadCatalog,
    /// In the review: build a second time and compare before uploading (toggle).
    ToggleReproducible,
    Confirm,
    Dismiss,
    Submit,
    Backspace,
    ClearInput,
    /// Deletes the word before the cursor of a text field.
    DeleteWord,
    CursorLeft,
    CursorRight,
    CursorHome,
    CursorEnd,
    /// Types a character (bound to [`Key::AnyChar`]; the table holds a placeholder char).
    Insert(char),
}

/// A key (or key pattern) in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Code(KeyCode, KeyModifiers),
    /// Any printable character without Ctrl/Alt.
    AnyChar,
}

const fn ch(c: char) -> Key {
    Key::Code(KeyCode::Char(c), KeyModifiers::NONE)
}
const fn ctrl(c: char) -> Key {
    Key::Code(KeyCode::Char(c), KeyModifiers::CONTROL)
}
const fn code(c: KeyCode) -> Key {
    Key::Code(c, KeyModifiers::NONE)
}

impl Key {
    /// How the key is written in the footer and help.
    pub fn label(&self) -> String {
        match *self {
            Key::AnyChar => "<char>".to_string(),
            Key::Code(c, m) => {
                let base = match c {
                    KeyCode::Char(' ') => "Space".to_string(),
                    KeyCode::Char(c) => c.to_string(),
                    KeyCode::Up => "↑".into(),
                    KeyCode::Down => "↓".into(),
                    KeyCode::Left => "←".into(),
                    KeyCode::Right => "→".into(),
                    KeyCode::Enter => "Enter".into(),
                    KeyCode::Esc => "Esc".into(),
                    KeyCode::Tab => "Tab".into(),
                    KeyCode::BackTab => "S-Tab".into(),
                    KeyCode::Backspace => "Bksp".into(),
                    KeyCode::PageUp => "PgUp".into(),
                    KeyCode::PageDown => "PgDn".into(),
                    KeyCode::Home => "Home".into(),
                    KeyCode::End => "End".into(),
                    other => format!("{other:?}"),
                };
                if m.contains(KeyModifiers::CONTROL) {
                    format!("^{}", base.to_uppercase())
                } else {
                    base
                }
            }
        }
    }

    fn matches(&self, code: KeyCode, mods: KeyModifiers) -> bool {
        match *self {
            Key::AnyChar => {
                matches!(code, KeyCode::Char(c) if !c.is_control())
                    && !mods.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
            }
            Key::Code(c, m) => c == code && m == mods,
        }
    }
}

/// One row of the keymap table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    pub command: Command,
    pub description: &'static str,
    pub context: Context,
    /// Shown in the footer when its context is active.
    pub footer: bool,
}

const fn b(
    context: Context,
    keys: &'static [Key],
    command: Command,
    description: &'static str,
    footer: bool,
) -> Binding {
    Binding {
        keys,
        command,
        description,
        context,
        footer,
    }
}

use Command as C;
use Context as X;

/// Every key binding of the workbench.
pub static KEYMAP: &[Binding] = &[
    b(X::Always, &[ctrl('c')], C::Quit, "quit", false),
    b(X::Global, &[ch('q')], C::Quit, "quit", true),
    b(X::Global, &[ch('?')], C::Help, "help", true),
    b(X::Global, &[ch('1')], C::TabPublish, "publish tab", false),
    b(X::Global, &[ch('2')], C::TabCatalog, "catalog tab", false),
    b(
        X::Global,
        &[code(KeyCode::Tab)],
        C::NextPane,
        "next pane",
        true,
    ),
    b(
        X::Global,
        &[code(KeyCode::BackTab)],
        C::PrevPane,
        "previous pane",
        false,
    ),
    // Publish tab, whichever pane has focus.
    b(
        X::Publish,
        &[code(KeyCode::Enter)],
        C::Publish,
        "publish selected build…",
        true,
    ),
    b(X::Publish, &[ch('b')], C::BuildOnly, "build only", true),
    b(
        X::Publish,
        &[ch('c')],
        C::Cancel,
        "cancel running job",
        true,
    ),
    b(
        X::Publish,
        &[ch('r')],
        C::Recheck,
        "re-check (with fetch)",
        true,
    ),
    b(
        X::Publish,
        &[ch('p')],
        C::Push,
        "fix-it: push current branch",
        false,
    ),
    b(
        X::Publish,
        &[ch('e')],
        C::EditVersion,
        "edit version…",
        false,
    ),
    b(
        X::Publish,
        &[ch('C')],
        C::CommitBump,
        "fix-it: commit the version bump and push…",
        false,
    ),
    b(
        X::Builds,
        &[ch('j'), code(KeyCode::Down)],
        C::Down,
        "next build",
        false,
    ),
    b(
        X::Builds,
        &[ch('k'), code(KeyCode::Up)],
        C::Up,
        "previous build",
        false,
    ),
    b(
        X::Builds,
        &[ch('g'), code(KeyCode::Home)],
        C::Top,
        "first build",
        false,
    ),
    b(
        X::Builds,
        &[ch('G'), code(KeyCode::End)],
        C::Bottom,
        "last build",
        false,
    ),
    b(
        X::Checks,
        &[ch('j'), code(KeyCode::Down)],
        C::Down,
        "scroll down",
        false,
    ),
    b(
        X::Checks,
        &[ch('k'), code(KeyCode::Up)],
        C::Up,
        "scroll up",
        false,
    ),
    b(
        X::Log,
        &[ch('j'), code(KeyCode::Down)],
        C::Down,
        "scroll down",
        false,
    ),
    b(
        X::Log,
        &[ch('k'), code(KeyCode::Up)],
        C::Up,
        "scroll up (stops follow)",
        false,
    ),
    b(
        X::Log,
        &[ctrl('d'), code(KeyCode::PageDown)],
        C::PageDown,
        "page down",
        false,
    ),
    b(
        X::Log,
        &[ctrl('u'), code(KeyCode::PageUp)],
        C::PageUp,
        "page up",
        false,
    ),
    b(
        X::Log,
        &[ch('g'), code(KeyCode::Home)],
        C::Top,
        "oldest line",
        false,
    ),
    b(
        X::Log,
        &[ch('G'), code(KeyCode::End)],
        C::Bottom,
        "follow (newest)",
        true,
    ),
    b(X::Log, &[ch('/')], C::LogSearch, "search log", true),
    b(X::Log, &[ch('n')], C::SearchNext, "next match", false),
    b(X::Log, &[ch('N')], C::SearchPrev, "previous match", false),
    b(X::Log, &[ch('w')], C::SaveLog, "write log to a file", false),
    // Catalog tab.
    b(
        X::Catalog,
        &[ctrl('r')],
        C::ReloadCatalog,
        "reload catalog",
        false,
    ),
    b(
        X::Search,
        &[Key::AnyChar],
        C::Insert(' '),
        "type to filter",
        false,
    ),
    b(
        X::Search,
        &[code(KeyCode::Backspace)],
        C::Backspace,
        "delete character",
        false,
    ),
    b(X::Search, &[ctrl('u')], C::ClearInput, "clear query", false),
    b(
        X::Search,
        &[code(KeyCode::Left)],
        C::CursorLeft,
        "cursor left",
        false,
    ),
    b(
        X::Search,
        &[code(KeyCode::Right)],
        C::CursorRight,
        "cursor right",
        false,
    ),
    b(
        X::Search,
        &[code(KeyCode::Home), ctrl('a')],
        C::CursorHome,
        "start of line",
        false,
    ),
    b(
        X::Search,
        &[code(KeyCode::End), ctrl('e')],
        C::CursorEnd,
        "end of line",
        false,
    ),
    b(X::Search, &[ctrl('w')], C::DeleteWord, "delete word", false),
    b(
        X::Search,
        &[code(KeyCode::Down), ctrl('n')],
        C::Down,
        "next result",
        true,
    ),
    b(
        X::Search,
        &[code(KeyCode::Up), ctrl('p')],
        C::Up,
        "previous result",
        true,
    ),
    b(
        X::Search,
        &[code(KeyCode::Enter), code(KeyCode::Esc)],
        C::FocusResults,
        "go to results",
        true,
    ),
    b(
        X::Results,
        &[ch('j'), code(KeyCode::Down)],
        C::Down,
        "next result",
        false,
    ),
    b(
        X::Results,
        &[ch('k'), code(KeyCode::Up)],
        C::Up,
        "previous result",
        false,
    ),
    b(
        X::Results,
        &[ctrl('d'), code(KeyCode::PageDown)],
        C::PageDown,
        "page down",
        false,
    ),
    b(
        X::Results,
        &[ctrl('u'), code(KeyCode::PageUp)],
        C::PageUp,
        "page up",
        false,
    ),
    b(
        X::Results,
        &[ch('g'), code(KeyCode::Home)],
        C::Top,
        "first result",
        false,
    ),
    b(
        X::Results,
        &[ch('G'), code(KeyCode::End)],
        C::Bottom,
        "last result",
        false,
    ),
    b(
        X::Results,
        &[ch('i'), code(KeyCode::Enter)],
        C::Install,
        "install…",
        true,
    ),
    b(X::Results, &[ch('/')], C::FocusSearch, "search", true),
    b(
        X::Results,
        &[ch('[')],
        C::VersionOlder,
        "older version",
        false,
    ),
    b(
        X::Results,
        &[ch(']')],
        C::VersionNewer,
        "newer version",
        false,
    ),
    b(
        X::Results,
        &[ch('Y')],
        C::Yank,
        "yank / un-yank version…",
        false,
    ),
    b(
        X::Details,
        &[ch('j'), code(KeyCode::Down)],
        C::Down,
        "scroll down",
        false,
    ),
    b(
        X::Details,
        &[ch('k'), code(KeyCode::Up)],
        C::Up,
        "scroll up",
        false,
    ),
    b(X::Details, &[ch('i')], C::Install, "install…", true),
    b(X::Details, &[ch('/')], C::FocusSearch, "search", true),
    b(
        X::Details,
        &[ch('[')],
        C::VersionOlder,
        "older version",
        true,
    ),
    b(
        X::Details,
        &[ch(']')],
        C::VersionNewer,
        "newer version",
        true,
    ),
    b(
        X::Details,
        &[ch('Y')],
        C::Yank,
        "yank / un-yank version…",
        true,
    ),
    // Popups.
    b(
        X::Review,
        &[ch('y'), code(KeyCode::Enter)],
        C::Confirm,
        "upload and register",
        true,
    ),
    b(
        X::Review,
        &[ch('n'), code(KeyCode::Esc)],
        C::Dismiss,
        "stop (nothing is uploaded)",
        true,
    ),
    b(
        X::Review,
        &[ch('r')],
        C::ToggleReproducible,
        "build again and compare first",
        true,
    ),
    b(
        X::Review,
        &[ch('j'), code(KeyCode::Down)],
        C::Down,
        "scroll down",
        false,
    ),
    b(
        X::Review,
        &[ch('k'), code(KeyCode::Up)],
        C::Up,
        "scroll up",
        false,
    ),
    b(
        X::Confirm,
        &[ch('y'), code(KeyCode::Enter)],
        C::Confirm,
        "confirm",
        true,
    ),
    b(
        X::Confirm,
        &[ch('n'), code(KeyCode::Esc)],
        C::Dismiss,
        "cancel",
        true,
    ),
    b(X::Input, &[code(KeyCode::Enter)], C::Submit, "accept", true),
    b(X::Input, &[code(KeyCode::Esc)], C::Dismiss, "cancel", true),
    b(
        X::Input,
        &[code(KeyCode::Backspace)],
        C::Backspace,
        "delete character",
        false,
    ),
    b(X::Input, &[ctrl('u')], C::ClearInput, "clear", false),
    b(
        X::Input,
        &[code(KeyCode::Left)],
        C::CursorLeft,
        "cursor left",
        false,
    ),
    b(
        X::Input,
        &[code(KeyCode::Right)],
        C::CursorRight,
        "cursor right",
        false,
    ),
    b(
        X::Input,
        &[code(KeyCode::Home), ctrl('a')],
        C::CursorHome,
        "start of line",
        false,
    ),
    b(
        X::Input,
        &[code(KeyCode::End), ctrl('e')],
        C::CursorEnd,
        "end of line",
        false,
    ),
    b(X::Input, &[ctrl('w')], C::DeleteWord, "delete word", false),
    b(X::Input, &[Key::AnyChar], C::Insert(' '), "type", false),
    b(
        X::Help,
        &[code(KeyCode::Esc), ch('q'), ch('?')],
        C::Dismiss,
        "close help",
        true,
    ),
    b(
        X::Help,
        &[ch('j'), code(KeyCode::Down)],
        C::Down,
        "scroll down",
        true,
    ),
    b(
        X::Help,
        &[ch('k'), code(KeyCode::Up)],
        C::Up,
        "scroll up",
        true,
    ),
];

/// Strips modifiers that are already in the key itself (Shift on a char, on BackTab).
fn normalize(ev: &KeyEvent) -> (KeyCode, KeyModifiers) {
    let mut mods = ev.modifiers;
    if matches!(ev.code, KeyCode::Char(_) | KeyCode::BackTab) {
        mods.remove(KeyModifiers::SHIFT);
    }
    (ev.code, mods)
}

/// The command `ev` runs with `stack` active (innermost context first), if any.
pub fn resolve(stack: &[Context], ev: &KeyEvent) -> Option<Command> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    let (code, mods) = normalize(ev);
    for ctx in stack {
        // Concrete keys of a context win over its AnyChar pattern.
        let bindings = || KEYMAP.iter().filter(|b| b.context == *ctx);
        let hit = bindings()
            .find(|b| {
                b.keys
                    .iter()
                    .any(|k| *k != Key::AnyChar && k.matches(code, mods))
            })
            .or_else(|| bindings().find(|b| b.keys.iter().any(|k| k.matches(code, mods))));
        if let Some(b) = hit {
            return Some(match (b.command, code) {
                (Command::Insert(_), KeyCode::Char(c)) => Command::Insert(c),
                (cmd, _) => cmd,
            });
        }
    }
    None
}

/// The bindings of one context, in table order.
pub fn bindings(ctx: Context) -> impl Iterator<Item = &'static Binding> {
    KEYMAP.iter().filter(move |b| b.context == ctx)
}

/// The footer hints for `stack`: `(keys, description)`, innermost context first.
pub fn footer(stack: &[Context]) -> Vec<(String, &'static str)> {
    stack
        .iter()
        .flat_map(|ctx| bindings(*ctx))
        .filter(|b| b.footer)
        .map(|b| (keys_label(b.keys), b.description))
        .collect()
}

/// `j/↓` for a binding's keys.
pub fn keys_label(keys: &[Key]) -> String {
    keys.iter().map(Key::label).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn no_duplicate_binding_per_context() {
        for ctx in Context::ALL {
            let mut seen = HashSet::new();
            for b in bindings(ctx) {
                for k in b.keys {
                    assert!(seen.insert(*k), "{ctx:?}: {k:?} bound twice");
                }
            }
        }
    }

    #[test]
    fn every_binding_has_a_description_and_known_context() {
        for b in KEYMAP {
            assert!(!b.description.is_empty());
            assert!(!b.keys.is_empty());
            assert!(Context::ALL.contains(&b.context));
        }
    }

    #[test]
    fn shift_is_folded_into_chars() {
        let stack = [Context::Log];
        assert_eq!(
            resolve(&stack, &key(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Command::Bottom)
        );
        assert_eq!(
            resolve(&stack, &key(KeyCode::Char('N'), KeyModifiers::SHIFT)),
            Some(Command::SearchPrev)
        );
    }

    #[test]
    fn text_contexts_type_characters_but_keep_control_keys() {
        let stack = [
            Context::Search,
            Context::Catalog,
            Context::Global,
            Context::Always,
        ];
        assert_eq!(
            resolve(&stack, &key(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(Command::Insert('q'))
        );
        assert_eq!(
            resolve(&stack, &key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Command::Quit)
        );
        assert_eq!(
            resolve(&stack, &key(KeyCode::Tab, KeyModifiers::NONE)),
            Some(Command::NextPane)
        );
    }

    #[test]
    fn releases_are_ignored() {
        let mut ev = key(KeyCode::Char('q'), KeyModifiers::NONE);
        ev.kind = KeyEventKind::Release;
        assert_eq!(resolve(&[Context::Global], &ev), None);
    }
}
