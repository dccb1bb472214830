//! Catalog commands: `serve`, `user add`, `login`, `catalog …`, `search`, `show`.
//!
//! Each `run_*` takes its clap args, the caller's [`Overrides`] (global flags) and the stdout
//! writer; errors come back as [`Exit`] (one sentence, optional hint, exit code).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Exit;
use crate::catalog::db::Db;
use crate::catalog::{
    Catalog, CatalogError, CatalogInfo, DEFAULT_SEARCH_LIMIT, PackageDetail, SearchHit,
    parse_package_ref,
};
use crate::config::{ConfigError, Overrides, Settings, save_login};

impl From<CatalogError> for Exit {
    fn from(e: CatalogError) -> Self {
        Exit::hinted(&e)
    }
}

impl From<ConfigError> for Exit {
    fn from(e: ConfigError) -> Self {
        Exit::failed(e.to_string())
    }
}

impl From<std::io::Error> for Exit {
    fn from(e: std::io::Error) -> Self {
        Exit::failed(format!("cannot write the output: {e}"))
    }
}

/// Result of a command.
pub type CliResult = Result<(), Exit>;

/// Where the catalog is, for commands that use one.
#[derive(Args, Debug, Clone, Default)]
pub struct CatalogFlags {
    /// Catalog service URL (http(s)://…) or local catalog file.
    #[arg(long, value_name = "URL")]
    pub catalog: Option<String>,
}

impl CatalogFlags {
    pub(crate) fn merge(&self, base: &Overrides) -> Overrides {
        let mut o = base.clone();
        if self.catalog.is_some() {
            o.catalog.clone_from(&self.catalog);
        }
        o
    }
}

/// `pubdeck serve`
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Database: sqlite://PATH (default <data>/service.sqlite) or postgres://…
    #[arg(long, value_name = "URL", env = "PUBDECK_DB")]
    pub db: Option<String>,
    /// The catalog Flox's routes forward everything else to (base packages, other
    /// catalogs), e.g. https://api.flox.dev; without it such requests get Flox's "not found".
    #[arg(long, value_name = "URL", env = "PUBDECK_UPSTREAM")]
    pub upstream: Option<String>,
    /// S3 credentials per org for Flox clients (TOML, mode 0600): `[ORG.read]` goes with
    /// store info to readers, `[ORG.write]` with publish info to the owner (docs/flox-catalog.md).
    #[arg(long, value_name = "FILE", env = "PUBDECK_STORE_CREDENTIALS")]
    pub store_credentials: Option<std::path::PathBuf>,
}

/// `pubdeck user …`
#[derive(Args, Debug, Clone)]
pub struct UserArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: UserCommand,
}

/// User administration on the service's database.
#[derive(Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// A user's tokens: create (with a scope and an expiry), list, revoke.
    #[command(subcommand)]
    Token(super::lifecycle::TokenCommand),
    /// Create a user and print its token once.
    Add {
        /// User name (letters, digits, '.', '_', '-').
        name: String,
        /// Database: sqlite://PATH (default <data>/service.sqlite) or postgres://…
        #[arg(long, value_name = "URL", env = "PUBDECK_DB")]
        db: Option<String>,
        /// Print {"user", "token"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `pubdeck login`
#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    /// Catalog service URL.
    pub url: String,
    /// Read the token from this environment variable instead of standard input.
    #[arg(long, value_name = "VAR", default_value = "PUBDECK_TOKEN")]
    pub token_env: String,
}

/// `pubdeck catalog …`
#[derive(Args, Debug, Clone)]
pub struct CatalogArgs {
    /// Catalog location.
    #[command(flatten)]
    pub flags: CatalogFlags,
    /// What to do.
    #[command(subcommand)]
    pub command: CatalogCommand,
}

