//! Re-run the checks when the repository or manifest changes on disk: a `notify` watcher
//! whose events are debounced (~100 ms) into one `Action::FilesChanged`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::action::Action;
use super::backend::ActionTx;

/// Quiet time after the last change before the checks re-run.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Changes that cannot affect the checks (object writes, lock files, build output).
fn ignored(path: &Path) -> bool {
    let s = path.to_string_lossy();
    s.contains("/.git/objects/")
        || s.contains("/.git/logs/")
        || s.ends_with(".lock")
        || s.contains("/target/")
        || s.contains("/node_modules/")
        || s.ends_with('~')
        || s.ends_with(".swp")
}

/// Watches `paths` recursively; keep the returned watcher alive. `None` when `paths` is
/// empty or nothing could be watched.
pub fn spawn(paths: Vec<PathBuf>, tx: ActionTx) -> Option<RecommendedWatcher> {
    if paths.is_empty() {
        return None;
    }
    let (raw_tx, mut raw_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, EventKind::Access(_)) || ev.paths.iter().all(|p| ignored(p)) {
            return;
        }
        let _ = raw_tx.send(());
    })
    .ok()?;
    let mut watching = false;
    for p in &paths {
        watching |= watcher.watch(p, RecursiveMode::Recursive).is_ok();
    }
    if !watching {
        return None;
    }
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            // Wait until the burst settles.
            loop {
                match tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if tx.send(Action::FilesChanged).await.is_err() {
                return;
            }
        }
    });
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn ignores_noise() {
        assert!(ignored(Path::new("/r/.git/objects/ab/cdef")));
        assert!(ignored(Path::new("/r/.git/index.lock")));
        assert!(!ignored(Path::new("/r/.git/index")));
        assert!(!ignored(Path::new("/r/.flox/env/manifest.toml")));
    }

    #[tokio::test]
    async fn a_save_is_reported_once_within_300ms() {
        let dir = std::env::temp_dir().join(format!("pubdeck-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (tx, mut rx) = crate::tui::backend::inbox();
        let _w = spawn(vec![dir.clone()], tx).expect("watcher");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        for i in 0..5 {
            std::fs::write(dir.join("manifest.toml"), format!("v{i}")).unwrap();
        }
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        let elapsed = start.elapsed();
        assert_eq!(got.ok().flatten(), Some(Action::FilesChanged));
        eprintln!("save → FilesChanged: {elapsed:?}");
        // The target is 300 ms; the bound is looser so a loaded CI machine does not flake.
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
        // The burst was coalesced into one action.
        let extra = tokio::time::timeout(Duration::from_millis(250), rx.recv()).await;
        assert!(extra.is_err(), "burst reported twice");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
