//! The one typed event stream that long operations emit.
//!
//! The engine sends [`Event`]s into an [`EventTx`]; the TUI turns them into actions, the CLI
//! prints them, tests assert on them. Nothing here knows about terminals.

use std::path::PathBuf;
use std::time::Duration;

use crate::git::Check;

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
    /// One line of build output (without its newline; lossy UTF-8; ANSI kept).
    Log {
        stream: Stream,
        line: String,
    },
    /// The build command exited.
    BuildExited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    Packed {
        store_path: String,
        nar_hash: String,
        nar_size: u64,
        file_size: u64,
    },
    Signed {
        key_name: String,
    },
    /// Upload progress in bytes.
    Upload {
        sent: u64,
        total: u64,
        rate: f64,
        eta: Option<f64>,
        retries: u32,
    },
    /// A note for the user (a warning, a skipped step explained).
    Note {
        message: String,
    },
    Published {
        reference: String,
    },
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
