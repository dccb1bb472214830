//! `update` as a function: actions in, state and effects out.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};

use crate::support;

use pubdeck::event::{Direction, Event, Failure, LogLines, Stage, Stream};
use pubdeck::git::Pushed;
use pubdeck::tui::app::*;
use pubdeck::tui::keymap::Context;
use pubdeck::tui::model::{JobKind, JobOutcome, LastResult};
use pubdeck::tui::{Action, Effect, Theme};
use support::fake::{demo_builds, demo_checks, demo_packages, job_outcome};

fn app() -> App {
    let mut app = App::new(Theme::dark(), (100, 30));
    app.update(Action::Builds(demo_builds()));
    app.update(Action::Checks(demo_checks(Some("hello"), true)));
    app.update(Action::Packages {
        packages: demo_packages().into(),
        etag: Some("e1".into()),
    });
    app.catalog.details_due = None;
    app
}

fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.update(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn ch(app: &mut App, c: char) -> Vec<Effect> {
    key(app, KeyCode::Char(c))
}

fn log_line(line: &str) -> Action {
    Action::Engine(Event::Log {
        stream: Stream::Stdout,
        lines: LogLines::one(line),
    })
}

#[test]
fn init_loads_everything() {
    let mut app = App::new(Theme::dark(), (100, 30));
    let effects = app.init();
    assert!(effects.contains(&Effect::LoadBuilds));
    assert!(effects.contains(&Effect::LoadPackages { etag: None }));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::RunChecks { fetch: true, .. }))
    );
}

#[test]
fn enter_asks_for_confirmation_then_publishes() {
    let mut app = app();
    let effects = key(&mut app, KeyCode::Enter);
    assert!(effects.is_empty(), "no publish before confirming");
    match &app.popup {
        Some(Popup::Confirm { pending, lines, .. }) => {
            assert_eq!(pending, &Pending::Publish("hello".into()));
            assert_eq!(lines, &["Publish build hello 1.0.0 to the catalog?"]);
        }
        other => panic!("expected a confirmation, got {other:?}"),
    }
    assert_eq!(app.contexts()[0], Context::Confirm);
    let effects = ch(&mut app, 'y');
    assert_eq!(effects, vec![Effect::Publish("hello".into())]);
    assert!(app.popup.is_none());
    assert!(app.publish.job.is_some());
    assert_eq!(
        app.publish.results.get("hello"),
        Some(&LastResult::Building)
    );
}

/// A publish that cannot succeed (a precondition that blocks fails) is not offered: the
/// status says why, with the check's fix.
#[test]
fn a_publish_that_cannot_succeed_is_not_offered() {
    let mut app = app();
    app.update(Action::Checks(demo_checks(Some("hello"), false)));
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    let st = app.status.clone().unwrap();
    assert!(st.text.starts_with("cannot publish hello: "), "{st:?}");
    assert!(st.hint.is_some(), "{st:?}");
    // The refusal opens whole, with its fix, and closes with Esc.
    assert_eq!(
        app.popup,
        Some(Popup::Failure {
            message: st.text.clone(),
            hint: st.hint.clone()
        })
    );
    key(&mut app, KeyCode::Esc);
    assert!(app.popup.is_none());
    assert_eq!(app.status.as_ref().map(|s| &s.text), Some(&st.text));
}

/// The confirmation says what will be published now: when the manifest changes under it,
/// its version follows; when a check starts to fail, it closes and says why.
#[test]
fn the_confirmation_follows_the_manifest_and_the_checks() {
    let mut app = app();
    key(&mut app, KeyCode::Enter);
    let mut builds = demo_builds();
    builds[0].version = "1.0.3".into();
    app.update(Action::Builds(builds));
    match &app.popup {
        Some(Popup::Confirm { lines, .. }) => {
            assert_eq!(lines, &["Publish build hello 1.0.3 to the catalog?"])
        }
        other => panic!("{other:?}"),
    }
    app.update(Action::Checks(demo_checks(Some("hello"), false)));
    assert!(
        matches!(app.popup, Some(Popup::Failure { .. })),
        "{:?}",
        app.popup
    );
    assert!(
        app.status
            .as_ref()
            .is_some_and(|s| s.text.starts_with("cannot publish hello")),
        "{:?}",
        app.status
    );
    // A file change reads the manifest again, not only the checks.
    assert!(
        app.update(Action::FilesChanged)
            .contains(&Effect::LoadBuilds)
    );
}

