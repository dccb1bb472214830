//! The workbench state and its pure `update`: actions in, state changes and effects out.
//! No I/O happens here; see `runtime` for the loop that performs effects.

mod catalog;
mod publish;

pub use catalog::{CatalogPane, CatalogState, InstallState};
pub use publish::{Job, PublishPane, PublishState, PushState, StageState, UploadState};

use crossterm::event::{KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::action::{Action, Effect};
use super::keymap::{self, Command, Context};
use super::layout::{self, Areas};
use super::model::JobOutcome;
use super::theme::Theme;
use crate::publish::ReviewAnswer;

/// The two tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Publish,
    Catalog,
}

/// How a status message reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Ok,
    Warn,
    Error,
}

/// The one-line message in the header, and the command that fixes a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub level: Level,
    pub hint: Option<String>,
}

impl Status {
    pub fn new(level: Level, text: impl Into<String>) -> Status {
        Status {
            text: text.into(),
            level,
            hint: None,
        }
    }

    /// `what: <the failure's sentence>`, with its hint.
    pub fn failed(what: impl std::fmt::Display, f: &crate::event::Failure) -> Status {
        Status {
            text: format!("{what}: {}", f.message),
            level: Level::Error,
            hint: f.hint.clone(),
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Status {
        self.hint = Some(hint.into());
        self
    }
}

/// What a confirmation popup confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Publish(String),
    Install(String),
    Yank {
        package: String,
        version: String,
        yanked: bool,
    },
    CommitBump {
        build: String,
        version: String,
    },
}

/// What a text-input popup is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputPurpose {
    /// New version of this build.
    Version(String),
    LogSearch,
}

/// The modal popup on top of the tabs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popup {
    Confirm {
        title: String,
        lines: Vec<String>,
        pending: Pending,
    },
    Input {
        title: String,
        input: crate::tui::input::TextInput,
        purpose: InputPurpose,
    },
    Help {
        scroll: u16,
    },
    /// A failure, whole: its message and its fix, wrapped.
    Failure {
        message: String,
        hint: Option<String>,
    },
    /// The publish job waits for this review before uploading.
    Review {
        review: Box<crate::publish::review::Review>,
        /// Build a second time and compare before uploading.
        verify: bool,
        scroll: u16,
    },
}

/// Ticks between a selection change and the request it triggers (debounce).
pub const DEBOUNCE_TICKS: u64 = 1;

#[derive(Debug)]
pub struct App {
    pub theme: Theme,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    pub tab: Tab,
    pub popup: Option<Popup>,
    pub status: Option<Status>,
    /// Ticks since start (spinners, running-stage durations, debounce).
    pub tick: u64,
    /// Duration of one tick, for showing elapsed times.
    pub tick_ms: u64,
    pub quit: bool,
    /// Something visible changed since the last draw.
    pub dirty: bool,
    pub publish: PublishState,
    pub catalog: CatalogState,
    /// The key bindings (the default table with the config file's `[keys]`).
    pub keymap: std::sync::Arc<keymap::Keymap>,
}

impl App {
    pub fn new(theme: Theme, size: (u16, u16)) -> App {
        App {
            theme,
            size,
            tab: Tab::Publish,
            popup: None,
            status: None,
            tick: 0,
            tick_ms: 100,
            quit: false,
            dirty: true,
            publish: PublishState::default(),
            catalog: CatalogState::default(),
            keymap: Default::default(),
        }
    }

    /// What to request when the workbench opens.
    pub fn init(&mut self) -> Vec<Effect> {
        vec![
            Effect::LoadBuilds,
            Effect::RunChecks {
                build: self.publish.selected_name(),
                fetch: true,
            },
            Effect::LoadPackages { etag: None },
        ]
    }

    /// The screen layout for the current size and contents.
    pub fn areas(&self) -> Areas {
        let readiness = self.catalog.selected_readiness().map_or(0, |c| c.len());
        layout::areas(
            Rect::new(0, 0, self.size.0, self.size.1),
            self.publish.builds.len(),
            readiness,
        )
    }

    /// Active keymap contexts, innermost first.
    pub fn contexts(&self) -> Vec<Context> {
        match &self.popup {
            Some(Popup::Confirm { .. }) => vec![Context::Confirm, Context::Always],
            Some(Popup::Input { .. }) => vec![Context::Input, Context::Always],
            Some(Popup::Help { .. }) => vec![Context::Help, Context::Always],
            Some(Popup::Failure { .. }) => vec![Context::Failure, Context::Always],
            Some(Popup::Review { .. }) => vec![Context::Review, Context::Always],
            None => {
                let (pane, tab) = match self.tab {
                    Tab::Publish => (self.publish.focus.context(), Context::Publish),
                    Tab::Catalog => (self.catalog.focus.context(), Context::Catalog),
                };
                vec![pane, tab, Context::Global, Context::Always]
            }
        }
    }

