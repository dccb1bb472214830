//! Opening the catalog the settings name: settings are plain data, the catalog knows how to
//! open itself from them.

use crate::config::{CatalogLocation, Settings};

use super::{AnyCatalog, CatalogClient, CatalogError, CatalogResult, EmbeddedCatalog};

impl Settings {
    /// Opens the configured catalog: a client for a service URL, else the embedded file
    /// (created on first use).
    pub async fn open_catalog(&self) -> CatalogResult<AnyCatalog> {
        if let CatalogLocation::Embedded(path) = &self.catalog
            && !path.exists()
            && *path != self.default_catalog_file()
        {
            // A path that names nothing is a mistake, not a wish for a new catalog there.
            return Err(CatalogError::NoCatalogFile(path.clone()));
        }
        self.open_catalog_creating().await
    }

    /// [`Settings::open_catalog`], creating a local catalog file wherever it is named
    /// (`catalog create`).
    pub async fn open_catalog_creating(&self) -> CatalogResult<AnyCatalog> {
        match &self.catalog {
            CatalogLocation::Service(url) => Ok(AnyCatalog::Remote(CatalogClient::new(
                url,
                self.token.clone(),
            )?)),
            CatalogLocation::Embedded(path) => {
                Ok(AnyCatalog::Embedded(EmbeddedCatalog::open(path).await?))
            }
        }
    }
}
