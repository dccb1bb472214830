//! The binary: parses the command line and wires the faces. The command line runs every
//! subcommand itself and hands back the workbench (`tui`) or the service (`server`) when
//! asked for one; faces never start each other.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pubdeck::cli::{self, Cli, Exit, Handoff};

fn main() -> ExitCode {
    // A shell asking for completions (`COMPLETE=bash pubdeck -- …`, set up by
    // `pubdeck completions SHELL`) is answered here, before anything else runs.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let args = Cli::parse();
    // Output into a closed pipe (`pubdeck completions bash | head -1`) ends the command
    // quietly, as `cat` does, instead of a panic on the next write. Not for the service,
    // whose log may outlive a reader, nor for the workbench, which owns the terminal.
    if args.ends_quietly_on_a_closed_pipe() {
        // SAFETY: restoring a signal's default action has no memory-safety preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            let f = Exit::new(format!("cannot start the async runtime: {e}"), None);
            return cli::report(&f);
        }
    };
    rt.block_on(async move {
        // Boxed: the command line's future is large (every subcommand's state machine).
        let handoff = match Box::pin(cli::run(args)).await {
            Ok(h) => h,
            Err(f) => return cli::report(&f),
        };
        let done = match handoff {
            Handoff::Exit(code) => return code,
            Handoff::Workbench(w) => {
                let cli::Workbench {
                    dir,
                    catalog,
                    settings,
                    mouse,
                } = *w;
                // A bad [keys] or [theme] entry is reported before the screen is taken.
                let (keymap, theme) = match pubdeck::tui::runtime::configured(&settings) {
                    Ok(c) => c,
                    Err(message) => {
                        let f = Exit::new(
                            message,
                            Some("fix or remove the entry; `pubdeck config show` shows which file is read".into()),
                        );
                        return cli::report(&f);
                    }
                };
                let backend = pubdeck::tui::engine::EngineBackend::new(dir, catalog, settings);
                let options = pubdeck::tui::Options {
                    mouse,
                    theme: Some(theme),
                    keymap: Some(keymap),
                    ..Default::default()
                };
                pubdeck::tui::run(Arc::new(backend), options)
                    .await
                    .map_err(|e| Exit::new(format!("the workbench failed: {e}"), None))
            }
            Handoff::Serve {
                listen,
                db,
                upstream,
                trusted_endpoints,
                store_credentials,
            } => {
                serve(
                    listen,
                    &db,
                    upstream.as_deref(),
                    trusted_endpoints,
                    store_credentials.as_deref(),
                )
                .await
            }
        };
        match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => cli::report(&f),
        }
    })
}

/// `pubdeck serve` with Flox's routes wired: the upstream catalog and how org stores open.
async fn serve(
    listen: std::net::SocketAddr,
    db: &str,
    upstream: Option<&str>,
    trusted_endpoints: Vec<String>,
    store_credentials: Option<&std::path::Path>,
) -> Result<(), Exit> {
    use pubdeck::catalog::flox::credentials::StoreCredentials;
    let store_credentials = match store_credentials {
        Some(path) => StoreCredentials::load(path).map_err(|e| {
            Exit::new(
                format!("--store-credentials: {e}"),
                Some("see docs/flox-catalog.md for the file's form".into()),
            )
        })?,
        None => StoreCredentials::default(),
    };
    let upstream = match upstream {
        Some(u) => Some(pubdeck::catalog::flox::Upstream::new(u).map_err(|e| {
            Exit::new(
                format!("--upstream: {e}"),
                Some("give the catalog's base URL, e.g. https://api.flox.dev".into()),
            )
        })?),
        None => None,
    };
    let flox = pubdeck::server::flox::FloxOptions {
        upstream,
        store_open: pubdeck::store::OpenOptions {
            trusted_endpoints,
            ..Default::default()
        },
        store_credentials,
    };
    pubdeck::server::serve(listen, db, flox)
        .await
        .map_err(|e| Exit::new(format!("{e:#}"), None))
}
