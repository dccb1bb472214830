//! The reproducibility check: a build is built twice, each time in a fresh clone, packed
//! content-addressed both times, and the NAR hashes compared (a build that embeds its own
//! output path is compared after that path is rewritten, as Nix's content addressing does).
//! On a mismatch the two NARs are unpacked and compared file by file: differing text files
//! get a short line diff, binaries their sizes and the first differing byte.

use std::path::{Path, PathBuf};

use crate::cache::{CacheError, Compression};

/// Most differences named (the rest are counted).
pub const MAX_DIFFERENCES: usize = 20;
/// Text files up to this size get a line diff.
const MAX_TEXT_DIFF: u64 = 256 * 1024;
/// Lines of line diff kept per file.
const MAX_DIFF_LINES: usize = 12;

pub use crate::event::repro::{DiffKind, Difference, Unreproducible};

/// Unpacks two compressed NARs and compares them file by file.
pub fn compare(
    store_path: &crate::nix::StorePath,
    first: &crate::cache::NarSource,
    second: &crate::cache::NarSource,
    compression: Compression,
) -> Result<(Vec<Difference>, usize), CacheError> {
    let tmp = tempfile::Builder::new()
        .prefix("pubdeck-repro-")
        .tempdir()
        .map_err(|e| CacheError::Io {
            action: "create a directory for",
            path: std::env::temp_dir(),
            source: e,
        })?;
    let (a, b) = (tmp.path().join("first"), tmp.path().join("second"));
    for (nar, dest) in [(first, &a), (second, &b)] {
        let dec = compression
            .decoder(nar.clone().into_reader()?)
            .map_err(|e| CacheError::Io {
                action: "decompress",
                path: nar.name(),
                source: e,
            })?;
        crate::nix::nar::unpack_nar(dec, dest).map_err(|source| CacheError::Unpack {
            path: store_path.clone(),
            source,
        })?;
    }
    let mut out = Vec::new();
    let mut total = 0;
    compare_trees(&a, &b, "", &mut out, &mut total);
    // Unpacked files are read-only: make them removable.
    crate::fsutil::make_writable(tmp.path());
    Ok((out, total))
}

fn kind_of(p: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::symlink_metadata(p).ok()?;
    Some(if m.is_dir() {
        "directory".into()
    } else if m.file_type().is_symlink() {
        "symlink".into()
    } else if m.permissions().mode() & 0o100 != 0 {
        "executable".into()
    } else {
        "file".into()
    })
}

fn push(out: &mut Vec<Difference>, total: &mut usize, d: Difference) {
    *total += 1;
    if out.len() < MAX_DIFFERENCES {
        out.push(d);
    }
}

fn compare_trees(a: &Path, b: &Path, rel: &str, out: &mut Vec<Difference>, total: &mut usize) {
    let (ka, kb) = (kind_of(a), kind_of(b));
    let path = rel.to_string();
    match (ka.as_deref(), kb.as_deref()) {
        (None, None) => {}
        (Some(_), None) => push(
            out,
            total,
            Difference {
                path,
                kind: DiffKind::OnlyFirst,
            },
        ),
        (None, Some(_)) => push(
            out,
            total,
            Difference {
                path,
                kind: DiffKind::OnlySecond,
            },
        ),
        (Some(x), Some(y)) if x != y => push(
            out,
            total,
            Difference {
                path,
                kind: DiffKind::Type {
                    first: x.into(),
                    second: y.into(),
                },
            },
        ),
        (Some("directory"), Some("directory")) => {
            let names = |d: &Path| -> Vec<std::ffi::OsString> {
                let mut v: Vec<_> = std::fs::read_dir(d)
                    .map(|r| r.filter_map(Result::ok).map(|e| e.file_name()).collect())
                    .unwrap_or_default();
                v.sort();
                v
            };
            let mut all = names(a);
            all.extend(names(b));
            all.sort();
            all.dedup();
            for n in all {
                let child = if rel.is_empty() {
                    n.to_string_lossy().into_owned()
                } else {
                    format!("{rel}/{}", n.to_string_lossy())
                };
                compare_trees(&a.join(&n), &b.join(&n), &child, out, total);
            }
        }
        (Some("symlink"), Some("symlink")) => {
            let (ta, tb) = (std::fs::read_link(a).ok(), std::fs::read_link(b).ok());
            if ta != tb {
                let s = |t: Option<PathBuf>| t.map(|t| t.display().to_string()).unwrap_or_default();
                push(
                    out,
                    total,
                    Difference {
                        path,
                        kind: DiffKind::Target {
                            first: s(ta),
                            second: s(tb),
                        },
                    },
                );
            }
        }
        _ => {
            let (da, db) = (
                std::fs::read(a).unwrap_or_default(),
                std::fs::read(b).unwrap_or_default(),
            );
            if da == db {
                return;
            }
            // Text: UTF-8 without NUL bytes (what `diff` and git call text), and small.
            let text = |d: &[u8]| (d.len() as u64) <= MAX_TEXT_DIFF && !d.contains(&0);
            let kind = match (std::str::from_utf8(&da), std::str::from_utf8(&db)) {
                (Ok(ta), Ok(tb)) if text(&da) && text(&db) => DiffKind::Text {
                    lines: line_diff(ta, tb),
                },
                _ => DiffKind::Binary {
                    first_size: da.len() as u64,
                    second_size: db.len() as u64,
                    first_difference: da
                        .iter()
                        .zip(&db)
                        .position(|(x, y)| x != y)
                        .unwrap_or(da.len().min(db.len()))
                        as u64,
                },
            };
            push(out, total, Difference { path, kind });
        }
    }
}

/// The changed lines of two texts (`-` first, `+` second), at most [`MAX_DIFF_LINES`].
fn line_diff(a: &str, b: &str) -> Vec<String> {
    let diff = similar::TextDiff::from_lines(a, b);
    let mut out = Vec::new();
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => continue,
        };
        if out.len() == MAX_DIFF_LINES {
            out.push("…".into());
            break;
        }
        let line: String = change
            .value()
            .trim_end_matches('\n')
            .chars()
            .take(160)
            .collect();
        out.push(format!("{sign}{line}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_text_binary_and_missing_differences() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join("share")).unwrap();
            std::fs::write(d.join("same.txt"), "same\n").unwrap();
        }
        std::fs::write(a.join("share/stamp.txt"), "built\nat 10:00\nok\n").unwrap();
        std::fs::write(b.join("share/stamp.txt"), "built\nat 10:01\nok\n").unwrap();
        std::fs::write(a.join("bin.dat"), [0u8, 1, 2, 3]).unwrap();
        std::fs::write(b.join("bin.dat"), [0u8, 1, 9, 3, 4]).unwrap();
        std::fs::write(a.join("only-a"), "x").unwrap();
        let (mut out, mut total) = (Vec::new(), 0);
        compare_trees(&a, &b, "", &mut out, &mut total);
        assert_eq!(total, 3, "{out:?}");
        let by = |p: &str| out.iter().find(|d| d.path == p).unwrap().kind.clone();
        assert_eq!(
            by("share/stamp.txt"),
            DiffKind::Text {
                lines: vec!["-at 10:00".into(), "+at 10:01".into()]
            }
        );
        assert_eq!(
            by("bin.dat"),
            DiffKind::Binary {
                first_size: 4,
                second_size: 5,
                first_difference: 2
            }
        );
        assert_eq!(by("only-a"), DiffKind::OnlyFirst);
    }
}
