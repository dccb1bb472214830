//! The search index kept beside a local catalog file (`<catalog>.search`), so that a
//! `pubdeck search` process does not read every package row out of SQLite.
//!
//! The file holds, per catalog, its identity (name and creation time), the `generation` its
//! package list was read at, and the packages' names, latest versions and descriptions. A
//! catalog's entry is used only when its identity and generation equal the database's at the
//! time of the search; otherwise that catalog alone is read again from the database and the
//! file is rewritten (atomically: a reader sees the old file or the new one, never a mix).
//! The file is a cache: anything unreadable, truncated or of another version is ignored and
//! rebuilt. It is written with the catalog file's permissions, since it holds the same data.
//!
//! Layout (little-endian): `PDKIDX01`, u32 catalog count, then per catalog: str16 name,
//! i64 created_at, i64 generation, u32 package count, then per package: str16 name, str16
//! version, str32 description. `strN` is a uN byte length and that many UTF-8 bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use super::search::CatalogIndex;
use super::search::{SearchIndexBuilder, cores, even_runs, on_cores};

const MAGIC: &[u8; 8] = b"PDKIDX01";
/// Largest index file read (a bigger one is ignored and rebuilt).
const MAX_FILE: u64 = 2 << 30;

/// Where the index of the catalog database at `db_path` lives.
pub fn path_for(db_path: &Path) -> PathBuf {
    let mut p = db_path.as_os_str().to_owned();
    p.push(".search");
    PathBuf::from(p)
}

/// Reads the index at `path`; `None` when it is missing or not a valid index.
pub fn load(path: &Path) -> Option<Vec<CatalogIndex>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let parsed = parse(&bytes);
    if parsed.is_none() {
        tracing::debug!(path = %path.display(), "ignoring an unreadable search index");
    }
    parsed
}

/// Parses an index; `None` unless it is whole and valid. A first pass finds each catalog's
/// bytes (lengths only); the catalogs are then indexed on every core when the file is big.
pub fn parse(bytes: &[u8]) -> Option<Vec<CatalogIndex>> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let n = r.u32()? as usize;
    // Every catalog takes at least 22 bytes, every package 8: allocations are bounded by
    // the input.
    let mut sections = Vec::with_capacity(n.min(bytes.len() / 22));
    for _ in 0..n {
        let name = r.str16()?;
        let created_at = r.i64()?;
        let generation = r.i64()?;
        let count = r.u32()? as usize;
        let start = r.at;
        for _ in 0..count {
            let name = r.u16()?;
            r.take(name.into())?;
            let version = r.u16()?;
            r.take(version.into())?;
            let description = r.u32()?;
            r.take(description as usize)?;
        }
        sections.push(Section {
            name,
            created_at,
            generation,
            count,
            body: &bytes[start..r.at],
        });
    }
    if r.at != bytes.len() {
        return None;
    }
    let threads = if bytes.len() < PARALLEL_FROM {
        1
    } else {
        cores()
    };
    // Runs of sections of about equal bytes, one per thread (a run that panics reads as
    // invalid, like one that fails).
    let runs = even_runs(&sections, threads, |s| s.body.len());
    let indexed = on_cores(runs, &|run: &[Section]| {
        run.iter().map(Section::index).collect::<Option<Vec<_>>>()
    })
    .ok()?;
    let mut out = Vec::with_capacity(sections.len());
    for run in indexed {
        out.extend(run?);
    }
    Some(out)
}

/// File size from which [`parse`] indexes on every core.
const PARALLEL_FROM: usize = 1 << 20;

/// One catalog's entry, found but not yet read.
struct Section<'a> {
    name: &'a str,
    created_at: i64,
    generation: i64,
    count: usize,
    /// Its packages.
    body: &'a [u8],
}

impl Section<'_> {
    fn index(&self) -> Option<CatalogIndex> {
        let mut r = Reader {
            bytes: self.body,
            at: 0,
        };
        let mut b =
            SearchIndexBuilder::with_capacity(self.count.min(self.body.len() / 8), self.body.len());
        for _ in 0..self.count {
            let package = r.str16()?;
            let version = r.str16()?;
            let description = r.str32()?;
            b.push(self.name, package, version, description);
        }
        (r.at == self.body.len()).then(|| CatalogIndex {
            name: self.name.to_string(),
            created_at: self.created_at,
            generation: self.generation,
            index: std::sync::Arc::new(b.finish()),
        })
    }
}

