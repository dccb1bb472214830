-- The lifecycle of a long-lived catalog (issue 14). Portable between SQLite and PostgreSQL:
-- TEXT and BIGINT only, 0 for "never".

-- Several tokens per user, each with a scope, an optional expiry, and revocation. Only the
-- SHA-256 of a token is stored. `last_used_at` is written at most once a minute per token.
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users (name),
    token_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL DEFAULT 0,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_user ON tokens (username);
-- Existing tokens keep working: admin scope, no expiry.
INSERT INTO tokens (id, username, token_hash, scope, created_at, expires_at, last_used_at, revoked_at)
    SELECT 'legacy-' || name, name, token_hash, 'admin', created_at, 0, 0, 0
    FROM users WHERE token_hash IS NOT NULL;
UPDATE users SET token_hash = NULL;

-- A yanked version keeps its record; it is only flagged (the time it was yanked).
ALTER TABLE builds ADD COLUMN yanked_at BIGINT NOT NULL DEFAULT 0;
-- 1 when every version of the package is yanked: it then leaves listings and search.
ALTER TABLE packages ADD COLUMN all_yanked BIGINT NOT NULL DEFAULT 0;

-- Who changed what, when: every publish, yank, GC, allowlist and key change. `seq` counts
-- per catalog; it is taken after the change's state-version bump, which serialises writers.
CREATE TABLE audit_log (
    catalog TEXT NOT NULL REFERENCES catalogs (name),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (catalog, seq)
);
