//! The JSON shapes of Flox's catalog API (`openapi.json` of flox/flox `cli/catalog-api-v1`),
//! as far as `pubdeck serve` answers or reads them. Field names and nullability follow the
//! specification; `tests/it/flox_api.rs` validates every answer against its schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `PackageInfoSearch`: one search result, for one system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfoSearch {
    pub attr_path: String,
    pub catalog: Option<String>,
    pub pkg_path: String,
    pub name: String,
    pub pname: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub stabilities: Vec<String>,
    pub system: String,
    #[serde(default)]
    pub deprecation: Option<serde_json::Value>,
}

/// `PackageSearchResult`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PackageSearchResult {
    pub items: Vec<PackageInfoSearch>,
    pub total_count: i64,
}

/// `PackageOutput`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageOutput {
    pub name: String,
    pub store_path: String,
}

/// `PackageResolutionInfo` (in `PackagesResult`) and, with `install_id`,
/// `ResolvedPackageDescriptor` (in a resolved group's page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageResolutionInfo {
    pub catalog: Option<String>,
    pub attr_path: String,
    pub pkg_path: String,
    pub derivation: String,
    pub name: String,
    pub pname: String,
    pub version: String,
    pub system: String,
    pub outputs: Vec<PackageOutput>,
    pub outputs_to_install: Option<Vec<String>>,
    pub description: Option<String>,
    pub license: Option<String>,
    pub locked_url: String,
    pub rev: String,
    pub rev_count: i64,
    pub rev_date: String,
    pub broken: Option<bool>,
    pub insecure: Option<bool>,
    pub unfree: Option<bool>,
    pub missing_builds: Option<bool>,
    pub stabilities: Option<Vec<String>>,
    pub scrape_date: Option<String>,
    pub cache_uri: Option<String>,
    /// Only in a resolved page (`ResolvedPackageDescriptor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_id: Option<String>,
}

/// `PackagesResult`: every version and system of one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PackagesResult {
    pub items: Vec<PackageResolutionInfo>,
    pub total_count: i64,
}

/// `PackageDescriptor`: what to resolve for one install id and its systems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDescriptor {
    pub install_id: String,
    pub attr_path: String,
    pub systems: Vec<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub allow_pre_releases: Option<bool>,
    #[serde(default)]
    pub allow_unfree: Option<bool>,
    #[serde(default)]
    pub allow_broken: Option<bool>,
    #[serde(default)]
    pub allow_insecure: Option<bool>,
    #[serde(default)]
    pub allowed_licenses: Option<Vec<String>>,
    #[serde(default)]
    pub allow_missing_builds: Option<bool>,
    /// The derivation locked before: kept when it still satisfies the descriptor.
    #[serde(default)]
    pub derivation: Option<String>,
}

/// `PackageGroup`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageGroup {
    pub name: String,
    #[serde(default)]
    pub stability: Option<String>,
    pub descriptors: Vec<PackageDescriptor>,
}

/// `PackageGroups`: the body of `POST /api/v1/catalog/resolve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageGroups {
    pub items: Vec<PackageGroup>,
}

/// `ResolutionMessageGeneral`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionMessage {
    pub level: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub context: BTreeMap<String, String>,
}

/// `CatalogPage`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPage {
    pub page: i64,
    pub url: String,
    pub packages: Option<Vec<PackageResolutionInfo>>,
    #[serde(default)]
    pub messages: Vec<ResolutionMessage>,
    #[serde(default)]
    pub complete: bool,
}

/// `ResolvedPackageGroup`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedPackageGroup {
    pub name: String,
    pub page: Option<CatalogPage>,
    #[serde(default)]
    pub candidate_pages: Option<Vec<CatalogPage>>,
    pub messages: Vec<ResolutionMessage>,
}

/// `ResolvedPackageGroups`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResolvedPackageGroups {
    pub items: Vec<ResolvedPackageGroup>,
}

/// `StoreInfoRequest`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInfoRequest {
    pub outpaths: Vec<String>,
}

/// `StoreInfo`: where one store path can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInfo {
    pub url: Option<String>,
    pub auth: Option<serde_json::Map<String, serde_json::Value>>,
    pub catalog: Option<String>,
    pub package: Option<String>,
    pub public_keys: Option<Vec<String>>,
}

/// `StoreInfoResponse`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StoreInfoResponse {
    pub items: BTreeMap<String, Vec<StoreInfo>>,
}

/// `UserPackage`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPackage {
    pub catalog: String,
    pub name: String,
    pub original_url: Option<String>,
}

/// `CatalogStoreConfig` as pubdeck answers it: the org's store, written to with `nix copy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "store_type")]
pub enum CatalogStoreConfig {
    #[serde(rename = "nix-copy")]
    NixCopy {
        ingress_uri: String,
        egress_uri: String,
    },
    #[serde(rename = "meta-only")]
    MetaOnly {},
}

/// `PublishInfoResponseCatalog`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishInfoResponse {
    pub ingress_uri: Option<String>,
    pub ingress_auth: Option<serde_json::Map<String, serde_json::Value>>,
    pub catalog_store_config: CatalogStoreConfig,
}

/// `CheckBuildRequest`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckBuildRequest {
    pub source_url: String,
    pub source_rev: String,
    #[serde(default)]
    pub nixpkgs_rev: String,
    pub system: String,
    #[serde(default)]
    pub locked_inputs: Option<serde_json::Value>,
}

/// `CheckBuildResponse`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckBuildResponse {
    pub already_published: bool,
    pub source_rev: Option<String>,
    pub source_rev_date: Option<String>,
    pub published_at: Option<String>,
}

/// `PackageDerivation`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDerivation {
    pub drv_path: String,
    pub system: String,
    pub name: String,
    pub outputs: Vec<PackageOutput>,
    #[serde(default)]
    pub outputs_to_install: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub pname: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub broken: Option<bool>,
    #[serde(default)]
    pub unfree: Option<bool>,
}

/// `PackageBuildWithNarInfo`: the body of `POST …/packages/{package}/builds`. The narinfos
/// the client sends are not trusted: the catalog reads the store's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageBuild {
    pub url: String,
    pub rev: String,
    pub rev_count: i64,
    pub rev_date: String,
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    pub derivation: PackageDerivation,
    #[serde(default)]
    pub locked_base_catalog_url: Option<String>,
    #[serde(default)]
    pub cache_uri: Option<String>,
    #[serde(default)]
    pub build_type: Option<String>,
}

/// `ErrorResponse`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub detail: String,
}

/// What `/api/v1/accounts/me` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsMe {
    pub user_id: String,
    pub handle: String,
    pub expires_at: Option<String>,
}