/// `e` keeps the form a version is given in: a version.command build is refused with why,
/// a version.file build says the file it writes; the list shows the resolved version.
#[test]
fn editing_a_version_keeps_its_form() {
    let mut app = app();
    let report = app
        .publish
        .builds
        .iter()
        .position(|b| b.name == "report")
        .unwrap();
    assert_eq!(app.publish.builds[report].version, "2.3.1");
    for _ in 0..report {
        ch(&mut app, 'j');
    }
    ch(&mut app, 'e');
    match &app.popup {
        Some(Popup::Input { title, input, .. }) => {
            assert_eq!(title, "Version of report (written into REPORT_VERSION)");
            assert_eq!(input.value(), "2.3.1");
        }
        other => panic!("{other:?}"),
    }
    key(&mut app, KeyCode::Esc);
    let mut builds = demo_builds();
    builds[report].version_from = pubdeck::tui::model::VersionFrom::Command;
    app.update(Action::Builds(builds));
    ch(&mut app, 'e');
    assert!(app.popup.is_none());
    assert!(
        app.status
            .as_ref()
            .is_some_and(|s| s.text.contains("what its version.command prints")),
        "{:?}",
        app.status
    );
}

#[test]
fn escape_dismisses_the_confirmation() {
    let mut app = app();
    key(&mut app, KeyCode::Enter);
    let effects = key(&mut app, KeyCode::Esc);
    assert!(effects.is_empty());
    assert!(app.popup.is_none());
    assert!(app.publish.job.is_none());
}

#[test]
fn a_second_job_is_refused_while_one_runs() {
    let mut app = app();
    key(&mut app, KeyCode::Enter);
    ch(&mut app, 'y');
    assert!(ch(&mut app, 'b').is_empty());
    key(&mut app, KeyCode::Enter);
    assert!(app.popup.is_none());
    assert_eq!(app.status.as_ref().map(|s| s.level), Some(Level::Warn));
    assert_eq!(ch(&mut app, 'c'), vec![Effect::Cancel]);
}

#[test]
fn build_only_starts_at_once() {
    let mut app = app();
    ch(&mut app, 'j');
    assert_eq!(ch(&mut app, 'b'), vec![Effect::BuildOnly("report".into())]);
    let outcome = job_outcome(JobKind::BuildOnly, "report", "2.3.1");
    let JobOutcome::Built(kept) = &outcome else {
        panic!("{outcome:?}")
    };
    let out = kept.path.clone();
    app.update(Action::JobFinished {
        kind: JobKind::BuildOnly,
        build: "report".into(),
        outcome,
    });
    assert!(app.publish.job.is_none());
    assert_eq!(
        app.publish.results.get("report"),
        Some(&LastResult::Built(out))
    );
}

#[test]
fn stages_and_upload_follow_events() {
    let mut app = app();
    app.update(Action::Engine(Event::StageStarted {
        stage: Stage::Build,
    }));
    assert!(matches!(app.publish.stages[2], StageState::Running { .. }));
    app.update(Action::Engine(Event::StageFinished {
        stage: Stage::Build,
        duration: Duration::from_millis(1500),
        ok: false,
    }));
    assert_eq!(
        app.publish.stages[2],
        StageState::Done {
            ok: false,
            duration: Duration::from_millis(1500)
        }
    );
    app.update(Action::Engine(Event::StageSkipped {
        stage: Stage::Upload,
        reason: "already in the store".into(),
    }));
    assert!(matches!(app.publish.stages[5], StageState::Skipped(_)));
    app.update(Action::Engine(Event::Transfer {
        direction: Direction::Upload,
        key: "nar/x.nar.zst".into(),
        sent: 10,
        total: 100,
        rate: 5.0,
        eta: Some(18.0),
        retries: 2,
    }));
    assert_eq!(
        app.publish.upload.map(|u| (u.sent, u.retries)),
        Some((10, 2))
    );
}

#[test]
fn check_events_replace_panel_entries() {
    let mut app = app();
    let n = app.publish.checks.len();
    app.update(Action::Engine(Event::Check(pubdeck::git::Check::pass(
        pubdeck::event::CheckId::Pushed,
        "now pushed",
    ))));
    assert_eq!(app.publish.checks.len(), n);
    assert!(app.publish.failing_checks().next().is_none());
}

#[test]
fn log_appends_and_follow_toggles() {
    let mut app = app();
    for i in 0..100 {
        app.update(log_line(&format!("line {i}")));
    }
    assert_eq!(app.publish.log.len(), 100);
    assert!(app.publish.log.follow);
    app.publish.focus = PublishPane::Log;
    ch(&mut app, 'k');
    assert!(!app.publish.log.follow, "scrolling up stops following");
    let top = app.publish.log.view_top(app.log_height());
    app.update(log_line("more"));
    assert_eq!(
        app.publish.log.view_top(app.log_height()),
        top,
        "paused view stays"
    );
    ch(&mut app, 'G');
    assert!(app.publish.log.follow, "G resumes");
    key(&mut app, KeyCode::PageUp);
    assert!(!app.publish.log.follow);
    key(&mut app, KeyCode::End);
    assert!(app.publish.log.follow, "End resumes");
}

