//! What publish shows before it uploads, and what `build --check` shows when two builds
//! differ: the review and the reproducibility report as text, and the review answered on the
//! terminal (`y` uploads, `r` compares two builds first, anything else stops).

use super::output::{self, Style};
use crate::publish::review::Review;
use crate::publish::{self, ReviewAnswer};

/// What the printer does with a review.
pub(crate) enum AtReview {
    /// Nothing (no review requested).
    Nothing,
    /// Print it and stop (`--dry-run`).
    Stop(tokio::sync::oneshot::Sender<ReviewAnswer>),
    /// Print it and ask on the terminal.
    Ask(tokio::sync::oneshot::Sender<ReviewAnswer>),
}

/// The review as text: destination, closure with sizes, the diff against the last version.
pub fn format_review(r: &Review, style: Style) -> String {
    use std::fmt::Write as _;
    let hb = output::human_bytes;
    // Everything but pubdeck's own words came from a catalog, a store or a NAR listing.
    let t = crate::text::terminal;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {} ({})",
        style.bold("review"),
        t(&r.reference),
        t(&r.system)
    );
    let _ = writeln!(s, "  catalog  {} (org {})", t(&r.catalog), t(&r.org));
    let _ = writeln!(s, "  store    {}", t(&r.store_url));
    let _ = writeln!(s, "  key      {}", t(&r.key_name));
    let _ = writeln!(
        s,
        "  closure  {} store path{}, {} unpacked, {} to upload",
        r.closure.len(),
        if r.closure.len() == 1 { "" } else { "s" },
        hb(r.nar_total),
        hb(r.upload_bytes)
    );
    for p in &r.closure {
        let _ = writeln!(
            s,
            "    {:>10}  {}{}",
            hb(p.nar_size),
            t(&p.store_path),
            if p.in_store {
                style.muted(" (already in the store)")
            } else {
                String::new()
            }
        );
    }
    match &r.previous {
        None => {
            let _ = writeln!(s, "  against  nothing: the first version of this package");
        }
        Some(p) => {
            let sign = if p.size_delta >= 0 { "+" } else { "-" };
            let _ = writeln!(
                s,
                "  against  {} ({}), {sign}{} unpacked",
                t(&p.version),
                hb(p.nar_size),
                hb(p.size_delta.unsigned_abs())
            );
            if let Some(note) = &p.note {
                let _ = writeln!(s, "    {}", style.muted(&t(note)));
            }
            if let Some(d) = &p.diff {
                if d.is_empty() {
                    let _ = writeln!(s, "    no file added, removed or changed in size or type");
                }
                let shown = 40;
                let mut n = 0;
                for e in &d.added {
                    if n < shown {
                        let _ = writeln!(
                            s,
                            "    {} {} ({})",
                            style.ok("+"),
                            t(&e.path),
                            t(&e.node.to_string())
                        );
                    }
                    n += 1;
                }
                for e in &d.removed {
                    if n < shown {
                        let _ = writeln!(
                            s,
                            "    {} {} ({})",
                            style.err("-"),
                            t(&e.path),
                            t(&e.node.to_string())
                        );
                    }
                    n += 1;
                }
                for c in &d.changed {
                    if n < shown {
                        let _ = writeln!(
                            s,
                            "    {} {} ({} → {})",
                            style.warn("~"),
                            t(&c.path),
                            t(&c.before.to_string()),
                            t(&c.after.to_string())
                        );
                    }
                    n += 1;
                }
                if n > shown {
                    let _ = writeln!(s, "    … and {} more", n - shown);
                }
            }
        }
    }
    s
}

/// The files two builds disagree on, for stderr.
pub fn format_unreproducible(u: &publish::repro::Unreproducible, style: Style) -> String {
    use crate::publish::repro::DiffKind;
    use std::fmt::Write as _;
    // File names, link targets and file contents are the build's.
    let t = crate::text::terminal;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "first build  {}\nsecond build {}",
        u.first_nar_hash, u.second_nar_hash
    );
    for d in &u.files {
        let path = if d.path.is_empty() {
            "(the output itself)".into()
        } else {
            t(&d.path)
        };
        let path = path.as_ref();
        match &d.kind {
            DiffKind::OnlyFirst => {
                let _ = writeln!(s, "  {} only in the first build", style.bold(path));
            }
            DiffKind::OnlySecond => {
                let _ = writeln!(s, "  {} only in the second build", style.bold(path));
            }
            DiffKind::Type { first, second } => {
                let _ = writeln!(s, "  {}: {} / {}", style.bold(path), t(first), t(second));
            }
            DiffKind::Target { first, second } => {
                let _ = writeln!(
                    s,
                    "  {}: symlink to {} / {}",
                    style.bold(path),
                    t(first),
                    t(second)
                );
            }
            DiffKind::Binary {
                first_size,
                second_size,
                first_difference,
            } => {
                let _ = writeln!(
                    s,
                    "  {}: binary, {first_size} / {second_size} bytes, first difference at byte {first_difference}",
                    style.bold(path)
                );
            }
            DiffKind::Text { lines } => {
                let _ = writeln!(s, "  {}:", style.bold(path));
                for l in lines {
                    let l = t(l);
                    let shown = if l.starts_with('-') {
                        style.err(&l)
                    } else if l.starts_with('+') {
                        style.ok(&l)
                    } else {
                        l.into_owned()
                    };
                    let _ = writeln!(s, "      {shown}");
                }
            }
        }
    }
    if u.total > u.files.len() {
        let _ = writeln!(s, "  … and {} more", u.total - u.files.len());
    }
    s
}

/// Asks on the terminal: y uploads, r checks reproducibility first, anything else stops.
fn ask_upload() -> ReviewAnswer {
    use std::io::Write as _;
    eprint!("upload and register? [y/N, r = build again and compare first] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return ReviewAnswer::Decline;
    }
    match answer.trim() {
        "y" | "Y" | "yes" => ReviewAnswer::Upload,
        "r" | "R" => ReviewAnswer::VerifyThenUpload,
        _ => ReviewAnswer::Decline,
    }
}

/// Prints a review and answers it as `at` says.
pub(crate) fn answer_review(r: &Review, at: &mut AtReview, print: &dyn Fn(&str)) {
    print(format_review(r, Style::stderr()).trim_end());
    match std::mem::replace(at, AtReview::Nothing) {
        AtReview::Stop(tx) => {
            let _ = tx.send(ReviewAnswer::Decline);
        }
        AtReview::Ask(tx) => {
            let _ = tx.send(ask_upload());
        }
        AtReview::Nothing => {}
    }
}
