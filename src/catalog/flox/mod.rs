//! Flox's catalog API over pubdeck's catalog: what `pubdeck serve` answers the real `flox`
//! CLI (`FLOX_CATALOG_URL`) under `/api/v1/catalog/…` and `/api/v1/accounts/me`.
//!
//! Every answer is built from an [`EmbeddedCatalog`] acting as the caller, so the Flox
//! routes, pubdeck's CLI and the workbench agree on who sees what, what is latest and what is
//! yanked. An org package is `ORG/PACKAGE` (its `attr_path` and `pkg_path`, with `catalog`
//! `ORG`). Whatever is not about an org the caller may see goes to the [`Upstream`] catalog
//! when there is one (an org the caller may not see is treated exactly like one pubdeck does
//! not have), and otherwise gets Flox's own "not found" answers.
//!
//! A pubdeck build maps to Flox's fields as `docs/flox-catalog.md` tabulates: its output is
//! output `out`; `derivation` is the `.drv` a Flox publish recorded, or for pubdeck's own
//! (content-addressed, no derivation) builds the output's store path; `locked_url` is the
//! source URL with `?rev=`; `rev_count` and `rev_date` are what publish recorded (the
//! registration time when the date was not recorded); `scrape_date` is the registration time.

pub mod api;
pub mod credentials;
pub mod ingest;
pub mod upstream;
pub mod version;

use std::collections::{BTreeMap, HashMap, HashSet};

use api::*;
pub use upstream::{Upstream, UpstreamError};
use version::Constraint;

use super::validate::validate_system;
use super::{
    BuildRecord, Catalog, CatalogError, CatalogInfo, EmbeddedCatalog, Listing, MAX_SEARCH_LIMIT,
    PackageDetail, validate_org_name, validate_package_name,
};
use crate::store::StoreUrl;

/// Largest `pageSize` answered.
pub const MAX_PAGE_SIZE: i64 = 1000;
/// Most descriptors one resolve request may hold (over all its groups).
pub const MAX_DESCRIPTORS: usize = 1000;
/// Most store paths one store-info request may ask about.
pub const MAX_OUTPATHS: usize = 1000;

/// Why a Flox route could not answer. The face turns each into a status and `{"detail"}`.
#[derive(Debug, thiserror::Error)]
pub enum FloxError {
    /// pubdeck's own rules refused or failed (`NotFound` is answered like a missing package).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The upstream catalog gave no usable answer.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A request Flox's API would refuse as invalid (422).
    #[error("{0}")]
    Invalid(String),
    /// Nothing is known by that name here, and there is no upstream to ask (404).
    #[error("{0}")]
    NotFound(String),
}

/// The result type of the Flox routes.
pub type FloxResult<T> = Result<T, FloxError>;

/// An answer the upstream gave as it is, or one pubdeck made.
#[derive(Debug)]
pub enum Answer<T> {
    Ours(T),
    Forwarded(upstream::Forwarded),
}

/// The Flox API over one caller's view of the catalog, with the upstream if any.
#[derive(Debug, Clone, Copy)]
pub struct FloxCatalog<'a> {
    pub catalog: &'a EmbeddedCatalog,
    pub upstream: Option<&'a Upstream>,
    /// S3 credentials handed out with an org's store (`serve --store-credentials`).
    pub credentials: &'a credentials::StoreCredentials,
}

/// Query of `GET /api/v1/catalog/search`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SearchParams {
    pub system: Option<String>,
    pub search_term: Option<String>,
    pub catalogs: Option<String>,
    pub page: Option<i64>,
    #[serde(rename = "pageSize")]
    pub page_size: Option<i64>,
}

/// Query of `GET /api/v1/catalog/packages/{attr_path}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PageParams {
    pub page: Option<i64>,
    #[serde(rename = "pageSize")]
    pub page_size: Option<i64>,
}

