//! `.narinfo` files: the exact layout Nix writes, a strict parser, fingerprints and signatures.
//!
//! Writing is byte for byte Nix's layout. Parsing reads every narinfo Nix 2.8 reads (its
//! `NarInfo` constructor), whoever wrote it (`nix copy`, attic, cachix): FileHash and FileSize
//! may be missing (the NAR hash still proves the contents), Compression defaults to `bzip2`
//! when absent, `Deriver: unknown-deriver` means none, hashes may be nix32, base16, base64 or
//! SRI, References may come in any order and are kept sorted and unique, and keys it does not
//! know (also with `-` or `_` in them) are kept in [`NarInfo::extra`] and written back last.
//! It refuses what Nix refuses (no StorePath, URL or NarHash, a NarSize of 0, a bad hash or
//! store path) and, stricter than Nix, any syntax but one `Key: value` per line (exactly one
//! space after the colon, `\n` line ends, no CR, no blank lines, a final newline).

use std::fmt::{self, Write as _};

use thiserror::Error;

use crate::nix::Compression;
use crate::nix::sign::{self, KeyError, PublicKey, SecretKey, Signature, VerifyError};
use crate::nix::{Sha256Hash, StorePath, StorePathError};

/// The parsed contents of a `.narinfo` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarInfo {
    pub store_path: StorePath,
    /// Relative URL of the compressed NAR, e.g. `nar/<nix32 FileHash>.nar.zst`.
    pub url: String,
    pub compression: Compression,
    /// SHA-256 of the compressed file (every narinfo pubdeck writes has it; Nix's may not).
    pub file_hash: Option<Sha256Hash>,
    pub file_size: Option<u64>,
    /// SHA-256 of the uncompressed NAR.
    pub nar_hash: Sha256Hash,
    pub nar_size: u64,
    /// Store paths referenced by the contents (written as sorted, unique base names).
    pub references: Vec<StorePath>,
    pub deriver: Option<StorePath>,
    pub system: Option<String>,
    pub sigs: Vec<Signature>,
    /// Content address, e.g. `fixed:r:sha256:<nix32>` for a `source` path.
    pub ca: Option<String>,
    /// Keys this parser does not know, in file order.
    pub extra: Vec<(String, String)>,
}

/// Why a narinfo was rejected or could not be verified.
#[derive(Debug, Error)]
pub enum NarInfoError {
    #[error("narinfo line {line}: {problem}")]
    Syntax { line: usize, problem: String },
    #[error("narinfo does not end with a newline")]
    NoFinalNewline,
    #[error("narinfo is missing the required {0} field")]
    Missing(&'static str),
    #[error("narinfo says NarSize: 0, which no NAR has")]
    ZeroNarSize,
    #[error("narinfo line {line}: {key} appears more than once")]
    Duplicate { line: usize, key: String },
    #[error("narinfo line {line}: invalid {key}: {problem}")]
    Field {
        line: usize,
        key: &'static str,
        problem: String,
    },
    #[error("narinfo for {path}: {source}")]
    Verify {
        path: StorePath,
        #[source]
        source: VerifyError,
    },
}

fn field_err(line: usize, key: &'static str, e: impl fmt::Display) -> NarInfoError {
    NarInfoError::Field {
        line,
        key,
        problem: e.to_string(),
    }
}

/// The `CA` value Nix gives a NAR-hashed ("recursive") fixed-output/`source` path.
pub fn ca_recursive_sha256(nar_hash: &Sha256Hash) -> String {
    format!("fixed:r:{nar_hash}")
}

impl NarInfo {
    /// The string signatures cover (see [`sign::fingerprint`]).
    pub fn fingerprint(&self) -> String {
        sign::fingerprint(
            &self.store_path,
            &self.nar_hash,
            self.nar_size,
            &self.references,
        )
    }

    /// Adds a signature by `key` (replacing an earlier one by the same key name).
    pub fn sign(&mut self, key: &SecretKey) {
        let sig = key.sign(self.fingerprint().as_bytes());
        self.sigs.retain(|s| s.key_name() != key.name());
        self.sigs.push(sig);
    }

