package tools_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/clarion/sentinel/internal/api"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/tools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPSkillChangesTakeEffectAtTheNextCall: Clarion keeps each skill's
// MCP server between requests, yet a toolset attached or detached, a skill
// deleted, or deleted and recreated under the same name shows at the very
// next request — with the clock standing still,
// so that no change differs from the last by its update time.
func TestMCPSkillChangesTakeEffectAtTheNextCall(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.workspace("SOC", emulator.ContosoAdminUsername)
	e.skill(w, "triage", tools.ToolsetDataLake)
	cs := e.mustMCP(w.token, "triage")
	lake, triage := namesOf(tools.ToolsetDataLake), namesOf(tools.ToolsetTriage)
	wantTools := func(step string, want []string) {
		t.Helper()
		if got := toolNames(t, cs); !slices.Equal(sorted(got), sorted(want)) {
			t.Fatalf("%s: tools/list = %v, want %v", step, got, want)
		}
	}
	emuCalls := func(tool string) int { return e.emu.Stats().Tenant(emulator.ContosoTenantID).Tools[tool].Count }

	wantTools("created", lake)
	mcpJSON(t, cs, "list_sentinel_workspaces", nil)
	wantTools("after a call", lake)

	if code, _ := e.do(w.token, "PUT", "/api/v1/skills/triage/toolsets/"+tools.ToolsetTriage, nil, nil); code != http.StatusOK {
		t.Fatalf("attach: HTTP %d", code)
	}
	wantTools("attached", append(slices.Clone(lake), triage...))
	mcpJSON(t, cs, "ListIncidents", map[string]any{"top": 1})

	if code, _ := e.do(w.token, "DELETE", "/api/v1/skills/triage/toolsets/"+tools.ToolsetDataLake, nil, nil); code != http.StatusOK {
		t.Fatalf("detach: HTTP %d", code)
	}
	before := emuCalls("list_sentinel_workspaces")
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_sentinel_workspaces", Arguments: map[string]any{}}); err == nil && !res.IsError {
		t.Fatal("a detached tool still runs over MCP")
	}
	if emuCalls("list_sentinel_workspaces") != before {
		t.Fatal("a detached tool reached Microsoft")
	}
	wantTools("detached", triage)

	if code, _ := e.do(w.token, "DELETE", "/api/v1/skills/triage", nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: HTTP %d", code)
	}
	before = emuCalls("ListIncidents")
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ListIncidents", Arguments: map[string]any{"top": 1}}); err == nil {
		t.Fatal("a deleted skill's tool still runs over MCP")
	}
	if _, err := cs.ListTools(context.Background(), nil); err == nil {
		t.Fatal("a deleted skill still lists tools")
	}
	if _, err := e.mcpSession(w.token, "triage"); err == nil {
		t.Fatal("a deleted skill still opens MCP sessions")
	}
	if emuCalls("ListIncidents") != before {
		t.Fatal("a deleted skill's tool reached Microsoft")
	}

	// Recreated under the same name, with other contents.
	var out map[string]any
	if code, _ := e.do(w.token, "POST", "/api/v1/skills", map[string]any{"name": "triage", "description": "Second life", "toolsets": []string{tools.ToolsetDataLake}}, &out); code != http.StatusCreated {
		t.Fatalf("recreate: HTTP %d %v", code, out)
	}
	// The old session ended at the deleted skill's 404: a new one.
	cs = e.mustMCP(w.token, "triage")
	wantTools("recreated", lake)
	if in := cs.InitializeResult().Instructions; !strings.Contains(in, "Second life") {
		t.Fatalf("recreated skill's instructions: %q", in)
	}
	mcpJSON(t, cs, "list_sentinel_workspaces", nil)
}

