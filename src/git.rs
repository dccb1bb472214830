//! Publish preconditions, decided the way Flox decides them, but all evaluated together.
//!
//! Every check has a stable id, ok/fail, one sentence and a fix hint. Checks that cannot be
//! evaluated (no repository) fail with a sentence saying why, so a caller always gets the
//! full list. The cost is one `git2` status walk plus, when asked, one `git fetch`, so the
//! TUI can re-run [`evaluate`] on every file change (with `fetch: false`).

use crate::event::Hinted;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use git2::{BranchType, Oid, Repository, Status, StatusOptions};

use crate::manifest::{Env, Manifest};

/// Stable check ids, in display order.
pub mod id {
    use crate::event::CheckId;

    pub const MANIFEST: CheckId = CheckId::Manifest;
    pub const GIT_REPO: CheckId = CheckId::GitRepo;
    pub const ENV_TRACKED: CheckId = CheckId::EnvTracked;
    pub const CLEAN: CheckId = CheckId::Clean;
    pub const UPSTREAM: CheckId = CheckId::Upstream;
    pub const PUSHED: CheckId = CheckId::Pushed;
    pub const HAS_PACKAGES: CheckId = CheckId::HasPackages;
    pub const BUILD_EXISTS: CheckId = CheckId::BuildExists;
}

pub use crate::event::Check;

/// Where the source of a publish comes from; recorded with the published build.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Source {
    /// The repository's top-level directory.
    pub workdir: PathBuf,
    /// The environment directory relative to `workdir` (empty for the top level).
    pub env_subdir: PathBuf,
    /// The upstream remote's URL with credentials removed.
    pub remote_url: Option<String>,
    pub rev: Option<String>,
    pub branch: Option<String>,
    /// Commit time of HEAD, seconds since the epoch (UTC).
    pub commit_time: Option<i64>,
}

/// Options for [`evaluate`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Fetch the upstream remote before deciding `pushed` (the CLI does; live re-checks don't).
    pub fetch: bool,
    pub fetch_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fetch: true,
            fetch_timeout: Duration::from_secs(20),
        }
    }
}

/// All checks plus what was learnt about the source along the way.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub build: Option<String>,
    pub checks: Vec<Check>,
    #[serde(skip)]
    pub source: Option<Source>,
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