/// The bytes of an index of `catalogs`. Strings too long for their field are refused (the
/// catalog's validation keeps names and versions far shorter).
pub fn encode(catalogs: &[&CatalogIndex]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(1 << 20);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(catalogs.len()).ok()?.to_le_bytes());
    for c in catalogs {
        put16(&mut out, &c.name)?;
        out.extend_from_slice(&c.created_at.to_le_bytes());
        out.extend_from_slice(&c.generation.to_le_bytes());
        let idx = &c.index;
        out.extend_from_slice(&u32::try_from(idx.len()).ok()?.to_le_bytes());
        for id in 0..idx.len() {
            put16(&mut out, idx.name(id))?;
            put16(&mut out, idx.version(id))?;
            let d = idx.description(id).as_bytes();
            out.extend_from_slice(&u32::try_from(d.len()).ok()?.to_le_bytes());
            out.extend_from_slice(d);
        }
    }
    Some(out)
}

/// Replaces the index at `path` atomically, with the permissions of `like` (the catalog
/// file) or 0600.
pub fn save(path: &Path, like: &Path, catalogs: &[&CatalogIndex]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = encode(catalogs).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "a field is too long")
    })?;
    let mode = std::fs::metadata(like)
        .map(|m| m.permissions().mode() & 0o666)
        .unwrap_or(0o600);
    let mut staged = crate::fsutil::Staged::beside(path)?;
    staged.file().write_all(&bytes)?;
    staged.set_mode(mode)?;
    staged.commit(path, crate::fsutil::Replace::Yes)
}

fn put16(out: &mut Vec<u8>, s: &str) -> Option<()> {
    out.extend_from_slice(&u16::try_from(s.len()).ok()?.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Some(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str16(&mut self) -> Option<&'a str> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn str32(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PackageSummary;

    fn pkg(org: &str, n: &str, d: &str) -> PackageSummary {
        PackageSummary {
            name: format!("{org}/{n}"),
            org: org.into(),
            package: n.into(),
            latest_version: "1.2.3".into(),
            description: d.into(),
        }
    }

    fn sample() -> Vec<CatalogIndex> {
        vec![
            CatalogIndex::new(
                "alpha",
                1_700_000_000,
                7,
                &[pkg("alpha", "hello", "GNU Hello"), pkg("alpha", "ünï", "")],
            ),
            CatalogIndex::new("empty", -1, 0, &[]),
        ]
    }

    type Plain = Vec<(String, i64, i64, Vec<PackageSummary>)>;

    fn plain(v: &[CatalogIndex]) -> Plain {
        v.iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.created_at,
                    c.generation,
                    c.packages().collect(),
                )
            })
            .collect()
    }

    #[test]
    fn round_trips_and_refuses_every_truncation_and_trailing_byte() {
        let cats = sample();
        let refs: Vec<&CatalogIndex> = cats.iter().collect();
        let bytes = encode(&refs).unwrap();
        assert_eq!(plain(&parse(&bytes).unwrap()), plain(&cats));
        assert_eq!(
            plain(&cats)[0].3[0].description,
            "GNU Hello",
            "descriptions keep their case"
        );
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut]).is_none(), "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(parse(&longer).is_none());
        let mut other = bytes;
        other[7] = b'2';
        assert!(parse(&other).is_none(), "another format version");
    }

    /// A file big enough to be read on every core reads as the same catalogs, in order, and a
    /// bad byte in any part of it still fails the whole file.
    #[test]
    fn a_big_file_is_read_on_every_core_alike() {
        let cats: Vec<CatalogIndex> = (0..61)
            .map(|c| {
                let org = format!("org{c:02}");
                let packages: Vec<PackageSummary> = (0..(c * 13) % 300 + 1)
                    .map(|i| pkg(&org, &format!("p{i}-é"), &"d".repeat(150 + i % 50)))
                    .collect();
                CatalogIndex::new(&org, c as i64, 2 * c as i64, &packages)
            })
            .collect();
        let refs: Vec<&CatalogIndex> = cats.iter().collect();
        let bytes = encode(&refs).unwrap();
        assert!(bytes.len() > PARALLEL_FROM, "{} bytes", bytes.len());
        assert_eq!(plain(&parse(&bytes).unwrap()), plain(&cats));
        // Invalid UTF-8 in the last catalog's last description: found by its own thread.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] = 0xff;
        assert!(parse(&bad).is_none());
        assert!(parse(&bytes[..bytes.len() / 2]).is_none());
    }

    #[test]
    fn huge_counts_do_not_allocate_before_failing() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&bytes).is_none());
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.push(b'a');
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&bytes).is_none());
    }

    #[test]
    fn saves_atomically_with_the_catalog_files_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("catalog.sqlite");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
        let idx = path_for(&db);
        assert_eq!(idx, dir.path().join("catalog.sqlite.search"));
        let cats = sample();
        let refs: Vec<&CatalogIndex> = cats.iter().collect();
        save(&idx, &db, &refs).unwrap();
        assert_eq!(plain(&load(&idx).unwrap()), plain(&cats));
        let mode = std::fs::metadata(&idx).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temp left"
        );
    }
}
