package emulator

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/emulator/kql"
)

// Row is one row of a table, keyed by column name. The emulator normalises
// the values it stores to one Go type per column type:
//
//	string columns    string
//	int/long columns  int64
//	real columns      float64
//	bool columns      bool
//	datetime columns  time.Time (UTC, 100 ns precision) or nil
//	dynamic columns   decoded JSON (map[string]any, []any, string, float64, bool) or nil
//
// On input (AddIncident, the control API) each column also accepts the
// forms Microsoft payloads use: datetimes as text in any format seen in
// real rows (ISO 8601 with 0–7 fractional digits, 'Z' or an offset, a space
// for the 'T'), numbers as text, dynamic values as JSON text, and "None"
// for null. Keys that are not columns of the table are dropped.
type Row map[string]any

// StoredRow is a row with the time it becomes visible to queries.
type StoredRow struct {
	Row       Row       `json:"row"`
	VisibleAt time.Time `json:"visibleAt"`
}

type storedRow struct {
	row       Row
	visibleAt time.Time
	seq       int64
}

type workspaceState struct {
	ws     Workspace
	tables map[string][]storedRow
}

func newWorkspaceState(w Workspace) *workspaceState {
	return &workspaceState{ws: w, tables: map[string][]storedRow{}}
}

// Errors of the incident methods; test with errors.Is.
var (
	ErrUnknownTenant    = errors.New("emulator: unknown tenant")
	ErrUnknownWorkspace = errors.New("emulator: unknown workspace")
	ErrUnknownTable     = errors.New("emulator: unknown table")
	ErrUnknownIncident  = errors.New("emulator: unknown incident")
)

// NormalizeRow converts the values of row to the column types of a table
// (see Row) and drops keys that are not columns.
func NormalizeRow(table string, row Row) (Row, error) {
	schema, ok := tableSchema(table)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownTable, table)
	}
	return normalize(schema, row)
}

func normalize(schema TableSchema, row Row) (Row, error) {
	out := Row{}
	for _, c := range schema.Columns {
		v, present := row[c.Name]
		if !present {
			continue
		}
		nv, err := kql.ToValue(c.Type, v)
		if err != nil {
			return nil, fmt.Errorf("emulator: column %s: %w", c.Name, err)
		}
		out[c.Name] = nv
	}
	return out, nil
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// nameGUID is a stable GUID derived from a text (for ids built from
// payloads that carry none).
func nameGUID(s string) string {
	sum := sha256.Sum256([]byte(s))
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// workspace finds a workspace of a tenant. Callers hold e.mu.
func (e *Emulator) workspace(tenantID, workspaceID string) (*workspaceState, error) {
	t := e.tenant(tenantID)
	if t == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownTenant, tenantID)
	}
	ws := t.workspaces[strings.ToLower(workspaceID)]
	if ws == nil {
		return nil, fmt.Errorf("%w %q in tenant %s", ErrUnknownWorkspace, workspaceID, t.ID)
	}
	return ws, nil
}

// AddIncident appends a SecurityIncident row to a workspace; it becomes
// visible to query_lake once the clock reaches visibleAt (the ingestion
// delay; the zero time means at once). A row whose IncidentName already
// exists is an update of that incident: give it a later LastModifiedTime.
// It panics if the tenant or workspace is unknown or a value cannot be
// converted (see Row); use AddIncidents to get an error instead.
//
// Missing values are filled in as Sentinel would: IncidentName (a new
// GUID), IncidentNumber (the incident's, or the next in the workspace),
// CreatedTime (the incident's, or now), LastModifiedTime (CreatedTime for a
// new incident, now for an update), TimeGenerated (LastModifiedTime),
// IncidentUrl (an Azure portal link), empty lists for AlertIds, BookmarkIds,
// Comments, Tasks, Labels and RelatedAnalyticRuleIds, an empty Owner and
// AdditionalData, ProviderName "Azure Sentinel", SourceSystem "Azure" and
// Type "SecurityIncident". TenantId is always the workspace id, as in Log
// Analytics. Title, Description, Severity and Status are stored as given.
func (e *Emulator) AddIncident(tenantID, workspaceID string, row Row, visibleAt time.Time) {
	if _, err := e.AddIncidents(tenantID, workspaceID, []Row{row}, visibleAt); err != nil {
		panic(err)
	}
}

