//! State and behaviour of the Publish tab: builds, preconditions, the running job, its log.

use std::collections::HashMap;
use std::time::Duration;

use super::{InputPurpose, Level, Pending, Popup};
use crate::event::Failure;
use crate::event::{Direction, Event, Stage, Stream};
use crate::git::Check;
use crate::git::Pushed;
use crate::tui::action::{Action, Effect};
use crate::tui::keymap::{Command, Context};
use crate::tui::layout::{self, Areas};
use crate::tui::list::ListCursor;
use crate::tui::log::LogBuffer;
use crate::tui::model::{BuildRow, JobKind, JobOutcome, LastResult};

/// Id of the check the push fix-it repairs (`git::id::PUSHED` in the engine).
pub const PUSHED_CHECK: crate::event::CheckId = crate::event::CheckId::Pushed;
/// Id of the check a version edit turns red (`git::id::CLEAN`).
pub const CLEAN_CHECK: crate::event::CheckId = crate::event::CheckId::Clean;

type Status = Option<super::Status>;

fn status(level: Level, text: impl Into<String>) -> Status {
    Some(super::Status::new(level, text))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublishPane {
    #[default]
    Builds,
    Checks,
    Log,
}

impl PublishPane {
    pub fn context(self) -> Context {
        match self {
            PublishPane::Builds => Context::Builds,
            PublishPane::Checks => Context::Checks,
            PublishPane::Log => Context::Log,
        }
    }

    fn next(self, forward: bool) -> PublishPane {
        use PublishPane::*;
        match (self, forward) {
            (Builds, true) | (Log, false) => Checks,
            (Checks, true) | (Builds, false) => Log,
            (Log, true) | (Checks, false) => Builds,
        }
    }
}

/// One stage of the stepper.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StageState {
    #[default]
    Pending,
    Running {
        since_tick: u64,
    },
    Done {
        ok: bool,
        duration: Duration,
    },
    Skipped(String),
}

/// Latest upload progress.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UploadState {
    pub sent: u64,
    pub total: u64,
    /// Bytes per second: smoothed while running, the average once finished.
    pub rate: f64,
    pub eta: Option<f64>,
    pub retries: u32,
    /// Seconds the whole upload took, once finished.
    pub elapsed: Option<f64>,
}

/// The running publish/build job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub kind: JobKind,
    pub build: String,
    pub cancelling: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PushState {
    #[default]
    Idle,
    Running,
    Done(Result<Pushed, Failure>),
}

#[derive(Debug, Default)]
pub struct PublishState {
    pub focus: PublishPane,
    pub builds: Vec<BuildRow>,
    pub cursor: ListCursor,
    /// Outcomes of this session's jobs, by build name (override `BuildRow::last`).
    pub results: HashMap<String, LastResult>,
    /// The version and entry fingerprint each of `results` ran with.
    pub ran_with: HashMap<String, (String, u64)>,
    pub checks: Vec<Check>,
    pub checks_running: bool,
    pub checks_scroll: u16,
    /// The largest useful `checks_scroll`, as the last draw found it.
    pub checks_scroll_max: std::cell::Cell<u16>,
    /// Tick at which to re-run checks for a new selection (debounced).
    pub checks_due: Option<u64>,
    pub job: Option<Job>,
    /// Kind and build of the last job shown in the stepper.
    pub shown: Option<(JobKind, String)>,
    pub stages: [StageState; 7],
    pub upload: Option<UploadState>,
    pub store_path: Option<String>,
    pub nar_size: Option<u64>,
    pub key_name: Option<String>,
    pub log: LogBuffer,
    pub push: PushState,
    /// A version set with `e` and not committed yet: (build, version). The fix-it commits
    /// and pushes it.
    pub bump: Option<(String, String)>,
    /// The bump fix-it is running.
    pub committing: bool,
}

fn stage_index(stage: Stage) -> usize {
    Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0)
}

impl PublishState {
    pub fn selected(&self) -> Option<&BuildRow> {
        self.builds.get(self.cursor.selected)
    }

    pub fn selected_name(&self) -> Option<String> {
        self.selected().map(|b| b.name.clone())
    }

    /// What the builds list shows as the last result of `build`.
    ///
    /// A run's result describes the entry and version it ran with: once the manifest says
    /// otherwise, the list shows what the engine knows of the entry as it is now.
    pub fn last_result<'a>(&'a self, build: &'a BuildRow) -> Option<&'a LastResult> {
        let ran = self.results.get(&build.name).filter(|r| {
            matches!(r, LastResult::Building)
                || self
                    .ran_with
                    .get(&build.name)
                    .is_none_or(|(v, e)| *v == build.version && *e == build.entry)
        });
        ran.or(build.last.as_ref())
    }

