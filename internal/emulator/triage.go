package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/clarion/sentinel/internal/emulator/kql"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The triage MCP server (https://sentinel.microsoft.com/mcp/triage) is
// served at /mcp/triage behind the same checks as data exploration, with
// the Defender MCP audience (7b7b3966-…) and permission MCP.Read.All. A
// tenant without the Defender MCP service principal never gets such a
// token (AADSTS650052 at the token endpoint), so it never reaches it.
//
// Its tools carry Microsoft's names and parameters (MICROSOFT.md §3) and
// answer from the tenant's Defender view (triage_data.go): incidents and
// alerts in the Microsoft Graph security.incident / security.alert shapes,
// devices, files, addresses, users and vulnerabilities in the Defender for
// Endpoint API shapes, hunting results in Graph's huntingQueryResults
// shape. Failures are tool errors (IsError) whose text is a Graph-style
// JSON error, {"error":{"code":"NotFound","message":"…"}}. Faults
// (throttle, server_error, delay, truncate) and Stats.Tools apply by tool
// name at the HTTP level (mcpEndpoint.ServeHTTP).

// Triage tool names, exactly as Microsoft spells them.
const (
	ToolListIncidents                            = "ListIncidents"
	ToolGetIncidentByID                          = "GetIncidentById"
	ToolListAlerts                               = "ListAlerts"
	ToolGetAlertByID                             = "GetAlertByID"
	ToolRunAdvancedHuntingQuery                  = "RunAdvancedHuntingQuery"
	ToolFetchAdvancedHuntingTablesOverview       = "FetchAdvancedHuntingTablesOverview"
	ToolFetchAdvancedHuntingTablesDetailedSchema = "FetchAdvancedHuntingTablesDetailedSchema"
	ToolGetDefenderFileInfo                      = "GetDefenderFileInfo"
	ToolGetDefenderFileStatistics                = "GetDefenderFileStatistics"
	ToolGetDefenderFileAlerts                    = "GetDefenderFileAlerts"
	ToolGetDefenderFileRelatedMachines           = "GetDefenderFileRelatedMachines"
	ToolGetDefenderIPAlerts                      = "GetDefenderIpAlerts"
	ToolGetDefenderIPStatistics                  = "GetDefenderIpStatistics"
	ToolFindDefenderMachineByIP                  = "FindDefenderMachineByIp"
	ToolGetDefenderMachine                       = "GetDefenderMachine"
	ToolGetDefenderMachineAlerts                 = "GetDefenderMachineAlerts"
	ToolGetDefenderMachineLoggedOnUsers          = "GetDefenderMachineLoggedOnUsers"
	ToolGetDefenderMachineVulnerabilities        = "GetDefenderMachineVulnerabilities"
	ToolListUserRelatedAlerts                    = "ListUserRelatedAlerts"
	ToolListUserRelatedMachines                  = "ListUserRelatedMachines"
)

// TriageTools lists the triage tool names in Microsoft's order.
var TriageTools = []string{
	ToolListIncidents, ToolGetIncidentByID, ToolListAlerts, ToolGetAlertByID, ToolRunAdvancedHuntingQuery,
	ToolFetchAdvancedHuntingTablesOverview, ToolFetchAdvancedHuntingTablesDetailedSchema, ToolGetDefenderFileInfo,
	ToolGetDefenderFileStatistics, ToolGetDefenderFileAlerts, ToolGetDefenderFileRelatedMachines, ToolGetDefenderIPAlerts,
	ToolGetDefenderIPStatistics, ToolFindDefenderMachineByIP, ToolGetDefenderMachine, ToolGetDefenderMachineAlerts,
	ToolGetDefenderMachineLoggedOnUsers, ToolGetDefenderMachineVulnerabilities, ToolListUserRelatedAlerts, ToolListUserRelatedMachines,
}

// Page sizes of the list tools.
const (
	defaultTriageTop = 20
	maxTriageTop     = 100
)

func (e *Emulator) newTriageEndpoint() *mcpEndpoint {
	return e.newMCPEndpoint("triage", DefenderMCPResource, DefenderMCPPermission, e.registerTriageTools)
}

