//! Settings, highest first: flags ([`Overrides`]); environment (`PUBDECK_CATALOG`,
//! `PUBDECK_TOKEN`, `PUBDECK_ORG`, `PUBDECK_SIGNING_KEY`, `PUBDECK_DATA_DIR`, `PUBDECK_STORE`,
//! `PUBDECK_MULTIPART_THRESHOLD`);
//! the project file (`pubdeck.toml` in the environment's directory or a parent up to the
//! repository root: keys `catalog`, `org`, `signing-key`, `store`, `data-dir`, relative paths
//! from its own directory); `$XDG_CONFIG_HOME/pubdeck/config.toml` (the same keys, `token`,
//! `[tokens]` by catalog URL, `trusted-endpoints`, `multipart-threshold`); defaults (embedded catalog
//! `<data>/catalog.sqlite`, store `file://<data>/store-cache`, data dir `$XDG_DATA_HOME/pubdeck`).
//!
//! A repository is not trusted with secrets: a project file holds no token and trusts no
//! endpoint, and a token goes only to the catalog it was given for. `[tokens]` entries are
//! keyed by catalog URL (as cargo keys credentials by registry); a token without a catalog
//! (`PUBDECK_TOKEN`, the config file's `token`) belongs to the catalog named outside the
//! project file, and is withheld from another one a project file names.
//!
//! The config file is parsed and edited with `toml_edit` (comments survive) and written
//! atomically with mode 0600, since it may hold a token.

mod file;
mod project;

pub use file::{CONFIG_TABLES, ConfigFile, add_trusted_endpoint, catalog_key, save_login};
pub use project::find_project_file;

use std::path::{Path, PathBuf};

use project::ProjectFile;

/// Keys the config file understands.
pub const CONFIG_KEYS: &[&str] = &[
    "catalog",
    "token",
    "org",
    "signing-key",
    "store",
    "data-dir",
    MULTIPART_THRESHOLD,
];

/// The config key (and `PUBDECK_MULTIPART_THRESHOLD`): S3 uploads up to this size go in one
/// streamed PUT, larger ones multipart (resumable, parts in parallel). A property of the
/// user's stores, so never from a project file.
pub const MULTIPART_THRESHOLD: &str = "multipart-threshold";

/// The project settings file, in the environment's directory (beside `.flox/`) or a parent
/// up to the repository root.
pub const PROJECT_FILE: &str = "pubdeck.toml";

/// Keys a project file may hold: where the workspace's catalog, org, key, store and data are.
pub const PROJECT_KEYS: &[&str] = &["catalog", "org", "signing-key", "store", "data-dir"];

/// The table of the user's config file that holds tokens by catalog URL.
pub const TOKENS_TABLE: &str = "tokens";

/// The config key listing S3 endpoints trusted with the user's AWS credentials.
pub const TRUSTED_ENDPOINTS: &str = crate::store::TRUSTED_ENDPOINTS_KEY;

/// Settings problems.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No home directory to derive default paths from.
    #[error("cannot find the home directory; set HOME or XDG_CONFIG_HOME and XDG_DATA_HOME")]
    NoHome,
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has a wrongly typed key.
    #[error("{path} is not a valid pubdeck config: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An environment variable holds a value its setting cannot take.
    #[error("{var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The config file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Values given on the command line (highest priority). `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--catalog`.
    pub catalog: Option<String>,
    /// A token from a flag or a test (never a CLI flag in practice: it would show in `ps`).
    pub token: Option<String>,
    /// `--org`.
    pub org: Option<String>,
    /// `--signing-key`.
    pub signing_key: Option<PathBuf>,
    /// `--store`.
    pub store: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// Use this config file instead of the XDG one.
    pub config_file: Option<PathBuf>,
    /// Where to look for the project file ([`PROJECT_FILE`]), upwards to the repository root:
    /// the environment's directory (`--dir`); [`Settings::resolve`] uses the working directory
    /// when this is `None`, [`Settings::resolve_with`] reads no project file.
    pub project_dir: Option<PathBuf>,
}

/// Where the catalog is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogLocation {
    /// The `pubdeck serve` service at this `http(s)://` URL.
    Service(String),
    /// A local SQLite catalog file.
    Embedded(PathBuf),
}