/// Evaluates every precondition for publishing `build` (or the environment as a whole).
pub fn evaluate(dir: &Path, build: Option<&str>, opts: &Options) -> Report {
    let mut checks = Vec::new();
    let (env_dir, manifest) = match Env::find(dir) {
        Ok(env) => (env.dir.clone(), env.manifest()),
        Err(e) => (
            std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            Err(e),
        ),
    };
    match &manifest {
        Ok(m) => checks.push(Check::pass(
            id::MANIFEST,
            format!("{} is valid", display_rel(&m.path, dir)),
        )),
        Err(e) => checks.push(Check::fail(
            id::MANIFEST,
            e.to_string(),
            e.hint()
                .unwrap_or_else(|| "fix the manifest at the position shown".into()),
        )),
    }
    let source = git_checks(&env_dir, opts, &mut checks);

    match &manifest {
        Ok(m) if !m.install.is_empty() => checks.push(Check::pass(
            id::HAS_PACKAGES,
            format!(
                "the environment installs {} package{}",
                m.install.len(),
                plural(m.install.len())
            ),
        )),
        Ok(_) => checks.push(Check::fail(
            id::HAS_PACKAGES,
            "the environment installs no packages, so the build has no point in the base catalog",
            "add one, e.g. `flox install hello`, then commit and push",
        )),
        Err(_) => checks.push(Check::fail(
            id::HAS_PACKAGES,
            "cannot tell which packages are installed: the manifest did not load",
            "fix the manifest first",
        )),
    }

    if let Some(name) = build {
        checks.push(match &manifest {
            Ok(m) if m.build(name).is_some() => {
                Check::pass(id::BUILD_EXISTS, format!("build `{name}` is defined"))
            }
            Ok(m) => {
                let hint = match m.nearest_build(name) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None if m.builds.is_empty() => {
                        "add a [build.<name>] table with a `command` to the manifest".into()
                    }
                    None => format!(
                        "defined builds: {}",
                        m.builds
                            .iter()
                            .map(|b| b.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                Check::fail(
                    id::BUILD_EXISTS,
                    format!("the manifest has no build named `{name}`"),
                    hint,
                )
            }
            Err(_) => Check::fail(
                id::BUILD_EXISTS,
                format!("cannot look up build `{name}`: the manifest did not load"),
                "fix the manifest first",
            ),
        });
    }

    Report {
        build: build.map(str::to_string),
        checks,
        source,
        manifest: manifest.ok(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn display_rel(path: &Path, base: &Path) -> String {
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    path.strip_prefix(&base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The git checks proper; pushes `git-repo`, `env-tracked`, `clean`, `upstream`, `pushed`.
fn git_checks(env_dir: &Path, opts: &Options, checks: &mut Vec<Check>) -> Option<Source> {
    let repo = match Repository::discover(env_dir) {
        Ok(r) if !r.is_bare() => r,
        _ => {
            checks.push(Check::fail(
                id::GIT_REPO,
                format!("{} is not inside a git repository", env_dir.display()),
                "run `git init && git add .flox && git commit -m 'add environment'`",
            ));
            for (id, what) in [
                (id::ENV_TRACKED, "tracked files"),
                (id::CLEAN, "clean tree"),
                (id::UPSTREAM, "upstream"),
                (id::PUSHED, "push"),
            ] {
                checks.push(Check::fail(
                    id,
                    format!("{what} not checked: there is no git repository"),
                    "create the repository first",
                ));
            }
            return None;
        }
    };
    let workdir = repo.workdir().expect("not bare").to_path_buf();
    let canon_workdir = workdir.canonicalize().unwrap_or_else(|_| workdir.clone());
    let canon_env = env_dir
        .canonicalize()
        .unwrap_or_else(|_| env_dir.to_path_buf());
    let env_subdir = canon_env
        .strip_prefix(&canon_workdir)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    checks.push(Check::pass(
        id::GIT_REPO,
        format!("in git repository {}", workdir.display()),
    ));

    let flox_spec = path_join_slash(&env_subdir, ".flox");
    checks.push(env_tracked(&repo, &flox_spec));
    checks.push(clean(&repo, &flox_spec));

    let head = repo.head().ok();
    let head_oid = head.as_ref().and_then(|h| h.target());
    let commit_time = head_oid
        .and_then(|o| repo.find_commit(o).ok())
        .map(|c| c.time().seconds());
    let detached = repo.head_detached().unwrap_or(false);
    let branch = if detached {
        None
    } else {
        head.as_ref()
            .and_then(|h| h.shorthand().ok())
            .map(str::to_string)
    };

    let mut remote_name = None;
    let mut remote_url = None;
    let upstream_check = match (&branch, head_oid) {
        (_, None) => Check::fail(
            id::UPSTREAM,
            "the repository has no commits yet",
            "commit the environment: `git add .flox && git commit`",
        ),
        (None, Some(oid)) => Check::fail(
            id::UPSTREAM,
            format!(
                "HEAD is detached at {}, so there is no branch with an upstream",
                short(oid)
            ),
            "switch to a branch: `git switch <branch>` (or `git switch -c <new-branch>`)",
        ),
        (Some(b), Some(_)) => {
            let refname = format!("refs/heads/{b}");
            match repo.branch_upstream_remote(&refname) {
                Ok(buf) => {
                    let name = buf.as_str().unwrap_or("origin").to_string();
                    remote_url = repo
                        .find_remote(&name)
                        .ok()
                        .and_then(|r| r.url().ok().map(strip_credentials));
                    let upstream = repo
                        .find_branch(b, BranchType::Local)
                        .ok()
                        .and_then(|br| br.upstream().ok())
                        .and_then(|u| u.name().ok().flatten().map(str::to_string));
                    let msg = match &upstream {
                        Some(u) => format!("branch `{b}` tracks `{u}`"),
                        None => format!("branch `{b}` tracks remote `{name}`"),
                    };
                    remote_name = Some(name);
                    Check::pass(id::UPSTREAM, msg)
                }
                Err(_) => {
                    let has_origin = repo.find_remote("origin").is_ok();
                    Check::fail(
                        id::UPSTREAM,
                        format!("branch `{b}` has no upstream remote"),
                        if has_origin {
                            format!(
                                "run `git push -u origin {b}` (or `git branch --set-upstream-to=origin/{b}`)"
                            )
                        } else {
                            format!(
                                "add a remote and push: `git remote add origin <url> && git push -u origin {b}`"
                            )
                        },
                    )
                }
            }
        }
    };
    checks.push(upstream_check);

    checks.push(match (&remote_name, head_oid) {
        (Some(remote), Some(oid)) => pushed(&repo, &workdir, remote, oid, opts),
        _ => Check::fail(
            id::PUSHED,
            "push not checked: the current branch has no upstream remote",
            "set an upstream first (see `upstream`)",
        ),
    });

    Some(Source {
        workdir,
        env_subdir,
        remote_url,
        rev: head_oid.map(|o| o.to_string()),
        branch,
        commit_time,
    })
}

/// The number of commits reachable from `rev` (itself included): Flox's `rev_count`. At most
/// [`MAX_REV_COUNT`] are counted; `None` when the repository or the revision cannot be read.
pub fn rev_count(workdir: &Path, rev: &str) -> Option<u64> {
    let repo = Repository::open(workdir).ok()?;
    let oid = git2::Oid::from_str(rev).ok()?;
    let mut walk = repo.revwalk().ok()?;
    walk.push(oid).ok()?;
    let mut n = 0u64;
    for c in walk {
        c.ok()?;
        n += 1;
        if n >= MAX_REV_COUNT {
            break;
        }
    }
    Some(n)
}

/// The most commits [`rev_count`] walks.
pub const MAX_REV_COUNT: u64 = 10_000_000;

fn path_join_slash(dir: &Path, name: &str) -> String {
    let d = dir.to_string_lossy();
    if d.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", d.trim_end_matches('/'))
    }
}

fn short(oid: Oid) -> String {
    oid.to_string()[..7].to_string()
}

fn first_paths(paths: &[String]) -> String {
    let mut s = paths
        .iter()
        .take(3)
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > 3 {
        s.push_str(&format!(" and {} more", paths.len() - 3));
    }
    s
}

fn env_tracked(repo: &Repository, flox_spec: &str) -> Check {
    let mut opts = StatusOptions::new();
    // A literal path, not a pattern: libgit2 then walks only `.flox` instead of filtering
    // a walk of the whole work tree (the difference is most of the check's cost).
    opts.pathspec(flox_spec)
        .disable_pathspec_match(true)
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = match repo.statuses(Some(&mut opts)) {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                id::ENV_TRACKED,
                format!("cannot read the git status of {flox_spec}: {}", e.message()),
                "run `git status` to see what is wrong",
            );
        }
    };
    let untracked: Vec<String> = statuses
        .iter()
        .filter(|s| s.status().contains(Status::WT_NEW))
        .map(|s| String::from_utf8_lossy(s.path_bytes()).into_owned())
        .collect();
    let manifest = format!("{flox_spec}/env/manifest.toml");
    let manifest_tracked = repo
        .index()
        .map(|i| i.get_path(Path::new(&manifest), 0).is_some())
        .unwrap_or(false);
    let lock = format!("{flox_spec}/env/pubdeck.lock");
    if untracked.contains(&lock) {
        // What `pubdeck install` wrote: the lock is new, the manifest changed. One fix.
        let others = untracked.iter().filter(|p| **p != lock).count();
        Check::fail(
            id::ENV_TRACKED,
            format!(
                "{lock}, which pubdeck install writes beside {manifest}, is not tracked by git{}",
                if others > 0 {
                    format!(
                        " (nor {others} other file{} under {flox_spec})",
                        plural(others)
                    )
                } else {
                    String::new()
                }
            ),
            install_fix(flox_spec),
        )
    } else if !untracked.is_empty() {
        let first = untracked[0].clone();
        Check::fail(
            id::ENV_TRACKED,
            format!(
                "{} file{} under {flox_spec} {} not tracked by git: {}",
                untracked.len(),
                plural(untracked.len()),
                if untracked.len() == 1 { "is" } else { "are" },
                first_paths(&untracked)
            ),
            format!("run `git add {first}` (or `git add {flox_spec}`) and commit"),
        )
    } else if !manifest_tracked {
        Check::fail(
            id::ENV_TRACKED,
            format!("{manifest} is not tracked by git (is it ignored?)"),
            format!("run `git add -f {manifest}` and commit"),
        )
    } else {
        Check::pass(
            id::ENV_TRACKED,
            format!("all files under {flox_spec} are tracked"),
        )
    }
}

/// Modified or staged tracked files according to the git CLI (`None`: git unavailable).
///
/// git refreshes the index with several threads (`core.preloadIndex`) and honours
/// fsmonitor; libgit2's single-threaded walk costs about twice as much on a large tree,
/// and this check re-runs on every file change.
fn dirty_paths_cli(workdir: &Path) -> Option<Vec<String>> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(workdir)
        .args([
            "--no-optional-locks",
            "status",
            "--porcelain=v2",
            "-z",
            "--untracked-files=no",
            "--ignore-submodules=all",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let mut paths = Vec::new();
    let mut records = out.stdout.split(|b| *b == 0);
    while let Some(rec) = records.next() {
        let fields = match rec.first() {
            Some(b'1') => 8,
            Some(b'2') => 9,
            Some(b'u') => 10,
            _ => continue,
        };
        if let Some(path) = rec.splitn(fields + 1, |b| *b == b' ').nth(fields) {
            paths.push(String::from_utf8_lossy(path).into_owned());
        }
        if rec.first() == Some(&b'2') {
            records.next(); // the rename's original path
        }
    }
    Some(paths)
}

/// The one fix-it after `pubdeck install`: commit the manifest and the lock together.
fn install_fix(flox_spec: &str) -> String {
    format!(
        "commit both: `git add {flox_spec}/env/manifest.toml {flox_spec}/env/pubdeck.lock && git commit -m 'Install packages'`"
    )
}

fn clean(repo: &Repository, flox_spec: &str) -> Check {
    let dirty = match repo.workdir().and_then(dirty_paths_cli) {
        Some(paths) => paths,
        None => match dirty_paths_libgit2(repo) {
            Ok(paths) => paths,
            Err(e) => {
                return Check::fail(
                    id::CLEAN,
                    format!("cannot read the git status: {}", e.message()),
                    "run `git status` to see what is wrong",
                );
            }
        },
    };
    let pair = [
        format!("{flox_spec}/env/manifest.toml"),
        format!("{flox_spec}/env/pubdeck.lock"),
    ];
    if dirty.is_empty() {
        Check::pass(id::CLEAN, "no tracked file is modified or staged")
    } else if dirty.iter().all(|p| pair.contains(p))
        && repo.workdir().is_some_and(|w| w.join(&pair[1]).exists())
    {
        // An install (or upgrade) changed the manifest and its lock: one fix for both.
        Check::fail(
            id::CLEAN,
            format!(
                "{} changed since the last commit (pubdeck install writes both)",
                pair.join(" and ")
            ),
            install_fix(flox_spec),
        )
    } else {
        Check::fail(
            id::CLEAN,
            format!(
                "{} tracked file{} modified or staged: {}",
                dirty.len(),
                if dirty.len() == 1 { " is" } else { "s are" },
                first_paths(&dirty)
            ),
            "commit them (`git commit -am '…'`) or stash them (`git stash`)",
        )
    }
}

fn dirty_paths_libgit2(repo: &Repository) -> Result<Vec<String>, git2::Error> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(false)
        .include_ignored(false)
        .exclude_submodules(true)
        .renames_head_to_index(false);
    let statuses = repo.statuses(Some(&mut opts))?;
    Ok(statuses
        .iter()
        .filter(|s| !s.status().is_empty() && !s.status().contains(Status::IGNORED))
        .map(|s| String::from_utf8_lossy(s.path_bytes()).into_owned())
        .collect())
}

/// Outcome of trying to refresh the remote-tracking refs.
enum Fetch {
    Skipped,
    Done,
    Failed(String),
}

fn fetch(workdir: &Path, remote: &str, timeout: Duration) -> Fetch {
    // The git CLI honours the user's credential helpers and ssh set-up, which is what
    // `git push` used; libgit2 would need its own. No prompts: a live check must not block.
    let child = std::process::Command::new("git")
        .arg("-C")
        .arg(workdir)
        .args([
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            remote,
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Fetch::Failed(format!("cannot run git: {e}")),
    };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Fetch::Done,
            Ok(Some(_)) => {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    use std::io::Read;
                    let _ = s.read_to_string(&mut err);
                }
                let line = err
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("git fetch failed")
                    .trim_start_matches("fatal: ")
                    .to_string();
                return Fetch::Failed(line);
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Fetch::Failed(format!("no answer within {}s", timeout.as_secs()));
            }
            Err(e) => return Fetch::Failed(e.to_string()),
        }
    }
}

fn pushed(repo: &Repository, workdir: &Path, remote: &str, head: Oid, opts: &Options) -> Check {
    let fetched = if opts.fetch {
        fetch(workdir, remote, opts.fetch_timeout)
    } else {
        Fetch::Skipped
    };
    let prefix = format!("refs/remotes/{remote}/");
    let on_remote = repo
        .references_glob(&format!("{prefix}*"))
        .map(|refs| {
            refs.flatten()
                .filter(|r| !r.name().is_ok_and(|n| n.ends_with("/HEAD")))
                .filter_map(|r| r.target())
                .any(|tip| tip == head || repo.graph_descendant_of(tip, head).unwrap_or(false))
        })
        .unwrap_or(false);
    let branch = repo
        .head()
        .ok()
        .and_then(|h| h.shorthand().ok().map(str::to_string))
        .unwrap_or_default();
    match (on_remote, fetched) {
        (true, Fetch::Failed(why)) => Check::pass(
            id::PUSHED,
            format!(
                "{} was on `{remote}` when last fetched; the remote cannot be reached now ({why})",
                short(head)
            ),
        ),
        (true, _) => Check::pass(id::PUSHED, format!("{} is on `{remote}`", short(head))),
        (false, Fetch::Failed(why)) => Check::fail(
            id::PUSHED,
            format!(
                "{} is not on `{remote}` as last fetched, and the remote cannot be reached ({why})",
                short(head)
            ),
            format!("check the network or credentials, then `git push {remote} {branch}`"),
        ),
        (false, _) => Check::fail(
            id::PUSHED,
            format!("commit {} has not been pushed to `{remote}`", short(head)),
            format!("run `git push {remote} {branch}`"),
        ),
    }
}

/// What the "not pushed" fix-it did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pushed {
    /// The local branch that was pushed.
    pub branch: String,
    /// Its upstream, `remote/branch`.
    pub upstream: String,
}

/// Why pushing the current branch failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    NoUpstream(String),
    #[error("git push to {upstream} failed: {message}")]
    Failed { upstream: String, message: String },
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("git commit of {file} failed: {message}")]
    Commit { file: String, message: String },
}

