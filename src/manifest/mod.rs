//! The Flox environment and its manifest (`.flox/env/manifest.toml`).
//!
//! Reading is strict where pubdeck depends on the data (`[install]`, `[build.*]`,
//! `[options] systems`) and where Flox itself rejects a manifest; every other table is
//! accepted untouched. Every error names `file:line:column` and what was expected.
//! Editing (see [`edit`]) goes through `toml_edit` so comments and layout survive.

pub mod edit;

use std::fmt;
use std::path::{Path, PathBuf};

use toml_edit::{Document, Item, TableLike};

/// Path of the manifest relative to the environment directory.
pub const MANIFEST_REL: &str = ".flox/env/manifest.toml";

/// Top-level tables and keys a Flox manifest may carry.
const TOP_LEVEL_KEYS: &[&str] = &[
    "version",
    "schema-version",
    "minimum-cli-version",
    "install",
    "vars",
    "hook",
    "profile",
    "services",
    "include",
    "build",
    "options",
    "containerize",
    "plugins",
];

/// Keys of a `[build.<name>]` table.
const BUILD_KEYS: &[&str] = &[
    "command",
    "version",
    "description",
    "sandbox",
    "sandbox-allow",
    "license",
    "runtime-packages",
];

/// Keys of an `[install.<id>]` descriptor (catalog, flake and store-path forms).
const INSTALL_KEYS: &[&str] = &[
    "pkg-path",
    "pkg-group",
    "version",
    "systems",
    "priority",
    "outputs",
    "flake",
    "store-path",
];

/// An error in or around a manifest; displays as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("no Flox environment in {dir}: {manifest} does not exist")]
    NotFound { dir: PathBuf, manifest: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        /// The text of that line, to show under the message.
        source_line: String,
    },
    #[error("{path} changed on disk since it was read; nothing was written")]
    Changed { path: PathBuf },
    #[error("{path} has no build named `{name}`")]
    NoSuchBuild { path: PathBuf, name: String },
    #[error("{path} already installs `{id}`")]
    AlreadyInstalled { path: PathBuf, id: String },
    #[error(
        "the version of build `{name}` is what its version.command prints; pubdeck cannot set it"
    )]
    VersionFromCommand { name: String },
    #[error("cannot write the version of build `{name}` into version.file {file}: {why}")]
    VersionFile {
        name: String,
        file: String,
        why: String,
    },
    #[error("version {version:?} is not valid: {reason}")]
    BadVersion {
        version: String,
        reason: &'static str,
    },
}

impl ManifestError {
    /// The line the error is about, with a caret under its column, as compilers show it:
    /// `  |`, `5 | command = `, `  |           ^`. Empty for errors without a position.
    pub fn excerpt(&self) -> Vec<String> {
        let ManifestError::Invalid {
            line,
            column,
            source_line,
            ..
        } = self
        else {
            return Vec::new();
        };
        let num = line.to_string();
        let pad = " ".repeat(num.len());
        let shown = crate::text::terminal(source_line);
        // The caret sits under the column's character (tabs keep their width as `\t`).
        let before: String = source_line.chars().take(column.saturating_sub(1)).collect();
        let offset = crate::text::terminal(&before).chars().count();
        vec![
            format!("{pad} |"),
            format!("{num} | {shown}"),
            format!("{pad} | {}^", " ".repeat(offset)),
        ]
    }
}

impl crate::event::Hinted for ManifestError {
    /// A command or edit that fixes the problem, where one exists.
    fn hint(&self) -> Option<String> {
        match self {
            ManifestError::NotFound { .. } => Some(
                "run pubdeck in an environment directory, pass --dir, or create one with `flox init`"
                    .into(),
            ),
            ManifestError::Changed { .. } => Some("reload and try again".into()),
            ManifestError::BadVersion { .. } => Some("use one word such as 1.2.3 or 2024.11-rc1".into()),
            ManifestError::VersionFromCommand { .. } => Some(
                "change the command (or what it reads), commit, and the next build takes it".into(),
            ),
            _ => None,
        }
    }
}

