//! State and behaviour of the Catalog tab: search, results, details, readiness, install.

use std::collections::HashMap;

use super::{Level, Pending, Popup};
use crate::catalog::search::{Filter, Hit};
use crate::event::Failure;
use crate::git::Check;
use crate::install::Installed;
use crate::tui::action::{Action, Effect};
use crate::tui::keymap::{Command, Context};
use crate::tui::layout::{self, Areas};
use crate::tui::list::ListCursor;
use crate::tui::model::{PackageDetails, PackageList, PackageRow};

type Status = Option<super::Status>;

fn status(level: Level, text: impl Into<String>) -> Status {
    Some(super::Status::new(level, text))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatalogPane {
    #[default]
    Search,
    Results,
    Details,
}

impl CatalogPane {
    pub fn context(self) -> Context {
        match self {
            CatalogPane::Search => Context::Search,
            CatalogPane::Results => Context::Results,
            CatalogPane::Details => Context::Details,
        }
    }

    fn next(self, forward: bool) -> CatalogPane {
        use CatalogPane::*;
        match (self, forward) {
            (Search, true) | (Details, false) => Results,
            (Results, true) | (Search, false) => Details,
            (Details, true) | (Results, false) => Search,
        }
    }
}

/// A running or finished install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallState {
    pub package: String,
    /// Bytes downloaded so far, out of `total` when known.
    pub done: u64,
    pub total: Option<u64>,
    /// `None` while running.
    pub result: Option<Result<Installed, Failure>>,
}

#[derive(Debug, Default)]
pub struct CatalogState {
    pub focus: CatalogPane,
    pub packages: PackageList,
    pub etag: Option<String>,
    pub loading: bool,
    /// Why the last load of the package list failed (cleared by the next list).
    pub load_error: Option<String>,
    /// The catalog search over `packages`, holding the current query's hits.
    pub index: Filter,
    /// The search box: the query as typed and its cursor.
    pub input: crate::tui::input::TextInput,
    pub cursor: ListCursor,
    pub details: HashMap<String, PackageDetails>,
    pub readiness: HashMap<String, Vec<Check>>,
    /// Tick at which to request details of the selection (debounced).
    pub details_due: Option<u64>,
    pub details_scroll: u16,
    /// The largest useful `details_scroll`, as the last draw found it.
    pub details_scroll_max: std::cell::Cell<u16>,
    /// Scroll of the readiness panel (J/K, the wheel).
    pub readiness_scroll: u16,
    pub readiness_scroll_max: std::cell::Cell<u16>,
    pub install: Option<InstallState>,
    /// The version picked with `[` / `]` for the selected package (`None`: the latest not
    /// yanked, what an unpinned install takes).
    pub picked: Option<String>,
    /// The next package list is a refresh after a change made here (a yank): it keeps the
    /// status line that reported the change.
    pub quiet_reload: bool,
}

impl CatalogState {
    pub fn query(&self) -> &str {
        self.index.query()
    }

    /// The selected hit and its package.
    pub fn selected(&self) -> Option<(&Hit, PackageRow)> {
        let hit = self.index.hits().get(self.cursor.selected)?;
        Some((hit, self.packages.get(hit.id)?))
    }

    pub fn selected_ref(&self) -> Option<String> {
        self.selected().map(|(_, p)| p.reference())
    }

    pub fn selected_details(&self) -> Option<&PackageDetails> {
        self.details.get(&self.selected_ref()?)
    }

    pub fn selected_readiness(&self) -> Option<&Vec<Check>> {
        self.readiness.get(&self.readiness_target()?)
    }

    /// What readiness is checked for, and install installs: `org/name@picked` when a
    /// version is picked, else `org/name` (the latest not yanked, unpinned).
    pub fn readiness_target(&self) -> Option<String> {
        let reference = self.selected_ref()?;
        Some(match &self.picked {
            Some(v) => format!("{reference}@{v}"),
            None => reference,
        })
    }

    pub fn animating(&self) -> bool {
        self.loading || self.install.as_ref().is_some_and(|i| i.result.is_none())
    }

    /// The version install and yank act on: the picked one, else the latest not yanked.
    pub fn picked_version(&self) -> Option<String> {
        if let Some(v) = &self.picked {
            return Some(v.clone());
        }
        match self.selected_details() {
            Some(d) => d.latest().map(str::to_string),
            None => self.selected().map(|(_, p)| p.version.clone()),
        }
    }

