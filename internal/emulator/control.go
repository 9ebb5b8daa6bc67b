package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/emulator/kql"
)

// controlPrefix is where the control API lives. Microsoft has no such
// path; nothing of Clarion's may call it.
const controlPrefix = "/_emulator/"

func (e *Emulator) controlRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_emulator/{$}", e.ctlIndex)
	mux.HandleFunc("GET /_emulator/tenants", e.ctlTenants)
	mux.HandleFunc("PATCH /_emulator/tenants/{tenant}", e.ctlPatchTenant)
	mux.HandleFunc("POST /_emulator/tenants/{tenant}/revoke", e.ctlRevoke)
	const ws = "/_emulator/tenants/{tenant}/workspaces/{workspace}"
	mux.HandleFunc("GET "+ws+"/incidents", e.ctlListIncidents)
	mux.HandleFunc("POST "+ws+"/incidents", e.ctlAddIncidents)
	mux.HandleFunc("PATCH "+ws+"/incidents/{incident}", e.ctlUpdateIncident)
	mux.HandleFunc("GET "+ws+"/tables/{table}/rows", e.ctlListRows)
	mux.HandleFunc("POST "+ws+"/tables/{table}/rows", e.ctlAddRows)
	mux.HandleFunc("POST "+ws+"/query", e.ctlQuery)
	mux.HandleFunc("GET /_emulator/faults", e.ctlListFaults)
	mux.HandleFunc("POST /_emulator/faults", e.ctlAddFault)
	mux.HandleFunc("DELETE /_emulator/faults", e.ctlClearFaults)
	mux.HandleFunc("DELETE /_emulator/faults/{id}", e.ctlClearFault)
	mux.HandleFunc("GET /_emulator/stats", e.ctlStats)
	mux.HandleFunc("DELETE /_emulator/stats", e.ctlResetStats)
	return mux
}

func ctlError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]any{"error": err.Error()})
}

func ctlStatus(err error) int {
	switch {
	case errors.Is(err, ErrUnknownTenant), errors.Is(err, ErrUnknownWorkspace),
		errors.Is(err, ErrUnknownIncident), errors.Is(err, ErrUnknownTable):
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 64<<20))
}

func (e *Emulator) ctlIndex(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"description": "Control API of the Microsoft emulator (not part of Microsoft's API).",
		"routes": []string{
			"GET /_emulator/tenants",
			"PATCH /_emulator/tenants/{tenant} {\"dataLakeOnboarded\":bool,\"defenderMcpProvisioned\":bool}",
			"POST /_emulator/tenants/{tenant}/revoke {\"aadsts\":700082}",
			"GET|POST /_emulator/tenants/{tenant}/workspaces/{workspace}/incidents[?visible_after=90s|visible_at=RFC3339]",
			"PATCH /_emulator/tenants/{tenant}/workspaces/{workspace}/incidents/{incidentName}[?visible_after=...]",
			"GET|POST /_emulator/tenants/{tenant}/workspaces/{workspace}/tables/{table}/rows",
			"POST /_emulator/tenants/{tenant}/workspaces/{workspace}/query {\"query\":\"...\"}",
			"GET|POST|DELETE /_emulator/faults, DELETE /_emulator/faults/{id}",
			"GET|DELETE /_emulator/stats",
		},
	})
}

type tenantView struct {
	ID                     string      `json:"id"`
	Name                   string      `json:"name"`
	Users                  []User      `json:"users"`
	Workspaces             []Workspace `json:"workspaces"`
	DataLakeOnboarded      bool        `json:"dataLakeOnboarded"`
	DefenderMCPProvisioned bool        `json:"defenderMcpProvisioned"`
	Consented              []string    `json:"consented"`
}

func (e *Emulator) ctlTenants(w http.ResponseWriter, r *http.Request) {
	var out []tenantView
	for _, id := range e.TenantIDs() {
		consented := e.Consented(id)
		e.mu.Lock()
		t := e.tenants[id]
		out = append(out, tenantView{ID: t.ID, Name: t.Name, Users: t.Users, Workspaces: t.Workspaces,
			DataLakeOnboarded: t.DataLakeOnboarded, DefenderMCPProvisioned: t.DefenderMCPProvisioned, Consented: consented})
		e.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenants": out})
}

func (e *Emulator) ctlPatchTenant(w http.ResponseWriter, r *http.Request) {
	var body struct {
		DataLakeOnboarded      *bool `json:"dataLakeOnboarded"`
		DefenderMCPProvisioned *bool `json:"defenderMcpProvisioned"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		ctlError(w, http.StatusBadRequest, fmt.Errorf("decode body: %w", err))
		return
	}
	tid := r.PathValue("tenant")
	if body.DataLakeOnboarded != nil {
		if err := e.SetDataLakeOnboarded(tid, *body.DataLakeOnboarded); err != nil {
			ctlError(w, http.StatusNotFound, err)
			return
		}
	}
	if body.DefenderMCPProvisioned != nil {
		if err := e.SetDefenderMCPProvisioned(tid, *body.DefenderMCPProvisioned); err != nil {
			ctlError(w, http.StatusNotFound, err)
			return
		}
	}
	e.ctlTenants(w, r)
}

func (e *Emulator) ctlRevoke(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AADSTS int `json:"aadsts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		ctlError(w, http.StatusBadRequest, fmt.Errorf("decode body: %w", err))
		return
	}
	tid := strings.ToLower(r.PathValue("tenant"))
	e.mu.Lock()
	known := e.tenant(tid) != nil
	e.mu.Unlock()
	if !known {
		ctlError(w, http.StatusNotFound, fmt.Errorf("%w %q", ErrUnknownTenant, tid))
		return
	}
	e.RevokeGrants(tid, body.AADSTS)
	writeJSON(w, http.StatusOK, map[string]any{"tenant": tid, "aadsts": body.AADSTS})
}

// visibleAt reads ?visible_after= (a Go duration such as 90s, or seconds)
// or ?visible_at= (RFC 3339) of an add or update request.
func (e *Emulator) visibleAt(r *http.Request) (time.Time, error) {
	q := r.URL.Query()
	if s := q.Get("visible_at"); s != "" {
		t, err := kql.ParseDatetime(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("visible_at: %w", err)
		}
		return t, nil
	}
	if s := q.Get("visible_after"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			secs, err2 := strconv.ParseFloat(s, 64)
			if err2 != nil {
				return time.Time{}, fmt.Errorf("visible_after: %w", err)
			}
			d = time.Duration(secs * float64(time.Second))
		}
		return e.now().Add(d), nil
	}
	return time.Time{}, nil
}