// TestMCPSkillsOfTheSameNameStayApart: two workspaces call their own skill
// "triage" in turn, and at once; each sees its own tools and data, and its
// calls are in its own audit only.
func TestMCPSkillsOfTheSameNameStayApart(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := e.workspace("A", emulator.ContosoAdminUsername)
	b := e.workspace("B", emulator.FabrikamAdminUsername)
	e.skill(a, "triage", tools.ToolsetDataLake)
	e.skill(b, "triage", tools.ToolsetDataLake)
	csA, csB := e.mustMCP(a.token, "triage"), e.mustMCP(b.token, "triage")

	check := func(cs *mcp.ClientSession, own, other string) {
		s := mustJSON(t, mcpJSON(t, cs, "list_sentinel_workspaces", nil))
		if !strings.Contains(s, own) || strings.Contains(s, other) {
			t.Errorf("list_sentinel_workspaces: %s, want %s and not %s", s, own, other)
		}
	}
	for range 3 {
		check(csA, emulator.ContosoWorkspaceID, emulator.FabrikamWorkspaceID)
		check(csB, emulator.FabrikamWorkspaceID, emulator.ContosoWorkspaceID)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { check(csA, emulator.ContosoWorkspaceID, emulator.FabrikamWorkspaceID) })
		wg.Go(func() { check(csB, emulator.FabrikamWorkspaceID, emulator.ContosoWorkspaceID) })
	}
	wg.Wait()

	// B's skill changes; A's does not.
	if code, _ := e.do(b.token, "PUT", "/api/v1/skills/triage/toolsets/"+tools.ToolsetTriage, nil, nil); code != http.StatusOK {
		t.Fatalf("attach: HTTP %d", code)
	}
	if got := toolNames(t, csA); !slices.Equal(sorted(got), sorted(namesOf(tools.ToolsetDataLake))) {
		t.Errorf("A's skill lists %v after B's changed", got)
	}
	if got := toolNames(t, csB); len(got) != len(namesOf(tools.ToolsetDataLake))+len(namesOf(tools.ToolsetTriage)) {
		t.Errorf("B's skill lists %v after its change", got)
	}

	for _, w := range []workspace{a, b} {
		tok, err := e.app.Store.LookupAPIToken(t.Context(), api.HashToken(w.token))
		if err != nil {
			t.Fatal(err)
		}
		var audit struct{ Calls []tools.ToolCallView }
		e.do(w.token, "GET", "/api/v1/audit?limit=500", nil, &audit)
		if len(audit.Calls) != 3+8 {
			t.Errorf("%s's audit has %d calls, want 11", w.Name, len(audit.Calls))
		}
		for _, c := range audit.Calls {
			if c.TokenID != tok.ID || c.Outcome != tools.CodeOK {
				t.Errorf("%s's audit shows %+v", w.Name, c)
			}
		}
	}
}

// TestAuditRecordsAreWrittenByClose: the records of calls answered are all
// in the database once the service is closed, without anyone reading the
// audit first, with their secrets redacted; a call after Close is recorded
// too.
func TestAuditRecordsAreWrittenByClose(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.workspace("SOC", emulator.ContosoAdminUsername)
	e.skill(w, "triage", tools.ToolsetDataLake)
	secret := "AKx9vQ7pLm2ZtR4sW8yB3nC6dF1gH5jK0uE"
	const n = 40
	var wg sync.WaitGroup
	for range n / 2 {
		wg.Go(func() {
			e.callJSON(w.token, "triage", "query_lake", map[string]any{"query": "SigninLogs | where CorrelationId == '" + secret + "' | take 1", "workspaceId": emulator.ContosoWorkspaceID})
		})
		wg.Go(func() {
			e.callJSON(w.token, "triage", "query_lake", map[string]any{"query": "SecurityIncident | take 1", "apiKey": secret})
		})
	}
	wg.Wait()
	if err := e.app.Tools.Close(); err != nil {
		t.Fatal(err)
	}
	e.callJSON(w.token, "triage", "list_sentinel_workspaces", nil)

	calls, err := e.app.Store.ListToolCalls(t.Context(), w.ID, store.ToolCallFilter{Limit: store.MaxToolCallLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != n+1 {
		t.Fatalf("%d records in the database, want %d", len(calls), n+1)
	}
	outcomes := map[string]int{}
	for _, c := range calls {
		outcomes[c.Tool+" "+c.Outcome]++
		if strings.Contains(c.Arguments, secret) || strings.Contains(c.Error, secret) {
			t.Errorf("the audit stores a secret: %s / %s", c.Arguments, c.Error)
		}
	}
	want := map[string]int{"query_lake ok": n / 2, "query_lake " + tools.CodeInvalidArgument: n / 2, "list_sentinel_workspaces ok": 1}
	for k, v := range want {
		if outcomes[k] != v {
			t.Errorf("records %v, want %v", outcomes, want)
			break
		}
	}
}
