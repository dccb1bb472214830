//! Clean builds: clone the repository at HEAD into a fresh temp dir (so only committed,
//! tracked files exist), run the build's `command` with bash there, stream its output.
//!
//! The command runs in its own process group; cancel, timeout and normal exit all end the
//! whole group, so nothing the build started outlives it. The clone is removed as soon as
//! the command exits; `$out` lives in a private directory of its own, at a path exactly as
//! long as its final store path ([`OutLocation`]), until the caller packs it, keeps it
//! (`pubdeck build` → `result-<name>`) or drops it.

use crate::event::Hinted;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncRead;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::closure::BuiltAs;
use crate::event::{Event, EventTx, LogLines, Stage, Stream};
use crate::manifest::{Build, Env, VersionSpec};

/// Longest log line sent as one event; longer lines are split (nothing is dropped).
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot clone {repo} at {rev}: {message}")]
    Clone {
        repo: PathBuf,
        rev: String,
        message: String,
    },
    #[error("cannot prepare the build directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot start bash for build `{name}`: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot determine the version of build `{name}`: {message}")]
    Version { name: String, message: String },
    #[error("build `{name}` failed with exit code {code}")]
    Failed { name: String, code: i32 },
    #[error("build `{name}` was killed by signal {signal}")]
    Killed { name: String, signal: i32 },
    #[error("build `{name}` was cancelled")]
    Cancelled { name: String },
    #[error("build `{name}` did not finish within {}s and was stopped", .after.as_secs())]
    TimedOut { name: String, after: Duration },
    #[error("cannot keep the build output: {0}")]
    Keep(std::io::Error),
    #[error("cannot create the build's private output directory in /tmp: {0}")]
    OutDir(std::io::Error),
    #[error("build `{name}` wrote nothing to $out")]
    EmptyOutput { name: String },
    /// The build cannot start: no such build, no committed state, a broken manifest.
    #[error("{message}")]
    Prepare {
        message: String,
        hint: Option<String>,
        /// The manifest line it is about, with a caret (see `ManifestError::excerpt`).
        excerpt: Vec<String>,
    },
}

impl BuildError {
    /// The source line an error is about, with a caret under its column (or nothing).
    pub fn excerpt(&self) -> Vec<String> {
        match self {
            BuildError::Prepare { excerpt, .. } => excerpt.clone(),
            _ => Vec::new(),
        }
    }
}

impl crate::event::Hinted for BuildError {
    fn hint(&self) -> Option<String> {
        match self {
            BuildError::EmptyOutput { .. } => Some(
                "the command must create $out, e.g. `mkdir -p $out/bin && cp mytool $out/bin/`"
                    .into(),
            ),
            BuildError::Failed { .. } => {
                Some("the build log shows the failing command; the build ran in a fresh clone, so every file it needs must be committed".into())
            }
            BuildError::Prepare { hint, .. } => hint.clone(),
            BuildError::Version { .. } => Some(
                "version.file must name a committed file; version.command must print the version".into(),
            ),
            _ => None,
        }
    }
}

/// What to build and from where.
#[derive(Debug, Clone)]
pub struct Request {
    /// The repository's work tree (the clone source) and the commit to build.
    pub repo: PathBuf,
    pub rev: String,
    /// The environment directory relative to the repository top level.
    pub env_subdir: PathBuf,
    pub build: Build,
    pub timeout: Option<Duration>,
    /// The version the output is named with when the build declares none (publish uses
    /// `0.0.0+<rev>`); `None`: the store path name is the build name alone.
    pub fallback_version: Option<String>,
}

/// A build request for the committed state of an environment, plus the checks worth a
/// warning (uncommitted or untracked files, which the clean build will not see).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: Request,
    pub warnings: Vec<crate::git::Check>,
}

