package integration

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/clarion/sentinel/internal/store"
)

// Finding is one fact that explains what a monitor is (not) ingesting.
type Finding struct {
	Code    string `json:"code"`
	Level   string `json:"level"` // "ok", "info", "warning", "error"
	Message string `json:"message"`
}

// Diagnosis answers "no incidents are arriving" from the monitor's health,
// its connection and, when it can, one look at the Sentinel workspace.
type Diagnosis struct {
	MonitorID string    `json:"monitor_id"`
	Summary   string    `json:"summary"`
	Findings  []Finding `json:"findings"`
}

// Prober looks at a Sentinel workspace for the diagnosis: the creation time
// of its newest incident (found=false when it has none).
type Prober interface {
	NewestIncident(ctx context.Context, workspaceID string, m store.Monitor) (newest time.Time, found bool, err error)
}

// Diagnose explains a monitor's ingestion: connection state, filters (from
// the counts of the last poll), forward-only polling and the workspace
// itself. Each finding is a sentence a SOC engineer can act on.
func (s *Service) Diagnose(ctx context.Context, workspaceID, monitorID string) (Diagnosis, error) {
	m, err := s.GetMonitor(ctx, workspaceID, monitorID)
	if err != nil {
		return Diagnosis{}, err
	}
	d := Diagnosis{MonitorID: m.ID}
	add := func(code, level, msg string) { d.Findings = append(d.Findings, Finding{code, level, msg}) }

	conn, cerr := s.Store.GetConnection(ctx, workspaceID)
	switch {
	case errors.Is(cerr, store.ErrNotFound):
		add("not_connected", "error", "This Clarion workspace is not connected to Microsoft Sentinel: click Connect with Microsoft.")
	case cerr != nil:
		return Diagnosis{}, fmt.Errorf("integration: diagnose: %w", cerr)
	case conn.State == store.StateReconnectRequired:
		add("reconnect_required", "error", "Re-connect required: "+conn.StateReason+" Polling is paused until then.")
	case conn.State == store.StateDegraded:
		add("degraded", "info", conn.StateReason+" Incident polling is not affected.")
	}
	if !m.Enabled {
		add("disabled", "warning", "The monitor is disabled: enable it to poll.")
	}
	h := m.Health
	switch {
	case h.LastPollAt.IsZero():
		add("not_polled_yet", "info", "The monitor has not polled yet; the first poll comes within a poll interval of its creation.")
	case h.Status == store.HealthThrottled:
		add("throttled", "warning", h.LastError)
	case h.Status == store.HealthFailing || h.Status == store.HealthPaused:
		add(h.LastErrorCode, "error", fmt.Sprintf("The last poll (%s) failed: %s (%d failures in a row)", h.LastPollAt.UTC().Format(time.RFC3339), h.LastError, h.ConsecutiveFailures))
	default:
		add("last_poll_ok", "ok", fmt.Sprintf("The last poll (%s) succeeded.", h.LastPollAt.UTC().Format(time.RFC3339)))
	}
	c := h.Counts
	if !h.LastPollAt.IsZero() {
		if c.FilteredSeverity > 0 {
			add("filtered_by_severity", "info", fmt.Sprintf("%d incident(s) of the last poll were skipped by the severity filter (%v).", c.FilteredSeverity, m.Severities))
		}
		if c.FilteredSearch > 0 {
			add("filtered_by_search", "info", fmt.Sprintf("%d incident(s) of the last poll did not contain the search text %q in their title or description.", c.FilteredSearch, m.Search))
		}
		if c.AlreadyKnown > 0 {
			add("already_alerted", "info", fmt.Sprintf("%d incident(s) of the last poll were already alerts (each incident becomes one alert per Clarion workspace, whichever monitor saw it first).", c.AlreadyKnown))
		}
		if c.Invalid > 0 {
			add("invalid_rows", "warning", fmt.Sprintf("%d row(s) of the last poll had no incident name or creation time and were skipped.", c.Invalid))
		}
	}
	// One look at the workspace tells "wrong workspace" from "forward-only".
	if s.Prober != nil && cerr == nil && conn.State != store.StateReconnectRequired && (h.LastPollAt.IsZero() || c.Returned == 0) {
		newest, found, err := s.Prober.NewestIncident(ctx, workspaceID, m)
		switch {
		case err != nil:
			add("probe_failed", "warning", "Could not look at the Sentinel workspace: "+errSentence(err))
		case !found:
			add("workspace_empty", "warning", fmt.Sprintf("Sentinel workspace %s has no incidents at all: check that the Workspace ID is right and that this workspace receives incidents.", m.SentinelWorkspaceID))
		case newest.Before(m.CreatedAt):
			add("forward_only", "info", fmt.Sprintf("The newest incident in the workspace was created %s, before this monitor (%s). Polling is forward-only: incidents created before the monitor are not backfilled.",
				newest.UTC().Format(time.RFC3339), m.CreatedAt.UTC().Format(time.RFC3339)))
		default:
			add("incidents_present", "ok", fmt.Sprintf("The workspace has incidents created since the monitor (newest %s); they are ingested at the next poll.", newest.UTC().Format(time.RFC3339)))
		}
	}
	d.Summary = summarize(d.Findings, c, h)
	return d, nil
}

func summarize(fs []Finding, c store.PollCounts, h store.Health) string {
	for _, f := range fs {
		if f.Level == "error" {
			return f.Message
		}
	}
	for _, f := range fs {
		if f.Level == "warning" {
			return f.Message
		}
	}
	if !h.LastPollAt.IsZero() {
		return fmt.Sprintf("Last poll: %d returned, %d new alert(s), %d skipped by severity, %d by search, %d already alerted.",
			c.Returned, c.Ingested, c.FilteredSeverity, c.FilteredSearch, c.AlreadyKnown)
	}
	return "Waiting for the first poll."
}

func errSentence(err error) string {
	var le *ListError
	if errors.As(err, &le) {
		return le.Message
	}
	return err.Error()
}