/// Resolved settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The catalog to use.
    pub catalog: CatalogLocation,
    /// Token for the service.
    pub token: Option<String>,
    /// Default organisation (catalog name).
    pub org: Option<String>,
    /// Secret signing key file.
    pub signing_key: Option<PathBuf>,
    /// Store URL for new catalogs and the embedded default.
    pub store: String,
    /// pubdeck's data directory.
    pub data_dir: PathBuf,
    /// The config file consulted (it may not exist).
    pub config_file: PathBuf,
    /// S3 endpoints (besides AWS's) trusted with credentials from the environment or a
    /// profile: `trusted-endpoints = ["http://127.0.0.1:9000"]` in the config file.
    pub trusted_endpoints: Vec<String>,
    /// S3 uploads up to this size go in one PUT (`None`: the store's default);
    /// [`MULTIPART_THRESHOLD`].
    pub multipart_threshold: Option<u64>,
    /// Where each setting came from, by its config-file key.
    pub sources: Vec<(&'static str, Source)>,
    /// `[keys]` of the config file: key bindings of the workbench (checked by the workbench).
    pub keys: Vec<ConfigEntry>,
    /// `[theme]` of the config file: the workbench's colours (checked by the workbench).
    pub theme: Vec<ConfigEntry>,
    /// The project file read, if any.
    pub project_file: Option<PathBuf>,
    /// A token that was not sent because it belongs to another catalog than the one the
    /// project file names: where it came from and the catalog it belongs to (`None`: no
    /// catalog was named for it outside the project file).
    pub withheld_token: Option<WithheldToken>,
    /// `PUBDECK_NIX`: `Some(false)` installs into pubdeck's own store, `Some(true)` into the
    /// Nix store; unset, the Nix store when this user can add paths to it.
    pub nix: Option<bool>,
}

/// One `name = "value"` (or `name = ["a", "b"]`) of a config table, with its line (1-based),
/// so a face that rejects it can say where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub values: Vec<String>,
    pub line: Option<usize>,
}

/// A token not sent to the project's catalog (see [`Settings::withheld_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithheldToken {
    /// Where the token came from.
    pub source: Source,
    /// The catalog it belongs to, redacted.
    pub belongs_to: Option<String>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Env(&'static str),
    /// The project file ([`PROJECT_FILE`]).
    Project,
    /// The config file.
    File,
    /// pubdeck's default.
    Default,
    /// Not set.
    Unset,
}

impl Settings {
    /// Where the setting with config-file key `key` came from.
    pub fn source(&self, key: &str) -> Source {
        self.sources
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(Source::Unset, |(_, s)| *s)
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("catalog", &self.catalog)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("org", &self.org)
            .field("signing_key", &self.signing_key)
            .field("store", &self.store)
            .field("data_dir", &self.data_dir)
            .field("config_file", &self.config_file)
            .field("trusted_endpoints", &self.trusted_endpoints)
            .field("multipart_threshold", &self.multipart_threshold)
            .finish()
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn expand_home(p: &str, home: Option<&str>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => Path::new(h).join(rest),
        _ => PathBuf::from(p),
    }
}

/// The config file path: `$XDG_CONFIG_HOME/pubdeck/config.toml` or `~/.config/pubdeck/config.toml`.
pub fn default_config_path(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    if let Some(x) = non_empty(env("XDG_CONFIG_HOME")) {
        return Ok(Path::new(&x).join("pubdeck").join("config.toml"));
    }
    let home = non_empty(env("HOME")).ok_or(ConfigError::NoHome)?;
    Ok(Path::new(&home).join(".config/pubdeck/config.toml"))
}

/// The default data directory: `$XDG_DATA_HOME/pubdeck` or `~/.local/share/pubdeck`.
pub fn default_data_dir(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    if let Some(x) = non_empty(env("XDG_DATA_HOME")) {
        return Ok(Path::new(&x).join("pubdeck"));
    }
    let home = non_empty(env("HOME")).ok_or(ConfigError::NoHome)?;
    Ok(Path::new(&home).join(".local/share/pubdeck"))
}

/// Parses a catalog setting: `http(s)://…` is the service, anything else a file path.
pub fn parse_catalog_location(text: &str, home: Option<&str>) -> CatalogLocation {
    let t = text.trim();
    if t.starts_with("http://") || t.starts_with("https://") {
        CatalogLocation::Service(t.to_string())
    } else {
        CatalogLocation::Embedded(expand_home(t.strip_prefix("file://").unwrap_or(t), home))
    }
}

impl Settings {
    /// Resolves settings from `overrides`, the process environment and the config file.
    pub fn resolve(overrides: &Overrides) -> Result<Settings, ConfigError> {
        let mut o = overrides.clone();
        if o.project_dir.is_none() {
            o.project_dir = std::env::current_dir().ok();
        }
        Self::resolve_with(&o, &|k| std::env::var(k).ok())
    }

