//! The contract between the workbench and its backends: the fake (`tui::test_support`) and the
//! real engine (on a fresh `pubdeck demo` workspace) are driven through the same actions and
//! must give the same typed outcomes. The status line the app words from the real engine's
//! outcomes is snapshotted after each action.

use crate::support;

use std::path::Path;
use std::time::Duration;

use pubdeck::config::{Overrides, Settings};
use pubdeck::event::Failure;
use pubdeck::tui::app::App;
use pubdeck::tui::backend::{ActionRx, ActionTx, Backend, inbox};
use pubdeck::tui::engine::EngineBackend;
use pubdeck::tui::model::JobOutcome;
use pubdeck::tui::runtime::dispatch;
use pubdeck::tui::{Action, Theme};
use support::fake::FakeBackend;

/// An outcome with what differs between machines (paths, hashes, times) taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Published {
        reference: String,
        already: bool,
    },
    Built {
        build: String,
        version: Option<String>,
        file: String,
        link: Option<String>,
    },
    Cancelled,
    Failed(Failure),
    Pushed {
        branch: String,
        upstream: String,
    },
    VersionSet(Result<String, Failure>),
    Committed(Result<(String, String), Failure>),
    Installed(Result<(String, String, String, Vec<String>), Failure>),
    Yanked(Result<pubdeck::catalog::YankOutcome, Failure>),
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The outcome an action carries, if it is the end of a request.
fn shape(a: &Action) -> Option<Shape> {
    Some(match a {
        Action::JobFinished { outcome, .. } => match outcome {
            JobOutcome::Published(p) => Shape::Published {
                reference: p.reference(),
                already: p.already_published,
            },
            JobOutcome::Built(k) => Shape::Built {
                build: k.build.clone(),
                version: k.version.clone(),
                file: file_name(&k.path),
                link: k.link.as_deref().map(file_name),
            },
            JobOutcome::Cancelled => Shape::Cancelled,
            JobOutcome::Failed(f) => Shape::Failed(f.clone()),
        },
        Action::PushFinished(Ok(p)) => Shape::Pushed {
            branch: p.branch.clone(),
            upstream: p.upstream.clone(),
        },
        Action::PushFinished(Err(f)) => Shape::Failed(f.clone()),
        Action::VersionSet { result, .. } => Shape::VersionSet(result.clone()),
        Action::BumpCommitted { result, .. } => Shape::Committed(
            result
                .as_ref()
                .map(|c| (c.pushed.branch.clone(), c.pushed.upstream.clone()))
                .map_err(Clone::clone),
        ),
        Action::InstallFinished { result, .. } => Shape::Installed(
            result
                .as_ref()
                .map(|i| {
                    (
                        i.package.clone(),
                        i.version.clone(),
                        i.id.clone(),
                        i.executables.iter().map(|e| file_name(e)).collect(),
                    )
                })
                .map_err(Clone::clone),
        ),
        Action::YankFinished { result, .. } => Shape::Yanked(result.clone()),
        _ => return None,
    })
}

struct Session<'a> {
    app: App,
    backend: &'a dyn Backend,
    tx: ActionTx,
    rx: ActionRx,
}

impl Session<'_> {
    fn new(backend: &dyn Backend) -> Session<'_> {
        let (tx, rx) = inbox();
        Session {
            app: App::new(Theme::dark(), (120, 40)),
            backend,
            tx,
            rx,
        }
    }

    /// Applies actions until one ends a request; returns its outcome and the status line.
    async fn outcome(&mut self, what: &str) -> (Shape, String) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let a = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no outcome for {what}"))
                .expect("inbox open");
            let done = shape(&a);
            dispatch(&mut self.app, a, self.backend, &self.tx);
            // A publish stops at its review: approve it as a user would.
            if matches!(
                self.app.popup,
                Some(pubdeck::tui::app::Popup::Review { .. })
            ) {
                let y = crossterm::event::KeyEvent::new(
                    crossterm::event::KeyCode::Char('y'),
                    crossterm::event::KeyModifiers::NONE,
                );
                dispatch(&mut self.app, Action::Key(y), self.backend, &self.tx);
            }
            if let Some(s) = done {
                let status = self
                    .app
                    .status
                    .as_ref()
                    .map(|s| match &s.hint {
                        Some(h) => format!("{} · hint: {h}", s.text),
                        None => s.text.clone(),
                    })
                    .unwrap_or_default();
                return (s, status);
            }
        }
    }
}

/// The same steps for any backend; `between` runs after each step's outcome (the real run
/// commits the version bump there, as a user would before pushing).
async fn steps(
    backend: &dyn Backend,
    mut between: impl FnMut(&str),
) -> Vec<(&'static str, Shape, String)> {
    let mut s = Session::new(backend);
    let mut out = Vec::new();
    macro_rules! step {
        ($name:literal, $call:expr) => {{
            $call;
            let (shape, status) = s.outcome($name).await;
            between($name);
            out.push(($name, shape, status));
        }};
    }
    step!(
        "build only hello",
        backend.build_only("hello".into(), &s.tx)
    );
    step!("publish hello", backend.publish("hello".into(), &s.tx));
    step!("publish broken", backend.publish("broken".into(), &s.tx));
    step!("build report, cancelled at once", {
        backend.build_only("report".into(), &s.tx);
        backend.cancel();
    });
    step!(
        "set an invalid version",
        backend.set_version("hello".into(), "1 2".into(), &s.tx)
    );
    step!(
        "set version 2.0.0",
        backend.set_version("hello".into(), "2.0.0".into(), &s.tx)
    );
    step!(
        "commit the version bump and push",
        backend.commit_bump("hello".into(), "2.0.0".into(), &s.tx)
    );
    step!("push", backend.push(&s.tx));
    step!(
        "install myorg/api-gateway",
        backend.install("myorg/api-gateway".into(), &s.tx)
    );
    step!(
        "yank myorg/auth-service 3.16.5",
        backend.yank("myorg/auth-service".into(), "3.16.5".into(), true, &s.tx)
    );
    step!(
        "yank a version that does not exist",
        backend.yank("myorg/auth-service".into(), "9.9.9".into(), true, &s.tx)
    );
    step!(
        "install myorg/auth-service@3.16.5 (yanked, pinned)",
        backend.install("myorg/auth-service@3.16.5".into(), &s.tx)
    );
    out
}

