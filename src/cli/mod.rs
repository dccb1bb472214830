//! The plain command line: clap definitions and one function per subcommand.
//!
//! Exit status: 0 success, 1 the operation failed (a check failed, the build failed, not
//! found, refused), 2 usage error (clap's own). Errors go to stderr as one sentence plus a
//! hint; `--json` prints exactly one document on stdout.

pub mod args;
pub mod catalog;
pub mod lifecycle;
pub mod local;
pub mod output;
pub mod pipeline;
pub mod printer;
pub mod review;
pub mod store;

mod exit;

pub use args::{Cli, Command, ConfigCommand};
pub use exit::{CmdResult, Exit, report};

use crate::event::Hinted;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::IsTerminal;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::manifest::{Env, VersionSpec};
use output::Style;

/// What the command line hands back to `main`: an exit status, or another face to run.
/// The faces never start each other; `main.rs` wires them.
pub enum Handoff {
    Exit(ExitCode),
    /// Open the workbench.
    Workbench(Box<Workbench>),
    /// Run the catalog service on `listen` over the database `db`.
    Serve {
        listen: std::net::SocketAddr,
        db: String,
        /// Flox's upstream catalog, checked to be an http(s) URL without credentials.
        upstream: Option<String>,
        /// S3 endpoints trusted with credentials from the environment (the user's config).
        trusted_endpoints: Vec<String>,
        /// The file of S3 credentials handed to Flox clients.
        store_credentials: Option<std::path::PathBuf>,
    },
}

/// A token cancelled by SIGINT, SIGTERM or SIGHUP: a long command stops the same way
/// whichever arrives (its build's process group killed, its clone removed, exit status 1).
pub fn cancel_on_signals() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        t.cancel();
    });
    token
}

/// Logs to stderr with the `default` filter (`RUST_LOG` syntax), or as `RUST_LOG` says when
/// it is set.
pub fn init_logging(default: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in a log file or a journal.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// What the workbench opens on: the environment `dir` and the configured catalog.
pub struct Workbench {
    pub dir: PathBuf,
    pub catalog: crate::catalog::AnyCatalog,
    pub settings: crate::config::Settings,
    /// Capture the mouse (off with `--no-mouse`).
    pub mouse: bool,
}

/// Turns mouse capture off in a workbench hand-off.
fn without_mouse(handoff: Result<Handoff, Exit>, no_mouse: bool) -> Result<Handoff, Exit> {
    match handoff {
        Ok(Handoff::Workbench(mut w)) if no_mouse => {
            w.mouse = false;
            Ok(Handoff::Workbench(w))
        }
        other => other,
    }
}

/// Runs `cli`: a subcommand to completion, or the face it asks for, handed back.
pub async fn run(cli: Cli) -> Result<Handoff, Exit> {
    output::set_verbosity(if cli.quiet { 0 } else { 1 + cli.verbose });
    // The service logs at info by default; every other command only warnings, unless -v.
    // The workbench owns the terminal: nothing may be written under it.
    let serving = matches!(cli.command, Some(Command::Serve(_)));
    let owns_terminal = matches!(
        cli.command,
        None | Some(Command::Tui { .. }) | Some(Command::Demo { .. })
    );
    if !owns_terminal {
        // Other crates' logs (the AWS SDK's, sqlx's) only from -v on: their warnings are not
        // the user's business unless asked.
        init_logging(match (cli.quiet, cli.verbose, serving) {
            (true, _, _) => "pubdeck=error",
            (_, 0, true) => "info",
            (_, 0, false) => "pubdeck=warn",
            (_, 1, _) => "pubdeck=info,warn",
            (_, 2, _) => "pubdeck=debug,info",
            _ => "trace",
        });
    }
    let Some(command) = cli.command else {
        if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
            return workbench(PathBuf::from("."), None, None).await;
        }
        return Err(Exit {
            code: 2,
            ..Exit::new(
                "no command given and not on a terminal, so there is no workbench to open",
                Some("run `pubdeck --help` for the commands".into()),
            )
        });
    };
    match command {
        Command::Tui {
            dir,
            catalog,
            no_mouse,
        } => without_mouse(workbench(dir, catalog, None).await, no_mouse),
        Command::Demo {
            path,
            no_tui,
            no_mouse,
        } => without_mouse(demo(path, no_tui).await, no_mouse),
        Command::Serve(args) => {
            let db = catalog::serve_db(&args, &Default::default())?;
            let settings = crate::config::Settings::resolve(&Default::default())?;
            Ok(Handoff::Serve {
                listen: args.listen,
                db,
                upstream: args.upstream.clone(),
                trusted_endpoints: settings.trusted_endpoints.clone(),
                store_credentials: args.store_credentials.clone(),
            })
        }
        other => subcommand(other).await.map(Handoff::Exit),
    }
}