type listIncidentsInput struct {
	CreatedAfter      string `json:"createdAfter,omitempty" jsonschema:"Only incidents created at or after this time (ISO 8601)"`
	CreatedBefore     string `json:"createdBefore,omitempty" jsonschema:"Only incidents created before this time (ISO 8601)"`
	Severity          string `json:"Severity,omitempty" jsonschema:"informational, low, medium or high"`
	Status            string `json:"Status,omitempty" jsonschema:"active, inProgress, awaitingAction, resolved or redirected"`
	AssignedTo        string `json:"AssignedTo,omitempty" jsonschema:"The analyst the incident is assigned to (UPN)"`
	Classification    string `json:"Classification,omitempty" jsonschema:"unknown, falsePositive, truePositive or informationalExpectedActivity"`
	Determination     string `json:"Determination,omitempty" jsonschema:"The determination of the incident (Graph spelling, e.g. malware, phishing, notMalicious)"`
	OrderBy           string `json:"orderBy,omitempty" jsonschema:"createdDateTime, lastUpdateDateTime or severity, then asc or desc (default createdDateTime desc)"`
	Search            string `json:"Search,omitempty" jsonschema:"Text to find in the incident's name or description"`
	IncludeAlertsData bool   `json:"includeAlertsData,omitempty" jsonschema:"Include each incident's alerts with their evidence"`
	Skip              int    `json:"skip,omitempty" jsonschema:"Incidents to skip (paging)"`
	Top               int    `json:"top,omitempty" jsonschema:"Incidents to return (1-100, default 20)"`
}

type getIncidentInput struct {
	IncidentID        string `json:"incidentID" jsonschema:"The Sentinel incident id: its GUID or its numeric Sentinel incident number"`
	IncludeAlertsData bool   `json:"includeAlertsData,omitempty" jsonschema:"Include the incident's alerts with their evidence"`
}

type listAlertsInput struct {
	CreatedAfter  string `json:"createdAfter,omitempty" jsonschema:"Only alerts created at or after this time (ISO 8601)"`
	CreatedBefore string `json:"createdBefore,omitempty" jsonschema:"Only alerts created before this time (ISO 8601)"`
	Severity      string `json:"Severity,omitempty" jsonschema:"informational, low, medium or high"`
	Status        string `json:"status,omitempty" jsonschema:"new, inProgress or resolved"`
	Skip          int    `json:"skip,omitempty" jsonschema:"Alerts to skip (paging)"`
	Top           int    `json:"top,omitempty" jsonschema:"Alerts to return (1-100, default 20)"`
}

type alertIDInput struct {
	AlertID string `json:"AlertID" jsonschema:"The alert id"`
}

type huntingInput struct {
	KQLQuery  string `json:"kqlQuery" jsonschema:"One advanced hunting KQL query (at most 800 characters)"`
	Timestamp string `json:"timestamp,omitempty" jsonschema:"Reference time of the query (ISO 8601): now() and ago() count from it"`
}

type tableNamesInput struct {
	TableNames []string `json:"tableNames,omitempty" jsonschema:"Advanced hunting table names"`
}

type fileHashInput struct {
	FileHash string `json:"fileHash" jsonschema:"SHA-1, SHA-256 or MD5 of the file (hex)"`
}

type ipInput struct {
	IPAddress string `json:"ipAddress" jsonschema:"An IPv4 or IPv6 address"`
}

type ipTimeInput struct {
	IPAddress string `json:"ipAddress" jsonschema:"An internal IPv4 or IPv6 address"`
	Timestamp string `json:"timestamp" jsonschema:"When the device had the address (ISO 8601)"`
}

type idInput struct {
	ID string `json:"ID" jsonschema:"The id"`
}

// graphError is a tool error with a Graph-style JSON error text.
func graphError(code, format string, args ...any) *mcp.CallToolResult {
	msg := fmt.Sprintf(format, args...)
	res, _ := toolJSON(map[string]any{"error": map[string]any{"code": code, "message": msg}})
	res.IsError = true
	return res
}

func notFound(format string, args ...any) *mcp.CallToolResult {
	return graphError("NotFound", format, args...)
}

func badRequest(format string, args ...any) *mcp.CallToolResult {
	return graphError("BadRequest", format, args...)
}

// triageTool adds one triage tool whose handler gets the caller's Defender
// view.
func triageTool[In any](e *Emulator, s *mcp.Server, name, desc string, h func(v *defenderView, in In) (*mcp.CallToolResult, error)) {
	mcp.AddTool(s, &mcp.Tool{Name: name, Description: desc}, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
		v, err := e.defenderView(caller(req))
		if err != nil {
			return graphError("Forbidden", "%s", "The tenant of the access token is unknown."), nil, nil
		}
		res, err := h(v, in)
		return res, nil, err
	})
}