/// The one rule for build versions, wherever they come from (a manifest edit, `version.file`,
/// `version.command`, a registration): they become part of store path names and catalog
/// keys. 1 to 128 characters, starting with a letter or digit, made of letters, digits and
/// `. _ + -`.
pub fn check_version(version: &str) -> Result<(), ManifestError> {
    let bad = |reason| {
        Err(ManifestError::BadVersion {
            version: version.to_string(),
            reason,
        })
    };
    if version.is_empty() {
        return bad("it is empty");
    }
    if version.len() > 128 {
        return bad("it is longer than 128 characters");
    }
    if !version.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad("it must start with a letter or digit");
    }
    if !version
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
    {
        return bad("use only letters, digits and . _ + -");
    }
    Ok(())
}

/// A located Flox environment: the directory holding `.flox/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// The environment (project) directory, absolute.
    pub dir: PathBuf,
}

impl Env {
    /// Finds the environment at `dir` (not its parents: publishing the wrong environment
    /// by accident is worse than asking for `--dir`).
    pub fn find(dir: &Path) -> Result<Env, ManifestError> {
        let abs = std::path::absolute(dir).map_err(|source| ManifestError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let manifest = abs.join(MANIFEST_REL);
        if !manifest.is_file() {
            return Err(ManifestError::NotFound { dir: abs, manifest });
        }
        Ok(Env { dir: abs })
    }

    pub fn flox_dir(&self) -> PathBuf {
        self.dir.join(".flox")
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_REL)
    }

    /// Reads and validates the manifest.
    pub fn manifest(&self) -> Result<Manifest, ManifestError> {
        Manifest::load(&self.manifest_path())
    }
}

/// Reads a `version.file`: a regular file inside `root` (after following links), at most
/// `cap` bytes. Opened without blocking, so a FIFO or a device cannot hang the reader;
/// anything but a regular file is refused. The build reads it in its clean clone (`root` the
/// clone); the workbench shows it from the work tree.
pub fn read_version_file(root: &Path, path: &Path, cap: u64) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let root = std::fs::canonicalize(root).map_err(|e| e.to_string())?;
    let real = std::fs::canonicalize(path)
        .map_err(|e| format!("cannot be read in the clean clone ({e})"))?;
    if !real.starts_with(&root) {
        return Err("names a file outside the repository; it must be a committed file".into());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&real)
        .map_err(|e| format!("cannot be read in the clean clone ({e})"))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > cap {
        return Err(format!(
            "is larger than {} KiB; it must hold the version only",
            cap / 1024
        ));
    }
    let mut text = String::new();
    file.take(cap)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot be read ({e})"))?;
    Ok(text)
}

/// The top of the git work tree holding `dir` (the nearest ancestor with `.git`), or `dir`.
pub fn repository_root(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(dir)
        .to_path_buf()
}

/// How a build's version is given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionSpec {
    /// `version = "1.2.3"`
    Literal(String),
    /// `version.file = "VERSION"`, relative to the environment directory.
    File(String),
    /// `version.command = "…"`, run by bash in the environment directory.
    Command(String),
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSpec::Literal(v) => f.write_str(v),
            VersionSpec::File(p) => write!(f, "file:{p}"),
            VersionSpec::Command(c) => write!(f, "command:{c}"),
        }
    }
}

/// `sandbox = …` of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sandbox {
    Off,
    Pure,
    Warn,
    Enforce,
}

/// One `[build.<name>]` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Build {
    pub name: String,
    pub command: String,
    pub version: Option<VersionSpec>,
    pub description: Option<String>,
    pub sandbox: Option<Sandbox>,
    pub sandbox_allow: Vec<String>,
    pub license: Vec<String>,
    pub runtime_packages: Vec<String>,
}

/// One `[install]` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstallEntry {
    pub id: String,
    pub pkg_path: Option<String>,
    pub pkg_group: Option<String>,
    pub version: Option<String>,
    pub flake: Option<String>,
    pub store_path: Option<String>,
    pub systems: Option<Vec<String>>,
}

impl InstallEntry {
    /// What is installed, for humans and for the catalog's record (`myorg/hello@1.2`).
    pub fn describe(&self) -> String {
        let base = self
            .pkg_path
            .as_deref()
            .or(self.flake.as_deref())
            .or(self.store_path.as_deref())
            .unwrap_or(&self.id);
        match &self.version {
            Some(v) => format!("{base}@{v}"),
            None => base.to_string(),
        }
    }
}