    pub fn failing_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// The lines of the confirmation to publish `name`, from the manifest and the checks as
    /// they are now; `Err` (why, as a status) when the publish could not succeed: the build
    /// is gone from the manifest, or a precondition that blocks fails.
    pub fn publish_confirmation(&self, name: &str) -> Result<Vec<String>, super::Status> {
        let Some(b) = self.builds.iter().find(|b| b.name == name) else {
            return Err(super::Status::new(
                Level::Warn,
                format!("the manifest has no build `{name}` any more"),
            ));
        };
        let blocking: Vec<&Check> = self.checks.iter().filter(|c| c.blocks()).collect();
        if let Some(first) = blocking.first() {
            let more = match blocking.len() - 1 {
                0 => String::new(),
                n => format!(
                    " (and {n} more failing check{})",
                    if n == 1 { "" } else { "s" }
                ),
            };
            let mut st = super::Status::new(
                Level::Error,
                format!("cannot publish {name}: {}{more}", first.message),
            );
            st.hint = first.hint.clone();
            return Err(st);
        }
        let what = match (&b.version_from, b.version.is_empty()) {
            (crate::tui::model::VersionFrom::Command, _) => {
                format!("{name} (its version comes from version.command)")
            }
            (_, true) => name.to_string(),
            (_, false) => format!("{name} {}", b.version),
        };
        let mut lines = vec![format!("Publish build {what} to the catalog?")];
        for w in self.checks.iter().filter(|c| !c.ok && c.warning) {
            lines.push(format!("Warning: {}", w.message));
        }
        Ok(lines)
    }

    /// True while something on screen moves with time.
    pub fn animating(&self) -> bool {
        self.job.is_some() || self.checks_running || self.push == PushState::Running
    }

    pub fn request_checks(&mut self, fetch: bool) -> Vec<Effect> {
        self.checks_running = true;
        self.checks_due = None;
        vec![Effect::RunChecks {
            build: self.selected_name(),
            fetch,
        }]
    }

    pub fn on_tick(&mut self, tick: u64) -> Vec<Effect> {
        match self.checks_due {
            Some(due) if due <= tick => self.request_checks(false),
            _ => Vec::new(),
        }
    }

    /// Confirmed publish (or build only): resets the stepper and log and starts the job.
    pub fn start_job(&mut self, build: String, _tick: u64) -> Vec<Effect> {
        self.begin(JobKind::Publish, build.clone());
        vec![Effect::Publish(build)]
    }

    fn begin(&mut self, kind: JobKind, build: String) {
        self.stages = Default::default();
        self.upload = None;
        self.store_path = None;
        self.nar_size = None;
        self.key_name = None;
        self.log.clear();
        self.results.insert(build.clone(), LastResult::Building);
        if let Some(row) = self.builds.iter().find(|b| b.name == build) {
            self.ran_with
                .insert(build.clone(), (row.version.clone(), row.entry));
        }
        self.shown = Some((kind, build.clone()));
        self.job = Some(Job {
            kind,
            build,
            cancelling: false,
        });
    }

    /// The selected build, when a job may start now; otherwise the status line saying why not.
    fn startable(&self) -> Result<String, super::Status> {
        match (self.selected_name(), &self.job) {
            (_, Some(job)) => Err(super::Status::new(
                Level::Warn,
                format!("{} of {} is running; c cancels it", job.kind, job.build),
            )),
            (None, _) => Err(super::Status::new(Level::Warn, "no build selected")),
            (Some(name), None) => Ok(name),
        }
    }

