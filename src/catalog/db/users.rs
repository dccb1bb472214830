//! Users and their tokens: stored as SHA-256, scoped, expiring, revocable.

use super::*;

/// A new random token: `pdk_` (or for the Flox CLI `flox_pdk_`) + 32 random bytes, base64url
/// without padding. Both forms are stored and checked alike (as SHA-256); Flox takes a
/// `flox_`-prefixed token as an opaque access token and asks `/api/v1/accounts/me` whose it is.
pub fn generate_token(format: TokenFormat) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let prefix = match format {
        TokenFormat::Pubdeck => "pdk_",
        TokenFormat::Flox => "flox_pdk_",
    };
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The form of a new token's text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenFormat {
    /// `pdk_…`
    #[default]
    Pubdeck,
    /// `flox_pdk_…`: what the Flox CLI accepts as `FLOX_FLOXHUB_TOKEN`.
    Flox,
}

/// A token id: `tok-` + the creation time in microseconds (13 hex digits, so ids sort by
/// creation) + 4 random hex digits. Shown in listings; not a secret.
pub fn generate_token_id() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("tok-{micros:013x}{:04x}", rand::random::<u16>())
}

/// A token's row, as the service's authentication reads it.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub info: TokenInfo,
    pub token_hash: String,
    /// Seconds since the epoch; 0: never.
    pub expires_at: i64,
    /// Seconds since the epoch; 0: never.
    pub last_used_at: i64,
    /// Seconds since the epoch; 0: not revoked.
    pub revoked_at: i64,
    /// The database's state version, read in the same query.
    pub state_version: i64,
}

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// [`Db::token_by_hash`] through the native PostgreSQL driver.
pub(super) async fn token_by_hash_pg(
    pg: &sqlx::PgPool,
    hash: &str,
) -> CatalogResult<Option<TokenRow>> {
    type Row = (String, String, String, String, i64, i64, i64, i64, i64);
    let row: Option<Row> = sqlx::query_as(
        "SELECT t.id, t.username, t.token_hash, t.scope, t.created_at, t.expires_at, \
         t.last_used_at, t.revoked_at, s.version FROM tokens t CROSS JOIN catalog_state s \
         WHERE t.token_hash = $1 AND s.id = 1",
    )
    .bind(hash)
    .fetch_optional(pg)
    .await
    .map_err(map_db)?;
    let Some((id, user, token_hash, scope, created, expires, used, revoked, version)) = row else {
        return Ok(None);
    };
    let when = |t: i64| (t != 0).then(|| rfc3339(t));
    Ok(Some(TokenRow {
        info: TokenInfo {
            id,
            user,
            scope: Scope::parse(&scope).ok_or_else(|| {
                CatalogError::Internal(format!("token with unknown scope {scope:?}"))
            })?,
            created_at: rfc3339(created),
            expires_at: when(expires),
            last_used_at: when(used),
            revoked_at: when(revoked),
        },
        token_hash,
        expires_at: expires,
        last_used_at: used,
        revoked_at: revoked,
        state_version: version,
    }))
}

pub(super) fn token_from_row(row: &AnyRow) -> CatalogResult<TokenInfo> {
    let when = |col: &str| -> CatalogResult<Option<String>> {
        Ok(match get_i64(row, col)? {
            0 => None,
            t => Some(rfc3339(t)),
        })
    };
    let scope = get_str(row, "scope")?;
    Ok(TokenInfo {
        id: get_str(row, "id")?,
        user: get_str(row, "username")?,
        scope: Scope::parse(&scope)
            .ok_or_else(|| CatalogError::Internal(format!("token with unknown scope {scope:?}")))?,
        created_at: rfc3339(get_i64(row, "created_at")?),
        expires_at: when("expires_at")?,
        last_used_at: when("last_used_at")?,
        revoked_at: when("revoked_at")?,
    })
}

