//! Registering a build the Flox CLI published: it arrives as an input-addressed path that
//! `nix copy` put in the org's store, and the catalog registers it only when
//! - every narinfo of its closure is in the org's store, with its NAR;
//! - every narinfo is signed by a key the org trusts;
//! - no other org has the same store path with other content (checked on registration).
//!
//! Nothing the client sends about the closure is trusted: its narinfos are read from the
//! store, and the closure is walked from the output through their references. Content-
//! addressed builds (pubdeck's own publish) keep their stricter rule: the store path must
//! follow from the NAR hash (`catalog::validate::validate_content_address`).

use std::collections::{HashMap, HashSet, VecDeque};

use futures::StreamExt as _;

use super::api::PackageBuild;
use super::{FloxError, FloxResult};
use crate::catalog::validate::{validate_source_url, validate_system, validate_version};
use crate::catalog::{
    Addressing, CatalogError, ClosurePath, EmbeddedCatalog, NewBuild, Refusal, RegisterOutcome,
    parse_public_key_text,
};
use crate::nix::StorePath;
use crate::nix::narinfo::NarInfo;
use crate::store::{OpenOptions, Store, StoreError};

/// Most store paths a closure may have.
pub const MAX_CLOSURE: usize = 100_000;
/// Narinfos read at once.
const CONCURRENT_READS: usize = 16;

/// One store path of the closure, as the org's store has it.
#[derive(Debug, Clone)]
pub struct Found {
    pub info: NarInfo,
    /// The trusted key that signed it.
    pub key_name: String,
}

/// Reads the closure of `root` from `store`: every narinfo, verified against `keys`, with its
/// NAR present. Fails on the first path that is missing or not signed by a trusted key.
pub async fn closure_in_store(
    store: &Store,
    root: &StorePath,
    keys: &[String],
    org: &str,
) -> FloxResult<Vec<Found>> {
    let trusted: Vec<crate::nix::sign::PublicKey> = keys
        .iter()
        .filter_map(|k| parse_public_key_text(k).ok())
        .collect();
    let mut seen: HashSet<StorePath> = HashSet::from([root.clone()]);
    let mut queue: VecDeque<StorePath> = VecDeque::from([root.clone()]);
    let mut found: HashMap<StorePath, Found> = HashMap::new();
    while !queue.is_empty() {
        let batch: Vec<StorePath> = queue.drain(..).collect();
        let reads = futures::stream::iter(batch)
            .map(|p| read_one(store, p, &trusted, org))
            .buffer_unordered(CONCURRENT_READS)
            .collect::<Vec<_>>()
            .await;
        for r in reads {
            let f = r?;
            for reference in &f.info.references {
                if seen.insert(reference.clone()) {
                    if seen.len() > MAX_CLOSURE {
                        return Err(FloxError::Invalid(format!(
                            "the closure has more than {MAX_CLOSURE} store paths"
                        )));
                    }
                    queue.push_back(reference.clone());
                }
            }
            found.insert(f.info.store_path.clone(), f);
        }
    }
    let mut out: Vec<Found> = found.into_values().collect();
    out.sort_by(|a, b| {
        a.info
            .store_path
            .base_name()
            .cmp(b.info.store_path.base_name())
    });
    Ok(out)
}