    /// Moves the picked version one older (`older`) or newer, within the known versions.
    fn pick_version(&mut self, older: bool) -> (Vec<Effect>, Status) {
        let st = self.pick_version_only(older);
        // Readiness is of what would be installed: the picked version.
        let effects = match self.readiness_target() {
            Some(t) if !self.readiness.contains_key(&t) => vec![Effect::Readiness(t)],
            _ => Vec::new(),
        };
        (effects, st)
    }

    fn pick_version_only(&mut self, older: bool) -> Status {
        let Some(d) = self.selected_details() else {
            return status(Level::Warn, "the versions are still loading");
        };
        let versions = d.versions.clone();
        let yanked = d.yanked.clone();
        let latest = d.latest().map(str::to_string);
        let current = self.picked_version();
        let at = current
            .as_ref()
            .and_then(|c| versions.iter().position(|v| v == c))
            .unwrap_or(0);
        // Newest first: older is further down the list.
        let next = if older {
            (at + 1).min(versions.len().saturating_sub(1))
        } else {
            at.saturating_sub(1)
        };
        let v = versions.get(next)?;
        self.picked = (Some(v) != latest.as_ref()).then(|| v.clone());
        let what = match (&self.picked, yanked.contains(v)) {
            (None, _) => "the latest, installed unpinned".to_string(),
            (Some(_), true) => "yanked; an install pins it".to_string(),
            (Some(_), false) => "an install pins it".to_string(),
        };
        status(Level::Info, format!("version {v} ({what})"))
    }

    fn selection_changed(&mut self, tick: u64) {
        self.picked = None;
        self.details_scroll = 0;
        self.readiness_scroll = 0;
        self.details_due = Some(tick + super::DEBOUNCE_TICKS);
    }

    pub fn on_tick(&mut self, tick: u64) -> Vec<Effect> {
        match self.details_due {
            Some(due) if due <= tick => {
                self.details_due = None;
                let Some(pkg) = self.selected_ref() else {
                    return Vec::new();
                };
                let mut effects = Vec::new();
                if !self.details.contains_key(&pkg) {
                    effects.push(Effect::PackageDetails(pkg.clone()));
                }
                if !self.readiness.contains_key(&pkg) {
                    effects.push(Effect::Readiness(pkg));
                }
                effects
            }
            _ => Vec::new(),
        }
    }

    fn set_query(&mut self, query: &str, tick: u64) {
        if self.input.value() != query {
            self.input = crate::tui::input::TextInput::new(query);
        }
        let before = self.selected_ref();
        self.index.set_query(query);
        self.cursor = ListCursor::default();
        if self.selected_ref() != before {
            self.selection_changed(tick);
        }
    }

    pub fn start_install(&mut self, package: String) -> Vec<Effect> {
        self.install = Some(InstallState {
            package: package.clone(),
            done: 0,
            total: None,
            result: None,
        });
        vec![Effect::Install(package)]
    }

    fn move_cursor(&mut self, cmd: Command, tick: u64) {
        let n = self.index.hits().len();
        let changed = match cmd {
            Command::Up => self.cursor.move_by(-1, n),
            Command::Down => self.cursor.move_by(1, n),
            Command::PageUp => self.cursor.move_by(-10, n),
            Command::PageDown => self.cursor.move_by(10, n),
            Command::Top => self.cursor.select(0, n),
            Command::Bottom => self.cursor.select(usize::MAX, n),
            _ => false,
        };
        if changed {
            self.selection_changed(tick);
        }
    }

