//! Settings, highest first: flags ([`Overrides`]); environment (`PUBDECK_CATALOG`,
//! `PUBDECK_TOKEN`, `PUBDECK_ORG`, `PUBDECK_SIGNING_KEY`, `PUBDECK_DATA_DIR`, `PUBDECK_STORE`);
//! the project file (`pubdeck.toml` in the environment's directory or a parent up to the
//! repository root: keys `catalog`, `org`, `signing-key`, `store`, `data-dir`, relative paths
//! from its own directory); `$XDG_CONFIG_HOME/pubdeck/config.toml` (the same keys, `token`,
//! `[tokens]` by catalog URL, `trusted-endpoints`); defaults (embedded catalog
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

use std::io::Write as _;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, value};

/// Keys the config file understands.
pub const CONFIG_KEYS: &[&str] = &[
    "catalog",
    "token",
    "org",
    "signing-key",
    "store",
    "data-dir",
];

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
        let catalog_source = sources
            .borrow()
            .iter()
            .find(|(k, _)| *k == "catalog")
            .map_or(Source::Default, |(_, s)| *s);
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

/// The config file, editable with comments preserved.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    doc: DocumentMut,
    text: String,
}

/// The tables of the config file whose entries a face reads (`[keys]`, `[theme]`).
pub const CONFIG_TABLES: &[&str] = &["keys", "theme", TOKENS_TABLE];