/// Resolves build `name` of `env` and the commit to build it from (blocking: reads git).
pub fn prepare(env: &Env, name: &str, timeout: Option<Duration>) -> Result<Prepared, BuildError> {
    let manifest = env.manifest().map_err(|e| BuildError::Prepare {
        message: e.to_string(),
        hint: e.hint(),
        excerpt: e.excerpt(),
    })?;
    let build = manifest
        .build(name)
        .cloned()
        .ok_or_else(|| BuildError::Prepare {
            message: format!("{} has no build named `{name}`", manifest.path.display()),
            hint: Some(match manifest.nearest_build(name) {
                Some(n) => format!("did you mean `{n}`?"),
                None if manifest.builds.is_empty() => {
                    "the manifest defines no build; add a [build.NAME] table".into()
                }
                None => format!(
                    "its builds: {}",
                    manifest
                        .builds
                        .iter()
                        .map(|b| b.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
            excerpt: Vec::new(),
        })?;
    let opts = crate::git::Options {
        fetch: false,
        ..Default::default()
    };
    let report = crate::git::evaluate(&env.dir, None, &opts);
    let Some(source) = report.source.clone().filter(|s| s.rev.is_some()) else {
        let (message, hint) = report
            .checks
            .iter()
            .find(|c| {
                !c.ok && (c.id == crate::git::id::GIT_REPO || c.id == crate::git::id::UPSTREAM)
            })
            .map(|c| (c.message.clone(), c.hint.clone()))
            .unwrap_or((
                "the environment has no committed state to build".into(),
                None,
            ));
        return Err(BuildError::Prepare {
            message: format!("cannot clean-build: {message}"),
            hint,
            excerpt: Vec::new(),
        });
    };
    let warnings = report
        .checks
        .into_iter()
        .filter(|c| !c.ok && (c.id == crate::git::id::CLEAN || c.id == crate::git::id::ENV_TRACKED))
        .collect();
    Ok(Prepared {
        request: Request {
            repo: source.workdir,
            rev: source.rev.unwrap_or_default(),
            env_subdir: source.env_subdir,
            build,
            timeout,
            fallback_version: None,
        },
        warnings,
    })
}

/// Where a kept build output lives: `.flox/cache/pubdeck/result-<name>` (ignored by Flox's
/// `.flox/.gitignore`); `result-<name>` in the environment links to it.
pub fn result_path(env: &Env, name: &str) -> PathBuf {
    env.flox_dir()
        .join("cache/pubdeck")
        .join(format!("result-{name}"))
}

/// `result-<name>` in the environment directory: the link to the kept output.
pub fn result_link(env: &Env, name: &str) -> PathBuf {
    env.dir.join(format!("result-{name}"))
}

/// A build output kept for the user ("build only").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Kept {
    pub build: String,
    pub version: Option<String>,
    /// Where the output lives ([`result_path`]).
    pub path: PathBuf,
    /// The `result-<name>` link to it, unless it could not be made (then `link_error`).
    pub link: Option<PathBuf>,
    pub link_error: Option<String>,
}

/// "Build only": the clean build of `name` at the environment's committed state, kept as
/// [`result_path`] with a `result-<name>` link beside the manifest. Sends the warnings of
/// [`prepare`] as `Check` events, then the build's own events.
pub async fn build_and_keep(
    env: &Env,
    name: &str,
    timeout: Option<Duration>,
    tx: &EventTx,
    cancel: &CancellationToken,
) -> Result<Kept, BuildError> {
    let (env2, name2) = (env.clone(), name.to_string());
    let prepared = tokio::task::spawn_blocking(move || prepare(&env2, &name2, timeout))
        .await
        .map_err(|e| BuildError::Io(std::io::Error::other(e)))??;
    for warning in prepared.warnings {
        let _ = tx.send(Event::Check(warning)).await;
    }
    let out = run(&prepared.request, tx, cancel).await?;
    let version = out.version.clone();
    let (dest, link) = (result_path(env, name), result_link(env, name));
    let rel = dest.strip_prefix(&env.dir).unwrap_or(&dest).to_path_buf();
    tokio::task::spawn_blocking(move || {
        let path = out.keep(&dest)?;
        let linked = match std::fs::symlink_metadata(&link) {
            // Never replace something that is not our link.
            Ok(m) if !m.file_type().is_symlink() => Err(format!(
                "{} exists and is not a link; remove it to get the link back",
                link.display()
            )),
            _ => {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&rel, &link).map_err(|e| e.to_string())
            }
        };
        let (link, link_error) = match linked {
            Ok(()) => (Some(link), None),
            Err(e) => (None, Some(e)),
        };
        Ok::<_, std::io::Error>(Kept {
            build: String::new(),
            version,
            path,
            link,
            link_error,
        })
    })
    .await
    .map_err(|e| BuildError::Io(std::io::Error::other(e)))?
    .map_err(BuildError::Keep)
    .map(|k| Kept {
        build: name.to_string(),
        ..k
    })
}

/// Where `$out` is built: `/tmp/XXXXX/<32 random nix32>-<name>`, exactly as long as the
/// final `/nix/store/<hash>-<name>`, so references to it can be rewritten in place. The
/// `/tmp/XXXXX` directory is created exclusively with mode 0700: no other user can create
/// or replace anything in it. `$out` itself does not exist until the build creates it.
#[derive(Debug)]
pub struct OutLocation {
    dir: tempfile::TempDir,
    pub built_as: BuiltAs,
}

/// Length of `/nix/store/`, which the private directory's path (with its `/`) must match.
const STORE_PREFIX_LEN: usize = crate::nix::STORE_PREFIX.len();
/// The private directory's name under `/tmp`: as long as `/nix/store/` less `/tmp/` and `/`.
const OUT_DIR_NAME_LEN: usize = STORE_PREFIX_LEN - "/tmp/".len() - 1;

impl OutLocation {
    /// A fresh location for a store path named `name`.
    pub fn new(name: &str) -> std::io::Result<OutLocation> {
        crate::nix::validate_name(name).map_err(std::io::Error::other)?;
        // "/tmp/" + 5 random characters + "/" is as long as "/nix/store/".
        let dir = tempfile::Builder::new()
            .prefix("")
            .rand_bytes(OUT_DIR_NAME_LEN)
            .tempdir_in("/tmp")?;
        let prefix = format!("{}/", dir.path().display());
        if prefix.len() != STORE_PREFIX_LEN {
            return Err(std::io::Error::other(format!(
                "{prefix} is not as long as /nix/store/"
            )));
        }
        let hash = crate::nix::random_hash_part();
        mark_owner(dir.path())?;
        Ok(OutLocation {
            dir,
            built_as: BuiltAs {
                prefix,
                hash,
                name: name.to_string(),
            },
        })
    }

    /// `$out`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.built_as.path())
    }
}

impl Drop for OutLocation {
    fn drop(&mut self) {
        // Builds often leave read-only directories behind.
        make_writable(self.dir.path());
    }
}

/// A finished build: `$out` in a private temp dir that disappears when this is dropped.
#[derive(Debug)]
pub struct Output {
    out: OutLocation,
    pub name: String,
    pub version: Option<String>,
    pub duration: Duration,
}

impl Output {
    /// The path of `$out` (a directory, or a file when the build wrote `$out` as one).
    pub fn path(&self) -> PathBuf {
        self.out.path()
    }

    /// Where `$out` was built (what its references to itself name).
    pub fn built_as(&self) -> &BuiltAs {
        &self.out.built_as
    }

    /// `<name>-<version>` or `<name>`: the store path name.
    pub fn store_name(&self) -> String {
        self.out.built_as.name.clone()
    }

    /// Moves `$out` to `dest` (replacing what was there) and returns `dest`.
    pub fn keep(self, dest: &Path) -> std::io::Result<PathBuf> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let staged = dest.with_file_name(format!(
            ".{}.new",
            dest.file_name().unwrap_or_default().to_string_lossy()
        ));
        remove_any(&staged)?;
        if std::fs::rename(self.path(), &staged).is_err() {
            crate::fsutil::copy_tree(&self.path(), &staged)?;
        }
        remove_any(dest)?;
        std::fs::rename(&staged, dest)?;
        Ok(dest.to_path_buf())
    }
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    crate::fsutil::remove_tree(p)
}

