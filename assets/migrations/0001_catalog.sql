-- pubdeck catalog schema, portable between SQLite and PostgreSQL
-- (TEXT and BIGINT only, natural keys, no auto-increment).

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    token_hash TEXT UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE catalogs (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES users (name),
    store_url TEXT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX catalogs_owner ON catalogs (owner);

CREATE TABLE catalog_keys (
    catalog TEXT NOT NULL REFERENCES catalogs (name),
    public_key TEXT NOT NULL,
    key_name TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (catalog, public_key)
);

CREATE TABLE allowlist (
    catalog TEXT NOT NULL REFERENCES catalogs (name),
    username TEXT NOT NULL REFERENCES users (name),
    added_at BIGINT NOT NULL,
    PRIMARY KEY (catalog, username)
);
CREATE INDEX allowlist_user ON allowlist (username);

CREATE TABLE packages (
    catalog TEXT NOT NULL REFERENCES catalogs (name),
    name TEXT NOT NULL,
    latest_version TEXT NOT NULL,
    description TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (catalog, name)
);

-- (catalog, package, version, system) is immutable: the primary key makes concurrent
-- registrations of the same version race on the insert, and exactly one wins.
CREATE TABLE builds (
    catalog TEXT NOT NULL REFERENCES catalogs (name),
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    system TEXT NOT NULL,
    description TEXT NOT NULL,
    store_path TEXT NOT NULL,
    narinfo_url TEXT NOT NULL,
    nar_hash TEXT NOT NULL,
    nar_size BIGINT NOT NULL,
    refs TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_name TEXT NOT NULL,
    source_url TEXT NOT NULL,
    revision TEXT NOT NULL,
    branch TEXT NOT NULL,
    build_name TEXT NOT NULL,
    installed TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    PRIMARY KEY (catalog, package, version, system)
);
CREATE INDEX builds_revision ON builds (catalog, revision);
