//! Adding to a store: the one way a path enters a Catalog Store (NAR, then listing, then
//! narinfo, never overwriting a different narinfo), and reading narinfos back.

use super::*;

/// Whether [`add_path`] wrote anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The narinfo was new and has been written.
    Added,
    /// An identical narinfo was already there.
    AlreadyPresent,
}

/// Builds the signed narinfo of a `source` (content-addressed) store path named `name`.
pub fn source_narinfo(
    summary: &PackSummary,
    name: &str,
    references: &[StorePath],
    key: &SecretKey,
) -> Result<NarInfo, CacheError> {
    let store_path = StorePath::from_nar_hash(&summary.nar.nar_hash, name, references)?;
    let mut references = references.to_vec();
    references.sort();
    references.dedup();
    let mut info = NarInfo {
        store_path,
        url: format!(
            "nar/{}{}",
            summary.file_hash.to_nix32(),
            summary.compression.extension()
        ),
        compression: summary.compression,
        file_hash: Some(summary.file_hash),
        file_size: Some(summary.file_size),
        nar_hash: summary.nar.nar_hash,
        nar_size: summary.nar.nar_size,
        references,
        deriver: None,
        system: None,
        sigs: Vec::new(),
        ca: Some(narinfo::ca_recursive_sha256(&summary.nar.nar_hash)),
        extra: Vec::new(),
    };
    info.sign(key);
    Ok(info)
}

/// The one way a store path enters a store (publish, `pack`, the demo seeder): makes sure
/// `nix-cache-info` names `/nix/store`, puts the compressed NAR (skipped when an intact copy
/// is there: its name is its hash), and only then the narinfo, which is never replaced by a
/// different one. A reader never finds a narinfo whose NAR is missing or incomplete.
pub async fn add_path(
    store: &Store,
    nar_file: &NarFile,
    info: &NarInfo,
    put: &PutOptions,
    progress: &ProgressSink,
) -> Result<Outcome, CacheError> {
    add_path_listed(store, nar_file, None, info, put, progress).await
}

/// [`add_path`] with the NAR listing built while packing (`None`: read from the file).
pub async fn add_path_listed(
    store: &Store,
    nar_file: &NarFile,
    listing: Option<&[u8]>,
    info: &NarInfo,
    put: &PutOptions,
    progress: &ProgressSink,
) -> Result<Outcome, CacheError> {
    add_path_data(store, nar_file, listing, info, put, progress).await?;
    add_path_narinfo(store, info).await
}

/// Puts a small NAR held in memory, never over other bytes. `true` when the store had it
/// already.
async fn put_small(
    store: &Store,
    key: &str,
    bytes: &Bytes,
    info: &NarInfo,
    progress: &ProgressSink,
) -> Result<bool, CacheError> {
    match store
        .put_if_absent_reported(key, bytes.clone(), progress)
        .await?
    {
        PutIfAbsent::Created => Ok(false),
        PutIfAbsent::SameContent => Ok(true),
        PutIfAbsent::DifferentContent => Err(CacheError::Mismatch {
            path: info.store_path.clone(),
            check: "the store's NAR file",
            expected: format!("the {} bytes named {key}", bytes.len()),
            actual: "other bytes under that name".into(),
        }),
    }
}