    /// Verifies the signatures against `trusted` keys; returns the name of the key that signed.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<String, NarInfoError> {
        sign::verify_signatures(self.fingerprint().as_bytes(), &self.sigs, trusted).map_err(
            |source| NarInfoError::Verify {
                path: self.store_path.clone(),
                source,
            },
        )
    }

    /// Most bytes a reader takes of the compressed file before giving up: one more than its
    /// FileSize; without one, one more than the NAR could take compressed by any method Nix
    /// uses (their worst case adds well under an eighth, plus headers).
    pub fn compressed_limit(&self) -> u64 {
        match self.file_size {
            Some(n) => n.saturating_add(1),
            None => self
                .nar_size
                .saturating_add(self.nar_size / 8)
                .saturating_add(64 * 1024 + 1),
        }
    }

    /// The `<hash part>.narinfo` file name.
    pub fn file_name(&self) -> String {
        format!("{}.narinfo", self.store_path.hash_part())
    }

    /// Parses a narinfo strictly (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, NarInfoError> {
        if !text.ends_with('\n') {
            return Err(NarInfoError::NoFinalNewline);
        }
        let mut b = Builder::default();
        for (i, line) in text[..text.len() - 1].split('\n').enumerate() {
            let ln = i + 1;
            let syntax = |problem: &str| NarInfoError::Syntax {
                line: ln,
                problem: problem.to_owned(),
            };
            if line.contains('\r') {
                return Err(syntax("contains a carriage return (CR)"));
            }
            if line.is_empty() {
                return Err(syntax("is empty"));
            }
            let (key, value) = line
                .split_once(": ")
                .ok_or_else(|| syntax("is not of the form \"Key: value\""))?;
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return Err(syntax("has an invalid key"));
            }
            if value.starts_with(' ') || (key != "References" && value.is_empty()) {
                return Err(syntax(
                    "must have exactly one space after the colon and a value",
                ));
            }
            b.field(ln, key, value)?;
        }
        b.finish()
    }
}

#[derive(Default)]
struct Builder {
    store_path: Option<StorePath>,
    url: Option<String>,
    compression: Option<Compression>,
    file_hash: Option<Sha256Hash>,
    file_size: Option<u64>,
    nar_hash: Option<Sha256Hash>,
    nar_size: Option<u64>,
    references: Option<Vec<StorePath>>,
    deriver: Option<StorePath>,
    system: Option<String>,
    sigs: Vec<Signature>,
    ca: Option<String>,
    extra: Vec<(String, String)>,
}

fn set<T>(slot: &mut Option<T>, v: T, line: usize, key: &str) -> Result<(), NarInfoError> {
    if slot.is_some() {
        return Err(NarInfoError::Duplicate {
            line,
            key: key.to_owned(),
        });
    }
    *slot = Some(v);
    Ok(())
}

fn parse_size(line: usize, key: &'static str, v: &str) -> Result<u64, NarInfoError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || (v.len() > 1 && v.starts_with('0'))
    {
        return Err(field_err(
            line,
            key,
            format!("{v:?} is not a decimal number"),
        ));
    }
    v.parse().map_err(|e| field_err(line, key, e))
}