fn make_writable(p: &Path) {
    crate::fsutil::make_writable(p)
}

/// Temporary directories a build makes (the clone's root under `$TMPDIR`, `$out`'s private
/// directory under `/tmp`) hold this file naming the process that made them, so that the next
/// build can remove what a pubdeck killed with -9 left behind.
const OWNER_FILE: &str = ".pubdeck-owner";
const CLONE_PREFIX: &str = "pubdeck-build-";

/// This process as `<pid> <start time>` (the start time tells a reused pid apart).
fn owner_id(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may itself hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 2..];
    let start = after.split(' ').nth(19)?;
    Some(format!("{pid} {start}"))
}

fn mark_owner(dir: &Path) -> std::io::Result<()> {
    let me = owner_id(std::process::id()).unwrap_or_default();
    std::fs::write(dir.join(OWNER_FILE), me)
}

/// Whether the directory's owner (see [`OWNER_FILE`]) is gone: its file names a process that
/// no longer runs. A directory without the file is not ours to judge.
fn owner_is_gone(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
        return false;
    };
    let Some(pid) = text.split(' ').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    owner_id(pid).is_none_or(|now| now != text.trim())
}

/// Removes, once per process, the build directories of pubdecks that died without cleaning up
/// (their processes were killed with them: see [`SUPERVISOR`]). Only this user's directories.
fn sweep_stale_once() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let mut stale = Vec::new();
        let mut look = |dir: &Path, keep: &dyn Fn(&str) -> bool| {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                use std::os::unix::fs::MetadataExt as _;
                let name = e.file_name();
                let ours = e
                    .metadata()
                    .is_ok_and(|m| m.is_dir() && !m.file_type().is_symlink() && m.uid() == me);
                if ours && name.to_str().is_some_and(keep) && owner_is_gone(&e.path()) {
                    stale.push(e.path());
                }
            }
        };
        look(&std::env::temp_dir(), &|n| n.starts_with(CLONE_PREFIX));
        look(Path::new("/tmp"), &|n| n.len() == OUT_DIR_NAME_LEN);
        for dir in stale {
            make_writable(&dir);
            if let Err(e) = remove_any(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a stale build directory");
            } else {
                tracing::info!(dir = %dir.display(), "removed a build directory a killed pubdeck left");
            }
        }
    });
}

