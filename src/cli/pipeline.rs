//! `publish`, `ready`, `install`: the pipelines on the plain command line.
//!
//! Events are printed as they come: on a terminal as a stage list with spinners and an
//! indicatif upload bar; off a terminal or with `CI=true` as plain timestamped lines; with
//! `--json` only one final document goes to stdout.

use crate::event::Hinted;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::output::{self, Style};
use super::{CmdResult, Failure};
use crate::catalog::AnyCatalog;
use crate::config::{Overrides, Settings};
use crate::event::{Direction, Event, EventRx, Stream};
use crate::install::{self, PackageRef};
use crate::publish::review::Review;
use crate::publish::{self, Plan, PublishError, ReviewAnswer};

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Builds to publish (names of [build.*] tables).
    #[arg(add = clap_complete::ArgValueCandidates::new(super::build_name_candidates))]
    pub builds: Vec<String>,
    /// Publish every build of the manifest.
    #[arg(long, conflicts_with = "builds")]
    pub all: bool,
    #[arg(long, short, default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    #[arg(long)]
    pub org: Option<String>,
    /// Catalog service URL or local catalog file.
    #[arg(long, value_name = "URL")]
    pub catalog: Option<String>,
    /// Compression of the NAR: zstd, xz or none.
    #[arg(long, default_value = "zstd", value_parser = super::local::parse_compression)]
    pub compression: crate::nix::Compression,
    #[arg(long)]
    pub json: bool,
    /// Build, pack and print the review (destination, closure, diff against the last
    /// version), then stop: nothing is uploaded.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before uploading (off a terminal publish never asks).
    #[arg(long, short)]
    pub yes: bool,
    /// Build twice, in two fresh clones, and refuse to publish when the outputs differ.
    #[arg(long)]
    pub verify_reproducible: bool,
    /// With --verify-reproducible: publish anyway when the builds differ.
    #[arg(long, requires = "verify_reproducible")]
    pub allow_unreproducible: bool,
}

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

