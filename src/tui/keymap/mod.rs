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
    /// A failure's whole message and hint.
    Failure,
}

impl Context {
    /// Display order of the help popup.
    pub const ALL: [Context; 15] = [
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
        Context::Failure,
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
            Context::Failure => "Failure",
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
    /// Scrolls the install-readiness panel.
    ReadinessDown,
    ReadinessUp,
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
                    KeyCode::F(n) => format!("F{n}"),
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

mod default;

pub use default::KEYMAP;

/// The keymap the workbench runs with: [`KEYMAP`] with the `[keys]` overrides of the config
/// file applied. Dispatch, the footer and the help popup all read it.
#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: Vec<Bound>,
}

/// A binding of a [`Keymap`] (its keys may come from the config file).
#[derive(Debug, Clone)]
pub struct Bound {
    pub keys: Vec<Key>,
    pub command: Command,
    pub description: &'static str,
    pub context: Context,
    pub footer: bool,
}

/// The commands `[keys]` may rebind, by the name the config file uses.
pub const COMMAND_NAMES: &[(&str, Command)] = &[
    ("quit", Command::Quit),
    ("help", Command::Help),
    ("tab-publish", Command::TabPublish),
    ("tab-catalog", Command::TabCatalog),
    ("next-pane", Command::NextPane),
    ("prev-pane", Command::PrevPane),
    ("up", Command::Up),
    ("down", Command::Down),
    ("page-up", Command::PageUp),
    ("page-down", Command::PageDown),
    ("top", Command::Top),
    ("bottom", Command::Bottom),
    ("publish", Command::Publish),
    ("build-only", Command::BuildOnly),
    ("cancel", Command::Cancel),
    ("recheck", Command::Recheck),
    ("push", Command::Push),
    ("commit-bump", Command::CommitBump),
    ("edit-version", Command::EditVersion),
    ("log-search", Command::LogSearch),
    ("search-next", Command::SearchNext),
    ("search-prev", Command::SearchPrev),
    ("save-log", Command::SaveLog),
    ("focus-search", Command::FocusSearch),
    ("focus-results", Command::FocusResults),
    ("install", Command::Install),
    ("yank", Command::Yank),
    ("version-older", Command::VersionOlder),
    ("version-newer", Command::VersionNewer),
    ("readiness-down", Command::ReadinessDown),
    ("readiness-up", Command::ReadinessUp),
    ("reload-catalog", Command::ReloadCatalog),
    ("toggle-reproducible", Command::ToggleReproducible),
    ("confirm", Command::Confirm),
    ("dismiss", Command::Dismiss),
];

/// The context stacks the workbench can be in (innermost first): a key may be bound once
/// per stack, or one binding would hide another.
fn stacks() -> Vec<Vec<Context>> {
    let mut out = Vec::new();
    for tab in [Context::Publish, Context::Catalog] {
        let panes: &[Context] = if tab == Context::Publish {
            &[Context::Builds, Context::Checks, Context::Log]
        } else {
            &[Context::Search, Context::Results, Context::Details]
        };
        for pane in panes {
            out.push(vec![*pane, tab, Context::Global, Context::Always]);
        }
    }
    for popup in [
        Context::Confirm,
        Context::Review,
        Context::Input,
        Context::Help,
        Context::Failure,
    ] {
        out.push(vec![popup, Context::Always]);
    }
    out
}

/// Parses a key as written in `[keys]`: a character (`P`, `?`), `ctrl-x`, or a name (`enter`,
/// `esc`, `tab`, `backtab`, `backspace`, `space`, `up`, `down`, `left`, `right`, `home`, `end`,
/// `pgup`, `pgdn`, `delete`, `f1`…`f12`).
pub fn parse_key(text: &str) -> Result<Key, String> {
    let t = text.trim();
    let mut chars = t.chars();
    if let (Some(c), None) = (chars.next(), chars.next())
        && !c.is_control()
        && c != ' '
    {
        return Ok(ch_key(c));
    }
    let lower = t.to_ascii_lowercase();
    if let Some(rest) = lower
        .strip_prefix("ctrl-")
        .or_else(|| lower.strip_prefix("c-"))
        .or_else(|| lower.strip_prefix('^'))
    {
        let mut cs = rest.chars();
        if let (Some(c), None) = (cs.next(), cs.next())
            && c.is_ascii_alphanumeric()
        {
            return Ok(Key::Code(KeyCode::Char(c), KeyModifiers::CONTROL));
        }
        return Err(format!(
            "{text:?} is not a key: ctrl- takes one letter or digit"
        ));
    }
    let named = match lower.as_str() {
        "enter" | "return" => KeyCode::Enter,
        "esc" | "escape" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "backtab" | "s-tab" | "shift-tab" => KeyCode::BackTab,
        "backspace" | "bksp" => KeyCode::Backspace,
        "space" => KeyCode::Char(' '),
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "pgup" | "pageup" => KeyCode::PageUp,
        "pgdn" | "pagedown" => KeyCode::PageDown,
        "delete" | "del" => KeyCode::Delete,
        f if f.starts_with('f') && f[1..].parse::<u8>().is_ok_and(|n| (1..=12).contains(&n)) => {
            KeyCode::F(f[1..].parse().unwrap_or(1))
        }
        _ => {
            return Err(format!(
                "{text:?} is not a key: write one character (P), ctrl-x, or enter, esc, tab, space, up, down, left, right, home, end, pgup, pgdn, f1…f12"
            ));
        }
    };
    Ok(Key::Code(named, KeyModifiers::NONE))
}

const fn ch_key(c: char) -> Key {
    Key::Code(KeyCode::Char(c), KeyModifiers::NONE)
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap {
            bindings: KEYMAP
                .iter()
                .map(|b| Bound {
                    keys: b.keys.to_vec(),
                    command: b.command,
                    description: b.description,
                    context: b.context,
                    footer: b.footer,
                })
                .collect(),
        }
    }
}