// jsonResult is a tool result holding JSON text, written as Microsoft's
// services write it (no HTML escaping of <, > and &).
func jsonResult(v any) (*mcp.CallToolResult, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, errors.New("emulator: encode tool result")
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.TrimSuffix(buf.String(), "\n")}}}, nil
}

// registerTriageTools adds the triage tools to the triage server.
func (e *Emulator) registerTriageTools(s *mcp.Server) {
	triageTool(e, s, ToolListIncidents, "Lists security incidents of the tenant (Microsoft Graph security.incident), newest first, filtered by creation time, severity, status, assignee, classification, determination and text.",
		func(v *defenderView, in listIncidentsInput) (*mcp.CallToolResult, error) {
			after, before, msg := timeRange(in.CreatedAfter, in.CreatedBefore)
			if msg != "" {
				return badRequest("%s", msg), nil
			}
			field, desc, msg := parseOrderBy(in.OrderBy)
			if msg != "" {
				return badRequest("%s", msg), nil
			}
			top, skip, msg := paging(in.Top, in.Skip)
			if msg != "" {
				return badRequest("%s", msg), nil
			}
			search := strings.ToLower(strings.TrimSpace(in.Search))
			var matched []map[string]any
			for _, inc := range v.incidents {
				g := v.graphIncident(inc, in.IncludeAlertsData)
				switch {
				case !after.IsZero() && inc.created.Before(after),
					!before.IsZero() && !inc.created.Before(before),
					!eqFold(g["severity"], in.Severity), !eqFold(g["status"], in.Status),
					!eqFold(g["assignedTo"], in.AssignedTo), !eqFold(g["classification"], in.Classification),
					!eqFold(g["determination"], in.Determination):
					continue
				}
				if search != "" && !strings.Contains(strings.ToLower(str(g["displayName"])+"\n"+str(g["description"])), search) {
					continue
				}
				matched = append(matched, g)
			}
			sortGraph(matched, field, desc)
			return jsonResult(page("https://graph.microsoft.com/v1.0/$metadata#security/incidents", "security/incidents", matched, skip, top))
		})

	triageTool(e, s, ToolGetIncidentByID, "Gets one security incident by its Sentinel incident id (GUID or numeric Sentinel incident number), in the Microsoft Graph security.incident shape. A Defender incident number is not a Sentinel id: use ListIncidents to find the incident.",
		func(v *defenderView, in getIncidentInput) (*mcp.CallToolResult, error) {
			id := strings.TrimSpace(in.IncidentID)
			if id == "" {
				return badRequest("The incidentID parameter is required."), nil
			}
			inc := v.findIncident(id)
			if inc == nil {
				return notFound("Incident '%s' was not found in tenant %s.", id, v.tenantID), nil
			}
			return jsonResult(v.graphIncident(inc, in.IncludeAlertsData))
		})

	triageTool(e, s, ToolListAlerts, "Lists security alerts of the tenant (Microsoft Graph security.alert), newest first, filtered by creation time, severity and status.",
		func(v *defenderView, in listAlertsInput) (*mcp.CallToolResult, error) {
			after, before, msg := timeRange(in.CreatedAfter, in.CreatedBefore)
			if msg != "" {
				return badRequest("%s", msg), nil
			}
			top, skip, msg := paging(in.Top, in.Skip)
			if msg != "" {
				return badRequest("%s", msg), nil
			}
			var matched []map[string]any
			for _, a := range v.alerts {
				if (!after.IsZero() && a.created.Before(after)) || (!before.IsZero() && !a.created.Before(before)) ||
					!eqFold(a.graph["severity"], in.Severity) || !eqFold(a.graph["status"], in.Status) {
					continue
				}
				matched = append(matched, a.graph)
			}
			return jsonResult(page("https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2", "security/alerts_v2", matched, skip, top))
		})

	triageTool(e, s, ToolGetAlertByID, "Gets one security alert by its id, with its evidence (Microsoft Graph security.alert).",
		func(v *defenderView, in alertIDInput) (*mcp.CallToolResult, error) {
			a := v.byAlertID[strings.ToLower(strings.TrimSpace(in.AlertID))]
			if a == nil {
				return notFound("Alert '%s' was not found.", in.AlertID), nil
			}
			return jsonResult(a.graph)
		})

	triageTool(e, s, ToolRunAdvancedHuntingQuery, "Runs one advanced hunting KQL query over the Defender XDR tables (DeviceProcessEvents, DeviceNetworkEvents, AlertInfo, …) and returns the schema and the result rows. The query text is limited to 800 characters.",
		func(v *defenderView, in huntingInput) (*mcp.CallToolResult, error) {
			q := in.KQLQuery
			if strings.TrimSpace(q) == "" {
				return badRequest("The kqlQuery parameter is required: give one KQL query."), nil
			}
			if n := utf8.RuneCountInString(q); n > MaxKQLLength {
				return badRequest("The query is %d characters long; the limit is %d characters.", n, MaxKQLLength), nil
			}
			var at time.Time
			if strings.TrimSpace(in.Timestamp) != "" {
				t, err := kql.ParseDatetime(in.Timestamp)
				if err != nil {
					return badRequest("timestamp '%s' is not an ISO 8601 date and time.", in.Timestamp), nil
				}
				at = t
			}
			res, err := e.RunHuntingQuery(v.tenantID, q, at)
			if err != nil {
				var ke *kql.Error
				if errors.As(err, &ke) {
					return badRequest("Query failed: %s", ke.Error()), nil
				}
				return graphError("InternalServerError", "Query failed."), nil
			}
			return jsonResult(res)
		})

	triageTool(e, s, ToolFetchAdvancedHuntingTablesOverview, "Lists advanced hunting tables with their descriptions (all tables when tableNames is empty).",
		func(v *defenderView, in tableNamesInput) (*mcp.CallToolResult, error) {
			return tablesResult(in.TableNames, false)
		})

	triageTool(e, s, ToolFetchAdvancedHuntingTablesDetailedSchema, "Gets the detailed schema (columns, types, descriptions) of advanced hunting tables.",
		func(v *defenderView, in tableNamesInput) (*mcp.CallToolResult, error) {
			if len(in.TableNames) == 0 {
				return badRequest("The tableNames parameter is required: name at least one table."), nil
			}
			return tablesResult(in.TableNames, true)
		})

	fileTool := func(name, desc string, answer func(v *defenderView, f *dFile) any) {
		triageTool(e, s, name, desc, func(v *defenderView, in fileHashInput) (*mcp.CallToolResult, error) {
			h := strings.ToLower(strings.TrimSpace(in.FileHash))
			if !isHexHash(h) {
				return badRequest("fileHash '%s' is not a SHA-1, SHA-256 or MD5 hash.", in.FileHash), nil
			}
			f := v.inv.file(h)
			if f == nil {
				return notFound("File with hash '%s' was not found in the organization.", h), nil
			}
			return jsonResult(answer(v, f))
		})
	}
	fileTool(ToolGetDefenderFileInfo, "Gets a file's profile from Microsoft Defender for Endpoint by its SHA-1, SHA-256 or MD5: size, type, signer, prevalence, determination.",
		func(v *defenderView, f *dFile) any { return v.fileInfo(f) })
	fileTool(ToolGetDefenderFileStatistics, "Gets a file's prevalence in the organization and worldwide, first and last seen.",
		func(v *defenderView, f *dFile) any { return v.fileStatistics(f) })
	fileTool(ToolGetDefenderFileAlerts, "Lists the alerts related to a file (Microsoft Graph security.alert).",
		func(v *defenderView, f *dFile) any {
			return map[string]any{"value": v.alertsWhere(func(a *dAlert) bool { return a.hasFile(f) })}
		})
	fileTool(ToolGetDefenderFileRelatedMachines, "Lists the devices a file was observed on.",
		func(v *defenderView, f *dFile) any {
			out := []any{}
			for _, m := range v.fileMachines(f) {
				out = append(out, v.machineJSON(m))
			}
			return map[string]any{"value": out}
		})

	ipTool := func(name, desc string, answer func(v *defenderView, ip string) any) {
		triageTool(e, s, name, desc, func(v *defenderView, in ipInput) (*mcp.CallToolResult, error) {
			ip, ok := parseIP(in.IPAddress)
			if !ok {
				return badRequest("ipAddress '%s' is not an IP address.", in.IPAddress), nil
			}
			return jsonResult(answer(v, ip))
		})
	}
	ipTool(ToolGetDefenderIPAlerts, "Lists the alerts related to an IP address (Microsoft Graph security.alert).",
		func(v *defenderView, ip string) any {
			return map[string]any{"value": v.alertsWhere(func(a *dAlert) bool { return a.hasIP(ip) })}
		})
	ipTool(ToolGetDefenderIPStatistics, "Gets an IP address's prevalence in the organization: how many devices communicated with it, first and last seen.",
		func(v *defenderView, ip string) any { return v.ipStatistics(ip) })

	triageTool(e, s, ToolFindDefenderMachineByIP, "Finds the devices that had an internal IP address at a given time (within 15 minutes).",
		func(v *defenderView, in ipTimeInput) (*mcp.CallToolResult, error) {
			ip, ok := parseIP(in.IPAddress)
			if !ok {
				return badRequest("ipAddress '%s' is not an IP address.", in.IPAddress), nil
			}
			at, err := kql.ParseDatetime(in.Timestamp)
			if err != nil {
				return badRequest("timestamp '%s' is not an ISO 8601 date and time.", in.Timestamp), nil
			}
			if at.Before(v.now.Add(-30 * 24 * time.Hour)) {
				return badRequest("timestamp must be within the last 30 days."), nil
			}
			out := []any{}
			for _, m := range v.inv.machines {
				if m.inv.ip == ip && !at.Before(m.firstSeen) {
					out = append(out, v.machineJSON(m))
				}
			}
			return jsonResult(map[string]any{"value": out})
		})

	machineTool := func(name, desc string, answer func(v *defenderView, m *dMachine) any) {
		triageTool(e, s, name, desc, func(v *defenderView, in idInput) (*mcp.CallToolResult, error) {
			if strings.TrimSpace(in.ID) == "" {
				return badRequest("The ID parameter is required."), nil
			}
			m := v.inv.machine(in.ID)
			if m == nil {
				return notFound("Machine '%s' was not found.", in.ID), nil
			}
			return jsonResult(answer(v, m))
		})
	}
	machineTool(ToolGetDefenderMachine, "Gets a device from Microsoft Defender for Endpoint by its device id or computer name: OS, health, risk, exposure, addresses, tags.",
		func(v *defenderView, m *dMachine) any { return v.machineJSON(m) })
	machineTool(ToolGetDefenderMachineAlerts, "Lists the alerts related to a device (Microsoft Graph security.alert).",
		func(v *defenderView, m *dMachine) any {
			return map[string]any{"value": v.alertsWhere(func(a *dAlert) bool { return a.hasMachine(m) })}
		})
	machineTool(ToolGetDefenderMachineLoggedOnUsers, "Lists the accounts that signed in to a device recently.",
		func(v *defenderView, m *dMachine) any { return map[string]any{"value": v.loggedOnUsers(m)} })
	machineTool(ToolGetDefenderMachineVulnerabilities, "Lists the vulnerabilities (CVEs) found on a device.",
		func(v *defenderView, m *dMachine) any { return map[string]any{"value": v.vulnerabilities(m)} })

	userTool := func(name, desc string, answer func(v *defenderView, u *dUser) any) {
		triageTool(e, s, name, desc, func(v *defenderView, in idInput) (*mcp.CallToolResult, error) {
			if strings.TrimSpace(in.ID) == "" {
				return badRequest("The ID parameter is required."), nil
			}
			u := v.inv.user(in.ID)
			if u == nil {
				return notFound("User '%s' was not found.", in.ID), nil
			}
			return jsonResult(answer(v, u))
		})
	}
	userTool(ToolListUserRelatedAlerts, "Lists the alerts related to a user (UPN, account name, SID or Entra object id) (Microsoft Graph security.alert).",
		func(v *defenderView, u *dUser) any {
			return map[string]any{"value": v.alertsWhere(func(a *dAlert) bool { return a.hasUser(u) })}
		})
	userTool(ToolListUserRelatedMachines, "Lists the devices where a user has active or recent sign-in sessions.",
		func(v *defenderView, u *dUser) any {
			out := []any{}
			for _, m := range v.userMachines(u.account) {
				out = append(out, v.machineJSON(m))
			}
			return map[string]any{"value": out}
		})
}

