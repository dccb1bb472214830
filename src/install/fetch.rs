//! Narinfos from the catalog's store, checked against the catalog's record, and the walk of
//! a closure: every narinfo it reaches, dependencies first, and the NARs missing from the store.

use std::collections::HashMap;

use crate::cache;
use crate::catalog::{Addressing, BuildRecord, PackageDetail};
use crate::nix::StorePath;
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::PublicKey;
use crate::store::{OpenOptions, Store, StoreError};

/// The build's narinfo from the catalog's store, checked against the catalog's record. An error
/// is its message and, when the store could not be opened, that error's own hint.
pub(super) async fn fetch_narinfo(
    d: &PackageDetail,
    b: &BuildRecord,
    open: &OpenOptions,
) -> Result<(Store, NarInfo), (String, Option<String>)> {
    use crate::event::Hinted as _;
    let store = Store::open_str(&d.store_url, open)
        .await
        .map_err(|e| (e.to_string(), e.hint()))?;
    fetch_checked_narinfo(&store, b)
        .await
        .map(|info| (store, info))
        .map_err(|msg| (msg, None))
}

async fn fetch_checked_narinfo(store: &Store, b: &BuildRecord) -> Result<NarInfo, String> {
    let hash_part = b
        .store_path
        .strip_prefix(crate::nix::STORE_PREFIX)
        .and_then(|r| r.split('-').next())
        .ok_or_else(|| format!("the catalog's store path {:?} is malformed", b.store_path))?;
    let key = cache::narinfo_key(hash_part);
    let bytes = store
        .get(&key)
        .await
        .map_err(|e| format!("cannot read {key} from {}: {e}", store.url()))?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| format!("{key} is not UTF-8"))?;
    let info =
        NarInfo::parse(&text).map_err(|e| format!("{key} in {} is invalid: {e}", store.url()))?;
    if info.store_path.to_string() != b.store_path
        || info.nar_hash.to_string() != b.nar_hash
        || info.nar_size != b.nar_size
    {
        return Err(format!(
            "{key} in {} describes other contents than the catalog registered for {}",
            store.url(),
            b.store_path
        ));
    }
    if b.addressing == Addressing::Content {
        cache::require_content_address(&info).map_err(|e| e.to_string())?;
    }
    Ok(info)
}

/// Longest closure install follows.
const MAX_CLOSURE: usize = 10_000;

/// The narinfos of `top`'s closure, dependencies first and `top` last; each must be in the
/// store and signed by one of `keys`, and, for a content-addressed build, content-addressed
/// (an input-addressed build, which Flox published, refers to input-addressed paths: the
/// catalog registered it only after finding this same closure signed in the store).
pub(super) async fn walk_closure(
    store: &Store,
    top: &NarInfo,
    keys: &[PublicKey],
    rule: Addressing,
) -> Result<Vec<NarInfo>, String> {
    let mut infos: Vec<NarInfo> = vec![top.clone()];
    let mut seen: std::collections::HashSet<StorePath> = [top.store_path.clone()].into();
    let mut next = 0;
    while next < infos.len() {
        let refs = infos[next].references.clone();
        next += 1;
        for r in refs {
            if !seen.insert(r.clone()) {
                continue;
            }
            if seen.len() > MAX_CLOSURE {
                return Err(format!("the closure has more than {MAX_CLOSURE} paths"));
            }
            let info = match cache::narinfo(store, r.hash_part()).await {
                Ok(Some(i)) => i,
                Ok(None) => {
                    return Err(format!(
                        "{} needs {r}, but {} has no narinfo for it",
                        top.store_path,
                        store.url()
                    ));
                }
                Err(e) => return Err(format!("cannot read the narinfo of {r}: {e}")),
            };
            if info.store_path != r {
                return Err(format!(
                    "the narinfo for {r} in {} names {}",
                    store.url(),
                    info.store_path
                ));
            }
            info.verify(keys).map_err(|e| e.to_string())?;
            match rule {
                Addressing::Content => {
                    cache::require_content_address(&info).map_err(|e| e.to_string())?;
                }
                // A CA line, where there is one, must still hold.
                Addressing::Input => {
                    cache::check_ca(&info).map_err(|e| e.to_string())?;
                }
            }
            infos.push(info);
        }
    }
    // Breadth-first from the top; reversed, every path comes after what it refers to
    // (closures have no cycles but self-references).
    let order = dependencies_first(&infos);
    Ok(order.into_iter().map(|i| infos[i].clone()).collect())
}

/// Indices of `infos` ordered so each comes after the paths it refers to.
fn dependencies_first(infos: &[NarInfo]) -> Vec<usize> {
    let index: HashMap<&StorePath, usize> = infos
        .iter()
        .enumerate()
        .map(|(i, n)| (&n.store_path, i))
        .collect();
    let mut done = vec![false; infos.len()];
    let mut order = Vec::with_capacity(infos.len());
    fn visit(
        i: usize,
        infos: &[NarInfo],
        index: &HashMap<&StorePath, usize>,
        done: &mut [bool],
        order: &mut Vec<usize>,
    ) {
        let mut stack = vec![(i, 0usize)];
        done[i] = true;
        while let Some((n, k)) = stack.pop() {
            let refs = &infos[n].references;
            if let Some(r) = refs.get(k) {
                stack.push((n, k + 1));
                if let Some(&j) = index.get(r)
                    && !done[j]
                {
                    done[j] = true;
                    stack.push((j, 0));
                }
            } else {
                order.push(n);
            }
        }
    }
    for i in 0..infos.len() {
        if !done[i] {
            visit(i, infos, &index, &mut done, &mut order);
        }
    }
    order
}

/// `None` when every NAR of `closure` is in the store with its declared size.
pub(super) async fn missing_nars(
    store: &Store,
    closure: &[NarInfo],
) -> Result<Option<String>, StoreError> {
    for info in closure {
        match store.head(&info.url).await? {
            Some(size) if info.file_size.is_none_or(|want| size == want) => {}
            Some(size) => {
                return Ok(Some(format!(
                    "{} has {size} bytes but the narinfo of {} says {}",
                    info.url,
                    info.store_path,
                    info.file_size.unwrap_or_default()
                )));
            }
            None => {
                return Ok(Some(format!(
                    "{} (the NAR of {}) is missing from {}",
                    info.url,
                    info.store_path,
                    store.url()
                )));
            }
        }
    }
    Ok(None)
}
