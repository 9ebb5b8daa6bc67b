package store

import (
	"context"
	"errors"
	"time"
)

// ReplicaStore is what several `clarion serve` replicas on one database
// coordinate through, beyond ClaimPoll, CommitPage, FinishPoll and
// ReleaseLeases: row leases with an owner (the replica id) and an expiry,
// taken and checked by single conditional UPDATEs, so that the database's
// row locking decides every race. There is no other cluster protocol: a
// replica that dies simply stops renewing, and its leases lapse.
//
// Times are the callers' clocks, as with ClaimPoll: replicas are expected to
// keep their clocks in sync (NTP), and a lease outlives its holder by at
// most its length.
type ReplicaStore interface {
	// RenewLease moves the end of owner's poll lease of the monitor to until
	// (a poll that runs longer than the lease keeps it). ErrLeaseLost if
	// owner does not hold it: released, taken over after it lapsed, or the
	// monitor was deleted. An empty owner holds nothing.
	RenewLease(ctx context.Context, monitorID, owner string, until time.Time) error

	// ClaimRefresh takes the refresh lease of the workspace's connection for
	// owner until until, if it is free: never taken, released, lapsed
	// (until <= now), or already owner's. ok=false means another replica is
	// refreshing this connection's tokens; wait and ask again. ErrNotFound
	// if the workspace has no connection.
	ClaimRefresh(ctx context.Context, workspaceID, owner string, now, until time.Time) (ok bool, err error)
	// ReleaseRefresh hands the refresh lease back if owner holds it; a lease
	// owner does not hold (or no connection) is left as it is, without error.
	ReleaseRefresh(ctx context.Context, workspaceID, owner string) error
}

func (s *sqlStore) RenewLease(ctx context.Context, monitorID, owner string, until time.Time) error {
	if owner == "" {
		return wrap("renew lease", ErrLeaseLost)
	}
	res, err := s.exec(ctx, `UPDATE monitors SET lease_until = ? WHERE id = ? AND lease_owner = ?`,
		nanos(until), monitorID, owner)
	if err == nil {
		if err = mustAffect(res); errors.Is(err, ErrNotFound) {
			err = ErrLeaseLost
		}
	}
	return wrap("renew lease", err)
}

func (s *sqlStore) ClaimRefresh(ctx context.Context, workspaceID, owner string, now, until time.Time) (bool, error) {
	if owner == "" {
		return false, errors.New("store: claim refresh: empty owner")
	}
	// One conditional UPDATE: atomic on both engines (PostgreSQL re-checks
	// the condition after waiting for a concurrent writer of the row), so
	// two owners never both get the lease.
	res, err := s.exec(ctx, `UPDATE connections SET refresh_owner = ?, refresh_until = ?
		WHERE workspace_id = ? AND (refresh_owner = '' OR refresh_owner = ? OR refresh_until <= ?)`,
		owner, nanos(until), workspaceID, owner, nanos(now))
	if err != nil {
		return false, wrap("claim refresh", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap("claim refresh", err)
	}
	if n == 1 {
		return true, nil
	}
	var one int
	if err := s.queryRow(ctx, `SELECT 1 FROM connections WHERE workspace_id = ?`, workspaceID).Scan(&one); err != nil {
		return false, wrap("claim refresh", err) // sql.ErrNoRows → ErrNotFound
	}
	return false, nil
}

func (s *sqlStore) ReleaseRefresh(ctx context.Context, workspaceID, owner string) error {
	if owner == "" {
		return nil
	}
	_, err := s.exec(ctx, `UPDATE connections SET refresh_owner = '', refresh_until = 0
		WHERE workspace_id = ? AND refresh_owner = ?`, workspaceID, owner)
	return wrap("release refresh", err)
}