    pub fn command(
        &mut self,
        cmd: Command,
        log_h: u16,
        tick: u64,
    ) -> (Vec<Effect>, Status, Option<Popup>) {
        let page = u64::from(log_h.saturating_sub(1).max(1));
        let none = |effects| (effects, None, None);
        match cmd {
            Command::NextPane | Command::PrevPane => {
                self.focus = self.focus.next(cmd == Command::NextPane);
                none(Vec::new())
            }
            Command::Publish => match self.startable() {
                Err(status) => (Vec::new(), Some(status), None),
                Ok(name) => match self.publish_confirmation(&name) {
                    // What cannot succeed is not offered.
                    Err(st) => (Vec::new(), Some(st), None),
                    Ok(lines) => {
                        let popup = Popup::Confirm {
                            title: "Publish".into(),
                            lines,
                            pending: Pending::Publish(name),
                        };
                        (Vec::new(), None, Some(popup))
                    }
                },
            },
            Command::BuildOnly => match self.startable() {
                Err(status) => (Vec::new(), Some(status), None),
                Ok(name) => {
                    self.begin(JobKind::BuildOnly, name.clone());
                    none(vec![Effect::BuildOnly(name)])
                }
            },
            Command::Cancel => match &mut self.job {
                Some(job) => {
                    job.cancelling = true;
                    let msg = format!("cancelling {} of {}…", job.kind, job.build);
                    (vec![Effect::Cancel], status(Level::Warn, msg), None)
                }
                None => (Vec::new(), status(Level::Info, "nothing to cancel"), None),
            },
            Command::Recheck => {
                let effects = self.request_checks(true);
                (
                    effects,
                    status(Level::Info, "re-checking (with fetch)…"),
                    None,
                )
            }
            Command::Push => {
                let pushed = self.checks.iter().find(|c| c.id == PUSHED_CHECK);
                match pushed {
                    _ if self.push == PushState::Running => (
                        Vec::new(),
                        status(Level::Info, "push already running"),
                        None,
                    ),
                    Some(c) if !c.ok => {
                        self.push = PushState::Running;
                        (
                            vec![Effect::Push],
                            status(Level::Info, "pushing current branch…"),
                            None,
                        )
                    }
                    Some(_) => (
                        Vec::new(),
                        status(Level::Info, "nothing to push: HEAD is on the remote"),
                        None,
                    ),
                    None => (
                        Vec::new(),
                        status(Level::Info, "no push check yet; r re-checks"),
                        None,
                    ),
                }
            }
            Command::CommitBump => match self.bump.clone() {
                _ if self.committing => (
                    Vec::new(),
                    status(Level::Info, "the commit and push are already running"),
                    None,
                ),
                None => (
                    Vec::new(),
                    status(
                        Level::Info,
                        "no version bump to commit: e edits the selected build's version",
                    ),
                    None,
                ),
                Some((build, version)) => {
                    let popup = Popup::Confirm {
                        title: "Commit and push".into(),
                        lines: vec![
                            format!("Commit the version bump of {build} ({version}) and push?"),
                            format!(
                                "Commits only the manifest, with the message \"{build} {version}\", then pushes the current branch."
                            ),
                        ],
                        pending: Pending::CommitBump { build, version },
                    };
                    (Vec::new(), None, Some(popup))
                }
            },
            Command::EditVersion => match self.selected() {
                // Never replace the user's form: a command's version is not pubdeck's to set.
                Some(b) if b.version_from == crate::tui::model::VersionFrom::Command => (
                    Vec::new(),
                    status(
                        Level::Warn,
                        format!(
                            "the version of {} is what its version.command prints; change the command",
                            b.name
                        ),
                    ),
                    None,
                ),
                Some(b) => {
                    let title = match &b.version_from {
                        crate::tui::model::VersionFrom::File(f) => {
                            format!("Version of {} (written into {f})", b.name)
                        }
                        _ => format!("Version of {}", b.name),
                    };
                    let popup = Popup::Input {
                        title,
                        input: crate::tui::input::TextInput::new(b.version.clone()),
                        purpose: InputPurpose::Version(b.name.clone()),
                    };
                    (Vec::new(), None, Some(popup))
                }
                None => (Vec::new(), status(Level::Warn, "no build selected"), None),
            },
            Command::LogSearch => {
                let value = self
                    .log
                    .search
                    .as_ref()
                    .map(|s| s.pattern.clone())
                    .unwrap_or_default();
                let popup = Popup::Input {
                    title: "Search log".into(),
                    input: crate::tui::input::TextInput::new(value),
                    purpose: InputPurpose::LogSearch,
                };
                (Vec::new(), None, Some(popup))
            }
            Command::SaveLog => {
                if self.log.is_empty() {
                    return (
                        Vec::new(),
                        status(Level::Info, "the log is empty: nothing to write"),
                        None,
                    );
                }
                let build = self
                    .shown
                    .as_ref()
                    .map(|(_, b)| b.clone())
                    .or_else(|| self.selected_name())
                    .unwrap_or_else(|| "build".into());
                let lines = (self.log.first()..self.log.end())
                    .filter_map(|i| self.log.get(i))
                    .map(|l| crate::tui::ansi::strip(&l.text))
                    .collect();
                (
                    vec![Effect::SaveLog { build, lines }],
                    status(Level::Info, "writing the log…"),
                    None,
                )
            }
            Command::SearchNext | Command::SearchPrev => {
                if self.log.search.is_none() {
                    return (
                        Vec::new(),
                        status(Level::Info, "no search: / starts one"),
                        None,
                    );
                }
                let forward = cmd == Command::SearchNext;
                let hit = self.log.search_step(forward, log_h);
                let wrapped = self.log.search.as_ref().is_some_and(|s| s.wrapped);
                let status = match hit {
                    None => Some(super::Status::new(Level::Warn, "pattern not found")),
                    Some(_) if wrapped && forward => Some(super::Status::new(
                        Level::Info,
                        "search passed the end of the log: went on from the top",
                    )),
                    Some(_) if wrapped => Some(super::Status::new(
                        Level::Info,
                        "search passed the start of the log: went on from the bottom",
                    )),
                    Some(_) => None,
                };
                (Vec::new(), status, None)
            }
            Command::Up
            | Command::Down
            | Command::PageUp
            | Command::PageDown
            | Command::Top
            | Command::Bottom => {
                let effects = match self.focus {
                    PublishPane::Builds => {
                        let n = self.builds.len();
                        let changed = match cmd {
                            Command::Up => self.cursor.move_by(-1, n),
                            Command::Down => self.cursor.move_by(1, n),
                            Command::Top => self.cursor.select(0, n),
                            Command::Bottom => self.cursor.select(usize::MAX, n),
                            _ => false,
                        };
                        if changed {
                            self.checks_due = Some(tick + super::DEBOUNCE_TICKS);
                        }
                        Vec::new()
                    }
                    PublishPane::Checks => {
                        self.checks_scroll = match cmd {
                            Command::Up => self.checks_scroll.saturating_sub(1),
                            Command::Down => self
                                .checks_scroll
                                .saturating_add(1)
                                .min(self.checks_scroll_max.get()),
                            Command::Top => 0,
                            _ => self.checks_scroll,
                        };
                        Vec::new()
                    }
                    PublishPane::Log => {
                        match cmd {
                            Command::Up => self.log.scroll_up(1, log_h),
                            Command::Down => self.log.scroll_down(1, log_h),
                            Command::PageUp => self.log.scroll_up(page, log_h),
                            Command::PageDown => self.log.scroll_down(page, log_h),
                            Command::Top => self.log.scroll_to_first(),
                            _ => self.log.resume_follow(),
                        }
                        Vec::new()
                    }
                };
                none(effects)
            }
            _ => none(Vec::new()),
        }
    }

