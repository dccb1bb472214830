//! Scripted sessions: key events and engine events go through `runtime::dispatch`, the same
//! path the runtime uses, against the FakeBackend (no terminal, no delays).

use crate::support;

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pubdeck::tui::app::{App, Popup, StageState, Tab};
use pubdeck::tui::backend::{ActionRx, ActionTx};
use pubdeck::tui::model::LastResult;
use pubdeck::tui::runtime::dispatch;
use pubdeck::tui::{Action, Theme};
use support::fake::FakeBackend;

struct Session {
    app: App,
    backend: FakeBackend,
    tx: ActionTx,
    rx: ActionRx,
}

impl Session {
    fn new() -> Session {
        let (tx, rx) = pubdeck::tui::backend::inbox();
        let mut s = Session {
            app: App::new(Theme::dark(), (100, 30)),
            backend: FakeBackend::instant(),
            tx,
            rx,
        };
        pubdeck::tui::runtime::start(&mut s.app, &s.backend, &s.tx);
        s
    }

    fn send(&mut self, action: Action) -> bool {
        dispatch(&mut self.app, action, &self.backend, &self.tx)
    }

    fn key(&mut self, code: KeyCode) -> bool {
        self.send(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn typ(&mut self, text: &str) {
        for c in text.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    /// Feeds inbox actions (and ticks) until `done` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done(&self.app) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(a)) => {
                    self.send(a);
                }
                Ok(None) => panic!("inbox closed waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
            while let Ok(a) = self.rx.try_recv() {
                self.send(a);
            }
            self.send(Action::Tick);
        }
    }
}

#[tokio::test]
async fn publish_from_keys_to_published() {
    let mut s = Session::new();
    s.until("builds and checks", |a| {
        !a.publish.builds.is_empty() && !a.publish.checks.is_empty()
    })
    .await;
    // Fix the failing `pushed` check first.
    assert_eq!(s.app.publish.failing_checks().count(), 1);
    s.key(KeyCode::Char('p'));
    s.until("push", |a| {
        a.publish.failing_checks().count() == 0 && !a.publish.checks_running
    })
    .await;
    // Publish: Enter asks, y confirms.
    s.key(KeyCode::Enter);
    assert!(s.app.popup.is_some());
    s.key(KeyCode::Char('y'));
    // After packing, the review: nothing is uploaded before y.
    s.until("review", |a| matches!(a.popup, Some(Popup::Review { .. })))
        .await;
    assert!(
        s.app.publish.upload.is_none(),
        "no upload before the review"
    );
    s.key(KeyCode::Char('y'));
    s.until("publish", |a| a.publish.job.is_none()).await;
    assert_eq!(
        s.app.publish.results.get("hello"),
        Some(&LastResult::Published("myorg/hello@1.0.0".into()))
    );
    assert!(
        s.app
            .publish
            .stages
            .iter()
            .all(|st| matches!(st, StageState::Done { ok: true, .. }))
    );
    let up = s.app.publish.upload.expect("upload progress");
    assert_eq!(up.sent, up.total);
    assert!(s.app.publish.log.len() > 5);
}

#[tokio::test]
async fn cancel_stops_a_running_publish() {
    let (tx, mut rx) = pubdeck::tui::backend::inbox();
    let backend = FakeBackend::with_speed(1.0);
    let mut app = App::new(Theme::dark(), (100, 30));
    app.update(Action::Builds(support::fake::demo_builds()));
    let key = |c| Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    dispatch(
        &mut app,
        Action::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        &backend,
        &tx,
    );
    dispatch(&mut app, key('y'), &backend, &tx);
    // Let it start, then cancel.
    let first = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .ok()
        .flatten();
    assert!(matches!(first, Some(Action::Engine(_))));
    dispatch(&mut app, key('c'), &backend, &tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while app.publish.job.is_some() {
        let a = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("job ends after cancel")
            .expect("inbox open");
        dispatch(&mut app, a, &backend, &tx);
    }
    assert_eq!(
        app.publish.results.get("hello"),
        Some(&LastResult::Cancelled)
    );
}

#[tokio::test]
async fn catalog_search_details_install() {
    let mut s = Session::new();
    s.until("packages", |a| !a.catalog.packages.is_empty())
        .await;
    s.key(KeyCode::Char('2'));
    assert_eq!(s.app.tab, Tab::Catalog);
    s.typ("apigw");
    assert_eq!(
        s.app.catalog.selected_ref().as_deref(),
        Some("myorg/api-gateway")
    );
    s.until("details and readiness", |a| {
        a.catalog.selected_details().is_some() && a.catalog.selected_readiness().is_some()
    })
    .await;
    s.key(KeyCode::Enter); // to results
    s.key(KeyCode::Char('i'));
    s.key(KeyCode::Char('y'));
    s.until("install", |a| {
        a.catalog
            .install
            .as_ref()
            .is_some_and(|i| i.result.is_some())
    })
    .await;
    assert!(matches!(
        s.app
            .catalog
            .install
            .as_ref()
            .and_then(|i| i.result.clone()),
        Some(Ok(_))
    ));
    // q quits from the results list.
    assert!(!s.key(KeyCode::Char('q')));
}

#[tokio::test]
async fn version_edit_round_trip() {
    let mut s = Session::new();
    s.until("builds", |a| !a.publish.builds.is_empty()).await;
    s.key(KeyCode::Char('e'));
    s.send(Action::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    s.typ("2.0.0");
    s.key(KeyCode::Enter);
    s.until("new version", |a| {
        a.publish
            .builds
            .first()
            .is_some_and(|b| b.version == "2.0.0")
    })
    .await;
}
