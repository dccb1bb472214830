//! The audit log: each change's entry, written in the change's own transaction.

use super::*;

/// A change to record in the audit log (in the change's own transaction).
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: String,
    pub detail: serde_json::Value,
}

/// Appends `entry` to `catalog`'s audit log. Call it after the change's state-version bump:
/// that row lock serialises writers, so `seq` (max + 1) cannot be taken twice.
pub(super) async fn audit(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    catalog: &str,
    entry: &Audit<'_>,
) -> CatalogResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (catalog, seq, at, actor, action, subject, detail) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6 FROM audit_log WHERE catalog = $1",
    )
    .bind(catalog)
    .bind(now_secs())
    .bind(entry.actor)
    .bind(entry.action)
    .bind(&entry.subject)
    .bind(entry.detail.to_string())
    .execute(&mut **tx)
    .await
    .map_err(map_db)?;
    Ok(())
}

impl Db {
    /// Records a change made outside the database (a GC of the store, a re-sign).
    pub async fn record(&self, catalog: &str, entry: &Audit<'_>) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        bump_state(&mut tx).await?;
        audit(&mut tx, catalog, entry).await?;
        tx.commit().await.map_err(map_db)
    }

    /// The newest `limit` entries of `catalog`'s audit log, newest first.
    pub async fn audit_log(&self, catalog: &str, limit: i64) -> CatalogResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, detail FROM audit_log \
             WHERE catalog = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(catalog)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: get_i64(r, "seq")?,
                    at: rfc3339(get_i64(r, "at")?),
                    actor: get_str(r, "actor")?,
                    action: get_str(r, "action")?,
                    subject: get_str(r, "subject")?,
                    detail: serde_json::from_str(&get_str(r, "detail")?).unwrap_or_default(),
                })
            })
            .collect()
    }
}
