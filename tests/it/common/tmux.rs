//! A terminal program driven for real: a detached tmux session, keys sent, the screen read.

use std::process::Command;
use std::time::{Duration, Instant};

/// One session on its own tmux server (its socket in a temporary directory): tests running
/// side by side never share a server, so one test killing its session cannot take down a
/// server another test is just connecting to (a shared server exits with its last session, and
/// a `new-session` racing that exit fails with an empty screen).
pub struct Tmux {
    pub session: String,
    socket: tempfile::TempDir,
}

/// Whether tmux is here; if not, says so (a failure under CI, which installs it).
pub fn tmux_here(test: &str) -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    if std::env::var("CI").is_ok() {
        panic!("tmux is missing on CI; .ci/run installs it");
    }
    eprintln!("SKIP {test}: tmux is not installed");
    false
}

impl Tmux {
    /// A detached 120x40 session `session` running the shell command `cmd`.
    pub fn start(session: String, cmd: &str) -> Tmux {
        // Under /tmp, not $TMPDIR: a Unix socket's path must fit in 108 bytes.
        let socket = tempfile::Builder::new()
            .prefix("pubdeck-tmux")
            .tempdir_in("/tmp")
            .expect("a directory for the tmux socket");
        let t = Tmux { session, socket };
        let out = t.command(&[
            "new-session",
            "-d",
            "-s",
            &t.session,
            "-x",
            "120",
            "-y",
            "40",
            cmd,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session {} failed: {}",
            t.session,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        t
    }

    fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(self.socket.path().join("s"))
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// A tmux command on this session's server; its standard output.
    pub fn run(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.command(args).stdout).into_owned()
    }

    pub fn capture(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", &self.session])
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    pub fn text(&self, text: &str) {
        self.run(&["send-keys", "-t", &self.session, "-l", text]);
    }

    /// Waits until the screen contains `needle`; panics with the screen after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if screen.contains(needle) {
                return screen;
            }
            if start.elapsed() > timeout {
                panic!("{needle:?} did not appear within {timeout:?}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}
