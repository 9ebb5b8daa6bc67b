package tools_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/tools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func namesOf(ts string) []string {
	set, _ := tools.ToolsetByID(ts)
	var out []string
	for _, t := range set.Tools {
		out = append(out, t.Name)
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestMCPSkillListsAttachedToolsAndCallsReachTheEmulator: an agent with the
// official MCP Go SDK sees exactly the tools of the skill's attached
// toolsets, its calls return the emulator's data (triage with a Defender MCP
// token, data lake with a Sentinel platform token), and a detached
// toolset's tools are gone at the next tools/list.
func TestMCPSkillListsAttachedToolsAndCallsReachTheEmulator(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.workspace("SOC", emulator.ContosoAdminUsername)
	e.skill(w, "triage", tools.ToolsetTriage)
	cs := e.mustMCP(w.token, "triage")

	triageNames := namesOf(tools.ToolsetTriage)
	if got := toolNames(t, cs); !slices.Equal(sorted(got), sorted(triageNames)) {
		t.Fatalf("tools/list = %v\nwant exactly the triage tools %v", got, triageNames)
	}
	if code, _ := e.do(w.token, "PUT", "/api/v1/skills/triage/toolsets/"+tools.ToolsetDataLake, nil, nil); code != http.StatusOK {
		t.Fatalf("attach data lake: HTTP %d", code)
	}
	all := append(slices.Clone(triageNames), namesOf(tools.ToolsetDataLake)...)
	if got := toolNames(t, cs); !slices.Equal(sorted(got), sorted(all)) {
		t.Fatalf("after attach, tools/list = %v", got)
	}
	// Every tool describes itself with a description and an object schema.
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range res.Tools {
		schema, _ := json.Marshal(tl.InputSchema)
		if tl.Description == "" || !strings.Contains(string(schema), `"type":"object"`) || tl.Annotations == nil || !tl.Annotations.ReadOnlyHint {
			t.Errorf("%s: description %q schema %s", tl.Name, tl.Description, schema)
		}
	}

	// ListIncidents: the SecurityIncident rows of the emulator, Graph shape.
	rows, err := e.emu.Incidents(emulator.ContosoTenantID, emulator.ContosoWorkspaceID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]emulator.Row{}
	for _, r := range rows {
		want[r.Row["IncidentName"].(string)] = r.Row
	}
	incs := list(t, mcpJSON(t, cs, "ListIncidents", map[string]any{"top": 50}), "value")
	if len(incs) != len(want) {
		t.Fatalf("ListIncidents: %d incidents, the emulator holds %d", len(incs), len(want))
	}
	var guid, defenderNumber string
	for _, inc := range incs {
		id := inc["sentinel"].(map[string]any)["incidentId"].(string)
		row, ok := want[id]
		if !ok || inc["displayName"] != row["Title"] || inc["id"] != row["ProviderIncidentId"] {
			t.Fatalf("incident %v does not match the emulator's row %v", inc, row)
		}
		if row["ProviderName"] == "Microsoft XDR" {
			guid, defenderNumber = id, inc["id"].(string)
		}
	}

	// GetIncidentById by GUID; by a Defender number: the hint.
	got := mcpJSON(t, cs, "GetIncidentById", map[string]any{"incidentID": guid, "includeAlertsData": true})
	if got["sentinel"].(map[string]any)["incidentId"] != guid || len(got["alerts"].([]any)) == 0 {
		t.Fatalf("GetIncidentById(%s) = %.300v", guid, got)
	}
	text, isErr := callMCP(t, cs, "GetIncidentById", map[string]any{"incidentID": defenderNumber})
	if !isErr || !strings.Contains(text, "Defender incident number") || !strings.Contains(text, "ListIncidents") || !strings.Contains(text, "not_found") {
		t.Fatalf("GetIncidentById(Defender number %s) = %q (error %v), want the ListIncidents hint", defenderNumber, text, isErr)
	}

	// Advanced hunting, devices, a user's sign-in sessions.
	hunt := mcpJSON(t, cs, "RunAdvancedHuntingQuery", map[string]any{"kqlQuery": "DeviceInfo | project DeviceName | order by DeviceName asc"})
	if rs := list(t, hunt, "results"); len(rs) != 5 || rs[0]["DeviceName"] != "contoso-lt-203.contoso.local" {
		t.Fatalf("RunAdvancedHuntingQuery = %v", hunt)
	}
	m := mcpJSON(t, cs, "GetDefenderMachine", map[string]any{"ID": "fin-sql-01"})
	if m["computerDnsName"] != "fin-sql-01.contoso.local" || len(m["id"].(string)) != 40 {
		t.Fatalf("GetDefenderMachine = %v", m)
	}
	machines := list(t, mcpJSON(t, cs, "ListUserRelatedMachines", map[string]any{"ID": "megan.bowen@contoso.onmicrosoft.com"}), "value")
	var dns []string
	for _, mm := range machines {
		dns = append(dns, mm["computerDnsName"].(string))
	}
	if !slices.Contains(dns, "contoso-wks-014.contoso.local") {
		t.Fatalf("ListUserRelatedMachines = %v", dns)
	}

	// The data lake tools: query_lake answers what the emulator's own query does.
	q := "SecurityIncident | summarize Incidents = dcount(IncidentName)"
	lake := mcpJSON(t, cs, "query_lake", map[string]any{"query": q, "workspaceId": emulator.ContosoWorkspaceID})
	direct, err := e.emu.Query(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, q)
	if err != nil {
		t.Fatal(err)
	}
	tables := list(t, lake, "tables")
	if rowsGot, _ := json.Marshal(tables[0]["rows"]); string(rowsGot) != mustJSON(t, direct.Tables[0].Rows) {
		t.Fatalf("query_lake rows %s, emulator %s", rowsGot, mustJSON(t, direct.Tables[0].Rows))
	}
	st := list(t, mcpJSON(t, cs, "search_tables", map[string]any{"query": "sign-in logs of users"}), "tables")
	if st[0]["name"] != "SigninLogs" {
		t.Fatalf("search_tables first table %v", st[0]["name"])
	}

	// Each server got a token for its own resource.
	stats := e.emu.Stats().Tenant(emulator.ContosoTenantID)
	if stats.Resources[connection.DefenderMCP].Count == 0 || stats.Resources[connection.SentinelPlatform].Count == 0 {
		t.Errorf("tokens issued by resource: %v", stats.Resources)
	}
	if stats.Tools["ListIncidents"].Count != 1 || stats.Tools["query_lake"].Count != 1 || stats.Tools["GetDefenderMachine"].Count != 1 {
		t.Errorf("tool calls at the emulator: %v", stats.Tools)
	}

	// Detach the triage toolset: its tools are gone at the next tools/list,
	// on the same client session, and cannot be called.
	if code, _ := e.do(w.token, "DELETE", "/api/v1/skills/triage/toolsets/"+tools.ToolsetTriage, nil, nil); code != http.StatusOK {
		t.Fatalf("detach triage: HTTP %d", code)
	}
	if got := toolNames(t, cs); !slices.Equal(sorted(got), sorted(namesOf(tools.ToolsetDataLake))) {
		t.Fatalf("after detach, tools/list = %v", got)
	}
	res2, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ListIncidents", Arguments: map[string]any{}})
	if err == nil && !res2.IsError {
		t.Fatal("a detached tool can still be called over MCP")
	}
	code, _, body := e.callJSON(w.token, "triage", "ListIncidents", nil)
	if code != http.StatusNotFound || errCode(body) != tools.CodeToolNotInSkill {
		t.Fatalf("detached tool over JSON: %d %v", code, body)
	}
	if n := e.emu.Stats().Tenant(emulator.ContosoTenantID).Tools["ListIncidents"].Count; n != 1 {
		t.Errorf("a detached tool reached Microsoft: %d ListIncidents calls", n)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// TestJSONToolCallsAndSkillsAPI: the same tools over JSON, with the skill
// chosen by ?skill=, and the skills API (create, list, get, attach, detach,
// delete) with its errors.
func TestJSONToolCallsAndSkillsAPI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.workspace("SOC", emulator.ContosoAdminUsername)
	e.skill(w, "Hunting", tools.ToolsetDataLake, tools.ToolsetDataLake) // names are lower-cased; a toolset counts once

	var sk tools.SkillView
	if code, _ := e.do(w.token, "GET", "/api/v1/skills/hunting", nil, &sk); code != http.StatusOK || sk.Name != "hunting" ||
		len(sk.Toolsets) != 1 || len(sk.Tools) != 3 || sk.MCPPath != "/mcp/skills/hunting" || len(sk.Tools[0].InputSchema) == 0 {
		t.Fatalf("GET skill: %d %+v", code, sk)
	}
	code, h, body := e.callJSON(w.token, "hunting", "list_sentinel_workspaces", nil)
	if code != http.StatusOK || body["tool"] != "list_sentinel_workspaces" || body["skill"] != "hunting" || body["truncated"] != false ||
		!strings.Contains(mustJSON(t, body["result"]), emulator.ContosoWorkspace2ID) || h.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("list_sentinel_workspaces over JSON: %d %v", code, body)
	}
	// No skill named: a clear 400; a tool of no attached toolset: 404.
	var ae apiError
	if code, _ := e.do(w.token, "POST", "/api/v1/tools/query_lake", map[string]any{"query": "SigninLogs | take 1"}, &ae); code != http.StatusBadRequest || ae.Error.Field != "skill" {
		t.Fatalf("no skill: %d %+v", code, ae)
	}
	if code, _, body := e.callJSON(w.token, "hunting", "GetDefenderMachine", map[string]any{"ID": "fin-sql-01"}); code != http.StatusNotFound || errCode(body) != tools.CodeToolNotInSkill {
		t.Fatalf("tool of an unattached toolset: %d %v", code, body)
	}
	if code, _, body := e.callJSON(w.token, "hunting", "NoSuchTool", nil); code != http.StatusNotFound || errCode(body) != tools.CodeUnknownTool {
		t.Fatalf("unknown tool: %d %v", code, body)
	}
	if code, _ := e.do(w.token, "POST", "/api/v1/tools/query_lake?skill=hunting", "[1,2]", &ae); code != http.StatusBadRequest || ae.Error.Code != tools.CodeInvalidArgument {
		t.Fatalf("arguments not an object: %d %+v", code, ae)
	}

	// Skills API errors.
	tests := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"duplicate name", "POST", "/api/v1/skills", map[string]any{"name": "HUNTING"}, http.StatusConflict, tools.CodeSkillExists},
		{"bad name", "POST", "/api/v1/skills", map[string]any{"name": "no spaces please"}, http.StatusBadRequest, tools.CodeInvalidArgument},
		{"unknown toolset at create", "POST", "/api/v1/skills", map[string]any{"name": "x", "toolsets": []string{"splunk"}}, http.StatusBadRequest, tools.CodeUnknownToolset},
		{"unknown field", "POST", "/api/v1/skills", map[string]any{"name": "x", "tools": []string{"ListIncidents"}}, http.StatusBadRequest, "invalid_json"},
		{"unknown toolset at attach", "PUT", "/api/v1/skills/hunting/toolsets/splunk", nil, http.StatusBadRequest, tools.CodeUnknownToolset},
		{"attach to no skill", "PUT", "/api/v1/skills/nope/toolsets/sentinel-triage", nil, http.StatusNotFound, tools.CodeSkillNotFound},
		{"get no skill", "GET", "/api/v1/skills/nope", nil, http.StatusNotFound, tools.CodeSkillNotFound},
		{"call in no skill", "POST", "/api/v1/tools/query_lake?skill=nope", map[string]any{"query": "x"}, http.StatusNotFound, tools.CodeSkillNotFound},
	}
	for _, tc := range tests {
		var ae apiError
		if code, _ := e.do(w.token, tc.method, tc.path, tc.body, &ae); code != tc.status || ae.Error.Code != tc.code || ae.Error.Message == "" {
			t.Errorf("%s: %d %+v, want %d %s", tc.name, code, ae, tc.status, tc.code)
		}
	}

	// Attach and detach are idempotent; delete removes the skill.
	for range 2 {
		if code, _ := e.do(w.token, "PUT", "/api/v1/skills/hunting/toolsets/sentinel-triage", nil, &sk); code != http.StatusOK || len(sk.Toolsets) != 2 {
			t.Fatalf("attach: %d %+v", code, sk.Toolsets)
		}
	}
	for range 2 {
		if code, _ := e.do(w.token, "DELETE", "/api/v1/skills/hunting/toolsets/sentinel-triage", nil, &sk); code != http.StatusOK || len(sk.Toolsets) != 1 {
			t.Fatalf("detach: %d %+v", code, sk.Toolsets)
		}
	}
	var skills struct{ Skills []tools.SkillView }
	if code, _ := e.do(w.token, "GET", "/api/v1/skills", nil, &skills); code != http.StatusOK || len(skills.Skills) != 1 {
		t.Fatalf("list: %d %+v", code, skills)
	}
	var ts struct{ Toolsets []tools.ToolsetView }
	if code, _ := e.do(w.token, "GET", "/api/v1/toolsets", nil, &ts); code != http.StatusOK || len(ts.Toolsets) != 2 || len(ts.Toolsets[0].Tools) != 20 || ts.Toolsets[0].Name != "MS Sentinel Triage" {
		t.Fatalf("toolsets: %d %+v", code, ts)
	}
	if code, _ := e.do(w.token, "DELETE", "/api/v1/skills/hunting", nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := e.do(w.token, "GET", "/api/v1/skills/hunting", nil, nil); code != http.StatusNotFound {
		t.Fatalf("after delete: %d", code)
	}
	if _, err := e.mcpSession(w.token, "hunting"); err == nil {
		t.Fatal("MCP connects to a deleted skill")
	}
}

// TestCrossWorkspaceIsolation: a token of workspace B can neither see nor
// call anything of workspace A — not A's skills (even one with the same
// name as B's), tools, audit, nor A's Microsoft connection.
func TestCrossWorkspaceIsolation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := e.workspace("A", emulator.ContosoAdminUsername)
	b := e.workspace("B", emulator.FabrikamAdminUsername)
	e.skill(a, "triage", tools.ToolsetTriage, tools.ToolsetDataLake)
	e.skill(a, "a-only", tools.ToolsetTriage, tools.ToolsetDataLake)
	e.skill(b, "triage", tools.ToolsetDataLake)
	if code, _, _ := e.callJSON(a.token, "a-only", "ListIncidents", nil); code != http.StatusOK {
		t.Fatalf("A's own call: %d", code)
	}
	before := e.emu.Stats()

	// Every tool of A's skill, over JSON and over MCP, with B's token.
	for _, tl := range tools.ToolsOf([]string{tools.ToolsetTriage, tools.ToolsetDataLake}) {
		code, _, body := e.callJSON(b.token, "a-only", tl.Name, map[string]any{})
		if code != http.StatusNotFound || errCode(body) != tools.CodeSkillNotFound {
			t.Errorf("B calls %s of A's skill: %d %v", tl.Name, code, body)
		}
	}
	if _, err := e.mcpSession(b.token, "a-only"); err == nil {
		t.Error("B's token opens an MCP session on A's skill")
	}
	// Every skills endpoint on A's skill.
	for _, rq := range []struct{ method, path string }{
		{"GET", "/api/v1/skills/a-only"},
		{"DELETE", "/api/v1/skills/a-only"},
		{"PUT", "/api/v1/skills/a-only/toolsets/sentinel-triage"},
		{"DELETE", "/api/v1/skills/a-only/toolsets/sentinel-triage"},
	} {
		if code, _ := e.do(b.token, rq.method, rq.path, nil, nil); code != http.StatusNotFound {
			t.Errorf("B: %s %s = %d, want 404", rq.method, rq.path, code)
		}
	}
	var skills struct{ Skills []tools.SkillView }
	e.do(b.token, "GET", "/api/v1/skills", nil, &skills)
	if len(skills.Skills) != 1 || skills.Skills[0].Name != "triage" || len(skills.Skills[0].Toolsets) != 1 {
		t.Errorf("B lists %+v", skills.Skills)
	}
	// B's attempts are in B's audit (and only there); A's calls are not.
	bTok, err := e.app.Store.LookupAPIToken(t.Context(), api.HashToken(b.token))
	if err != nil {
		t.Fatal(err)
	}
	var audit struct{ Calls []tools.ToolCallView }
	e.do(b.token, "GET", "/api/v1/audit?limit=500", nil, &audit)
	for _, c := range audit.Calls {
		if c.TokenID != bTok.ID || c.Outcome != tools.CodeSkillNotFound {
			t.Errorf("B's audit shows %+v", c)
		}
	}
	e.do(a.token, "GET", "/api/v1/audit?limit=500", nil, &audit)
	for _, c := range audit.Calls {
		if c.TokenID == bTok.ID {
			t.Errorf("A's audit shows B's call %+v", c)
		}
	}

	// The same skill name: B gets its own skill, with its own tools and its
	// own tenant's data.
	cs := e.mustMCP(b.token, "triage")
	if got := toolNames(t, cs); !slices.Equal(sorted(got), sorted(namesOf(tools.ToolsetDataLake))) {
		t.Errorf("B's triage skill lists %v", got)
	}
	ws := mcpJSON(t, cs, "list_sentinel_workspaces", nil)
	if s := mustJSON(t, ws); !strings.Contains(s, emulator.FabrikamWorkspaceID) || strings.Contains(s, emulator.ContosoWorkspaceID) {
		t.Errorf("B's list_sentinel_workspaces: %s", s)
	}
	text, isErr := callMCP(t, cs, "query_lake", map[string]any{"query": "SecurityIncident | take 1", "workspaceId": emulator.ContosoWorkspaceID})
	if !isErr || !strings.Contains(text, "Error code: not_found.") {
		t.Errorf("B queries A's Sentinel workspace: %q (error %v)", text, isErr)
	}
	// Nothing of A's was ever called with B's credentials: Contoso saw no
	// new tool calls.
	after := e.emu.Stats()
	if b4, af := before.Tenant(emulator.ContosoTenantID).Tools, after.Tenant(emulator.ContosoTenantID).Tools; !equalCounts(b4, af) {
		t.Errorf("Contoso tool calls changed under B's token: %v → %v", b4, af)
	}

	// No token, a wrong token: 401 on every route.
	for _, rq := range []struct{ method, path string }{
		{"GET", "/api/v1/skills"}, {"POST", "/api/v1/skills"}, {"GET", "/api/v1/skills/triage"},
		{"DELETE", "/api/v1/skills/triage"}, {"PUT", "/api/v1/skills/triage/toolsets/sentinel-triage"},
		{"DELETE", "/api/v1/skills/triage/toolsets/sentinel-triage"}, {"POST", "/api/v1/tools/ListIncidents?skill=triage"},
		{"GET", "/api/v1/audit"}, {"GET", "/api/v1/toolsets"}, {"POST", "/mcp/skills/triage"},
	} {
		for _, tok := range []string{"", "clr_not-a-token"} {
			var ae apiError
			if code, _ := e.do(tok, rq.method, rq.path, nil, &ae); code != http.StatusUnauthorized || ae.Error.Code == "" {
				t.Errorf("token %q: %s %s = %d", tok, rq.method, rq.path, code)
			}
		}
	}
}