/// Catalog administration (owner only, except `create`).
#[derive(Subcommand, Debug, Clone)]
pub enum CatalogCommand {
    /// Create a catalog owned by you.
    Create {
        /// Catalog (organisation) name.
        org: String,
        /// Store URL (file:///path or s3://bucket?…); default: the configured store.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// Trusted public key file (name:base64); repeatable.
        #[arg(long = "key", value_name = "PUBFILE")]
        keys: Vec<PathBuf>,
        /// Print the catalog as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the store URL.
    SetStore {
        /// Catalog name.
        org: String,
        /// New store URL.
        url: String,
    },
    /// Trust another public key (for rotation).
    AddKey {
        /// Catalog name.
        org: String,
        /// Public key file (name:base64).
        pubfile: PathBuf,
    },
    /// Stop trusting the key named KEYNAME (after `re-sign`, to finish a rotation).
    RemoveKey {
        /// Catalog name.
        org: String,
        /// The key's name (the part before `:`).
        keyname: String,
        #[arg(long)]
        json: bool,
    },
    /// Add the signature of a new key to every narinfo the catalog's builds need
    /// (atomic per narinfo; run it again to resume).
    ReSign {
        /// Catalog name.
        org: String,
        /// The new secret key (the catalog must trust its public key already).
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Delete what no registered build needs from the catalog's store.
    Gc {
        /// Catalog name.
        org: String,
        /// Only list what would go and the bytes freed.
        #[arg(long)]
        dry_run: bool,
        /// Keep objects younger than this (uploads in progress): 24h, 30m, 7d, …
        #[arg(long, default_value = "24h", value_parser = super::lifecycle::parse_duration)]
        grace: std::time::Duration,
        #[arg(long)]
        json: bool,
    },
    /// The audit log: every publish, yank, GC, allowlist and key change (newest first).
    Log {
        /// Catalog name.
        org: String,
        /// At most this many entries (1 to 10000).
        #[arg(long, default_value_t = 100, value_parser = parse_log_limit)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Let a user read the catalog.
    Allow {
        /// Catalog name.
        org: String,
        /// User name.
        user: String,
    },
    /// Remove a user from the allowlist.
    Revoke {
        /// Catalog name.
        org: String,
        /// User name.
        user: String,
    },
    /// Register many signed builds from NDJSON (one build per line, as the register endpoint
    /// takes it), in batches; builds already there are skipped, so a rerun resumes.
    Import {
        /// Catalog name (every line must be for it).
        org: String,
        /// NDJSON file, or `-` for standard input.
        file: PathBuf,
        /// Print the totals as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the allowlist.
    Allowlist {
        /// Catalog name.
        org: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `pubdeck search`
#[derive(Args, Debug, Clone)]
pub struct SearchArgs {
    /// What to look for (fuzzy).
    pub query: String,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
    /// At most this many results.
    #[arg(long, default_value_t = DEFAULT_SEARCH_LIMIT, value_parser = parse_limit)]
    pub limit: usize,
    /// Catalog location.
    #[command(flatten)]
    pub flags: CatalogFlags,
}

/// `pubdeck show`
#[derive(Args, Debug, Clone)]
pub struct ShowArgs {
    /// ORG/PACKAGE
    pub package: String,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    /// Catalog location.
    #[command(flatten)]
    pub flags: CatalogFlags,
}

pub(crate) fn print_json<T: Serialize>(out: &mut dyn Write, value: &T) -> CliResult {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Exit::failed(format!("cannot encode JSON: {e}")))?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// Text from the catalog as it may be shown on a terminal ([`crate::text::terminal`]).
pub(crate) fn clean(s: &str) -> String {
    crate::text::terminal(s).into_owned()
}

/// The database `pubdeck serve` uses: `--db`, or the default service database.
pub fn serve_db(args: &ServeArgs, overrides: &Overrides) -> Result<String, super::Exit> {
    let settings = Settings::resolve(overrides).map_err(Exit::from)?;
    Ok(args
        .db
        .clone()
        .unwrap_or_else(|| settings.default_service_db()))
}

/// `pubdeck user add NAME [--db URL]`: prints the token once.
pub async fn run_user(args: &UserArgs, overrides: &Overrides, out: &mut dyn Write) -> CliResult {
    let (name, db, json) = match &args.command {
        UserCommand::Add { name, db, json } => (name, db, json),
        UserCommand::Token(cmd) => return super::lifecycle::run_token(cmd, overrides, out).await,
    };
    let settings = Settings::resolve(overrides)?;
    let db_url = db.clone().unwrap_or_else(|| settings.default_service_db());
    let db = Db::connect(&db_url).await?;
    let token = db.add_user(name).await;
    db.close().await;
    let token = token?;
    if *json {
        print_json(out, &serde_json::json!({"user": name, "token": token}))?;
    } else {
        writeln!(out, "{token}")?;
        eprintln!(
            "created user {name}; the token above is shown only once: store it now (PUBDECK_TOKEN)"
        );
    }
    Ok(())
}

/// `pubdeck login URL`: checks a token against the service and saves URL and token in the
/// config file (mode 0600). The token comes from `$PUBDECK_TOKEN` (or `--token-env`) or stdin.
pub async fn run_login(args: &LoginArgs, overrides: &Overrides, out: &mut dyn Write) -> CliResult {
    let token = match std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        Some(t) => t,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| Exit::failed(format!("cannot read the token: {e}")))?;
            line.trim().to_string()
        }
    };
    if token.is_empty() {
        return Err(Exit::usage("no token given")
            .with_hint("pipe it on standard input or set PUBDECK_TOKEN"));
    }
    let client = crate::catalog::CatalogClient::new(&args.url, Some(token.clone()))?;
    let user = client.whoami().await?;
    let settings = Settings::resolve(overrides)?;
    save_login(&settings.config_file, &args.url, &token)?;
    writeln!(
        out,
        "logged in to {} as {user}; saved in {}",
        args.url,
        settings.config_file.display()
    )?;
    Ok(())
}

fn read_key_file(path: &PathBuf) -> Result<String, Exit> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Exit::failed(format!(
            "cannot read the public key {}: {e}",
            path.display()
        ))
    })?;
    let key = text.trim().to_string();
    crate::catalog::parse_public_key(&key).map_err(|_| {
        Exit::failed(format!(
            "{} is not a public key file (expected NAME:BASE64)",
            path.display()
        ))
        .with_hint("use the .pub file written by `pubdeck key generate`")
    })?;
    Ok(key)
}