impl Builder {
    fn field(&mut self, ln: usize, key: &str, v: &str) -> Result<(), NarInfoError> {
        let sp = |k: &'static str, v: &str| -> Result<StorePath, NarInfoError> {
            StorePath::parse(v).map_err(|e: StorePathError| field_err(ln, k, e))
        };
        let hash =
            |k: &'static str, v: &str| Sha256Hash::parse_any(v).map_err(|e| field_err(ln, k, e));
        match key {
            "StorePath" => set(&mut self.store_path, sp("StorePath", v)?, ln, key),
            "URL" => {
                if v.contains(char::is_whitespace) {
                    return Err(field_err(ln, "URL", "contains whitespace"));
                }
                set(&mut self.url, v.to_owned(), ln, key)
            }
            "Compression" => {
                let c = Compression::from_nix_name(v).ok_or_else(|| {
                    field_err(ln, "Compression", format!("unsupported method {v:?}"))
                })?;
                set(&mut self.compression, c, ln, key)
            }
            "FileHash" => set(&mut self.file_hash, hash("FileHash", v)?, ln, key),
            "FileSize" => set(&mut self.file_size, parse_size(ln, "FileSize", v)?, ln, key),
            "NarHash" => set(&mut self.nar_hash, hash("NarHash", v)?, ln, key),
            "NarSize" => set(&mut self.nar_size, parse_size(ln, "NarSize", v)?, ln, key),
            "References" => {
                // As Nix: separated by spaces, in any order (kept sorted and unique).
                let mut refs = v
                    .split(' ')
                    .filter(|r| !r.is_empty())
                    .map(|r| {
                        StorePath::from_base_name(r).map_err(|e| field_err(ln, "References", e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                refs.sort();
                refs.dedup();
                set(&mut self.references, refs, ln, key)
            }
            "Deriver" if v == "unknown-deriver" => Ok(()),
            "Deriver" => {
                let d = StorePath::from_base_name(v).map_err(|e| field_err(ln, "Deriver", e))?;
                set(&mut self.deriver, d, ln, key)
            }
            "System" => set(&mut self.system, v.to_owned(), ln, key),
            "Sig" => {
                self.sigs
                    .push(Signature::parse(v).map_err(|e: KeyError| field_err(ln, "Sig", e))?);
                Ok(())
            }
            "CA" => {
                if !(v.starts_with("fixed:") || v.starts_with("text:")) {
                    return Err(field_err(
                        ln,
                        "CA",
                        format!("{v:?} is not fixed:… or text:…"),
                    ));
                }
                set(&mut self.ca, v.to_owned(), ln, key)
            }
            _ => {
                if self.extra.iter().any(|(k, _)| k == key) {
                    return Err(NarInfoError::Duplicate {
                        line: ln,
                        key: key.to_owned(),
                    });
                }
                self.extra.push((key.to_owned(), v.to_owned()));
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<NarInfo, NarInfoError> {
        Ok(NarInfo {
            store_path: self.store_path.ok_or(NarInfoError::Missing("StorePath"))?,
            url: self.url.ok_or(NarInfoError::Missing("URL"))?,
            // Nix's default when a narinfo names none.
            compression: self.compression.unwrap_or(Compression::Bzip2),
            file_hash: self.file_hash,
            file_size: self.file_size,
            nar_hash: self.nar_hash.ok_or(NarInfoError::Missing("NarHash"))?,
            nar_size: match self.nar_size {
                None => return Err(NarInfoError::Missing("NarSize")),
                Some(0) => return Err(NarInfoError::ZeroNarSize),
                Some(n) => n,
            },
            references: self.references.unwrap_or_default(),
            deriver: self.deriver,
            system: self.system,
            sigs: self.sigs,
            ca: self.ca,
            extra: self.extra,
        })
    }
}

impl fmt::Display for NarInfo {
    /// Writes the narinfo in Nix's field order, each line ending in `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        writeln!(s, "StorePath: {}", self.store_path)?;
        writeln!(s, "URL: {}", self.url)?;
        writeln!(s, "Compression: {}", self.compression.nix_name())?;
        if let Some(h) = &self.file_hash {
            writeln!(s, "FileHash: {h}")?;
        }
        if let Some(n) = self.file_size {
            writeln!(s, "FileSize: {n}")?;
        }
        writeln!(s, "NarHash: {}", self.nar_hash)?;
        writeln!(s, "NarSize: {}", self.nar_size)?;
        let mut refs: Vec<&str> = self.references.iter().map(StorePath::base_name).collect();
        refs.sort_unstable();
        refs.dedup();
        writeln!(s, "References: {}", refs.join(" "))?;
        if let Some(d) = &self.deriver {
            writeln!(s, "Deriver: {}", d.base_name())?;
        }
        if let Some(sys) = &self.system {
            writeln!(s, "System: {sys}")?;
        }
        for sig in &self.sigs {
            writeln!(s, "Sig: {sig}")?;
        }
        if let Some(ca) = &self.ca {
            writeln!(s, "CA: {ca}")?;
        }
        for (k, v) in &self.extra {
            writeln!(s, "{k}: {v}")?;
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = "StorePath: /nix/store/zi4mpp16w48vdgiwlsngl034yxri4r9f-hello-1.0
URL: nar/14720lvy7lnjfdc032m3p21czxmrfbh542bf5gygjh187zajkly8.nar
Compression: none
FileHash: sha256:14720lvy7lnjfdc032m3p21czxmrfbh542bf5gygjh187zajkly8
FileSize: 73160
NarHash: sha256:14720lvy7lnjfdc032m3p21czxmrfbh542bf5gygjh187zajkly8
NarSize: 73160
References: 
Sig: myorg-1:o2NroKubDU3HxungJLzYrQ5ge1MIGX8lPaKD2fZv7md2n5GeQQT00ouPmuc5e3amXk26apYOg3w6vqbf+bOOCg==
CA: fixed:r:sha256:14720lvy7lnjfdc032m3p21czxmrfbh542bf5gygjh187zajkly8
";
    const SK1: &str = "myorg-1:6tDF/ay829tLhpzfOngP18RDyejcn3mhsvAPIWtCT4Ggau0YpYOyn86tne3vG2Oy4LKJsuT8FhjzY9jgRXX36Q==";

    #[test]
    fn round_trips_and_verifies_vector() {
        let ni = NarInfo::parse(VECTOR).unwrap();
        assert_eq!(ni.to_string(), VECTOR);
        assert_eq!(ni.file_name(), "zi4mpp16w48vdgiwlsngl034yxri4r9f.narinfo");
        assert_eq!(ni.compression, Compression::None);
        assert!(ni.references.is_empty());
        let sk = SecretKey::parse(SK1).unwrap();
        assert_eq!(ni.verify(&[sk.public()]).unwrap(), "myorg-1");
        let mut unsigned = ni.clone();
        unsigned.sigs.clear();
        unsigned.sign(&sk);
        assert_eq!(unsigned, ni);
        unsigned.sign(&sk);
        assert_eq!(unsigned.sigs.len(), 1);
        assert_eq!(
            ni.ca.as_deref(),
            Some(ca_recursive_sha256(&ni.nar_hash).as_str())
        );
    }

    #[test]
    fn tampering_breaks_verification() {
        let sk = SecretKey::parse(SK1).unwrap();
        let mut ni = NarInfo::parse(VECTOR).unwrap();
        ni.nar_size += 1;
        let e = ni.verify(&[sk.public()]).unwrap_err().to_string();
        assert!(
            e.contains("does not match") && e.contains("hello-1.0"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_kept() {
        let text = format!("{VECTOR}Future: yes\n");
        let ni = NarInfo::parse(&text).unwrap();
        assert_eq!(ni.extra, vec![("Future".to_owned(), "yes".to_owned())]);
        assert_eq!(ni.to_string(), text);
    }

    #[test]
    fn strict_syntax() {
        let cases: Vec<(String, &str)> = vec![
            (VECTOR.trim_end().to_owned(), "newline"),
            (VECTOR.replace('\n', "\r\n"), "carriage return"),
            (VECTOR.replace("URL: ", "URL:  "), "exactly one space"),
            (VECTOR.replace("URL: ", "URL:"), "Key: value"),
            (
                VECTOR.replace("NarSize: 73160\n", "NarSize: 73160\n\n"),
                "line 8: is empty",
            ),
            (VECTOR.replace("NarSize: 73160\n", ""), "NarSize"),
            (
                VECTOR.replace("FileHash: sha256:1", "FileHash: sha256:e"),
                "FileHash",
            ),
            (
                VECTOR.replace("FileSize: 73160", "FileSize: -1"),
                "FileSize",
            ),
            (
                VECTOR.replace("FileSize: 73160", "FileSize: 073160"),
                "FileSize",
            ),
            (
                VECTOR.replace("Compression: none", "Compression: lzip"),
                "lzip",
            ),
            (VECTOR.replace("NarSize: 73160", "NarSize: 0"), "NarSize: 0"),
            (
                VECTOR.replace("NarHash: sha256:", "NarHash: md5:"),
                "NarHash",
            ),
            (
                VECTOR.replace("NarHash: sha256:", "NarHash: sha256-"),
                "NarHash",
            ),
            (
                VECTOR.replace("StorePath: /nix/store/", "StorePath: /nix/stor/"),
                "StorePath",
            ),
            (VECTOR.replace("URL: ", "URL: a b"), "whitespace"),
            (
                VECTOR.replace("References: ", "References: nonsense"),
                "References",
            ),
            (format!("{VECTOR}NarSize: 1\n"), "more than once"),
            (VECTOR.replace("Sig: myorg-1:o2", "Sig: myorg-1:!!"), "Sig"),
        ];
        for (text, needle) in cases {
            let e = NarInfo::parse(&text).expect_err(needle).to_string();
            assert!(e.contains(needle), "{needle:?} not in {e:?}");
        }
    }

    #[test]
    fn references_are_sorted_and_written_as_base_names() {
        let text = VECTOR.replace(
            "References: \n",
            "References: l6whz3nmm0nrg5az1cicla89aa5zxrfh-libthing v025qgw660gppzh3iq0w60wvwbdqisvw-mytree\nDeriver: p92s2r9f8wmrk7b2hkybhih9kmx7513s-app.drv\nSystem: x86_64-linux\n",
        );
        let ni = NarInfo::parse(&text).unwrap();
        assert_eq!(ni.references.len(), 2);
        assert_eq!(ni.deriver.as_ref().unwrap().name(), "app.drv");
        assert_eq!(ni.to_string(), text);
        // As Nix: any order, repeated, extra spaces; kept sorted and unique.
        let unsorted = text.replace(
            "l6whz3nmm0nrg5az1cicla89aa5zxrfh-libthing v025qgw660gppzh3iq0w60wvwbdqisvw-mytree",
            "v025qgw660gppzh3iq0w60wvwbdqisvw-mytree  l6whz3nmm0nrg5az1cicla89aa5zxrfh-libthing v025qgw660gppzh3iq0w60wvwbdqisvw-mytree ",
        );
        assert_eq!(NarInfo::parse(&unsorted).unwrap().to_string(), text);
    }

    /// What other tools write and Nix 2.8 reads: no FileHash/FileSize, no Compression
    /// (bzip2), `Deriver: unknown-deriver`, keys with '-', NarHash in base16, base64 or SRI.
    #[test]
    fn reads_every_narinfo_nix_reads() {
        let plain = NarInfo::parse(VECTOR).unwrap();
        let hex = plain.nar_hash.to_hex();
        let b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(plain.nar_hash.0)
        };
        let nix32 = plain.nar_hash.to_nix32();
        for form in [
            format!("sha256:{hex}"),
            format!("sha256:{b64}"),
            format!("sha256-{b64}"),
        ] {
            let text = VECTOR.replace(
                &format!("NarHash: sha256:{nix32}"),
                &format!("NarHash: {form}"),
            );
            let ni = NarInfo::parse(&text).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(ni.nar_hash, plain.nar_hash, "{form}");
            assert_eq!(ni.to_string(), VECTOR, "written back in Nix's own form");
        }
        let bare = VECTOR
            .lines()
            .filter(|l| {
                !l.starts_with("FileHash")
                    && !l.starts_with("FileSize")
                    && !l.starts_with("Compression")
            })
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + "Deriver: unknown-deriver\nX-Cache-Thing: 1\nfoo_bar: 2\n";
        let ni = NarInfo::parse(&bare).unwrap();
        assert_eq!(ni.file_hash, None);
        assert_eq!(ni.file_size, None);
        assert_eq!(ni.compression, Compression::Bzip2);
        assert_eq!(ni.deriver, None);
        assert_eq!(ni.extra.len(), 2);
        assert!(ni.verify(&[]).is_err(), "still needs a trusted signature");
        for c in ["bzip2", "br", "gzip", "xz", "zstd", "none"] {
            let text = VECTOR.replace("Compression: none", &format!("Compression: {c}"));
            assert_eq!(NarInfo::parse(&text).unwrap().compression.nix_name(), c);
        }
        // A missing URL or NarHash is refused, as by Nix.
        for field in ["URL", "NarHash", "StorePath"] {
            let text: String = VECTOR
                .lines()
                .filter(|l| !l.starts_with(&format!("{field}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            assert!(NarInfo::parse(&text).is_err(), "{field}");
        }
    }
}