func equalCounts(a, b map[string]emulator.Counter) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k].Count != v.Count {
			return false
		}
	}
	return true
}

// TestErrorsAgentsCanActOn: each failure an agent can act on has a stable
// code and a sentence, as an MCP tool error and as a JSON error.
func TestErrorsAgentsCanActOn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(e *env, w workspace)
		tool    string
		args    map[string]any
		status  int
		code    string
		says    []string
		retry   int
	}{
		{name: "reconnect required", tool: "ListIncidents",
			prepare: func(e *env, w workspace) {
				if err := e.app.Store.SetConnectionState(e.t.Context(), w.ID, store.StateReconnectRequired, "refresh_token_expired", "", e.clock.Now()); err != nil {
					e.t.Fatal(err)
				}
			},
			status: http.StatusConflict, code: tools.CodeReconnectRequired, says: []string{"Re-connect required", "Connect with Microsoft"}},
		{name: "Defender MCP not enabled (AADSTS650052)", tool: "GetDefenderMachine", args: map[string]any{"ID": "fin-sql-01"},
			prepare: func(e *env, w workspace) {
				if err := e.emu.SetDefenderMCPProvisioned(emulator.ContosoTenantID, false); err != nil {
					e.t.Fatal(err)
				}
			},
			status: http.StatusConflict, code: tools.CodeDefenderMCPDisabled, says: []string{"AADSTS650052", "az ad sp create --id 7b7b3966-1961-47b5-b080-43ca5482e21c"}},
		{name: "data lake not onboarded", tool: "query_lake", args: map[string]any{"query": "SigninLogs | take 1"},
			prepare: func(e *env, w workspace) {
				if err := e.emu.SetDataLakeOnboarded(emulator.ContosoTenantID, false); err != nil {
					e.t.Fatal(err)
				}
			},
			status: http.StatusConflict, code: tools.CodeNotOnboarded, says: []string{"not onboarded", "data lake"}},
		{name: "throttled", tool: "ListIncidents",
			prepare: func(e *env, w workspace) {
				e.emu.SetFault(emulator.Fault{TenantID: emulator.ContosoTenantID, Target: "ListIncidents", Kind: emulator.FaultThrottle, RetryAfter: 17 * time.Second})
			},
			status: http.StatusTooManyRequests, code: tools.CodeThrottled, says: []string{"throttling", "17 seconds"}, retry: 17},
		{name: "not found", tool: "GetDefenderMachine", args: map[string]any{"ID": "no-such-host"},
			status: http.StatusNotFound, code: tools.CodeNotFound, says: []string{"no-such-host"}},
		{name: "Defender incident number", tool: "GetIncidentById", args: map[string]any{"incidentID": "20005"},
			status: http.StatusNotFound, code: tools.CodeNotFound, says: []string{"Defender incident number", "ListIncidents"}},
		{name: "unknown incident GUID", tool: "GetIncidentById", args: map[string]any{"incidentID": "0f9e8d7c-6b5a-4948-8372-615243342516"},
			status: http.StatusNotFound, code: tools.CodeNotFound, says: []string{"0f9e8d7c-6b5a-4948-8372-615243342516"}},
		{name: "Microsoft unavailable", tool: "search_tables", args: map[string]any{"query": "sign-ins"},
			prepare: func(e *env, w workspace) {
				e.emu.SetFault(emulator.Fault{TenantID: emulator.ContosoTenantID, Target: "search_tables", Kind: emulator.FaultServerError, Status: 503})
			},
			status: http.StatusServiceUnavailable, code: tools.CodeUnavailable, says: []string{"Retry"}, retry: 30},
		{name: "bad KQL", tool: "RunAdvancedHuntingQuery", args: map[string]any{"kqlQuery": "NoSuchTable | take 1"},
			status: http.StatusBadGateway, code: tools.CodeUpstreamError, says: []string{"NoSuchTable"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			w := e.workspace("SOC", emulator.ContosoAdminUsername)
			e.skill(w, "triage", tools.ToolsetTriage, tools.ToolsetDataLake)
			if tc.prepare != nil {
				tc.prepare(e, w)
			}
			code, h, body := e.callJSON(w.token, "triage", tc.tool, tc.args)
			ej, _ := body["error"].(map[string]any)
			msg, _ := ej["message"].(string)
			if code != tc.status || errCode(body) != tc.code {
				t.Fatalf("JSON: %d %v, want %d %s", code, body, tc.status, tc.code)
			}
			for _, s := range tc.says {
				if !strings.Contains(msg, s) {
					t.Errorf("JSON message %q does not say %q", msg, s)
				}
			}
			if tc.retry > 0 && (h.Get("Retry-After") != strconv.Itoa(tc.retry) || ej["retry_after_seconds"] != float64(tc.retry)) {
				t.Errorf("Retry-After %q, retry_after_seconds %v, want %d", h.Get("Retry-After"), ej["retry_after_seconds"], tc.retry)
			}
			cs := e.mustMCP(w.token, "triage")
			text, isErr := callMCP(t, cs, tc.tool, tc.args)
			if !isErr || !strings.Contains(text, msg) || !strings.Contains(text, "Error code: "+tc.code+".") {
				t.Errorf("MCP: %q (IsError %v), want the same sentence and code %s", text, isErr, tc.code)
			}
		})
	}

	t.Run("not connected", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		w := e.workspace("SOC", "")
		e.skill(w, "triage", tools.ToolsetTriage)
		if code, _, body := e.callJSON(w.token, "triage", "ListIncidents", nil); code != http.StatusConflict || errCode(body) != tools.CodeNotConnected {
			t.Fatalf("%d %v", code, body)
		}
	})
}

