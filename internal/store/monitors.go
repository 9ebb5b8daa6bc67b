package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

const monitorCols = `id, workspace_id, name, source_kind, sentinel_workspace_id, sentinel_workspace_name,
	severities, search, enabled, created_at, updated_at,
	watermark, cursor_time, cursor_name,
	next_poll_at, lease_owner, lease_until,
	health_status, last_poll_at, last_success_at, last_error_code, last_error, consecutive_failures, last_counts`

func scanMonitor(row scanner) (Monitor, error) {
	var (
		m                                     Monitor
		severities, counts                    string
		created, updated                      int64
		watermark, cursorTime                 int64
		nextPoll, leaseUntil                  int64
		lastPoll, lastSuccess, consecFailures int64
	)
	err := row.Scan(&m.ID, &m.WorkspaceID, &m.Name, &m.SourceKind, &m.SentinelWorkspaceID, &m.SentinelWorkspaceName,
		&severities, &m.Search, &m.Enabled, &created, &updated,
		&watermark, &cursorTime, &m.CursorName,
		&nextPoll, &m.LeaseOwner, &leaseUntil,
		&m.Health.Status, &lastPoll, &lastSuccess, &m.Health.LastErrorCode, &m.Health.LastError, &consecFailures, &counts)
	if err != nil {
		return Monitor{}, err
	}
	if m.Severities, err = decodeList(severities); err != nil {
		return Monitor{}, err
	}
	if counts != "" {
		if err := json.Unmarshal([]byte(counts), &m.Health.Counts); err != nil {
			return Monitor{}, fmt.Errorf("decode poll counts: %w", err)
		}
	}
	m.CreatedAt, m.UpdatedAt = fromNanos(created), fromNanos(updated)
	m.Watermark, m.CursorTime = fromNanos(watermark), fromNanos(cursorTime)
	m.NextPollAt, m.LeaseUntil = fromNanos(nextPoll), fromNanos(leaseUntil)
	m.Health.LastPollAt, m.Health.LastSuccessAt = fromNanos(lastPoll), fromNanos(lastSuccess)
	m.Health.ConsecutiveFailures = int(consecFailures)
	return m, nil
}

func encodeCounts(c PollCounts) string {
	b, _ := json.Marshal(c) // plain ints always marshal
	return string(b)
}