// AddIncidents is AddIncident for several rows; it returns the rows as
// stored (with the values filled in). Nothing is stored on error.
func (e *Emulator) AddIncidents(tenantID, workspaceID string, rows []Row, visibleAt time.Time) ([]Row, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws, err := e.workspace(tenantID, workspaceID)
	if err != nil {
		return nil, err
	}
	now := e.now()
	if visibleAt.IsZero() {
		visibleAt = now
	}
	var stored []Row
	pending := slices.Clone(ws.tables[SecurityIncidentTable.Name])
	for i, raw := range rows {
		row, err := normalize(SecurityIncidentTable, raw)
		if err != nil {
			return nil, fmt.Errorf("emulator: incident %d: %w", i, err)
		}
		fillIncident(row, ws, pending, now)
		e.rowSeq++
		pending = append(pending, storedRow{row: row, visibleAt: visibleAt, seq: e.rowSeq})
		stored = append(stored, cloneRow(row))
	}
	ws.tables[SecurityIncidentTable.Name] = pending
	return stored, nil
}

func cloneRow(r Row) Row {
	out := make(Row, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}

// latestIncident returns the newest row of an incident (by LastModifiedTime,
// then by arrival), or nil.
func latestIncident(rows []storedRow, name string) Row {
	var best *storedRow
	for i := range rows {
		r := &rows[i]
		if r.row["IncidentName"] != name {
			continue
		}
		if best == nil || !timeOf(r.row["LastModifiedTime"]).Before(timeOf(best.row["LastModifiedTime"])) {
			best = r
		}
	}
	if best == nil {
		return nil
	}
	return best.row
}

func timeOf(v any) time.Time {
	t, _ := v.(time.Time)
	return t
}

func isNull(v any) bool { return v == nil || v == "" }

func fillIncident(row Row, ws *workspaceState, existing []storedRow, now time.Time) {
	name, _ := row["IncidentName"].(string)
	if name == "" {
		name = newGUID()
		row["IncidentName"] = name
	}
	prev := latestIncident(existing, name)
	if row["IncidentNumber"] == nil {
		if prev != nil && prev["IncidentNumber"] != nil {
			row["IncidentNumber"] = prev["IncidentNumber"]
		} else {
			var max int64
			for _, r := range existing {
				if n, ok := r.row["IncidentNumber"].(int64); ok && n > max {
					max = n
				}
			}
			row["IncidentNumber"] = max + 1
		}
	}
	if row["CreatedTime"] == nil {
		if prev != nil && prev["CreatedTime"] != nil {
			row["CreatedTime"] = prev["CreatedTime"]
		} else {
			row["CreatedTime"] = now.UTC().Truncate(kql.Tick)
		}
	}
	if row["LastModifiedTime"] == nil {
		if prev == nil {
			row["LastModifiedTime"] = row["CreatedTime"]
		} else {
			row["LastModifiedTime"] = now.UTC().Truncate(kql.Tick)
		}
	}
	if row["TimeGenerated"] == nil {
		row["TimeGenerated"] = row["LastModifiedTime"]
	}
	row["TenantId"] = ws.ws.ID
	if isNull(row["IncidentUrl"]) {
		row["IncidentUrl"] = incidentURL(ws.ws, name)
	}
	for _, c := range []string{"AlertIds", "BookmarkIds", "Comments", "Tasks", "Labels", "RelatedAnalyticRuleIds"} {
		if row[c] == nil {
			row[c] = []any{}
		}
	}
	if row["Owner"] == nil {
		row["Owner"] = map[string]any{"objectId": nil, "email": nil, "assignedTo": nil, "userPrincipalName": nil}
	}
	if row["AdditionalData"] == nil {
		row["AdditionalData"] = map[string]any{"alertsCount": float64(0), "bookmarksCount": float64(0), "commentsCount": float64(0),
			"alertProductNames": []any{}, "tactics": []any{}, "techniques": []any{}}
	}
	if isNull(row["ProviderName"]) {
		row["ProviderName"] = "Azure Sentinel"
	}
	if isNull(row["ProviderIncidentId"]) && row["ProviderName"] == "Azure Sentinel" {
		row["ProviderIncidentId"] = fmt.Sprint(row["IncidentNumber"])
	}
	if isNull(row["SourceSystem"]) {
		row["SourceSystem"] = "Azure"
	}
	row["Type"] = "SecurityIncident"
	for _, c := range SecurityIncidentTable.Columns {
		if _, ok := row[c.Name]; !ok {
			v, _ := kql.ToValue(c.Type, nil)
			row[c.Name] = v
		}
	}
}

// incidentURL builds the Azure portal link of an incident. The
// subscription and resource group are made up from the workspace.
func incidentURL(w Workspace, incidentName string) string {
	return "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident/subscriptions/" +
		nameGUID("subscription:"+w.ID) + "/resourceGroups/sentinel-rg/providers/Microsoft.OperationalInsights/workspaces/" +
		w.Name + "/providers/Microsoft.SecurityInsights/Incidents/" + incidentName
}

// UpdateIncident appends a new row for an existing incident: its latest
// row with changes applied. LastModifiedTime and TimeGenerated become now
// unless changes set them; closing the incident (Status "Closed") sets
// ClosedTime. It returns the new row.
func (e *Emulator) UpdateIncident(tenantID, workspaceID, incidentName string, changes Row, visibleAt time.Time) (Row, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws, err := e.workspace(tenantID, workspaceID)
	if err != nil {
		return nil, err
	}
	rows := ws.tables[SecurityIncidentTable.Name]
	prev := latestIncident(rows, strings.ToLower(incidentName))
	if prev == nil {
		prev = latestIncident(rows, incidentName)
	}
	if prev == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownIncident, incidentName)
	}
	ch, err := normalize(SecurityIncidentTable, changes)
	if err != nil {
		return nil, err
	}
	now := e.now().UTC().Truncate(kql.Tick)
	row := cloneRow(prev)
	for k, v := range ch {
		row[k] = v
	}
	if _, ok := ch["LastModifiedTime"]; !ok {
		row["LastModifiedTime"] = now
	}
	if _, ok := ch["TimeGenerated"]; !ok {
		row["TimeGenerated"] = row["LastModifiedTime"]
	}
	if row["Status"] == "Closed" && row["ClosedTime"] == nil {
		row["ClosedTime"] = row["LastModifiedTime"]
	}
	if row["FirstModifiedTime"] == nil {
		row["FirstModifiedTime"] = row["LastModifiedTime"]
	}
	if visibleAt.IsZero() {
		visibleAt = e.now()
	}
	e.rowSeq++
	ws.tables[SecurityIncidentTable.Name] = append(rows, storedRow{row: row, visibleAt: visibleAt, seq: e.rowSeq})
	return cloneRow(row), nil
}

