//! The command line's arguments (clap).

use std::path::PathBuf;

use clap::Args;

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
