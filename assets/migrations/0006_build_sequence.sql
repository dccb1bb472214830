-- The order in which a package's builds were registered (issue 24): 1 for its first build, then
-- one more for each build after it, taken in the registration's own transaction. Timestamps have
-- one-second resolution, so two versions published within one second could not be told apart
-- (the review compared a new version with the wrong one). Builds registered before this
-- migration keep 0 and are ordered by `published_at` among themselves.
ALTER TABLE builds ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
