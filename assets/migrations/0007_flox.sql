-- What the Flox catalog API needs of a build (issue 29):
-- * addressing: 'content' (pubdeck's own publish: the store path follows from the content) or
--   'input' (a build the Flox CLI published with `nix copy`: input-addressed, registered only
--   after its closure was found in the org's store, signed by a trusted key);
-- * rev_count and rev_date: the number of commits reachable from the revision built and the
--   commit's time (RFC 3339), as Flox's lockfile records them; 0 and '' when not recorded;
-- * derivation: the .drv path Flox built from; '' for pubdeck's builds, which have none.
ALTER TABLE builds ADD COLUMN addressing TEXT NOT NULL DEFAULT 'content';
ALTER TABLE builds ADD COLUMN rev_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE builds ADD COLUMN rev_date TEXT NOT NULL DEFAULT '';
ALTER TABLE builds ADD COLUMN derivation TEXT NOT NULL DEFAULT '';
CREATE INDEX builds_store_path ON builds (store_path);

-- Packages declared before their first build (Flox's `POST …/catalogs/{c}/packages?name=`).
-- A package with builds is in `packages`; this only records that its owner created it.
CREATE TABLE declared_packages (
    catalog TEXT NOT NULL REFERENCES catalogs (name),
    name TEXT NOT NULL,
    declared_by TEXT NOT NULL,
    declared_at BIGINT NOT NULL,
    PRIMARY KEY (catalog, name)
);