impl Hinted for PushError {
    fn hint(&self) -> Option<String> {
        match self {
            PushError::NoUpstream(_) => {
                Some("set one with `git branch --set-upstream-to=origin/<branch>`".into())
            }
            PushError::Failed { .. } => {
                Some("check the network and your credentials, then run `git push`".into())
            }
            PushError::Spawn(_) => Some("install git and make sure it is on PATH".into()),
            PushError::Commit { message, .. } if message.contains("who you are") => Some(
                "tell git who you are: `git config --global user.name NAME` and `user.email EMAIL`"
                    .into(),
            ),
            PushError::Commit { .. } => Some("commit it yourself with `git commit`".into()),
        }
    }
}

/// The current branch and its upstream (`origin/main`) of the repository holding `dir`.
pub fn current_upstream(dir: &Path) -> Result<(String, String), PushError> {
    let no = |why: &str| PushError::NoUpstream(why.to_string());
    let repo =
        Repository::discover(dir).map_err(|_| no("the environment is not in a git repository"))?;
    let head = repo
        .head()
        .map_err(|_| no("the repository has no commit yet"))?;
    if !head.is_branch() {
        return Err(no("HEAD is detached, so there is no branch to push"));
    }
    let branch = head
        .shorthand()
        .map_err(|_| no("the current branch name is not UTF-8"))?
        .to_string();
    let local = repo
        .find_branch(&branch, BranchType::Local)
        .map_err(|e| no(e.message()))?;
    let upstream = local
        .upstream()
        .map_err(|_| PushError::NoUpstream(format!("branch `{branch}` has no upstream")))?;
    let upstream = upstream
        .name()
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_string();
    Ok((branch, upstream))
}