// rowJSON renders a stored row for the control API: datetimes in the Log
// Analytics text form, dynamic values as JSON objects.
func rowJSON(table string, row Row) map[string]any {
	schema, _ := tableSchema(table)
	out := map[string]any{}
	for _, c := range schema.Columns {
		v, ok := row[c.Name]
		if !ok {
			continue
		}
		if c.Type == kql.TypeDynamic {
			out[c.Name] = v
			continue
		}
		out[c.Name] = kql.ToJSON(c.Type, v)
	}
	return out
}

func storedJSON(table string, rows []StoredRow) []map[string]any {
	out := make([]map[string]any, 0, len(rows))
	for _, r := range rows {
		out = append(out, map[string]any{"visibleAt": kql.FormatDatetime(r.VisibleAt), "row": rowJSON(table, r.Row)})
	}
	return out
}

func (e *Emulator) ctlListIncidents(w http.ResponseWriter, r *http.Request) {
	rows, err := e.Incidents(r.PathValue("tenant"), r.PathValue("workspace"))
	if err != nil {
		ctlError(w, ctlStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rows": storedJSON(SecurityIncidentTable.Name, rows)})
}

func (e *Emulator) ctlAddIncidents(w http.ResponseWriter, r *http.Request) {
	vis, err := e.visibleAt(r)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	body, err := readBody(r)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	rows, err := decodeIncidents(body, false)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	stored, err := e.AddIncidents(r.PathValue("tenant"), r.PathValue("workspace"), rows, vis)
	if err != nil {
		ctlError(w, ctlStatus(err), err)
		return
	}
	out := make([]map[string]any, len(stored))
	for i, s := range stored {
		out[i] = rowJSON(SecurityIncidentTable.Name, s)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"incidents": out})
}

func (e *Emulator) ctlUpdateIncident(w http.ResponseWriter, r *http.Request) {
	vis, err := e.visibleAt(r)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	var changes Row
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&changes); err != nil {
		ctlError(w, http.StatusBadRequest, fmt.Errorf("decode body: %w", err))
		return
	}
	row, err := e.UpdateIncident(r.PathValue("tenant"), r.PathValue("workspace"), r.PathValue("incident"), changes, vis)
	if err != nil {
		ctlError(w, ctlStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"incident": rowJSON(SecurityIncidentTable.Name, row)})
}

func (e *Emulator) ctlListRows(w http.ResponseWriter, r *http.Request) {
	table := r.PathValue("table")
	rows, err := e.Rows(r.PathValue("tenant"), r.PathValue("workspace"), table)
	if err != nil {
		ctlError(w, ctlStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rows": storedJSON(table, rows)})
}

func (e *Emulator) ctlAddRows(w http.ResponseWriter, r *http.Request) {
	vis, err := e.visibleAt(r)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	body, err := readBody(r)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	var rows []Row
	var wrapped struct {
		Rows []Row `json:"rows"`
	}
	if err := json.Unmarshal(body, &rows); err != nil {
		if err2 := json.Unmarshal(body, &wrapped); err2 != nil {
			ctlError(w, http.StatusBadRequest, fmt.Errorf("body must be an array of rows or {\"rows\":[...]}: %w", err))
			return
		}
		rows = wrapped.Rows
	}
	if err := e.AddRows(r.PathValue("tenant"), r.PathValue("workspace"), r.PathValue("table"), rows, vis); err != nil {
		ctlError(w, ctlStatus(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"added": len(rows)})
}

func (e *Emulator) ctlQuery(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Query string `json:"query"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		ctlError(w, http.StatusBadRequest, fmt.Errorf("decode body: %w", err))
		return
	}
	res, err := e.Query(r.PathValue("tenant"), r.PathValue("workspace"), body.Query)
	if err != nil {
		ctlError(w, ctlStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (e *Emulator) ctlListFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"faults": e.Faults()})
}

func (e *Emulator) ctlAddFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
		ctlError(w, http.StatusBadRequest, fmt.Errorf("decode fault: %w", err))
		return
	}
	added, err := e.addFault(f)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, added)
}

func (e *Emulator) ctlClearFaults(w http.ResponseWriter, r *http.Request) {
	e.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) ctlClearFault(w http.ResponseWriter, r *http.Request) {
	if !e.ClearFault(r.PathValue("id")) {
		ctlError(w, http.StatusNotFound, fmt.Errorf("no fault %q", r.PathValue("id")))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) ctlStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, e.Stats())
}

func (e *Emulator) ctlResetStats(w http.ResponseWriter, r *http.Request) {
	e.ResetStats()
	w.WriteHeader(http.StatusNoContent)
}
