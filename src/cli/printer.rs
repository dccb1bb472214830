//! The one event printer of the command line: every command that runs a long operation
//! shows its events through [`print_events`].
//!
//! On a terminal the pipeline is a stage list with spinners and an indicatif upload bar; off a
//! terminal or with `CI=true` it is plain timestamped lines; with `--json` or `-q` nothing but
//! a dry run's review.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::{self, Style};
use super::review::{AtReview, answer_review, format_review, format_unreproducible};
use crate::event::{Direction, Event, EventRx, Stream};
use crate::publish::ReviewAnswer;
use crate::publish::review::Review;

/// Whether to draw spinners and bars (stderr is a terminal and this is not CI).
fn interactive() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var("CI")
            .map(|v| v != "true" && v != "1")
            .unwrap_or(true)
}

/// What a command shows of its events.
pub(crate) enum Show {
    /// A pipeline (publish, `build --check`, gc, resign): stages, checks, logs, transfers and
    /// notes, with a review answered as `at` says; with `quiet` (`--json`) or `-q`, nothing but
    /// a dry run's review.
    Pipeline { quiet: bool, at: AtReview },
    /// `pubdeck build`: the build's own log as it printed it, a failed check as a note (the
    /// clean build uses committed files only), the revision cloned; nothing under `-q`.
    BuildLog,
    /// Notes only (install, upgrade): the rest is the command's result, which it prints.
    Notes,
}

impl Show {
    /// A pipeline without a review (`build --check`, gc, resign).
    pub(crate) fn pipeline(quiet: bool) -> Show {
        Show::Pipeline {
            quiet,
            at: AtReview::Nothing,
        }
    }
}

/// What the printer kept of the stream: the review, if there was one, and every check.
#[derive(Default)]
pub(crate) struct Printed {
    pub review: Option<Review>,
    pub checks: Vec<crate::git::Check>,
}

/// Prints the event stream until it closes, as `show` says.
pub(crate) async fn print_events(rx: EventRx, show: Show) -> Printed {
    match show {
        Show::Pipeline { quiet, at } => {
            let review = if quiet || output::quiet() {
                print_quiet(rx, quiet, at).await
            } else if interactive() {
                print_fancy(rx, at).await
            } else {
                print_plain(rx, at).await
            };
            Printed {
                review,
                checks: Vec::new(),
            }
        }
        Show::BuildLog => {
            print_build_log(rx).await;
            Printed::default()
        }
        Show::Notes => print_notes(rx).await,
    }
}

/// Quiet (or `--json`): a dry run still stops; asking needs words, so it declines. The review
/// is a dry run's result: `-q` prints it (on stdout), `--json` prints it in its document.
async fn print_quiet(mut rx: EventRx, quiet: bool, mut at: AtReview) -> Option<Review> {
    let mut seen = None;
    while let Some(e) = rx.recv().await {
        if let Event::Review(r) = e {
            match std::mem::replace(&mut at, AtReview::Nothing) {
                AtReview::Stop(tx) => {
                    if !quiet {
                        print!("{}", format_review(&r, Style::stdout()));
                    }
                    let _ = tx.send(ReviewAnswer::Decline);
                }
                AtReview::Ask(tx) => {
                    let _ = tx.send(ReviewAnswer::Decline);
                }
                AtReview::Nothing => {}
            }
            seen = Some(*r);
        }
    }
    seen
}

/// Off a terminal or in CI: plain timestamped lines.
async fn print_plain(mut rx: EventRx, mut at: AtReview) -> Option<Review> {
    let mut seen = None;
    while let Some(e) = rx.recv().await {
        if let Event::Review(r) = &e {
            answer_review(r, &mut at, &|t| eprintln!("{t}"));
            seen = Some(r.as_ref().clone());
        } else if let Event::Log { stream, lines } = &e {
            use std::io::Write as _;
            let (ts, mark) = (timestamp(), log_mark(*stream));
            let mut err = std::io::stderr().lock();
            for line in lines.iter() {
                let _ = writeln!(err, "{ts} {mark} {}", crate::text::log_line(line));
            }
        } else if let Some(line) = plain_line(&e) {
            eprintln!("{} {}", timestamp(), crate::text::terminal(&line));
        }
    }
    seen
}

