//! `publish`, `ready`, `install` and `build --check`: the pipelines on the plain command
//! line. Their events go through [`super::printer`]; with `--json` only one final document
//! goes to stdout.

use crate::event::Hinted;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use super::args::{PublishArgs, ReadyArgs};
use super::output::{self, Style};
use super::printer::{Show, print_events};
use super::review::{AtReview, format_unreproducible};
use super::{CmdResult, Exit};
use crate::catalog::AnyCatalog;
use crate::config::{Overrides, Settings};
use crate::install::{self, PackageRef};
use crate::publish::{self, Plan, PublishError};

/// `pubdeck build BUILD --check`.
pub async fn build_check(
    dir: &std::path::Path,
    name: &str,
    timeout: Option<Duration>,
) -> CmdResult {
    let env = crate::manifest::Env::find(dir)?;
    let (tx, rx) = crate::event::channel();
    let printer = tokio::spawn(print_events(rx, Show::pipeline(false)));
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
            Err(Exit::new(
                u.to_string(),
                Some("make the build deterministic: no timestamps, random names or host paths in the output".into()),
            ))
        }
        Err(e) => Err(Exit::hinted(&e)),
    }
}

/// Settings for a command on the environment in `dir` (whose project file counts).
fn settings(
    dir: &std::path::Path,
    catalog: &Option<String>,
    org: Option<String>,
    key: Option<PathBuf>,
) -> Result<Settings, Exit> {
    Settings::resolve(&Overrides {
        catalog: catalog.clone(),
        org,
        signing_key: key,
        project_dir: Some(dir.to_path_buf()),
        ..Default::default()
    })
    .map_err(|e| Exit::new(e.to_string(), None))
}

async fn open(settings: &Settings) -> Result<AnyCatalog, Exit> {
    settings.open_catalog().await.map_err(|e| Exit::hinted(&e))
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
        return Err(Exit {
            code: 2,
            ..Exit::new(
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
        let printer = tokio::spawn(print_events(
            rx,
            Show::Pipeline {
                quiet: args.json,
                at,
            },
        ));
        let r = publish::run_reviewed(&plan, &catalog, &tx, &cancel, gate).await;
        drop(tx);
        let review = printer.await.ok().and_then(|p| p.review);
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
        Some((name, e)) => Err(Exit::new(
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

fn request(package: &str, dir: &std::path::Path, s: &Settings) -> Result<install::Request, Exit> {
    let pkg = PackageRef::parse(package).map_err(|e| Exit {
        code: 2,
        ..Exit::new(
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
    let printer = tokio::spawn(print_events(rx, Show::Notes));
    let r = install::install(&req, &catalog, &tx).await;
    drop(tx);
    let checks = printer.await.map(|p| p.checks).unwrap_or_default();
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
                Some(c) => Exit::new(
                    format!("cannot install {pkg}: {}", c.message),
                    Some(match &c.hint {
                        Some(h) => format!("{h} (`pubdeck ready {pkg}` shows every check)"),
                        None => format!("`pubdeck ready {pkg}` shows every check"),
                    }),
                ),
                None => Exit::new(
                    format!("{pkg} is not ready to install"),
                    Some(format!("run `pubdeck ready {pkg}`")),
                ),
            })
        }
        Err(e) => Err(Exit::hinted(&e)),
    }
}