    pub fn command(&mut self, cmd: Command, tick: u64) -> (Vec<Effect>, Status, Option<Popup>) {
        let none = (Vec::new(), None, None);
        match cmd {
            Command::NextPane | Command::PrevPane => {
                self.focus = self.focus.next(cmd == Command::NextPane);
                none
            }
            Command::FocusSearch => {
                self.focus = CatalogPane::Search;
                none
            }
            Command::FocusResults => {
                self.focus = CatalogPane::Results;
                none
            }
            Command::Insert(_)
            | Command::Backspace
            | Command::ClearInput
            | Command::DeleteWord
            | Command::CursorLeft
            | Command::CursorRight
            | Command::CursorHome
            | Command::CursorEnd => {
                let mut input = self.input.clone();
                input.edit(&cmd);
                let changed = input.value() != self.query();
                self.input = input;
                if changed {
                    let q = self.input.value().to_string();
                    self.set_query(&q, tick);
                }
                none
            }
            Command::ReloadCatalog => {
                self.loading = true;
                (
                    vec![Effect::LoadPackages {
                        etag: self.etag.clone(),
                    }],
                    status(Level::Info, "reloading catalog…"),
                    None,
                )
            }
            Command::Install => {
                if self.install.as_ref().is_some_and(|i| i.result.is_none()) {
                    return (
                        Vec::new(),
                        status(Level::Warn, "an install is already running"),
                        None,
                    );
                }
                let Some((_, pkg)) = self.selected() else {
                    return (Vec::new(), status(Level::Warn, "no package selected"), None);
                };
                let reference = pkg.reference();
                let version = self.picked_version().unwrap_or_else(|| pkg.version.clone());
                // A picked version is pinned; the default stays unpinned (upgrade moves it).
                let (target, how) = match &self.picked {
                    Some(v) => (format!("{reference}@{v}"), " (pinned)"),
                    None => (reference.clone(), ""),
                };
                let mut lines = vec![format!(
                    "Install {reference} {version}{how} into this environment?"
                )];
                if let Some(checks) = self.readiness.get(&target) {
                    // What cannot succeed is not offered; warnings are said in words.
                    if let Some(first) = checks.iter().find(|c| c.blocks()) {
                        let mut st = super::Status::new(
                            Level::Error,
                            format!("cannot install {target}: {}", first.message),
                        );
                        st.hint = first.hint.clone();
                        return (Vec::new(), Some(st), None);
                    }
                    for w in checks.iter().filter(|c| !c.ok) {
                        lines.push(format!("Warning: {}", w.message));
                    }
                }
                let popup = Popup::Confirm {
                    title: "Install".into(),
                    lines,
                    pending: Pending::Install(target),
                };
                (Vec::new(), None, Some(popup))
            }
            Command::ReadinessDown | Command::ReadinessUp => {
                self.readiness_scroll = if cmd == Command::ReadinessDown {
                    self.readiness_scroll
                        .saturating_add(1)
                        .min(self.readiness_scroll_max.get())
                } else {
                    self.readiness_scroll.saturating_sub(1)
                };
                none
            }
            Command::VersionOlder | Command::VersionNewer => {
                let (effects, st) = self.pick_version(cmd == Command::VersionOlder);
                (effects, st, None)
            }
            Command::Yank => {
                let Some((_, pkg)) = self.selected() else {
                    return (Vec::new(), status(Level::Warn, "no package selected"), None);
                };
                let reference = pkg.reference();
                let (Some(d), Some(version)) = (self.selected_details(), self.picked_version())
                else {
                    return (
                        Vec::new(),
                        status(Level::Warn, "the versions are still loading"),
                        None,
                    );
                };
                let yanked = !d.is_yanked(&version);
                let lines = if yanked {
                    vec![
                        format!("Yank {reference} {version}?"),
                        "It stays installable where it is pinned; \"latest\", new installs and `upgrade` skip it.".into(),
                    ]
                } else {
                    vec![
                        format!("Un-yank {reference} {version}?"),
                        "It counts again for \"latest\" and `upgrade`.".into(),
                    ]
                };
                let popup = Popup::Confirm {
                    title: if yanked { "Yank" } else { "Un-yank" }.into(),
                    lines,
                    pending: Pending::Yank {
                        package: reference,
                        version,
                        yanked,
                    },
                };
                (Vec::new(), None, Some(popup))
            }
            Command::Up
            | Command::Down
            | Command::PageUp
            | Command::PageDown
            | Command::Top
            | Command::Bottom => {
                if self.focus == CatalogPane::Details {
                    self.details_scroll = match cmd {
                        Command::Up => self.details_scroll.saturating_sub(1),
                        Command::Down => self
                            .details_scroll
                            .saturating_add(1)
                            .min(self.details_scroll_max.get()),
                        _ => self.details_scroll,
                    };
                } else {
                    self.move_cursor(cmd, tick);
                }
                none
            }
            _ => none,
        }
    }

    pub fn wheel(&mut self, a: &Areas, x: u16, y: u16, down: bool, tick: u64) -> Vec<Effect> {
        let cmd = if down { Command::Down } else { Command::Up };
        if layout::contains(a.results, x, y) {
            self.move_cursor(cmd, tick);
        } else if layout::contains(a.readiness, x, y) {
            self.readiness_scroll = if down {
                self.readiness_scroll
                    .saturating_add(3)
                    .min(self.readiness_scroll_max.get())
            } else {
                self.readiness_scroll.saturating_sub(3)
            };
        } else if layout::contains(a.details, x, y) {
            self.details_scroll = if down {
                self.details_scroll
                    .saturating_add(3)
                    .min(self.details_scroll_max.get())
            } else {
                self.details_scroll.saturating_sub(3)
            };
        }
        Vec::new()
    }

