//! The build's process: bash in its own process group under a supervisor, with only the
//! allowed environment, the whole group killed on cancel, timeout, exit or drop.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::event::{EventTx, Stream};

use super::log::pump;

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
pub(super) const SUPERVISOR: &str = r#"trap 'kill -KILL 0' USR1
bash "$@" &
wait $!
s=$?
case $s in
  129|130|137|141|142|143) trap - USR1; kill -$((s - 128)) $$ ;;
esac
exit $s"#;

/// How a contained command ended, other than by exiting.
pub(super) enum Stopped {
    Cancelled,
    TimedOut,
    /// It wrote more than the capture allows to stdout.
    OutputCapped,
    Spawn(std::io::Error),
    Wait(std::io::Error),
}

/// What a contained command's stdout is for.
pub(super) enum StdoutTo {
    /// Each line a log event.
    Log,
    /// Captured, at most this many bytes (more stops the command).
    Capture(u64),
}

/// Runs `script` with bash in `dir` under the build's rules: its own process group (with
/// everything it starts, killed when it ends, is cancelled, times out or pubdeck dies), no
/// secrets in its environment, stdin closed, stderr (and stdout unless captured) streamed
/// as log events. Returns its exit status and the captured stdout.
pub(super) struct Contained<'a> {
    /// bash flags (`-e` for builds).
    pub(super) flags: &'a [&'a str],
    pub(super) script: &'a str,
    pub(super) dir: &'a Path,
    /// Variables set on top of the scrubbed environment.
    pub(super) env: &'a [(&'a str, &'a std::ffi::OsStr)],
    pub(super) stdout_to: StdoutTo,
    pub(super) deadline: Option<tokio::time::Instant>,
}

pub(super) async fn run_contained(
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
