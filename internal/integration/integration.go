// Package integration owns the use cases of a Clarion workspace's Microsoft
// Sentinel integration — connection status, disconnect, the data-lake
// workspace list, monitors with their validation, alerts — as one Service
// that the JSON API, the web UI and the agent tools all call, so that a rule
// is written once.
package integration

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/sentinel"
	"github.com/clarion/sentinel/internal/store"
)

// Errors the edges map to codes; test with errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrNotConnected = errors.New("the workspace is not connected to Microsoft Sentinel")
)

// FieldError is bad input in one named field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ListError is "Couldn't list workspaces" with its cause and remedy.
type ListError struct {
	Code    string
	Message string
	Err     error
}

func (e *ListError) Error() string { return e.Message }
func (e *ListError) Unwrap() error { return e.Err }

// Engine is what the service tells about changes (the monitor engine).
type Engine interface {
	Reload()
	Wake(workspaceID string)
}

// Lake lists the Sentinel workspaces the connected tenant can see.
type Lake interface {
	ListWorkspaces(ctx context.Context, workspaceID string) ([]sentinel.Workspace, error)
}

// Service is the integration of every Clarion workspace; each method is
// scoped to the workspace id it is given.
type Service struct {
	Store       store.Store
	Connections *connection.Service
	Lake        Lake
	Prober      Prober
	Engine      Engine
	Now         func() time.Time
}

// Limits on monitor fields.
const (
	MaxNameLen   = 100
	MaxSearchLen = 256
)

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsGUID reports whether s is a GUID such as a Log Analytics Workspace ID.
func IsGUID(s string) bool { return guidRE.MatchString(s) }

// Severities a monitor can filter on.
var Severities = []string{"critical", "high", "medium", "low"}

// MonitorInput is a monitor's configuration as a person or script gives it.
// On update, nil fields keep their value.
type MonitorInput struct {
	Name                  *string   `json:"name"`
	Source                *string   `json:"source"`
	SentinelWorkspaceID   *string   `json:"workspace_id"`
	SentinelWorkspaceName *string   `json:"workspace_name"`
	Severities            *[]string `json:"severities"`
	Search                *string   `json:"search"`
	Enabled               *bool     `json:"enabled"`
}

