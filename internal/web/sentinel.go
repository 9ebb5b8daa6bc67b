package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/integration"
	"github.com/clarion/sentinel/internal/store"
)

// sentinelPath is the Integrations → Microsoft Sentinel page; the connect
// flow comes back to it.
const sentinelPath = "/integrations/sentinel"

type integrationsData struct {
	State      string
	StateLabel string
	Sentence   string
	Monitors   int
}

func (h *Handler) integrations(w http.ResponseWriter, r *http.Request, v *visit) {
	st, err := h.cfg.Connections.Status(r.Context(), v.Principal.WorkspaceID)
	if err != nil {
		h.internal(w, r, "connection status", err)
		return
	}
	ms, err := h.cfg.Integration.ListMonitors(r.Context(), v.Principal.WorkspaceID)
	if err != nil {
		h.internal(w, r, "list monitors", err)
		return
	}
	h.render(w, r, http.StatusOK, "integrations.html", v.page("Integrations", "integrations",
		integrationsData{State: st.State, StateLabel: stateLabels[st.State], Sentence: st.Sentence, Monitors: len(ms)}))
}

// monitorRow is a monitor as the table and the forms show it.
type monitorRow struct {
	store.Monitor
	SourceLabel string
	Filter      string // the severity filter in words
	HealthLabel string
}

func newMonitorRow(m store.Monitor) monitorRow {
	row := monitorRow{Monitor: m, HealthLabel: healthLabels[m.Health.Status]}
	if row.HealthLabel == "" {
		row.HealthLabel = m.Health.Status
	}
	switch m.SourceKind {
	case store.SourceDataLake:
		row.SourceLabel = "Data lake"
	default:
		row.SourceLabel = "SIEM workspace"
	}
	if len(m.Severities) == 0 {
		row.Filter = "All severities (no filter)"
	} else {
		names := make([]string, len(m.Severities))
		for i, s := range m.Severities {
			names[i] = strings.ToUpper(s[:1]) + s[1:]
		}
		row.Filter = "Only " + strings.Join(names, ", ")
	}
	return row
}

type sentinelData struct {
	Status     connection.Status
	StateLabel string
	Connected  bool
	Reconnect  bool
	Degraded   *notice
	Monitors   []monitorRow
	// Permissions are the four the consent screen lists (product document, Step 2).
	Permissions []permission
}

type permission struct{ Name, Why string }

var consentPermissions = []permission{
	{"Maintain access to data you have given it access to", "Lets Clarion refresh its access offline so polling continues without re-prompting (offline_access)."},
	{"Sign in and read user profile", "Identifies the consenting tenant and account (openid)."},
	{"Read securitycenter information by MCP", "Grants the Sentinel/Defender triage tools — incidents, alerts, and advanced hunting."},
	{"Sentinel Platform Delegated API Access", "Grants the data lake tools — KQL queries and workspace listing."},
}

func (h *Handler) sentinel(w http.ResponseWriter, r *http.Request, v *visit) {
	ctx := r.Context()
	st, err := h.cfg.Connections.Status(ctx, v.Principal.WorkspaceID)
	if err != nil {
		h.internal(w, r, "connection status", err)
		return
	}
	ms, err := h.cfg.Integration.ListMonitors(ctx, v.Principal.WorkspaceID)
	if err != nil {
		h.internal(w, r, "list monitors", err)
		return
	}
	d := sentinelData{Status: st, StateLabel: stateLabels[st.State], Connected: st.Connected(),
		Reconnect: st.State == store.StateReconnectRequired, Degraded: stateNotice(st), Permissions: consentPermissions}
	for _, m := range ms {
		d.Monitors = append(d.Monitors, newMonitorRow(m))
	}
	var notices []notice
	q := r.URL.Query()
	if code := q.Get("error"); code != "" {
		notices = append(notices, connectNotice(code))
	}
	if q.Get("connected") == "1" {
		if n, ok := doneNotice("connected", ""); ok {
			notices = append(notices, n)
		}
	}
	if n, ok := doneNotice(q.Get("done"), q.Get("removed")); ok {
		notices = append(notices, n)
	}
	h.render(w, r, http.StatusOK, "sentinel.html", v.page("Microsoft Sentinel", "integrations", d, notices...))
}

// connect starts the connect flow (admin consent, then sign-in) the same
// way as the API's connect route, bound to this browser; Microsoft's answer
// comes back through the API's callback, which returns the browser here
// with ?connected=1 or ?error=<code>.
func (h *Handler) connect(w http.ResponseWriter, r *http.Request, v *visit) {
	h.log.Info("connect started", "workspace_id", v.Principal.WorkspaceID, "user_id", v.UserID)
	h.cfg.Connector.StartConnect(w, r, v.Principal.WorkspaceID, sentinelPath)
}

type disconnectData struct {
	Monitors []monitorRow
}

func (h *Handler) disconnectPage(w http.ResponseWriter, r *http.Request, v *visit) {
	st, err := h.cfg.Connections.Status(r.Context(), v.Principal.WorkspaceID)
	if err != nil {
		h.internal(w, r, "connection status", err)
		return
	}
	if !st.Connected() {
		http.Redirect(w, r, sentinelPath, http.StatusSeeOther)
		return
	}
	ms, err := h.cfg.Integration.ListMonitors(r.Context(), v.Principal.WorkspaceID)
	if err != nil {
		h.internal(w, r, "list monitors", err)
		return
	}
	var d disconnectData
	for _, m := range ms {
		d.Monitors = append(d.Monitors, newMonitorRow(m))
	}
	h.render(w, r, http.StatusOK, "disconnect.html", v.page("Disconnect Microsoft Sentinel", "integrations", d))
}

func (h *Handler) disconnect(w http.ResponseWriter, r *http.Request, v *visit) {
	removed, err := h.cfg.Integration.Disconnect(r.Context(), v.Principal.WorkspaceID)
	if errors.Is(err, integration.ErrNotFound) || errors.Is(err, connection.ErrNotConnected) {
		http.Redirect(w, r, sentinelPath, http.StatusSeeOther)
		return
	}
	if err != nil {
		h.internal(w, r, "disconnect", err)
		return
	}
	h.log.Info("sentinel disconnected from the web UI", "workspace_id", v.Principal.WorkspaceID, "user_id", v.UserID, "monitors_removed", len(removed))
	q := url.Values{"done": {"disconnected"}, "removed": {strconv.Itoa(len(removed))}}
	http.Redirect(w, r, sentinelPath+"?"+q.Encode(), http.StatusSeeOther)
}
