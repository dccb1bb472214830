//! Snapshots of every view at 100×30 on fixed demo data: the text plus the style of every
//! non-default cell run, so meaning carried by colour (a failing check is red) is checked.

use crate::support;

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

/// A failure opens whole, message and fix wrapped, at the smallest common terminal; the
/// header's single line cannot hold it.
#[test]
fn a_failure_opens_whole_at_80x24() {
    let mut app = screenshots::publish_running_at(usize::MAX);
    let hint = "the build log shows the failing command; the build ran in a fresh clone, \
                so every file it needs must be committed";
    let message = "build hello failed: `make install` exited with status 2 after 41 lines of \
                   output in /tmp/pubdeck-build-hello-3f2a9c1/src";
    app.update(Action::JobFinished {
        kind: pubdeck::tui::JobKind::Publish,
        build: "hello".into(),
        outcome: pubdeck::tui::JobOutcome::Failed(pubdeck::event::Failure::new(
            message,
            Some(hint.into()),
        )),
    });
    assert!(
        matches!(app.popup, Some(Popup::Failure { .. })),
        "{:?}",
        app.popup
    );
    let buf = render_to_buffer(&app, 80, 24);
    // The popup's inner text, joined across its wrapped rows: the columns between the
    // corners of the row that carries its title.
    let rows: Vec<Vec<String>> = (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect()
        })
        .collect();
    let top = rows
        .iter()
        .position(|r| r.concat().contains(" Failed "))
        .expect("the popup is drawn");
    let corner = |c: &str| rows[top].iter().position(|s| s == c);
    let left = corner("┏").or(corner("╭")).expect("left corner");
    let right = rows[top]
        .iter()
        .rposition(|s| s == "┓" || s == "╮")
        .expect("right corner");
    let mut joined = String::new();
    for row in &rows[top + 1..] {
        if row[left] != "┃" && row[left] != "│" {
            break;
        }
        joined.push(' ');
        joined.push_str(&row[left + 1..right].concat());
    }
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let joined = words(&joined);
    assert!(joined.contains(&words(message)), "{joined}");
    assert!(joined.contains(&words(hint)), "{joined}");
    // Esc closes it; the status line keeps the short form.
    app.update(Action::Command(Command::Dismiss));
    assert!(app.popup.is_none());
    assert!(app.status.is_some());
}