// apply validates in and writes it over m. Every problem is reported with
// its field; nothing is applied partly because the caller only stores m when
// apply succeeds.
func (in MonitorInput) apply(m *store.Monitor, creating bool) error {
	var errs []error
	if in.Name != nil || creating {
		name := ""
		if in.Name != nil {
			name = strings.TrimSpace(*in.Name)
		}
		switch {
		case name == "":
			errs = append(errs, &FieldError{"name", "A name is required."})
		case utf8.RuneCountInString(name) > MaxNameLen:
			errs = append(errs, &FieldError{"name", fmt.Sprintf("The name is longer than %d characters.", MaxNameLen)})
		case !utf8.ValidString(name) || strings.ContainsFunc(name, isControl):
			errs = append(errs, &FieldError{"name", "The name contains invalid characters."})
		default:
			m.Name = name
		}
	}
	if in.Source != nil || creating {
		src := store.SourceSIEM
		if in.Source != nil && *in.Source != "" {
			src = *in.Source
		}
		if src != store.SourceSIEM && src != store.SourceDataLake {
			errs = append(errs, &FieldError{"source", `The workspace source must be "siem" (Workspace ID) or "datalake" (picked from the data lake).`})
		} else {
			m.SourceKind = src
		}
	}
	if in.SentinelWorkspaceID != nil || creating {
		id := ""
		if in.SentinelWorkspaceID != nil {
			id = strings.TrimSpace(*in.SentinelWorkspaceID)
		}
		switch {
		case id == "":
			errs = append(errs, &FieldError{"workspace_id", "The Sentinel Workspace ID is required: copy it from the Log Analytics workspace overview in the Azure portal."})
		case !IsGUID(id):
			errs = append(errs, &FieldError{"workspace_id", "The Workspace ID must be a GUID such as 8d3a7f5e-1c2b-4e6f-9a0b-123456789abc (Log Analytics workspace overview → Workspace ID)."})
		default:
			m.SentinelWorkspaceID = strings.ToLower(id)
		}
	}
	if in.SentinelWorkspaceName != nil {
		n := strings.TrimSpace(*in.SentinelWorkspaceName)
		if utf8.RuneCountInString(n) > 200 || strings.ContainsFunc(n, isControl) {
			errs = append(errs, &FieldError{"workspace_name", "The workspace name is too long or contains invalid characters."})
		} else {
			m.SentinelWorkspaceName = n
		}
	}
	if in.Severities != nil {
		var sev []string
		for _, s := range *in.Severities {
			s = strings.ToLower(strings.TrimSpace(s))
			if !slices.Contains(Severities, s) {
				errs = append(errs, &FieldError{"severities", fmt.Sprintf("Unknown severity %q: use critical, high, medium or low.", s)})
				break
			}
			if !slices.Contains(sev, s) {
				sev = append(sev, s)
			}
		}
		// All four or none is the same: no filter.
		if len(sev) == len(Severities) {
			sev = nil
		}
		slices.SortFunc(sev, func(a, b string) int { return slices.Index(Severities, a) - slices.Index(Severities, b) })
		m.Severities = sev
	}
	if in.Search != nil {
		s := strings.TrimSpace(*in.Search)
		switch {
		case utf8.RuneCountInString(s) > MaxSearchLen:
			errs = append(errs, &FieldError{"search", fmt.Sprintf("The search text is longer than %d characters.", MaxSearchLen)})
		case !utf8.ValidString(s) || strings.ContainsFunc(s, isControl):
			errs = append(errs, &FieldError{"search", "The search text contains invalid characters."})
		default:
			m.Search = s
		}
	}
	if in.Enabled != nil {
		m.Enabled = *in.Enabled
	} else if creating {
		m.Enabled = true
	}
	return errors.Join(errs...)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func mapStoreErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, store.ErrConflict):
		return ErrConflict
	}
	return err
}

// CreateMonitor validates and stores a new monitor of a connected workspace.
// It polls from now on (forward-only).
func (s *Service) CreateMonitor(ctx context.Context, workspaceID string, in MonitorInput) (store.Monitor, error) {
	if _, err := s.Store.GetConnection(ctx, workspaceID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Monitor{}, ErrNotConnected
		}
		return store.Monitor{}, fmt.Errorf("integration: create monitor: %w", err)
	}
	now := s.now()
	m := store.Monitor{ID: store.NewID(), WorkspaceID: workspaceID, CreatedAt: now, UpdatedAt: now, NextPollAt: now,
		Health: store.Health{Status: store.HealthPending}}
	if err := in.apply(&m, true); err != nil {
		return store.Monitor{}, err
	}
	if err := s.Store.CreateMonitor(ctx, m); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Monitor{}, &FieldError{"name", "A monitor with this name already exists in this workspace."}
		}
		return store.Monitor{}, fmt.Errorf("integration: create monitor: %w", err)
	}
	s.reload()
	return m, nil
}

// UpdateMonitor changes the given fields of a monitor.
func (s *Service) UpdateMonitor(ctx context.Context, workspaceID, id string, in MonitorInput) (store.Monitor, error) {
	m, err := s.Store.GetMonitor(ctx, workspaceID, id)
	if err != nil {
		return store.Monitor{}, mapStoreErr(err)
	}
	if err := in.apply(&m, false); err != nil {
		return store.Monitor{}, err
	}
	m.UpdatedAt = s.now()
	if err := s.Store.UpdateMonitor(ctx, m); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Monitor{}, &FieldError{"name", "A monitor with this name already exists in this workspace."}
		}
		return store.Monitor{}, mapStoreErr(err)
	}
	s.reload()
	return s.GetMonitor(ctx, workspaceID, id)
}

