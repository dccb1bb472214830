//! The project file (`pubdeck.toml` in the environment's directory or a parent, up to the
//! repository root): its keys only, relative paths from its own directory.

use std::path::{Path, PathBuf};

use super::file::ConfigFile;
use super::{
    ConfigError, PROJECT_FILE, PROJECT_KEYS, TOKENS_TABLE, TRUSTED_ENDPOINTS, expand_home,
    non_empty,
};

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
pub(super) struct ProjectFile {
    pub(super) file: ConfigFile,
    pub(super) dir: PathBuf,
}

impl ProjectFile {
    pub(super) fn load(path: &Path) -> Result<ProjectFile, ConfigError> {
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
    pub(super) fn get(&self, key: &str, home: Option<&str>) -> Option<String> {
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
