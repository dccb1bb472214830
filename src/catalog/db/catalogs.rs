//! Catalogs: their rows, store, trusted keys and allowlist.

use super::*;

/// A catalog row.
#[derive(Debug, Clone)]
pub struct CatalogRow {
    /// Catalog name.
    pub name: String,
    /// Owner user name.
    pub owner: String,
    /// Store URL.
    pub store_url: String,
    /// Bumped on every change of its package list.
    pub generation: i64,
    /// Seconds since the epoch.
    pub created_at: i64,
}

pub(super) async fn insert_key<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    ex: E,
    catalog: &str,
    key_name: &str,
    key: &str,
    now: i64,
) -> CatalogResult<bool> {
    let res = sqlx::query(
        "INSERT INTO catalog_keys (catalog, public_key, key_name, added_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (catalog, public_key) DO NOTHING",
    )
    .bind(catalog)
    .bind(key)
    .bind(key_name)
    .bind(now)
    .execute(ex)
    .await
    .map_err(map_db)?;
    Ok(res.rows_affected() > 0)
}

pub(super) fn catalog_from_row(row: &AnyRow) -> CatalogResult<CatalogRow> {
    Ok(CatalogRow {
        name: get_str(row, "name")?,
        owner: get_str(row, "owner")?,
        store_url: get_str(row, "store_url")?,
        generation: get_i64(row, "generation")?,
        created_at: get_i64(row, "created_at")?,
    })
}