    pub fn wheel(
        &mut self,
        a: &Areas,
        x: u16,
        y: u16,
        down: bool,
        log_h: u16,
        tick: u64,
    ) -> Vec<Effect> {
        if layout::contains(a.log, x, y) {
            if down {
                self.log.scroll_down(3, log_h);
            } else {
                self.log.scroll_up(3, log_h);
            }
        } else if layout::contains(a.builds, x, y) {
            if self
                .cursor
                .move_by(if down { 1 } else { -1 }, self.builds.len())
            {
                self.checks_due = Some(tick + super::DEBOUNCE_TICKS);
            }
        } else if layout::contains(a.checks, x, y) {
            self.checks_scroll = if down {
                self.checks_scroll
                    .saturating_add(1)
                    .min(self.checks_scroll_max.get())
            } else {
                self.checks_scroll.saturating_sub(1)
            };
        }
        Vec::new()
    }

    pub fn click(&mut self, a: &Areas, x: u16, y: u16, tick: u64) -> Vec<Effect> {
        if layout::contains(a.builds, x, y) {
            self.focus = PublishPane::Builds;
            // Row 0 of the inner area is the column header.
            let inner = layout::inner(a.builds);
            if y > inner.y && layout::contains(inner, x, y) {
                let row = usize::from(y - inner.y - 1) + self.cursor.offset;
                if row < self.builds.len() && self.cursor.select(row, self.builds.len()) {
                    self.checks_due = Some(tick + super::DEBOUNCE_TICKS);
                }
            }
        } else if layout::contains(a.checks, x, y) {
            self.focus = PublishPane::Checks;
        } else if layout::contains(a.log, x, y) {
            self.focus = PublishPane::Log;
        }
        Vec::new()
    }