impl Db {
    /// Creates a user (without a token); `Conflict` if the name is taken.
    pub async fn create_user(&self, name: &str) -> CatalogResult<()> {
        let res =
            sqlx::query("INSERT INTO users (name, token_hash, created_at) VALUES ($1, NULL, $2)")
                .bind(name)
                .bind(now_secs())
                .execute(&self.pool)
                .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(CatalogError::Conflict(format!(
                "a user named {name} already exists"
            ))),
            Err(e) => Err(map_db(e)),
        }
    }

    /// Creates a user and returns its first token (admin scope, no expiry; only the token's
    /// hash is stored).
    pub async fn add_user(&self, name: &str) -> CatalogResult<String> {
        crate::catalog::validate_user_name(name)?;
        self.create_user(name).await?;
        let (_, token) = self.create_token(name, Scope::Admin, None).await?;
        Ok(token)
    }

    /// Creates the user if missing (embedded catalogs).
    pub async fn ensure_user(&self, name: &str) -> CatalogResult<()> {
        sqlx::query(
            "INSERT INTO users (name, token_hash, created_at) VALUES ($1, NULL, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now_secs())
        .execute(&self.pool)
        .await
        .map_err(map_db)?;
        Ok(())
    }

    /// Whether a user exists.
    pub async fn user_exists(&self, name: &str) -> CatalogResult<bool> {
        let row = sqlx::query("SELECT name FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db)?;
        Ok(row.is_some())
    }

    // ---- tokens ---------------------------------------------------------------------------

    /// Creates a token for `user` (who must exist) with `scope`, expiring at `expires_at`
    /// (seconds since the epoch; `None`: never). Returns its record and the token, which is
    /// not stored (only its SHA-256 is).
    pub async fn create_token(
        &self,
        user: &str,
        scope: Scope,
        expires_at: Option<i64>,
    ) -> CatalogResult<(TokenInfo, String)> {
        self.create_token_in(user, scope, expires_at, TokenFormat::Pubdeck)
            .await
    }

    /// [`Db::create_token`] with the token's text in `format`.
    pub async fn create_token_in(
        &self,
        user: &str,
        scope: Scope,
        expires_at: Option<i64>,
        format: TokenFormat,
    ) -> CatalogResult<(TokenInfo, String)> {
        crate::catalog::validate_user_name(user)?;
        if !self.user_exists(user).await? {
            return Err(CatalogError::not_found(
                crate::catalog::Missing::User,
                format!("no user named {user}"),
            ));
        }
        let token = generate_token(format);
        let id = generate_token_id();
        let now = now_secs();
        sqlx::query(
            "INSERT INTO tokens (id, username, token_hash, scope, created_at, expires_at, last_used_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, 0)",
        )
        .bind(&id)
        .bind(user)
        .bind(hash_token(&token))
        .bind(scope.as_str())
        .bind(now)
        .bind(expires_at.unwrap_or(0))
        .execute(&self.pool)
        .await
        .map_err(map_db)?;
        let info = TokenInfo {
            id,
            user: user.to_string(),
            scope,
            created_at: rfc3339(now),
            expires_at: expires_at.map(rfc3339),
            last_used_at: None,
            revoked_at: None,
        };
        Ok((info, token))
    }

    /// The tokens of `user`, oldest first (never the tokens themselves).
    pub async fn tokens_of(&self, user: &str) -> CatalogResult<Vec<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT id, username, scope, created_at, expires_at, last_used_at, revoked_at \
             FROM tokens WHERE username = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes token `id`; its record (or `None` if there is no such token). The state
    /// version moves on with it: services that cache tokens by state version (every
    /// instance over this database) refuse the token from their next request on.
    pub async fn revoke_token(&self, id: &str) -> CatalogResult<Option<TokenInfo>> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let changed =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at = 0")
                .bind(now_secs())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_db)?
                .rows_affected();
        if changed > 0 {
            bump_state(&mut tx).await?;
        }
        tx.commit().await.map_err(map_db)?;
        let row = sqlx::query(
            "SELECT id, username, scope, created_at, expires_at, last_used_at, revoked_at \
             FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// The token with this hash, with the state version read in the same query.
    pub async fn token_by_hash(&self, hash: &str) -> CatalogResult<Option<TokenRow>> {
        if let Some(pg) = &self.pg {
            return token_by_hash_pg(pg, hash).await;
        }
        let row = sqlx::query(
            "SELECT t.id, t.username, t.token_hash, t.scope, t.created_at, t.expires_at, \
             t.last_used_at, t.revoked_at, s.version FROM tokens t CROSS JOIN catalog_state s \
             WHERE t.token_hash = $1 AND s.id = 1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        row.map(|r| {
            Ok(TokenRow {
                info: token_from_row(&r)?,
                token_hash: get_str(&r, "token_hash")?,
                expires_at: get_i64(&r, "expires_at")?,
                last_used_at: get_i64(&r, "last_used_at")?,
                revoked_at: get_i64(&r, "revoked_at")?,
                state_version: get_i64(&r, "version")?,
            })
        })
        .transpose()
    }

    /// Records that token `id` was used at `now`.
    pub async fn touch_token(&self, id: &str, now: i64) -> CatalogResult<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_db)?;
        Ok(())
    }

    // ---- catalogs -------------------------------------------------------------------------
}