/// The schema line of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    /// `version = 1`
    V1,
    /// `schema-version = "X.Y.Z"`
    Semver(u32, u32, u32),
}

/// A parsed, validated manifest, with the text it came from (for editing).
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    pub text: String,
    pub schema: Option<Schema>,
    pub install: Vec<InstallEntry>,
    pub builds: Vec<Build>,
    pub systems: Option<Vec<String>>,
}

/// A build's version as people should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShownVersion {
    /// Known: a literal, or what `version.file` holds in the work tree.
    Known(String),
    /// From `version.command`: known only when the build runs.
    FromCommand,
    /// `version.file` cannot be read here (the reason).
    Unreadable(String),
    /// The build declares none.
    None,
}

impl Manifest {
    /// The environment directory (the one holding `.flox`).
    pub fn env_dir(&self) -> PathBuf {
        self.path
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// Build `name`'s version as the work tree has it: the literal, or the contents of
    /// `version.file` (read as the build reads it, trimmed).
    pub fn shown_version(&self, build: &Build) -> ShownVersion {
        match &build.version {
            None => ShownVersion::None,
            Some(VersionSpec::Literal(v)) => ShownVersion::Known(v.clone()),
            Some(VersionSpec::Command(_)) => ShownVersion::FromCommand,
            Some(VersionSpec::File(f)) => {
                let env = self.env_dir();
                match read_version_file(&repository_root(&env), &env.join(f), 64 * 1024) {
                    Ok(t) => ShownVersion::Known(t.trim().to_string()),
                    Err(why) => ShownVersion::Unreadable(format!("version.file {f:?} {why}")),
                }
            }
        }
    }

    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::parse(path, text)
    }

    /// Parses `text` as the manifest at `path` (the path only names errors).
    pub fn parse(path: &Path, text: String) -> Result<Manifest, ManifestError> {
        let p = Parser { path, text: &text };
        let doc = Document::parse(text.as_str()).map_err(|e| {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            let msg = e.message().trim().trim_end_matches('.').to_string();
            p.err(at, format!("invalid TOML: {msg}"))
        })?;
        let root = doc.as_table();
        for (key, item) in root.iter() {
            if !TOP_LEVEL_KEYS.contains(&key) {
                return Err(p.err_item(
                    root.key(key).and_then(|k| k.span()).or(item.span()),
                    format!(
                        "unknown top-level key `{key}`; expected one of {}",
                        TOP_LEVEL_KEYS.join(", ")
                    ),
                ));
            }
        }
        let schema = p.schema(root)?;
        let install = match root.get("install") {
            Some(item) => p.install(item)?,
            None => Vec::new(),
        };
        let builds = match root.get("build") {
            Some(item) => p.builds(item)?,
            None => Vec::new(),
        };
        let systems = match root.get("options").map(|o| (o, o.as_table_like())) {
            None => None,
            Some((_, Some(options))) => match options.get("systems") {
                Some(item) => Some(p.string_list(item, "options.systems")?),
                None => None,
            },
            Some((item, None)) => return Err(p.expected(item, "`options` to be a table")),
        };
        if let Some(services) = root.get("services").and_then(Item::as_table_like) {
            p.services(services)?;
        }
        if let Some(profile) = root.get("profile").and_then(Item::as_table_like)
            && let Some((key, _)) = profile.get_key_value("deactivate")
        {
            let allowed =
                matches!(schema, Some(Schema::Semver(maj, min, _)) if (maj, min) >= (1, 13));
            if !allowed {
                return Err(p.err_item(
                    key.span(),
                    "`profile.deactivate` needs schema-version = \"1.13.0\" or newer".into(),
                ));
            }
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            text: text.clone(),
            schema,
            install,
            builds,
            systems,
        })
    }

    pub fn build(&self, name: &str) -> Option<&Build> {
        self.builds.iter().find(|b| b.name == name)
    }

    /// The build name closest to `name` (for "did you mean" hints).
    pub fn nearest_build(&self, name: &str) -> Option<&str> {
        nearest(name, self.builds.iter().map(|b| b.name.as_str()))
    }
}