    /// Applies an engine result.
    pub fn on_result(&mut self, action: Action, tick: u64) -> (Vec<Effect>, Status) {
        match action {
            Action::Builds(builds) => {
                self.builds = builds;
                let n = self.builds.len();
                self.cursor.select(self.cursor.selected, n);
                (Vec::new(), None)
            }
            Action::Checks(checks) => {
                // Committed by hand meanwhile: no bump left for the fix-it.
                if checks.iter().any(|c| c.id == CLEAN_CHECK && c.ok) {
                    self.bump = None;
                }
                self.checks = checks;
                self.checks_running = false;
                (Vec::new(), None)
            }
            Action::Engine(event) => (Vec::new(), self.on_event(event, tick)),
            Action::JobFinished {
                kind,
                build,
                outcome,
            } => {
                self.job = None;
                let (last, status) = match outcome {
                    JobOutcome::Published(p) => {
                        let reference = p.reference();
                        let text = if p.already_published {
                            format!("{reference} was already published from this commit")
                        } else {
                            format!("published {reference}")
                        };
                        (
                            LastResult::Published(reference),
                            super::Status::new(Level::Ok, text),
                        )
                    }
                    JobOutcome::Built(k) => {
                        let shown = k.link.as_ref().unwrap_or(&k.path).display().to_string();
                        let status =
                            super::Status::new(Level::Ok, format!("built {build}: {shown}"));
                        let status = match &k.link_error {
                            Some(e) => status.with_hint(format!("no result link: {e}")),
                            None => status,
                        };
                        (LastResult::Built(k.path), status)
                    }
                    JobOutcome::Cancelled => (
                        LastResult::Cancelled,
                        super::Status::new(Level::Warn, format!("{kind} of {build} cancelled")),
                    ),
                    JobOutcome::Failed(f) => {
                        let status = super::Status::failed(format!("{kind} of {build} failed"), &f);
                        (LastResult::Failed(f), status)
                    }
                };
                // A stage still running when the job ends did not finish.
                for s in &mut self.stages {
                    if matches!(s, StageState::Running { .. }) {
                        *s = StageState::Done {
                            ok: false,
                            duration: Duration::ZERO,
                        };
                    }
                }
                self.results.insert(build, last);
                (Vec::new(), Some(status))
            }
            Action::PushFinished(result) => {
                let status = match &result {
                    Ok(p) => super::Status::new(
                        Level::Ok,
                        format!("pushed {} to {}", p.branch, p.upstream),
                    ),
                    Err(f) => super::Status::failed("push failed", f),
                };
                self.push = PushState::Done(result);
                (self.request_checks(true), Some(status))
            }
            Action::BumpCommitted {
                build,
                version,
                result,
            } => {
                self.committing = false;
                let status = match &result {
                    Ok(c) => {
                        self.bump = None;
                        super::Status::new(
                            Level::Ok,
                            format!(
                                "committed {build} {version} ({}) and pushed {} to {}",
                                &c.rev[..c.rev.len().min(7)],
                                c.pushed.branch,
                                c.pushed.upstream
                            ),
                        )
                    }
                    Err(f) => super::Status::failed("commit and push failed", f),
                };
                (self.request_checks(true), Some(status))
            }
            Action::VersionSet { build, result } => match result {
                Ok(v) => {
                    self.bump = Some((build.clone(), v.clone()));
                    let mut effects = vec![Effect::LoadBuilds];
                    effects.extend(self.request_checks(false));
                    (
                        effects,
                        status(
                            Level::Ok,
                            format!("{build} is now version {v}; C commits and pushes it"),
                        ),
                    )
                }
                Err(f) => (
                    Vec::new(),
                    Some(super::Status::failed(
                        format!("cannot set the version of {build}"),
                        &f,
                    )),
                ),
            },
            _ => (Vec::new(), None),
        }
    }

    fn note(&mut self, text: String) {
        self.log.push(format!("\x1b[2m── {text}\x1b[0m"), false);
    }

