//! Every view renders on tiny and odd terminal sizes without panicking.

use crate::support;

use pubdeck::tui::Action;
use pubdeck::tui::app::{App, InputPurpose, Pending, Popup};
use pubdeck::tui::view::render_to_buffer;
use support::screenshots;

fn apps() -> Vec<App> {
    let mut apps: Vec<App> = screenshots::all().into_iter().map(|(_, a)| a).collect();
    let mut confirm = screenshots::publish_idle();
    confirm.popup = Some(Popup::Confirm {
        title: "Publish".into(),
        lines: vec![
            "Publish build hello 1.2.3 to the catalog?".into(),
            "a long warning line ".repeat(10),
        ],
        pending: Pending::Publish("hello".into()),
    });
    apps.push(confirm);
    let mut input = screenshots::catalog_search();
    input.popup = Some(Popup::Input {
        title: "Search log".into(),
        input: pubdeck::tui::input::TextInput::new("x".repeat(300)),
        purpose: InputPurpose::LogSearch,
    });
    apps.push(input);
    apps
}

#[test]
fn tiny_terminals_do_not_panic() {
    let sizes = [
        (10, 5),
        (1, 1),
        (0, 0),
        (1, 30),
        (200, 1),
        (3, 3),
        (20, 8),
        (40, 12),
        (250, 80),
    ];
    for mut app in apps() {
        for (w, h) in sizes {
            app.update(Action::Resize(w, h));
            let buf = render_to_buffer(&app, w, h);
            assert_eq!(buf.area.width, w);
        }
    }
}

#[test]
fn size_mismatch_between_state_and_frame_is_clipped() {
    // The frame may be smaller than the size the state last saw (resize in flight).
    for mut app in apps() {
        app.update(Action::Resize(200, 60));
        for (w, h) in [(10, 5), (1, 1), (100, 30)] {
            render_to_buffer(&app, w, h);
        }
    }
}

#[test]
fn keys_on_tiny_terminals_do_not_panic() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    for mut app in apps() {
        app.update(Action::Resize(10, 5));
        for code in [
            KeyCode::Down,
            KeyCode::Up,
            KeyCode::PageDown,
            KeyCode::PageUp,
            KeyCode::Tab,
            KeyCode::Char('/'),
            KeyCode::Char('x'),
            KeyCode::Enter,
            KeyCode::Char('n'),
            KeyCode::Char('G'),
            KeyCode::Char('g'),
            KeyCode::Esc,
        ] {
            app.update(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)));
            render_to_buffer(&app, 10, 5);
            render_to_buffer(&app, 1, 1);
        }
    }
}
