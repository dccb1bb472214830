//! Clean builds from a fresh clone: logs stream as events, only committed files exist,
//! cancel and timeout end the whole process group, temp dirs always go away.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::Repo;
use pubdeck::build::{self, BuildError, Request};
use pubdeck::event::{self, Event, Stream};
use pubdeck::manifest::Manifest;
use tokio_util::sync::CancellationToken;

fn request(repo: &Repo, name: &str) -> Request {
    let m = Manifest::load(&repo.work.join(".flox/env/manifest.toml")).unwrap();
    Request {
        repo: repo.work.clone(),
        rev: repo.head(),
        env_subdir: PathBuf::new(),
        build: m.build(name).unwrap().clone(),
        timeout: None,
        fallback_version: None,
    }
}

async fn run(
    req: &Request,
    cancel: &CancellationToken,
) -> (Result<build::Output, BuildError>, Vec<Event>) {
    let (tx, mut rx) = event::channel();
    let collector = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(e) = rx.recv().await {
            v.push(e);
        }
        v
    });
    let r = build::run(req, &tx, cancel).await;
    drop(tx);
    (r, collector.await.unwrap())
}

fn logs(events: &[Event]) -> Vec<(Stream, String)> {
    events
        .iter()
        .flat_map(|e| match e {
            Event::Log { stream, lines } => {
                lines.iter().map(|l| (*stream, l.to_string())).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

fn cloned_dir(events: &[Event]) -> PathBuf {
    events
        .iter()
        .find_map(|e| match e {
            Event::Cloned { dir, .. } => Some(dir.clone()),
            _ => None,
        })
        .expect("a Cloned event")
}

fn with_build(command: &str) -> Repo {
    Repo::with_manifest(&format!(
        "version = 1\n[install]\nhello.pkg-path = \"hello\"\n[build.t]\nversion = \"2.0\"\ndescription = \"d\"\ncommand = '''\n{command}\n'''\n"
    ))
}

#[tokio::test]
async fn builds_from_committed_files_only_and_streams_logs() {
    let repo = with_build(
        "echo \"v=$version d=$description\"\necho to-stderr >&2\ntest ! -e uncommitted.txt\nmkdir -p $out/bin\ncp committed.txt $out/\n",
    );
    repo.write("committed.txt", "in git\n");
    repo.commit_all("add file");
    repo.write("uncommitted.txt", "not in git\n");
    let req = request(&repo, "t");
    let (r, events) = run(&req, &CancellationToken::new()).await;
    let out = r.unwrap_or_else(|e| panic!("{e}: {:?}", logs(&events)));
    assert_eq!(out.version.as_deref(), Some("2.0"));
    assert_eq!(out.store_name(), "t-2.0");
    assert_eq!(
        std::fs::read_to_string(out.path().join("committed.txt")).unwrap(),
        "in git\n"
    );
    let l = logs(&events);
    assert!(l.contains(&(Stream::Stdout, "v=2.0 d=d".into())), "{l:?}");
    assert!(l.contains(&(Stream::Stderr, "to-stderr".into())), "{l:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::BuildExited { code: Some(0), .. }))
    );
    // the clone is gone already; $out goes with the Output
    assert!(!cloned_dir(&events).exists());
    let root = out.path().parent().unwrap().to_path_buf();
    drop(out);
    assert!(!root.exists());
}

#[tokio::test]
async fn out_may_be_a_single_file() {
    let repo = with_build("echo foo > $out");
    let (r, _) = run(&request(&repo, "t"), &CancellationToken::new()).await;
    let out = r.unwrap();
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "foo\n");
}

#[tokio::test]
async fn empty_output_fails_clearly() {
    for cmd in ["true", "mkdir -p $out"] {
        let repo = with_build(cmd);
        let (r, events) = run(&request(&repo, "t"), &CancellationToken::new()).await;
        let err = r.unwrap_err();
        assert!(matches!(err, BuildError::EmptyOutput { .. }), "{err}");
        assert_eq!(err.to_string(), "build `t` wrote nothing to $out");
        assert!(!cloned_dir(&events).exists());
    }
}

#[tokio::test]
async fn failing_command_reports_exit_code_and_cleans_up() {
    let repo = with_build("echo before\nfalse\necho never");
    let (r, events) = run(&request(&repo, "t"), &CancellationToken::new()).await;
    let err = r.unwrap_err();
    assert_eq!(err.to_string(), "build `t` failed with exit code 1");
    let l = logs(&events);
    assert_eq!(
        l,
        vec![(Stream::Stdout, "before".to_string())],
        "bash -e stops at the failure"
    );
    assert!(!cloned_dir(&events).exists());
}

#[tokio::test]
async fn long_and_non_utf8_lines_survive() {
    let repo = with_build(
        "head -c 3000000 /dev/zero | tr '\\0' 'x'; echo\nprintf 'caf\\xe9\\n'\nprintf '\\033[31mred\\033[0m\\n'\nmkdir -p $out && touch $out/x",
    );
    let (r, events) = run(&request(&repo, "t"), &CancellationToken::new()).await;
    r.unwrap();
    let l = logs(&events);
    let xs: usize = l
        .iter()
        .filter(|(_, s)| s.starts_with('x'))
        .map(|(_, s)| s.len())
        .sum();
    assert_eq!(xs, 3_000_000, "long line delivered in chunks, nothing lost");
    assert!(l.iter().all(|(_, s)| s.len() <= build::MAX_LINE));
    assert!(l.contains(&(Stream::Stdout, "caf\u{fffd}".into())));
    assert!(
        l.contains(&(Stream::Stdout, "\x1b[31mred\x1b[0m".into())),
        "ANSI kept"
    );
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

async fn wait_for_pidfile(dir: &std::path::Path) -> i32 {
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(dir.join("bg.pid"))
            && let Ok(p) = s.trim().parse()
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the build never wrote its pid file");
}

#[tokio::test]
async fn cancel_kills_the_whole_process_group() {
    let pid_dir = tempfile::tempdir().unwrap();
    let repo = with_build(&format!(
        "sleep 300 &\necho $! > {}/bg.pid\necho started\nsleep 300",
        pid_dir.path().display()
    ));
    let req = request(&repo, "t");
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let handle = tokio::spawn(async move { run(&req, &c2).await });
    let bg = wait_for_pidfile(pid_dir.path()).await;
    assert!(process_alive(bg));
    cancel.cancel();
    let (r, events) = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(r.unwrap_err(), BuildError::Cancelled { .. }));
    // reaped by init shortly after the kill; give it a moment
    for _ in 0..100 {
        if !process_alive(bg) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!process_alive(bg), "background child of the build survived");
    assert!(!cloned_dir(&events).exists());
}

#[tokio::test]
async fn timeout_stops_the_build() {
    let repo = with_build("sleep 300");
    let mut req = request(&repo, "t");
    req.timeout = Some(Duration::from_millis(300));
    let (r, _) = run(&req, &CancellationToken::new()).await;
    let err = r.unwrap_err();
    assert!(matches!(err, BuildError::TimedOut { .. }), "{err}");
}

#[tokio::test]
async fn background_children_do_not_hold_the_build_open() {
    // A build that leaves a daemon behind still finishes, and the daemon is killed.
    let pid_dir = tempfile::tempdir().unwrap();
    let repo = with_build(&format!(
        "sleep 300 &\necho $! > {}/bg.pid\nmkdir -p $out && touch $out/done",
        pid_dir.path().display()
    ));
    let (r, _) = tokio::time::timeout(
        Duration::from_secs(20),
        run(&request(&repo, "t"), &CancellationToken::new()),
    )
    .await
    .expect("build finished although a background child holds stdout");
    r.unwrap();
    let bg = wait_for_pidfile(pid_dir.path()).await;
    for _ in 0..100 {
        if !process_alive(bg) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!process_alive(bg));
}

#[tokio::test]
async fn version_from_file_and_command() {
    let repo = Repo::with_manifest(
        "version = 1\n[install]\nh.pkg-path = \"h\"\n[build.f]\nversion.file = \"VERSION\"\ncommand = \"mkdir -p $out && echo $version > $out/v\"\n[build.c]\nversion.command = \"echo 3.$((1+1))\"\ncommand = \"mkdir -p $out && echo $version > $out/v\"\n",
    );
    repo.write("VERSION", "1.4.2\n");
    repo.commit_all("version");
    let (r, _) = run(&request(&repo, "f"), &CancellationToken::new()).await;
    let out = r.unwrap();
    assert_eq!(out.version.as_deref(), Some("1.4.2"));
    assert_eq!(
        std::fs::read_to_string(out.path().join("v")).unwrap(),
        "1.4.2\n"
    );
    let (r, _) = run(&request(&repo, "c"), &CancellationToken::new()).await;
    assert_eq!(r.unwrap().store_name(), "c-3.2");
}

/// `version.file` is a bounded regular file inside the clone: a link to a FIFO (which once hung
/// the build past its timeout), to a device, a path out of the clone, a directory — each is
/// refused at once with one sentence, and the clone is removed.
#[tokio::test]
async fn version_file_is_a_regular_file_inside_the_clone() {
    let outside = tempfile::tempdir().unwrap();
    let fifo = outside.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::write(outside.path().join("VERSION"), "6.6.6\n").unwrap();
    let outside_rel = format!(
        "{}/VERSION",
        "../".repeat(20) + outside.path().to_str().unwrap().trim_start_matches('/')
    );
    for (file, link_to, why) in [
        (
            "FIFO",
            Some(fifo.to_str().unwrap()),
            "outside the repository",
        ),
        ("ZERO", Some("/dev/zero"), "outside the repository"),
        (
            "ABS",
            Some(outside.path().join("VERSION").to_str().unwrap()),
            "outside the repository",
        ),
        (outside_rel.as_str(), None, "outside the repository"),
        ("DIR", Some("sub"), "not a regular file"),
    ] {
        let repo = Repo::with_manifest(&format!(
            "version = 1\n[install]\nh.pkg-path = \"h\"\n[build.f]\nversion.file = \"{file}\"\ncommand = \"mkdir -p $out && echo $version > $out/v\"\n"
        ));
        repo.write("sub/keep", "x");
        if let Some(target) = link_to {
            std::os::unix::fs::symlink(target, repo.work.join(file)).unwrap();
        }
        repo.commit_all("version file");
        let mut req = request(&repo, "f");
        req.timeout = Some(Duration::from_secs(30));
        let (r, events) = tokio::time::timeout(
            Duration::from_secs(60),
            run(&req, &CancellationToken::new()),
        )
        .await
        .unwrap_or_else(|_| panic!("{file}: the build hangs"));
        let err = r.unwrap_err().to_string();
        assert!(err.contains(why), "{file}: {err}");
        assert!(!err.contains("6.6.6"), "{err}");
        assert!(!cloned_dir(&events).exists(), "the clone is removed");
    }
}

#[test]
fn cli_build_prints_result_path() {
    let repo = Repo::new();
    let out = common::pubdeck(&["build", "hello", "--dir", repo.work.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let path = PathBuf::from(common::stdout(&out).trim());
    assert_eq!(path, repo.work.join("result-hello"));
    let hello = path.join("bin/hello");
    let status = std::process::Command::new(&hello).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "hello\n");
    // the result lives under .flox/cache, which .flox/.gitignore ignores: checks stay green
    let r = pubdeck::git::evaluate(&repo.work, None, &pubdeck::git::Options::default());
    assert!(r.ok(), "{:#?}", r.checks);
    let failed = common::pubdeck(&["build", "nope", "--dir", repo.work.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1));
}

fn with_version_command(version_command: &str) -> Repo {
    Repo::with_manifest(&format!(
        "version = 1\n[install]\nh.pkg-path = \"h\"\n[build.v]\nversion.command = '''{version_command}'''\ncommand = \"mkdir -p $out && echo $version > $out/v\"\n"
    ))
}

#[tokio::test]
async fn version_command_obeys_the_timeout_and_cancel() {
    let pid_dir = tempfile::tempdir().unwrap();
    let repo = with_version_command(&format!(
        "sleep 300 & echo $! > {}/bg.pid; sleep 20; echo 1.0",
        pid_dir.path().display()
    ));
    let mut req = request(&repo, "v");
    req.timeout = Some(Duration::from_secs(2));
    let t = std::time::Instant::now();
    let (r, events) = run(&req, &CancellationToken::new()).await;
    let err = r.unwrap_err();
    assert!(matches!(err, BuildError::TimedOut { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!cloned_dir(&events).exists(), "the clone is removed");
    let bg = wait_for_pidfile(pid_dir.path()).await;
    for _ in 0..100 {
        if !process_alive(bg) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !process_alive(bg),
        "version.command's process group is killed"
    );

    // Cancel stops it too.
    let req = request(&repo, "v");
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let handle = tokio::spawn(async move { run(&req, &c2).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel.cancel();
    let (r, _) = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(r.unwrap_err(), BuildError::Cancelled { .. }));
}

#[tokio::test]
async fn version_command_output_is_capped() {
    // 1.5 GB of output: stopped at the cap, a clear error, the clone removed.
    let repo = with_version_command("head -c 1500000000 /dev/zero | tr '\\\\0' 'x'");
    let t = std::time::Instant::now();
    let (r, events) = run(&request(&repo, "v"), &CancellationToken::new()).await;
    let err = r.unwrap_err().to_string();
    assert!(err.contains("printed more than 64 KiB"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(!cloned_dir(&events).exists());
}

#[test]
fn the_build_sees_no_secrets() {
    let repo = Repo::with_manifest(
        "version = 1\n[install]\nh.pkg-path = \"h\"\n[build.env]\ncommand = \"mkdir -p $out && env > $out/env && echo HOME=$HOME > $out/home\"\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(["build", "env", "--dir"])
        .arg(&repo.work)
        .env("PUBDECK_TOKEN", "pdk_the_catalog_token")
        .env("PUBDECK_SIGNING_KEY", "/secret/key")
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret")
        .env("AWS_SESSION_TOKEN", "aws-session")
        .env("GOOGLE_APPLICATION_CREDENTIALS", "/gcp.json")
        .env("GITHUB_TOKEN", "ghp_the_ci_token")
        .env("CI_JOB_TOKEN", "gitlab-job-token")
        .env("NPM_TOKEN", "npm-token")
        .env("NIX_CONFIG", "access-tokens = github.com=ghp_in_nix_config")
        .env("SOME_OTHER_SETTING", "named")
        .env("LC_ALL", "C.UTF-8")
        .env("PUBDECK_BUILD_ENV", "SOME_OTHER_SETTING,PUBDECK_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = std::fs::read_to_string(repo.work.join("result-env/env")).unwrap();
    for secret in [
        "pdk_the_catalog_token",
        "/secret/key",
        "aws-secret",
        "aws-session",
        "/gcp.json",
        "ghp_the_ci_token",
        "gitlab-job-token",
        "npm-token",
        "ghp_in_nix_config",
    ] {
        assert!(!env.contains(secret), "the build saw {secret}:\n{env}");
    }
    // Passed on purpose (PUBDECK_BUILD_ENV), and the locale; pubdeck's own never.
    assert!(env.contains("SOME_OTHER_SETTING=named"), "{env}");
    assert!(env.contains("LC_ALL=C.UTF-8"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")));
}

/// kill -9 of pubdeck in the middle of a build: the build and what it started in the
/// background die with it at once, and the next build removes the clone and `$out`'s directory
/// the killed one left.
#[test]
fn kill_nine_takes_the_build_with_it_and_the_next_build_sweeps_its_directories() {
    let pid_dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo = with_build(&format!(
        "echo $out > {dir}/out\nsleep 300 &\necho $! > {dir}/bg.pid\nsleep 300",
        dir = pid_dir.path().display()
    ));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(["build", "t", "--dir"])
        .arg(&repo.work)
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bg = rt.block_on(wait_for_pidfile(pid_dir.path()));
    let out = PathBuf::from(
        std::fs::read_to_string(pid_dir.path().join("out"))
            .unwrap()
            .trim(),
    );
    let out_dir = out.parent().unwrap().to_path_buf();
    let clones = || -> Vec<PathBuf> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("pubdeck-build-")
            })
            .collect()
    };
    assert_eq!(clones().len(), 1);
    assert!(out_dir.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    for _ in 0..250 {
        if !process_alive(bg) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !process_alive(bg),
        "the build's background process outlived pubdeck"
    );
    // What the killed one left is removed by the next build.
    let next = std::process::Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(["build", "hello", "--dir"])
        .arg(Repo::new().work)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    assert!(clones().is_empty(), "{:?}", clones());
    assert!(!out_dir.exists(), "{} stays", out_dir.display());
}

#[test]
fn sigterm_and_sighup_stop_a_build_like_sigint() {
    for signal in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
        let pid_dir = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let repo = with_build(&format!(
            "sleep 300 &\necho $! > {}/bg.pid\nsleep 300",
            pid_dir.path().display()
        ));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pubdeck"))
            .args(["build", "t", "--dir"])
            .arg(&repo.work)
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bg = rt.block_on(wait_for_pidfile(pid_dir.path()));
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "signal {signal}");
        for _ in 0..100 {
            if !process_alive(bg) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !process_alive(bg),
            "signal {signal}: the build's children survived"
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "signal {signal}: {left:?} left in TMPDIR");
    }
}
