//! The lifecycle commands: `yank`, `whoami`, `use`, `catalog gc|remove-key|re-sign|log`,
//! `user token create|list|revoke`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::Exit;
use super::catalog::{CatalogFlags, CliResult, clean, print_json};
use super::output::human_bytes;
use super::printer::{Show, print_events};
use crate::catalog::db::Db;
use crate::catalog::{AuditEntry, Catalog, Scope, TokenInfo};
use crate::config::{Overrides, Settings};
use crate::install::PackageRef;
use crate::lifecycle::gc::{GcOptions, Kind};
use crate::lifecycle::{LifecycleError, nixconf};

impl From<LifecycleError> for Exit {
    fn from(e: LifecycleError) -> Self {
        Exit::hinted(&e)
    }
}

impl From<nixconf::UseError> for Exit {
    fn from(e: nixconf::UseError) -> Self {
        Exit::hinted(&e)
    }
}

/// Parses `30d`, `24h`, `90m`, `45s`, `2w` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => s.split_at(at),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write it as 30d, 24h, 90m or 45s"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{s:?} has an unknown unit {unit:?}: use s, m, h, d or w"
            ));
        }
    };
    n.checked_mul(unit_secs)
        .filter(|&secs| secs <= 100 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is longer than 100 years"))
}

// ---- yank ------------------------------------------------------------------------------------

/// `pubdeck yank`
#[derive(Args, Debug, Clone)]
pub struct YankArgs {
    /// ORG/PKG@VERSION
    pub package: String,
    /// Un-yank: the version counts again for "latest" and `upgrade`.
    #[arg(long)]
    pub undo: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub flags: CatalogFlags,
}