/// Kills the whole process group when dropped (cancel, timeout, panic, early return).
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self, signal: i32) {
        if let Some(pgid) = self.0 {
            // SAFETY: killpg has no memory-safety preconditions.
            unsafe {
                libc::killpg(pgid, signal);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill(libc::SIGKILL);
    }
}

/// Runs a clean build, sending `Cloned`, `Log` and `BuildExited` events (and stage events
/// for `Clone` and `Build`).
pub async fn run(
    req: &Request,
    tx: &EventTx,
    cancel: &CancellationToken,
) -> Result<Output, BuildError> {
    let name = req.build.name.clone();
    sweep_stale_once();
    let root = tempfile::Builder::new().prefix(CLONE_PREFIX).tempdir()?;
    mark_owner(root.path())?;
    let src = root.path().join("src");

    let _ = tx
        .send(Event::StageStarted {
            stage: Stage::Clone,
        })
        .await;
    let t = Instant::now();
    let cloned = {
        let (repo, rev, src) = (req.repo.clone(), req.rev.clone(), src.clone());
        tokio::task::spawn_blocking(move || clone_at(&repo, &rev, &src))
            .await
            .expect("clone task panicked")
    };
    let _ = tx
        .send(Event::StageFinished {
            stage: Stage::Clone,
            duration: t.elapsed(),
            ok: cloned.is_ok(),
        })
        .await;
    cloned?;
    let _ = tx
        .send(Event::Cloned {
            rev: req.rev.clone(),
            dir: src.clone(),
        })
        .await;

    let _ = tx
        .send(Event::StageStarted {
            stage: Stage::Build,
        })
        .await;
    let t = Instant::now();
    let result = build_in_clone(req, &src, tx, cancel).await;
    // The clone goes now, whatever happened; `$out` stays until the Output is dropped.
    let src2 = src.clone();
    let _ = tokio::task::spawn_blocking(move || remove_any(&src2)).await;
    let _ = tx
        .send(Event::StageFinished {
            stage: Stage::Build,
            duration: t.elapsed(),
            ok: result.is_ok(),
        })
        .await;
    let (version, out) = result?;
    drop(root);
    Ok(Output {
        out,
        name,
        version,
        duration: t.elapsed(),
    })
}

fn clone_at(repo: &Path, rev: &str, dest: &Path) -> Result<(), BuildError> {
    let err = |message: String| BuildError::Clone {
        repo: repo.to_path_buf(),
        rev: rev.to_string(),
        message,
    };
    let url = repo.to_string_lossy().into_owned();
    let cloned = git2::build::RepoBuilder::new()
        .clone(&url, dest)
        .map_err(|e| err(e.message().to_string()))?;
    let oid = git2::Oid::from_str(rev).map_err(|e| err(e.message().to_string()))?;
    cloned.find_commit(oid).map_err(|_| {
        err("the commit is on no branch of the repository, so a clone cannot see it".into())
    })?;
    cloned
        .set_head_detached(oid)
        .map_err(|e| err(e.message().to_string()))?;
    cloned
        .checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .map_err(|e| err(e.message().to_string()))?;
    Ok(())
}

/// Longest `version.command` output accepted.
const VERSION_OUTPUT_CAP: u64 = 64 * 1024;

/// The variables a build sees from pubdeck's environment, besides `LC_*`: what a shell, a
/// compiler and Nix need to run, nothing that usually holds a secret. Everything else (cloud
/// and CI credentials, `GITHUB_TOKEN`, `NIX_CONFIG` with its access tokens, pubdeck's own
/// token) stays out unless named in [`PASS_ENV_VAR`].
pub const BUILD_ENV_ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NIX_SSL_CERT_FILE",
    "NIX_PATH",
    "NIX_REMOTE",
    "SOURCE_DATE_EPOCH",
];