fn print_catalog(out: &mut dyn Write, info: &CatalogInfo) -> CliResult {
    writeln!(out, "catalog  {}", info.name)?;
    writeln!(out, "owner    {}", clean(&info.owner))?;
    writeln!(out, "store    {}", clean(&info.store_url))?;
    if info.keys.is_empty() {
        writeln!(
            out,
            "keys     (none: add one with `pubdeck catalog add-key`)"
        )?;
    }
    for (i, k) in info.keys.iter().enumerate() {
        writeln!(
            out,
            "{}{}",
            if i == 0 { "keys     " } else { "         " },
            clean(k)
        )?;
    }
    Ok(())
}

/// After `catalog create|set-store`: a store at a custom S3 endpoint this user does not trust
/// gets none of their AWS credentials. On a terminal (and when `may_ask`), ask whether to trust
/// it and add it to the config file on "y"; otherwise, or when declined, say the exact line.
/// Either way the catalog stands: trust is about this user's credentials, not the catalog.
fn offer_trust(settings: &Settings, store_url: &str, may_ask: bool) -> CliResult {
    use std::io::IsTerminal;
    let Ok(url) = crate::store::StoreUrl::parse(store_url) else {
        return Ok(());
    };
    let Some(endpoint) = crate::store::untrusted_endpoint(&url, &settings.trusted_endpoints) else {
        return Ok(());
    };
    let file = &settings.config_file;
    if may_ask && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        eprint!(
            "{endpoint} is not AWS: send it your AWS credentials whenever pubdeck uses this store (adds it to `trusted-endpoints` in {})? [y/N] ",
            file.display()
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Exit::failed(format!("cannot read the answer: {e}")))?;
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            crate::config::add_trusted_endpoint(file, endpoint)?;
            eprintln!("{endpoint} is trusted now (in {})", file.display());
            return Ok(());
        }
    }
    eprintln!(
        "{} pubdeck sends your AWS credentials only to AWS and to endpoints you trust; to trust {endpoint}, {}",
        super::output::Style::stderr().warn("note:"),
        crate::store::how_to_trust(&settings.trusted_endpoints, endpoint, Some(file))
    );
    Ok(())
}