pub async fn run_yank(args: &YankArgs, overrides: &Overrides, out: &mut dyn Write) -> CliResult {
    let pkg = PackageRef::parse(&args.package).map_err(|e| Exit::usage(e.to_string()))?;
    let Some(version) = &pkg.version else {
        return Err(Exit::usage(format!(
            "{} names no version; yank one version at a time",
            args.package
        ))
        .with_hint(format!("write it as {}@VERSION", pkg.name())));
    };
    let settings = Settings::resolve(&args.flags.merge(overrides))?;
    let catalog = settings.open_catalog().await?;
    let done = match catalog
        .yank(&pkg.org, &pkg.package, version, !args.undo)
        .await
    {
        Ok(d) => d,
        Err(e @ crate::catalog::CatalogError::NotFound { .. }) => {
            // Name the versions there are, when the package is there at all.
            let hint = match catalog.show(&pkg.org, &pkg.package).await {
                Ok(d) => format!(
                    "its versions: {}",
                    d.versions
                        .iter()
                        .map(|v| v.version.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(_) => crate::event::Hinted::hint(&e)
                    .unwrap_or_else(|| "check the name with `pubdeck search`".into()),
            };
            return Err(Exit::failed(e.to_string()).with_hint(hint));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        return print_json(out, &done);
    }
    let state = if done.yanked { "yanked" } else { "not yanked" };
    if done.changed == 0 {
        writeln!(out, "{}@{} was already {state}", done.name, done.version)?;
    } else {
        writeln!(
            out,
            "{}@{} is now {state} ({} build{}); latest is {}",
            done.name,
            done.version,
            done.changed,
            if done.changed == 1 { "" } else { "s" },
            if done.latest_version.is_empty() {
                "none (every version is yanked)"
            } else {
                &done.latest_version
            }
        )?;
    }
    if done.yanked {
        crate::cli::output::progress!(
            "environments that pin {}@{} still install it; new installs and `pubdeck upgrade` skip it",
            done.name,
            done.version
        );
    }
    Ok(())
}

// ---- whoami ----------------------------------------------------------------------------------

/// `pubdeck whoami`
#[derive(Args, Debug, Clone)]
pub struct WhoamiArgs {
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub flags: CatalogFlags,
}

pub async fn run_whoami(
    args: &WhoamiArgs,
    overrides: &Overrides,
    out: &mut dyn Write,
) -> CliResult {
    let settings = Settings::resolve(&args.flags.merge(overrides))?;
    let catalog = settings.open_catalog().await?;
    let id = catalog.identity().await?;
    if args.json {
        return print_json(out, &id);
    }
    writeln!(out, "user     {}", id.user)?;
    writeln!(out, "scope    {}", id.scope)?;
    match &id.token_id {
        Some(t) => writeln!(out, "token    {t}")?,
        None => writeln!(out, "token    (none: a local catalog file)")?,
    }
    writeln!(
        out,
        "expires  {}",
        id.expires_at.as_deref().unwrap_or("never")
    )?;
    Ok(())
}

// ---- use -------------------------------------------------------------------------------------

/// `pubdeck use`
#[derive(Args, Debug, Clone)]
pub struct UseArgs {
    /// The catalog (organisation) whose store Nix should substitute from.
    pub org: String,
    /// Write without asking.
    #[arg(long, short)]
    pub yes: bool,
    /// The Nix configuration file (default: ~/.config/nix/nix.conf; as root /etc/nix/nix.conf).
    #[arg(long, value_name = "FILE")]
    pub nix_conf: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub flags: CatalogFlags,
}

pub async fn run_use(args: &UseArgs, overrides: &Overrides, out: &mut dyn Write) -> CliResult {
    let settings = Settings::resolve(&args.flags.merge(overrides))?;
    let catalog = settings.open_catalog().await?;
    let info = catalog.catalog(&args.org).await?;
    let file = args
        .nix_conf
        .clone()
        .unwrap_or_else(nixconf::default_nix_conf);
    let plan = nixconf::plan(&file, &info)?;
    nixconf::check_nix(&plan, nixconf::installed_nix_version)?;
    if plan.daemon_needs_aws_credentials {
        eprintln!(
            "{} the Nix daemon (or Nix itself, without a daemon) needs AWS credentials for {} in its own environment, e.g. root's ~/.aws/credentials or the nix-daemon service's AWS_* variables: yours are not passed on",
            super::output::Style::stderr().warn("note:"),
            crate::text::terminal(&plan.substituter)
        );
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if plan.is_noop() {
        if args.json {
            return print_json(
                out,
                &serde_json::json!({"plan": plan, "written": false, "already": true}),
            );
        }
        writeln!(
            out,
            "{} already lets Nix use catalog {}",
            file.display(),
            args.org
        )?;
        return Ok(());
    }
    if !args.json {
        writeln!(out, "{}:", file.display())?;
        for line in &plan.lines {
            writeln!(out, "  {}", crate::text::terminal(line))?;
        }
    }
    let go = if args.yes {
        true
    } else if interactive && !args.json {
        eprint!("write these lines? [y/N] ");
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Exit::failed(format!("cannot read the answer: {e}")))?;
        matches!(answer.trim(), "y" | "Y" | "yes")
    } else {
        false
    };
    if go {
        nixconf::apply(&plan)?;
    }
    if args.json {
        return print_json(out, &serde_json::json!({"plan": plan, "written": go}));
    }
    if go {
        writeln!(out, "wrote {}", file.display())?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            crate::cli::output::progress!(
                "with a Nix daemon, substituters from your own nix.conf count only if you are in `trusted-users` (or the store is in the daemon's `trusted-substituters`)"
            );
        }
        Ok(())
    } else if interactive {
        Err(Exit::failed("nothing written"))
    } else {
        Err(Exit::failed(format!(
            "not on a terminal, so nothing was written to {}",
            file.display()
        ))
        .with_hint("pass --yes to write these lines"))
    }
}

// ---- catalog gc | remove-key | re-sign | log -------------------------------------------------

/// Where maintenance commands keep audit entries the catalog could not take.
pub(crate) fn outbox(settings: &Settings) -> crate::lifecycle::outbox::Outbox {
    let catalog = match &settings.catalog {
        crate::config::CatalogLocation::Service(url) => url.clone(),
        crate::config::CatalogLocation::Embedded(path) => path.display().to_string(),
    };
    crate::lifecycle::outbox::Outbox::new(&settings.data_dir, catalog)
}

/// Sends the audit entries an earlier maintenance command kept, before anything else.
pub(crate) async fn flush_outbox(catalog: &crate::catalog::AnyCatalog, settings: &Settings) {
    let flushed = outbox(settings).flush(catalog).await;
    if flushed.sent > 0 {
        crate::cli::output::progress!(
            "sent {} audit entr{} kept since the catalog could not take {}",
            flushed.sent,
            if flushed.sent == 1 { "y" } else { "ies" },
            if flushed.sent == 1 { "it" } else { "them" }
        );
    }
    if flushed.kept > 0 {
        crate::cli::output::progress!(
            "warning: {} audit entr{} still wait{} in {}",
            flushed.kept,
            if flushed.kept == 1 { "y" } else { "ies" },
            if flushed.kept == 1 { "s" } else { "" },
            outbox(settings).dir.display()
        );
    }
}

/// Says, after the work's own report, that its audit entry waits to be sent.
fn warn_pending(pending: &Option<String>) {
    if let Some(why) = pending {
        crate::cli::output::progress!("warning: {}", crate::text::terminal(why));
    }
}

/// `pubdeck catalog gc`
pub async fn run_gc(
    catalog: &crate::catalog::AnyCatalog,
    settings: &Settings,
    org: &str,
    dry_run: bool,
    grace: Duration,
    json: bool,
    out: &mut dyn Write,
) -> CliResult {
    let (tx, rx) = crate::event::channel();
    let printer = tokio::spawn(print_events(rx, Show::pipeline(json)));
    flush_outbox(catalog, settings).await;
    let opts = GcOptions {
        grace,
        dry_run,
        outbox: Some(outbox(settings)),
    };
    let report =
        crate::lifecycle::gc::collect(catalog, org, &settings.store_open(), &opts, &tx).await;
    drop(tx);
    let _ = printer.await;
    let report = report?;
    warn_pending(&report.audit_pending);
    if json {
        return print_json(out, &report);
    }
    let count = |k: Kind| report.deleted.iter().filter(|d| d.kind == k).count();
    if dry_run {
        for d in &report.deleted {
            writeln!(out, "would delete {:>10}  {}", human_bytes(d.size), d.key)?;
        }
    }
    writeln!(
        out,
        "{} {} narinfo(s), {} listing(s), {} NAR(s): {} from {}",
        if dry_run { "would delete" } else { "deleted" },
        count(Kind::Narinfo),
        count(Kind::Listing),
        count(Kind::Nar),
        human_bytes(report.bytes),
        report.store_url
    )?;
    writeln!(
        out,
        "kept {} store path(s) registered builds need, and {} object(s) younger than {}",
        report.live_paths,
        report.kept_young,
        super::output::human_duration(Duration::from_secs(report.grace_secs))
    )?;
    if report.spared > 0 {
        writeln!(
            out,
            "spared {} object(s) written again while GC ran",
            report.spared
        )?;
    }
    if !report.missing.is_empty() {
        crate::cli::output::progress!(
            "warning: {} registered store path(s) have no narinfo in the store (first: {}); `pubdeck ready` will fail for them",
            report.missing.len(),
            report.missing[0]
        );
    }
    Ok(())
}

/// `pubdeck catalog re-sign`
pub async fn run_resign(
    catalog: &crate::catalog::AnyCatalog,
    settings: &Settings,
    org: &str,
    key_file: Option<&std::path::Path>,
    json: bool,
    out: &mut dyn Write,
) -> CliResult {
    let Some(path) = key_file.or(settings.signing_key.as_deref()) else {
        return Err(Exit::usage("no signing key given")
            .with_hint("pass --signing-key NEW.sec (the key the catalog should move to)"));
    };
    let key = crate::nix::sign::SecretKey::from_file(path).map_err(|e| {
        Exit::failed(format!(
            "cannot use {} as a signing key: {e}",
            path.display()
        ))
    })?;
    let (tx, rx) = crate::event::channel();
    let printer = tokio::spawn(print_events(rx, Show::pipeline(json)));
    flush_outbox(catalog, settings).await;
    let outbox = outbox(settings);
    let report = crate::lifecycle::resign::resign(
        catalog,
        org,
        &key,
        &settings.store_open(),
        Some(&outbox),
        &tx,
    )
    .await;
    drop(tx);
    let _ = printer.await;
    let report = report?;
    warn_pending(&report.audit_pending);
    if json {
        return print_json(out, &report);
    }
    writeln!(
        out,
        "signed {} narinfo(s) of {org} with {}; {} already were",
        report.signed, report.key_name, report.already_signed
    )?;
    if !report.missing.is_empty() {
        crate::cli::output::progress!(
            "warning: {} registered store path(s) have no narinfo in the store (first: {})",
            report.missing.len(),
            report.missing[0]
        );
    }
    crate::cli::output::progress!(
        "once every narinfo is signed, `pubdeck catalog remove-key {org} OLDNAME` retires the old key"
    );
    Ok(())
}

/// `pubdeck catalog log`
pub fn print_log(entries: &[AuditEntry], out: &mut dyn Write) -> CliResult {
    if entries.is_empty() {
        writeln!(out, "(no entries)")?;
    }
    for e in entries {
        let detail = match &e.detail {
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            serde_json::Value::Null => String::new(),
            d => format!("  {d}"),
        };
        writeln!(
            out,
            "{:>5}  {}  {:<10} {:<10} {}{}",
            e.seq,
            e.at,
            clean(&e.actor),
            e.action,
            clean(&e.subject),
            clean(&detail)
        )?;
    }
    Ok(())
}

// ---- user token ------------------------------------------------------------------------------

/// `pubdeck user token …` (on the service's database, like `user add`).
#[derive(Subcommand, Debug, Clone)]
pub enum TokenCommand {
    /// Create a token for user NAME and print it once.
    Create {
        /// User name.
        name: String,
        /// What the token may do.
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        /// Expire after this long (30d, 12h, …); default: never.
        #[arg(long, value_parser = parse_duration)]
        expires: Option<Duration>,
        /// `pubdeck` (pdk_…) or `flox` (flox_pdk_…, for the Flox CLI's FLOX_FLOXHUB_TOKEN
        /// against `pubdeck serve`); both work with pubdeck and Flox alike.
        #[arg(long, value_enum, default_value_t = TokenTextFormat::Pubdeck)]
        format: TokenTextFormat,
        #[arg(long, value_name = "URL", env = "PUBDECK_DB")]
        db: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The tokens of user NAME: ids, scopes, created, last used, expiry (never the tokens).
    List {
        name: String,
        #[arg(long, value_name = "URL", env = "PUBDECK_DB")]
        db: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke token ID: it stops working at once.
    Revoke {
        id: String,
        #[arg(long, value_name = "URL", env = "PUBDECK_DB")]
        db: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The text form of a new token.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTextFormat {
    Pubdeck,
    Flox,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| format!("{s:?} is not a scope: use read, publish or admin"))
}

pub async fn run_token(
    cmd: &TokenCommand,
    overrides: &Overrides,
    out: &mut dyn Write,
) -> CliResult {
    let settings = Settings::resolve(overrides)?;
    let db_of = |db: &Option<String>| db.clone().unwrap_or_else(|| settings.default_service_db());
    match cmd {
        TokenCommand::Create {
            name,
            scope,
            expires,
            format,
            db,
            json,
        } => {
            let db = Db::connect(&db_of(db)).await?;
            let expires_at = expires.map(|d| {
                crate::time::now_secs()
                    .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            });
            let format = match format {
                TokenTextFormat::Pubdeck => crate::catalog::db::TokenFormat::Pubdeck,
                TokenTextFormat::Flox => crate::catalog::db::TokenFormat::Flox,
            };
            let made = db.create_token_in(name, *scope, expires_at, format).await;
            db.close().await;
            let (info, token) = made?;
            if *json {
                return print_json(out, &serde_json::json!({"token": token, "info": info}));
            }
            writeln!(out, "{token}")?;
            eprintln!(
                "created token {} ({} scope, expires {}) for {name}; it is shown only once: store it now",
                info.id,
                info.scope,
                info.expires_at.as_deref().unwrap_or("never")
            );
        }
        TokenCommand::List { name, db, json } => {
            let db = Db::connect(&db_of(db)).await?;
            crate::catalog::validate_user_name(name)?;
            let exists = db.user_exists(name).await;
            let tokens = db.tokens_of(name).await;
            db.close().await;
            if !exists? {
                return Err(crate::catalog::CatalogError::not_found(
                    crate::catalog::Missing::User,
                    format!("no user named {name}"),
                )
                .into());
            }
            let tokens = tokens?;
            if *json {
                return print_json(out, &serde_json::json!({"user": name, "tokens": tokens}));
            }
            print_tokens(&tokens, out)?;
        }
        TokenCommand::Revoke { id, db, json } => {
            let db = Db::connect(&db_of(db)).await?;
            let revoked = db.revoke_token(id).await;
            db.close().await;
            let Some(info) = revoked? else {
                return Err(Exit::failed(format!("there is no token {id}"))
                    .with_hint("list them with `pubdeck user token list NAME`"));
            };
            if *json {
                return print_json(out, &info);
            }
            writeln!(
                out,
                "token {} of {} is revoked (since {})",
                info.id,
                info.user,
                info.revoked_at.as_deref().unwrap_or("now")
            )?;
        }
    }
    Ok(())
}

fn print_tokens(tokens: &[TokenInfo], out: &mut dyn Write) -> CliResult {
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.scope.to_string(),
                t.created_at.clone(),
                t.last_used_at.clone().unwrap_or_else(|| "never".into()),
                t.expires_at.clone().unwrap_or_else(|| "never".into()),
                match &t.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".into(),
                },
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        super::output::table(
            &["ID", "SCOPE", "CREATED", "LAST USED", "EXPIRES", "STATE"],
            &rows,
            super::output::Style::stdout()
        )
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        for bad in ["", "d", "3y", "-1h", "99999999999999999999d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

// ---- upgrade ---------------------------------------------------------------------------------

/// `pubdeck upgrade`
#[derive(Args, Debug, Clone)]
pub struct UpgradeArgs {
    /// `[install]` ids to upgrade (default: every org package that pins no version).
    pub ids: Vec<String>,
    /// Only print old → new.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, short, default_value = ".")]
    pub dir: PathBuf,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub flags: CatalogFlags,
}

/// Applies upgrade or migration `steps` to the environment in `dir`, each as a whole
/// verified install, printing the notes the installs send.
async fn apply_steps(
    steps: &mut [crate::install::upgrade::Step],
    dir: &std::path::Path,
    settings: &Settings,
    catalog: &crate::catalog::AnyCatalog,
) {
    let placeholder = PackageRef {
        org: String::new(),
        package: String::new(),
        version: None,
    };
    let mut template = crate::install::Request::new(placeholder, dir, &settings.data_dir);
    template.store_open = settings.store_open();
    template.catalog_label = settings.catalog_label();
    let (tx, rx) = crate::event::channel();
    let printer = tokio::spawn(print_events(rx, Show::Notes));
    crate::install::upgrade::apply(steps, &template, catalog, &tx).await;
    drop(tx);
    let _ = printer.await;
}

pub async fn run_upgrade(
    args: &UpgradeArgs,
    overrides: &Overrides,
    out: &mut dyn Write,
) -> CliResult {
    use crate::install::upgrade::{self, Status};
    let settings = Settings::resolve(&Overrides {
        project_dir: Some(args.dir.clone()),
        ..args.flags.merge(overrides)
    })?;
    let catalog = settings.open_catalog().await?;
    let system = crate::nix::current_system();
    let fail = |e: upgrade::UpgradeError| Exit::hinted(&e);
    let mut steps = upgrade::plan(&args.dir, &args.ids, &catalog, &system)
        .await
        .map_err(fail)?;
    if !args.dry_run {
        apply_steps(&mut steps, &args.dir, &settings, &catalog).await;
    }
    let failed = steps.iter().any(|s| s.status == Status::Failed);
    if args.json {
        print_json(
            out,
            &serde_json::json!({"dry_run": args.dry_run, "steps": steps}),
        )?;
    } else {
        if steps.is_empty() {
            writeln!(out, "no org packages to upgrade in this environment")?;
        }
        for s in &steps {
            let from = s.from.as_deref().unwrap_or("?");
            let to = s.to.as_deref().unwrap_or("-");
            let line = match s.status {
                Status::Available if s.migrates => format!(
                    "{} {from} → {to} (rewritten to a store path: FloxHub cannot resolve it)",
                    s.package
                ),
                Status::Available => format!("{} {from} → {to}", s.package),
                Status::Upgraded => format!("{} {from} → {to} (installed)", s.package),
                Status::UpToDate => format!("{} {from} (up to date)", s.package),
                Status::Pinned => format!(
                    "{} ({}; left alone)",
                    s.package,
                    s.message.as_deref().unwrap_or("pinned")
                ),
                Status::NoCandidate => format!(
                    "{} {from} (no version that is not yanked has a build for {system})",
                    s.package
                ),
                Status::NotInCatalog => format!("{} (not in a catalog you can see)", s.package),
                Status::Failed => format!(
                    "{} {from} → {to} failed: {}",
                    s.package,
                    s.message.as_deref().unwrap_or("")
                ),
            };
            writeln!(out, "{:<16} {line}", s.id)?;
        }
    }
    if failed {
        return Err(
            Exit::failed("some upgrades failed; the others were installed")
                .with_hint("see the lines above; `pubdeck ready ORG/PKG@VERSION` explains one"),
        );
    }
    Ok(())
}

// ---- migrate ---------------------------------------------------------------------------------

/// `pubdeck migrate`
#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    /// Rewrite without asking (off a terminal nothing is rewritten without it).
    #[arg(long, short)]
    pub yes: bool,
    #[arg(long, short, default_value = ".")]
    pub dir: PathBuf,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub flags: CatalogFlags,
}

/// `pubdeck migrate`: the `[install]` entries earlier versions wrote (`pkg-path = "ORG/PKG"`,
/// which only FloxHub resolves) become store-path descriptors under the same id, each a whole
/// verified install of the version it had; lock entries whose descriptor is gone are dropped.
pub async fn run_migrate(
    args: &MigrateArgs,
    overrides: &Overrides,
    out: &mut dyn Write,
) -> CliResult {
    use crate::install::upgrade::{self, Status};
    let settings = Settings::resolve(&Overrides {
        project_dir: Some(args.dir.clone()),
        ..args.flags.merge(overrides)
    })?;
    let catalog = settings.open_catalog().await?;
    let system = crate::nix::current_system();
    let fail = |e: upgrade::UpgradeError| Exit::hinted(&e);
    let mut steps = upgrade::plan_migration(&args.dir, &catalog, &system)
        .await
        .map_err(fail)?;
    let todo: Vec<&upgrade::Step> = steps
        .iter()
        .filter(|s| s.status == Status::Available)
        .collect();
    if !args.json {
        if todo.is_empty() {
            writeln!(out, "no [install] entry needs FloxHub to resolve it")?;
        }
        for s in &todo {
            writeln!(
                out,
                "{:<16} {} → a store path ({})",
                s.id,
                s.package,
                s.to.as_deref().unwrap_or("?")
            )?;
        }
        for s in steps.iter().filter(|s| s.status != Status::Available) {
            writeln!(
                out,
                "{:<16} {} cannot be migrated: {}",
                s.id,
                s.package,
                match s.status {
                    Status::NotInCatalog => "not in a catalog you can see".into(),
                    _ => format!("no build for {system}"),
                }
            )?;
        }
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let go = !todo.is_empty()
        && (args.yes || {
            if interactive && !args.json {
                eprint!("rewrite these entries? [y/N] ");
                let mut answer = String::new();
                std::io::stdin()
                    .read_line(&mut answer)
                    .map_err(|e| Exit::failed(format!("cannot read the answer: {e}")))?;
                matches!(answer.trim(), "y" | "Y" | "yes")
            } else {
                false
            }
        });
    if !todo.is_empty() && !go {
        return Err(if interactive && !args.json {
            Exit::failed("nothing was rewritten")
        } else {
            Exit::failed("not on a terminal, so nothing was rewritten")
                .with_hint("pass --yes to rewrite these entries")
        });
    }
    if go {
        apply_steps(&mut steps, &args.dir, &settings, &catalog).await;
    }
    let pruned = upgrade::prune_lock(&args.dir).map_err(fail)?;
    let failed = steps.iter().any(|s| s.status == Status::Failed);
    if args.json {
        print_json(
            out,
            &serde_json::json!({"steps": steps, "pruned_lock_entries": pruned}),
        )?;
    } else {
        for s in steps.iter().filter(|s| s.status != Status::Available) {
            match s.status {
                Status::Upgraded => writeln!(out, "{:<16} migrated", s.id)?,
                Status::Failed => writeln!(
                    out,
                    "{:<16} failed: {}",
                    s.id,
                    s.message.as_deref().unwrap_or("")
                )?,
                _ => {}
            }
        }
        for id in &pruned {
            writeln!(
                out,
                "{id:<16} dropped from pubdeck.lock (no [install] entry)"
            )?;
        }
    }
    if failed {
        return Err(Exit::failed("some entries could not be migrated")
            .with_hint("see the lines above; `pubdeck ready ORG/PKG@VERSION` explains one"));
    }
    Ok(())
}
