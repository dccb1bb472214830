//! The README screenshots: the real views on the demo world (see `fake`), rendered to SVG.
//! `tests/it/tui_screenshots.rs` checks that the committed files are current, and rewrites them
//! with `PUBDECK_UPDATE_SCREENSHOTS=1` (`scripts/screenshots.sh`).
#![allow(dead_code)]

use crate::event::{Event, Failure};
use crate::tui::Action;
use crate::tui::Theme;
use crate::tui::app::{App, CatalogPane, Popup, PublishPane, Tab};
use crate::tui::keymap::Command;
use crate::tui::model::{JobKind, LastResult};
use crate::tui::view::render_to_buffer;

use super::fake::{self, demo_builds, demo_checks, demo_details, demo_packages, demo_readiness};

/// Screenshot size (columns, rows).
pub const SIZE: (u16, u16) = (100, 30);

fn base() -> App {
    let mut app = App::new(Theme::dark(), SIZE);
    app.update(Action::Builds(demo_builds()));
    app.update(Action::Checks(demo_checks(Some("hello"), false)));
    app.update(Action::Packages {
        packages: demo_packages().into(),
        etag: None,
    });
    app.status = None;
    app
}

/// Publish tab, nothing running: one failing precondition with its fix-it.
pub fn publish_idle() -> App {
    let mut app = base();
    app.publish.results.insert(
        "report".into(),
        LastResult::Published("myorg/report@2.3.1".into()),
    );
    app.publish.results.insert(
        "broken".into(),
        LastResult::Failed(Failure::new("build `broken` failed with exit code 3", None)),
    );
    app
}

/// Publish tab mid-upload: stepper, gauges, live log (`upload_events` upload events in).
pub fn publish_running_at(upload_events: usize) -> App {
    let mut app = base();
    app.update(Action::Checks(demo_checks(Some("hello"), true)));
    app.update(Action::Command(Command::Publish));
    app.update(Action::Command(Command::Confirm));
    app.publish.focus = PublishPane::Log;
    let mut uploads = 0;
    for (delay, event) in fake::publish_script("hello", "1.0.0", JobKind::Publish) {
        for _ in 0..delay.as_millis() / 100 {
            app.update(Action::Tick);
        }
        if matches!(event, Event::Transfer { .. }) {
            uploads += 1;
            if uploads > upload_events {
                break;
            }
        }
        let review = matches!(event, Event::Review(_));
        app.update(Action::Engine(event));
        if review {
            app.update(Action::Command(Command::Confirm));
        }
    }
    app.status = None;
    app
}

/// Publish tab at the review before upload: destination, closure, diff against 0.9.0.
pub fn publish_review() -> App {
    let mut app = base();
    app.update(Action::Checks(demo_checks(Some("hello"), true)));
    app.update(Action::Command(Command::Publish));
    app.update(Action::Command(Command::Confirm));
    for (_, event) in fake::publish_script("hello", "1.0.0", JobKind::Publish) {
        let review = matches!(event, Event::Review(_));
        app.update(Action::Engine(event));
        if review {
            break;
        }
    }
    app
}

pub fn publish_running() -> App {
    publish_running_at(18)
}

/// Catalog tab: a fuzzy query with highlighted matches, details and readiness.
pub fn catalog_search() -> App {
    let mut app = base();
    app.tab = Tab::Catalog;
    app.catalog.focus = CatalogPane::Search;
    for c in "mtrx".chars() {
        app.update(Action::Command(Command::Insert(c)));
    }
    app.update(Action::Command(Command::Down));
    if let Some((_, row)) = app.catalog.selected() {
        let row = row.clone();
        app.update(Action::Details(demo_details(&row)));
        let package = row.reference();
        let checks = demo_readiness(&package);
        app.update(Action::Readiness { package, checks });
    }
    app.catalog.details_due = None;
    app.status = None;
    app
}

/// The `?` popup over the publish tab.
pub fn help() -> App {
    let mut app = publish_idle();
    app.popup = Some(Popup::Help { scroll: 0 });
    app
}

/// `(file name, app)` for every screenshot.
pub fn all() -> Vec<(&'static str, App)> {
    vec![
        ("publish-idle.svg", publish_idle()),
        ("publish-running.svg", publish_running()),
        ("publish-review.svg", publish_review()),
        ("catalog-search.svg", catalog_search()),
        ("help.svg", help()),
    ]
}

/// Renders `app` at [`SIZE`] as SVG.
pub fn svg(app: &App) -> String {
    super::svg::buffer_to_svg(&render_to_buffer(app, SIZE.0, SIZE.1))
}
