//! What the local Nix store registered for its paths: NarHash, NarSize, references and CA,
//! read from Nix's own database (read-only SQLite), or from `nix path-info --json
//! --recursive` when the database cannot be opened (a daemon install it may not read).
//! Nothing remote is asked: the references of a dependency come from here, never from a
//! store or a scan of its bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::nix::{Sha256Hash, StorePath};

/// One valid path, as Nix registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub path: StorePath,
    pub nar_hash: Sha256Hash,
    pub nar_size: u64,
    /// Its references, itself included when it refers to itself.
    pub references: Vec<StorePath>,
    /// `fixed:r:sha256:…` and the like, when Nix asserts the path is content-addressed.
    pub ca: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NixDbError {
    #[error("cannot read what Nix registered for {paths}: {message}")]
    Unreadable { paths: String, message: String },
    #[error("{0} is not a valid path of the local Nix store")]
    NotValid(String),
}

/// Where to read from.
#[derive(Debug, Clone)]
pub struct NixDb {
    /// Nix's database (`$NIX_STATE_DIR/db/db.sqlite`).
    pub sqlite: PathBuf,
    /// The `nix` program, asked when the database cannot be read.
    pub nix: PathBuf,
}

impl Default for NixDb {
    fn default() -> NixDb {
        let state = std::env::var_os("NIX_STATE_DIR")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/nix/var/nix"));
        NixDb {
            sqlite: state.join("db/db.sqlite"),
            nix: PathBuf::from("nix"),
        }
    }
}

/// The closure of `roots`: every path they reach through Nix's references, roots included.
pub async fn closure_of(db: &NixDb, roots: &[StorePath]) -> Result<Vec<Registered>, NixDbError> {
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    let found = match from_sqlite(&db.sqlite, roots).await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(error = %e, "Nix's database is not readable here; asking nix path-info");
            from_path_info(&db.nix, roots).await?
        }
    };
    for r in roots {
        if !found.iter().any(|f| f.path == *r) {
            return Err(NixDbError::NotValid(r.to_string()));
        }
    }
    Ok(found)
}

fn unreadable(roots: &[StorePath], message: impl ToString) -> NixDbError {
    let mut paths: Vec<String> = roots.iter().take(3).map(|r| r.to_string()).collect();
    if roots.len() > 3 {
        paths.push(format!("{} more", roots.len() - 3));
    }
    NixDbError::Unreadable {
        paths: paths.join(", "),
        message: message.to_string(),
    }
}

/// One read-only query over Nix's database (a recursive walk of `Refs`).
async fn from_sqlite(file: &Path, roots: &[StorePath]) -> Result<Vec<Registered>, NixDbError> {
    use sqlx::ConnectOptions;
    use sqlx::Row;
    use sqlx::sqlite::SqliteConnectOptions;
    let err = |e: &dyn std::fmt::Display| unreadable(roots, format!("{}: {e}", file.display()));
    if !file.is_file() {
        return Err(err(&"no such file"));
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .create_if_missing(false)
        .foreign_keys(false)
        .busy_timeout(std::time::Duration::from_secs(10))
        .disable_statement_logging()
        .connect()
        .await
        .map_err(|e| err(&e))?;
    let placeholders = vec!["?"; roots.len()].join(",");
    let query = format!(
        "WITH RECURSIVE closure(id) AS ( \
           SELECT id FROM ValidPaths WHERE path IN ({placeholders}) \
           UNION SELECT r.reference FROM Refs r JOIN closure c ON r.referrer = c.id) \
         SELECT v.id, v.path, v.hash, v.narSize, v.ca, \
           (SELECT group_concat(w.path, ' ') FROM Refs r JOIN ValidPaths w ON w.id = r.reference \
             WHERE r.referrer = v.id) AS refs \
         FROM ValidPaths v JOIN closure c ON v.id = c.id"
    );
    let mut q = sqlx::query(&query);
    for r in roots {
        q = q.bind(r.to_string());
    }
    let rows = q.fetch_all(&mut conn).await.map_err(|e| err(&e))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let path: String = row.try_get("path").map_err(|e| err(&e))?;
        let hash: String = row.try_get("hash").map_err(|e| err(&e))?;
        let size: Option<i64> = row.try_get("narSize").map_err(|e| err(&e))?;
        let ca: Option<String> = row.try_get("ca").map_err(|e| err(&e))?;
        let refs: Option<String> = row.try_get("refs").map_err(|e| err(&e))?;
        let refs: Vec<&str> = refs
            .as_deref()
            .map(|r| r.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        out.push(registered(&path, &hash, size, &refs, ca).map_err(|e| err(&e))?);
    }
    Ok(out)
}

fn registered(
    path: &str,
    hash: &str,
    size: Option<i64>,
    refs: &[&str],
    ca: Option<String>,
) -> Result<Registered, String> {
    let path = StorePath::parse(path).map_err(|e| format!("{path}: {e}"))?;
    let nar_hash = Sha256Hash::parse_any(hash).map_err(|e| format!("{path}: {e}"))?;
    let nar_size = size
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| format!("{path}: no NarSize"))?;
    let mut references = refs
        .iter()
        .map(|r| StorePath::parse(r).map_err(|e| format!("{path}: reference {r}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    references.sort();
    references.dedup();
    Ok(Registered {
        path,
        nar_hash,
        nar_size,
        references,
        ca: ca.filter(|c| !c.is_empty()),
    })
}

/// `nix path-info --json --recursive` (its output is bounded by Nix, a local program).
async fn from_path_info(nix: &Path, roots: &[StorePath]) -> Result<Vec<Registered>, NixDbError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Info {
        path: String,
        nar_hash: Option<String>,
        nar_size: Option<i64>,
        #[serde(default)]
        references: Vec<String>,
        ca: Option<String>,
        valid: Option<bool>,
    }
    let mut cmd = tokio::process::Command::new(nix);
    cmd.args([
        "--extra-experimental-features",
        "nix-command",
        "path-info",
        "--json",
        "--recursive",
    ])
    .args(roots.iter().map(|r| r.to_string()))
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .map_err(|e| unreadable(roots, format!("cannot run {}: {e}", nix.display())))?;
    if !out.status.success() {
        return Err(unreadable(
            roots,
            format!(
                "nix path-info failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let infos: Vec<Info> = serde_json::from_slice(&out.stdout)
        .map_err(|e| unreadable(roots, format!("nix path-info --json: {e}")))?;
    let mut seen = HashMap::new();
    for i in infos {
        if i.valid == Some(false) {
            return Err(NixDbError::NotValid(i.path));
        }
        let hash = i.nar_hash.unwrap_or_default();
        let refs: Vec<&str> = i.references.iter().map(String::as_str).collect();
        let r = registered(&i.path, &hash, i.nar_size, &refs, i.ca)
            .map_err(|e| unreadable(roots, e))?;
        seen.insert(r.path.clone(), r);
    }
    Ok(seen.into_values().collect())
}
