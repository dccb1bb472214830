//! What goes into [`App::update`](super::app::App::update) ([`Action`]) and what comes out
//! ([`Effect`]). Engine results come back as actions; effects are requests the runtime turns
//! into [`Backend`](super::backend::Backend) calls.

use crossterm::event::{KeyEvent, MouseEvent};

use super::keymap::Command;
use super::model::{BuildRow, JobKind, JobOutcome, PackageDetails, PackageList};
use crate::event::{Event, Failure};
use crate::git::{Check, Pushed};
use crate::install::Installed;

/// Something that happened: input, time, or a result from the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    Resize(u16, u16),
    /// The runtime's periodic tick (spinners, debounced requests).
    Tick,
    /// A command, as a key bound to it would run it.
    Command(Command),
    /// A watched file changed (already debounced).
    FilesChanged,
    Builds(Vec<BuildRow>),
    /// A fresh evaluation of the publish preconditions.
    Checks(Vec<Check>),
    /// One event of the running publish/build job.
    Engine(Event),
    /// The running job ended.
    JobFinished {
        kind: JobKind,
        build: String,
        outcome: JobOutcome,
    },
    /// Outcome of the "push the current branch" fix-it.
    PushFinished(Result<Pushed, Failure>),
    /// Outcome of the "commit the version bump and push" fix-it.
    BumpCommitted {
        build: String,
        version: String,
        result: Result<crate::git::Committed, Failure>,
    },
    /// Outcome of editing a build's version: `Ok` carries the version now in the manifest.
    VersionSet {
        build: String,
        result: Result<String, Failure>,
    },
    /// The catalog's package list (`etag` to pass to the next `load_packages`).
    Packages {
        packages: PackageList,
        etag: Option<String>,
    },
    /// The catalog answered "not modified" to `load_packages(etag)`.
    PackagesUnchanged,
    /// The package list could not be loaded (the catalog is unreachable, refused, …).
    PackagesFailed(Failure),
    /// Outcome of writing the build log to a file: where it went.
    LogSaved(Result<std::path::PathBuf, Failure>),
    Details(PackageDetails),
    /// Install-readiness checks for `package` (`org/name`).
    Readiness {
        package: String,
        checks: Vec<Check>,
    },
    /// Bytes of the install's download so far.
    InstallProgress {
        package: String,
        done: u64,
        total: Option<u64>,
    },
    InstallFinished {
        package: String,
        result: Result<Installed, Failure>,
    },
    /// Outcome of a yank or un-yank of a version of `package` (`org/name`).
    YankFinished {
        package: String,
        result: Result<crate::catalog::YankOutcome, Failure>,
    },
    /// A failed request (shown in the status line, with its hint).
    Error(Failure),
}

/// A request for the outside world; the runtime performs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Quit,
    LoadBuilds,
    RunChecks {
        build: Option<String>,
        fetch: bool,
    },
    Publish(String),
    BuildOnly(String),
    Cancel,
    Push,
    SetVersion {
        build: String,
        version: String,
    },
    /// Commit the manifest (the version bump of `build`) and push.
    CommitBump {
        build: String,
        version: String,
    },
    /// Write these log lines (plain text) of `build`'s job to a new file.
    SaveLog {
        build: String,
        lines: Vec<String>,
    },
    LoadPackages {
        etag: Option<String>,
    },
    PackageDetails(String),
    Readiness(String),
    /// `org/name` or `org/name@version`.
    Install(String),
    Yank {
        package: String,
        version: String,
        yanked: bool,
    },
    /// The answer to the running publish's review.
    AnswerReview(crate::publish::ReviewAnswer),
}