    pub fn set_status(&mut self, level: Level, text: impl Into<String>) {
        self.status = Some(Status::new(level, text));
    }

    /// Applies `action`; returns what the runtime should do.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        // Only an error shown before is kept to compare with: no copy on every action.
        let before = self
            .status
            .as_ref()
            .filter(|s| s.level == Level::Error)
            .cloned();
        let effects = self.update_inner(action);
        // A new failure opens whole (message and fix, wrapped) in a popup the header's one
        // line cannot hold, unless another popup is open; the header keeps its short form.
        if let Some(st) = &self.status
            && st.level == Level::Error
            && before.as_ref() != Some(st)
            && self.popup.is_none()
        {
            self.popup = Some(Popup::Failure {
                message: st.text.clone(),
                hint: st.hint.clone(),
            });
        }
        effects
    }

    fn update_inner(&mut self, action: Action) -> Vec<Effect> {
        let mut dirty = true;
        let effects = match action {
            Action::Key(key) => self.key(key, &mut dirty),
            Action::Command(cmd) => self.command(cmd),
            Action::Mouse(m) => self.mouse(m, &mut dirty),
            Action::Paste(text) => {
                for c in text.chars().filter(|c| !c.is_control()) {
                    self.insert(c);
                }
                Vec::new()
            }
            Action::Resize(w, h) => {
                self.size = (w, h);
                Vec::new()
            }
            Action::Tick => self.on_tick(&mut dirty),
            Action::LogSaved(result) => {
                self.status = Some(match result {
                    Ok(path) => {
                        Status::new(Level::Ok, format!("log written to {}", path.display()))
                    }
                    Err(f) => Status::failed("cannot write the log", &f),
                });
                Vec::new()
            }
            Action::Error(failure) => {
                self.publish.checks_running = false;
                self.catalog.loading = false;
                self.catalog.quiet_reload = false;
                self.status = Some(Status {
                    text: failure.message,
                    level: Level::Error,
                    hint: failure.hint,
                });
                Vec::new()
            }
            Action::FilesChanged => {
                // The manifest may have changed too: the list (and any confirmation built
                // from it) is read again, as the checks are.
                let mut effects = vec![Effect::LoadBuilds];
                effects.extend(self.publish.request_checks(false));
                effects
            }
            Action::Engine(crate::event::Event::Review(review)) => {
                self.popup = Some(Popup::Review {
                    review,
                    verify: false,
                    scroll: 0,
                });
                self.set_status(Level::Warn, "review the upload: y uploads, n stops");
                Vec::new()
            }
            Action::Builds(_)
            | Action::Checks(_)
            | Action::Engine(_)
            | Action::JobFinished { .. }
            | Action::PushFinished(_)
            | Action::BumpCommitted { .. }
            | Action::VersionSet { .. } => {
                // A new publish changes the catalog: refresh the cached package list.
                let published = matches!(
                    &action,
                    Action::JobFinished {
                        outcome: JobOutcome::Published(_),
                        ..
                    }
                );
                let (mut effects, status) = self.publish.on_result(action, self.tick);
                if published {
                    effects.push(Effect::LoadPackages {
                        etag: self.catalog.etag.clone(),
                    });
                }
                if let Some(status) = status {
                    self.status = Some(status);
                }
                // An open confirmation says what will happen now, or closes when it no
                // longer can (the manifest or the checks changed under it).
                if let Some(Popup::Confirm {
                    lines,
                    pending: Pending::Publish(name),
                    ..
                }) = &mut self.popup
                {
                    match self.publish.publish_confirmation(name) {
                        Ok(now) => *lines = now,
                        Err(st) => {
                            self.popup = None;
                            self.status = Some(st);
                        }
                    }
                }
                effects
            }
            Action::Packages { .. }
            | Action::PackagesUnchanged
            | Action::PackagesFailed(_)
            | Action::Details(_)
            | Action::Readiness { .. }
            | Action::InstallProgress { .. }
            | Action::InstallFinished { .. }
            | Action::YankFinished { .. } => {
                let (effects, status) = self.catalog.on_result(action, self.tick);
                if let Some(status) = status {
                    self.status = Some(status);
                }
                effects
            }
        };
        self.sync_scroll();
        self.dirty |= dirty;
        effects
    }

    fn key(&mut self, key: KeyEvent, dirty: &mut bool) -> Vec<Effect> {
        match self.keymap.resolve(&self.contexts(), &key) {
            Some(cmd) => self.command(cmd),
            None => {
                *dirty = false;
                Vec::new()
            }
        }
    }

    fn on_tick(&mut self, dirty: &mut bool) -> Vec<Effect> {
        self.tick += 1;
        *dirty = self.publish.animating() || self.catalog.animating();
        let mut effects = self.publish.on_tick(self.tick);
        effects.extend(self.catalog.on_tick(self.tick));
        if !effects.is_empty() {
            *dirty = true;
        }
        effects
    }

    /// Height of the log's text area (for paging and search reveal).
    pub fn log_height(&self) -> u16 {
        layout::inner(self.areas().log).height
    }

    /// Keeps list offsets consistent with the current layout.
    fn sync_scroll(&mut self) {
        let a = self.areas();
        let builds_h = usize::from(layout::inner(a.builds).height.saturating_sub(1));
        let n = self.publish.builds.len();
        self.publish.cursor.scroll_into_view(builds_h, n);
        let results_h = usize::from(layout::inner(a.results).height);
        let n = self.catalog.index.hits().len();
        self.catalog.cursor.scroll_into_view(results_h, n);
    }

    fn command(&mut self, cmd: Command) -> Vec<Effect> {
        if self.popup.is_some() {
            return self.popup_command(cmd);
        }
        match cmd {
            Command::Quit => {
                self.quit = true;
                let mut effects = Vec::new();
                if self.publish.job.is_some() {
                    effects.push(Effect::Cancel);
                }
                effects.push(Effect::Quit);
                effects
            }
            Command::Help => {
                self.popup = Some(Popup::Help { scroll: 0 });
                Vec::new()
            }
            Command::TabPublish => {
                self.tab = Tab::Publish;
                Vec::new()
            }
            Command::TabCatalog => {
                self.tab = Tab::Catalog;
                Vec::new()
            }
            _ => {
                let log_h = self.log_height();
                let (effects, status, popup) = match self.tab {
                    Tab::Publish => self.publish.command(cmd, log_h, self.tick),
                    Tab::Catalog => self.catalog.command(cmd, self.tick),
                };
                if let Some(status) = status {
                    self.status = Some(status);
                }
                if popup.is_some() {
                    self.popup = popup;
                }
                effects
            }
        }
    }

    fn popup_command(&mut self, cmd: Command) -> Vec<Effect> {
        let Some(popup) = self.popup.as_mut() else {
            return Vec::new();
        };
        match (popup, cmd) {
            (Popup::Review { verify, .. }, Command::Confirm) => {
                let answer = if *verify {
                    ReviewAnswer::VerifyThenUpload
                } else {
                    ReviewAnswer::Upload
                };
                self.popup = None;
                self.set_status(
                    Level::Info,
                    match answer {
                        ReviewAnswer::VerifyThenUpload => {
                            "building again to compare, then uploading…"
                        }
                        _ => "uploading…",
                    },
                );
                vec![Effect::AnswerReview(answer)]
            }
            (Popup::Review { .. }, Command::Dismiss | Command::Quit) => {
                self.popup = None;
                let mut effects = vec![Effect::AnswerReview(ReviewAnswer::Decline)];
                if cmd == Command::Quit {
                    effects.extend(self.command(Command::Quit));
                }
                effects
            }
            (Popup::Review { verify, .. }, Command::ToggleReproducible) => {
                *verify = !*verify;
                Vec::new()
            }
            (Popup::Review { scroll, .. }, Command::Down) => {
                *scroll = scroll.saturating_add(1);
                Vec::new()
            }
            (Popup::Review { scroll, .. }, Command::Up) => {
                *scroll = scroll.saturating_sub(1);
                Vec::new()
            }
            (_, Command::Quit) => {
                self.popup = None;
                self.command(Command::Quit)
            }
            (_, Command::Dismiss) => {
                self.popup = None;
                Vec::new()
            }
            (Popup::Help { scroll }, Command::Down) => {
                *scroll = scroll.saturating_add(1);
                Vec::new()
            }
            (Popup::Help { scroll }, Command::Up) => {
                *scroll = scroll.saturating_sub(1);
                Vec::new()
            }
            (Popup::Confirm { pending, .. }, Command::Confirm) => {
                let pending = pending.clone();
                self.popup = None;
                match pending {
                    Pending::Publish(build) => self.publish.start_job(build, self.tick),
                    Pending::Install(pkg) => self.catalog.start_install(pkg),
                    Pending::Yank {
                        package,
                        version,
                        yanked,
                    } => vec![Effect::Yank {
                        package,
                        version,
                        yanked,
                    }],
                    Pending::CommitBump { build, version } => {
                        self.publish.committing = true;
                        self.set_status(Level::Info, "committing the version bump and pushing…");
                        vec![Effect::CommitBump { build, version }]
                    }
                }
            }
            (Popup::Input { input, purpose, .. }, Command::Submit) => {
                let (value, purpose) = (input.value().trim().to_string(), purpose.clone());
                self.popup = None;
                self.submit(purpose, value)
            }
            (Popup::Input { input, .. }, cmd) => {
                input.edit(&cmd);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn submit(&mut self, purpose: InputPurpose, value: String) -> Vec<Effect> {
        match purpose {
            InputPurpose::Version(build) => {
                // The engine's one rule for versions (a pure check; no effect when it fails).
                if let Err(e) = crate::manifest::check_version(&value) {
                    let f = crate::event::Hinted::failure(&e);
                    self.status = Some(Status::failed(
                        format!("cannot set the version of {build}"),
                        &f,
                    ));
                    return Vec::new();
                }
                self.set_status(Level::Info, format!("setting {build} version to {value}…"));
                vec![Effect::SetVersion {
                    build,
                    version: value,
                }]
            }
            InputPurpose::LogSearch => {
                let h = self.log_height();
                let found = self.publish.log.start_search(value.clone(), h);
                if !value.is_empty() && found.is_none() {
                    self.set_status(Level::Warn, format!("pattern not found: {value}"));
                }
                Vec::new()
            }
        }
    }

    /// Types `c` into whatever text field has focus.
    fn insert(&mut self, c: char) {
        match &mut self.popup {
            Some(Popup::Input { input, .. }) => {
                input.edit(&Command::Insert(c));
            }
            Some(_) => {}
            None if self.tab == Tab::Catalog && self.catalog.focus == CatalogPane::Search => {
                self.catalog.command(Command::Insert(c), self.tick);
            }
            None => {}
        }
    }

    fn mouse(&mut self, m: MouseEvent, dirty: &mut bool) -> Vec<Effect> {
        let (x, y) = (m.column, m.row);
        let a = self.areas();
        if let Some(Popup::Help { scroll }) = &mut self.popup {
            match m.kind {
                MouseEventKind::ScrollDown => *scroll = scroll.saturating_add(3),
                MouseEventKind::ScrollUp => *scroll = scroll.saturating_sub(3),
                _ => *dirty = false,
            }
            return Vec::new();
        }
        if self.popup.is_some() {
            *dirty = false;
            return Vec::new();
        }
        match m.kind {
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                let down = m.kind == MouseEventKind::ScrollDown;
                let log_h = self.log_height();
                match self.tab {
                    Tab::Publish => self.publish.wheel(&a, x, y, down, log_h, self.tick),
                    Tab::Catalog => self.catalog.wheel(&a, x, y, down, self.tick),
                }
            }
            MouseEventKind::Down(MouseButton::Left) => {
                if layout::contains(a.header, x, y) {
                    if let Some(tab) = tab_at(x) {
                        self.tab = tab;
                    }
                    return Vec::new();
                }
                match self.tab {
                    Tab::Publish => self.publish.click(&a, x, y, self.tick),
                    Tab::Catalog => self.catalog.click(&a, x, y, self.tick),
                }
            }
            _ => {
                *dirty = false;
                Vec::new()
            }
        }
    }
}

/// Header layout: ` pubdeck ` then the tab labels; shared with the header view.
pub const TAB_LABELS: [(Tab, &str); 2] =
    [(Tab::Publish, " 1 Publish "), (Tab::Catalog, " 2 Catalog ")];
/// Column where the first tab label starts.
pub const TABS_X: u16 = 10;

fn tab_at(x: u16) -> Option<Tab> {
    let mut start = TABS_X;
    for (tab, label) in TAB_LABELS {
        let w = u16::try_from(label.chars().count()).unwrap_or(0);
        if x >= start && x < start + w {
            return Some(tab);
        }
        start += w + 1;
    }
    None
}

/// Id of the check fixed by the push fix-it.
pub fn publish_pushed_id() -> crate::event::CheckId {
    publish::PUSHED_CHECK
}

/// Id of the check the version-bump fix-it repairs.
pub fn publish_clean_id() -> crate::event::CheckId {
    publish::CLEAN_CHECK
}