#[test]
fn log_search_with_n_and_shift_n() {
    let mut app = app();
    for i in 0..200 {
        let line = if i % 50 == 7 {
            format!("\x1b[31merror\x1b[0m at {i}")
        } else {
            format!("ok {i}")
        };
        app.update(log_line(&line));
    }
    app.publish.focus = PublishPane::Log;
    ch(&mut app, 'g');
    ch(&mut app, '/');
    assert!(matches!(
        app.popup,
        Some(Popup::Input {
            purpose: InputPurpose::LogSearch,
            ..
        })
    ));
    for c in "error".chars() {
        ch(&mut app, c);
    }
    key(&mut app, KeyCode::Enter);
    let cur = |app: &App| app.publish.log.search.as_ref().and_then(|s| s.current);
    assert_eq!(cur(&app), Some(7));
    ch(&mut app, 'n');
    assert_eq!(cur(&app), Some(57));
    app.update(Action::Key(KeyEvent::new(
        KeyCode::Char('N'),
        KeyModifiers::SHIFT,
    )));
    assert_eq!(cur(&app), Some(7));
    app.update(Action::Key(KeyEvent::new(
        KeyCode::Char('N'),
        KeyModifiers::SHIFT,
    )));
    assert_eq!(cur(&app), Some(157), "wraps to the last match");
    assert!(!app.publish.log.follow);
    let top = app.publish.log.view_top(app.log_height());
    assert!(
        (top..top + u64::from(app.log_height())).contains(&157),
        "match is in view"
    );
}

#[test]
fn typing_filters_with_highlight_indices() {
    let mut app = app();
    ch(&mut app, '2');
    assert_eq!(app.tab, Tab::Catalog);
    assert_eq!(app.contexts()[0], Context::Search);
    for c in "apigtwy".chars() {
        ch(&mut app, c);
    }
    assert_eq!(app.catalog.query(), "apigtwy");
    let (hit, pkg) = app.catalog.selected().expect("a hit");
    assert_eq!(pkg.name, "api-gateway");
    // "myorg/api-gateway": a=6 p=7 i=8 g=10 t=12 w=14 y=16
    assert_eq!(hit.indices, vec![6, 7, 8, 10, 12, 14, 16]);
    let matches = app.catalog.index.total();
    assert!(matches >= 1);
    // Typing `q` in the search box types it; it does not quit.
    ch(&mut app, 'q');
    assert!(!app.quit);
    assert_eq!(app.catalog.index.total(), 0);
    key(&mut app, KeyCode::Backspace);
    assert_eq!(app.catalog.index.total(), matches);
}

#[test]
fn details_are_requested_after_the_selection_settles() {
    let mut app = app();
    ch(&mut app, '2');
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    let pkg = app.catalog.selected_ref().expect("selection");
    let mut effects = Vec::new();
    for _ in 0..3 {
        effects.extend(app.update(Action::Tick));
    }
    assert_eq!(
        effects,
        vec![Effect::PackageDetails(pkg.clone()), Effect::Readiness(pkg)]
    );
    let more: Vec<Effect> = (0..3).flat_map(|_| app.update(Action::Tick)).collect();
    assert!(more.is_empty(), "requested once");
}

#[test]
fn install_confirms_then_reports_progress() {
    let mut app = app();
    ch(&mut app, '2');
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.catalog.focus, CatalogPane::Results);
    let pkg = app.catalog.selected_ref().expect("selection");
    ch(&mut app, 'i');
    assert!(matches!(app.popup, Some(Popup::Confirm { .. })));
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        vec![Effect::Install(pkg.clone())]
    );
    app.update(Action::InstallProgress {
        package: pkg.clone(),
        done: 5,
        total: Some(10),
    });
    assert_eq!(app.catalog.install.as_ref().map(|i| i.done), Some(5));
    let effects = app.update(Action::InstallFinished {
        package: pkg.clone(),
        result: Ok(pubdeck::install::Installed {
            package: pkg.clone(),
            version: "1.0.0".into(),
            system: "x86_64-linux".into(),
            store_path: "/nix/store/x".into(),
            path: "/nix/store/x".into(),
            manifest: "/e/.flox/env/manifest.toml".into(),
            id: "x".into(),
            executables: Vec::new(),
            closure: vec!["/nix/store/x".into()],
            store: "pubdeck",
            reused: 0,
        }),
    });
    assert_eq!(
        effects,
        vec![Effect::Readiness(pkg)],
        "readiness is re-checked"
    );
}

