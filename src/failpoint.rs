//! Fault injection for the kill -9 tests. With `PUBDECK_FAILPOINT_PAUSE=<point>` in its
//! environment, the process stops for a minute when it reaches that point, after writing
//! `failpoint: paused at <point>` to stderr, so a test can SIGKILL it exactly there. Unset (as
//! always outside the tests) a point costs one environment lookup.
//!
//! Points: the publish stages by name (`clone`, `pack`, `sign`, `upload`, `register`, …);
//! `upload-closure`, between two paths of a closure upload (a dependency is in the store, the
//! paths that refer to it are not); `install-import`, between importing an install's
//! dependencies and the package itself; `register-transaction`, inside the catalog's register
//! transaction after the build row is written and before it commits; `gc-delete`, before each
//! object GC deletes; `gc-record`, after GC's deletions and before their audit entry.

use std::time::Duration;

/// The environment variable naming the point to pause at.
pub const ENV: &str = "PUBDECK_FAILPOINT_PAUSE";

/// How long a paused process waits before going on.
const PAUSE: Duration = Duration::from_secs(60);

/// Pauses here if `point` is the one named in [`ENV`]: for a minute, or until the process
/// gets SIGUSR2 (a test that changed the world around the paused process lets it go on).
pub async fn pause(point: &str) {
    if std::env::var_os(ENV).is_some_and(|p| p == point) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut go_on = signal(SignalKind::user_defined2()).ok();
        eprintln!("failpoint: paused at {point}");
        match &mut go_on {
            Some(s) => {
                tokio::select! {
                    _ = s.recv() => {}
                    () = tokio::time::sleep(PAUSE) => {}
                }
            }
            None => tokio::time::sleep(PAUSE).await,
        }
    }
}
