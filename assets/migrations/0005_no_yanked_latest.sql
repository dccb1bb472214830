-- A package whose every version is yanked has no latest version (issue 24): its
-- `latest_version` is empty, no longer the yanked version that was highest.
UPDATE packages SET latest_version = '' WHERE all_yanked = 1;
