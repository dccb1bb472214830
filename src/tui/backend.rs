//! The seam between the workbench and the engine.
//!
//! Every method returns at once; work that takes time runs in a task the implementation
//! spawns (the runtime calls these from inside a tokio runtime), and its results and progress
//! come back later as [`Action`]s sent through the given [`ActionTx`].

use std::path::PathBuf;

use super::action::Action;
use super::model::BuildRow;
use crate::event::EventRx;

/// Where results go: the runtime's inbox. Bounded: a flood of log lines slows the producer
/// (back through the engine's event channel to the build's pipes) instead of filling memory.
pub type ActionTx = tokio::sync::mpsc::Sender<Action>;
pub type ActionRx = tokio::sync::mpsc::Receiver<Action>;

/// Capacity of the inbox.
pub const INBOX_CAPACITY: usize = 1024;

/// A new inbox.
pub fn inbox() -> (ActionTx, ActionRx) {
    tokio::sync::mpsc::channel(INBOX_CAPACITY)
}

/// The engine as the workbench sees it. Object-safe; shared as `Arc<dyn Backend>`.
///
/// Expected replies (each sent through `tx`):
///
/// | call | replies |
/// |---|---|
/// | `run_checks` | `Action::Checks` (all checks, never stop-at-first) or `Action::Error` |
/// | `publish`, `build_only` | `Action::Engine(event)`… then exactly one `Action::JobFinished`; a publish stops at `Event::Review` until `answer_review` |
/// | `cancel` | the running job ends with `JobFinished { outcome: JobOutcome::Cancelled }` |
/// | `push` | `Action::PushFinished` |
/// | `set_version` | `Action::VersionSet` |
/// | `commit_bump` | `Action::BumpCommitted` |
/// | `save_log` | `Action::LogSaved` |
/// | `load_packages` | `Action::Packages` or `Action::PackagesUnchanged` or `Action::Error` |
/// | `package_details` | `Action::Details` or `Action::Error` |
/// | `readiness` | `Action::Readiness` |
/// | `install` | `Action::InstallProgress`… then `Action::InstallFinished` |
/// | `yank` | `Action::YankFinished` |
pub trait Backend: Send + Sync {
    /// The `[build.*]` entries of the environment (cheap, synchronous: a manifest read).
    fn builds(&self) -> Vec<BuildRow>;
    /// Evaluates every publish precondition for `build` (`fetch`: fetch the upstream first).
    fn run_checks(&self, build: Option<String>, fetch: bool, tx: &ActionTx);
    /// Runs the whole publish pipeline for `build`.
    fn publish(&self, build: String, tx: &ActionTx);
    /// Runs the clean build only.
    fn build_only(&self, build: String, tx: &ActionTx);
    /// Cancels the running publish/build job, if any.
    fn cancel(&self);
    /// The "not pushed" fix-it: pushes the current branch to its upstream.
    fn push(&self, tx: &ActionTx);
    /// Commits the manifest alone (message `<build> <version>`) and pushes the branch.
    fn commit_bump(&self, build: String, version: String, tx: &ActionTx);
    /// Sets `[build.<build>] version` in the manifest (format-preserving edit).
    fn set_version(&self, build: String, version: String, tx: &ActionTx);
    /// Writes the build log of `build`'s job (plain text lines) to a new file.
    fn save_log(&self, build: String, lines: Vec<String>, tx: &ActionTx);
    /// Loads the full package list of the visible catalogs (`etag` from the last answer).
    fn load_packages(&self, etag: Option<String>, tx: &ActionTx);
    /// `show org/pkg`.
    fn package_details(&self, package: String, tx: &ActionTx);
    /// `ready org/pkg`: install-readiness checks.
    fn readiness(&self, package: String, tx: &ActionTx);
    /// `install org/pkg[@version]` into the environment.
    fn install(&self, package: String, tx: &ActionTx);
    /// Answers the review the running publish is waiting for (`Event::Review`).
    fn answer_review(&self, answer: crate::publish::ReviewAnswer);
    /// Yanks (`yanked`) or un-yanks `version` of `org/pkg`.
    fn yank(&self, package: String, version: String, yanked: bool, tx: &ActionTx);
    /// Files and directories whose changes should re-run the checks (the manifest, the
    /// repository's work tree and `.git`). Watched recursively; empty: no watcher.
    fn watch_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// Forwards an engine event stream into the inbox as `Action::Engine` until it closes.
/// A helper for implementations of `publish`/`build_only`.
pub async fn forward_events(mut rx: EventRx, tx: ActionTx) {
    while let Some(event) = rx.recv().await {
        if tx.send(Action::Engine(event)).await.is_err() {
            break;
        }
    }
}