/// `pubdeck catalog create|set-store|add-key|allow|revoke|allowlist`.
pub async fn run_catalog(
    args: &CatalogArgs,
    overrides: &Overrides,
    out: &mut dyn Write,
) -> CliResult {
    let settings = Settings::resolve(&args.flags.merge(overrides))?;
    let catalog = match &args.command {
        CatalogCommand::Create { .. } => settings.open_catalog_creating().await?,
        _ => settings.open_catalog().await?,
    };
    match &args.command {
        CatalogCommand::Create {
            org,
            store,
            keys,
            json,
        } => {
            let keys = keys
                .iter()
                .map(read_key_file)
                .collect::<Result<Vec<_>, _>>()?;
            let store = store.clone().unwrap_or_else(|| settings.store.clone());
            let info = catalog.create_catalog(org, &store, &keys).await?;
            if *json {
                print_json(out, &info)?;
            } else {
                print_catalog(out, &info)?;
            }
            offer_trust(&settings, &info.store_url, !*json)?;
        }
        CatalogCommand::SetStore { org, url } => {
            let info = catalog.set_store(org, url).await?;
            writeln!(
                out,
                "store of {} is now {}",
                info.name,
                clean(&info.store_url)
            )?;
            offer_trust(&settings, &info.store_url, true)?;
        }
        CatalogCommand::AddKey { org, pubfile } => {
            let key = read_key_file(pubfile)?;
            let info = catalog.add_key(org, &key).await?;
            writeln!(out, "{} trusts {} key(s)", info.name, info.keys.len())?;
        }
        CatalogCommand::RemoveKey { org, keyname, json } => {
            let info = catalog.remove_key(org, keyname).await?;
            if *json {
                print_json(out, &info)?;
            } else {
                writeln!(
                    out,
                    "{} no longer trusts {keyname}; it trusts {} key(s)",
                    info.name,
                    info.keys.len()
                )?;
            }
        }
        CatalogCommand::ReSign {
            org,
            signing_key,
            json,
        } => {
            super::lifecycle::run_resign(
                &catalog,
                &settings,
                org,
                signing_key.as_deref(),
                *json,
                out,
            )
            .await?;
        }
        CatalogCommand::Gc {
            org,
            dry_run,
            grace,
            json,
        } => {
            super::lifecycle::run_gc(&catalog, &settings, org, *dry_run, *grace, *json, out)
                .await?;
        }
        CatalogCommand::Log { org, limit, json } => {
            super::lifecycle::flush_outbox(&catalog, &settings).await;
            let entries = catalog.audit_log(org, *limit).await?;
            if *json {
                print_json(
                    out,
                    &serde_json::json!({"catalog": org, "entries": entries}),
                )?;
            } else {
                super::lifecycle::print_log(&entries, out)?;
            }
        }
        CatalogCommand::Allow { org, user } => {
            catalog.allow(org, user).await?;
            writeln!(out, "{user} may now read {org}")?;
        }
        CatalogCommand::Revoke { org, user } => {
            catalog.revoke(org, user).await?;
            writeln!(out, "{user} may no longer read {org}")?;
        }
        CatalogCommand::Import { org, file, json } => {
            let input: Box<dyn std::io::BufRead + Send> = if file.as_os_str() == "-" {
                Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()))
            } else {
                let f = std::fs::File::open(file)
                    .map_err(|e| Exit::failed(format!("cannot open {}: {e}", file.display())))?;
                Box::new(std::io::BufReader::with_capacity(1 << 20, f))
            };
            let done = crate::catalog::import::import_ndjson(&catalog, org, input, |_| {})
                .await
                .map_err(|e| Exit::hinted(&e))?;
            if *json {
                print_json(out, &done)?;
            } else {
                writeln!(
                    out,
                    "imported {} build(s) into {org}; {} were there already",
                    done.created, done.already_published
                )?;
            }
        }
        CatalogCommand::Allowlist { org, json } => {
            let users = catalog.allowlist(org).await?;
            if *json {
                print_json(out, &serde_json::json!({"catalog": org, "users": users}))?;
            } else if users.is_empty() {
                eprintln!("only the owner can read {org}");
            } else {
                for u in users {
                    writeln!(out, "{}", clean(&u))?;
                }
            }
        }
    }
    Ok(())
}

