//! How a failed command ends ([`Exit`]) and how it is reported (one sentence, the excerpt,
//! then `hint:`).

use std::process::ExitCode;

use crate::event::Failure;

use super::output;

/// How a failed command ends: the engine's [`Failure`] (one sentence, an optional hint, the
/// same value the workbench shows), and what the command line adds to it: the exit status
/// and, for an error about a line of a file, that line with a caret under its column.
#[derive(Debug)]
pub struct Exit {
    pub failure: Failure,
    /// Exit status: 1 (failed) unless a usage error (2).
    pub code: u8,
    /// Lines shown between the message and the hint: the source line an error is about,
    /// with a caret under its column.
    pub excerpt: Vec<String>,
}

impl Exit {
    pub fn new(message: impl Into<String>, hint: Option<String>) -> Exit {
        Exit::from(Failure::new(message, hint))
    }

    /// A failure (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Exit::new(message, None)
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Exit {
            code: 2,
            ..Exit::new(message, None)
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.failure.hint = Some(hint.into());
        self
    }

    /// An engine error as a failure (exit 1): its sentence and its hint.
    pub fn hinted(e: &impl crate::event::Hinted) -> Self {
        Exit::from(e.failure())
    }
}

/// The engine's failure as the CLI reports it: the same sentence and hint, exit status 1.
impl From<Failure> for Exit {
    fn from(failure: Failure) -> Self {
        Exit {
            failure,
            code: 1,
            excerpt: Vec::new(),
        }
    }
}

impl From<crate::manifest::ManifestError> for Exit {
    fn from(e: crate::manifest::ManifestError) -> Self {
        Exit {
            excerpt: e.excerpt(),
            ..Exit::hinted(&e)
        }
    }
}

impl From<crate::build::BuildError> for Exit {
    fn from(e: crate::build::BuildError) -> Self {
        Exit {
            excerpt: e.excerpt(),
            ..Exit::hinted(&e)
        }
    }
}

pub type CmdResult = Result<ExitCode, Exit>;

/// Prints a failure (one sentence, then `hint:`) and returns its exit status.
pub fn report(f: &Exit) -> ExitCode {
    output::error_with(&f.failure.message, &f.excerpt, f.failure.hint.as_deref());
    ExitCode::from(f.code)
}
