//! Two builds of the same revision that differ: plain data `publish::repro` fills and the
//! faces show.

use serde::Serialize;

/// Two builds of the same revision that differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreproducible {
    pub first_nar_hash: String,
    pub second_nar_hash: String,
    /// The first differing paths (at most `publish::repro::MAX_DIFFERENCES`).
    pub files: Vec<Difference>,
    /// Differing paths in all.
    pub total: usize,
}

impl std::fmt::Display for Unreproducible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.files.iter().take(3).map(|d| d.path.as_str()).collect();
        write!(
            f,
            "the build is not reproducible: two clean builds differ in {} path{} ({}{})",
            self.total,
            if self.total == 1 { "" } else { "s" },
            names.join(", "),
            if self.total > names.len() {
                ", …"
            } else {
                ""
            }
        )
    }
}

/// One path that differs between the two builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Relative to the output (empty for the root).
    pub path: String,
    pub kind: DiffKind,
}

/// How it differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DiffKind {
    /// Only the first build has it.
    OnlyFirst,
    /// Only the second build has it.
    OnlySecond,
    /// A file in one, a directory or symlink in the other; or another executable bit.
    Type { first: String, second: String },
    /// Text: the lines that differ (`-` first build, `+` second).
    Text { lines: Vec<String> },
    /// Binary (or large): sizes and the first differing byte.
    Binary {
        first_size: u64,
        second_size: u64,
        first_difference: u64,
    },
    /// Symlinks with other targets.
    Target { first: String, second: String },
}