/// The first half of [`add_path_listed`]: `nix-cache-info`, the NAR and its listing, all
/// invisible until [`add_path_narinfo`] names them.
pub async fn add_path_data(
    store: &Store,
    nar_file: &NarFile,
    listing: Option<&[u8]>,
    info: &NarInfo,
    put: &PutOptions,
    progress: &ProgressSink,
) -> Result<(), CacheError> {
    let size = nar_file.len()?;
    // What pubdeck writes always names its file's hash and size.
    let (Some(file_hash), Some(file_size)) = (info.file_hash, info.file_size) else {
        return Err(CacheError::CaMismatch {
            path: info.store_path.clone(),
            detail: "a narinfo pubdeck writes must have FileHash and FileSize".into(),
        });
    };
    if size != file_size {
        return Err(CacheError::Mismatch {
            path: info.store_path.clone(),
            check: "FileSize",
            expected: file_size.to_string(),
            actual: size.to_string(),
        });
    }
    let nar_name = info
        .url
        .strip_prefix("nar/")
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| CacheError::CaMismatch {
            path: info.store_path.clone(),
            detail: format!("URL {:?} is not nar/<file>", info.url),
        })?;
    ensure_cache_info(store).await?;
    let mut opts = put.clone();
    opts.content_hash = Some(file_hash.to_string());
    let nar_key = format!("nar/{nar_name}");
    // An object already there may be old garbage a `catalog gc` is about to delete: touching
    // it puts it back under GC's grace period, and one deleted meanwhile is put again.
    loop {
        let skipped = match nar_file {
            NarFile::Temp(f) => matches!(
                store.put_file(&nar_key, f.path(), &opts, progress).await?,
                PutOutcome::Skipped { .. }
            ),
            NarFile::Memory(b) => put_small(store, &nar_key, b.bytes(), info, progress).await?,
        };
        if !skipped || touch(store, &nar_key).await {
            break;
        }
    }
    // The NAR listing (as Nix's `write-nar-listing=true` writes it) between the NAR and the
    // narinfo: what a review diffs against without downloading the NAR.
    let listing = match listing {
        Some(l) => l.to_vec(),
        None => {
            let (source, compression) = (nar_file.source(), info.compression);
            let name = source.name();
            tokio::task::spawn_blocking(move || nar_listing(source, compression))
                .await
                .map_err(|e| io_err("list", &name)(io::Error::other(e)))??
        }
    };
    store
        .put_if_absent(&listing_key(&info.store_path), Bytes::from(listing))
        .await?;
    Ok(())
}

/// The second half of [`add_path_listed`]: the narinfo, once its NAR is in `store`
/// ([`add_path_data`]), never replacing a different one.
pub async fn add_path_narinfo(store: &Store, info: &NarInfo) -> Result<Outcome, CacheError> {
    let text = info.to_string();
    let key = info.file_name();
    loop {
        let outcome = match store.put_if_absent(&key, Bytes::from(text.clone())).await? {
            PutIfAbsent::Created => return Ok(Outcome::Added),
            PutIfAbsent::SameContent => Outcome::AlreadyPresent,
            PutIfAbsent::DifferentContent => {
                let old = store.get(&key).await?;
                let old = String::from_utf8_lossy(&old);
                // Another tool (`nix copy … ?secret-key=`, attic) may have put the same path
                // with its own layout: the same path, contents and references, signed by our
                // key (ed25519 is deterministic: the same key over the same fingerprint gives
                // the same signature), is the same path already there.
                if !same_path_signed_alike(&old, info) {
                    check_same(&store.url().object_url(&key), &old, &text)?;
                }
                Outcome::AlreadyPresent
            }
        };
        if touch(store, &key).await {
            return Ok(outcome);
        }
    }
}

/// Marks `key` as written now; `false` only when it is gone. A store that refuses the touch
/// (a read-only file, a server without CopyObject) keeps the object as it is: the publish goes
/// on, only a concurrent GC's grace period no longer covers it (said in the log).
pub(super) async fn touch(store: &Store, key: &str) -> bool {
    match store.touch(key).await {
        Ok(present) => present,
        Err(e) => {
            tracing::warn!(key, error = %e, "could not refresh an object's time; a concurrent GC may treat it as old");
            true
        }
    }
}

/// The key of a store path's NAR listing: `<hash part>.ls`.
pub fn listing_key(path: &StorePath) -> String {
    format!("{}.ls", path.hash_part())
}

/// Whether `info`'s narinfo and NAR are both in `store`, marking them as written now (see
/// [`add_path`]): a dependency found this way is safe from a `catalog gc` running meanwhile.
pub async fn refresh(store: &Store, info: &NarInfo) -> Result<bool, CacheError> {
    match store.touch_all(&[&info.file_name(), &info.url]).await {
        Ok(present) => Ok(present),
        // One by one, each failure warned about and each absence still seen.
        Err(_) => Ok(touch(store, &info.file_name()).await && touch(store, &info.url).await),
    }
}