/// Names more variables a build may see, on purpose: `PUBDECK_BUILD_ENV="NPM_TOKEN CC"`
/// (separated by spaces or commas). pubdeck's own `PUBDECK_*` variables are never passed.
pub const PASS_ENV_VAR: &str = "PUBDECK_BUILD_ENV";

/// The environment a build or `version.command` runs with: the allowed part of pubdeck's.
fn build_environment() -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    let extra = std::env::var(PASS_ENV_VAR).unwrap_or_default();
    let extra: Vec<&str> = extra
        .split([' ', ','])
        .filter(|n| !n.is_empty() && !n.starts_with("PUBDECK_"))
        .collect();
    std::env::vars_os()
        .filter(|(k, _)| {
            k.to_str().is_some_and(|k| {
                BUILD_ENV_ALLOWED.contains(&k) || k.starts_with("LC_") || extra.contains(&k)
            })
        })
        .collect()
}

/// The shell a build (or `version.command`) runs under, in the process group it leads. It
/// starts the build in the background (in the same group) and waits for it. Its parent-death
/// signal is SIGUSR1: when pubdeck dies without cleaning up (kill -9), it kills the whole
/// group, grandchildren included, at once. A build killed by a terminating signal is
/// reported as killed by it (the supervisor re-raises it on itself), not as exit 128+N.
/// (A background job of a non-interactive shell starts with SIGINT and SIGQUIT ignored; a
/// build never gets them from a terminal anyway, since it runs in a group of its own.)
const SUPERVISOR: &str = r#"trap 'kill -KILL 0' USR1
bash "$@" &
wait $!
s=$?
case $s in
  129|130|137|141|142|143) trap - USR1; kill -$((s - 128)) $$ ;;
esac
exit $s"#;

/// How a contained command ended, other than by exiting.
enum Stopped {
    Cancelled,
    TimedOut,
    /// It wrote more than the capture allows to stdout.
    OutputCapped,
    Spawn(std::io::Error),
    Wait(std::io::Error),
}

/// What a contained command's stdout is for.
enum StdoutTo {
    /// Each line a log event.
    Log,
    /// Captured, at most this many bytes (more stops the command).
    Capture(u64),
}

/// Runs `script` with bash in `dir` under the build's rules: its own process group (with
/// everything it starts, killed when it ends, is cancelled, times out or pubdeck dies), no
/// secrets in its environment, stdin closed, stderr (and stdout unless captured) streamed
/// as log events. Returns its exit status and the captured stdout.
struct Contained<'a> {
    /// bash flags (`-e` for builds).
    flags: &'a [&'a str],
    script: &'a str,
    dir: &'a Path,
    /// Variables set on top of the scrubbed environment.
    env: &'a [(&'a str, &'a std::ffi::OsStr)],
    stdout_to: StdoutTo,
    deadline: Option<tokio::time::Instant>,
}

