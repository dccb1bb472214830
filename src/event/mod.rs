//! The one typed event stream that long operations emit.
//!
//! The engine sends [`Event`]s into an [`EventTx`]; the TUI turns them into actions, the CLI
//! prints them, tests assert on them. Nothing here knows about terminals.

use std::path::PathBuf;
use std::time::Duration;

mod check;
pub mod repro;
pub mod review;

pub use check::{Check, CheckId};

/// A stage of the publish pipeline, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Check,
    Clone,
    Build,
    Pack,
    Sign,
    Upload,
    Register,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Check,
        Stage::Clone,
        Stage::Build,
        Stage::Pack,
        Stage::Sign,
        Stage::Upload,
        Stage::Register,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Check => "check",
            Stage::Clone => "clone",
            Stage::Build => "build",
            Stage::Pack => "pack",
            Stage::Sign => "sign",
            Stage::Upload => "upload",
            Stage::Register => "register",
        }
    }
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Upload,
    Download,
}

/// Which pipe a build log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Something that happened during a long operation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    StageStarted {
        stage: Stage,
    },
    StageFinished {
        stage: Stage,
        #[serde(with = "secs")]
        duration: Duration,
        ok: bool,
    },
    /// A stage that did not need to run (e.g. already published).
    StageSkipped {
        stage: Stage,
        reason: String,
    },
    Check(Check),
    /// The repository was cloned at `rev` into a temporary directory.
    Cloned {
        rev: String,
        dir: PathBuf,
    },
    /// Build output: whole lines read together from one stream.
    Log {
        stream: Stream,
        lines: LogLines,
    },
    /// The build command exited.
    BuildExited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// A store path was packed: a dependency of the output, or (last) the output itself.
    Packed {
        store_path: String,
        nar_hash: String,
        nar_size: u64,
        file_size: u64,
        dependency: bool,
    },
    Signed {
        key_name: String,
    },
    /// A dependency the store already has (its narinfo names its content): not uploaded.
    AlreadyInStore {
        store_path: String,
    },
    /// Progress of one object moving to or from the store.
    Transfer {
        direction: Direction,
        key: String,
        sent: u64,
        total: u64,
        /// Smoothed bytes per second (0 until known).
        rate: f64,
        /// Seconds left, when known.
        eta: Option<f64>,
        /// Attempts retried so far.
        retries: u32,
    },
    /// An attempt failed and is retried.
    TransferRetry {
        direction: Direction,
        key: String,
        attempt: u32,
        reason: String,
    },
    /// Nothing moved for `idle`.
    TransferStalled {
        direction: Direction,
        key: String,
        #[serde(with = "secs")]
        idle: Duration,
    },
    /// The object is complete in its destination.
    TransferDone {
        direction: Direction,
        key: String,
        /// Its size.
        size: u64,
        /// Bytes moved by this run (0 when it was already there).
        moved: u64,
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    /// A note for the user (a warning, a skipped step explained).
    Note {
        message: String,
    },
    Published {
        reference: String,
    },
    /// The build is packed and signed; nothing is uploaded until the review is answered
    /// (see [`crate::publish::ReviewGate`]).
    Review(Box<review::Review>),
    /// Two clean builds of the revision differ (the reproducibility check): what differs.
    Unreproducible(Box<repro::Unreproducible>),
    /// Progress of store maintenance: `done` of `total` objects.
    Progress {
        work: Work,
        done: u64,
        total: u64,
    },
}

/// Store maintenance that reports [`Event::Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Work {
    /// GC reading the narinfos it keeps (to learn which NARs they need).
    GcScan,
    /// GC deleting.
    GcDelete,
    /// Re-sign adding a signature to each narinfo.
    ReSign,
}

/// A failed operation as the engine hands it to a face: one sentence saying what went wrong
/// and, where a command fixes it, that command. The face alone decides how to show them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(message: impl Into<String>, hint: Option<String>) -> Failure {
        Failure {
            message: message.into(),
            hint,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Lines of build output read together from one stream, each without its newline (and
/// `\r`), lossy UTF-8, ANSI kept. One event carries as many lines as one read of the pipe
/// gave (at most [`LogLines::BATCH_BYTES`] of them), so a build printing a million lines costs
/// thousands of events, not a million.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogLines {
    text: String,
    /// End of each line in `text`.
    ends: Vec<usize>,
}

impl LogLines {
    /// Bytes of text after which a batch is sent.
    pub const BATCH_BYTES: usize = 16 * 1024;

    /// One line.
    pub fn one(line: impl Into<String>) -> LogLines {
        let text = line.into();
        LogLines {
            ends: vec![text.len()],
            text,
        }
    }

    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.ends.push(self.text.len());
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of text (without newlines).
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let line = &self.text[start..end];
            start = end;
            line
        })
    }
}

impl serde::Serialize for LogLines {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'a> FromIterator<&'a str> for LogLines {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> LogLines {
        let mut l = LogLines::default();
        for line in iter {
            l.push(line);
        }
        l
    }
}

/// An engine error: one sentence (its `Display`) and, where a command fixes it, a hint.
pub trait Hinted: std::fmt::Display {
    /// The command or edit that fixes the problem, where one exists.
    fn hint(&self) -> Option<String> {
        None
    }

    /// The error as plain data for a face.
    fn failure(&self) -> Failure {
        Failure::new(self.to_string(), self.hint())
    }
}

/// The sending half of an event stream. Bounded: a slow consumer slows the producer
/// (as a pipe would) instead of buffering a million log lines.
pub type EventTx = tokio::sync::mpsc::Sender<Event>;
pub type EventRx = tokio::sync::mpsc::Receiver<Event>;

/// A channel sized for build logs.
pub fn channel() -> (EventTx, EventRx) {
    tokio::sync::mpsc::channel(4096)
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
