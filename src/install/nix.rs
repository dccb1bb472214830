//! The local Nix store, as install uses it: whether Nix can take paths here, what it already
//! holds (with the NAR hash it registered), and importing a verified closure with
//! `nix copy --from file://…`.

use std::path::Path;
use std::process::Stdio;

use crate::nix::sign::PublicKey;
use crate::nix::{Sha256Hash, StorePath};

/// Why talking to Nix failed.
#[derive(Debug, thiserror::Error)]
pub enum NixError {
    #[error("cannot run nix: {0}")]
    Spawn(std::io::Error),
    #[error("`nix {args}` failed: {message}")]
    Failed { args: String, message: String },
    #[error("cannot read what `nix path-info` printed for {path}: {message}")]
    BadAnswer { path: String, message: String },
}

/// The local Nix store, reachable through the `nix` command.
#[derive(Debug, Clone)]
pub struct NixStore {
    program: String,
}

/// Settings for every `nix` call: the new CLI, no substituters (nothing is fetched from
/// anywhere but the verified local copy).
const OPTIONS: &[&str] = &[
    "--option",
    "experimental-features",
    "nix-command",
    "--option",
    "substituters",
    "",
];

impl NixStore {
    /// The local Nix store when `nix` runs and this user can add paths to it (root, or a
    /// running daemon). `PUBDECK_NIX=0` turns it off (pubdeck's own store is used), `=1` on.
    pub fn detect() -> Option<NixStore> {
        NixStore::choose(match std::env::var("PUBDECK_NIX").as_deref() {
            Ok("0") => Some(false),
            Ok("1") => Some(true),
            _ => None,
        })
    }

    /// The Nix store as `choice` says (`Settings::nix`), detected when it says nothing.
    pub fn choose(choice: Option<bool>) -> Option<NixStore> {
        match choice {
            Some(false) => return None,
            Some(true) => return Some(NixStore::new("nix")),
            None => {}
        }
        let runs = std::process::Command::new("nix")
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let daemon = Path::new("/nix/var/nix/daemon-socket/socket").exists();
        (runs && (root || daemon)).then(|| NixStore::new("nix"))
    }

    pub fn new(program: &str) -> NixStore {
        NixStore {
            program: program.to_string(),
        }
    }

    async fn run(&self, args: &[&str]) -> Result<Vec<u8>, NixError> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(OPTIONS)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        // Nix dies with pubdeck, even by SIGKILL: no import goes on behind a killed install.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let out = cmd.output().await.map_err(NixError::Spawn)?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let message = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no message")
            .trim_start_matches("error: ")
            .to_string();
        Err(NixError::Failed {
            args: args.join(" "),
            message,
        })
    }

    /// The NAR hash Nix registered for `path`, or `None` when it is not a valid path here.
    pub async fn nar_hash(&self, path: &StorePath) -> Result<Option<Sha256Hash>, NixError> {
        let p = path.to_string();
        if !Path::new(&p).exists() {
            return Ok(None);
        }
        let out = match self.run(&["path-info", "--json", &p]).await {
            Ok(o) => o,
            Err(NixError::Failed { message, .. }) if message.contains("is not valid") => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let bad = |message: String| NixError::BadAnswer {
            path: p.clone(),
            message,
        };
        let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| bad(e.to_string()))?;
        let Some(entry) = v.as_array().and_then(|a| a.first()) else {
            return Ok(None);
        };
        if entry.get("valid").and_then(|v| v.as_bool()) == Some(false) {
            return Ok(None);
        }
        let h = entry
            .get("narHash")
            .and_then(|h| h.as_str())
            .ok_or_else(|| bad("no narHash".into()))?;
        parse_nar_hash(h)
            .map(Some)
            .ok_or_else(|| bad(format!("narHash {h:?}")))
    }

    /// Imports `paths` and their closures from the binary cache at `cache_dir` into the Nix
    /// store, trusting `keys` for this call only. Nix adds each path atomically, the
    /// references of a path before it.
    pub async fn import(
        &self,
        cache_dir: &Path,
        paths: &[&StorePath],
        keys: &[PublicKey],
    ) -> Result<(), NixError> {
        let from = format!("file://{}", cache_dir.display());
        let keys = keys
            .iter()
            .map(|k| k.to_nix_string())
            .collect::<Vec<_>>()
            .join(" ");
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        let mut args = vec![
            "--option",
            "trusted-public-keys",
            &keys,
            "copy",
            "--from",
            &from,
        ];
        args.extend(paths.iter().map(String::as_str));
        self.run(&args).await.map(|_| ())
    }
}

/// `sha256-<base64>` (what `nix path-info --json` prints) or `sha256:<nix32>`.
fn parse_nar_hash(h: &str) -> Option<Sha256Hash> {
    use base64::Engine as _;
    if let Some(b64) = h.strip_prefix("sha256-") {
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        return Some(Sha256Hash(bytes.try_into().ok()?));
    }
    Sha256Hash::parse(h).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nar_hashes_in_both_notations() {
        let h = Sha256Hash::of(b"x");
        use base64::Engine as _;
        let sri = format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(h.0)
        );
        assert_eq!(parse_nar_hash(&sri), Some(h));
        assert_eq!(parse_nar_hash(&h.to_string()), Some(h));
        assert_eq!(parse_nar_hash("md5-abc"), None);
    }
}
