//! `pubdeck` as a child process, for the tests that kill it or run several: its stderr lines
//! arrive on a channel, every wait is bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a step may take before the test gives up (bounded loops only).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A `pubdeck` process whose stderr lines arrive on a channel.
pub struct Proc {
    pub child: Child,
    pub lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn pubdeck");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `marker`; returns it.
    pub fn wait_for(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(marker) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.kill();
                    let status = self.child.wait().unwrap();
                    panic!(
                        "never saw {marker:?} (exit {status}):\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    pub fn kill_nine(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.seen.extend(self.lines.try_iter());
                return (status, self.seen.join("\n"));
            }
            if Instant::now() > deadline {
                self.child.kill().unwrap();
                panic!(
                    "still running after {PATIENCE:?}:\n{}",
                    self.seen.join("\n")
                );
            }
            self.seen.extend(self.lines.try_iter());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `pubdeck ARGS` with its data and config under `tmp` and no credentials from outside.
pub fn pubdeck(args: &[&str], tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pubdeck"));
    c.args(args)
        .env("CI", "true")
        .env("PUBDECK_DATA_DIR", tmp.join("data"))
        .env("XDG_CONFIG_HOME", tmp.join("cfg"))
        .env("PUBDECK_SIGNING_KEY", tmp.join("myorg-1.key"))
        .env("PUBDECK_ORG", "myorg")
        .env_remove("PUBDECK_FAILPOINT_PAUSE")
        .env_remove("PUBDECK_TOKEN")
        .env_remove("PUBDECK_CATALOG");
    c
}

/// A `pubdeck serve` process on a loopback port.
pub struct Service {
    pub proc: Proc,
    pub url: String,
}

pub fn start_service(tmp: &Path, db_url: &str, failpoint: Option<&str>) -> Service {
    start_service_on("127.0.0.1:0", tmp, db_url, failpoint)
}

/// [`start_service`] on a given address (a restart on the same port).
pub fn start_service_on(
    listen: &str,
    tmp: &Path,
    db_url: &str,
    failpoint: Option<&str>,
) -> Service {
    let mut c = pubdeck(&["serve", "--listen", listen, "--db", db_url], tmp);
    c.env("RUST_LOG", "info");
    if let Some(point) = failpoint {
        c.env("PUBDECK_FAILPOINT_PAUSE", point);
    }
    let mut proc = Proc::spawn(c);
    let line = proc.wait_for("listening");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line:?}"))
        .to_string();
    Service {
        proc,
        url: format!("http://{addr}"),
    }
}