/// The candidate with the smallest edit distance to `name`, if it is plausibly a typo.
pub fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (levenshtein(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count().max(name.chars().count()) / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Converts a byte offset into 1-based line and column (in characters).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

struct Parser<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Parser<'_> {
    fn err(&self, offset: usize, message: String) -> ManifestError {
        let (line, column) = line_col(self.text, offset);
        ManifestError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            message,
            source_line: self
                .text
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or("")
                .to_string(),
        }
    }

    fn err_item(&self, span: Option<std::ops::Range<usize>>, message: String) -> ManifestError {
        self.err(span.map(|s| s.start).unwrap_or(0), message)
    }

    fn expected(&self, item: &Item, what: &str) -> ManifestError {
        self.err_item(
            item.span(),
            format!("expected {what}, found {}", item.type_name()),
        )
    }

    fn schema(&self, root: &toml_edit::Table) -> Result<Option<Schema>, ManifestError> {
        if let Some(item) = root.get("schema-version") {
            let s = item.as_str().ok_or_else(|| {
                self.expected(item, "`schema-version` to be a string like \"1.10.0\"")
            })?;
            let parts: Vec<Option<u32>> = s.split('.').map(|p| p.parse().ok()).collect();
            return match parts.as_slice() {
                [Some(a), Some(b), Some(c)] => Ok(Some(Schema::Semver(*a, *b, *c))),
                _ => Err(self.err_item(
                    item.span(),
                    format!("expected `schema-version` like \"1.10.0\", found \"{s}\""),
                )),
            };
        }
        if let Some(item) = root.get("version") {
            return match item.as_integer() {
                Some(1) => Ok(Some(Schema::V1)),
                _ => Err(self.expected(item, "`version = 1`")),
            };
        }
        Ok(None)
    }

    fn string(&self, item: &Item, what: &str) -> Result<String, ManifestError> {
        item.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.expected(item, &format!("`{what}` to be a string")))
    }

    fn string_list(&self, item: &Item, what: &str) -> Result<Vec<String>, ManifestError> {
        let array = item
            .as_array()
            .ok_or_else(|| self.expected(item, &format!("`{what}` to be a list of strings")))?;
        array
            .iter()
            .map(|v| match v.as_str() {
                Some(s) => Ok(s.to_string()),
                None => Err(self.err_item(
                    v.span(),
                    format!("expected `{what}` to hold strings, found {}", v.type_name()),
                )),
            })
            .collect()
    }

    fn table<'i>(&self, item: &'i Item, what: &str) -> Result<&'i dyn TableLike, ManifestError> {
        item.as_table_like()
            .ok_or_else(|| self.expected(item, &format!("`{what}` to be a table")))
    }

    fn check_keys(
        &self,
        table: &dyn TableLike,
        allowed: &[&str],
        what: &str,
    ) -> Result<(), ManifestError> {
        for (key, item) in table.iter() {
            if !allowed.contains(&key) {
                let suggestion = nearest(key, allowed.iter().copied())
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                return Err(self.err_item(
                    table.key(key).and_then(|k| k.span()).or(item.span()),
                    format!(
                        "unknown key `{key}` in {what}{suggestion}; expected one of {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn install(&self, item: &Item) -> Result<Vec<InstallEntry>, ManifestError> {
        let table = self.table(item, "install")?;
        let mut out = Vec::new();
        for (id, entry) in table.iter() {
            let what = format!("install.{id}");
            let t = self.table(entry, &what)?;
            self.check_keys(t, INSTALL_KEYS, &format!("`[{what}]`"))?;
            let get = |k: &str| -> Result<Option<String>, ManifestError> {
                t.get(k)
                    .map(|i| self.string(i, &format!("{what}.{k}")))
                    .transpose()
            };
            let pkg_path = get("pkg-path")?;
            let flake = get("flake")?;
            let store_path = get("store-path")?;
            let sources = [&pkg_path, &flake, &store_path]
                .iter()
                .filter(|s| s.is_some())
                .count();
            if sources != 1 {
                return Err(self.err_item(
                    entry.span().or(table.key(id).and_then(|k| k.span())),
                    format!("`{what}` needs exactly one of pkg-path, flake or store-path"),
                ));
            }
            // Each form takes only its own keys (Flox's descriptors deny unknown fields).
            let (form, allowed): (&str, &[&str]) = if store_path.is_some() {
                ("a store-path", &["store-path", "systems", "priority"])
            } else if flake.is_some() {
                ("a flake", &["flake", "systems", "priority", "outputs"])
            } else {
                (
                    "a catalog",
                    &[
                        "pkg-path",
                        "pkg-group",
                        "version",
                        "systems",
                        "priority",
                        "outputs",
                    ],
                )
            };
            if let Some((k, v)) = t.iter().find(|(k, _)| !allowed.contains(k)) {
                return Err(self.err_item(
                    v.span().or(t.key(k).and_then(|k| k.span())),
                    format!(
                        "`{what}.{k}` does not belong in {form} descriptor, which takes {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if let Some(p) = t.get("priority")
                && p.as_integer().is_none()
            {
                return Err(self.expected(p, &format!("`{what}.priority` to be an integer")));
            }
            if let Some(o) = t.get("outputs")
                && o.as_str() != Some("all")
                && o.as_array().is_none()
            {
                return Err(self.expected(o, &format!("`{what}.outputs` to be \"all\" or a list")));
            }
            let systems = t
                .get("systems")
                .map(|s| self.string_list(s, &format!("{what}.systems")))
                .transpose()?;
            out.push(InstallEntry {
                id: id.to_string(),
                pkg_path,
                pkg_group: get("pkg-group")?,
                version: get("version")?,
                flake,
                store_path,
                systems,
            });
        }
        Ok(out)
    }

    fn builds(&self, item: &Item) -> Result<Vec<Build>, ManifestError> {
        let table = self.table(item, "build")?;
        let mut out = Vec::new();
        for (name, entry) in table.iter() {
            let what = format!("build.{name}");
            let t = self.table(entry, &what)?;
            self.check_keys(t, BUILD_KEYS, &format!("`[{what}]`"))?;
            let command = match t.get("command") {
                Some(c) => self.string(c, &format!("{what}.command"))?,
                None => {
                    return Err(self.err_item(
                        table.key(name).and_then(|k| k.span()).or(entry.span()),
                        format!("`[{what}]` has no `command`; expected a bash script string"),
                    ));
                }
            };
            let version = match t.get("version") {
                None => None,
                Some(v) => Some(self.version(v, &what)?),
            };
            let description = t
                .get("description")
                .map(|d| self.string(d, &format!("{what}.description")))
                .transpose()?;
            let sandbox = match t.get("sandbox") {
                None => None,
                Some(s) => Some(match s.as_str() {
                    Some("off") => Sandbox::Off,
                    Some("pure") => Sandbox::Pure,
                    Some("warn") => Sandbox::Warn,
                    Some("enforce") => Sandbox::Enforce,
                    _ => {
                        return Err(self.err_item(
                            s.span(),
                            format!("expected `{what}.sandbox` to be one of \"off\", \"pure\", \"warn\", \"enforce\""),
                        ));
                    }
                }),
            };
            let license = match t.get("license") {
                None => Vec::new(),
                Some(l) if l.is_str() => {
                    return Err(self.err_item(
                        l.span(),
                        format!(
                            "expected `{what}.license` to be a list of SPDX ids, e.g. [\"MIT\"], found a plain string"
                        ),
                    ));
                }
                Some(l) => self.string_list(l, &format!("{what}.license"))?,
            };
            let list = |k: &str| -> Result<Vec<String>, ManifestError> {
                t.get(k)
                    .map(|i| self.string_list(i, &format!("{what}.{k}")))
                    .transpose()
                    .map(Option::unwrap_or_default)
            };
            out.push(Build {
                name: name.to_string(),
                command,
                version,
                description,
                sandbox,
                sandbox_allow: list("sandbox-allow")?,
                license,
                runtime_packages: list("runtime-packages")?,
            });
        }
        Ok(out)
    }

    fn version(&self, item: &Item, what: &str) -> Result<VersionSpec, ManifestError> {
        if let Some(s) = item.as_str() {
            return Ok(VersionSpec::Literal(s.to_string()));
        }
        let expected = || {
            self.expected(
                item,
                &format!(
                    "`{what}.version` to be a string, {{ file = \"…\" }} or {{ command = \"…\" }}"
                ),
            )
        };
        let t = item.as_table_like().ok_or_else(expected)?;
        let keys: Vec<&str> = t.iter().map(|(k, _)| k).collect();
        match keys.as_slice() {
            ["file"] => Ok(VersionSpec::File(self.string(
                t.get("file").expect("key listed"),
                &format!("{what}.version.file"),
            )?)),
            ["command"] => Ok(VersionSpec::Command(self.string(
                t.get("command").expect("key listed"),
                &format!("{what}.version.command"),
            )?)),
            _ => Err(expected()),
        }
    }

    fn services(&self, services: &dyn TableLike) -> Result<(), ManifestError> {
        for (name, svc) in services.iter() {
            let Some(t) = svc.as_table_like() else {
                return Err(self.expected(svc, &format!("`services.{name}` to be a table")));
            };
            let daemon = t.get("is-daemon").and_then(Item::as_bool) == Some(true);
            let has_shutdown = t
                .get("shutdown")
                .and_then(Item::as_table_like)
                .and_then(|s| s.get("command"))
                .is_some();
            if daemon && !has_shutdown {
                return Err(self.err_item(
                    t.key("is-daemon").and_then(|k| k.span()),
                    format!(
                        "service `{name}` has is-daemon = true but no `shutdown.command`; Flox needs one to stop it"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("m.toml"), text.to_string())
    }

    #[test]
    fn line_col_counts_characters() {
        let t = "a\nbé = x\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 2), (2, 1));
        // 'x' is after "bé = " (é is two bytes)
        let x = t.find('x').unwrap();
        assert_eq!(line_col(t, x), (2, 6));
    }

    #[test]
    fn reads_builds_and_version_forms() {
        let m = parse(
            r#"version = 1
[install]
hello.pkg-path = "hello"
[build.a]
command = "true"
version = "1.0"
description = "A"
license = ["MIT"]
[build.b]
command = "true"
version.file = "VERSION"
[build.c]
command = "true"
version = { command = "echo 2" }
runtime-packages = ["hello"]
"#,
        )
        .unwrap();
        assert_eq!(m.schema, Some(Schema::V1));
        assert_eq!(m.install.len(), 1);
        assert_eq!(m.install[0].pkg_path.as_deref(), Some("hello"));
        let names: Vec<_> = m.builds.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            m.builds[0].version,
            Some(VersionSpec::Literal("1.0".into()))
        );
        assert_eq!(m.builds[0].license, ["MIT"]);
        assert_eq!(
            m.builds[1].version,
            Some(VersionSpec::File("VERSION".into()))
        );
        assert_eq!(
            m.builds[2].version,
            Some(VersionSpec::Command("echo 2".into()))
        );
        assert_eq!(m.builds[2].runtime_packages, ["hello"]);
    }

    #[test]
    fn unknown_build_key_names_line_and_column() {
        let err = parse("version = 1\n[build.a]\ncommand = \"x\"\n  colour = 1\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("m.toml:4:3: unknown key `colour`"), "{msg}");
    }

    #[test]
    fn license_as_string_is_explained() {
        let err =
            parse("version = 1\n[build.a]\ncommand = \"x\"\nlicense = \"MIT\"\n").unwrap_err();
        assert!(err.to_string().contains("m.toml:4:11"), "{err}");
        assert!(err.to_string().contains("list of SPDX ids"), "{err}");
    }

    #[test]
    fn missing_command_is_an_error() {
        let err = parse("version = 1\n[build.a]\nversion = \"1\"\n").unwrap_err();
        assert!(err.to_string().contains("has no `command`"), "{err}");
    }

    #[test]
    fn typo_suggestions() {
        assert_eq!(
            nearest("helo", ["hello", "world"].into_iter()),
            Some("hello")
        );
        assert_eq!(nearest("zzzzzz", ["hello", "world"].into_iter()), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