/// Two aligned columns: name and description, the description cut to `columns` characters
/// of line when given (a terminal's width), whole otherwise (a pipe, a file).
pub fn format_search(hits: &[SearchHit], columns: Option<usize>) -> String {
    let width = hits
        .iter()
        .map(|h| h.name.chars().count())
        .max()
        .unwrap_or(0);
    let room = columns.map(|c| c.saturating_sub(width + 2).max(20));
    let mut s = String::new();
    for h in hits {
        let whole = clean(&h.description);
        let desc: String = match room {
            Some(n) if whole.chars().count() > n => whole
                .chars()
                .take(n.saturating_sub(1))
                .chain(['…'])
                .collect(),
            _ => whole,
        };
        let line = format!("{:<width$}  {desc}", clean(&h.name));
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// `pubdeck search QUERY [--json] [--limit N]`.
pub async fn run_search(
    args: &SearchArgs,
    overrides: &Overrides,
    out: &mut dyn Write,
) -> CliResult {
    let settings = Settings::resolve(&args.flags.merge(overrides))?;
    let catalog = settings.open_catalog().await?;
    let answer = catalog.search_answer(&args.query, args.limit).await?;
    if args.json {
        return print_json(
            out,
            &serde_json::json!({
                "query": args.query,
                "results": answer.results,
                "suggestions": answer.suggestions,
            }),
        );
    }
    let hits = answer.results;
    if hits.is_empty() {
        eprintln!("{}", no_match(&args.query, &answer.suggestions));
        return Ok(());
    }
    let columns = std::io::stdout()
        .is_terminal()
        .then(terminal_columns)
        .flatten();
    out.write_all(format_search(&hits, columns).as_bytes())?;
    if hits.len() == args.limit {
        crate::cli::output::progress!(
            "showing the first {} results; use --limit to see more",
            hits.len()
        );
    }
    Ok(())
}

/// What `search` says when nothing matches: the query, and the nearest names if any.
pub fn no_match(query: &str, suggestions: &[String]) -> String {
    let names: Vec<String> = suggestions.iter().map(|n| clean(n)).collect();
    match names.split_last() {
        None => format!("no packages match {query:?}"),
        Some((last, [])) => format!("no packages match {query:?}; did you mean {last}?"),
        Some((last, rest)) => format!(
            "no packages match {query:?}; did you mean {} or {last}?",
            rest.join(", ")
        ),
    }
}

/// Human-readable `show` output.
pub fn format_show(d: &PackageDetail) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "{} - {}", d.name, clean(&d.description));
    if d.latest_version.is_empty() {
        let _ = writeln!(s, "  latest   none (every version is yanked)");
    } else {
        let _ = writeln!(s, "  latest   {}", d.latest_version);
    }
    let _ = writeln!(s, "  owner    {}", clean(&d.owner));
    let _ = writeln!(s, "  store    {}", clean(&d.store_url));
    for (i, k) in d.keys.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {}{}",
            if i == 0 { "keys     " } else { "         " },
            clean(k)
        );
    }
    let _ = writeln!(s, "versions");
    for v in &d.versions {
        if v.yanked {
            let _ = writeln!(s, "  {} (yanked)", v.version);
        } else {
            let _ = writeln!(s, "  {}", v.version);
        }
        for b in &v.builds {
            let _ = writeln!(s, "    {:<16} {}", b.system, b.store_path);
            let branch = if b.branch.is_empty() {
                String::new()
            } else {
                format!(" ({})", clean(&b.branch))
            };
            let _ = writeln!(
                s,
                "    {:<16} published by {} at {}, revision {}{branch}, key {}",
                "",
                clean(&b.published_by),
                b.published_at,
                &b.revision[..b.revision.len().min(12)],
                clean(&b.key_name)
            );
            if b.closure.len() > 1 {
                let total: u64 = b.closure.iter().map(|c| c.nar_size).sum();
                let _ = writeln!(
                    s,
                    "    {:<16} closure of {} store paths, {}:",
                    "",
                    b.closure.len(),
                    super::output::human_bytes(total)
                );
                for c in &b.closure {
                    let _ = writeln!(
                        s,
                        "    {:<16}   {:>10}  {}",
                        "",
                        super::output::human_bytes(c.nar_size),
                        clean(&c.store_path)
                    );
                }
            }
        }
    }
    s
}