// TestArgumentsAreCheckedBeforeMicrosoft: bad arguments never reach
// Microsoft, and the error names the argument.
func TestArgumentsAreCheckedBeforeMicrosoft(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.workspace("SOC", emulator.ContosoAdminUsername)
	e.skill(w, "triage", tools.ToolsetTriage, tools.ToolsetDataLake)
	tests := []struct {
		tool  string
		args  map[string]any
		field string
	}{
		{"GetDefenderFileInfo", map[string]any{"fileHash": "not-a-hash"}, "fileHash"},
		{"GetDefenderFileInfo", map[string]any{"fileHash": strings.Repeat("a", 39)}, "fileHash"},
		{"GetDefenderIpAlerts", map[string]any{"ipAddress": "300.1.1.1"}, "ipAddress"},
		{"FindDefenderMachineByIp", map[string]any{"ipAddress": "10.1.4.14"}, "timestamp"},
		{"FindDefenderMachineByIp", map[string]any{"ipAddress": "10.1.4.14", "timestamp": "yesterday"}, "timestamp"},
		{"RunAdvancedHuntingQuery", map[string]any{"kqlQuery": "DeviceInfo | take 1" + strings.Repeat(" ", 800)}, "kqlQuery"},
		{"query_lake", map[string]any{"query": "   "}, "query"},
		{"query_lake", map[string]any{"query": "SigninLogs", "workspaceId": "contoso"}, "workspaceId"},
		{"ListIncidents", map[string]any{"top": 0}, "top"},
		{"ListIncidents", map[string]any{"top": 101}, "top"},
		{"ListIncidents", map[string]any{"skip": -1}, "skip"},
		{"ListIncidents", map[string]any{"Severity": "catastrophic"}, "Severity"},
		{"ListIncidents", map[string]any{"createdAfter": "2026-06-21T10:00:00Z", "createdBefore": "2026-06-20T10:00:00Z"}, "createdAfter"},
		{"ListIncidents", map[string]any{"apiKey": "x"}, "apiKey"},
		{"GetIncidentById", map[string]any{"incidentID": "INC-42"}, "incidentID"},
		{"GetIncidentById", map[string]any{}, "incidentID"},
		{"FetchAdvancedHuntingTablesDetailedSchema", map[string]any{"tableNames": []string{"Device Events"}}, "tableNames"},
		{"ListUserRelatedAlerts", map[string]any{"ID": "bob smith"}, "ID"},
	}
	for _, tc := range tests {
		code, _, body := e.callJSON(w.token, "triage", tc.tool, tc.args)
		ej, _ := body["error"].(map[string]any)
		if code != http.StatusBadRequest || errCode(body) != tools.CodeInvalidArgument || ej["field"] != tc.field {
			t.Errorf("%s(%v): %d %v, want invalid_argument on %s", tc.tool, tc.args, code, body, tc.field)
		}
	}
	if n := e.emu.Stats().Tenant(emulator.ContosoTenantID).Tools; len(n) != 0 {
		t.Errorf("invalid calls reached Microsoft: %v", n)
	}
	// Values are normalised before they go: an upper-case hash, a mapped
	// IPv6 address, a case-insensitive enum, a number given as text.
	ok := []struct {
		tool string
		args map[string]any
	}{
		{"GetDefenderFileInfo", map[string]any{"fileHash": "5F1E8ACEDC065031AAD553B710838EB366CFEE9A"}},
		{"GetDefenderIpStatistics", map[string]any{"ipAddress": "::ffff:203.0.113.45"}},
		{"ListIncidents", map[string]any{"Severity": "HIGH", "top": "5", "createdAfter": "2026-06-20"}},
		{"GetIncidentById", map[string]any{"incidentID": 1}},
	}
	for _, tc := range ok {
		if code, _, body := e.callJSON(w.token, "triage", tc.tool, tc.args); code != http.StatusOK {
			t.Errorf("%s(%v): %d %v", tc.tool, tc.args, code, body)
		}
	}
}