/// `pubdeck build BUILD --check`.
pub async fn build_check(
    dir: &std::path::Path,
    name: &str,
    timeout: Option<Duration>,
) -> CmdResult {
    let env = crate::manifest::Env::find(dir)?;
    let (tx, rx) = crate::event::channel();
    let printer = tokio::spawn(print_events(rx, false, AtReview::Nothing));
    let cancel = super::cancel_on_signals();
    let r = publish::check_reproducible(&env, name, timeout, &tx, &cancel).await;
    drop(tx);
    let _ = printer.await;
    match r {
        Ok(None) => {
            println!("{name} is reproducible");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Some(u)) => {
            eprint!("{}", format_unreproducible(&u, Style::stderr()));
            Err(Failure::new(
                u.to_string(),
                Some("make the build deterministic: no timestamps, random names or host paths in the output".into()),
            ))
        }
        Err(e) => Err(Failure::new(e.to_string(), e.hint())),
    }
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

/// Prints a review and answers it as `at` says; returns the review.
fn answer_review(r: &Review, at: &mut AtReview, print: &dyn Fn(&str)) {
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

#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// ORG/PKG or ORG/PKG@VERSION
    pub package: String,
    #[arg(long, short, default_value = ".")]
    pub dir: PathBuf,
    /// Also write a descriptor for this system (repeatable): its closure is downloaded and
    /// verified, not imported, and its [install] id is `<id>-<system>`.
    #[arg(long = "system", value_name = "SYSTEM")]
    pub systems: Vec<String>,
    #[arg(long, value_name = "URL")]
    pub catalog: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Settings for a command on the environment in `dir` (whose project file counts).
fn settings(
    dir: &std::path::Path,
    catalog: &Option<String>,
    org: Option<String>,
    key: Option<PathBuf>,
) -> Result<Settings, Failure> {
    Settings::resolve(&Overrides {
        catalog: catalog.clone(),
        org,
        signing_key: key,
        project_dir: Some(dir.to_path_buf()),
        ..Default::default()
    })
    .map_err(|e| Failure::new(e.to_string(), None))
}

async fn open(settings: &Settings) -> Result<AnyCatalog, Failure> {
    settings
        .open_catalog()
        .await
        .map_err(|e| Failure::new(e.to_string(), e.hint()))
}

/// Whether to draw spinners and bars (stderr is a terminal and this is not CI).
fn interactive() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var("CI")
            .map(|v| v != "true" && v != "1")
            .unwrap_or(true)
}

/// Prints the event stream until it closes, answering a review as `at` says; returns the
/// review, if there was one.
pub(crate) async fn print_events(mut rx: EventRx, quiet: bool, mut at: AtReview) -> Option<Review> {
    let mut seen = None;
    if quiet || super::output::quiet() {
        while let Some(e) = rx.recv().await {
            if let Event::Review(r) = e {
                // Quiet (or --json): a dry run still stops; asking needs words, so it declines.
                // The review is a dry run's result: `-q` prints it (on stdout), `--json`
                // prints it in its document.
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
        return seen;
    }
    if interactive() {
        return print_fancy(rx, at).await;
    }
    {
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
    }
    seen
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

pub async fn publish(args: PublishArgs) -> CmdResult {
    let s = settings(
        &args.dir,
        &args.catalog,
        args.org.clone(),
        args.signing_key.clone(),
    )?;
    let catalog = open(&s).await?;
    let builds = if args.all {
        let m = crate::manifest::Env::find(&args.dir)?.manifest()?;
        m.builds.iter().map(|b| b.name.clone()).collect()
    } else {
        args.builds.clone()
    };
    if builds.is_empty() {
        return Err(Failure {
            code: 2,
            ..Failure::new(
                "name a build to publish, or pass --all",
                Some("`pubdeck builds` lists them".into()),
            )
        });
    }
    let cancel = super::cancel_on_signals();
    let mut results = Vec::new();
    let mut failed = None;
    // Ask before uploading on a terminal (unless --yes); never off one.
    let ask = !args.yes
        && !args.json
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal();
    let mut reviews = Vec::new();
    for name in &builds {
        let mut plan = Plan::configured(&args.dir, name, &s);
        plan.compression = args.compression;
        plan.verify_reproducible = args.verify_reproducible;
        plan.allow_unreproducible = args.allow_unreproducible;
        let (tx, rx) = crate::event::channel();
        let (gate, at) = if args.dry_run {
            let (answer, gate) = publish::review_gate();
            (Some(gate), AtReview::Stop(answer))
        } else if ask {
            let (answer, gate) = publish::review_gate();
            (Some(gate), AtReview::Ask(answer))
        } else {
            (None, AtReview::Nothing)
        };
        let printer = tokio::spawn(print_events(rx, args.json, at));
        let r = publish::run_reviewed(&plan, &catalog, &tx, &cancel, gate).await;
        drop(tx);
        let review = printer.await.ok().flatten();
        if let Some(review) = review {
            reviews.push(review);
        }
        if args.dry_run && matches!(r, Err(PublishError::Declined)) {
            crate::cli::output::progress!("dry run: nothing was uploaded for {name}");
            continue;
        }
        match r {
            Ok(p) => {
                if !args.json {
                    println!("{}", p.reference());
                }
                results.push(p);
            }
            Err(e) => {
                // The checks were printed as they came, unless -q kept them back: then the
                // failing ones, once.
                if !args.json
                    && output::quiet()
                    && let PublishError::Preconditions(checks) = &e
                {
                    let failing: Vec<_> = checks.iter().filter(|c| !c.ok).cloned().collect();
                    eprint!("{}", output::checklist(&failing, Style::stderr()));
                }

                failed = Some((name.clone(), e));
                break;
            }
        }
    }
    if args.json && args.dry_run {
        let mut doc = json!({ "dry_run": true, "reviews": reviews });
        if let Some((name, e)) = &failed {
            doc["error"] = json!({ "build": name, "message": e.to_string() });
        }
        println!("{doc}");
    } else if args.json {
        let docs: Vec<_> = results.iter().map(published_json).collect();
        let mut doc = if builds.len() == 1 && docs.len() == 1 {
            docs[0].clone()
        } else {
            json!({ "results": docs })
        };
        if let Some((name, e)) = &failed {
            doc = json!({ "results": docs, "error": { "build": name, "message": e.to_string() } });
        }
        println!("{doc}");
    }
    match failed {
        None => Ok(ExitCode::SUCCESS),
        Some((name, e)) => Err(Failure::new(
            if builds.len() > 1 {
                format!("publishing `{name}` failed: {e}")
            } else {
                e.to_string()
            },
            e.hint(),
        )),
    }
}

fn published_json(p: &publish::Published) -> serde_json::Value {
    let durations: serde_json::Map<String, serde_json::Value> = p
        .durations
        .iter()
        .map(|(s, d)| (s.name().to_string(), json!((d * 1000.0).round() / 1000.0)))
        .collect();
    json!({
        "org": p.org,
        "package": p.package,
        "version": p.version,
        "system": p.system,
        "store_path": p.store_path,
        "narinfo_url": p.narinfo_url,
        "nar_hash": p.nar_hash,
        "nar_size": p.nar_size,
        "file_size": p.file_size,
        "already_published": p.already_published,
        "durations": durations,
    })
}

fn request(
    package: &str,
    dir: &std::path::Path,
    s: &Settings,
) -> Result<install::Request, Failure> {
    let pkg = PackageRef::parse(package).map_err(|e| Failure {
        code: 2,
        ..Failure::new(
            e.to_string(),
            Some("write it as ORG/PKG or ORG/PKG@VERSION".into()),
        )
    })?;
    let mut req = install::Request::new(pkg, dir, &s.data_dir);
    req.store_open = s.store_open();
    req.catalog_label = s.catalog_label();
    Ok(req)
}

pub async fn ready(args: ReadyArgs) -> CmdResult {
    let s = settings(&args.dir, &args.catalog, None, None)?;
    let mut req = request(&args.package, &args.dir, &s)?;
    req.extra_systems = args.systems.clone();
    let catalog = open(&s).await?;
    let r = install::ready(&req, &catalog).await;
    if args.json {
        println!(
            "{}",
            json!({ "package": r.package.to_string(), "version": r.version, "ok": r.ok(), "checks": r.checks })
        );
    } else {
        print!("{}", output::checklist(&r.checks, Style::stdout()));
    }
    Ok(if r.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn install(args: ReadyArgs) -> CmdResult {
    let s = settings(&args.dir, &args.catalog, None, None)?;
    let mut req = request(&args.package, &args.dir, &s)?;
    req.extra_systems = args.systems.clone();
    let catalog = open(&s).await?;
    let (tx, rx) = crate::event::channel();
    let printer = tokio::spawn(async move {
        let mut rx = rx;
        let mut checks = Vec::new();
        while let Some(e) = rx.recv().await {
            match e {
                Event::Check(c) => checks.push(c),
                Event::Note { message } => {
                    crate::cli::output::progress!("{}", crate::text::terminal(&message))
                }
                _ => {}
            }
        }
        checks
    });
    let r = install::install(&req, &catalog, &tx).await;
    drop(tx);
    let checks = printer.await.unwrap_or_default();
    match r {
        Ok(i) => {
            if args.json {
                println!("{}", serde_json::to_value(&i).unwrap_or_default());
            } else {
                println!(
                    "installed {}@{} as `{}` in {}",
                    i.package,
                    i.version,
                    i.id,
                    i.manifest.display()
                );
                let where_ = match i.store {
                    "nix" => "the Nix store",
                    _ => "pubdeck's store",
                };
                println!(
                    "  {} ({} store path{} in {where_}, {} already there)",
                    i.path.display(),
                    i.closure.len(),
                    if i.closure.len() == 1 { "" } else { "s" },
                    i.reused
                );
                for exe in &i.executables {
                    println!("  {}", exe.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(install::InstallError::NotReady(pkg, _)) => {
            // The first failing check is the cause (the later ones say "not checked"); the
            // whole list is `pubdeck ready`'s to show.
            let first = checks.iter().find(|c| c.blocks());
            Err(match first {
                Some(c) => Failure::new(
                    format!("cannot install {pkg}: {}", c.message),
                    Some(match &c.hint {
                        Some(h) => format!("{h} (`pubdeck ready {pkg}` shows every check)"),
                        None => format!("`pubdeck ready {pkg}` shows every check"),
                    }),
                ),
                None => Failure::new(
                    format!("{pkg} is not ready to install"),
                    Some(format!("run `pubdeck ready {pkg}`")),
                ),
            })
        }
        Err(e) => Err(Failure::new(e.to_string(), e.hint())),
    }
}