/// The "not pushed" fix-it: `git push` of the current branch to its upstream, with the git
/// CLI (so the user's credential helpers apply) and no terminal prompt.
pub async fn push_current_branch(dir: &Path) -> Result<Pushed, PushError> {
    let d = dir.to_path_buf();
    let (branch, upstream) = tokio::task::spawn_blocking(move || current_upstream(&d))
        .await
        .map_err(|e| PushError::Spawn(std::io::Error::other(e)))??;
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["push", "--quiet"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(PushError::Spawn)?;
    if out.status.success() {
        return Ok(Pushed { branch, upstream });
    }
    let message = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("git push failed")
        .trim_start_matches("fatal: ")
        .to_string();
    Err(PushError::Failed { upstream, message })
}

/// A commit made by a fix-it, and where it was pushed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Committed {
    /// The new commit.
    pub rev: String,
    pub pushed: Pushed,
}

/// The "commit the version bump and push" fix-it: commits `file` alone (whatever else is
/// staged stays staged) with `message`, using the git CLI so the user's identity, hooks and
/// signing apply, then pushes the current branch ([`push_current_branch`]).
pub async fn commit_and_push(
    dir: &Path,
    file: &Path,
    message: &str,
) -> Result<Committed, PushError> {
    let shown = file.display().to_string();
    let git = |args: &[&str]| {
        let mut c = tokio::process::Command::new("git");
        c.arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null());
        c
    };
    let out = git(&["commit", "--quiet", "-m", message, "--"])
        .arg(file)
        .output()
        .await
        .map_err(PushError::Spawn)?;
    if !out.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let message = if text.contains("Please tell me who you are") {
            "git does not know who you are".to_string()
        } else {
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("git commit failed")
                .trim_start_matches("fatal: ")
                .trim_start_matches("error: ")
                .to_string()
        };
        return Err(PushError::Commit {
            file: shown,
            message,
        });
    }
    let rev = git(&["rev-parse", "HEAD"])
        .output()
        .await
        .map_err(PushError::Spawn)?;
    let rev = String::from_utf8_lossy(&rev.stdout).trim().to_string();
    let pushed = push_current_branch(dir).await?;
    Ok(Committed { rev, pushed })
}