    /// Like [`Settings::resolve`] with an explicit environment (for tests).
    pub fn resolve_with(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let home = non_empty(env("HOME"));
        let config_file = match &overrides.config_file {
            Some(p) => p.clone(),
            None => default_config_path(env)?,
        };
        let file = ConfigFile::load(&config_file)?;
        let project_file = overrides.project_dir.as_deref().and_then(find_project_file);
        let project = match &project_file {
            Some(p) => Some(ProjectFile::load(p)?),
            None => None,
        };
        let sources = std::cell::RefCell::new(Vec::new());
        let pick = |flag: Option<String>, var: &'static str, key: &'static str| {
            let (value, source) = if let Some(v) = non_empty(flag) {
                (Some(v), Source::Flag)
            } else if let Some(v) = non_empty(env(var)) {
                (Some(v), Source::Env(var))
            } else if let Some(v) = project.as_ref().and_then(|p| p.get(key, home.as_deref())) {
                (Some(v), Source::Project)
            } else if let Some(v) = non_empty(file.get(key)) {
                (Some(v), Source::File)
            } else {
                (None, Source::Default)
            };
            sources.borrow_mut().push((key, source));
            value
        };
        let data_dir = match pick(
            overrides.data_dir.as_ref().map(|p| p.display().to_string()),
            "PUBDECK_DATA_DIR",
            "data-dir",
        ) {
            Some(d) => expand_home(&d, home.as_deref()),
            None => default_data_dir(env)?,
        };
        let catalog = match pick(overrides.catalog.clone(), "PUBDECK_CATALOG", "catalog") {
            Some(c) => parse_catalog_location(&c, home.as_deref()),
            None => CatalogLocation::Embedded(data_dir.join("catalog.sqlite")),
        };
        let store = pick(overrides.store.clone(), "PUBDECK_STORE", "store")
            .unwrap_or_else(|| format!("file://{}", data_dir.join("store-cache").display()));
        let signing_key = pick(
            overrides
                .signing_key
                .as_ref()
                .map(|p| p.display().to_string()),
            "PUBDECK_SIGNING_KEY",
            "signing-key",
        )
        .map(|p| expand_home(&p, home.as_deref()));
        let org = pick(overrides.org.clone(), "PUBDECK_ORG", "org");
        let source_of = |key: &str| {
            sources
                .borrow()
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(Source::Default, |(_, s)| *s)
        };
        let multipart_threshold =
            match pick(None, "PUBDECK_MULTIPART_THRESHOLD", MULTIPART_THRESHOLD) {
                None => None,
                Some(v) => Some(crate::store::parse_size(&v).map_err(|why| {
                    match source_of(MULTIPART_THRESHOLD) {
                        Source::Env(var) => ConfigError::Env { var, message: why },
                        _ => ConfigError::Parse {
                            path: config_file.clone(),
                            message: format!("`{MULTIPART_THRESHOLD}`: {why}"),
                        },
                    }
                })?),
            };
        let catalog_source = source_of("catalog");
        let (token, token_source, withheld_token) = pick_token(TokenInputs {
            flag: non_empty(overrides.token.clone()),
            env: non_empty(env("PUBDECK_TOKEN")),
            file: &file,
            catalog: &catalog,
            catalog_source,
            // The catalog named outside the project file, which an unkeyed token belongs to.
            user_catalog: non_empty(env("PUBDECK_CATALOG"))
                .or_else(|| non_empty(file.get("catalog"))),
        });
        sources.borrow_mut().push(("token", token_source));
        let trusted_endpoints = file.get_list(TRUSTED_ENDPOINTS);
        let nix = match env("PUBDECK_NIX").as_deref() {
            Some("0") => Some(false),
            Some("1") => Some(true),
            _ => None,
        };
        // Trust is decided on parsed endpoints: an entry that does not parse is an error here,
        // not an endpoint that silently trusts nothing.
        for entry in &trusted_endpoints {
            crate::store::Endpoint::parse(entry).map_err(|why| ConfigError::Parse {
                path: config_file.clone(),
                message: format!("{TRUSTED_ENDPOINTS}: {why}"),
            })?;
        }
        let mut sources = sources.into_inner();
        // Optional settings nobody gave are unset, not defaulted.
        for (key, source) in &mut sources {
            if *source == Source::Default && matches!(*key, "token" | "org" | "signing-key") {
                *source = Source::Unset;
            }
        }
        sources.push((
            TRUSTED_ENDPOINTS,
            if trusted_endpoints.is_empty() {
                Source::Unset
            } else {
                Source::File
            },
        ));
        Ok(Settings {
            catalog,
            token,
            org,
            signing_key,
            store,
            data_dir,
            keys: file.entries("keys"),
            theme: file.entries("theme"),
            config_file,
            trusted_endpoints,
            multipart_threshold,
            sources,
            project_file,
            withheld_token,
            nix,
        })
    }

