-- 0004_refresh_lease: the refresh lease of a connection, so that several
-- replicas on one database refresh a connection's tokens one at a time
-- (Store.ClaimRefresh, ReleaseRefresh). refresh_owner is the replica id
-- holding it ('' = free), refresh_until when it lapses (UTC unix
-- nanoseconds) if the holder died without releasing it.

ALTER TABLE connections ADD COLUMN refresh_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE connections ADD COLUMN refresh_until BIGINT NOT NULL DEFAULT 0;