fn page_bounds(page: Option<i64>, size: Option<i64>, default: i64) -> FloxResult<(i64, i64)> {
    let page = page.unwrap_or(0);
    let size = size.unwrap_or(default);
    if page < 0 {
        return Err(FloxError::Invalid("page must be 0 or more".into()));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(FloxError::Invalid(format!(
            "pageSize must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    Ok((page, size))
}

/// `ORG/PACKAGE` split, when both follow pubdeck's name rules.
pub fn org_ref(attr_path: &str) -> Option<(&str, &str)> {
    let (org, package) = attr_path.split_once('/')?;
    (validate_org_name(org).is_ok() && validate_package_name(package).is_ok())
        .then_some((org, package))
}

fn query_string(pairs: &[(&str, String)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

/// The store URL as Nix reads it (canonical, parsed again: a catalog's text never reaches
/// the client raw).
pub fn nix_store_url(store_url: &str) -> Option<String> {
    StoreUrl::parse(store_url).ok().map(|u| u.to_string())
}

/// The `derivation` Flox sees for a build.
pub fn derivation_of(b: &BuildRecord) -> String {
    if b.derivation.is_empty() {
        b.store_path.clone()
    } else {
        b.derivation.clone()
    }
}

/// A build as Flox's `PackageResolutionInfo`.
pub fn resolution_info(b: &BuildRecord, store_url: &str) -> PackageResolutionInfo {
    let attr = format!("{}/{}", b.org, b.package);
    let locked_url = if b.source_url.is_empty() {
        String::new()
    } else {
        format!(
            "{}{}rev={}",
            b.source_url,
            if b.source_url.contains('?') { "&" } else { "?" },
            b.revision
        )
    };
    PackageResolutionInfo {
        catalog: Some(b.org.clone()),
        attr_path: attr.clone(),
        pkg_path: attr,
        derivation: derivation_of(b),
        name: format!("{}-{}", b.package, b.version),
        pname: b.package.clone(),
        version: b.version.clone(),
        system: b.system.clone(),
        outputs: vec![PackageOutput {
            name: "out".into(),
            store_path: b.store_path.clone(),
        }],
        outputs_to_install: Some(vec!["out".into()]),
        description: (!b.description.is_empty()).then(|| b.description.clone()),
        license: None,
        locked_url,
        rev: b.revision.clone(),
        rev_count: i64::try_from(b.rev_count).unwrap_or(i64::MAX),
        rev_date: if b.rev_date.is_empty() {
            b.published_at.clone()
        } else {
            b.rev_date.clone()
        },
        broken: Some(false),
        insecure: Some(false),
        unfree: Some(false),
        missing_builds: Some(false),
        stabilities: Some(Vec::new()),
        scrape_date: Some(b.published_at.clone()),
        cache_uri: nix_store_url(store_url),
        install_id: None,
    }
}

fn message(level: &str, kind: &str, text: String, context: &[(&str, &str)]) -> ResolutionMessage {
    ResolutionMessage {
        level: level.into(),
        kind: kind.into(),
        message: text,
        context: context
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Flox's words for a package it does not know (`recorded/resolve/badpkg.yaml`).
fn not_found_text(attr_path: &str) -> String {
    format!("The package '{attr_path}' is not found in the catalog.")
}

/// Flox's answer for a package it does not know (`recorded/resolve/badpkg.yaml`).
fn not_in_catalog(d: &PackageDescriptor) -> ResolutionMessage {
    message(
        "error",
        "attr_path_not_found.not_in_catalog",
        not_found_text(&d.attr_path),
        &[("attr_path", &d.attr_path), ("install_id", &d.install_id)],
    )
}

impl FloxCatalog<'_> {
    /// The catalog `org`, when the caller may see it; `None` for a hidden or missing one, or
    /// a name no catalog can have: then the request is not about pubdeck's orgs.
    pub async fn visible_org(&self, org: &str) -> FloxResult<Option<CatalogInfo>> {
        match self.catalog.catalog(org).await {
            Ok(info) => Ok(Some(info)),
            Err(CatalogError::NotFound { .. } | CatalogError::BadRequest(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `org/package` when `attr_path` names a package of an org the caller may see.
    async fn org_package<'p>(
        &self,
        attr_path: &'p str,
    ) -> FloxResult<Option<(CatalogInfo, &'p str)>> {
        let Some((org, package)) = org_ref(attr_path) else {
            return Ok(None);
        };
        Ok(self.visible_org(org).await?.map(|info| (info, package)))
    }

    async fn detail(&self, org: &str, package: &str) -> FloxResult<Option<PackageDetail>> {
        match self.catalog.show(org, package).await {
            Ok(d) => Ok(Some(d)),
            Err(CatalogError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /api/v1/catalog/search`: the org packages the caller may see that match, one
    /// item each for `system` (its highest version not yanked that has a build for it),
    /// followed by the upstream's results; pages count over both.
    pub async fn search(&self, p: &SearchParams) -> FloxResult<PackageSearchResult> {
        let system = p
            .system
            .as_deref()
            .ok_or_else(|| FloxError::Invalid("system is required".into()))?;
        validate_system(system).map_err(|e| FloxError::Invalid(e.to_string()))?;
        let (page, size) = page_bounds(p.page, p.page_size, 10)?;
        let term = p
            .search_term
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let Some(t) = term
            && !(2..=200).contains(&t.chars().count())
        {
            return Err(FloxError::Invalid(
                "search_term must be 2 to 200 characters".into(),
            ));
        }
        let wanted: Option<HashSet<&str>> = p.catalogs.as_deref().map(|c| {
            c.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        });
        let orgs: Vec<String> = self
            .catalog
            .catalogs()
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect();
        let org_wanted = |org: &str| wanted.as_ref().is_none_or(|w| w.contains(org));
        let names: Vec<(String, String)> = match term {
            Some(t) => self
                .catalog
                .search_answer(t, MAX_SEARCH_LIMIT)
                .await?
                .results
                .into_iter()
                .map(|h| (h.org, h.package))
                .collect(),
            None => match self.catalog.list_packages(None).await? {
                Listing::Packages { packages, .. } => packages
                    .into_iter()
                    .map(|s| (s.org, s.package))
                    .take(MAX_SEARCH_LIMIT)
                    .collect(),
                Listing::NotModified { .. } => Vec::new(),
            },
        };
        let mut ours = Vec::new();
        for (org, package) in names.into_iter().filter(|(o, _)| org_wanted(o)) {
            let Some(detail) = self.detail(&org, &package).await? else {
                continue;
            };
            let build = detail
                .versions
                .iter()
                .filter(|v| !v.yanked)
                .find_map(|v| v.builds.iter().find(|b| b.system == system));
            if let Some(b) = build {
                let attr = format!("{org}/{package}");
                ours.push(PackageInfoSearch {
                    attr_path: attr.clone(),
                    catalog: Some(org.clone()),
                    pkg_path: attr,
                    name: format!("{}-{}", b.package, b.version),
                    pname: b.package.clone(),
                    version: Some(b.version.clone()),
                    description: (!b.description.is_empty()).then(|| b.description.clone()),
                    stabilities: Vec::new(),
                    system: system.to_string(),
                    deprecation: None,
                });
            }
        }
        let ours_total = ours.len() as i64;
        let start = page * size;
        let mut items: Vec<PackageInfoSearch> = ours
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(size as usize)
            .collect();
        // The upstream's part: only when it may hold something asked for.
        let upstream_catalogs: Option<Vec<&str>> = wanted.as_ref().map(|w| {
            w.iter()
                .copied()
                .filter(|c| !orgs.iter().any(|o| o == c))
                .collect()
        });
        let ask_upstream = upstream_catalogs.as_ref().is_none_or(|c| !c.is_empty());
        let mut total = ours_total;
        if let (Some(up), true) = (self.upstream, ask_upstream) {
            let mut pairs = vec![("system", system.to_string())];
            if let Some(t) = term {
                pairs.push(("search_term", t.to_string()));
            }
            if let Some(c) = &upstream_catalogs {
                pairs.push(("catalogs", c.join(",")));
            }
            // Items `from..from+want` of the upstream's list, from at most two of its pages.
            let from = (start - ours_total).max(0);
            let want = size - items.len() as i64;
            let first_page = from / size;
            let mut fetched: Vec<PackageInfoSearch> = Vec::new();
            let mut upstream_total = 0;
            for up_page in first_page..=first_page + 1 {
                let mut q = pairs.clone();
                q.push(("page", up_page.to_string()));
                q.push(("pageSize", size.to_string()));
                let path = format!("/api/v1/catalog/search?{}", query_string(&q));
                let (status, answer): (u16, PackageSearchResult) =
                    up.json("GET", &path, None).await?;
                up.expect_ok(status)?;
                upstream_total = answer.total_count;
                let n = answer.items.len() as i64;
                fetched.extend(answer.items);
                if want <= 0 || n < size || (up_page + 1) * size >= upstream_total {
                    break;
                }
                if (up_page + 1) * size >= from + want {
                    break;
                }
            }
            let skip = (from - first_page * size).max(0) as usize;
            if want > 0 {
                items.extend(fetched.into_iter().skip(skip).take(want as usize));
            }
            total += upstream_total;
        }
        Ok(PackageSearchResult {
            items,
            total_count: total,
        })
    }

    /// `GET /api/v1/catalog/packages/{attr_path}`: every version and system of an org package
    /// (highest version first, then by system), or the upstream's answer for anything else.
    /// `requested` is the request's path and query, which an upstream gets as they are.
    pub async fn packages(
        &self,
        attr_path: &str,
        p: &PageParams,
        requested: &str,
    ) -> FloxResult<Answer<PackagesResult>> {
        let (page, size) = page_bounds(p.page, p.page_size, 10)?;
        let Some((info, package)) = self.org_package(attr_path).await? else {
            return match self.upstream {
                Some(up) => Ok(Answer::Forwarded(up.forward("GET", requested, None).await?)),
                None => Err(FloxError::NotFound(not_found_text(attr_path))),
            };
        };
        let Some(detail) = self.detail(&info.name, package).await? else {
            return Err(FloxError::NotFound(not_found_text(attr_path)));
        };
        let all: Vec<PackageResolutionInfo> = detail
            .versions
            .iter()
            .flat_map(|v| v.builds.iter())
            .map(|b| resolution_info(b, &info.store_url))
            .collect();
        let total = all.len() as i64;
        let items = all
            .into_iter()
            .skip(usize::try_from(page * size).unwrap_or(usize::MAX))
            .take(size as usize)
            .collect();
        Ok(Answer::Ours(PackagesResult {
            items,
            total_count: total,
        }))
    }

    /// `POST /api/v1/catalog/resolve`: org descriptors resolved here by pubdeck's rules,
    /// the rest by the upstream (or answered "not found" without one); a group resolves
    /// only when all its descriptors do.
    pub async fn resolve(&self, groups: &PackageGroups) -> FloxResult<ResolvedPackageGroups> {
        let n: usize = groups.items.iter().map(|g| g.descriptors.len()).sum();
        if n > MAX_DESCRIPTORS || groups.items.len() > MAX_DESCRIPTORS {
            return Err(FloxError::Invalid(format!(
                "a resolve request holds at most {MAX_DESCRIPTORS} descriptors"
            )));
        }
        for d in groups.items.iter().flat_map(|g| &g.descriptors) {
            for s in &d.systems {
                validate_system(s).map_err(|e| FloxError::Invalid(e.to_string()))?;
            }
        }
        // Which descriptors are ours.
        let mut ours: HashMap<String, Option<CatalogInfo>> = HashMap::new();
        for d in groups.items.iter().flat_map(|g| &g.descriptors) {
            if let Some((org, _)) = org_ref(&d.attr_path)
                && !ours.contains_key(org)
            {
                let info = self.visible_org(org).await?;
                ours.insert(org.to_string(), info);
            }
        }
        let is_ours = |d: &PackageDescriptor| {
            org_ref(&d.attr_path).is_some_and(|(org, _)| ours.get(org).is_some_and(Option::is_some))
        };
        // The upstream's share: each group with only its other descriptors.
        let foreign: Vec<PackageGroup> = groups
            .items
            .iter()
            .filter_map(|g| {
                let rest: Vec<PackageDescriptor> = g
                    .descriptors
                    .iter()
                    .filter(|d| !is_ours(d))
                    .cloned()
                    .collect();
                (!rest.is_empty()).then(|| PackageGroup {
                    name: g.name.clone(),
                    stability: g.stability.clone(),
                    descriptors: rest,
                })
            })
            .collect();
        let mut upstream_groups: HashMap<String, ResolvedPackageGroup> = HashMap::new();
        if !foreign.is_empty()
            && let Some(up) = self.upstream
        {
            let body = serde_json::to_value(PackageGroups { items: foreign })
                .map_err(|e| FloxError::Invalid(e.to_string()))?;
            let (status, answer): (u16, ResolvedPackageGroups) = up
                .json("POST", "/api/v1/catalog/resolve", Some(&body))
                .await?;
            up.expect_ok(status)?;
            upstream_groups = answer
                .items
                .into_iter()
                .map(|g| (g.name.clone(), g))
                .collect();
        }
        let mut out = Vec::new();
        for g in &groups.items {
            let mut messages = Vec::new();
            let mut packages = Vec::new();
            let mut page = CatalogPage {
                page: 0,
                url: String::new(),
                packages: None,
                messages: Vec::new(),
                complete: true,
            };
            // Org descriptors, by install id (one per system from Flox).
            let mut by_id: BTreeMap<&str, Vec<&PackageDescriptor>> = BTreeMap::new();
            for d in g.descriptors.iter().filter(|d| is_ours(d)) {
                by_id.entry(d.install_id.as_str()).or_default().push(d);
            }
            for descriptors in by_id.values() {
                match self.resolve_org(descriptors, &ours).await? {
                    Ok(resolved) => packages.extend(resolved),
                    Err(msgs) => messages.extend(msgs),
                }
            }
            if g.descriptors.iter().any(|d| !is_ours(d)) {
                match upstream_groups.remove(&g.name) {
                    Some(up) => {
                        messages.extend(up.messages);
                        match up.page {
                            Some(p) if messages.iter().all(|m| m.level != "error") => {
                                page.page = p.page;
                                page.url = p.url;
                                page.messages = p.messages;
                                page.complete = p.complete;
                                packages.extend(p.packages.unwrap_or_default());
                            }
                            _ => {
                                if !messages.iter().any(|m| m.level == "error") {
                                    messages.extend(
                                        g.descriptors
                                            .iter()
                                            .filter(|d| !is_ours(d))
                                            .map(not_in_catalog),
                                    );
                                }
                            }
                        }
                    }
                    None => messages.extend(
                        g.descriptors
                            .iter()
                            .filter(|d| !is_ours(d))
                            .map(not_in_catalog),
                    ),
                }
            }
            let failed = messages.iter().any(|m| m.level == "error");
            out.push(ResolvedPackageGroup {
                name: g.name.clone(),
                page: (!failed).then(|| {
                    page.packages = Some(packages);
                    page
                }),
                candidate_pages: None,
                messages,
            });
        }
        Ok(ResolvedPackageGroups { items: out })
    }

    /// One org install id over its systems: the locked build when it still fits, else the
    /// highest version that fits and has a build for every system asked for (a yanked
    /// version only when pinned). `Err` holds Flox's messages saying why not.
    async fn resolve_org(
        &self,
        descriptors: &[&PackageDescriptor],
        ours: &HashMap<String, Option<CatalogInfo>>,
    ) -> FloxResult<Result<Vec<PackageResolutionInfo>, Vec<ResolutionMessage>>> {
        let first = descriptors[0];
        let (org, package) = org_ref(&first.attr_path).expect("an org descriptor");
        let Some(Some(info)) = ours.get(org) else {
            return Ok(Err(descriptors.iter().map(|d| not_in_catalog(d)).collect()));
        };
        let Some(detail) = self.detail(org, package).await? else {
            return Ok(Err(descriptors.iter().map(|d| not_in_catalog(d)).collect()));
        };
        let constraint = Constraint::parse(first.version.as_deref());
        let allow_pre = first.allow_pre_releases.unwrap_or(false);
        let systems: Vec<&str> = descriptors
            .iter()
            .flat_map(|d| d.systems.iter().map(String::as_str))
            .collect();
        let has_all = |v: &super::VersionDetail| {
            systems
                .iter()
                .all(|s| v.builds.iter().any(|b| b.system == *s))
        };
        let locked: HashSet<&str> = descriptors
            .iter()
            .filter_map(|d| d.derivation.as_deref())
            .collect();
        let fits = |v: &super::VersionDetail| {
            constraint.matches(&v.version, allow_pre) && (!v.yanked || constraint.is_pin())
        };
        let chosen = detail
            .versions
            .iter()
            .find(|v| {
                constraint.matches(&v.version, allow_pre)
                    && has_all(v)
                    && v.builds
                        .iter()
                        .any(|b| locked.contains(derivation_of(b).as_str()))
            })
            .or_else(|| detail.versions.iter().find(|v| fits(v) && has_all(v)));
        let Some(version) = chosen else {
            let ctx = [
                ("attr_path", first.attr_path.as_str()),
                ("install_id", first.install_id.as_str()),
            ];
            let any_fits = detail.versions.iter().any(&fits);
            let msg = if any_fits {
                let mut have: Vec<&str> = detail
                    .versions
                    .iter()
                    .filter(|v| fits(v))
                    .flat_map(|v| v.builds.iter().map(|b| b.system.as_str()))
                    .collect();
                have.sort_unstable();
                have.dedup();
                let valid = have.join(",");
                message(
                    "error",
                    "attr_path_not_found.not_found_for_all_systems",
                    format!(
                        "The package '{}' has no version for all of the systems {}; it is built for {}.",
                        first.attr_path,
                        systems.join(", "),
                        have.join(", ")
                    ),
                    &[ctx[0], ctx[1], ("valid_systems", valid.as_str())],
                )
            } else {
                message(
                    "error",
                    "version_not_found",
                    format!(
                        "The package '{}' has no version matching '{}'.",
                        first.attr_path,
                        first.version.as_deref().unwrap_or("")
                    ),
                    &ctx,
                )
            };
            return Ok(Err(vec![msg]));
        };
        Ok(Ok(descriptors
            .iter()
            .flat_map(|d| {
                d.systems.iter().filter_map(|s| {
                    let b = version.builds.iter().find(|b| b.system == *s)?;
                    let mut r = resolution_info(b, &info.store_url);
                    r.install_id = Some(d.install_id.clone());
                    Some(r)
                })
            })
            .collect()))
    }

    /// `POST /api/v1/catalog/store`: for each store path an org build of the caller's
    /// catalogs has as its output, where to fetch it (the org's store) and the keys that
    /// sign it; the other paths from the upstream (or with no location).
    pub async fn store_info(&self, req: &StoreInfoRequest) -> FloxResult<StoreInfoResponse> {
        if req.outpaths.len() > MAX_OUTPATHS {
            return Err(FloxError::Invalid(format!(
                "a store request asks about at most {MAX_OUTPATHS} paths"
            )));
        }
        let mut items: BTreeMap<String, Vec<StoreInfo>> = BTreeMap::new();
        let mut foreign = Vec::new();
        let mut infos: HashMap<String, CatalogInfo> = HashMap::new();
        for path in &req.outpaths {
            let builds = self.catalog.builds_at_path(path).await?;
            if builds.is_empty() {
                foreign.push(path.clone());
                continue;
            }
            let mut seen = HashSet::new();
            let mut locations = Vec::new();
            for b in builds {
                if !seen.insert(b.org.clone()) {
                    continue;
                }
                let info = match infos.get(&b.org) {
                    Some(i) => i.clone(),
                    None => {
                        let i = self.catalog.catalog(&b.org).await?;
                        infos.insert(b.org.clone(), i.clone());
                        i
                    }
                };
                // Read credentials, for an S3 store, to a caller who may read the catalog
                // (only visible catalogs' builds get here).
                let auth = info
                    .store_url
                    .starts_with("s3://")
                    .then(|| self.credentials.auth(&info.name, credentials::Access::Read))
                    .flatten();
                locations.push(StoreInfo {
                    url: nix_store_url(&info.store_url),
                    auth,
                    catalog: Some(info.name.clone()),
                    package: Some(b.package.clone()),
                    public_keys: Some(info.keys.clone()),
                });
            }
            items.insert(path.clone(), locations);
        }
        if !foreign.is_empty() {
            match self.upstream {
                Some(up) => {
                    let body = serde_json::json!({ "outpaths": foreign });
                    let (status, answer): (u16, StoreInfoResponse) = up
                        .json("POST", "/api/v1/catalog/store", Some(&body))
                        .await?;
                    up.expect_ok(status)?;
                    for p in &foreign {
                        items.insert(p.clone(), answer.items.get(p).cloned().unwrap_or_default());
                    }
                }
                None => {
                    for p in foreign {
                        items.insert(p, Vec::new());
                    }
                }
            }
        }
        Ok(StoreInfoResponse { items })
    }

    /// `POST /api/v1/catalog/catalogs/{org}/packages?name=`: creates the package (owner,
    /// publish scope); again: the same answer.
    pub async fn create_package(&self, org: &str, name: &str) -> FloxResult<UserPackage> {
        self.catalog.declare_package(org, name).await?;
        Ok(UserPackage {
            catalog: org.to_string(),
            name: name.to_string(),
            original_url: None,
        })
    }

    /// `POST …/packages/{package}/publish/info`: the org's store, written with `nix copy`.
    pub async fn publish_info(&self, org: &str, package: &str) -> FloxResult<PublishInfoResponse> {
        let info = self.catalog.publishable(org).await?;
        self.catalog.require_package(org, package).await?;
        // Write credentials, for an S3 store, only to its owner with a publish token.
        let auth = info
            .store_url
            .starts_with("s3://")
            .then(|| self.credentials.auth(org, credentials::Access::Write))
            .flatten();
        let url = nix_store_url(&info.store_url).ok_or_else(|| {
            CatalogError::Internal(format!("catalog {org} has a store URL Nix cannot read"))
        })?;
        Ok(PublishInfoResponse {
            ingress_uri: Some(url.clone()),
            ingress_auth: auth,
            catalog_store_config: CatalogStoreConfig::NixCopy {
                ingress_uri: url.clone(),
                egress_uri: url,
            },
        })
    }

    /// `POST …/packages/{package}/check-build`: whether this source revision is already
    /// published for the system (the same lookup as pubdeck's own publish).
    pub async fn check_build(
        &self,
        org: &str,
        package: &str,
        req: &CheckBuildRequest,
    ) -> FloxResult<CheckBuildResponse> {
        validate_system(&req.system).map_err(|e| FloxError::Invalid(e.to_string()))?;
        let found = self
            .catalog
            .check_build(&super::CheckBuild {
                org: org.to_string(),
                name: package.to_string(),
                revision: req.source_rev.clone(),
                system: Some(req.system.clone()),
            })
            .await?;
        Ok(match found {
            Some(b) => CheckBuildResponse {
                already_published: true,
                source_rev: Some(b.revision.clone()),
                source_rev_date: (!b.rev_date.is_empty()).then(|| b.rev_date.clone()),
                published_at: Some(b.published_at),
            },
            None => CheckBuildResponse {
                already_published: false,
                source_rev: None,
                source_rev_date: None,
                published_at: None,
            },
        })
    }

    /// The caller's handle, for `/api/v1/accounts/me`.
    pub async fn me(&self) -> FloxResult<AccountsMe> {
        let id = self.catalog.identity().await?;
        Ok(AccountsMe {
            user_id: format!("pubdeck|{}", id.user),
            handle: id.user,
            expires_at: id.expires_at,
        })
    }
}