    /// How to open stores: with the endpoints the user trusts, and the file that says so
    /// (named when a store's endpoint is refused). Every command opens stores with these.
    pub fn store_open(&self) -> crate::store::OpenOptions {
        crate::store::OpenOptions {
            trusted_endpoints: self.trusted_endpoints.clone(),
            config_file: Some(self.config_file.clone()),
            multipart_threshold: self.multipart_threshold,
            ..Default::default()
        }
    }

    /// The catalog as records name it (`pubdeck.lock`, the audit outbox): the service's URL
    /// without secrets, or the local catalog file.
    pub fn catalog_label(&self) -> String {
        match &self.catalog {
            CatalogLocation::Service(url) => crate::store::redacted_url(url),
            CatalogLocation::Embedded(path) => path.display().to_string(),
        }
    }

    /// The local catalog used when none is configured: `<data dir>/catalog.sqlite`.
    pub fn default_catalog_file(&self) -> PathBuf {
        self.data_dir.join("catalog.sqlite")
    }

    /// The default database of `pubdeck serve`: `sqlite://<data>/service.sqlite`.
    /// Where interrupted uploads keep their resume journals (every face uses this one).
    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir.join("upload-journals")
    }

    /// Where publish remembers what each dependency of a closure became (`closure::Memo`).
    pub fn closure_memo_dir(&self) -> PathBuf {
        self.data_dir.join("closure-memo")
    }

    pub fn default_service_db(&self) -> String {
        format!(
            "sqlite://{}",
            self.data_dir.join("service.sqlite").display()
        )
    }
}

struct TokenInputs<'a> {
    flag: Option<String>,
    env: Option<String>,
    file: &'a ConfigFile,
    catalog: &'a CatalogLocation,
    catalog_source: Source,
    user_catalog: Option<String>,
}

/// The token for the resolved catalog, its source, and a token withheld from it.
///
/// A token given for this run (`Overrides::token`) is used as given. Otherwise the catalog's
/// own `[tokens]` entry; a token without a catalog (`PUBDECK_TOKEN`, `token = …`) only when
/// the catalog was not named by the project file, or the project names the same catalog as
/// the user did.
fn pick_token(i: TokenInputs<'_>) -> (Option<String>, Source, Option<WithheldToken>) {
    if let Some(t) = i.flag {
        return (Some(t), Source::Flag, None);
    }
    let file_token = i.file.get("token");
    // The first token given without a catalog: PUBDECK_TOKEN, then the file's `token`.
    let unkeyed = [
        (i.env.clone(), Source::Env("PUBDECK_TOKEN")),
        (non_empty(file_token.clone()), Source::File),
    ]
    .into_iter()
    .find_map(|(t, source)| t.map(|t| (t, source)));
    let CatalogLocation::Service(url) = i.catalog else {
        // A local catalog file takes no token.
        let source = match (&i.env, file_token) {
            (Some(_), _) => Source::Env("PUBDECK_TOKEN"),
            (None, Some(_)) => Source::File,
            _ => Source::Unset,
        };
        return (unkeyed.map(|(t, _)| t), source, None);
    };
    let here = catalog_key(url);
    let keyed = i
        .file
        .entries(TOKENS_TABLE)
        .into_iter()
        .find(|e| catalog_key(&e.name) == here)
        .and_then(|e| e.values.into_iter().next())
        .filter(|t| !t.trim().is_empty());
    let belongs = i.catalog_source != Source::Project
        || i.user_catalog
            .as_deref()
            .is_some_and(|c| catalog_key(c) == here);
    match (unkeyed, keyed) {
        // An explicit PUBDECK_TOKEN comes before the file's entry for this catalog.
        (Some((t, source @ Source::Env(_))), _) if belongs => (Some(t), source, None),
        (_, Some(t)) => (Some(t), Source::File, None),
        (Some((t, source)), None) if belongs => (Some(t), source, None),
        (Some((_, source)), None) => {
            let withheld = WithheldToken {
                source,
                belongs_to: i.user_catalog.as_deref().map(crate::store::redacted_url),
            };
            (None, Source::Unset, Some(withheld))
        }
        (None, None) => (None, Source::Unset, None),
    }
}

#[cfg(test)]
mod tests;