func eqFold(v any, want string) bool {
	want = strings.TrimSpace(want)
	return want == "" || strings.EqualFold(str(v), want)
}

func timeRange(afterS, beforeS string) (after, before time.Time, msg string) {
	var err error
	if strings.TrimSpace(afterS) != "" {
		if after, err = kql.ParseDatetime(afterS); err != nil {
			return after, before, fmt.Sprintf("createdAfter '%s' is not an ISO 8601 date and time.", afterS)
		}
	}
	if strings.TrimSpace(beforeS) != "" {
		if before, err = kql.ParseDatetime(beforeS); err != nil {
			return after, before, fmt.Sprintf("createdBefore '%s' is not an ISO 8601 date and time.", beforeS)
		}
	}
	if !after.IsZero() && !before.IsZero() && !after.Before(before) {
		return after, before, "createdAfter must be earlier than createdBefore."
	}
	return after, before, ""
}

func parseOrderBy(s string) (field string, desc bool, msg string) {
	parts := strings.Fields(s)
	if len(parts) == 0 {
		return "createdDateTime", true, ""
	}
	switch strings.ToLower(parts[0]) {
	case "createddatetime":
		field = "createdDateTime"
	case "lastupdatedatetime":
		field = "lastUpdateDateTime"
	case "severity":
		field = "severity"
	default:
		return "", false, fmt.Sprintf("orderBy '%s' is not supported: use createdDateTime, lastUpdateDateTime or severity, then asc or desc.", s)
	}
	desc = true
	if len(parts) > 1 {
		switch strings.ToLower(parts[1]) {
		case "asc":
			desc = false
		case "desc":
		default:
			return "", false, fmt.Sprintf("orderBy '%s': the direction must be asc or desc.", s)
		}
	}
	if len(parts) > 2 {
		return "", false, fmt.Sprintf("orderBy '%s' is not supported: one field, then asc or desc.", s)
	}
	return field, desc, ""
}