/// Creates `nix-cache-info` unless there is one; an existing one must name `/nix/store`.
pub(super) async fn ensure_cache_info(store: &Store) -> Result<(), CacheError> {
    let created = store
        .put_if_absent(
            "nix-cache-info",
            Bytes::from_static(NIX_CACHE_INFO.as_bytes()),
        )
        .await?;
    if created != PutIfAbsent::DifferentContent {
        return Ok(());
    }
    let text = store.get("nix-cache-info").await?;
    let text = String::from_utf8_lossy(&text);
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("StoreDir: "))
        .unwrap_or(crate::nix::STORE_DIR)
        .trim();
    if dir == crate::nix::STORE_DIR {
        // A store created before these fields (or by Nix): add the ones it lacks.
        let mut missing = String::new();
        for line in NIX_CACHE_INFO.lines().skip(1) {
            let field = line.split(':').next().unwrap_or(line);
            if !text.lines().any(|l| l.split(':').next() == Some(field)) {
                missing.push_str(line);
                missing.push('\n');
            }
        }
        if !missing.is_empty() {
            let mut new = text.trim_end_matches('\n').to_string();
            new.push('\n');
            new.push_str(&missing);
            store.replace("nix-cache-info", Bytes::from(new)).await?;
        }
        Ok(())
    } else {
        Err(CacheError::ForeignStore {
            store: store.url().to_string(),
            found: dir.to_owned(),
        })
    }
}

/// Packs `src` as the `source` store path `name` (with `references`), signs it with `key` and
/// adds it to `store` with [`add_path`]. Returns the narinfo and whether it was new.
pub async fn add_source(
    store: &Store,
    src: &Path,
    name: &str,
    references: &[StorePath],
    opts: &PackOptions,
    key: &SecretKey,
) -> Result<(NarInfo, Outcome), CacheError> {
    crate::nix::validate_name(name)?;
    let tmp = tempfile::Builder::new()
        .prefix("pubdeck-pack-")
        .tempdir()
        .map_err(io_err(
            "create a temporary directory in",
            &std::env::temp_dir(),
        ))?;
    let (src2, opts2, dir) = (src.to_owned(), *opts, tmp.path().to_owned());
    let packed = tokio::task::spawn_blocking(move || pack_path(&src2, &opts2, &dir))
        .await
        .map_err(|e| io_err("pack", src)(io::Error::other(e)))??;
    let info = source_narinfo(&packed.summary, name, references, key)?;
    let outcome = add_path_listed(
        store,
        &packed.file,
        packed.listing.as_deref(),
        &info,
        &PutOptions::default(),
        &ProgressSink::none(),
    )
    .await?;
    Ok((info, outcome))
}

/// The store key of the narinfo of the path whose hash part is `hash_part`.
pub fn narinfo_key(hash_part: &str) -> String {
    format!("{hash_part}.narinfo")
}

/// A narinfo as a store holds it.
pub fn parse_narinfo(bytes: &[u8]) -> Result<NarInfo, CacheError> {
    NarInfo::parse(&String::from_utf8_lossy(bytes)).map_err(CacheError::NarInfo)
}

/// The narinfo of `hash_part` in `store`, if there is one.
pub async fn narinfo(store: &Store, hash_part: &str) -> Result<Option<NarInfo>, CacheError> {
    match store.get(&narinfo_key(hash_part)).await {
        Ok(bytes) => parse_narinfo(&bytes).map(Some),
        Err(crate::store::StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether the narinfo text `old` describes `info`'s path (store path, NAR hash and size,
/// references) and carries each of `info`'s signatures.
pub(super) fn same_path_signed_alike(old: &str, info: &NarInfo) -> bool {
    let Ok(old) = NarInfo::parse(old) else {
        return false;
    };
    old.store_path == info.store_path
        && old.nar_hash == info.nar_hash
        && old.nar_size == info.nar_size
        && old.references == info.references
        && old
            .ca
            .as_ref()
            .is_none_or(|ca| Some(ca) == info.ca.as_ref())
        && !info.sigs.is_empty()
        && info.sigs.iter().all(|s| old.sigs.contains(s))
}

/// Errors unless `old` and `new` narinfo texts are identical, naming the keys that differ.
pub(super) fn check_same(object: &str, old: &str, new: &str) -> Result<(), CacheError> {
    if old == new {
        return Ok(());
    }
    let keys = |t: &str| -> Vec<(String, String)> {
        t.lines()
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap_or((l, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    };
    let (o, n) = (keys(old), keys(new));
    let mut fields: Vec<&str> = Vec::new();
    for (k, v) in o.iter().chain(n.iter()) {
        let in_o = o.iter().any(|(k2, v2)| k2 == k && v2 == v);
        let in_n = n.iter().any(|(k2, v2)| k2 == k && v2 == v);
        let differs = !(in_o && in_n);
        if differs && !fields.contains(&k.as_str()) {
            fields.push(k);
        }
    }
    if fields.is_empty() {
        fields.push("layout");
    }
    Err(CacheError::Conflict {
        object: object.to_owned(),
        fields: fields.join(", "),
    })
}