impl ConfigFile {
    /// Loads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let doc: DocumentMut =
            text.parse()
                .map_err(|e: toml_edit::TomlError| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.message().to_string(),
                })?;
        for key in CONFIG_KEYS {
            if let Some(item) = doc.get(key)
                && item.as_str().is_none()
            {
                let at = line_in(&text, "", key).map_or(String::new(), |l| format!("line {l}: "));
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!("{at}`{key}` must be a string"),
                });
            }
        }
        if let Some(item) = doc.get(TRUSTED_ENDPOINTS) {
            let ok = item
                .as_array()
                .is_some_and(|a| a.iter().all(|v| v.as_str().is_some()));
            if !ok {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!(
                        "`{TRUSTED_ENDPOINTS}` must be a list of endpoint URLs, e.g. [\"http://127.0.0.1:9000\"]"
                    ),
                });
            }
        }
        let file = ConfigFile {
            path: path.to_path_buf(),
            doc,
            text,
        };
        for table in CONFIG_TABLES {
            let Some(item) = file.doc.get(table) else {
                continue;
            };
            let Some(t) = item.as_table_like() else {
                let at = file
                    .line_of("", table)
                    .map_or(String::new(), |l| format!("line {l}: "));
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!(
                        "{at}`{table}` must be a table: [{table}] with name = \"value\" lines"
                    ),
                });
            };
            for (name, value) in t.iter() {
                let ok = value.as_str().is_some()
                    || value
                        .as_array()
                        .is_some_and(|a| !a.is_empty() && a.iter().all(|v| v.as_str().is_some()));
                if !ok {
                    let at = file
                        .line_of(table, name)
                        .map_or(String::new(), |l| format!("line {l}: "));
                    return Err(ConfigError::Parse {
                        path: path.to_path_buf(),
                        message: format!(
                            "{at}[{table}] {name} must be a string (or a list of strings), e.g. {name} = \"P\""
                        ),
                    });
                }
            }
        }
        Ok(file)
    }

    /// The entries of table `table` (`[keys]`), in file order, with their lines.
    pub fn entries(&self, table: &str) -> Vec<ConfigEntry> {
        let Some(t) = self.doc.get(table).and_then(Item::as_table_like) else {
            return Vec::new();
        };
        t.iter()
            .map(|(name, value)| ConfigEntry {
                name: name.to_string(),
                values: match value.as_array() {
                    Some(a) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                    None => value.as_str().map(str::to_string).into_iter().collect(),
                },
                line: self.line_of(table, name),
            })
            .collect()
    }

    /// The line (1-based) of `name = …` in `[table]` (or of `table.name = …`).
    fn line_of(&self, table: &str, name: &str) -> Option<usize> {
        line_in(&self.text, table, name)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A list of strings (empty when unset).
    pub fn get_list(&self, key: &str) -> Vec<String> {
        self.doc
            .get(key)
            .and_then(Item::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A string value.
    pub fn get(&self, key: &str) -> Option<String> {
        self.doc.get(key).and_then(Item::as_str).map(str::to_string)
    }

    /// Sets a value (keeps the rest of the file as it was).
    pub fn set(&mut self, key: &str, val: &str) {
        self.doc[key] = value(val);
    }

    /// Appends `val` to the list `key`, creating the list (a top-level key, rendered before
    /// any `[table]`) when there is none. [`ConfigFile::load`] made sure an existing `key` is
    /// a list.
    pub fn push_to_list(&mut self, key: &str, val: &str) {
        match self.doc.get_mut(key).and_then(Item::as_array_mut) {
            Some(list) => list.push(val),
            None => {
                let mut list = toml_edit::Array::new();
                list.push(val);
                self.doc.insert(key, value(list));
            }
        }
    }

    /// Sets `name = val` in `[table]`, creating the table.
    pub fn set_in(&mut self, table: &str, name: &str, val: &str) {
        if !self.doc.get(table).is_some_and(Item::is_table_like) {
            self.doc.insert(table, toml_edit::table());
        }
        self.doc[table][name] = value(val);
    }

    /// Removes a value.
    pub fn remove(&mut self, key: &str) {
        self.doc.remove(key);
    }

    /// Writes the file atomically (temp file + rename) with mode 0600.
    pub fn save(&self) -> Result<(), ConfigError> {
        let err = |source| ConfigError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(err)?;
        let mut staged = crate::fsutil::Staged::beside(&self.path).map_err(err)?;
        staged
            .file()
            .write_all(self.doc.to_string().as_bytes())
            .map_err(err)?;
        staged.set_mode(0o600).map_err(err)?;
        staged
            .commit(&self.path, crate::fsutil::Replace::Yes)
            .map_err(err)
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// The line (1-based) of `name = …` in `[table]` of `text` (or of `table.name = …`).
fn line_in(text: &str, table: &str, name: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(h) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            current = h.trim().to_string();
            continue;
        }
        let Some((k, _)) = l.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"');
        let hit = (current == table && k == name)
            || (current.is_empty() && k == format!("{table}.{name}"));
        if hit {
            return Some(i + 1);
        }
    }
    None
}

/// Trusts `endpoint` with the AWS credentials of the environment: adds it to
/// `trusted-endpoints` in `config_file` (created, mode 0600, when missing), keeping every other
/// line and comment. Returns `false`, writing nothing, when the file trusts it already.
pub fn add_trusted_endpoint(
    config_file: &Path,
    endpoint: &crate::store::Endpoint,
) -> Result<bool, ConfigError> {
    let mut file = ConfigFile::load(config_file)?;
    if crate::store::endpoint_is_trusted(endpoint, &file.get_list(TRUSTED_ENDPOINTS)) {
        return Ok(false);
    }
    file.push_to_list(TRUSTED_ENDPOINTS, &endpoint.to_string());
    file.save()?;
    Ok(true)
}

/// Stores a catalog URL and its token in the config file (what `pubdeck login` does): the
/// catalog becomes the default and the token goes under `[tokens]`, keyed by that URL. A
/// token of the older form (`token = …`, for the file's previous catalog) moves under its own
/// catalog's key, so it stays with the catalog it was given for.
pub fn save_login(config_file: &Path, catalog: &str, token: &str) -> Result<(), ConfigError> {
    let mut file = ConfigFile::load(config_file)?;
    if let Some(old) = file.get("token") {
        if let Some(CatalogLocation::Service(url)) = file
            .get("catalog")
            .map(|c| parse_catalog_location(&c, None))
            && catalog_key(&url) != catalog_key(catalog)
        {
            file.set_in(TOKENS_TABLE, &catalog_key(&url), &old);
        }
        file.remove("token");
    }
    file.set("catalog", catalog);
    file.set_in(TOKENS_TABLE, &catalog_key(catalog), token);
    file.save()
}

/// The key a catalog URL's token is stored under: the URL without surrounding blanks or
/// trailing slashes.
pub fn catalog_key(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// The project file for `start`: [`PROJECT_FILE`] in `start` or the nearest parent, up to the
/// repository root (a directory holding `.git`).
pub fn find_project_file(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    for dir in start.ancestors() {
        let f = dir.join(PROJECT_FILE);
        if f.is_file() {
            return Some(f);
        }
        if dir.join(".git").exists() {
            return None;
        }
    }
    None
}

/// A project file: [`PROJECT_KEYS`] only, each a string.
struct ProjectFile {
    file: ConfigFile,
    dir: PathBuf,
}

impl ProjectFile {
    fn load(path: &Path) -> Result<ProjectFile, ConfigError> {
        let file = ConfigFile::load(path)?;
        for (key, item) in file.doc.iter() {
            let at = file
                .line_of("", key)
                .map_or(String::new(), |l| format!("line {l}: "));
            let refuse = |message: String| ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("{at}{message}"),
            };
            if key == "token" || key == TOKENS_TABLE {
                return Err(refuse(format!(
                    "a project file may not hold a token: everyone who clones the repository \
                     reads it; remove `{key}` and run `pubdeck login URL` to keep your token in \
                     your own config"
                )));
            }
            if key == TRUSTED_ENDPOINTS {
                return Err(refuse(format!(
                    "a project file may not trust endpoints with your AWS credentials; move \
                     `{key}` to your own config file"
                )));
            }
            if !PROJECT_KEYS.contains(&key) {
                return Err(refuse(format!(
                    "unknown key `{key}`; a project file holds {}",
                    PROJECT_KEYS.join(", ")
                )));
            }
            if item.as_str().is_none() {
                return Err(refuse(format!("`{key}` must be a string")));
            }
        }
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(ProjectFile { file, dir })
    }

    /// `key`'s value; a relative path (`signing-key`, `data-dir`, a catalog file) is taken from
    /// the project file's directory.
    fn get(&self, key: &str, home: Option<&str>) -> Option<String> {
        let v = non_empty(self.file.get(key))?;
        let is_path = match key {
            "signing-key" | "data-dir" => true,
            "catalog" => !(v.starts_with("http://") || v.starts_with("https://")),
            _ => false,
        };
        if !is_path {
            return Some(v);
        }
        let bare = v.strip_prefix("file://").unwrap_or(&v);
        let p = expand_home(bare, home);
        Some(if p.is_absolute() {
            p.display().to_string()
        } else {
            self.dir.join(p).display().to_string()
        })
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_and_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap().to_string();
        let env = env_of(&[("HOME", &home)]);
        let s = Settings::resolve_with(&Overrides::default(), &env).unwrap();
        let data = dir.path().join(".local/share/pubdeck");
        assert_eq!(
            s.catalog,
            CatalogLocation::Embedded(data.join("catalog.sqlite"))
        );
        assert_eq!(
            s.store,
            format!("file://{}", data.join("store-cache").display())
        );
        assert_eq!(
            s.config_file,
            dir.path().join(".config/pubdeck/config.toml")
        );
        assert_eq!(s.token, None);

        // config file < env < flags
        let cfg = dir.path().join(".config/pubdeck/config.toml");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(
            &cfg,
            "# mine\ncatalog = \"http://127.0.0.1:1\"\ntoken = \"t-file\"\norg = \"fileorg\"\nsigning-key = \"~/k\"\n",
        )
        .unwrap();
        let s = Settings::resolve_with(&Overrides::default(), &env).unwrap();
        assert_eq!(
            s.catalog,
            CatalogLocation::Service("http://127.0.0.1:1".into())
        );
        assert_eq!(s.token.as_deref(), Some("t-file"));
        assert_eq!(s.signing_key, Some(dir.path().join("k")));
        let env2 = env_of(&[
            ("HOME", &home),
            ("PUBDECK_ORG", "envorg"),
            ("PUBDECK_TOKEN", "t-env"),
        ]);
        let s = Settings::resolve_with(&Overrides::default(), &env2).unwrap();
        assert_eq!(s.org.as_deref(), Some("envorg"));
        assert_eq!(s.token.as_deref(), Some("t-env"));
        let o = Overrides {
            org: Some("flagorg".into()),
            catalog: Some("/tmp/c.sqlite".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve_with(&o, &env2).unwrap();
        assert_eq!(s.org.as_deref(), Some("flagorg"));
        assert_eq!(s.catalog, CatalogLocation::Embedded("/tmp/c.sqlite".into()));
        assert!(!format!("{s:?}").contains("t-env"));
    }

    #[test]
    fn save_keeps_comments_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("sub/config.toml");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(&cfg, "# keep me\norg = \"a\"\n").unwrap();
        save_login(&cfg, "http://127.0.0.1:9", "pdk_x").unwrap();
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(text.contains("# keep me"));
        assert!(
            text.contains("[tokens]\n\"http://127.0.0.1:9\" = \"pdk_x\""),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(&cfg, "token = 5\n").unwrap();
        assert!(ConfigFile::load(&cfg).is_err());
    }

    /// `catalog create` on a terminal, answered y: the endpoint goes into `trusted-endpoints`
    /// once, as a top-level key even after a `[table]`, and the rest of the file stays as it
    /// was, comments included; the file stays 0600.
    #[test]
    fn add_trusted_endpoint_adds_once_and_keeps_the_rest() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pubdeck/config.toml");
        let ep = |s: &str| crate::store::Endpoint::parse(s).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let resolve = |p: &Path| {
            Settings::resolve_with(
                &Overrides {
                    config_file: Some(p.to_path_buf()),
                    ..Overrides::default()
                },
                &|k| (k == "HOME").then(|| "/home/u".to_string()),
            )
            .unwrap()
        };

        // No file yet: created private, with the one line.
        assert!(add_trusted_endpoint(&cfg, &ep("HTTP://127.0.0.1:9000/")).unwrap());
        assert_eq!(
            std::fs::read_to_string(&cfg).unwrap(),
            "trusted-endpoints = [\"http://127.0.0.1:9000\"]\n"
        );
        assert_eq!(mode(&cfg), 0o600);
        // The same endpoint, spelt otherwise: nothing to do, nothing written.
        let before = std::fs::read_to_string(&cfg).unwrap();
        assert!(!add_trusted_endpoint(&cfg, &ep("http://127.0.0.1:9000")).unwrap());
        assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);

        // A file with comments and a table, no list yet: the key lands at the top level.
        let mine = "# my pubdeck\norg = \"myorg\" # the team\n\n[keys]\n# publish with P\npublish = \"P\"\n";
        std::fs::write(&cfg, mine).unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(add_trusted_endpoint(&cfg, &ep("http://127.0.0.1:9000")).unwrap());
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert_eq!(
            text,
            "# my pubdeck\norg = \"myorg\" # the team\ntrusted-endpoints = [\"http://127.0.0.1:9000\"]\n\n[keys]\n# publish with P\npublish = \"P\"\n"
        );
        assert_eq!(mode(&cfg), 0o600);
        let s = resolve(&cfg);
        assert_eq!(s.trusted_endpoints, ["http://127.0.0.1:9000"]);
        assert_eq!(s.keys.len(), 1);

        // A list already there (with its comment): extended, once.
        std::fs::write(
            &cfg,
            "# mine\ntrusted-endpoints = [\"https://minio.lan\"] # the lab\n",
        )
        .unwrap();
        assert!(add_trusted_endpoint(&cfg, &ep("http://127.0.0.1:9001")).unwrap());
        assert!(!add_trusted_endpoint(&cfg, &ep("http://127.0.0.1:9001")).unwrap());
        assert_eq!(
            std::fs::read_to_string(&cfg).unwrap(),
            "# mine\ntrusted-endpoints = [\"https://minio.lan\", \"http://127.0.0.1:9001\"] # the lab\n"
        );
        assert_eq!(
            resolve(&cfg).trusted_endpoints,
            ["https://minio.lan", "http://127.0.0.1:9001"]
        );

        // A config it cannot read is left alone.
        std::fs::write(&cfg, "trusted-endpoints = \"http://127.0.0.1:1\"\n").unwrap();
        assert!(add_trusted_endpoint(&cfg, &ep("http://127.0.0.1:9001")).is_err());
        assert_eq!(
            std::fs::read_to_string(&cfg).unwrap(),
            "trusted-endpoints = \"http://127.0.0.1:1\"\n"
        );
    }

    #[test]
    fn keys_and_theme_tables_carry_their_lines() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.toml");
        std::fs::write(
            &p,
            "org = \"myorg\"\n\n[keys]\npublish = \"P\"\n# comment\ndown = [\"j\", \"down\"]\n\n[theme]\naccent = \"#ff8800\"\n",
        )
        .unwrap();
        let f = ConfigFile::load(&p).unwrap();
        let keys = f.entries("keys");
        assert_eq!(
            keys,
            vec![
                ConfigEntry {
                    name: "publish".into(),
                    values: vec!["P".into()],
                    line: Some(4)
                },
                ConfigEntry {
                    name: "down".into(),
                    values: vec!["j".into(), "down".into()],
                    line: Some(6)
                },
            ]
        );
        assert_eq!(f.entries("theme")[0].line, Some(9));
        std::fs::write(&p, "[keys]\npublish = 3\n").unwrap();
        let e = ConfigFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("line 2: [keys] publish must be a string"), "{e}");
        std::fs::write(&p, "keys = \"P\"\n").unwrap();
        let e = ConfigFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("line 1: `keys` must be a table"), "{e}");
    }

    /// A workspace: a git repository `repo/` whose environment is `repo/env`, a home with a
    /// user config, and the environment used to resolve.
    struct Workspace {
        _tmp: tempfile::TempDir,
        home: String,
        repo: PathBuf,
        user_config: PathBuf,
    }

    fn workspace(project: &str, user: &str) -> Workspace {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("env/.flox")).unwrap();
        if !project.is_empty() {
            std::fs::write(repo.join(PROJECT_FILE), project).unwrap();
        }
        let user_config = home.join(".config/pubdeck/config.toml");
        std::fs::create_dir_all(user_config.parent().unwrap()).unwrap();
        std::fs::write(&user_config, user).unwrap();
        Workspace {
            home: home.display().to_string(),
            _tmp: tmp,
            repo,
            user_config,
        }
    }

    impl Workspace {
        fn resolve(&self, flags: Overrides, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
            let mut pairs = vec![("HOME", self.home.as_str())];
            pairs.extend_from_slice(env);
            let o = Overrides {
                project_dir: Some(self.repo.join("env")),
                ..flags
            };
            Settings::resolve_with(&o, &env_of(&pairs))
        }
    }

    /// flags > environment > project file > user config > defaults, each named as the source;
    /// the project file is found from the environment up to the repository root, and its
    /// relative paths are its own directory's.
    #[test]
    fn project_file_precedence_and_paths() {
        let w = workspace(
            "catalog = \"cat/catalog.sqlite\"\norg = \"projorg\"\nsigning-key = \"keys/k.key\"\n",
            "org = \"userorg\"\ndata-dir = \"~/userdata\"\nstore = \"file:///srv/store\"\n",
        );
        let s = w.resolve(Overrides::default(), &[]).unwrap();
        assert_eq!(s.project_file, Some(w.repo.join(PROJECT_FILE)));
        assert_eq!(
            s.catalog,
            CatalogLocation::Embedded(w.repo.join("cat/catalog.sqlite"))
        );
        assert_eq!(s.org.as_deref(), Some("projorg"));
        assert_eq!(s.signing_key, Some(w.repo.join("keys/k.key")));
        assert_eq!(s.data_dir, Path::new(&w.home).join("userdata"));
        assert_eq!(s.source("catalog"), Source::Project);
        assert_eq!(s.source("org"), Source::Project);
        assert_eq!(s.source("data-dir"), Source::File);
        assert_eq!(s.source("store"), Source::File);
        let s = w
            .resolve(Overrides::default(), &[("PUBDECK_ORG", "envorg")])
            .unwrap();
        assert_eq!(s.org.as_deref(), Some("envorg"));
        assert_eq!(s.source("org"), Source::Env("PUBDECK_ORG"));
        let flags = Overrides {
            org: Some("flagorg".into()),
            ..Default::default()
        };
        let s = w.resolve(flags, &[("PUBDECK_ORG", "envorg")]).unwrap();
        assert_eq!(s.org.as_deref(), Some("flagorg"));
        assert_eq!(s.source("org"), Source::Flag);
        // Outside the repository (the search stops at its root), no project file.
        let s = Settings::resolve_with(
            &Overrides {
                project_dir: Some(w.repo.parent().unwrap().to_path_buf()),
                ..Default::default()
            },
            &env_of(&[("HOME", &w.home)]),
        )
        .unwrap();
        assert_eq!(s.project_file, None);
        assert_eq!(s.org.as_deref(), Some("userorg"));
    }

    /// A project file holds no secrets and no trust: a token, `[tokens]`, trusted endpoints
    /// and unknown keys are refused with their line and the fix.
    #[test]
    fn project_file_refuses_secrets_trust_and_unknown_keys() {
        for (text, want) in [
            (
                "org = \"a\"\ntoken = \"pdk_x\"\n",
                "line 2: a project file may not hold a token",
            ),
            (
                "[tokens]\n\"http://x\" = \"pdk_x\"\n",
                "may not hold a token",
            ),
            (
                "trusted-endpoints = [\"http://127.0.0.1:9000\"]\n",
                "line 1: a project file may not trust endpoints",
            ),
            (
                "colour = \"red\"\n",
                "line 1: unknown key `colour`; a project file holds catalog, org",
            ),
            ("org = 5\n", "line 1: `org` must be a string"),
        ] {
            let w = workspace(text, "");
            let e = w
                .resolve(Overrides::default(), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains(PROJECT_FILE), "{e}");
        }
    }

    /// A token goes only to the catalog it was given for: a project file naming another
    /// catalog does not receive `PUBDECK_TOKEN` or the config file's `token`; a `[tokens]`
    /// entry for the project's catalog, or the user naming the same catalog, does.
    #[test]
    fn a_token_goes_only_to_its_catalog() {
        let evil = "catalog = \"http://127.0.0.1:9/\"\n";
        let user = "catalog = \"http://127.0.0.1:8787\"\ntoken = \"pdk_mine\"\n";
        let w = workspace(evil, user);
        let s = w.resolve(Overrides::default(), &[]).unwrap();
        assert_eq!(
            s.catalog,
            CatalogLocation::Service("http://127.0.0.1:9/".into())
        );
        assert_eq!(s.token, None);
        assert_eq!(
            s.withheld_token,
            Some(WithheldToken {
                source: Source::File,
                belongs_to: Some("http://127.0.0.1:8787/".into())
            })
        );
        assert!(!format!("{s:?}").contains("pdk_mine"));
        let s = w
            .resolve(Overrides::default(), &[("PUBDECK_TOKEN", "pdk_env")])
            .unwrap();
        assert_eq!(s.token, None);
        assert_eq!(
            s.withheld_token.unwrap().source,
            Source::Env("PUBDECK_TOKEN")
        );
        // Named by the user too (the environment wins over the project file, and the token
        // belongs to it).
        let s = w
            .resolve(
                Overrides::default(),
                &[
                    ("PUBDECK_TOKEN", "pdk_env"),
                    ("PUBDECK_CATALOG", "http://127.0.0.1:9"),
                ],
            )
            .unwrap();
        assert_eq!(s.token.as_deref(), Some("pdk_env"));
        // Keyed by the project's catalog URL (trailing slash aside): sent.
        let keyed = format!("{user}[tokens]\n\"http://127.0.0.1:9\" = \"pdk_for_9\"\n");
        let w = workspace(evil, &keyed);
        let s = w.resolve(Overrides::default(), &[]).unwrap();
        assert_eq!(s.token.as_deref(), Some("pdk_for_9"));
        assert_eq!(s.withheld_token, None);
        // Without a project file, the user's catalog and its token, as before.
        let w = workspace("", &keyed);
        let s = w.resolve(Overrides::default(), &[]).unwrap();
        assert_eq!(
            s.catalog,
            CatalogLocation::Service("http://127.0.0.1:8787".into())
        );
        assert_eq!(s.token.as_deref(), Some("pdk_mine"));
        // A project naming the user's own catalog gets the user's token.
        let w = workspace("catalog = \"http://127.0.0.1:8787\"\n", user);
        let s = w.resolve(Overrides::default(), &[]).unwrap();
        assert_eq!(s.token.as_deref(), Some("pdk_mine"));
    }

    /// `login` keys the token by its catalog; an older `token = …` moves under its own
    /// catalog's key rather than following the new default catalog.
    #[test]
    fn login_keys_tokens_by_catalog() {
        let w = workspace(
            "",
            "catalog = \"http://127.0.0.1:1\"\ntoken = \"pdk_old\"\n",
        );
        save_login(&w.user_config, "http://127.0.0.1:2/", "pdk_new").unwrap();
        let text = std::fs::read_to_string(&w.user_config).unwrap();
        assert!(!text.contains("\ntoken ="), "{text}");
        let s = w.resolve(Overrides::default(), &[]).unwrap();
        assert_eq!(
            s.catalog,
            CatalogLocation::Service("http://127.0.0.1:2/".into())
        );
        assert_eq!(s.token.as_deref(), Some("pdk_new"));
        let s = w
            .resolve(
                Overrides {
                    catalog: Some("http://127.0.0.1:1".into()),
                    ..Default::default()
                },
                &[],
            )
            .unwrap();
        assert_eq!(s.token.as_deref(), Some("pdk_old"));
    }
}