var severityRank = map[string]int{"unknown": 0, "informational": 1, "low": 2, "medium": 3, "high": 4}

func sortGraph(items []map[string]any, field string, desc bool) {
	slices.SortStableFunc(items, func(a, b map[string]any) int {
		var c int
		if field == "severity" {
			c = severityRank[str(a[field])] - severityRank[str(b[field])]
		} else {
			c = strings.Compare(str(a[field]), str(b[field])) // fixed-width UTC times sort as text
		}
		if desc {
			c = -c
		}
		return c
	})
}

func paging(top, skip int) (int, int, string) {
	if top == 0 {
		top = defaultTriageTop
	}
	if top < 1 || top > maxTriageTop {
		return 0, 0, fmt.Sprintf("top must be between 1 and %d.", maxTriageTop)
	}
	if skip < 0 {
		return 0, 0, "skip must not be negative."
	}
	return top, skip, ""
}

// page answers one page of a list in the Graph collection shape, with an
// @odata.nextLink when more items follow.
func page(context, path string, items []map[string]any, skip, top int) map[string]any {
	total := len(items)
	start := min(skip, total)
	end := min(start+top, total)
	value := make([]any, 0, end-start)
	for _, it := range items[start:end] {
		value = append(value, it)
	}
	out := map[string]any{"@odata.context": context, "@odata.count": total, "value": value}
	if end < total {
		out["@odata.nextLink"] = fmt.Sprintf("https://graph.microsoft.com/v1.0/%s?$skip=%d&$top=%d", path, end, top)
	}
	return out
}

