//! Clean builds: clone the repository at HEAD into a fresh temp dir (so only committed,
//! tracked files exist), run the build's `command` with bash there, stream its output.
//!
//! The command runs in its own process group; cancel, timeout and normal exit all end the
//! whole group, so nothing the build started outlives it. The clone is removed as soon as
//! the command exits; `$out` lives in a private directory of its own, at a path exactly as
//! long as its final store path ([`OutLocation`]), until the caller packs it, keeps it
//! (`pubdeck build` → `result-<name>`) or drops it.

mod log;
mod out;
mod process;

pub use log::save_log;
pub use out::{OutLocation, Output};
pub use process::{BUILD_ENV_ALLOWED, PASS_ENV_VAR};

use crate::event::Hinted;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::event::{Event, EventTx, Stage};
use crate::manifest::{Build, Env, VersionSpec};

use out::{CLONE_PREFIX, mark_owner, remove_any, sweep_stale_once};
use process::{Contained, StdoutTo, Stopped, run_contained};

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

#[cfg(test)]
mod tests;