/// Paths of this run's temp dir and hex/nix32 hashes, replaced so the snapshot is stable.
fn redact(text: &str, root: &Path) -> String {
    let mut text = text.replace(&root.display().to_string(), "<demo>");
    // A commit made now: "(1a2b3c4)".
    if let Some(at) = text
        .find("committed ")
        .and_then(|i| text[i..].find('(').map(|j| i + j))
        && text.len() >= at + 9
        && text[at + 1..at + 8].bytes().all(|b| b.is_ascii_hexdigit())
    {
        text.replace_range(at + 1..at + 8, "<rev>");
    }
    let mut out = String::new();
    for word in text.split_inclusive(|c: char| !c.is_ascii_alphanumeric()) {
        let core: String = word
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if core.len() >= 32 && core.chars().all(|c| c.is_ascii_alphanumeric()) {
            out.push_str("<hash>");
            out.push_str(&word[core.len()..]);
        } else {
            out.push_str(word);
        }
    }
    out
}

// One thread: a job started and cancelled in the same step is cancelled in both backends
// (the fake's scripted job cannot run ahead of the cancel).
#[tokio::test(flavor = "current_thread")]
async fn fake_and_engine_give_the_same_outcomes() {
    // pubdeck's own store for installs (`PUBDECK_NIX=0`, given to the settings, not the
    // process), so the outcome and status line do not depend on whether this machine has a
    // writable Nix store (tests/it/artifacts.rs covers that route).
    let tmp = tempfile::tempdir().unwrap();
    let ws = pubdeck::demo::ensure(&tmp.path().join("demo"))
        .await
        .expect("demo workspace");
    let overrides = Overrides {
        catalog: Some(ws.catalog_file().display().to_string()),
        org: Some(pubdeck::demo::ORG.into()),
        signing_key: Some(ws.key_file()),
        data_dir: Some(ws.data_dir()),
        config_file: Some(tmp.path().join("no-config.toml")),
        ..Default::default()
    };
    let home = tmp.path().display().to_string();
    let env = |k: &str| match k {
        "HOME" => Some(home.clone()),
        "PUBDECK_NIX" => Some("0".to_string()),
        _ => None,
    };
    let settings = Settings::resolve_with(&overrides, &env).expect("settings");
    assert_eq!(settings.nix, Some(false));
    let catalog = settings.open_catalog().await.expect("catalog");
    let engine = EngineBackend::new(ws.env_dir(), catalog, settings);
    let real = steps(&engine, |_| {}).await;

    let fake_backend = FakeBackend::instant();
    let fake = steps(&fake_backend, |_| {}).await;

    for ((name, real, _), (_, fake, _)) in real.iter().zip(&fake) {
        assert_eq!(real, fake, "{name}: the engine and the fake disagree");
    }
    // The outcomes themselves, so a shared mistake cannot pass either.
    let shapes: Vec<&Shape> = real.iter().map(|(_, s, _)| s).collect();
    assert!(matches!(shapes[0], Shape::Built { link: Some(l), .. } if l == "result-hello"));
    assert_eq!(
        shapes[1],
        &Shape::Published {
            reference: "myorg/hello@1.0.0".into(),
            already: false
        }
    );
    assert!(
        matches!(shapes[2], Shape::Failed(f) if f.message == "build `broken` failed with exit code 3" && f.hint.is_some())
    );
    assert_eq!(shapes[3], &Shape::Cancelled);
    assert!(matches!(shapes[4], Shape::VersionSet(Err(f)) if f.hint.is_some()));
    assert_eq!(shapes[5], &Shape::VersionSet(Ok("2.0.0".into())));
    assert_eq!(
        shapes[6],
        &Shape::Committed(Ok(("main".into(), "origin/main".into())))
    );
    assert!(matches!(shapes[7], Shape::Pushed { branch, .. } if branch == "main"));
    assert!(
        matches!(shapes[8], Shape::Installed(Ok((p, _, id, exes))) if p == "myorg/api-gateway" && id == "api-gateway" && exes == &["api-gateway".to_string()])
    );
    assert_eq!(
        shapes[9],
        &Shape::Yanked(Ok(pubdeck::catalog::YankOutcome {
            name: "myorg/auth-service".into(),
            version: "3.16.5".into(),
            yanked: true,
            changed: 1,
            latest_version: "3.15.4".into(),
        }))
    );
    assert!(matches!(shapes[10], Shape::Yanked(Err(f)) if f.message.contains("no version 9.9.9")));
    assert!(
        matches!(shapes[11], Shape::Installed(Ok((p, v, _, _))) if p == "myorg/auth-service" && v == "3.16.5")
    );

    let statuses: String = real
        .iter()
        .map(|(name, _, status)| format!("{name}:\n  {}\n", redact(status, tmp.path())))
        .collect();
    insta::assert_snapshot!("status_line_after_each_action", statuses);
}