impl Keymap {
    /// The default keymap with `overrides` (`(command name, keys, line)`) applied: each
    /// replaces the keys of every binding of that command. An unknown command, a key that is
    /// not one, or a key another binding already has where both apply, is refused with one
    /// sentence naming the entry and its line.
    pub fn with_overrides(
        overrides: &[(String, Vec<String>, Option<usize>)],
    ) -> Result<Keymap, String> {
        let mut map = Keymap::default();
        let at = |name: &str, line: Option<usize>| match line {
            Some(l) => format!("line {l}: [keys] {name}"),
            None => format!("[keys] {name}"),
        };
        let mut changed: Vec<(Command, String, Option<usize>)> = Vec::new();
        for (name, keys, line) in overrides {
            let Some((_, cmd)) = COMMAND_NAMES.iter().find(|(n, _)| n == name) else {
                return Err(format!(
                    "{}: there is no command {name:?}; the commands are {}",
                    at(name, *line),
                    COMMAND_NAMES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let parsed = keys
                .iter()
                .map(|k| parse_key(k))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", at(name, *line)))?;
            if parsed.is_empty() {
                return Err(format!("{}: give at least one key", at(name, *line)));
            }
            for b in map.bindings.iter_mut().filter(|b| b.command == *cmd) {
                b.keys.clone_from(&parsed);
            }
            changed.push((*cmd, name.clone(), *line));
        }
        // A key may do one thing wherever it is pressed.
        for stack in stacks() {
            let mut owner: Vec<(Key, &Bound)> = Vec::new();
            for ctx in &stack {
                for b in map.bindings.iter().filter(|b| b.context == *ctx) {
                    for k in b.keys.iter().filter(|k| **k != Key::AnyChar) {
                        if let Some((_, first)) = owner.iter().find(|(o, _)| o == k)
                            && first.command != b.command
                        {
                            // Name the entry of the config file that caused it.
                            let culprit = changed
                                .iter()
                                .find(|(c, _, _)| *c == b.command || *c == first.command);
                            let (name, line) = culprit
                                .map(|(_, n, l)| (n.as_str(), *l))
                                .unwrap_or(("?", None));
                            return Err(format!(
                                "{}: {} would both {} and {} in the {}",
                                at(name, line),
                                k.label(),
                                first.description,
                                b.description,
                                ctx.title()
                            ));
                        }
                        owner.push((*k, b));
                    }
                }
            }
        }
        Ok(map)
    }

    /// The command `ev` runs with `stack` active (innermost context first), if any.
    pub fn resolve(&self, stack: &[Context], ev: &KeyEvent) -> Option<Command> {
        if ev.kind == KeyEventKind::Release {
            return None;
        }
        let (code, mods) = normalize(ev);
        for ctx in stack {
            // Concrete keys of a context win over its AnyChar pattern.
            let bindings = || self.bindings.iter().filter(|b| b.context == *ctx);
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
    pub fn bindings(&self, ctx: Context) -> impl Iterator<Item = &Bound> {
        self.bindings.iter().filter(move |b| b.context == ctx)
    }

    /// The footer hints for `stack`: `(keys, description)`, innermost context first.
    ///
    /// Only keys that reach their binding are shown: a key an inner context binds, or a plain
    /// character an inner text field types (`q` in the search box), is left out, and so is a
    /// binding left with no key.
    pub fn footer(&self, stack: &[Context]) -> Vec<(String, &'static str)> {
        self.footer_entries(stack)
            .into_iter()
            .map(|(keys, desc, _)| (keys, desc))
            .collect()
    }

    /// [`Keymap::footer`] with each entry's command.
    pub fn footer_entries(&self, stack: &[Context]) -> Vec<(String, &'static str, Command)> {
        let mut out = Vec::new();
        for (i, ctx) in stack.iter().enumerate() {
            for b in self.bindings(*ctx).filter(|b| b.footer) {
                let keys: Vec<Key> = b
                    .keys
                    .iter()
                    .copied()
                    .filter(|k| self.reaches(&stack[..i], k))
                    .collect();
                if !keys.is_empty() {
                    out.push((keys_label(&keys), b.description, b.command));
                }
            }
        }
        out
    }

    /// Whether `key` gets past the contexts `inner` (none binds it, no text field types it).
    fn reaches(&self, inner: &[Context], key: &Key) -> bool {
        let Key::Code(code, mods) = *key else {
            return true;
        };
        !inner.iter().any(|ctx| {
            self.bindings(*ctx)
                .any(|b| b.keys.iter().any(|k| k.matches(code, mods)))
        })
    }

    /// How `cmd`'s first key is written (`p`), for hints in panels; `?` when unbound.
    pub fn key_for(&self, cmd: Command) -> String {
        self.bindings
            .iter()
            .find(|b| b.command == cmd)
            .and_then(|b| b.keys.first())
            .map_or_else(|| "?".to_string(), Key::label)
    }

    /// The widest keys label (for the help popup's column).
    pub fn widest_keys(&self) -> usize {
        self.bindings
            .iter()
            .map(|b| keys_label(&b.keys).chars().count())
            .max()
            .unwrap_or(8)
    }
}

/// Strips modifiers that are already in the key itself (Shift on a char, on BackTab).
fn normalize(ev: &KeyEvent) -> (KeyCode, KeyModifiers) {
    let mut mods = ev.modifiers;
    if matches!(ev.code, KeyCode::Char(_) | KeyCode::BackTab) {
        mods.remove(KeyModifiers::SHIFT);
    }
    (ev.code, mods)
}

/// The command `ev` runs with `stack` active in the default keymap.
pub fn resolve(stack: &[Context], ev: &KeyEvent) -> Option<Command> {
    DEFAULT.resolve(stack, ev)
}

static DEFAULT: std::sync::LazyLock<Keymap> = std::sync::LazyLock::new(Keymap::default);

/// The bindings of one context, in table order.
pub fn bindings(ctx: Context) -> impl Iterator<Item = &'static Binding> {
    KEYMAP.iter().filter(move |b| b.context == ctx)
}

/// The footer hints for `stack` in the default keymap.
pub fn footer(stack: &[Context]) -> Vec<(String, &'static str)> {
    DEFAULT.footer(stack)
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

    fn ov(name: &str, keys: &[&str], line: usize) -> (String, Vec<String>, Option<usize>) {
        (
            name.to_string(),
            keys.iter().map(|k| k.to_string()).collect(),
            Some(line),
        )
    }

    #[test]
    fn keys_parse_as_written_in_the_config() {
        assert_eq!(parse_key("P").unwrap(), ch_key('P'));
        assert_eq!(parse_key("?").unwrap(), ch_key('?'));
        assert_eq!(
            parse_key("ctrl-p").unwrap(),
            Key::Code(KeyCode::Char('p'), KeyModifiers::CONTROL)
        );
        assert_eq!(
            parse_key("Enter").unwrap(),
            Key::Code(KeyCode::Enter, KeyModifiers::NONE)
        );
        assert_eq!(
            parse_key("f5").unwrap(),
            Key::Code(KeyCode::F(5), KeyModifiers::NONE)
        );
        for bad in ["", "ctrl-", "ctrl-pp", "hyper-x", "f13", "pp"] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overrides_rebind_and_the_footer_follows() {
        let map = Keymap::with_overrides(&[ov("publish", &["P"], 3)]).unwrap();
        let stack = [
            Context::Builds,
            Context::Publish,
            Context::Global,
            Context::Always,
        ];
        assert_eq!(
            map.resolve(&stack, &key(KeyCode::Char('P'), KeyModifiers::SHIFT)),
            Some(Command::Publish)
        );
        assert_eq!(
            map.resolve(&stack, &key(KeyCode::Enter, KeyModifiers::NONE)),
            None,
            "the old key is gone"
        );
        assert!(
            map.footer(&stack)
                .iter()
                .any(|(k, d)| k == "P" && d.starts_with("publish"))
        );
        assert_eq!(map.key_for(Command::Publish), "P");
        // Rebinding a command bound in several contexts rebinds it everywhere.
        let map = Keymap::with_overrides(&[ov("down", &["n", "down"], 4)]);
        assert!(map.is_err(), "n is search-next in the log: {map:?}");
        let map = Keymap::with_overrides(&[ov("down", &["ctrl-n", "down"], 4)]).unwrap();
        for ctx in [Context::Builds, Context::Log, Context::Results] {
            assert_eq!(
                map.resolve(&[ctx], &key(KeyCode::Char('n'), KeyModifiers::CONTROL)),
                Some(Command::Down)
            );
        }
    }

    #[test]
    fn bad_overrides_name_the_entry_and_its_line() {
        let e = Keymap::with_overrides(&[ov("pubish", &["P"], 7)]).unwrap_err();
        assert!(
            e.starts_with("line 7: [keys] pubish: there is no command"),
            "{e}"
        );
        assert!(e.contains("publish"), "{e}");
        let e = Keymap::with_overrides(&[ov("publish", &["hyper-p"], 8)]).unwrap_err();
        assert!(
            e.starts_with("line 8: [keys] publish: \"hyper-p\" is not a key"),
            "{e}"
        );
        let e = Keymap::with_overrides(&[ov("publish", &["b"], 9)]).unwrap_err();
        assert!(e.starts_with("line 9: [keys] publish: b would both"), "{e}");
        assert!(e.contains("build only"), "{e}");
    }
}