    fn on_event(&mut self, event: Event, tick: u64) -> Status {
        match event {
            Event::StageStarted { stage } => {
                self.stages[stage_index(stage)] = StageState::Running { since_tick: tick };
            }
            Event::StageFinished {
                stage,
                duration,
                ok,
            } => {
                self.stages[stage_index(stage)] = StageState::Done { ok, duration };
            }
            Event::StageSkipped { stage, reason } => {
                self.note(format!("{} skipped: {reason}", stage.name()));
                self.stages[stage_index(stage)] = StageState::Skipped(reason);
            }
            Event::Check(check) => match self.checks.iter_mut().find(|c| c.id == check.id) {
                Some(c) => *c = check,
                None => self.checks.push(check),
            },
            Event::Cloned { rev, dir } => {
                let short: String = rev.chars().take(12).collect();
                self.note(format!("cloned {short} into {}", dir.display()));
            }
            Event::Log { stream, lines } => {
                for line in lines.iter() {
                    self.log.push(line.to_string(), stream == Stream::Stderr);
                }
            }
            Event::BuildExited { code, signal } => {
                let how = match (code, signal) {
                    (Some(c), _) => format!("build exited with status {c}"),
                    (None, Some(s)) => format!("build killed by signal {s}"),
                    (None, None) => "build exited".to_string(),
                };
                self.note(how);
            }
            Event::Packed {
                store_path,
                nar_size,
                dependency: true,
                ..
            } => {
                self.note(format!("packed dependency {store_path} ({nar_size} bytes)"));
            }
            Event::Packed {
                store_path,
                nar_size,
                dependency: false,
                ..
            } => {
                self.note(format!("packed {store_path}"));
                self.store_path = Some(store_path);
                self.nar_size = Some(nar_size);
            }
            Event::AlreadyInStore { store_path } => {
                self.note(format!("{store_path} is already in the store"));
            }
            Event::Signed { key_name } => self.key_name = Some(key_name),
            Event::Transfer {
                direction: Direction::Upload,
                sent,
                total,
                rate,
                eta,
                retries,
                ..
            } => {
                self.upload = Some(UploadState {
                    sent,
                    total,
                    rate,
                    eta,
                    retries,
                    elapsed: None,
                });
            }
            Event::TransferDone {
                direction: Direction::Upload,
                size,
                moved,
                elapsed,
                ..
            } => {
                let retries = self.upload.map_or(0, |u| u.retries);
                let secs = elapsed.as_secs_f64();
                self.upload = Some(UploadState {
                    sent: size,
                    total: size,
                    rate: if secs > 0.0 { moved as f64 / secs } else { 0.0 },
                    eta: None,
                    retries,
                    elapsed: Some(secs),
                });
            }
            Event::TransferRetry {
                direction: Direction::Upload,
                attempt,
                reason,
                ..
            } => self.note(format!("upload retry {attempt}: {reason}")),
            Event::TransferStalled {
                direction: Direction::Upload,
                idle,
                ..
            } => self.note(format!(
                "upload stalled: nothing moved for {}s",
                idle.as_secs()
            )),
            Event::Transfer { .. }
            | Event::TransferDone { .. }
            | Event::TransferRetry { .. }
            | Event::TransferStalled { .. }
            | Event::Progress { .. }
            | Event::Review(_) => {}
            Event::Unreproducible(u) => {
                use crate::publish::repro::DiffKind;
                self.note(format!(
                    "not reproducible: NAR {} then {}",
                    u.first_nar_hash, u.second_nar_hash
                ));
                for d in &u.files {
                    let path = if d.path.is_empty() {
                        "(the output)"
                    } else {
                        &d.path
                    };
                    match &d.kind {
                        DiffKind::Text { lines } => {
                            self.note(format!("{path} differs:"));
                            for l in lines {
                                self.log.push(format!("    {l}"), false);
                            }
                        }
                        DiffKind::Binary {
                            first_size,
                            second_size,
                            first_difference,
                        } => self.note(format!(
                            "{path}: binary, {first_size} / {second_size} bytes, first difference at byte {first_difference}"
                        )),
                        DiffKind::OnlyFirst => self.note(format!("{path}: only in the first build")),
                        DiffKind::OnlySecond => {
                            self.note(format!("{path}: only in the second build"))
                        }
                        DiffKind::Type { first, second } => {
                            self.note(format!("{path}: {first} / {second}"))
                        }
                        DiffKind::Target { first, second } => {
                            self.note(format!("{path}: symlink to {first} / {second}"))
                        }
                    }
                }
                if u.total > u.files.len() {
                    self.note(format!("… and {} more", u.total - u.files.len()));
                }
            }
            Event::Note { message } => {
                self.note(message.clone());
                return status(Level::Info, message);
            }
            Event::Published { reference } => {
                return status(Level::Ok, format!("published {reference}"));
            }
        }
        None
    }
}