func (s *sqlStore) CreateMonitor(ctx context.Context, m Monitor) error {
	status := m.Health.Status
	if status == "" {
		status = HealthPending
	}
	_, err := s.exec(ctx, `INSERT INTO monitors (id, workspace_id, name, source_kind, sentinel_workspace_id,
			sentinel_workspace_name, severities, search, enabled, created_at, updated_at, next_poll_at, health_status)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.WorkspaceID, m.Name, m.SourceKind, m.SentinelWorkspaceID, m.SentinelWorkspaceName,
		encodeList(m.Severities), m.Search, m.Enabled, nanos(m.CreatedAt), nanos(m.UpdatedAt),
		nanos(m.NextPollAt), status)
	return wrap("create monitor", err)
}

func (s *sqlStore) GetMonitor(ctx context.Context, workspaceID, id string) (Monitor, error) {
	m, err := scanMonitor(s.queryRow(ctx,
		`SELECT `+monitorCols+` FROM monitors WHERE workspace_id = ? AND id = ?`, workspaceID, id))
	return m, wrap("get monitor", err)
}

func (s *sqlStore) ListMonitors(ctx context.Context, workspaceID string) ([]Monitor, error) {
	l, err := s.listMonitors(ctx, `SELECT `+monitorCols+` FROM monitors WHERE workspace_id = ?
		ORDER BY created_at, id`, workspaceID)
	return l, wrap("list monitors", err)
}

func (s *sqlStore) ListEnabledMonitors(ctx context.Context) ([]Monitor, error) {
	l, err := s.listMonitors(ctx, `SELECT `+monitorCols+` FROM monitors WHERE enabled
		ORDER BY workspace_id, created_at, id`)
	return l, wrap("list enabled monitors", err)
}

func (s *sqlStore) listMonitors(ctx context.Context, query string, args ...any) ([]Monitor, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Monitor
	for rows.Next() {
		m, err := scanMonitor(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *sqlStore) UpdateMonitor(ctx context.Context, m Monitor) error {
	res, err := s.exec(ctx, `UPDATE monitors SET name = ?, source_kind = ?, sentinel_workspace_id = ?,
			sentinel_workspace_name = ?, severities = ?, search = ?, enabled = ?, updated_at = ?
		WHERE workspace_id = ? AND id = ?`,
		m.Name, m.SourceKind, m.SentinelWorkspaceID, m.SentinelWorkspaceName,
		encodeList(m.Severities), m.Search, m.Enabled, nanos(m.UpdatedAt),
		m.WorkspaceID, m.ID)
	if err == nil {
		err = mustAffect(res)
	}
	return wrap("update monitor", err)
}

func (s *sqlStore) DeleteMonitor(ctx context.Context, workspaceID, id string) error {
	res, err := s.exec(ctx, `DELETE FROM monitors WHERE workspace_id = ? AND id = ?`, workspaceID, id)
	if err == nil {
		err = mustAffect(res)
	}
	return wrap("delete monitor", err)
}

// ---- polling: lease, pages, health ----

func (s *sqlStore) ClaimPoll(ctx context.Context, monitorID, owner string, now, leaseUntil time.Time) (Monitor, bool, error) {
	if owner == "" {
		return Monitor{}, false, errors.New("store: claim poll: empty owner")
	}
	// One conditional UPDATE … RETURNING: atomic on both engines, so two
	// owners never both get the lease.
	m, err := scanMonitor(s.writeQueryRow(ctx, `UPDATE monitors SET lease_owner = ?, lease_until = ?
		WHERE id = ? AND enabled AND next_poll_at <= ?
			AND (lease_owner = '' OR lease_owner = ? OR lease_until <= ?)
		RETURNING `+monitorCols,
		owner, nanos(leaseUntil), monitorID, nanos(now), owner, nanos(now)))
	if err != nil {
		if err = wrap("claim poll", err); errors.Is(err, ErrNotFound) {
			return Monitor{}, false, nil
		}
		return Monitor{}, false, err
	}
	return m, true, nil
}

func (s *sqlStore) ClaimFeed(ctx context.Context, workspaceID, sentinelWorkspaceID, owner string, now, leaseUntil time.Time) ([]Monitor, error) {
	if owner == "" {
		return nil, errors.New("store: claim feed: empty owner")
	}
	// The same conditional UPDATE as ClaimPoll over the feed's rows: each
	// row is claimed atomically, so across replicas every monitor has one
	// owner even when two replicas claim one feed at once.
	// A write: it goes to the writer pool, not listMonitors' readers.
	rows, err := s.writeQuery(ctx, `UPDATE monitors SET lease_owner = ?, lease_until = ?
		WHERE workspace_id = ? AND sentinel_workspace_id = ? AND enabled AND next_poll_at <= ?
			AND (lease_owner = '' OR lease_owner = ? OR lease_until <= ?)
		RETURNING `+monitorCols,
		owner, nanos(leaseUntil), workspaceID, sentinelWorkspaceID, nanos(now), owner, nanos(now))
	if err != nil {
		return nil, wrap("claim feed", err)
	}
	defer rows.Close()
	var ms []Monitor
	for rows.Next() {
		m, err := scanMonitor(rows)
		if err != nil {
			return nil, wrap("claim feed", err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("claim feed", err)
	}
	// RETURNING has no order.
	slices.SortFunc(ms, func(a, b Monitor) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ms, nil
}

// holdLease locks the monitor row (PostgreSQL) and checks that owner holds
// its lease; it returns the monitor's workspace.
func holdLease(ctx context.Context, t txn, monitorID, owner string) (workspaceID string, err error) {
	var leaseOwner string
	err = t.queryRow(ctx, `SELECT workspace_id, lease_owner FROM monitors WHERE id = ?`+t.d.forUpdate, monitorID).
		Scan(&workspaceID, &leaseOwner)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", ErrLeaseLost // deleted (disconnect)
		}
		return "", err
	}
	if owner == "" || leaseOwner != owner {
		return "", ErrLeaseLost
	}
	return workspaceID, nil
}

// alertInsert inserts n alerts in one statement: a page re-reads the
// look-back window, so most of its rows are already alerts, and one round
// trip per page instead of one per row matters when several replicas share
// the database. At most alertRowsPerInsert rows per statement (17
// parameters each, far below both engines' limits), which also bounds the
// distinct statements the drivers prepare and cache.
func alertInsert(n int) string {
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	return `INSERT INTO alerts (id, workspace_id, monitor_id, monitor_name, incident_id, incident_number,
		title, description, severity, source_severity, status, deep_link, sentinel_workspace_id, tenant_id,
		incident_created_at, ingested_at, payload)
	VALUES ` + strings.Repeat(row+", ", n-1) + row + `
	ON CONFLICT (workspace_id, incident_id) DO NOTHING`
}

const alertRowsPerInsert = 50

func (s *sqlStore) CommitPage(ctx context.Context, monitorID, owner string, alerts []Alert, p Progress) (int, error) {
	// Insert in incident order: two transactions carrying the same incidents
	// (two monitors on one Sentinel workspace) then take the unique-index
	// locks in the same order and cannot deadlock on PostgreSQL.
	for _, a := range alerts {
		if err := checkText(a); err != nil {
			return 0, fmt.Errorf("store: commit page: %w", err)
		}
	}
	sorted := slices.Clone(alerts)
	slices.SortFunc(sorted, func(a, b Alert) int { return strings.Compare(a.IncidentID, b.IncidentID) })

	inserted := 0
	err := s.inTx(ctx, func(t txn) error {
		inserted = 0
		workspaceID, err := holdLease(ctx, t, monitorID, owner)
		if err != nil {
			return err
		}
		for chunk := range slices.Chunk(sorted, alertRowsPerInsert) {
			args := make([]any, 0, 17*len(chunk))
			for _, a := range chunk {
				if a.WorkspaceID == "" {
					a.WorkspaceID = workspaceID
				}
				if a.MonitorID == "" {
					a.MonitorID = monitorID
				}
				if a.WorkspaceID != workspaceID || a.MonitorID != monitorID {
					return fmt.Errorf("alert for incident %q belongs to workspace %q, monitor %q, not to the committing monitor",
						a.IncidentID, a.WorkspaceID, a.MonitorID)
				}
				if a.IncidentID == "" {
					return errors.New("alert without incident id")
				}
				args = append(args, a.ID, a.WorkspaceID, a.MonitorID, a.MonitorName, a.IncidentID, a.IncidentNumber,
					a.Title, a.Description, a.Severity, a.SourceSeverity, a.Status, a.DeepLink,
					a.SentinelWorkspaceID, a.TenantID, nanos(a.IncidentCreatedAt), nanos(a.IngestedAt),
					string(a.Payload))
			}
			// Rows go in in incident order (see above); an incident twice
			// in one page is inserted once (DO NOTHING on both engines).
			res, err := t.exec(ctx, alertInsert(len(chunk)), args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			inserted += int(n)
		}
		// The watermark only moves forward; a zero one leaves it as it is.
		wm := nanos(p.Watermark)
		_, err = t.exec(ctx, `UPDATE monitors SET
				watermark = CASE WHEN ? AND (watermark = 0 OR watermark < ?) THEN ? ELSE watermark END,
				cursor_time = ?, cursor_name = ?
			WHERE id = ?`, !p.Watermark.IsZero(), wm, wm, nanos(p.CursorTime), p.CursorName, monitorID)
		return err
	})
	if err != nil {
		return 0, wrap("commit page", err)
	}
	return inserted, nil
}

func (s *sqlStore) FinishPoll(ctx context.Context, monitorID, owner string, h Health, nextPollAt time.Time) error {
	if owner == "" {
		return wrap("finish poll", ErrLeaseLost)
	}
	res, err := s.exec(ctx, `UPDATE monitors SET
			health_status = ?, last_poll_at = ?, last_success_at = ?, last_error_code = ?, last_error = ?,
			consecutive_failures = ?, last_counts = ?,
			next_poll_at = ?, lease_owner = '', lease_until = 0
		WHERE id = ? AND lease_owner = ?`,
		h.Status, nanos(h.LastPollAt), nanos(h.LastSuccessAt), h.LastErrorCode, h.LastError,
		int64(h.ConsecutiveFailures), encodeCounts(h.Counts),
		nanos(nextPollAt), monitorID, owner)
	if err == nil {
		if err = mustAffect(res); errors.Is(err, ErrNotFound) {
			err = ErrLeaseLost
		}
	}
	return wrap("finish poll", err)
}

func (s *sqlStore) ReleaseLeases(ctx context.Context, owner string) error {
	if owner == "" {
		return nil
	}
	err := s.inTx(ctx, func(t txn) error {
		if _, err := t.exec(ctx, `UPDATE monitors SET lease_owner = '', lease_until = 0 WHERE lease_owner = ?`, owner); err != nil {
			return err
		}
		// The refresh leases too (replicas.go): a replica shutting down
		// mid-refresh lets the next one refresh at once.
		_, err := t.exec(ctx, `UPDATE connections SET refresh_owner = '', refresh_until = 0 WHERE refresh_owner = ?`, owner)
		return err
	})
	return wrap("release leases", err)
}

// checkText refuses text PostgreSQL cannot store (invalid UTF-8, NUL), on
// both engines alike, so that a page never succeeds on one engine and fails
// on the other.
func checkText(a Alert) error {
	fields := []struct{ name, v string }{
		{"payload", string(a.Payload)}, {"title", a.Title}, {"description", a.Description},
		{"incident id", a.IncidentID}, {"severity", a.Severity}, {"source severity", a.SourceSeverity},
		{"status", a.Status}, {"deep link", a.DeepLink}, {"monitor name", a.MonitorName},
		{"sentinel workspace id", a.SentinelWorkspaceID}, {"tenant id", a.TenantID}, {"id", a.ID},
	}
	for _, f := range fields {
		if !utf8.ValidString(f.v) || strings.IndexByte(f.v, 0) >= 0 {
			return fmt.Errorf("alert for incident %q: %s is not valid UTF-8 text (or holds a NUL)", a.IncidentID, f.name)
		}
	}
	return nil
}

func (s *sqlStore) PollSoon(ctx context.Context, workspaceID string, now time.Time) error {
	_, err := s.exec(ctx, `UPDATE monitors SET next_poll_at = ? WHERE workspace_id = ? AND next_poll_at > ?`,
		nanos(now), workspaceID, nanos(now))
	return wrap("poll soon", err)
}
