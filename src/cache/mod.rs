//! Nix binary caches: compression, one-pass packing of a tree into a compressed NAR, the one
//! way a store path enters a Catalog Store ([`add_path`]: NAR first, narinfo last, never
//! overwriting a different narinfo), and verified download/unpack.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tempfile::NamedTempFile;
use thiserror::Error;

use crate::nix::nar::{self, NarReadError, NarSummary, NarWriteError, RefScanner};
use crate::nix::narinfo::{self, NarInfo, NarInfoError};
use crate::nix::sign::{PublicKey, SecretKey};
use crate::nix::{HashingReader, HashingWriter, Sha256Hash, StorePath, StorePathError};
use crate::store::{ProgressSink, PutIfAbsent, PutOptions, PutOutcome, Store};

mod add;
mod pack;
mod verify;
mod zstd_pool;

pub use add::*;
pub use pack::*;
pub use verify::*;
pub use zstd_pool::ZstdPool;

/// Contents of `nix-cache-info` for a cache pubdeck writes.
/// `WantMassQuery` and `Priority` as attic and cachix write them: Nix may ask this cache about
/// many paths at once, and prefers cache.nixos.org (40) for what both have.
pub const NIX_CACHE_INFO: &str = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\n";

pub use crate::nix::Compression;

/// Why packing, publishing or fetching failed.
#[derive(Debug, Error)]
pub enum CacheError {
    #[error(transparent)]
    Pack(#[from] NarWriteError),
    #[error("cannot compress the NAR ({compression}): {source}")]
    Compress {
        compression: Compression,
        source: io::Error,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{store}'s nix-cache-info says {found:?}, but pubdeck only supports StoreDir /nix/store"
    )]
    ForeignStore { store: String, found: String },
    #[error(
        "refusing to overwrite {object}: it already exists with different content (differs in: {fields}); pubdeck never overwrites a narinfo"
    )]
    Conflict { object: String, fields: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{} is not a valid narinfo: {source}", path.display())]
    BadNarInfo { path: PathBuf, source: NarInfoError },
    #[error(transparent)]
    NarInfo(#[from] NarInfoError),
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error("narinfo for {path}: {detail}")]
    CaMismatch { path: StorePath, detail: String },
    #[error("download of {path} failed the {check} check: expected {expected}, got {actual}")]
    Mismatch {
        path: StorePath,
        check: &'static str,
        expected: String,
        actual: String,
    },
    #[error("cannot unpack {path}: {source}")]
    Unpack {
        path: StorePath,
        source: NarReadError,
    },
    #[error("destination {} already exists", .0.display())]
    DestExists(PathBuf),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError + use<> {
    let path = path.to_owned();
    move |source| CacheError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn key() -> SecretKey {
        SecretKey::parse("myorg-1:6tDF/ay829tLhpzfOngP18RDyejcn3mhsvAPIWtCT4Ggau0YpYOyn86tne3vG2Oy4LKJsuT8FhjzY9jgRXX36Q==").unwrap()
    }

    fn sample_tree(dir: &Path) -> PathBuf {
        let root = dir.join("tree");
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("bin/run"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(root.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        fs::write(root.join("data.txt"), text).unwrap();
        symlink("bin/run", root.join("link")).unwrap();
        root
    }

    /// Names of the entries in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn compression_names() {
        for (c, name, ext) in [
            (Compression::Zstd, "zstd", ".nar.zst"),
            (Compression::Xz, "xz", ".nar.xz"),
            (Compression::None, "none", ".nar"),
        ] {
            assert_eq!(c.nix_name(), name);
            assert_eq!(c.extension(), ext);
            assert_eq!(name.parse::<Compression>().unwrap(), c);
        }
        assert_eq!(Compression::default(), Compression::Zstd);
        assert!("bzip2".parse::<Compression>().is_err());
    }

    async fn file_store(dir: &Path) -> Store {
        Store::open_str(&format!("file://{}", dir.display()), &Default::default())
            .await
            .unwrap()
    }

    fn fetch(root: &Path, info: &NarInfo, dest: &Path) -> Result<NarSummary, CacheError> {
        let f = File::open(root.join(&info.url)).unwrap();
        fetch_nar(info, &[key().public()], f, dest)
    }

    #[tokio::test]
    async fn pack_and_fetch_round_trip_each_compression() {
        let t = tempfile::tempdir().unwrap();
        let src = sample_tree(t.path());
        let mut plain = Vec::new();
        let want = nar::dump_path(&src, &mut plain).unwrap();
        for c in [Compression::Zstd, Compression::Xz, Compression::None] {
            let root = t.path().join(format!("cache-{c}"));
            let store = file_store(&root).await;
            let (info, outcome) =
                add_source(&store, &src, "sample-1", &[], &PackOptions::with(c), &key())
                    .await
                    .unwrap();
            assert_eq!(outcome, Outcome::Added);
            assert_eq!(info.nar_hash, want.nar_hash);
            assert_eq!(info.nar_size, want.nar_size);
            assert!(info.url.ends_with(c.extension()));
            let nar_file = root.join(&info.url);
            assert_eq!(Some(fs::metadata(&nar_file).unwrap().len()), info.file_size);
            assert_eq!(
                Some(Sha256Hash::of(&fs::read(&nar_file).unwrap())),
                info.file_hash
            );
            if c == Compression::None {
                assert_eq!(fs::read(&nar_file).unwrap(), plain);
            } else {
                assert!(
                    info.file_size.unwrap() < info.nar_size / 2,
                    "{c} did not compress"
                );
            }
            let again = narinfo(&store, info.store_path.hash_part())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(again, info);
            assert_eq!(
                fs::read_to_string(root.join("nix-cache-info")).unwrap(),
                NIX_CACHE_INFO
            );
            let dest = t.path().join(format!("out-{c}"));
            assert_eq!(fetch(&root, &info, &dest).unwrap(), want);
            assert_eq!(nar::dump_path(&dest, io::sink()).unwrap(), want);
            // No temporary files left in the cache: nix-cache-info, nar/, the narinfo and
            // the NAR listing.
            assert_eq!(listing(&root.join("nar")).len(), 1);
            assert_eq!(listing(&root).len(), 4);
            assert!(root.join(listing_key(&info.store_path)).is_file());
        }
    }

    #[test]
    fn zstd_output_does_not_depend_on_thread_count() {
        let t = tempfile::tempdir().unwrap();
        let src = sample_tree(t.path());
        let pack = |threads| {
            let opts = PackOptions {
                zstd_threads: threads,
                ..PackOptions::default()
            };
            pack_to_writer(&src, &opts, Vec::new()).unwrap()
        };
        let (one, s1) = pack(1);
        let (four, s4) = pack(4);
        assert_eq!(s1, s4);
        assert_eq!(one, four);
    }

    #[tokio::test]
    async fn add_path_is_idempotent_and_never_overwrites() {
        let t = tempfile::tempdir().unwrap();
        let src = sample_tree(t.path());
        let root = t.path().join("c");
        let store = file_store(&root).await;
        let opts = PackOptions::default();
        let (info, o1) = add_source(&store, &src, "s", &[], &opts, &key())
            .await
            .unwrap();
        let (_, o2) = add_source(&store, &src, "s", &[], &opts, &key())
            .await
            .unwrap();
        assert_eq!((o1, o2), (Outcome::Added, Outcome::AlreadyPresent));
        // A narinfo that differs (e.g. signed by another key) is refused, and the file stays.
        let info_path = root.join(info.file_name());
        let before = fs::read(&info_path).unwrap();
        let other = SecretKey::generate("other-1").unwrap();
        let err = add_source(&store, &src, "s", &[], &opts, &other)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CacheError::Conflict { .. }), "{msg}");
        assert!(
            msg.contains(&info.file_name()) && msg.contains("Sig"),
            "{msg}"
        );
        assert_eq!(fs::read(&info_path).unwrap(), before);
        // A lost NAR is restored by re-publishing.
        fs::remove_file(root.join(&info.url)).unwrap();
        let (_, o3) = add_source(&store, &src, "s", &[], &opts, &key())
            .await
            .unwrap();
        assert_eq!(o3, Outcome::AlreadyPresent);
        assert!(root.join(&info.url).exists());
        assert_eq!(listing(&root.join("nar")).len(), 1);
    }

    #[tokio::test]
    async fn a_foreign_store_dir_is_refused() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("nix-cache-info"), "StoreDir: /gnu/store\n").unwrap();
        let store = file_store(t.path()).await;
        let src = sample_tree(t.path());
        let e = add_source(&store, &src, "s", &[], &PackOptions::default(), &key())
            .await
            .unwrap_err();
        assert!(matches!(e, CacheError::ForeignStore { .. }), "{e}");
        assert!(!t.path().join("nar").exists(), "nothing was written");
    }

    #[tokio::test]
    async fn fetch_reports_the_failed_check_and_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let src = sample_tree(t.path());
        let root = t.path().join("c");
        let store = file_store(&root).await;
        let (info, _) = add_source(&store, &src, "s", &[], &PackOptions::default(), &key())
            .await
            .unwrap();
        let good = fs::read(root.join(&info.url)).unwrap();
        let trusted = [key().public()];
        let out = t.path().join("dl");
        fs::create_dir(&out).unwrap();
        let dest = out.join("s");
        let check = |info: &NarInfo, bytes: &[u8], want: &str| {
            let e = fetch_nar(info, &trusted, bytes, &dest)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
            assert!(listing(&out).is_empty(), "left behind: {:?}", listing(&out));
        };
        let mut corrupt = good.clone();
        let mid = corrupt.len() / 2;
        corrupt[mid] ^= 1;
        check(&info, &corrupt, "FileHash check");
        check(&info, &good[..good.len() - 1], "FileSize check");
        let mut longer = good.clone();
        longer.push(0);
        check(&info, &longer, "FileSize check");
        // A NAR that decompresses fine but differs from NarHash (narinfo re-signed, no CA).
        let mut lying = info.clone();
        lying.ca = None;
        lying.nar_hash = Sha256Hash::of(b"something else");
        lying.sign(&key());
        check(&lying, &good, "NarHash check");
        let mut short = info.clone();
        short.ca = None;
        short.nar_size -= 8;
        short.sign(&key());
        check(&short, &good, "NarSize check");
        // Signature and CA problems are caught before anything is read.
        let mut unsigned = info.clone();
        unsigned.sigs.clear();
        check(&unsigned, &good, "no signatures");
        let mut wrong_ca = info.clone();
        wrong_ca.ca = Some(narinfo::ca_recursive_sha256(&Sha256Hash::of(b"x")));
        check(&wrong_ca, &good, "does not match NarHash");
        check(&info, b"not zstd at all", "FileSize check");
        // And the good one works, once.
        fetch_nar(&info, &trusted, &good[..], &dest).unwrap();
        assert_eq!(listing(&out), vec!["s".to_owned()]);
        let e = fetch_nar(&info, &trusted, &good[..], &dest).unwrap_err();
        assert!(matches!(e, CacheError::DestExists(_)), "{e}");
    }

    #[tokio::test]
    async fn add_source_rejects_bad_names() {
        let t = tempfile::tempdir().unwrap();
        let store = file_store(t.path()).await;
        let e = add_source(
            &store,
            t.path(),
            "bad name",
            &[],
            &PackOptions::default(),
            &key(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("bad name"), "{e}");
    }
}
