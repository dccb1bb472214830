//! Settings, highest first: flags ([`Overrides`]); environment (`PUBDECK_CATALOG`,
//! `PUBDECK_TOKEN`, `PUBDECK_ORG`, `PUBDECK_SIGNING_KEY`, `PUBDECK_DATA_DIR`, `PUBDECK_STORE`);
//! `$XDG_CONFIG_HOME/pubdeck/config.toml` (keys `catalog`, `token`, `org`, `signing-key`,
//! `store`, `data-dir`); defaults (embedded catalog `<data>/catalog.sqlite`, store
//! `file://<data>/store-cache`, data dir `$XDG_DATA_HOME/pubdeck`).
//!
//! The config file is parsed and edited with `toml_edit` (comments survive) and written
//! atomically with mode 0600, since it may hold a token.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, value};

use crate::catalog::{AnyCatalog, CatalogClient, CatalogResult, EmbeddedCatalog};

/// Keys the config file understands.
pub const CONFIG_KEYS: &[&str] = &[
    "catalog",
    "token",
    "org",
    "signing-key",
    "store",
    "data-dir",
];

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

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Env(&'static str),
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
        Self::resolve_with(overrides, &|k| std::env::var(k).ok())
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
        let sources = std::cell::RefCell::new(Vec::new());
        let pick = |flag: Option<String>, var: &'static str, key: &'static str| {
            let (value, source) = if let Some(v) = non_empty(flag) {
                (Some(v), Source::Flag)
            } else if let Some(v) = non_empty(env(var)) {
                (Some(v), Source::Env(var))
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
        let token = pick(overrides.token.clone(), "PUBDECK_TOKEN", "token");
        let org = pick(overrides.org.clone(), "PUBDECK_ORG", "org");
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
            CatalogLocation::Service(url) => crate::text::redacted_url(url),
            CatalogLocation::Embedded(path) => path.display().to_string(),
        }
    }

    /// Opens the configured catalog: a client for a service URL, else the embedded file
    /// (created on first use).
    pub async fn open_catalog(&self) -> CatalogResult<AnyCatalog> {
        if let CatalogLocation::Embedded(path) = &self.catalog
            && !path.exists()
            && *path != self.default_catalog_file()
        {
            // A path that names nothing is a mistake, not a wish for a new catalog there.
            return Err(crate::catalog::CatalogError::NoCatalogFile(path.clone()));
        }
        self.open_catalog_creating().await
    }

    /// [`Settings::open_catalog`], creating a local catalog file wherever it is named
    /// (`catalog create`).
    pub async fn open_catalog_creating(&self) -> CatalogResult<AnyCatalog> {
        match &self.catalog {
            CatalogLocation::Service(url) => Ok(AnyCatalog::Remote(CatalogClient::new(
                url,
                self.token.clone(),
            )?)),
            CatalogLocation::Embedded(path) => {
                Ok(AnyCatalog::Embedded(EmbeddedCatalog::open(path).await?))
            }
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
pub const CONFIG_TABLES: &[&str] = &["keys", "theme"];

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
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!("`{key}` must be a string"),
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
        let mut current = String::new();
        for (i, line) in self.text.lines().enumerate() {
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

/// Stores a catalog URL and token in the config file (what `pubdeck login` does).
pub fn save_login(config_file: &Path, catalog: &str, token: &str) -> Result<(), ConfigError> {
    let mut file = ConfigFile::load(config_file)?;
    file.set("catalog", catalog);
    file.set("token", token);
    file.save()
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
        assert!(text.contains("token = \"pdk_x\""));
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
}