    pub fn click(&mut self, a: &Areas, x: u16, y: u16, tick: u64) -> Vec<Effect> {
        if layout::contains(a.search, x, y) {
            self.focus = CatalogPane::Search;
        } else if layout::contains(a.results, x, y) {
            self.focus = CatalogPane::Results;
            let inner = layout::inner(a.results);
            if layout::contains(inner, x, y) {
                let row = usize::from(y - inner.y) + self.cursor.offset;
                let n = self.index.hits().len();
                if row < n && self.cursor.select(row, n) {
                    self.selection_changed(tick);
                }
            }
        } else if layout::contains(a.details, x, y) || layout::contains(a.readiness, x, y) {
            self.focus = CatalogPane::Details;
        }
        Vec::new()
    }

    pub fn on_result(&mut self, action: Action, tick: u64) -> (Vec<Effect>, Status) {
        match action {
            Action::Packages { packages, etag } => {
                let before = self.selected_ref();
                let query = self.query().to_string();
                self.index = Filter::new(packages.index());
                self.index.set_query(&query);
                self.packages = packages;
                self.etag = etag;
                self.loading = false;
                self.load_error = None;
                self.details.clear();
                self.readiness.clear();
                // Keep the selection on the same package when it is still listed.
                let pos = before.and_then(|r| {
                    self.index
                        .hits()
                        .iter()
                        .position(|h| self.packages.get(h.id).is_some_and(|p| p.reference() == r))
                });
                self.cursor = ListCursor::default();
                self.cursor
                    .select(pos.unwrap_or(0), self.index.hits().len());
                self.selection_changed(tick);
                if std::mem::take(&mut self.quiet_reload) {
                    return (Vec::new(), None);
                }
                let text = format!("{} packages in the catalog", self.packages.len());
                (Vec::new(), status(Level::Info, text))
            }
            Action::PackagesFailed(f) => {
                self.loading = false;
                self.quiet_reload = false;
                self.load_error = Some(f.message.clone());
                (
                    Vec::new(),
                    Some(super::Status {
                        text: f.message,
                        level: Level::Error,
                        hint: f.hint,
                    }),
                )
            }
            Action::PackagesUnchanged => {
                self.loading = false;
                self.load_error = None;
                if std::mem::take(&mut self.quiet_reload) {
                    return (Vec::new(), None);
                }
                (Vec::new(), status(Level::Info, "catalog unchanged"))
            }
            Action::Details(d) => {
                self.details.insert(d.reference(), d);
                (Vec::new(), None)
            }
            Action::Readiness { package, checks } => {
                self.readiness.insert(package, checks);
                (Vec::new(), None)
            }
            Action::InstallProgress {
                package,
                done,
                total,
            } => {
                self.install = Some(InstallState {
                    package,
                    done,
                    total,
                    result: None,
                });
                (Vec::new(), None)
            }
            Action::InstallFinished { package, result } => {
                let status = match &result {
                    Ok(i) => {
                        let status = super::Status::new(
                            Level::Ok,
                            format!("installed {}@{} as `{}`", i.package, i.version, i.id),
                        );
                        match i.executables.first() {
                            Some(exe) => status.with_hint(format!("run {}", exe.display())),
                            None => status,
                        }
                    }
                    Err(f) => super::Status::failed(format!("install of {package} failed"), f),
                };
                let install = self.install.get_or_insert_with(|| InstallState {
                    package: package.clone(),
                    done: 0,
                    total: None,
                    result: None,
                });
                install.result = Some(result);
                self.readiness.remove(&package);
                (vec![Effect::Readiness(package)], Some(status))
            }
            Action::YankFinished { package, result } => match result {
                Ok(y) => {
                    let text = if y.yanked && y.latest_version.is_empty() {
                        format!(
                            "yanked {}@{}; every version is yanked now, so none is the latest",
                            y.name, y.version
                        )
                    } else if y.yanked {
                        format!(
                            "yanked {}@{}; latest is now {}",
                            y.name, y.version, y.latest_version
                        )
                    } else {
                        format!(
                            "un-yanked {}@{}; latest is {}",
                            y.name, y.version, y.latest_version
                        )
                    };
                    // The details and the latest-version column changed.
                    self.details.remove(&package);
                    self.picked = None;
                    self.quiet_reload = true;
                    (
                        vec![
                            Effect::PackageDetails(package),
                            Effect::LoadPackages {
                                etag: self.etag.clone(),
                            },
                        ],
                        status(Level::Ok, text),
                    )
                }
                Err(f) => (
                    Vec::new(),
                    Some(super::Status::failed(
                        format!("yank of {package} failed"),
                        &f,
                    )),
                ),
            },
            _ => (Vec::new(), None),
        }
    }
}