#[test]
fn push_fixit_only_when_the_pushed_check_fails() {
    let mut app = app();
    app.update(Action::Checks(demo_checks(Some("hello"), false)));
    assert_eq!(ch(&mut app, 'p'), vec![Effect::Push]);
    assert_eq!(app.publish.push, PushState::Running);
    let effects = app.update(Action::PushFinished(Ok(Pushed {
        branch: "main".into(),
        upstream: "origin/main".into(),
    })));
    assert!(matches!(
        effects[..],
        [Effect::RunChecks { fetch: true, .. }]
    ));
    app.update(Action::Checks(demo_checks(Some("hello"), true)));
    assert!(ch(&mut app, 'p').is_empty(), "nothing to push");
}

#[test]
fn edit_version_submits_set_version() {
    let mut app = app();
    ch(&mut app, 'e');
    assert!(matches!(app.popup, Some(Popup::Input { ref input, .. }) if input.value() == "1.0.0"));
    app.update(Action::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    for c in "1.3.0".chars() {
        ch(&mut app, c);
    }
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        vec![Effect::SetVersion {
            build: "hello".into(),
            version: "1.3.0".into()
        }]
    );
    let effects = app.update(Action::VersionSet {
        build: "hello".into(),
        result: Ok("1.3.0".into()),
    });
    assert_eq!(effects[0], Effect::LoadBuilds);
    // An invalid version is refused without an effect.
    ch(&mut app, 'e');
    app.update(Action::Paste("1 2".into()));
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.status.as_ref().map(|s| s.level), Some(Level::Error));
}

#[test]
fn file_changes_recheck_without_fetch_and_r_with_fetch() {
    let mut app = app();
    assert_eq!(
        app.update(Action::FilesChanged),
        vec![
            Effect::LoadBuilds,
            Effect::RunChecks {
                build: Some("hello".into()),
                fetch: false
            }
        ]
    );
    assert_eq!(
        ch(&mut app, 'r'),
        vec![Effect::RunChecks {
            build: Some("hello".into()),
            fetch: true
        }]
    );
}

#[test]
fn selecting_another_build_rechecks_after_debounce() {
    let mut app = app();
    ch(&mut app, 'j');
    let effects: Vec<Effect> = (0..3).flat_map(|_| app.update(Action::Tick)).collect();
    assert_eq!(
        effects,
        vec![Effect::RunChecks {
            build: Some("report".into()),
            fetch: false
        }]
    );
}

#[test]
fn quit_cancels_a_running_job() {
    let mut app = app();
    key(&mut app, KeyCode::Enter);
    ch(&mut app, 'y');
    assert_eq!(ch(&mut app, 'q'), vec![Effect::Cancel, Effect::Quit]);
    assert!(app.quit);
}

#[test]
fn ctrl_c_quits_even_from_popups_and_text() {
    let mut app = app();
    ch(&mut app, '?');
    let e = app.update(Action::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(e, vec![Effect::Quit]);
}

#[test]
fn idle_ticks_do_not_redraw() {
    let mut app = app();
    app.dirty = false;
    app.update(Action::Tick);
    assert!(!app.dirty);
    ch(&mut app, 'b');
    app.dirty = false;
    app.update(Action::Tick);
    assert!(app.dirty, "spinners move while a job runs");
}

#[test]
fn mouse_clicks_select_and_wheel_scrolls() {
    let mut app = app();
    let a = app.areas();
    let click = |x, y| {
        Action::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: x,
            row: y,
            modifiers: KeyModifiers::NONE,
        })
    };
    // Third build row: border, header, then rows.
    app.update(click(a.builds.x + 3, a.builds.y + 4));
    assert_eq!(app.publish.cursor.selected, 2);
    for i in 0..100 {
        app.update(log_line(&format!("{i}")));
    }
    app.update(Action::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollUp,
        column: a.log.x + 5,
        row: a.log.y + 5,
        modifiers: KeyModifiers::NONE,
    }));
    assert!(!app.publish.log.follow);
    // Tab bar click switches tabs.
    app.update(click(TABS_X + 13, 0));
    assert_eq!(app.tab, Tab::Catalog);
    let a = app.areas();
    app.update(click(a.results.x + 3, a.results.y + 3));
    assert_eq!(app.catalog.cursor.selected, 2);
    assert_eq!(app.catalog.focus, CatalogPane::Results);
}

#[test]
fn tab_cycles_panes_and_keys_follow_focus() {
    let mut app = app();
    assert_eq!(app.contexts()[0], Context::Builds);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.contexts()[0], Context::Checks);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.contexts()[0], Context::Log);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.contexts()[0], Context::Checks);
}