async fn run_contained(
    c: Contained<'_>,
    tx: &EventTx,
    cancel: &CancellationToken,
) -> Result<(std::process::ExitStatus, Vec<u8>), Stopped> {
    let Contained {
        flags,
        script,
        dir,
        env,
        stdout_to,
        deadline,
    } = c;
    let mut cmd = Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-c", SUPERVISOR, "pubdeck-build"])
        .args(["--noprofile", "--norc"])
        .args(flags)
        .args(["-c", script])
        .current_dir(dir)
        .env_clear()
        .envs(build_environment())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // If pubdeck itself is killed (kill -9), the supervisor hears of it and kills the whole
    // group. A parent that died before prctl took effect is caught by the getppid check.
    let parent = std::process::id();
    // SAFETY: prctl, getppid and _exit are async-signal-safe and touch no memory of the
    // parent.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1);
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(Stopped::Spawn)?;
    let mut group = GroupGuard(child.id().map(|p| p as i32));
    let out = child.stdout.take().expect("piped");
    let (capped_tx, mut capped_rx) = tokio::sync::oneshot::channel::<()>();
    let log_tx = tx.clone();
    let stdout = match stdout_to {
        StdoutTo::Log => tokio::spawn(async move {
            pump(out, Stream::Stdout, log_tx).await;
            Vec::new()
        }),
        StdoutTo::Capture(max) => tokio::spawn(async move {
            use tokio::io::AsyncReadExt as _;
            let mut buf = Vec::new();
            let mut limited = out.take(max + 1);
            let _ = limited.read_to_end(&mut buf).await;
            if buf.len() as u64 > max {
                let _ = capped_tx.send(());
            }
            buf
        }),
    };
    let stderr = tokio::spawn(pump(
        child.stderr.take().expect("piped"),
        Stream::Stderr,
        tx.clone(),
    ));
    let timeout = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => status.map_err(Stopped::Wait),
        _ = cancel.cancelled() => Err(Stopped::Cancelled),
        _ = timeout => Err(Stopped::TimedOut),
        Ok(()) = &mut capped_rx => Err(Stopped::OutputCapped),
    };
    // Whatever happened, nothing it started may outlive it; this also closes the pipes
    // held by background children so the readers finish.
    if outcome.is_err() {
        group.kill(libc::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(2), child.wait())
            .await
            .is_err()
        {
            group.kill(libc::SIGKILL);
        }
    }
    group.kill(libc::SIGKILL);
    group.0 = None;
    let _ = child.wait().await;
    let captured = stdout.await.unwrap_or_default();
    let _ = stderr.await;
    outcome.map(|status| (status, captured))
}

async fn resolve_version(
    build: &Build,
    clone_root: &Path,
    env_dir: &Path,
    deadline: Option<tokio::time::Instant>,
    tx: &EventTx,
    cancel: &CancellationToken,
) -> Result<Option<String>, BuildError> {
    let name = &build.name;
    let err = |message: String| BuildError::Version {
        name: name.clone(),
        message,
    };
    let v = match &build.version {
        None => return Ok(None),
        Some(VersionSpec::Literal(v)) => v.clone(),
        Some(VersionSpec::File(f)) => {
            let (root, path) = (clone_root.to_path_buf(), env_dir.join(f));
            let read = tokio::task::spawn_blocking(move || {
                crate::manifest::read_version_file(&root, &path, VERSION_OUTPUT_CAP)
            });
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let text = tokio::select! {
                r = read => r.map_err(|e| err(format!("cannot read {f}: {e}")))?,
                () = cancel.cancelled() => return Err(BuildError::Cancelled { name: name.clone() }),
                () = timeout => return Err(BuildError::TimedOut { name: name.clone(), after: Duration::ZERO }),
            };
            text.map_err(|why| err(format!("version.file {f:?}: {why}")))?
                .trim()
                .to_string()
        }
        Some(VersionSpec::Command(c)) => {
            let contained = Contained {
                flags: &[],
                script: c,
                dir: env_dir,
                env: &[("FLOX_ENV_PROJECT", env_dir.as_os_str())],
                stdout_to: StdoutTo::Capture(VERSION_OUTPUT_CAP),
                deadline,
            };
            let ran = run_contained(contained, tx, cancel).await;
            let (status, out) = match ran {
                Ok(r) => r,
                Err(Stopped::Cancelled) => {
                    return Err(BuildError::Cancelled { name: name.clone() });
                }
                Err(Stopped::TimedOut) => {
                    return Err(BuildError::TimedOut {
                        name: name.clone(),
                        after: Duration::ZERO,
                    });
                }
                Err(Stopped::OutputCapped) => {
                    return Err(err(format!(
                        "version.command printed more than {} KiB; it must print the version only",
                        VERSION_OUTPUT_CAP / 1024
                    )));
                }
                Err(Stopped::Spawn(e) | Stopped::Wait(e)) => {
                    return Err(err(format!("cannot run bash: {e}")));
                }
            };
            if !status.success() {
                return Err(err(format!(
                    "version.command failed ({status}); its error output is in the log"
                )));
            }
            String::from_utf8_lossy(&out).trim().to_string()
        }
    };
    crate::manifest::check_version(&v).map_err(|e| err(e.to_string()))?;
    Ok(Some(v))
}