/// `pubdeck build`'s log: buffered, and flushed after each event (a batch of log lines is one
/// write).
async fn print_build_log(mut rx: EventRx) {
    use std::io::Write;
    let err_style = Style::stderr();
    let mut err = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let quiet = output::quiet();
    while let Some(ev) = rx.recv().await {
        if quiet {
            continue;
        }
        match ev {
            Event::Log { lines, .. } => {
                // Both streams at full strength: a build's error output is what the
                // reader looks for, not what to fade.
                for line in lines.iter() {
                    let _ = writeln!(err, "{}", crate::text::log_line(line));
                }
            }
            Event::Check(c) if !c.ok => {
                let _ = writeln!(
                    err,
                    "{} {}; the clean build uses committed files only",
                    err_style.warn("note:"),
                    c.message
                );
            }
            Event::Cloned { rev, .. } => {
                let _ = writeln!(err, "{}", err_style.muted(&format!("cloned {}", &rev[..7])));
            }
            _ => {}
        }
        let _ = err.flush();
    }
}

/// Notes as they come (silent under `-q`); every check kept for the caller.
async fn print_notes(mut rx: EventRx) -> Printed {
    let mut printed = Printed::default();
    while let Some(e) = rx.recv().await {
        match e {
            Event::Check(c) => printed.checks.push(c),
            Event::Note { message } => {
                output::progress!("{}", crate::text::terminal(&message))
            }
            _ => {}
        }
    }
    printed
}

/// How a log line of each stream is marked in plain output.
fn log_mark(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "|",
        Stream::Stderr => "!",
    }
}

fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("[{h:02}:{m:02}:{s:02}]")
}

fn plain_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::StageStarted { stage } => format!("{} ...", stage.name()),
        Event::StageFinished {
            stage,
            duration,
            ok,
        } => {
            format!(
                "{} {} ({:.1}s)",
                stage.name(),
                if *ok { "done" } else { "FAILED" },
                duration.as_secs_f64()
            )
        }
        Event::StageSkipped { .. } => return None,
        Event::Check(c) => format!(
            "check {} {}: {}{}",
            if c.ok {
                "ok"
            } else if c.warning {
                "WARN"
            } else {
                "FAIL"
            },
            c.id,
            c.message,
            c.hint
                .as_ref()
                .filter(|_| !c.ok)
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default()
        ),
        Event::Cloned { rev, .. } => format!("cloned {}", &rev[..rev.len().min(7)]),
        // Printed line by line by the caller.
        Event::Log { .. } => return None,
        Event::BuildExited { code, signal } => match (code, signal) {
            (Some(c), _) => format!("build command exited with {c}"),
            (_, Some(s)) => format!("build command killed by signal {s}"),
            _ => "build command exited".into(),
        },
        Event::Packed {
            store_path,
            nar_hash,
            nar_size,
            file_size,
            dependency,
        } => {
            let what = if *dependency { "dependency " } else { "" };
            format!(
                "packed {what}{store_path} ({nar_size} bytes NAR, {file_size} compressed, {nar_hash})"
            )
        }
        Event::AlreadyInStore { store_path } => format!("{store_path} is already in the store"),
        Event::Signed { key_name } => format!("signed with {key_name}"),
        Event::Transfer { .. } => return None,
        Event::TransferDone {
            direction,
            key,
            size,
            moved,
            elapsed,
        } => {
            let verb = match direction {
                Direction::Upload => "uploaded",
                Direction::Download => "downloaded",
            };
            if *moved == 0 {
                format!("{key} is already there ({size} bytes)")
            } else {
                let secs = elapsed.as_secs_f64();
                let rate = if secs > 0.0 {
                    *moved as f64 / secs
                } else {
                    0.0
                };
                format!(
                    "{verb} {key}: {size} bytes in {secs:.1}s ({}/s)",
                    output::human_bytes(rate as u64)
                )
            }
        }
        Event::TransferRetry {
            key,
            attempt,
            reason,
            ..
        } => format!("retry {attempt} of {key}: {reason}"),
        Event::TransferStalled { key, idle, .. } => {
            format!("{key}: nothing moved for {}s", idle.as_secs())
        }
        Event::Note { message } => message.clone(),
        Event::Published { reference } => format!("published {reference}"),
        Event::Review(_) => return None,
        Event::Unreproducible(u) => format_unreproducible(u, Style::stderr())
            .trim_end()
            .to_string(),
        Event::Progress { work, done, total } => {
            // A line per tenth, not per object.
            if *total > 10 && *done % (*total / 10).max(1) != 0 && done != total {
                return None;
            }
            let what = match work {
                crate::event::Work::GcScan => "read narinfos",
                crate::event::Work::GcDelete => "deleted",
                crate::event::Work::ReSign => "re-signed",
            };
            format!("{what}: {done}/{total}")
        }
    })
}