/// Removes credentials from a remote URL: the password always, the user name too except
/// for ssh (where `git@` is the account, not a secret).
/// A URL's query string and fragment are dropped too (`?access_token=…`).
pub fn strip_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // scp-like `user@host:path` is ssh; a local path has nothing to strip.
        return url.to_string();
    };
    let url = &url[..url[scheme_end..]
        .find(['?', '#'])
        .map_or(url.len(), |i| scheme_end + i)];
    let scheme = &url[..scheme_end];
    let rest = &url[scheme_end + 3..];
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let host = &authority[at + 1..];
    let is_ssh = scheme
        .split('+')
        .any(|part| part.eq_ignore_ascii_case("ssh"));
    let kept = if is_ssh {
        let user = userinfo.split(':').next().unwrap_or("");
        if user.is_empty() {
            String::new()
        } else {
            format!("{user}@")
        }
    } else {
        String::new()
    };
    format!("{scheme}://{kept}{host}{}", &rest[auth_end..])
}

#[cfg(test)]
mod tests {
    use super::strip_credentials as s;
    use git2::Repository;

    #[test]
    fn query_strings_and_fragments_are_dropped() {
        assert_eq!(
            s("https://git.example.com/org/repo.git?access_token=secret#frag"),
            "https://git.example.com/org/repo.git"
        );
        assert_eq!(s("https://u:p@h/r.git?private_token=x"), "https://h/r.git");
    }