async fn read_one(
    store: &Store,
    path: StorePath,
    trusted: &[crate::nix::sign::PublicKey],
    org: &str,
) -> FloxResult<Found> {
    let key = format!("{}.narinfo", path.hash_part());
    let missing = || {
        FloxError::Invalid(format!(
            "the store of catalog {org} has no narinfo for {path}: copy the closure there first \
             (`nix copy --to STORE {path}`, which `flox publish` does)"
        ))
    };
    let bytes = match store.get(&key).await {
        Ok(b) => b,
        Err(StoreError::NotFound { .. }) => return Err(missing()),
        Err(e) => {
            return Err(
                CatalogError::Internal(format!("reading {key} from the store: {e}")).into(),
            );
        }
    };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| FloxError::Invalid(format!("the narinfo of {path} is not UTF-8")))?;
    let info = NarInfo::parse(text)
        .map_err(|e| FloxError::Invalid(format!("the narinfo of {path} is not valid: {e}")))?;
    if info.store_path != path {
        return Err(FloxError::Invalid(format!(
            "the store's narinfo {key} describes {}, not {path}",
            info.store_path
        )));
    }
    let key_name = info.verify(trusted).map_err(|_| {
        CatalogError::forbidden(
            Refusal::UntrustedKey,
            format!("{path} in the store is not signed by a key catalog {org} trusts"),
        )
    })?;
    match store.exists(&info.url).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(FloxError::Invalid(format!(
                "the store of catalog {org} has the narinfo of {path} but not its NAR {}",
                info.url
            )));
        }
        Err(e) => {
            return Err(
                CatalogError::Internal(format!("checking {} in the store: {e}", info.url)).into(),
            );
        }
    }
    Ok(Found { info, key_name })
}

/// `POST`/`PUT …/catalogs/{org}/packages/{package}/builds`: checks the closure in the org's
/// store and registers the build (owner, publish scope).
pub async fn register(
    catalog: &EmbeddedCatalog,
    org: &str,
    package: &str,
    body: &PackageBuild,
    open: &OpenOptions,
) -> FloxResult<RegisterOutcome> {
    let info = catalog.publishable(org).await?;
    catalog.require_package(org, package).await?;
    let d = &body.derivation;
    validate_system(&d.system).map_err(|e| FloxError::Invalid(e.to_string()))?;
    let [output] = d.outputs.as_slice() else {
        return Err(FloxError::Invalid(format!(
            "pubdeck registers builds with one output; this one has {}",
            d.outputs.len()
        )));
    };
    let version = d
        .version
        .clone()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| FloxError::Invalid("the build has no version".into()))?;
    validate_version(&version).map_err(|e| FloxError::Invalid(e.to_string()))?;
    validate_source_url(&body.url).map_err(|e| FloxError::Invalid(e.to_string()))?;
    let root = StorePath::parse(&output.store_path)
        .map_err(|e| FloxError::Invalid(format!("output {}: {e}", output.name)))?;
    let store = Store::open_str(&info.store_url, open).await.map_err(|e| {
        CatalogError::Internal(format!("cannot open the store of catalog {org}: {e}"))
    })?;
    let closure = closure_in_store(&store, &root, &info.keys, org).await?;
    let top = closure
        .iter()
        .find(|f| f.info.store_path == root)
        .ok_or_else(|| CatalogError::Internal("the output left its own closure".into()))?;
    let signature = top
        .info
        .sigs
        .iter()
        .find(|s| s.key_name() == top.key_name)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let new = NewBuild {
        org: org.to_string(),
        package: package.to_string(),
        version,
        description: d.description.clone().unwrap_or_default(),
        system: d.system.clone(),
        store_path: root.to_string(),
        narinfo_url: store.url().object_url(&top.info.file_name()),
        nar_hash: top.info.nar_hash.to_string(),
        nar_size: top.info.nar_size,
        references: top
            .info
            .references
            .iter()
            .map(|r| r.base_name().to_string())
            .collect(),
        signature,
        key_name: top.key_name.clone(),
        source_url: body.url.clone(),
        revision: body.rev.clone(),
        branch: body.git_ref.clone().unwrap_or_default(),
        build_name: package.to_string(),
        installed_packages: Vec::new(),
        ca: String::new(),
        closure: closure
            .iter()
            .map(|f| ClosurePath {
                store_path: f.info.store_path.to_string(),
                nar_size: f.info.nar_size,
            })
            .collect(),
        addressing: Addressing::Input,
        rev_count: u64::try_from(body.rev_count).unwrap_or(0),
        rev_date: body.rev_date.clone(),
        derivation: d.drv_path.clone(),
    };
    let key = top.key_name.clone();
    Ok(catalog.register_input_addressed(&new, &key).await?)
}