async fn build_in_clone(
    req: &Request,
    src: &Path,
    tx: &EventTx,
    cancel: &CancellationToken,
) -> Result<(Option<String>, OutLocation), BuildError> {
    let name = &req.build.name;
    let env_dir = src.join(&req.env_subdir);
    // One deadline for version.command and the build.
    let deadline = req.timeout.map(|d| tokio::time::Instant::now() + d);
    let timed_out = || BuildError::TimedOut {
        name: name.clone(),
        after: req.timeout.unwrap_or_default(),
    };
    let version = match resolve_version(&req.build, src, &env_dir, deadline, tx, cancel).await {
        Err(BuildError::TimedOut { .. }) => return Err(timed_out()),
        other => other?,
    };
    let store_name = match version.as_ref().or(req.fallback_version.as_ref()) {
        Some(v) => format!("{name}-{v}"),
        None => name.clone(),
    };
    let location = OutLocation::new(&store_name).map_err(BuildError::OutDir)?;
    let out_path = location.path();
    let out = out_path.as_path();

    let mut env: Vec<(&str, &std::ffi::OsStr)> = vec![
        ("out", out.as_os_str()),
        ("pname", std::ffi::OsStr::new(name)),
        ("FLOX_ENV_PROJECT", env_dir.as_os_str()),
    ];
    if let Some(v) = &version {
        env.push(("version", std::ffi::OsStr::new(v)));
    }
    if let Some(d) = &req.build.description {
        env.push(("description", std::ffi::OsStr::new(d)));
    }
    let contained = Contained {
        flags: &["-e"],
        script: &req.build.command,
        dir: &env_dir,
        env: &env,
        stdout_to: StdoutTo::Log,
        deadline,
    };
    let ran = run_contained(contained, tx, cancel).await;
    let status = match ran {
        Ok((status, _)) => status,
        Err(Stopped::Cancelled) => return Err(BuildError::Cancelled { name: name.clone() }),
        Err(Stopped::TimedOut) => return Err(timed_out()),
        Err(Stopped::OutputCapped) => unreachable!("the build's output is streamed"),
        Err(Stopped::Spawn(source)) => {
            return Err(BuildError::Spawn {
                name: name.clone(),
                source,
            });
        }
        Err(Stopped::Wait(e)) => return Err(BuildError::Io(e)),
    };
    let _ = tx
        .send(Event::BuildExited {
            code: status.code(),
            signal: status.signal(),
        })
        .await;
    if let Some(signal) = status.signal() {
        return Err(BuildError::Killed {
            name: name.clone(),
            signal,
        });
    }
    if !status.success() {
        return Err(BuildError::Failed {
            name: name.clone(),
            code: status.code().unwrap_or(-1),
        });
    }
    let empty = match std::fs::symlink_metadata(out) {
        Err(_) => true,
        Ok(m) if m.is_dir() => std::fs::read_dir(out)?.next().is_none(),
        Ok(_) => false,
    };
    if empty {
        return Err(BuildError::EmptyOutput { name: name.clone() });
    }
    Ok((version, location))
}

/// Writes a build log (plain text lines) to a new file `<build>-<UTC time>.log` in `dir`
/// (created if missing), readable by the user only; returns its path.
pub fn save_log(dir: &Path, build: &str, lines: &[String]) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let stamp = crate::time::rfc3339(crate::time::now_secs()).replace([':', '-'], "");
    let safe: String = build
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    for n in 0..1000 {
        let name = match n {
            0 => format!("{safe}-{stamp}.log"),
            n => format!("{safe}-{stamp}-{n}.log"),
        };
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match file {
            Ok(f) => {
                let mut w = std::io::BufWriter::new(f);
                for line in lines {
                    w.write_all(line.as_bytes())?;
                    w.write_all(b"\n")?;
                }
                w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "too many logs written this second",
    ))
}

/// Sends the lines of `r` as log events, batched per read (see [`LogLines`]); a line longer
/// than [`MAX_LINE`] is split (nothing is dropped). Reads on when nobody listens any more, so
/// the build never blocks on a full pipe.
async fn pump(mut r: impl AsyncRead + Unpin, stream: Stream, tx: EventTx) {
    use tokio::io::AsyncReadExt as _;
    let mut buf = vec![0u8; 64 * 1024];
    // The start of a line whose end has not been read yet.
    let mut pending: Vec<u8> = Vec::new();
    let mut listening = true;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !listening {
            continue;
        }
        let mut batch = LogLines::default();
        let mut data = &buf[..n];
        while let Some(i) = memchr::memchr(b'\n', data) {
            if pending.is_empty() {
                push_capped(&mut batch, &data[..i]);
            } else {
                pending.extend_from_slice(&data[..i]);
                push_capped(&mut batch, &pending);
                pending.clear();
            }
            data = &data[i + 1..];
            if batch.bytes() >= LogLines::BATCH_BYTES {
                listening = send_lines(&tx, stream, std::mem::take(&mut batch)).await;
            }
        }
        pending.extend_from_slice(data);
        while pending.len() >= MAX_LINE {
            push_line(&mut batch, &pending[..MAX_LINE]);
            pending.drain(..MAX_LINE);
        }
        if listening && !batch.is_empty() {
            listening = send_lines(&tx, stream, batch).await;
        }
    }
    if listening && !pending.is_empty() {
        let mut last = LogLines::default();
        push_line(&mut last, &pending);
        send_lines(&tx, stream, last).await;
    }
}

