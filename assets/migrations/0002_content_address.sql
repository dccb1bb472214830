-- Every build records its content address (CA) and its closure: the store paths it needs,
-- with their NAR sizes, as JSON. Builds registered before this migration keep '' and '[]'.
ALTER TABLE builds ADD COLUMN ca TEXT NOT NULL DEFAULT '';
ALTER TABLE builds ADD COLUMN closure TEXT NOT NULL DEFAULT '[]';
