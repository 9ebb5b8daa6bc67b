-- 0005_drop_lease_owner_index: every poll writes lease_owner twice (the
-- claim, then the release), so an index on it is updated twice per poll
-- and, on PostgreSQL, keeps those updates from being HOT (an indexed
-- column changes). Its only reader is ReleaseLeases, once per graceful
-- shutdown, for which a scan of the monitors is cheap.

DROP INDEX IF EXISTS monitors_lease_owner;
