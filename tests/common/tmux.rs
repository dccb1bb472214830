//! A terminal program driven for real: a detached tmux session, keys sent, the screen read.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    pub session: String,
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
        Tmux::run(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "120",
            "-y",
            "40",
            cmd,
        ]);
        Tmux { session }
    }

    pub fn run(args: &[&str]) -> String {
        let out = Command::new("tmux").args(args).output().expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn capture(&self) -> String {
        Tmux::run(&["capture-pane", "-p", "-t", &self.session])
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        Tmux::run(&args);
    }

    pub fn text(&self, text: &str) {
        Tmux::run(&["send-keys", "-t", &self.session, "-l", text]);
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
        Tmux::run(&["kill-session", "-t", &self.session]);
    }
}