/// `pubdeck show ORG/PKG [--json]`.
pub async fn run_show(args: &ShowArgs, overrides: &Overrides, out: &mut dyn Write) -> CliResult {
    if let Some((name, _)) = args.package.split_once('@') {
        return Err(Exit::usage(format!(
            "show takes no version: it lists every version of {}",
            clean(name)
        ))
        .with_hint(format!("run `pubdeck show {}`", clean(name))));
    }
    let (org, pkg) = parse_package_ref(&args.package).map_err(|e| {
        Exit::usage(e.to_string()).with_hint("name the package as ORG/PACKAGE, e.g. myorg/hello")
    })?;
    let settings = Settings::resolve(&args.flags.merge(overrides))?;
    let catalog = settings.open_catalog().await?;
    let detail = match catalog.show(&org, &pkg).await {
        Ok(d) => d,
        Err(e @ crate::catalog::CatalogError::NotFound { .. }) => {
            let near = nearest_names(&catalog, &org, &pkg).await;
            let err = Exit::failed(format!(
                "there is no package {org}/{pkg} in the catalogs you can see"
            ));
            return Err(match near.as_slice() {
                [] => err.with_hint(
                    crate::event::Hinted::hint(&e)
                        .unwrap_or_else(|| "search for it with `pubdeck search NAME`".into()),
                ),
                names => err.with_hint(format!("did you mean {}?", names.join(", "))),
            });
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        print_json(out, &detail)
    } else {
        out.write_all(format_show(&detail).as_bytes())?;
        Ok(())
    }
}

/// The width of the terminal on stdout, if it says.
fn terminal_columns() -> Option<usize> {
    crossterm::terminal::size()
        .ok()
        .map(|(cols, _)| usize::from(cols))
        .filter(|c| *c > 0)
}

/// Up to three names of visible packages nearest to `org/package` (case does not matter),
/// from the one search every face uses.
pub(crate) async fn nearest_names(
    catalog: &crate::catalog::AnyCatalog,
    org: &str,
    package: &str,
) -> Vec<String> {
    use crate::catalog::Catalog as _;
    let asked = format!("{org}/{package}");
    let mut names: Vec<String> = Vec::new();
    for query in [asked.to_lowercase(), package.to_lowercase()] {
        if let Ok(answer) = catalog.search_answer(&query, 10).await {
            let found = answer.results.into_iter().map(|h| h.name);
            for name in found.chain(answer.suggestions) {
                if name != asked && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        if !names.is_empty() {
            break;
        }
    }
    names.truncate(3);
    names
        .into_iter()
        .map(|n| format!("`{}`", clean(&n)))
        .collect()
}

fn parse_log_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=crate::catalog::MAX_AUDIT_ENTRIES).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number from 1 to {}",
            crate::catalog::MAX_AUDIT_ENTRIES
        )),
    }
}

fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=crate::catalog::MAX_SEARCH_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number from 1 to {}",
            crate::catalog::MAX_SEARCH_LIMIT
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_says_when_no_version_is_the_latest() {
        let d = PackageDetail {
            name: "myorg/tool".into(),
            org: "myorg".into(),
            package: "tool".into(),
            description: "a tool".into(),
            latest_version: String::new(),
            owner: "alice".into(),
            store_url: "file:///srv/cache".into(),
            keys: vec![],
            versions: vec![crate::catalog::VersionDetail {
                version: "1.0".into(),
                yanked: true,
                builds: vec![],
            }],
        };
        let text = format_show(&d);
        assert!(
            text.contains("  latest   none (every version is yanked)\n"),
            "{text}"
        );
        assert!(text.contains("  1.0 (yanked)\n"), "{text}");
    }
}