// AddRows appends rows to any table of the catalog (SecurityAlert,
// SigninLogs, ...), for hunting queries. Values are normalised as for Row;
// nothing is filled in but TenantId (the workspace id) and Type.
func (e *Emulator) AddRows(tenantID, workspaceID, table string, rows []Row, visibleAt time.Time) error {
	if table == SecurityIncidentTable.Name {
		_, err := e.AddIncidents(tenantID, workspaceID, rows, visibleAt)
		return err
	}
	schema, ok := tableSchema(table)
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownTable, table)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ws, err := e.workspace(tenantID, workspaceID)
	if err != nil {
		return err
	}
	if visibleAt.IsZero() {
		visibleAt = e.now()
	}
	var add []storedRow
	for i, raw := range rows {
		row, err := normalize(schema, raw)
		if err != nil {
			return fmt.Errorf("emulator: %s row %d: %w", table, i, err)
		}
		row["TenantId"] = ws.ws.ID
		row["Type"] = table
		e.rowSeq++
		add = append(add, storedRow{row: row, visibleAt: visibleAt, seq: e.rowSeq})
	}
	ws.tables[table] = append(ws.tables[table], add...)
	return nil
}

// Rows lists every row of a table of a workspace, visible or not, in
// arrival order.
func (e *Emulator) Rows(tenantID, workspaceID, table string) ([]StoredRow, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws, err := e.workspace(tenantID, workspaceID)
	if err != nil {
		return nil, err
	}
	if _, ok := tableSchema(table); !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownTable, table)
	}
	var out []StoredRow
	for _, r := range ws.tables[table] {
		out = append(out, StoredRow{Row: cloneRow(r.row), VisibleAt: r.visibleAt})
	}
	return out, nil
}

// Incidents lists the SecurityIncident rows of a workspace.
func (e *Emulator) Incidents(tenantID, workspaceID string) ([]StoredRow, error) {
	return e.Rows(tenantID, workspaceID, SecurityIncidentTable.Name)
}

// snapshot returns the visible rows of every table of a workspace as KQL
// tables. Callers hold e.mu.
func (ws *workspaceState) snapshot(now time.Time) map[string]*kql.Table {
	out := map[string]*kql.Table{}
	for _, schema := range catalog {
		t := &kql.Table{Name: schema.Name, Columns: schema.kqlColumns()}
		for _, r := range ws.tables[schema.Name] {
			if r.visibleAt.After(now) {
				continue
			}
			vals := make([]any, len(schema.Columns))
			for i, c := range schema.Columns {
				v, ok := r.row[c.Name]
				if !ok {
					v, _ = kql.ToValue(c.Type, nil)
				}
				vals[i] = v
			}
			t.Rows = append(t.Rows, vals)
		}
		out[schema.Name] = t
	}
	return out
}