async fn subcommand(command: Command) -> CmdResult {
    match command {
        Command::Tui { .. } | Command::Demo { .. } | Command::Serve(_) => {
            unreachable!("handed off in run()")
        }
        Command::Builds { dir, json } => builds(&dir, json),
        Command::Check {
            build,
            dir,
            json,
            offline,
            org,
            signing_key,
            catalog,
        } => {
            let overrides = crate::config::Overrides {
                catalog,
                org,
                signing_key,
                project_dir: Some(dir.clone()),
                ..Default::default()
            };
            check(&dir, build.as_deref(), json, offline, &overrides).await
        }
        Command::Build {
            build,
            dir,
            timeout,
            check,
        } => {
            let timeout = timeout.map(std::time::Duration::from_secs);
            if check {
                pipeline::build_check(&dir, &build, timeout).await
            } else {
                build_cmd(&dir, &build, timeout).await
            }
        }
        Command::Key(cmd) => local::key(cmd),
        Command::Publish(args) => pipeline::publish(args).await,
        Command::Ready(args) => pipeline::ready(args).await,
        Command::Install(args) => pipeline::install(args).await,
        Command::Store(cmd) => {
            let settings =
                crate::config::Settings::resolve(&Default::default()).map_err(Exit::from)?;
            match store::run(cmd, &settings).await {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => Err(Exit::hinted(&e)),
            }
        }
        Command::Search(args) => {
            catalog_cmd(catalog::run_search(
                &args,
                &Default::default(),
                &mut std::io::stdout(),
            ))
            .await
        }
        Command::Show(args) => {
            catalog_cmd(catalog::run_show(
                &args,
                &Default::default(),
                &mut std::io::stdout(),
            ))
            .await
        }
        Command::Catalog(args) => {
            catalog_cmd(catalog::run_catalog(
                &args,
                &Default::default(),
                &mut std::io::stdout(),
            ))
            .await
        }
        Command::User(args) => {
            catalog_cmd(catalog::run_user(
                &args,
                &Default::default(),
                &mut std::io::stdout(),
            ))
            .await
        }
        Command::Yank(args) => {
            catalog_cmd(lifecycle::run_yank(
                &args,
                &Default::default(),
                &mut std::io::stdout(),
            ))
            .await
        }
        Command::Whoami(args) => {
            catalog_cmd(lifecycle::run_whoami(
                &args,
                &Default::default(),
                &mut std::io::stdout(),
            ))
            .await
        }
        Command::Upgrade(args) => {
            catalog_cmd(lifecycle::run_upgrade(
                &args,
                &Default::default(),
                &mut std::io::stdout(),
            ))
            .await
        }
        Command::Migrate(args) => {
            catalog_cmd(lifecycle::run_migrate(
                &args,
                &Default::default(),
                &mut std::io::stdout(),
            ))
            .await
        }
        Command::Use(args) => {
            catalog_cmd(lifecycle::run_use(
                &args,
                &Default::default(),
                &mut std::io::stdout(),
            ))
            .await
        }
        Command::Login(args) => {
            catalog_cmd(catalog::run_login(
                &args,
                &Default::default(),
                &mut std::io::stdout(),
            ))
            .await
        }
        Command::Pack {
            path,
            name,
            to,
            signing_key,
            compression,
            json,
        } => local::pack(&path, &name, &to, &signing_key, compression, json).await,
        Command::Config(ConfigCommand::Show { json }) => config_show(json),
        Command::Completions { shell } => completions(shell),
        Command::Man { out } => man_pages(out.as_deref()),
    }
}

