//! The command line's arguments (clap): the commands and their flags. The catalog, lifecycle,
//! local and store commands keep their own argument types beside them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::local;
use super::{build_name_candidates, catalog, lifecycle, store};

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

#[derive(Debug, Parser)]
#[command(
    name = "pubdeck",
    version,
    about = "Publish Flox environment builds to your organisation's catalog, and install what it published."
)]
pub struct Cli {
    /// Without a command, pubdeck opens the full-screen workbench on the current directory.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Say nothing on stderr but warnings and errors (no progress, no build log).
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log what pubdeck does on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The full-screen workbench (also what `pubdeck` alone opens).
    Tui {
        #[arg(long, short, default_value = ".")]
        dir: PathBuf,
        #[arg(long, value_name = "URL")]
        catalog: Option<String>,
        /// Leave the mouse to the terminal (text selection works as usual; no wheel or clicks).
        #[arg(long)]
        no_mouse: bool,
    },
    /// Create the demo workspace (git repo + remote, environment, key, catalog, store) and open it.
    Demo {
        /// Where the workspace lives (default: <data dir>/demo); reused when complete.
        #[arg(long)]
        path: Option<PathBuf>,
        /// Print where everything is and the commands to try, instead of opening the TUI.
        #[arg(long)]
        no_tui: bool,
        /// Leave the mouse to the terminal (text selection works as usual; no wheel or clicks).
        #[arg(long)]
        no_mouse: bool,
    },
    /// List the [build.*] entries of the environment's manifest.
    Builds {
        /// The environment directory (holding .flox/).
        #[arg(long, short, default_value = ".")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Evaluate every publish precondition; exit 1 if any fails.
    Check {
        /// The build to be published (also checks that it exists).
        #[arg(add = clap_complete::ArgValueCandidates::new(build_name_candidates))]
        build: Option<String>,
        #[arg(long, short, default_value = ".")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
        /// Contact nothing: decide `pushed` from the last fetched state, and skip the
        /// catalog, permission, key-trust and store checks (said so).
        #[arg(long)]
        offline: bool,
        /// The organisation (catalog) to publish to (default: PUBDECK_ORG).
        #[arg(long)]
        org: Option<String>,
        /// Secret signing key file (default: PUBDECK_SIGNING_KEY).
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
        /// Catalog URL or file (default: PUBDECK_CATALOG).
        #[arg(long, value_name = "URL")]
        catalog: Option<String>,
    },
    /// Clean-build one build from a fresh clone of HEAD; prints the output path.
    Build {
        #[arg(add = clap_complete::ArgValueCandidates::new(build_name_candidates))]
        build: String,
        #[arg(long, short, default_value = ".")]
        dir: PathBuf,
        /// Stop the build after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        /// Build twice, each in a fresh clone, and compare: exit 1 naming the files that
        /// differ when the build is not reproducible (nothing is kept or published).
        #[arg(long)]
        check: bool,
    },
    /// Nix-format signing keys.
    #[command(subcommand)]
    Key(local::KeyCommand),
    /// Fuzzy search over the packages of the catalogs you can see.
    Search(catalog::SearchArgs),
    /// Description, versions and builds of ORG/PKG.
    Show(catalog::ShowArgs),
    /// Manage catalogs: create, set-store, add-key, remove-key, re-sign, allow, revoke,
    /// allowlist, import, gc, log.
    Catalog(catalog::CatalogArgs),
    /// Yank ORG/PKG@VER (or --undo): kept and installable when pinned, skipped for "latest".
    Yank(lifecycle::YankArgs),
    /// Who the catalog takes you for: user, token scope and expiry.
    Whoami(lifecycle::WhoamiArgs),
    /// Let Nix substitute from a catalog's store: adds its substituter and keys to nix.conf.
    Use(lifecycle::UseArgs),
    /// Install the newest version (not yanked) of the org packages that pin no version.
    Upgrade(lifecycle::UpgradeArgs),
    /// Rewrite [install] entries only FloxHub resolves (pkg-path = "ORG/PKG") to the store
    /// paths pubdeck verifies.
    Migrate(lifecycle::MigrateArgs),
    /// Run the whole pipeline: checks, clean build, pack, sign, upload, register.
    Publish(PublishArgs),
    /// Install-readiness checks for ORG/PKG[@VER]; exit 1 if install would fail.
    Ready(ReadyArgs),
    /// Download, verify and unpack ORG/PKG[@VER], then add it to the manifest.
    Install(ReadyArgs),
    /// Talk to a Catalog Store directly (file:// or s3://).
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Run the catalog service.
    Serve(catalog::ServeArgs),
    /// Manage the catalog service's users.
    User(catalog::UserArgs),
    /// Store a catalog service URL and token in the config file (mode 0600).
    Login(catalog::LoginArgs),
    /// Show the effective settings and where each comes from (secrets hidden).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (pubdeck.1 and one per command) into DIR, or print pubdeck.1.
    Man {
        /// Directory to write them into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Pack a directory as a signed content-addressed store path into a file:// cache.
    Pack {
        /// The tree to pack (a directory, file or symlink).
        path: PathBuf,
        /// Store path name, e.g. hello-1.0.
        #[arg(long)]
        name: String,
        /// The binary cache: a directory (created if missing), file://… or s3://….
        #[arg(long, value_name = "STORE")]
        to: String,
        #[arg(long, value_name = "FILE", env = "PUBDECK_SIGNING_KEY")]
        signing_key: PathBuf,
        #[arg(long, default_value = "zstd", value_parser = local::parse_compression)]
        compression: crate::nix::Compression,
        #[arg(long)]
        json: bool,
    },
}

/// `pubdeck config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The effective value of every setting and its source: flag, environment variable,
    /// config file or default. The token is never printed, URLs lose their passwords.
    Show {
        #[arg(long)]
        json: bool,
    },
}

impl Cli {
    /// Whether this command's output may simply stop when its reader goes away (every
    /// command but the service and the workbench).
    pub fn ends_quietly_on_a_closed_pipe(&self) -> bool {
        !matches!(
            self.command,
            None | Some(Command::Serve(_)) | Some(Command::Tui { .. }) | Some(Command::Demo { .. })
        )
    }
}
