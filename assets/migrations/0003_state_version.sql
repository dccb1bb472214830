-- One row whose version moves on with every change of what a user may see or of any package
-- list (catalog created, build registered, allowlist changed), in the same transaction. A
-- service reads it (one row) before using what it cached per user, so several instances over
-- one database see each other's changes at their next request.
CREATE TABLE catalog_state (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO catalog_state (id, version) VALUES (1, 0);
