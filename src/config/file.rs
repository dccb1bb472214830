//! The config file: read, and edited with its comments kept (`toml_edit`), written atomically
//! with mode 0600 since it may hold a token: `save_login`, `add_trusted_endpoint`, `[tokens]`
//! keyed by catalog URL.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, value};

use super::{
    CONFIG_KEYS, CatalogLocation, ConfigEntry, ConfigError, TOKENS_TABLE, TRUSTED_ENDPOINTS,
    parse_catalog_location,
};

/// The config file, editable with comments preserved.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub(super) path: PathBuf,
    pub(super) doc: DocumentMut,
    pub(super) text: String,
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
    pub(super) fn line_of(&self, table: &str, name: &str) -> Option<usize> {
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

pub(super) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
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
pub(super) fn line_in(text: &str, table: &str, name: &str) -> Option<usize> {
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
