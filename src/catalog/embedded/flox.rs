//! What the Flox catalog routes (`catalog::flox`) need of the embedded catalog beyond
//! [`Catalog`]: the same access rules, from the same lookups.

use super::{
    BuildRecord, CatalogError, CatalogInfo, CatalogResult, EmbeddedCatalog, Missing, NewBuild,
    RegisterOutcome, Role, Scope, validate_package_name,
};

/// What the Flox catalog routes (`catalog::flox`) need beyond [`Catalog`]: the same access
/// rules, from the same lookups.
impl EmbeddedCatalog {
    /// The builds whose output is `store_path` (a path of `/nix/store`) in the catalogs this
    /// caller may see.
    pub async fn builds_at_path(&self, store_path: &str) -> CatalogResult<Vec<BuildRecord>> {
        crate::nix::StorePath::parse(store_path).map_err(|e| {
            CatalogError::BadRequest(format!(
                "{} is not a store path: {e}",
                crate::catalog::quote(store_path)
            ))
        })?;
        let visible = self.visible_now().await?;
        let builds = self.db().builds_at_path(store_path).await?;
        Ok(builds
            .into_iter()
            .filter(|b| visible.by_name.contains_key(&b.org))
            .collect())
    }

    /// The catalog, when the caller may publish to it (owner, publish scope): what Flox's
    /// publish routes ask first.
    pub async fn publishable(&self, org: &str) -> CatalogResult<CatalogInfo> {
        let row = self.owned_for(org, Scope::Publish, "publishing").await?;
        self.info(row, Role::Owner).await
    }

    /// Creates `org/package` before its first build (owner, publish scope); again: no change.
    pub async fn declare_package(&self, org: &str, package: &str) -> CatalogResult<()> {
        validate_package_name(package)?;
        self.owned_for(org, Scope::Publish, "creating a package")
            .await?;
        self.db().declare_package(org, package, &self.user).await
    }

    /// `Ok` when `org/package` exists (has builds or was created) in a catalog the caller may
    /// see; a hidden catalog answers like a missing one, a missing package with Flox's words.
    pub async fn require_package(&self, org: &str, package: &str) -> CatalogResult<()> {
        validate_package_name(package)?;
        self.visible(org).await?;
        self.package_in(org, package).await
    }

    /// The package check itself, for a caller that has checked the catalog already.
    async fn package_in(&self, org: &str, package: &str) -> CatalogResult<()> {
        if self.db().package_exists(org, package).await? {
            Ok(())
        } else {
            Err(CatalogError::not_found(
                Missing::Package,
                format!("The package with name {package} in catalog {org} was not found"),
            ))
        }
    }

    /// Registers a build the Flox CLI published (input-addressed; owner, publish scope) whose
    /// closure the caller (`catalog::flox::ingest`) found in the org's store, signed by
    /// `key_name`, a key the org trusts. Refused when another catalog has the same store path
    /// with other content. Same version again: as [`Catalog::register_build`].
    pub async fn register_input_addressed(
        &self,
        build: &NewBuild,
        key_name: &str,
    ) -> CatalogResult<RegisterOutcome> {
        crate::catalog::validate::validate_input_addressed(build)?;
        self.owned_for(&build.org, Scope::Publish, "publishing")
            .await?;
        self.package_in(&build.org, &build.package).await?;
        for other in self.db().builds_at_path(&build.store_path).await? {
            if other.nar_hash != build.nar_hash {
                // Another catalog's name is not said: the caller may not see it.
                return Err(CatalogError::Conflict(format!(
                    "store path {} is already published with other content ({}); an input-addressed path must name one content everywhere",
                    build.store_path,
                    if other.org == build.org {
                        "in this catalog"
                    } else {
                        "in another catalog"
                    }
                )));
            }
        }
        let inserted = self.db().insert_build(build, key_name, &self.user).await?;
        self.outcome(build, inserted)
    }
}