// GetMonitor returns one monitor of the workspace.
func (s *Service) GetMonitor(ctx context.Context, workspaceID, id string) (store.Monitor, error) {
	m, err := s.Store.GetMonitor(ctx, workspaceID, id)
	return m, mapStoreErr(err)
}

// ListMonitors lists the workspace's monitors.
func (s *Service) ListMonitors(ctx context.Context, workspaceID string) ([]store.Monitor, error) {
	return s.Store.ListMonitors(ctx, workspaceID)
}

// DeleteMonitor removes a monitor; its alerts stay.
func (s *Service) DeleteMonitor(ctx context.Context, workspaceID, id string) error {
	if err := s.Store.DeleteMonitor(ctx, workspaceID, id); err != nil {
		return mapStoreErr(err)
	}
	s.reload()
	return nil
}

func (s *Service) reload() {
	if s.Engine != nil {
		s.Engine.Reload()
	}
}

// Disconnect removes the connection and every Sentinel monitor of the
// workspace; alerts stay. When it returns, no poll of those monitors writes
// anything more (the store checks each monitor inside the poll's transaction).
func (s *Service) Disconnect(ctx context.Context, workspaceID string) ([]string, error) {
	removed, err := s.Connections.Disconnect(ctx, workspaceID)
	if err != nil {
		return nil, mapStoreErr(err)
	}
	s.reload()
	return removed, nil
}

// Connected is called after a (re)connect: every monitor of the workspace
// is due at once, so polling resumes from its stored watermark without
// waiting an interval.
func (s *Service) Connected(ctx context.Context, workspaceID string) error {
	if err := s.Store.PollSoon(ctx, workspaceID, s.now()); err != nil {
		return fmt.Errorf("integration: resume polling: %w", err)
	}
	if s.Engine != nil {
		s.Engine.Wake(workspaceID)
	}
	return nil
}

// ListSentinelWorkspaces lists the data-lake workspaces the tenant can see.
// A failure is a *ListError saying "Couldn't list workspaces" with the remedy.
func (s *Service) ListSentinelWorkspaces(ctx context.Context, workspaceID string) ([]sentinel.Workspace, error) {
	ws, err := s.Lake.ListWorkspaces(ctx, workspaceID)
	if err == nil {
		return ws, nil
	}
	switch {
	case errors.Is(err, connection.ErrNotConnected):
		return nil, ErrNotConnected
	case errors.Is(err, connection.ErrReconnectRequired):
		return nil, &ListError{Code: "reconnect_required", Err: err,
			Message: "Couldn't list workspaces: the Sentinel connection needs to be re-connected. Click Connect with Microsoft and sign in again."}
	case errors.Is(err, sentinel.ErrNotOnboarded):
		return nil, &ListError{Code: "datalake_not_onboarded", Err: err,
			Message: "Couldn't list workspaces: the tenant is not onboarded to the Microsoft Sentinel data lake. Use the SIEM workspace tab and enter the Workspace ID — the monitor will still be created — or onboard the tenant and reconnect."}
	}
	return nil, &ListError{Code: "list_workspaces_failed", Err: err,
		Message: "Couldn't list workspaces. Use the SIEM workspace tab and enter the Workspace ID, or reconnect the integration if you expect the data lake to be available."}
}

// ListAlerts lists the workspace's alerts, newest first.
func (s *Service) ListAlerts(ctx context.Context, workspaceID string, f store.AlertFilter) ([]store.Alert, error) {
	if f.Severity != "" && !slices.Contains(Severities, f.Severity) {
		return nil, &FieldError{"severity", "Unknown severity: use critical, high, medium or low."}
	}
	return s.Store.ListAlerts(ctx, workspaceID, f)
}

// GetAlert returns one alert of the workspace.
func (s *Service) GetAlert(ctx context.Context, workspaceID, id string) (store.Alert, error) {
	a, err := s.Store.GetAlert(ctx, workspaceID, id)
	return a, mapStoreErr(err)
}