/// Adds one line, as pieces of at most [`MAX_LINE`] bytes when longer.
fn push_capped(batch: &mut LogLines, mut line: &[u8]) {
    while line.len() > MAX_LINE {
        push_line(batch, &line[..MAX_LINE]);
        line = &line[MAX_LINE..];
    }
    push_line(batch, line);
}

/// Adds one line (without its `\n`; a trailing `\r` is dropped too), lossy UTF-8.
fn push_line(batch: &mut LogLines, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    batch.push(&String::from_utf8_lossy(line));
}

/// Whether anybody still listens.
async fn send_lines(tx: &EventTx, stream: Stream, lines: LogLines) -> bool {
    tx.send(Event::Log { stream, lines }).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A reader that returns the given chunks, one per read.
    struct Chunks(VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if let Some(mut c) = self.0.pop_front() {
                let n = c.len().min(buf.remaining());
                buf.put_slice(&c[..n]);
                if n < c.len() {
                    self.0.push_front(c.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    async fn pumped(chunks: Vec<Vec<u8>>) -> Vec<LogLines> {
        let (tx, mut rx) = crate::event::channel();
        pump(Chunks(chunks.into()), Stream::Stdout, tx).await;
        let mut out = Vec::new();
        while let Ok(Event::Log { lines, .. }) = rx.try_recv() {
            out.push(lines);
        }
        out
    }

    fn all(batches: &[LogLines]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| b.iter().map(str::to_string))
            .collect()
    }

    #[test]
    fn save_log_writes_a_new_private_file_each_time() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let lines = vec!["one".to_string(), "two".to_string()];
        let a = save_log(&logs, "hello", &lines).unwrap();
        let b = save_log(&logs, "he/llo", &lines).unwrap();
        let c = save_log(&logs, "hello", &[]).unwrap();
        assert_ne!(a, c, "a second log never replaces the first");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "");
        assert_eq!(
            b.parent(),
            Some(logs.as_path()),
            "no path separators from the name"
        );
        assert!(
            b.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("he_llo-")
        );
        let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(&logs).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
    }

    #[tokio::test]
    async fn lines_split_across_reads_crlf_invalid_utf8_and_no_final_newline() {
        let got = pumped(vec![
            b"one\r\ntw".to_vec(),
            b"o\n".to_vec(),
            b"\n\xff\xfe bad\nlast".to_vec(),
        ])
        .await;
        assert_eq!(
            all(&got),
            ["one", "two", "", "\u{fffd}\u{fffd} bad", "last"]
        );
        assert_eq!(
            got.len(),
            4,
            "one event per read, and one for the unfinished line"
        );
    }

    #[tokio::test]
    async fn batches_are_bounded_and_keep_order() {
        let text: String = (0..10_000).map(|i| format!("{i:079}\n")).collect();
        let chunks = text.as_bytes().chunks(50_000).map(<[u8]>::to_vec).collect();
        let got = pumped(chunks).await;
        let lines = all(&got);
        assert_eq!(lines.len(), 10_000);
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(i, l)| *l == format!("{i:079}"))
        );
        assert!(got.len() > 10_000 * 79 / (LogLines::BATCH_BYTES + 79));
        assert!(
            got.iter()
                .all(|b| b.bytes() < LogLines::BATCH_BYTES + 80 && !b.is_empty())
        );
    }

    #[tokio::test]
    async fn a_line_longer_than_the_cap_is_split_not_dropped() {
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let mut input = long.clone();
        input.extend_from_slice(b"\nafter\n");
        let chunks = input.chunks(70_000).map(<[u8]>::to_vec).collect();
        let lines = all(&pumped(chunks).await);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1].len(), MAX_LINE);
        assert_eq!(lines[2], "xxxxx");
        assert_eq!(lines[3], "after");
    }
}
