//! Snapshots of every view at 100×30 on fixed demo data: the text plus the style of every
//! non-default cell run, so meaning carried by colour (a failing check is red) is checked.

#[path = "support/mod.rs"]
mod support;

use pubdeck::tui::app::{App, InputPurpose, Popup, PublishPane};
use pubdeck::tui::keymap::Command;
use pubdeck::tui::view::render_to_buffer;
use pubdeck::tui::{Action, Theme};
use support::fake::{demo_details, demo_readiness};
use support::screenshots;
use support::snapshot::buffer_to_text;

fn snap(app: &App) -> String {
    buffer_to_text(&render_to_buffer(app, 100, 30))
}

#[test]
fn publish_idle() {
    let app = screenshots::publish_idle();
    let text = snap(&app);
    // The failing check's line is red.
    let row = text
        .lines()
        .position(|l| l.contains("✗ commit 3f2a9c1"))
        .expect("failing check shown");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{row}:")) && l.contains("fg=Red")),
        "failing check is not red"
    );
    insta::assert_snapshot!("publish_idle", text);
}

#[test]
fn publish_running() {
    insta::assert_snapshot!("publish_running", snap(&screenshots::publish_running()));
}

#[test]
fn publish_review_popup() {
    insta::assert_snapshot!("publish_review", snap(&screenshots::publish_review()));
}

#[test]
fn publish_finished() {
    let mut app = screenshots::publish_running_at(usize::MAX);
    app.update(Action::JobFinished {
        kind: pubdeck::tui::JobKind::Publish,
        build: "hello".into(),
        outcome: support::fake::job_outcome(pubdeck::tui::JobKind::Publish, "hello", "1.0.0"),
    });
    insta::assert_snapshot!("publish_finished", snap(&app));
}

#[test]
fn publish_log_search_paused() {
    let mut app = screenshots::publish_running();
    app.publish.focus = PublishPane::Log;
    app.update(Action::Command(Command::Top));
    app.popup = Some(Popup::Input {
        title: "Search log".into(),
        input: pubdeck::tui::input::TextInput::new("src/"),
        purpose: InputPurpose::LogSearch,
    });
    app.update(Action::Command(Command::Submit));
    app.update(Action::Command(Command::SearchNext));
    insta::assert_snapshot!("publish_log_search", snap(&app));
}

#[test]
fn publish_confirm_popup() {
    let mut app = screenshots::publish_idle();
    app.update(Action::Checks(support::fake::demo_checks(
        Some("hello"),
        true,
    )));
    app.update(Action::Command(Command::Publish));
    insta::assert_snapshot!("publish_confirm", snap(&app));
}

/// With a precondition failing, publish is not offered: the header says why.
#[test]
fn publish_refused() {
    let mut app = screenshots::publish_idle();
    app.update(Action::Command(Command::Publish));
    insta::assert_snapshot!("publish_refused", snap(&app));
}

#[test]
fn edit_version_popup() {
    let mut app = screenshots::publish_idle();
    app.update(Action::Command(Command::EditVersion));
    insta::assert_snapshot!("edit_version", snap(&app));
}

#[test]
fn catalog_search() {
    insta::assert_snapshot!("catalog_search", snap(&screenshots::catalog_search()));
}

#[test]
fn catalog_not_ready_and_installing() {
    let mut app = screenshots::catalog_search();
    app.update(Action::Command(Command::ClearInput));
    for c in "dnssync".chars() {
        app.update(Action::Command(Command::Insert(c)));
    }
    let (_, row) = app.catalog.selected().expect("dns-sync listed");
    let row = row.clone();
    let package = row.reference();
    app.update(Action::Details(demo_details(&row)));
    app.update(Action::Readiness {
        checks: demo_readiness(&package),
        package: package.clone(),
    });
    app.update(Action::InstallProgress {
        package,
        done: 3_000_000,
        total: Some(8_000_000),
    });
    app.status = None;
    insta::assert_snapshot!("catalog_installing", snap(&app));
}

#[test]
fn help_popup() {
    insta::assert_snapshot!("help", snap(&screenshots::help()));
}

#[test]
fn help_popup_catalog() {
    let mut app = screenshots::catalog_search();
    app.update(Action::Command(Command::FocusResults));
    app.update(Action::Command(Command::Help));
    insta::assert_snapshot!("help_catalog", snap(&app));
}

#[test]
fn no_color_keeps_meaning_without_colour() {
    let mut app = screenshots::publish_idle();
    app.theme = Theme::monochrome();
    let text = snap(&app);
    let styles = text.split("--- styles ---").nth(1).unwrap_or_default();
    assert!(!styles.contains("fg="), "NO_COLOR theme uses colours");
    assert!(!styles.contains("bg="), "NO_COLOR theme uses colours");
    assert!(styles.contains("reverse"), "selection must stay visible");
    insta::assert_snapshot!("publish_idle_no_color", text);
}
