// Package api owns Clarion's HTTP JSON API under /api/v1 and the browser
// side of connecting Sentinel (/integrations/sentinel/connect and the OAuth
// callback). Handlers are thin adapters over integration.Service; errors are
// JSON with a stable code and a sentence a person can act on.
package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/integration"
	"github.com/clarion/sentinel/internal/store"
)

// API serves the JSON API.
type API struct {
	Store       store.Store
	Integration *integration.Service
	Connections *connection.Service
	Logger      *slog.Logger
	// SecureCookies marks cookies Secure (when Clarion is served over https).
	SecureCookies bool
	// Connected is where the browser lands after the connect flow; the
	// outcome is added as query parameters (connected=1 or error=code).
	// Empty: a small result page is rendered.
	Connected string
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", a.readyz)

	auth := a.authenticated
	mux.Handle("GET /api/v1/integrations/sentinel", auth(a.getIntegration))
	mux.Handle("DELETE /api/v1/integrations/sentinel", auth(a.disconnect))
	mux.Handle("GET /api/v1/integrations/sentinel/workspaces", auth(a.listWorkspaces))
	mux.Handle("GET /api/v1/monitors", auth(a.listMonitors))
	mux.Handle("POST /api/v1/monitors", auth(a.createMonitor))
	mux.Handle("GET /api/v1/monitors/{id}", auth(a.getMonitor))
	mux.Handle("PATCH /api/v1/monitors/{id}", auth(a.updateMonitor))
	mux.Handle("DELETE /api/v1/monitors/{id}", auth(a.deleteMonitor))
	mux.Handle("GET /api/v1/monitors/{id}/diagnostics", auth(a.diagnose))
	mux.Handle("GET /api/v1/alerts", auth(a.listAlerts))
	mux.Handle("GET /api/v1/alerts/{id}", auth(a.getAlert))

	mux.Handle("GET /integrations/sentinel/connect", auth(a.connect))
	mux.HandleFunc("GET /integrations/sentinel/callback", a.callback)
}

func (a *API) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := a.Store.ListWorkspaces(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "The database is not reachable.", "")
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}

// Principal is who made a request: a workspace API token (agents, scripts)
// or, for the browser, a signed-in person (added by the web UI).
type Principal struct {
	WorkspaceID string
	TokenID     string
	UserID      string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p (the web UI's session middleware uses it).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the request's principal.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// HashToken is how API tokens are stored: SHA-256 of the token text.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewToken makes a new random API token (shown once, stored hashed).
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "clr_" + base64.RawURLEncoding.EncodeToString(b)
}

// authenticated resolves the bearer API token to its workspace. A principal
// already on the context (a browser session) is accepted as is.
func (a *API) authenticated(h func(http.ResponseWriter, *http.Request, Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := Authenticate(a.Store, a.log(), w, r)
		if !ok {
			return
		}
		h(w, r.WithContext(WithPrincipal(r.Context(), p)), p)
	})
}