    #[test]
    fn https_password_and_user_removed() {
        assert_eq!(
            s("https://alice:hunter2@github.com/org/repo.git"),
            "https://github.com/org/repo.git"
        );
        assert_eq!(
            s("https://token@github.com/org/repo"),
            "https://github.com/org/repo"
        );
        assert_eq!(s("http://u:p@127.0.0.1:8080/r"), "http://127.0.0.1:8080/r");
    }

    #[test]
    fn ssh_keeps_user_drops_password() {
        assert_eq!(s("ssh://git@host/org/r.git"), "ssh://git@host/org/r.git");
        assert_eq!(s("ssh://git:secret@host:22/r"), "ssh://git@host:22/r");
        assert_eq!(s("git+ssh://me:pw@host/r"), "git+ssh://me@host/r");
        assert_eq!(
            s("git@github.com:org/repo.git"),
            "git@github.com:org/repo.git"
        );
    }

    #[test]
    fn urls_without_credentials_unchanged() {
        for u in [
            "file:///srv/git/r.git",
            "/srv/git/r.git",
            "https://github.com/org/repo",
            "https://host/path/with@sign",
        ] {
            assert_eq!(s(u), u);
        }
    }

    #[test]
    fn at_sign_in_password_handled() {
        assert_eq!(s("https://u:p@ss@host/r"), "https://host/r");
    }