// TestAuditRecordsEveryCallRedacted: every call is recorded with its
// workspace, skill, token, tool, arguments (secrets redacted), outcome and
// duration, readable newest first and paged.
func TestAuditRecordsEveryCallRedacted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.workspace("SOC", emulator.ContosoAdminUsername)
	e.skill(w, "triage", tools.ToolsetTriage, tools.ToolsetDataLake)
	jwt := "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVlLWhlcmU"
	key := "AKx9vQ7pLm2ZtR4sW8yB3nC6dF1gH5jK0uE"
	e.clock.Advance(time.Second)
	e.callJSON(w.token, "triage", "ListIncidents", map[string]any{"top": 3})
	e.clock.Advance(time.Second)
	e.callJSON(w.token, "triage", "query_lake", map[string]any{"query": "SigninLogs | where UserPrincipalName == '" + jwt + "' or CorrelationId == '" + key + "' | take 1"})
	e.clock.Advance(time.Second)
	e.callJSON(w.token, "triage", "ListIncidents", map[string]any{"clientSecret": "hunter2", "top": 1}) // refused: unknown argument
	e.clock.Advance(time.Second)
	cs := e.mustMCP(w.token, "triage")
	callMCP(t, cs, "GetDefenderMachine", map[string]any{"ID": "no-such-host"})

	var page1, page2 struct {
		Calls      []tools.ToolCallView
		NextCursor string `json:"next_cursor"`
	}
	if code, _ := e.do(w.token, "GET", "/api/v1/audit?limit=2", nil, &page1); code != http.StatusOK || len(page1.Calls) != 2 || page1.NextCursor == "" {
		t.Fatalf("audit page 1: %d %+v", code, page1)
	}
	if code, _ := e.do(w.token, "GET", "/api/v1/audit?limit=2&cursor="+page1.NextCursor, nil, &page2); code != http.StatusOK || len(page2.Calls) != 2 {
		t.Fatalf("audit page 2: %d %+v", code, page2)
	}
	calls := append(page1.Calls, page2.Calls...)
	wantTools := []string{"GetDefenderMachine", "ListIncidents", "query_lake", "ListIncidents"}
	wantOutcome := []string{tools.CodeNotFound, tools.CodeInvalidArgument, tools.CodeOK, tools.CodeOK}
	tok, err := e.app.Store.LookupAPIToken(e.t.Context(), api.HashToken(w.token))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range calls {
		if c.Tool != wantTools[i] || c.Outcome != wantOutcome[i] || c.Skill != "triage" || c.TokenID != tok.ID || c.DurationMS < 0 || c.CalledAt.IsZero() {
			t.Errorf("record %d: %+v, want %s %s", i, c, wantTools[i], wantOutcome[i])
		}
		if i > 0 && c.CalledAt.After(calls[i-1].CalledAt) {
			t.Errorf("not newest first at %d", i)
		}
	}
	if calls[0].Error == "" || !strings.Contains(string(calls[3].Arguments), `"top":3`) {
		t.Errorf("records lack the error or the arguments: %+v", calls)
	}
	// Redaction: nothing secret is stored, in the API view or the database.
	stored, err := e.app.Store.ListToolCalls(e.t.Context(), w.ID, store.ToolCallFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range stored {
		for _, secret := range []string{jwt, key, "hunter2"} {
			if strings.Contains(c.Arguments, secret) || strings.Contains(c.Error, secret) {
				t.Errorf("the audit stores a secret: %s / %s", c.Arguments, c.Error)
			}
		}
	}
	if q := string(calls[2].Arguments); !strings.Contains(q, "SigninLogs | where UserPrincipalName == '[redacted]' or CorrelationId == '[redacted]'") {
		t.Errorf("query_lake arguments as stored: %s", q)
	}
	if a := string(calls[1].Arguments); !strings.Contains(a, `"clientSecret":"[redacted]"`) || !strings.Contains(a, `"top":1`) {
		t.Errorf("refused call's arguments as stored: %s", a)
	}
	// Filters, and a cursor from nowhere.
	var onlyLake struct{ Calls []tools.ToolCallView }
	if e.do(w.token, "GET", "/api/v1/audit?tool=query_lake", nil, &onlyLake); len(onlyLake.Calls) != 1 {
		t.Errorf("tool filter: %+v", onlyLake.Calls)
	}
	if code, _ := e.do(w.token, "GET", "/api/v1/audit?cursor=bogus", nil, nil); code != http.StatusBadRequest {
		t.Errorf("bad cursor: %d", code)
	}
	if code, _ := e.do(w.token, "GET", "/api/v1/audit?limit=501", nil, nil); code != http.StatusBadRequest {
		t.Errorf("limit 501: %d", code)
	}
}