// Authenticate resolves who made the request: a principal already on the
// context (the web UI's session), else the workspace API token sent as
// "Authorization: Bearer". On failure it writes the 401 answer and returns
// false. Every authenticated route of Clarion (API, tools, MCP) uses it.
func Authenticate(st store.Store, log *slog.Logger, w http.ResponseWriter, r *http.Request) (Principal, bool) {
	if p, ok := PrincipalFrom(r.Context()); ok && p.WorkspaceID != "" {
		return p, true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="clarion"`)
		writeError(w, http.StatusUnauthorized, "unauthenticated", "Send a workspace API token as Authorization: Bearer <token>.", "")
		return Principal{}, false
	}
	t, err := st.LookupAPIToken(r.Context(), HashToken(tok))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			log.Error("lookup api token", "err", err)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="clarion", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid_token", "The API token is unknown or was revoked.", "")
		return Principal{}, false
	}
	return Principal{WorkspaceID: t.WorkspaceID, TokenID: t.ID}, true
}

// --- integration ---

// IntegrationView is the JSON shape of a workspace's Sentinel integration.
type IntegrationView struct {
	Connected   bool          `json:"connected"`
	State       string        `json:"state"`
	StateCode   string        `json:"state_code,omitempty"`
	StateReason string        `json:"state_reason,omitempty"`
	TenantID    string        `json:"tenant_id,omitempty"`
	Account     string        `json:"account,omitempty"`
	Scopes      []string      `json:"scopes,omitempty"`
	ConnectedAt *time.Time    `json:"connected_at,omitempty"`
	Monitors    []MonitorView `json:"monitors"`
}

func (a *API) getIntegration(w http.ResponseWriter, r *http.Request, p Principal) {
	v := IntegrationView{State: "not_connected", Monitors: []MonitorView{}}
	c, err := a.Store.GetConnection(r.Context(), p.WorkspaceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		a.internal(w, "get connection", err)
		return
	default:
		t := c.ConnectedAt
		v = IntegrationView{Connected: true, State: c.State, StateCode: c.StateCode, StateReason: c.StateReason,
			TenantID: c.TenantID, Account: c.AccountUsername, Scopes: c.Scopes, ConnectedAt: &t, Monitors: []MonitorView{}}
	}
	ms, err := a.Integration.ListMonitors(r.Context(), p.WorkspaceID)
	if err != nil {
		a.internal(w, "list monitors", err)
		return
	}
	for _, m := range ms {
		v.Monitors = append(v.Monitors, monitorView(m))
	}
	writeJSON(w, 200, v)
}

func (a *API) disconnect(w http.ResponseWriter, r *http.Request, p Principal) {
	removed, err := a.Integration.Disconnect(r.Context(), p.WorkspaceID)
	if errors.Is(err, integration.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_connected", "This workspace is not connected to Microsoft Sentinel.", "")
		return
	}
	if err != nil {
		a.internal(w, "disconnect", err)
		return
	}
	if removed == nil {
		removed = []string{}
	}
	writeJSON(w, 200, map[string]any{"disconnected": true, "removed_monitors": removed})
}

func (a *API) listWorkspaces(w http.ResponseWriter, r *http.Request, p Principal) {
	ws, err := a.Integration.ListSentinelWorkspaces(r.Context(), p.WorkspaceID)
	if err != nil {
		a.serviceError(w, err)
		return
	}
	type wsView struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	out := make([]wsView, 0, len(ws))
	for _, x := range ws {
		out = append(out, wsView{x.ID, x.Name})
	}
	writeJSON(w, 200, map[string]any{"workspaces": out})
}

// --- monitors ---

// MonitorView is the JSON shape of a monitor.
type MonitorView struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Source        string     `json:"source"`
	WorkspaceID   string     `json:"workspace_id"`
	WorkspaceName string     `json:"workspace_name,omitempty"`
	Severities    []string   `json:"severities"`
	Search        string     `json:"search"`
	Enabled       bool       `json:"enabled"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	NextPollAt    *time.Time `json:"next_poll_at,omitempty"`
	Health        HealthView `json:"health"`
}

// HealthView is a monitor's sync health.
type HealthView struct {
	Status              string           `json:"status"`
	LastPollAt          *time.Time       `json:"last_poll_at,omitempty"`
	LastSuccessAt       *time.Time       `json:"last_success_at,omitempty"`
	LastErrorCode       string           `json:"last_error_code,omitempty"`
	LastError           string           `json:"last_error,omitempty"`
	ConsecutiveFailures int              `json:"consecutive_failures"`
	Counts              store.PollCounts `json:"last_poll_counts"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func monitorView(m store.Monitor) MonitorView {
	sev := m.Severities
	if sev == nil {
		sev = []string{}
	}
	st := m.Health.Status
	if st == "" {
		st = store.HealthPending
	}
	return MonitorView{
		ID: m.ID, Name: m.Name, Source: m.SourceKind, WorkspaceID: m.SentinelWorkspaceID, WorkspaceName: m.SentinelWorkspaceName,
		Severities: sev, Search: m.Search, Enabled: m.Enabled, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		NextPollAt: timePtr(m.NextPollAt),
		Health: HealthView{Status: st, LastPollAt: timePtr(m.Health.LastPollAt), LastSuccessAt: timePtr(m.Health.LastSuccessAt),
			LastErrorCode: m.Health.LastErrorCode, LastError: m.Health.LastError,
			ConsecutiveFailures: m.Health.ConsecutiveFailures, Counts: m.Health.Counts},
	}
}

func (a *API) listMonitors(w http.ResponseWriter, r *http.Request, p Principal) {
	ms, err := a.Integration.ListMonitors(r.Context(), p.WorkspaceID)
	if err != nil {
		a.internal(w, "list monitors", err)
		return
	}
	out := make([]MonitorView, 0, len(ms))
	for _, m := range ms {
		out = append(out, monitorView(m))
	}
	writeJSON(w, 200, map[string]any{"monitors": out})
}

// maxBody bounds request bodies: a monitor is a few hundred bytes.
const maxBody = 64 << 10

func decodeInput(w http.ResponseWriter, r *http.Request) (integration.MonitorInput, bool) {
	var in integration.MonitorInput
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var mbe *http.MaxBytesError
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("The request body is larger than %d bytes.", maxBody), "")
		case errors.As(err, &ute):
			writeError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("Field %q has the wrong type.", ute.Field), ute.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			writeError(w, http.StatusBadRequest, "unknown_field", fmt.Sprintf("Unknown field %q.", f), f)
		default:
			writeError(w, http.StatusBadRequest, "invalid_json", "The request body is not valid JSON.", "")
		}
		return in, false
	}
	return in, true
}

func (a *API) createMonitor(w http.ResponseWriter, r *http.Request, p Principal) {
	in, ok := decodeInput(w, r)
	if !ok {
		return
	}
	m, err := a.Integration.CreateMonitor(r.Context(), p.WorkspaceID, in)
	if err != nil {
		a.serviceError(w, err)
		return
	}
	w.Header().Set("Location", "/api/v1/monitors/"+m.ID)
	writeJSON(w, http.StatusCreated, monitorView(m))
}

func (a *API) getMonitor(w http.ResponseWriter, r *http.Request, p Principal) {
	m, err := a.Integration.GetMonitor(r.Context(), p.WorkspaceID, r.PathValue("id"))
	if err != nil {
		a.serviceError(w, err)
		return
	}
	writeJSON(w, 200, monitorView(m))
}

func (a *API) updateMonitor(w http.ResponseWriter, r *http.Request, p Principal) {
	in, ok := decodeInput(w, r)
	if !ok {
		return
	}
	m, err := a.Integration.UpdateMonitor(r.Context(), p.WorkspaceID, r.PathValue("id"), in)
	if err != nil {
		a.serviceError(w, err)
		return
	}
	writeJSON(w, 200, monitorView(m))
}

func (a *API) deleteMonitor(w http.ResponseWriter, r *http.Request, p Principal) {
	if err := a.Integration.DeleteMonitor(r.Context(), p.WorkspaceID, r.PathValue("id")); err != nil {
		a.serviceError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) diagnose(w http.ResponseWriter, r *http.Request, p Principal) {
	d, err := a.Integration.Diagnose(r.Context(), p.WorkspaceID, r.PathValue("id"))
	if err != nil {
		a.serviceError(w, err)
		return
	}
	writeJSON(w, 200, d)
}

// --- alerts ---

// AlertView is the JSON shape of an alert.
type AlertView struct {
	ID                  string          `json:"id"`
	Title               string          `json:"title"`
	Description         string          `json:"description"`
	Severity            string          `json:"severity"`
	SourceSeverity      string          `json:"source_severity"`
	Status              string          `json:"status"`
	IncidentID          string          `json:"incident_id"`
	IncidentNumber      int64           `json:"incident_number"`
	DeepLink            string          `json:"deep_link"`
	IncidentCreatedAt   time.Time       `json:"incident_created_at"`
	IngestedAt          time.Time       `json:"ingested_at"`
	MonitorID           string          `json:"monitor_id"`
	MonitorName         string          `json:"monitor_name"`
	SentinelWorkspaceID string          `json:"sentinel_workspace_id"`
	TenantID            string          `json:"tenant_id,omitempty"`
	Payload             json.RawMessage `json:"payload"`
}

func alertView(x store.Alert) AlertView {
	p := x.Payload
	if len(p) == 0 {
		p = json.RawMessage("null")
	}
	return AlertView{ID: x.ID, Title: x.Title, Description: x.Description, Severity: x.Severity, SourceSeverity: x.SourceSeverity,
		Status: x.Status, IncidentID: x.IncidentID, IncidentNumber: x.IncidentNumber, DeepLink: x.DeepLink,
		IncidentCreatedAt: x.IncidentCreatedAt, IngestedAt: x.IngestedAt, MonitorID: x.MonitorID, MonitorName: x.MonitorName,
		SentinelWorkspaceID: x.SentinelWorkspaceID, TenantID: x.TenantID, Payload: p}
}

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request, p Principal) {
	q := r.URL.Query()
	f := store.AlertFilter{MonitorID: q.Get("monitor_id"), Severity: strings.ToLower(q.Get("severity")), Limit: 50}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "invalid_field", "limit must be a whole number from 1 to 500.", "limit")
			return
		}
		f.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		t, id, ok := store.DecodeCursor(c)
		if !ok {
			writeError(w, http.StatusBadRequest, "invalid_field", "cursor is not one this API returned.", "cursor")
			return
		}
		f.BeforeIngestedAt, f.BeforeID = t, id
	}
	as, err := a.Integration.ListAlerts(r.Context(), p.WorkspaceID, f)
	if err != nil {
		a.serviceError(w, err)
		return
	}
	out := make([]AlertView, 0, len(as))
	for _, x := range as {
		out = append(out, alertView(x))
	}
	resp := map[string]any{"alerts": out}
	if len(as) == f.Limit {
		resp["next_cursor"] = store.EncodeCursor(as[len(as)-1].IngestedAt, as[len(as)-1].ID)
	}
	writeJSON(w, 200, resp)
}

func (a *API) getAlert(w http.ResponseWriter, r *http.Request, p Principal) {
	x, err := a.Integration.GetAlert(r.Context(), p.WorkspaceID, r.PathValue("id"))
	if err != nil {
		a.serviceError(w, err)
		return
	}
	writeJSON(w, 200, alertView(x))
}

// --- errors ---

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Field   string       `json:"field,omitempty"`
	Fields  []fieldIssue `json:"fields,omitempty"`
}

type fieldIssue struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, errorBody{errorDetail{Code: code, Message: msg, Field: field}})
}

// FieldErrors unpacks every *integration.FieldError in err.
func FieldErrors(err error) []*integration.FieldError {
	var out []*integration.FieldError
	var walk func(error)
	walk = func(e error) {
		var fe *integration.FieldError
		if errors.As(e, &fe) && e == error(fe) {
			out = append(out, fe)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if errors.As(e, &fe) {
			out = append(out, fe)
		}
	}
	walk(err)
	return out
}

func (a *API) serviceError(w http.ResponseWriter, err error) {
	if fes := FieldErrors(err); len(fes) > 0 {
		d := errorDetail{Code: "invalid_field", Message: fes[0].Message, Field: fes[0].Field}
		for _, fe := range fes {
			d.Fields = append(d.Fields, fieldIssue{fe.Field, fe.Message})
		}
		writeJSON(w, http.StatusBadRequest, errorBody{d})
		return
	}
	var le *integration.ListError
	switch {
	case errors.Is(err, integration.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "No such object in this workspace.", "")
	case errors.Is(err, integration.ErrNotConnected):
		writeError(w, http.StatusConflict, "not_connected", "Connect this workspace to Microsoft Sentinel first (Integrations → Microsoft Sentinel → Connect with Microsoft).", "")
	case errors.As(err, &le):
		a.log().Warn("list sentinel workspaces", "code", le.Code, "err", le.Err)
		writeError(w, http.StatusBadGateway, le.Code, le.Message, "")
	default:
		a.internal(w, "request", err)
	}
}

func (a *API) internal(w http.ResponseWriter, what string, err error) {
	a.log().Error(what, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "Something went wrong on Clarion's side; the error was logged.", "")
}
