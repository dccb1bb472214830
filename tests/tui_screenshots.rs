//! The committed README screenshots must match what the views render now.

use std::path::Path;

use pubdeck::tui::screenshots;

#[test]
fn screenshots_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    let mut stale = Vec::new();
    for (name, app) in screenshots::all() {
        let want = screenshots::svg(&app);
        let have = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        if have != want {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "screenshots out of date: {stale:?}; run `cargo run --example screenshots` and commit screenshots/"
    );
}