/// `pubdeck config show`.
fn config_show(json: bool) -> CmdResult {
    use crate::catalog::db::redact_url;
    use crate::config::{CatalogLocation, Source};
    let s = crate::config::Settings::resolve(&Default::default()).map_err(Exit::from)?;
    let catalog = match &s.catalog {
        CatalogLocation::Service(url) => redact_url(url),
        CatalogLocation::Embedded(path) => {
            crate::text::terminal(&path.display().to_string()).into_owned()
        }
    };
    let rows: Vec<(&str, Option<String>)> = vec![
        ("catalog", Some(catalog)),
        (
            "token",
            match (&s.token, &s.withheld_token) {
                (Some(_), _) => Some("(set; hidden)".to_string()),
                (None, Some(w)) => Some(format!(
                    "(withheld: it belongs to {}, not this project's catalog)",
                    w.belongs_to.as_deref().unwrap_or("another catalog")
                )),
                (None, None) => None,
            },
        ),
        ("org", s.org.clone()),
        (
            "signing-key",
            s.signing_key.as_ref().map(|p| p.display().to_string()),
        ),
        (
            "store",
            // A store URL that parses holds no credentials; anything else is shown redacted.
            Some(match crate::store::StoreUrl::parse(&s.store) {
                Ok(u) => u.to_string(),
                Err(_) => crate::store::redacted_url(&s.store),
            }),
        ),
        ("data-dir", Some(s.data_dir.display().to_string())),
        (
            crate::config::TRUSTED_ENDPOINTS,
            (!s.trusted_endpoints.is_empty()).then(|| {
                s.trusted_endpoints
                    .iter()
                    .map(|e| match crate::store::Endpoint::parse(e) {
                        Ok(ep) => ep.to_string(),
                        Err(_) => crate::store::redacted_url(e),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        ),
        (
            crate::config::MULTIPART_THRESHOLD,
            Some(crate::text::human_bytes(
                s.multipart_threshold
                    .unwrap_or(crate::store::DEFAULT_MULTIPART_THRESHOLD),
            )),
        ),
    ];
    if json {
        let settings: Vec<serde_json::Value> = rows
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v, "source": s.source(k)}))
            .collect();
        let doc = json!({
            "config_file": s.config_file,
            "config_file_exists": s.config_file.is_file(),
            "project_file": s.project_file,
            "settings": settings,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let vwidth = rows
        .iter()
        .map(|(_, v)| v.as_deref().map_or(1, |v| v.chars().count()))
        .max()
        .unwrap_or(0);
    for (k, v) in &rows {
        let source = match s.source(k) {
            Source::Flag => "flag".to_string(),
            Source::Env(var) => format!("${var}"),
            Source::Project => "project file".to_string(),
            Source::File => "config file".to_string(),
            Source::Default => "default".to_string(),
            Source::Unset => "not set".to_string(),
        };
        // Values may come from a project file a repository supplied: escaped.
        println!(
            "{k:<width$}  {:<vwidth$}  ({source})",
            crate::text::terminal(v.as_deref().unwrap_or("-"))
        );
    }
    println!(
        "config file: {} ({})",
        crate::text::terminal(&s.config_file.display().to_string()),
        if s.config_file.is_file() {
            "exists"
        } else {
            "missing"
        }
    );
    match &s.project_file {
        Some(p) => println!(
            "project file: {}",
            crate::text::terminal(&p.display().to_string())
        ),
        None => println!(
            "project file: none ({} in the environment's directory or a parent up to the repository root)",
            crate::config::PROJECT_FILE
        ),
    }
    if let Some(w) = &s.withheld_token {
        let from = match w.source {
            Source::Env(var) => format!("${var}"),
            _ => "the config file's `token`".to_string(),
        };
        eprintln!(
            "note: {from} is not sent to this project's catalog; to use a token there, run `pubdeck login URL` with a token for it"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `pubdeck completions SHELL`: the shell code that registers completion for `pubdeck`, which
/// asks pubdeck itself at each TAB (`COMPLETE=SHELL pubdeck -- WORDS…`), so it can offer what
/// only the current directory knows: the manifest's build names.
fn completions(shell: clap_complete::Shell) -> CmdResult {
    let name = shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let completer = shells
        .completer(&name)
        .ok_or_else(|| Exit::new(format!("no completion support for {name}"), None))?;
    // The program the shell calls back: this one, by the name it is found by on PATH.
    let mut out = Vec::new();
    completer
        .write_registration("COMPLETE", "pubdeck", "pubdeck", "pubdeck", &mut out)
        .map_err(|e| Exit::new(format!("cannot write the completion script: {e}"), None))?;
    match std::io::Write::write_all(&mut std::io::stdout(), &out) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Exit::new(
            format!("cannot write the completion script: {e}"),
            None,
        )),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Completion candidates for a build name: the `[build.*]` entries of the manifest of the
/// environment in the working directory (none when there is none), with their descriptions.
pub fn build_name_candidates() -> Vec<clap_complete::CompletionCandidate> {
    let Ok(env) = crate::manifest::Env::find(Path::new(".")) else {
        return Vec::new();
    };
    let Ok(manifest) = env.manifest() else {
        return Vec::new();
    };
    manifest
        .builds
        .iter()
        .map(|b| {
            let c = clap_complete::CompletionCandidate::new(&b.name);
            match &b.description {
                // Shown by zsh and fish beside the name: no control characters.
                Some(d) => c.help(Some(crate::text::terminal(d).into_owned().into())),
                None => c,
            }
        })
        .collect()
}

/// `pubdeck man`: the main page on stdout, or every page into `out`.
fn man_pages(out: Option<&Path>) -> CmdResult {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = out else {
        return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
            // A reader that stopped early (`| head`) is not an error.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(Exit::new(format!("cannot write the man page: {e}"), None))
            }
            _ => Ok(ExitCode::SUCCESS),
        };
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Exit::new(format!("cannot create {}: {e}", dir.display()), None))?;
    clap_mangen::generate_to(cmd, dir).map_err(|e| {
        Exit::new(
            format!("cannot write the man pages into {}: {e}", dir.display()),
            None,
        )
    })?;
    println!("{}", dir.display());
    Ok(ExitCode::SUCCESS)
}

async fn catalog_cmd(f: impl std::future::Future<Output = catalog::CliResult>) -> CmdResult {
    f.await?;
    Ok(ExitCode::SUCCESS)
}

fn version_json(v: &Option<VersionSpec>) -> serde_json::Value {
    match v {
        None => serde_json::Value::Null,
        Some(VersionSpec::Literal(s)) => json!(s),
        Some(VersionSpec::File(f)) => json!({ "file": f }),
        Some(VersionSpec::Command(c)) => json!({ "command": c }),
    }
}

fn builds(dir: &Path, as_json: bool) -> CmdResult {
    let manifest = Env::find(dir)?.manifest()?;
    if as_json {
        let builds: Vec<_> = manifest
            .builds
            .iter()
            .map(|b| {
                json!({
                    "name": b.name,
                    "version": version_json(&b.version),
                    "description": b.description,
                    "command": b.command,
                })
            })
            .collect();
        println!("{}", json!({ "builds": builds }));
        return Ok(ExitCode::SUCCESS);
    }
    if manifest.builds.is_empty() {
        eprintln!(
            "{} defines no builds; add a [build.<name>] table with a `command`",
            manifest.path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = manifest
        .builds
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                b.version
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or("-".into()),
                b.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(&["NAME", "VERSION", "DESCRIPTION"], &rows, Style::stdout())
    );
    Ok(ExitCode::SUCCESS)
}

/// `pubdeck check`: every precondition `publish` evaluates (the same function), exit 1 if one
/// that blocks fails.
async fn check(
    dir: &Path,
    build: Option<&str>,
    as_json: bool,
    offline: bool,
    overrides: &crate::config::Overrides,
) -> CmdResult {
    use crate::publish::{Plan, Reach, preconditions};
    let settings = crate::config::Settings::resolve(overrides).map_err(Exit::from)?;
    let mut plan = Plan::configured(dir, build.unwrap_or(""), &settings);
    plan.fetch = !offline;
    let opened = if offline {
        None
    } else {
        Some(settings.open_catalog().await)
    };
    let reach = match &opened {
        None => Reach::Offline,
        Some(Ok(c)) => Reach::Online(c),
        Some(Err(e)) => Reach::Unavailable(e.failure()),
    };
    let checks = preconditions(&plan, reach).await.checks;
    let ok = !checks.iter().any(|c| c.blocks());
    if as_json {
        println!("{}", json!({ "build": build, "ok": ok, "checks": checks }));
    } else {
        print!("{}", output::checklist(&checks, Style::stdout()));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn build_cmd(dir: &Path, name: &str, timeout: Option<std::time::Duration>) -> CmdResult {
    let env = Env::find(dir)?;
    let (tx, rx) = crate::event::channel();
    let cancel = cancel_on_signals();
    let printer = tokio::spawn(printer::print_events(rx, printer::Show::BuildLog));
    let result = crate::build::build_and_keep(&env, name, timeout, &tx, &cancel).await;
    drop(tx);
    let _ = printer.await;
    let kept = result?;
    match (&kept.link, &kept.link_error) {
        (Some(link), _) => println!("{}", link.display()),
        (None, e) => {
            eprintln!(
                "{} no result-{name} link: {}",
                Style::stderr().warn("note:"),
                e.as_deref().unwrap_or("unknown reason")
            );
            println!("{}", kept.path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn demo(path: Option<PathBuf>, no_tui: bool) -> Result<Handoff, Exit> {
    let path = match path {
        Some(p) => p,
        None => crate::config::Settings::resolve(&Default::default())
            .map_err(|e| Exit::new(e.to_string(), None))?
            .data_dir
            .join("demo"),
    };
    let ws = crate::demo::ensure_with(&path, &demo_progress(std::io::stderr().is_terminal()))
        .await
        .map_err(|e| Exit::new(e.to_string(), None))?;
    if !no_tui {
        return workbench(ws.env_dir(), None, Some(&ws)).await;
    }
    let env = ws.env_dir();
    let style = Style::stdout();
    println!("{} {}", style.bold("demo workspace:"), ws.root.display());
    println!(
        "  environment  {} (git, pushed to {})",
        env.display(),
        ws.remote().display()
    );
    println!(
        "  catalog      {} (org {})",
        ws.catalog_file().display(),
        crate::demo::ORG
    );
    println!("  store        {}", ws.store_url());
    println!("  signing key  {}", ws.key_file().display());
    println!(
        "  settings     {} (catalog, org, signing key and data dir for commands run there)",
        env.join(crate::config::PROJECT_FILE).display()
    );
    println!("\n{}", style.bold("then try:"));
    for cmd in [
        format!("cd {}", shell_word(&env.display().to_string())),
        "pubdeck builds".to_string(),
        "pubdeck check hello".to_string(),
        "pubdeck publish hello".to_string(),
        "pubdeck search gateway".to_string(),
        "pubdeck show myorg/hello".to_string(),
        "pubdeck ready myorg/api-gateway".to_string(),
        "pubdeck install myorg/api-gateway".to_string(),
        "pubdeck                       # the workbench".to_string(),
    ] {
        println!("  {cmd}");
    }
    Ok(Handoff::Exit(ExitCode::SUCCESS))
}

/// Shows the steps of creating a demo workspace on stderr: one line rewritten in place on a
/// terminal, a line per step otherwise.
fn demo_progress(terminal: bool) -> impl Fn(crate::demo::DemoStep) + Sync {
    use crate::demo::DemoStep;
    move |step| {
        let text = match step {
            DemoStep::Repository => {
                "creating the demo workspace: sample environment and git repository".to_string()
            }
            DemoStep::Catalog => "creating the demo workspace: signing key and catalog".to_string(),
            DemoStep::Seeding { done, total } => {
                if !terminal && done != 0 {
                    return;
                }
                format!(
                    "creating the demo workspace: packing and signing {done}/{total} package versions"
                )
            }
            DemoStep::Registering { total } => {
                format!("creating the demo workspace: registering {total} package versions")
            }
        };
        use std::io::Write as _;
        let mut err = std::io::stderr().lock();
        let _ = if terminal {
            write!(err, "\r\x1b[2K{text}")
        } else {
            writeln!(err, "{text}")
        };
        if terminal && matches!(step, DemoStep::Registering { .. }) {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// `text` as one word for a POSIX shell: as is when it has nothing a shell reads, else quoted.
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The workbench on `dir` with the configured (or the demo workspace's) catalog.
async fn workbench(
    dir: PathBuf,
    catalog: Option<String>,
    demo: Option<&crate::demo::Workspace>,
) -> Result<Handoff, Exit> {
    if !std::io::stdout().is_terminal() {
        return Err(Exit::new(
            "the workbench needs a terminal",
            Some(
                "use the subcommands (`pubdeck --help`) in scripts, or `pubdeck demo --no-tui`"
                    .into(),
            ),
        ));
    }
    let mut overrides = crate::config::Overrides {
        catalog,
        project_dir: Some(dir.clone()),
        ..Default::default()
    };
    if let Some(ws) = demo {
        overrides.catalog = Some(ws.catalog_file().display().to_string());
        overrides.org = Some(crate::demo::ORG.to_string());
        overrides.signing_key = Some(ws.key_file());
        overrides.data_dir = Some(ws.data_dir());
    }
    let settings =
        crate::config::Settings::resolve(&overrides).map_err(|e| Exit::new(e.to_string(), None))?;
    let catalog = settings
        .open_catalog()
        .await
        .map_err(|e| Exit::hinted(&e))?;
    Ok(Handoff::Workbench(Box::new(Workbench {
        dir: std::path::absolute(&dir).unwrap_or(dir),
        catalog,
        settings,
        mouse: true,
    })))
}