impl Db {
    /// One catalog row.
    pub async fn catalog_row(&self, name: &str) -> CatalogResult<Option<CatalogRow>> {
        let row = sqlx::query(
            "SELECT name, owner, store_url, generation, created_at FROM catalogs WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        row.as_ref().map(catalog_from_row).transpose()
    }

    /// One catalog row and whether `user` is on its allowlist, in one query: a missing and a
    /// hidden catalog cost the same (no timing difference between them).
    pub async fn catalog_row_for(
        &self,
        name: &str,
        user: &str,
    ) -> CatalogResult<Option<(CatalogRow, bool)>> {
        let row = sqlx::query(
            "SELECT name, owner, store_url, generation, created_at, \
             (SELECT COUNT(*) FROM allowlist WHERE catalog = $1 AND username = $2) AS allowed \
             FROM catalogs WHERE name = $1",
        )
        .bind(name)
        .bind(user)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        row.as_ref()
            .map(|r| Ok((catalog_from_row(r)?, get_i64(r, "allowed")? > 0)))
            .transpose()
    }

    /// Catalogs `user` owns or is allowlisted on, by name.
    pub async fn visible_catalogs(&self, user: &str) -> CatalogResult<Vec<CatalogRow>> {
        let rows = sqlx::query(
            "SELECT name, owner, store_url, generation, created_at FROM catalogs \
             WHERE owner = $1 OR name IN (SELECT catalog FROM allowlist WHERE username = $1) \
             ORDER BY name",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        rows.iter().map(catalog_from_row).collect()
    }

    /// Whether `user` is on the allowlist of `catalog`.
    pub async fn is_allowed(&self, catalog: &str, user: &str) -> CatalogResult<bool> {
        let row =
            sqlx::query("SELECT username FROM allowlist WHERE catalog = $1 AND username = $2")
                .bind(catalog)
                .bind(user)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_db)?;
        Ok(row.is_some())
    }

    /// Creates a catalog with its keys; `Conflict` if the name is taken.
    pub async fn insert_catalog(
        &self,
        name: &str,
        owner: &str,
        store_url: &str,
        keys: &[(String, String)],
    ) -> CatalogResult<()> {
        let now = now_secs();
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let res = sqlx::query(
            "INSERT INTO catalogs (name, owner, store_url, generation, created_at) VALUES ($1, $2, $3, 0, $4)",
        )
        .bind(name)
        .bind(owner)
        .bind(store_url)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(CatalogError::Conflict(format!(
                    "a catalog named {name} already exists; pick another name"
                )));
            }
            Err(e) => return Err(map_db(e)),
        }
        for (key_name, key) in keys {
            insert_key(&mut *tx, name, key_name, key, now).await?;
        }
        bump_state(&mut tx).await?;
        let entry = Audit {
            actor: owner,
            action: "create",
            subject: name.to_string(),
            detail: serde_json::json!({"store_url": store_url, "keys": keys.iter().map(|(n, _)| n).collect::<Vec<_>>()}),
        };
        audit(&mut tx, name, &entry).await?;
        tx.commit().await.map_err(map_db)
    }

    /// Sets the store URL (a change of the catalog: its generation moves on).
    pub async fn set_store(
        &self,
        catalog: &str,
        store_url: &str,
        actor: &str,
    ) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        sqlx::query("UPDATE catalogs SET store_url = $1 WHERE name = $2")
            .bind(store_url)
            .bind(catalog)
            .execute(&mut *tx)
            .await
            .map_err(map_db)?;
        bump_generation(&mut tx, catalog).await?;
        let entry = Audit {
            actor,
            action: "set-store",
            subject: catalog.to_string(),
            detail: serde_json::json!({"store_url": store_url}),
        };
        audit(&mut tx, catalog, &entry).await?;
        tx.commit().await.map_err(map_db)
    }

    /// Adds a trusted key (no-op if present; else the catalog's generation moves on).
    pub async fn add_key(
        &self,
        catalog: &str,
        key_name: &str,
        key: &str,
        actor: &str,
    ) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        if insert_key(&mut *tx, catalog, key_name, key, now_secs()).await? {
            bump_generation(&mut tx, catalog).await?;
            let entry = Audit {
                actor,
                action: "add-key",
                subject: key_name.to_string(),
                detail: serde_json::json!({"public_key": key}),
            };
            audit(&mut tx, catalog, &entry).await?;
        }
        tx.commit().await.map_err(map_db)
    }

    /// Removes every trusted key named `key_name`; how many were removed.
    pub async fn remove_key(
        &self,
        catalog: &str,
        key_name: &str,
        actor: &str,
    ) -> CatalogResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let res = sqlx::query("DELETE FROM catalog_keys WHERE catalog = $1 AND key_name = $2")
            .bind(catalog)
            .bind(key_name)
            .execute(&mut *tx)
            .await
            .map_err(map_db)?;
        let removed = res.rows_affected();
        if removed > 0 {
            bump_generation(&mut tx, catalog).await?;
            let entry = Audit {
                actor,
                action: "remove-key",
                subject: key_name.to_string(),
                detail: serde_json::json!({}),
            };
            audit(&mut tx, catalog, &entry).await?;
        }
        tx.commit().await.map_err(map_db)?;
        Ok(removed)
    }

    /// Every catalog's name and store URL, as stored.
    pub async fn store_urls(&self) -> CatalogResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, store_url FROM catalogs ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(map_db)?;
        rows.iter()
            .map(|r| Ok((get_str(r, "name")?, get_str(r, "store_url")?)))
            .collect()
    }

    /// Trusted keys of a catalog, oldest first.
    pub async fn keys(&self, catalog: &str) -> CatalogResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT public_key FROM catalog_keys WHERE catalog = $1 ORDER BY added_at, public_key",
        )
        .bind(catalog)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        rows.iter().map(|r| get_str(r, "public_key")).collect()
    }

    /// Adds `user` to the allowlist (no-op if present).
    pub async fn allow(&self, catalog: &str, user: &str, actor: &str) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let res = sqlx::query(
            "INSERT INTO allowlist (catalog, username, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (catalog, username) DO NOTHING",
        )
        .bind(catalog)
        .bind(user)
        .bind(now_secs())
        .execute(&mut *tx)
        .await
        .map_err(map_db)?;
        if res.rows_affected() > 0 {
            bump_state(&mut tx).await?;
            let entry = Audit {
                actor,
                action: "allow",
                subject: user.to_string(),
                detail: serde_json::json!({}),
            };
            audit(&mut tx, catalog, &entry).await?;
        }
        tx.commit().await.map_err(map_db)
    }

    /// Removes `user` from the allowlist; whether it was there.
    pub async fn revoke(&self, catalog: &str, user: &str, actor: &str) -> CatalogResult<bool> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let res = sqlx::query("DELETE FROM allowlist WHERE catalog = $1 AND username = $2")
            .bind(catalog)
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(map_db)?;
        let removed = res.rows_affected() > 0;
        if removed {
            bump_state(&mut tx).await?;
            let entry = Audit {
                actor,
                action: "revoke",
                subject: user.to_string(),
                detail: serde_json::json!({}),
            };
            audit(&mut tx, catalog, &entry).await?;
        }
        tx.commit().await.map_err(map_db)?;
        Ok(removed)
    }

    /// The allowlist, sorted.
    pub async fn allowlist(&self, catalog: &str) -> CatalogResult<Vec<String>> {
        let rows =
            sqlx::query("SELECT username FROM allowlist WHERE catalog = $1 ORDER BY username")
                .bind(catalog)
                .fetch_all(&self.pool)
                .await
                .map_err(map_db)?;
        rows.iter().map(|r| get_str(r, "username")).collect()
    }

    // ---- packages and builds --------------------------------------------------------------
}