func tablesResult(names []string, detailed bool) (*mcp.CallToolResult, error) {
	var want []TableSchema
	var unknown []string
	if len(names) == 0 {
		want = huntingTables
	}
	for _, n := range names {
		t, ok := huntingTable(strings.TrimSpace(n))
		if !ok {
			unknown = append(unknown, n)
			continue
		}
		want = append(want, t)
	}
	if len(want) == 0 {
		var known []string
		for _, t := range huntingTables {
			known = append(known, t.Name)
		}
		return notFound("No advanced hunting table named %s. Tables: %s.", strings.Join(unknown, ", "), strings.Join(known, ", ")), nil
	}
	tables := make([]any, 0, len(want))
	for _, t := range want {
		entry := map[string]any{"name": t.Name, "description": t.Description}
		if detailed {
			cs := make([]any, 0, len(t.Columns))
			for _, c := range t.Columns {
				cs = append(cs, map[string]any{"name": c.Name, "type": huntingType(c.Type), "description": c.Description})
			}
			entry["columns"] = cs
		}
		tables = append(tables, entry)
	}
	out := map[string]any{"tables": tables}
	if len(unknown) > 0 {
		out["unknownTables"] = unknown
	}
	return jsonResult(out)
}

func isHexHash(s string) bool {
	if n := len(s); n != 32 && n != 40 && n != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func parseIP(s string) (string, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return "", false
	}
	return a.Unmap().String(), true
}