// TestLargeResultsAreCappedWithAMarker: an answer with more rows than the
// limit comes back cut, saying so.
func TestLargeResultsAreCappedWithAMarker(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.workspace("SOC", emulator.ContosoAdminUsername)
	e.skill(w, "triage", tools.ToolsetTriage, tools.ToolsetDataLake)
	e.app.Tools.Limits = tools.Limits{MaxItems: 5}

	all, err := e.emu.Incidents(emulator.ContosoTenantID, emulator.ContosoWorkspaceID)
	if err != nil {
		t.Fatal(err)
	}
	total := len(all) // every row: incidents and their updates
	code, _, body := e.callJSON(w.token, "triage", "query_lake", map[string]any{"query": "SecurityIncident | project IncidentName, Title"})
	if code != http.StatusOK || body["truncated"] != true {
		t.Fatalf("%d %v", code, body)
	}
	res := body["result"].(map[string]any)
	rows := list(t, res, "tables")[0]["rows"].([]any)
	cut := list(t, res, "truncation")
	if len(rows) != 5 || res["truncated"] != true || !strings.Contains(res["note"].(string), "tables[0].rows holds 5 of "+strconv.Itoa(total)+" items") ||
		cut[0]["path"] != "tables[0].rows" || cut[0]["returned"] != float64(5) || cut[0]["total"] != float64(total) {
		t.Fatalf("capped answer: rows %d, %v", len(rows), res)
	}
	cs := e.mustMCP(w.token, "triage")
	incs := mcpJSON(t, cs, "ListIncidents", map[string]any{"top": 12})
	if len(list(t, incs, "value")) != 5 || incs["truncated"] != true || !strings.Contains(incs["note"].(string), "skip and top") {
		t.Fatalf("ListIncidents capped: %v", incs["note"])
	}
	// Under the limit: untouched, no marker.
	small := mcpJSON(t, cs, "ListIncidents", map[string]any{"top": 3})
	if _, has := small["truncated"]; has {
		t.Error("a small answer carries a truncation marker")
	}
}
