package store

import (
	"context"
	"encoding/json"
	"strings"
)

const alertCols = `id, workspace_id, monitor_id, monitor_name, incident_id, incident_number,
	title, description, severity, source_severity, status, deep_link, sentinel_workspace_id, tenant_id,
	incident_created_at, ingested_at, payload`

func scanAlert(row scanner) (Alert, error) {
	var (
		a                 Alert
		created, ingested int64
		payload           []byte
	)
	err := row.Scan(&a.ID, &a.WorkspaceID, &a.MonitorID, &a.MonitorName, &a.IncidentID, &a.IncidentNumber,
		&a.Title, &a.Description, &a.Severity, &a.SourceSeverity, &a.Status, &a.DeepLink,
		&a.SentinelWorkspaceID, &a.TenantID, &created, &ingested, &payload)
	if err != nil {
		return Alert{}, err
	}
	a.IncidentCreatedAt, a.IngestedAt = fromNanos(created), fromNanos(ingested)
	if len(payload) > 0 {
		a.Payload = json.RawMessage(payload)
	}
	return a, nil
}

func (s *sqlStore) GetAlert(ctx context.Context, workspaceID, id string) (Alert, error) {
	a, err := scanAlert(s.queryRow(ctx,
		`SELECT `+alertCols+` FROM alerts WHERE workspace_id = ? AND id = ?`, workspaceID, id))
	return a, wrap("get alert", err)
}

func (s *sqlStore) ListAlerts(ctx context.Context, workspaceID string, f AlertFilter) ([]Alert, error) {
	var (
		where = []string{"workspace_id = ?"}
		args  = []any{workspaceID}
	)
	if f.MonitorID != "" {
		where = append(where, "monitor_id = ?")
		args = append(args, f.MonitorID)
	}
	if f.Severity != "" {
		where = append(where, "severity = ?")
		args = append(args, f.Severity)
	}
	if !f.BeforeIngestedAt.IsZero() || f.BeforeID != "" {
		// A row-value comparison: both engines turn it into a range scan of
		// the (workspace_id, …, ingested_at DESC, id DESC) indexes.
		where = append(where, "(ingested_at, id) < (?, ?)")
		args = append(args, nanos(f.BeforeIngestedAt), f.BeforeID)
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultAlertLimit
	case limit > MaxAlertLimit:
		limit = MaxAlertLimit
	}
	args = append(args, limit)

	rows, err := s.query(ctx, `SELECT `+alertCols+` FROM alerts WHERE `+strings.Join(where, " AND ")+`
		ORDER BY ingested_at DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, wrap("list alerts", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, wrap("list alerts", err)
		}
		out = append(out, a)
	}
	return out, wrap("list alerts", rows.Err())
}

// knownChunk bounds the parameters of one IN (…) list.
const knownChunk = 500

func (s *sqlStore) KnownIncidents(ctx context.Context, workspaceID string, incidentIDs []string) (map[string]bool, error) {
	known := make(map[string]bool)
	for len(incidentIDs) > 0 {
		chunk := incidentIDs[:min(len(incidentIDs), knownChunk)]
		incidentIDs = incidentIDs[len(chunk):]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, workspaceID)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := s.query(ctx, `SELECT incident_id FROM alerts WHERE workspace_id = ? AND incident_id IN (`+
			placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return nil, wrap("known incidents", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, wrap("known incidents", err)
			}
			known[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, wrap("known incidents", err)
		}
	}
	return known, nil
}