    #[test]
    fn cli_and_libgit2_agree_on_dirty_paths() {
        let d = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(d.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        for f in ["a.txt", "b.txt", "c d.txt", "old.txt"] {
            std::fs::write(d.path().join(f), f).unwrap();
        }
        git(&["add", "-A"]);
        git(&["commit", "-qm", "x"]);
        std::fs::write(d.path().join("a.txt"), "changed").unwrap(); // modified
        std::fs::write(d.path().join("c d.txt"), "changed").unwrap(); // name with a space
        std::fs::write(d.path().join("new.txt"), "n").unwrap();
        git(&["add", "new.txt"]); // staged
        git(&["mv", "old.txt", "renamed.txt"]); // renamed
        std::fs::write(d.path().join("untracked.txt"), "u").unwrap(); // does not count
        let repo = Repository::open(d.path()).unwrap();
        let mut cli = super::dirty_paths_cli(d.path()).unwrap();
        let mut lib = super::dirty_paths_libgit2(&repo).unwrap();
        cli.sort();
        lib.sort();
        assert_eq!(cli, ["a.txt", "c d.txt", "new.txt", "renamed.txt"]);
        assert!(lib.contains(&"a.txt".to_string()) && lib.contains(&"c d.txt".to_string()));
        assert!(
            lib.contains(&"new.txt".to_string()) && !lib.contains(&"untracked.txt".to_string())
        );
    }
}