/// Every context stack the app can be in.
fn all_stacks() -> Vec<Vec<Context>> {
    let mut app = app();
    let mut stacks = Vec::new();
    for tab in [Tab::Publish, Tab::Catalog] {
        app.tab = tab;
        for p in [PublishPane::Builds, PublishPane::Checks, PublishPane::Log] {
            for c in [
                CatalogPane::Search,
                CatalogPane::Results,
                CatalogPane::Details,
            ] {
                app.publish.focus = p;
                app.catalog.focus = c;
                stacks.push(app.contexts());
            }
        }
    }
    for popup in [
        Popup::Help { scroll: 0 },
        Popup::Failure {
            message: String::new(),
            hint: None,
        },
        Popup::Confirm {
            title: String::new(),
            lines: Vec::new(),
            pending: Pending::Install(String::new()),
        },
        Popup::Input {
            title: String::new(),
            input: Default::default(),
            purpose: InputPurpose::LogSearch,
        },
        Popup::Review {
            review: Box::new(support::fake::demo_review("hello", "1.0.0")),
            verify: false,
            scroll: 0,
        },
    ] {
        app.popup = Some(popup);
        stacks.push(app.contexts());
    }
    stacks
}

#[test]
fn no_key_is_shadowed_within_any_reachable_stack() {
    use pubdeck::tui::keymap::{Key, bindings};
    use std::collections::HashMap;
    for stack in all_stacks() {
        let mut owner: HashMap<Key, Context> = HashMap::new();
        for ctx in &stack {
            for b in bindings(*ctx) {
                for k in b.keys.iter().filter(|k| **k != Key::AnyChar) {
                    if let Some(first) = owner.insert(*k, *ctx) {
                        panic!("{k:?} is bound in both {first:?} and {ctx:?} (stack {stack:?})");
                    }
                }
            }
        }
    }
}

#[test]
fn every_context_is_reachable() {
    let stacks = all_stacks();
    for ctx in Context::ALL {
        assert!(
            stacks.iter().any(|s| s.contains(&ctx)),
            "{ctx:?} unreachable"
        );
    }
}

#[test]
fn a_successful_publish_reloads_the_package_list() {
    let mut app = App::new(Theme::dark(), (100, 30));
    let effects = app.update(Action::JobFinished {
        kind: JobKind::Publish,
        build: "hello".into(),
        outcome: job_outcome(JobKind::Publish, "hello", "1.0.0"),
    });
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::LoadPackages { .. })),
        "{effects:?}"
    );
    let effects = app.update(Action::JobFinished {
        kind: JobKind::Publish,
        build: "hello".into(),
        outcome: JobOutcome::Failed(Failure::new("build `hello` failed with exit code 1", None)),
    });
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::LoadPackages { .. }))
    );
}

#[test]
fn w_in_the_log_writes_it_as_plain_text_and_says_where() {
    let mut app = app();
    app.publish.focus = PublishPane::Log;
    let effects = ch(&mut app, 'w');
    assert!(effects.is_empty(), "nothing to write yet");
    assert!(app.status.as_ref().unwrap().text.contains("empty"));

    app.update(log_line("\x1b[32mok\x1b[0m compiled"));
    app.update(log_line("second line"));
    let effects = ch(&mut app, 'w');
    match effects.as_slice() {
        [Effect::SaveLog { build, lines }] => {
            assert_eq!(build, "hello", "the selected build names the file");
            assert_eq!(lines, &["ok compiled", "second line"], "ANSI stripped");
        }
        other => panic!("{other:?}"),
    }
    app.update(Action::LogSaved(Ok("/data/logs/hello-1.log".into())));
    let st = app.status.as_ref().unwrap();
    assert_eq!(st.text, "log written to /data/logs/hello-1.log");
    app.update(Action::LogSaved(Err(Failure::new("disk full", None))));
    assert!(
        app.status
            .as_ref()
            .unwrap()
            .text
            .contains("cannot write the log")
    );
}