async fn print_fancy(mut rx: EventRx, mut at: AtReview) -> Option<Review> {
    let mut seen = None;
    let style = Style::stderr();
    let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let spinner_style =
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template");
    let count_style = ProgressStyle::with_template("  {bar:30} {pos}/{len} {per_sec} eta {eta}")
        .expect("valid template");
    let bar_style = ProgressStyle::with_template(
        "  {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
    )
    .expect("valid template");
    let mut spinner: Option<ProgressBar> = None;
    let mut bar: Option<ProgressBar> = None;
    while let Some(e) = rx.recv().await {
        match &e {
            Event::StageStarted { stage } => {
                let s = mp.add(ProgressBar::new_spinner().with_style(spinner_style.clone()));
                s.set_message(stage.name());
                s.enable_steady_tick(Duration::from_millis(100));
                spinner = Some(s);
            }
            Event::StageFinished {
                stage,
                duration,
                ok,
            } => {
                if let Some(s) = spinner.take() {
                    s.finish_and_clear();
                }
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                let mark = if *ok {
                    style.ok("✓")
                } else {
                    style.err("✗")
                };
                let _ = mp.println(format!(
                    "{mark} {:<9} {:.1}s",
                    stage.name(),
                    duration.as_secs_f64()
                ));
            }
            Event::Transfer {
                sent,
                total,
                retries,
                ..
            } => {
                let b = bar.get_or_insert_with(|| {
                    mp.add(ProgressBar::new(*total).with_style(bar_style.clone()))
                });
                b.set_length(*total);
                b.set_position(*sent);
                if *retries > 0 {
                    b.set_message(format!("{retries} retries"));
                }
            }
            Event::Review(r) => {
                if let Some(s) = spinner.take() {
                    s.finish_and_clear();
                }
                mp.suspend(|| answer_review(r, &mut at, &|t| eprintln!("{t}")));
                seen = Some(r.as_ref().clone());
            }
            Event::Progress { done, total, .. } => {
                let b = bar.get_or_insert_with(|| {
                    mp.add(ProgressBar::new(*total).with_style(count_style.clone()))
                });
                b.set_length(*total);
                b.set_position(*done);
            }
            Event::Check(c) if !c.ok => {
                let _ = mp.println(output::checklist(std::slice::from_ref(c), style).trim_end());
            }
            Event::Log { stream, lines } => {
                for line in lines.iter() {
                    let line = crate::text::log_line(line);
                    // stderr is marked, never faded: `error: libfoo is required` must stand out.
                    let _ = mp.println(format!("{} {line}", log_mark(*stream)));
                }
            }
            other => {
                if let Some(line) = plain_line(other).filter(|_| !matches!(other, Event::Check(_)))
                {
                    let _ = mp.println(crate::text::terminal(&line));
                }
            }
        }
    }
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    seen
}