#[test]
fn text_fields_edit_at_the_cursor() {
    let mut app = app();
    // The version popup: ←, Ctrl-W, Home, End.
    app.publish.focus = PublishPane::Builds;
    ch(&mut app, 'e');
    key(&mut app, KeyCode::Left);
    key(&mut app, KeyCode::Left);
    ch(&mut app, '9');
    let value = |app: &App| match &app.popup {
        Some(Popup::Input { input, .. }) => input.value().to_string(),
        other => panic!("{other:?}"),
    };
    assert_eq!(value(&app), "1.09.0");
    key(&mut app, KeyCode::Home);
    ch(&mut app, 'v');
    key(&mut app, KeyCode::End);
    app.update(Action::Key(KeyEvent::new(
        KeyCode::Char('w'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(value(&app), "", "Ctrl-W deletes the word before the cursor");
    key(&mut app, KeyCode::Esc);

    // The catalog search box: the query follows the edits, and so do the results.
    ch(&mut app, '2');
    app.catalog.focus = CatalogPane::Search;
    for c in "helo".chars() {
        ch(&mut app, c);
    }
    key(&mut app, KeyCode::Left);
    ch(&mut app, 'l');
    assert_eq!(app.catalog.query(), "hello");
    assert_eq!(app.catalog.input.cursor(), 4);
    key(&mut app, KeyCode::Home);
    key(&mut app, KeyCode::Right);
    app.update(Action::Key(KeyEvent::new(
        KeyCode::Char('w'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(app.catalog.query(), "ello");
}

#[test]
fn brackets_pick_a_version_that_install_pins_and_y_yanks_it() {
    let mut app = app();
    ch(&mut app, '2');
    key(&mut app, KeyCode::Tab);
    let pkg = app.catalog.selected_ref().expect("selection");
    let row = app.catalog.selected().unwrap().1.clone();
    // Before the details arrive there is nothing to pick from.
    ch(&mut app, '[');
    assert!(app.catalog.picked.is_none());
    let mut d = support::fake::demo_details(&row);
    d.versions = vec!["3.0".into(), "2.0".into(), "1.0".into()];
    d.yanked = vec!["3.0".into()];
    app.update(Action::Details(d));
    // The latest not yanked is the default: an unpinned install.
    assert_eq!(app.catalog.picked_version().as_deref(), Some("2.0"));
    // Picking a version asks readiness of that version, which the panel then shows.
    assert_eq!(
        ch(&mut app, '['),
        vec![Effect::Readiness(format!("{pkg}@1.0"))]
    );
    assert_eq!(app.catalog.picked.as_deref(), Some("1.0"));
    assert_eq!(app.catalog.readiness_target(), Some(format!("{pkg}@1.0")));
    let for_1_0 = vec![pubdeck::git::Check::pass(
        pubdeck::event::CheckId::Narinfo,
        "the narinfo of 1.0",
    )];
    app.update(Action::Readiness {
        package: format!("{pkg}@1.0"),
        checks: for_1_0.clone(),
    });
    assert_eq!(app.catalog.selected_readiness(), Some(&for_1_0));
    ch(&mut app, '[');
    assert_eq!(
        app.catalog.picked.as_deref(),
        Some("1.0"),
        "stops at the oldest"
    );
    ch(&mut app, 'i');
    match &app.popup {
        Some(Popup::Confirm { lines, .. }) => {
            assert!(lines[0].contains("1.0 (pinned)"), "{lines:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ch(&mut app, 'y'),
        vec![Effect::Install(format!("{pkg}@1.0"))]
    );
    // Back to the default, then to the yanked newest: un-yank is offered.
    app.catalog.install = None;
    ch(&mut app, ']');
    assert!(app.catalog.picked.is_none());
    ch(&mut app, ']');
    assert_eq!(app.catalog.picked.as_deref(), Some("3.0"));
    ch(&mut app, 'Y');
    match &app.popup {
        Some(Popup::Confirm { title, pending, .. }) => {
            assert_eq!(title, "Un-yank");
            assert_eq!(
                pending,
                &Pending::Yank {
                    package: pkg.clone(),
                    version: "3.0".into(),
                    yanked: false
                }
            );
        }
        other => panic!("{other:?}"),
    }
    key(&mut app, KeyCode::Esc);
    // Yank the default (2.0) with confirmation.
    ch(&mut app, ']');
    ch(&mut app, '[');
    assert!(app.catalog.picked.is_none());
    ch(&mut app, 'Y');
    assert!(matches!(&app.popup, Some(Popup::Confirm { title, .. }) if title == "Yank"));
    assert_eq!(
        ch(&mut app, 'y'),
        vec![Effect::Yank {
            package: pkg.clone(),
            version: "2.0".into(),
            yanked: true
        }]
    );
    let effects = app.update(Action::YankFinished {
        package: pkg.clone(),
        result: Ok(pubdeck::catalog::YankOutcome {
            name: pkg.clone(),
            version: "2.0".into(),
            yanked: true,
            changed: 1,
            latest_version: "1.0".into(),
        }),
    });
    assert!(effects.contains(&Effect::PackageDetails(pkg.clone())));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::LoadPackages { .. })),
        "the latest-version column is reloaded"
    );
    let status = app.status.as_ref().unwrap();
    assert!(status.text.contains("latest is now 1.0"), "{}", status.text);
    // Yanking the last version left: no version is the latest, and the status says so
    // instead of naming an empty one.
    app.update(Action::YankFinished {
        package: pkg.clone(),
        result: Ok(pubdeck::catalog::YankOutcome {
            name: pkg.clone(),
            version: "1.0".into(),
            yanked: true,
            changed: 1,
            latest_version: String::new(),
        }),
    });
    let status = app.status.as_ref().unwrap();
    assert!(
        status.text.contains("every version is yanked now"),
        "{}",
        status.text
    );
}

#[test]
fn the_review_waits_for_y_and_r_asks_for_a_second_build() {
    use pubdeck::publish::ReviewAnswer;
    let mut app = app();
    app.update(Action::Engine(Event::Review(Box::new(
        support::fake::demo_review("hello", "1.0.0"),
    ))));
    assert!(matches!(app.popup, Some(Popup::Review { .. })));
    assert_eq!(app.contexts()[0], Context::Review);
    // r toggles the reproducibility check; y answers.
    assert!(ch(&mut app, 'r').is_empty());
    assert!(matches!(
        app.popup,
        Some(Popup::Review { verify: true, .. })
    ));
    assert_eq!(
        ch(&mut app, 'y'),
        vec![Effect::AnswerReview(ReviewAnswer::VerifyThenUpload)]
    );
    assert!(app.popup.is_none());
    // Esc declines: nothing is uploaded.
    app.update(Action::Engine(Event::Review(Box::new(
        support::fake::demo_review("hello", "1.0.0"),
    ))));
    assert_eq!(
        key(&mut app, KeyCode::Esc),
        vec![Effect::AnswerReview(ReviewAnswer::Decline)]
    );
    app.update(Action::Engine(Event::Review(Box::new(
        support::fake::demo_review("hello", "1.0.0"),
    ))));
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        vec![Effect::AnswerReview(ReviewAnswer::Upload)]
    );
}

#[test]
fn after_a_version_edit_c_commits_the_bump_and_pushes() {
    use pubdeck::git::Check;
    let mut app = app();
    // Nothing to commit before a version edit.
    assert!(ch(&mut app, 'C').is_empty());
    assert!(app.popup.is_none());
    app.update(Action::VersionSet {
        build: "hello".into(),
        result: Ok("1.3.0".into()),
    });
    assert!(
        app.status
            .as_ref()
            .unwrap()
            .text
            .contains("C commits and pushes"),
        "{:?}",
        app.status
    );
    app.update(Action::Checks(vec![Check::fail(
        pubdeck::event::CheckId::Clean,
        "1 tracked file is modified: .flox/env/manifest.toml",
        "commit or stash it",
    )]));
    ch(&mut app, 'C');
    match &app.popup {
        Some(Popup::Confirm { lines, pending, .. }) => {
            assert!(lines[0].contains("hello (1.3.0)"), "{lines:?}");
            assert_eq!(
                pending,
                &Pending::CommitBump {
                    build: "hello".into(),
                    version: "1.3.0".into()
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ch(&mut app, 'y'),
        vec![Effect::CommitBump {
            build: "hello".into(),
            version: "1.3.0".into()
        }]
    );
    let effects = app.update(Action::BumpCommitted {
        build: "hello".into(),
        version: "1.3.0".into(),
        result: Ok(pubdeck::git::Committed {
            rev: "abcdef0123".into(),
            pushed: Pushed {
                branch: "main".into(),
                upstream: "origin/main".into(),
            },
        }),
    });
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::RunChecks { fetch: true, .. })),
        "re-checks with a fetch: {effects:?}"
    );
    assert!(app.publish.bump.is_none());
    assert!(
        app.status
            .as_ref()
            .unwrap()
            .text
            .contains("committed hello 1.3.0 (abcdef0)")
    );
}

/// Help is reachable at every size and in every pane, and the footer shows only keys that
/// work where the focus is: in the search box `q` and `?` type, so the footer offers neither
/// `q quit` nor `?`, but F1, which opens help from there.
#[test]
fn help_is_reachable_everywhere_and_the_footer_shows_only_working_keys() {
    use pubdeck::tui::view::render_to_buffer;
    let footer = |app: &mut App, w: u16, h: u16| {
        app.update(Action::Resize(w, h));
        let buf = render_to_buffer(app, w, h);
        (0..w)
            .map(|x| buf[(x, h - 1)].symbol().to_string())
            .collect::<String>()
    };
    let mut app = app();
    for (w, h) in [(80, 24), (60, 20), (140, 42)] {
        for tab in [Tab::Publish, Tab::Catalog] {
            app.tab = tab;
            for (p, c) in [
                (PublishPane::Builds, CatalogPane::Search),
                (PublishPane::Checks, CatalogPane::Results),
                (PublishPane::Log, CatalogPane::Details),
            ] {
                app.publish.focus = p;
                app.catalog.focus = c;
                let line = footer(&mut app, w, h);
                assert!(
                    line.contains(" help"),
                    "{w}×{h} {tab:?} {p:?}/{c:?}: {line}"
                );
            }
        }
    }
    app.tab = Tab::Catalog;
    app.catalog.focus = CatalogPane::Search;
    let line = footer(&mut app, 140, 42);
    assert!(!line.contains("q quit"), "{line}");
    assert!(line.contains("F1 help") && !line.contains("?/F1"), "{line}");
    ch(&mut app, 'q');
    ch(&mut app, '?');
    assert!(
        app.catalog.query().ends_with("q?"),
        "{:?}",
        app.catalog.query()
    );
    assert!(app.popup.is_none());
    key(&mut app, KeyCode::F(1));
    assert!(
        matches!(app.popup, Some(Popup::Help { .. })),
        "{:?}",
        app.popup
    );
    // Elsewhere both keys are offered and `q` quits.
    key(&mut app, KeyCode::Esc);
    app.catalog.focus = CatalogPane::Results;
    let line = footer(&mut app, 140, 42);
    assert!(
        line.contains("?/F1 help") && line.contains("q quit"),
        "{line}"
    );
}

/// The Results panel shows its place like the other lists; an unreachable catalog says so
/// instead of "no packages (yet)"; a new run's log drops the old search label; log search
/// counts its matches and says when it wraps.
#[test]
fn panel_details_tell_the_truth() {
    use pubdeck::tui::view::render_to_buffer;
    let screen = |app: &mut App, w: u16, h: u16| {
        app.update(Action::Resize(w, h));
        let buf = render_to_buffer(app, w, h);
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut app = self::app();
    app.tab = Tab::Catalog;
    app.catalog.focus = CatalogPane::Results;
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    let total = app.catalog.index.hits().len();
    let text = screen(&mut app, 100, 30);
    assert!(text.contains(&format!("Results 3/{total}")), "{text}");

    // Unreachable: the reason, not an empty catalog.
    let mut app = App::new(Theme::dark(), (100, 30));
    app.tab = Tab::Catalog;
    app.update(Action::PackagesFailed(Failure::new(
        "cannot reach the catalog at http://127.0.0.1:9: connection refused",
        Some("start it with `pubdeck serve`".into()),
    )));
    key(&mut app, KeyCode::Esc); // the failure popup
    let text = screen(&mut app, 100, 30);
    assert!(!text.contains("no packages"), "{text}");
    assert!(
        text.contains("catalog not loaded: cannot reach the"),
        "{text}"
    );
    assert!(text.contains("not loaded"), "{text}");

    // Log search: count, wrap notice, and no stale label after a new run.
    let mut app = self::app();
    for l in ["a error", "b", "c error", "d"] {
        app.update(log_line(l));
    }
    app.publish.focus = PublishPane::Log;
    ch(&mut app, 'g');
    ch(&mut app, '/');
    for c in "error".chars() {
        ch(&mut app, c);
    }
    key(&mut app, KeyCode::Enter);
    let text = screen(&mut app, 100, 30);
    assert!(text.contains("/error 1/2"), "{text}");
    ch(&mut app, 'n');
    assert!(screen(&mut app, 100, 30).contains("/error 2/2"));
    ch(&mut app, 'n');
    let st = app.status.clone().unwrap();
    assert!(st.text.contains("went on from the top"), "{st:?}");
    assert!(screen(&mut app, 100, 30).contains("/error 1/2"));
    app.publish.log.clear();
    assert!(!screen(&mut app, 100, 30).contains("/error"));
}

/// The RESULT column describes the manifest as it is: a run's result goes once the entry or
/// its version changes; the paused log counts the lines of the current run only.
#[test]
fn results_and_log_position_describe_the_current_manifest_and_run() {
    use pubdeck::tui::view::render_to_buffer;
    let mut app = app();
    let row = |app: &App| app.publish.builds[0].clone();
    app.publish.start_job("hello".into(), 0);
    app.update(Action::JobFinished {
        kind: JobKind::Publish,
        build: "hello".into(),
        outcome: job_outcome(JobKind::Publish, "hello", "1.0.0"),
    });
    assert!(matches!(
        app.publish.last_result(&row(&app)),
        Some(LastResult::Published(_))
    ));
    // The same manifest read again: still the result of that run.
    app.update(Action::Builds(demo_builds()));
    assert!(matches!(
        app.publish.last_result(&row(&app)),
        Some(LastResult::Published(_))
    ));
    // A new version: that run says nothing of it.
    let mut builds = demo_builds();
    builds[0].version = "1.0.1".into();
    app.update(Action::Builds(builds));
    assert_eq!(app.publish.last_result(&row(&app)), None);
    // Same version, another entry (its command changed): nothing either.
    let mut builds = demo_builds();
    builds[0].entry ^= 1;
    app.update(Action::Builds(builds));
    assert_eq!(app.publish.last_result(&row(&app)), None);

    // Log position: 500 lines of an earlier run, then 40 of this one.
    let mut app = self::app();
    for i in 0..500 {
        app.update(log_line(&format!("old {i}")));
    }
    app.publish.start_job("hello".into(), 0);
    for i in 0..40 {
        app.update(log_line(&format!("new {i}")));
    }
    app.publish.focus = PublishPane::Log;
    ch(&mut app, 'g');
    let h = app.log_height();
    let buf = render_to_buffer(&app, 100, 30);
    let text: String = (0..30)
        .map(|y| {
            (0..100)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains(&format!("paused {}/40", u64::from(h).min(40))),
        "{text}"
    );
}
