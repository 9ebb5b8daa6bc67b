package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// recordingTransport adds the bearer token (and optional headers) and
// remembers the last answer to a tools/call.
type recordingTransport struct {
	token  string
	header http.Header
	base   http.RoundTripper

	mu       sync.Mutex
	status   int
	retry    string
	lastBody []byte
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+rt.token)
	for k, v := range rt.header {
		req.Header[k] = v
	}
	isCall := false
	if req.Body != nil && req.Method == http.MethodPost {
		b, _ := io.ReadAll(req.Body)
		isCall = bytes.Contains(b, []byte(`"tools/call"`))
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := rt.base.RoundTrip(req)
	if err != nil || !isCall {
		return resp, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	rt.mu.Lock()
	rt.status, rt.retry, rt.lastBody = resp.StatusCode, resp.Header.Get("Retry-After"), b
	rt.mu.Unlock()
	return resp, nil
}

// mcpSession connects the SDK client to the data exploration server of
// the fixture with a token of the tenant.
func (f *fixture) mcpSession(t *testing.T, tenant string, header http.Header) (*mcp.ClientSession, *recordingTransport) {
	t.Helper()
	tok, err := f.e.AccessToken(f.srv.URL, tenant, "", SentinelPlatformResource)
	if err != nil {
		t.Fatal(err)
	}
	rt := &recordingTransport{token: tok, header: header, base: f.srv.Client().Transport}
	client := mcp.NewClient(&mcp.Implementation{Name: "clarion-test", Version: "0"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint:   f.srv.URL + "/mcp/data-exploration",
		HTTPClient: &http.Client{Transport: rt},
		MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, rt
}

// callText calls a tool and returns its text and IsError.
func callText(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (string, bool) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(res.Content) != 1 {
		t.Fatalf("%s: %d content items", name, len(res.Content))
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("%s: content %T", name, res.Content[0])
	}
	return tc.Text, res.IsError
}

func queryLake(t *testing.T, cs *mcp.ClientSession, workspace, query string) QueryTable {
	t.Helper()
	args := map[string]any{"query": query}
	if workspace != "" {
		args["workspaceId"] = workspace
	}
	text, isErr := callText(t, cs, ToolQueryLake, args)
	if isErr {
		t.Fatalf("query_lake failed: %s", text)
	}
	var res QueryResult
	if err := json.Unmarshal([]byte(text), &res); err != nil {
		t.Fatalf("query_lake answer is not JSON: %v\n%s", err, text)
	}
	if len(res.Tables) != 1 || res.Tables[0].Name != "PrimaryResult" {
		t.Fatalf("tables %+v", res.Tables)
	}
	return res.Tables[0]
}

func colOf(t *testing.T, tbl QueryTable, name string) int {
	t.Helper()
	for i, c := range tbl.Columns {
		if c.Name == name {
			return i
		}
	}
	t.Fatalf("no column %s", name)
	return -1
}

func TestMCPToolsAndWorkspaces(t *testing.T) {
	t.Parallel()
	f := setup(t)
	cs, _ := f.mcpSession(t, ContosoTenantID, nil)
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if want := []string{"list_sentinel_workspaces", "query_lake", "search_tables"}; !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}
	text, isErr := callText(t, cs, ToolListSentinelWorkspaces, nil)
	want := `{"workspaces":[{"name":"contoso-sentinel","id":"` + ContosoWorkspaceID + `"},{"name":"contoso-sentinel-eu","id":"` + ContosoWorkspace2ID + `"}]}`
	if isErr || text != want {
		t.Errorf("list_sentinel_workspaces = %s (error %v), want %s", text, isErr, want)
	}

	text, _ = callText(t, cs, ToolSearchTables, map[string]any{"query": "sign-in failures of users"})
	var found struct{ Tables []TableSchema }
	if err := json.Unmarshal([]byte(text), &found); err != nil || len(found.Tables) == 0 || found.Tables[0].Name != "SigninLogs" {
		t.Errorf("search_tables(sign-in) = %s", text)
	}
	text, _ = callText(t, cs, ToolSearchTables, map[string]any{"query": "SecurityIncident"})
	if err := json.Unmarshal([]byte(text), &found); err != nil || found.Tables[0].Name != "SecurityIncident" || len(found.Tables[0].Columns) != 31 {
		t.Errorf("search_tables(SecurityIncident) = %.300s", text)
	}
	st := f.e.Stats().Tenant(ContosoTenantID)
	if st.Tools[ToolSearchTables].Count != 2 || st.Tools[ToolListSentinelWorkspaces].Count != 1 {
		t.Errorf("tool stats %v", st.Tools)
	}
}

// pollerQuery is Clarion's poll query (ARCHITECTURE.md).
func pollerQuery(sweepStart, cursorTime, cursorName string, page int) string {
	return fmt.Sprintf(`SecurityIncident
| where CreatedTime >= datetime(%s)
| summarize arg_max(LastModifiedTime, *) by IncidentName
| where CreatedTime > datetime(%s) or (CreatedTime == datetime(%s) and IncidentName > '%s')
| order by CreatedTime asc, IncidentName asc
| take %d`, sweepStart, cursorTime, cursorTime, cursorName, page)
}

// TestQueryLakePollerQueryPagesEveryIncidentOnce covers P05 and P06: equal
// creation times at a page boundary, one row per update.
func TestQueryLakePollerQueryPagesEveryIncidentOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	created := "2024-06-21T00:59:00.1234567Z"
	names := []string{
		"0b0a3000-0000-4000-8000-00000000000c", "0b0a3000-0000-4000-8000-00000000000a",
		"0b0a3000-0000-4000-8000-00000000000b", "0b0a3000-0000-4000-8000-00000000000d",
		"0b0a3000-0000-4000-8000-00000000000e",
	}
	for _, n := range names {
		f.e.AddIncident(ContosoTenantID, ContosoWorkspaceID, Row{"IncidentName": n, "Title": "t " + n, "Severity": "Low",
			"Status": "New", "CreatedTime": created, "LastModifiedTime": created}, time.Time{})
		f.e.AddIncident(ContosoTenantID, ContosoWorkspaceID, Row{"IncidentName": n, "Title": "t " + n, "Severity": "High",
			"Status": "Active", "CreatedTime": created, "LastModifiedTime": "2024-06-21T00:59:30Z"}, time.Time{})
	}
	// Before the sweep start, and in another workspace: never returned.
	f.e.AddIncident(ContosoTenantID, ContosoWorkspaceID, Row{"IncidentName": "00000000-0000-4000-8000-000000000001", "CreatedTime": "2024-06-20T00:00:00Z"}, time.Time{})
	f.e.AddIncident(ContosoTenantID, ContosoWorkspace2ID, Row{"IncidentName": "00000000-0000-4000-8000-000000000002", "CreatedTime": created}, time.Time{})

	cs, _ := f.mcpSession(t, ContosoTenantID, nil)
	cursorTime, cursorName := "2024-06-21T00:58:00.0000000Z", ""
	var seen []string
	for range 10 {
		tbl := queryLake(t, cs, ContosoWorkspaceID, pollerQuery("2024-06-21T00:58:00.0000000Z", cursorTime, cursorName, 2))
		ni, ci, si, vi := colOf(t, tbl, "IncidentName"), colOf(t, tbl, "CreatedTime"), colOf(t, tbl, "Status"), colOf(t, tbl, "Severity")
		for _, r := range tbl.Rows {
			seen = append(seen, r[ni].(string))
			if r[si] != "Active" || r[vi] != "High" {
				t.Errorf("%s: %v/%v, want the latest row (Active/High)", r[ni], r[si], r[vi])
			}
			if r[ci] != created {
				t.Errorf("CreatedTime %v, want %s", r[ci], created)
			}
			cursorName, cursorTime = r[ni].(string), r[ci].(string)
		}
		if len(tbl.Rows) < 2 {
			break
		}
	}
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(seen, want) {
		t.Errorf("pages returned %v, want each incident once in key order %v", seen, want)
	}
}

func TestQueryLakeVisibilityDelay(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.e.AddIncident(ContosoTenantID, ContosoWorkspaceID, Row{"IncidentName": "0b0a3000-0000-4000-8000-000000000007", "Title": "G-7",
		"CreatedTime": testStart.Add(-30 * time.Second)}, testStart.Add(2*time.Minute))
	cs, _ := f.mcpSession(t, ContosoTenantID, nil)
	q := "SecurityIncident | where CreatedTime >= ago(1h) | project IncidentName"
	if tbl := queryLake(t, cs, ContosoWorkspaceID, q); len(tbl.Rows) != 0 {
		t.Fatalf("incident visible before its ingestion delay: %v", tbl.Rows)
	}
	f.clock.Advance(2 * time.Minute)
	if tbl := queryLake(t, cs, ContosoWorkspaceID, q); len(tbl.Rows) != 1 {
		t.Fatalf("incident not visible after its delay: %v", tbl.Rows)
	}
	// The control listing shows rows whether visible or not.
	rows, err := f.e.Incidents(ContosoTenantID, ContosoWorkspaceID)
	if err != nil || len(rows) != 1 || !rows[0].VisibleAt.Equal(testStart.Add(2*time.Minute)) {
		t.Errorf("Incidents = %+v, %v", rows, err)
	}
}

func TestQueryLakeResultShape(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.e.AddIncident(ContosoTenantID, ContosoWorkspaceID, Row{
		"IncidentName": "0b0a3000-0000-4000-8000-000000000042", "Title": "Shape", "Severity": "Medium", "Status": "New",
		"CreatedTime": "2024-06-21 00:06:41.74+00:00", "IncidentNumber": "42",
		"AdditionalData": `{"alertsCount":2,"providerIncidentUrl":"https://security.microsoft.com/incident2/9/overview?tid=x"}`,
	}, time.Time{})
	cs, _ := f.mcpSession(t, ContosoTenantID, nil)
	tbl := queryLake(t, cs, "", "SecurityIncident | take 1")
	if len(tbl.Columns) != 31 || len(tbl.Rows) != 1 {
		t.Fatalf("%d columns, %d rows", len(tbl.Columns), len(tbl.Rows))
	}
	r := tbl.Rows[0]
	checks := map[string]any{
		"CreatedTime":      "2024-06-21T00:06:41.7400000Z",
		"LastModifiedTime": "2024-06-21T00:06:41.7400000Z",
		"ClosedTime":       nil,
		"IncidentNumber":   float64(42),
		"TenantId":         ContosoWorkspaceID,
		"Type":             "SecurityIncident",
		"Classification":   "",
		"AlertIds":         "[]",
		"AdditionalData":   `{"alertsCount":2,"providerIncidentUrl":"https://security.microsoft.com/incident2/9/overview?tid=x"}`,
	}
	for col, want := range checks {
		if got := r[colOf(t, tbl, col)]; got != want {
			t.Errorf("%s = %#v, want %#v", col, got, want)
		}
	}
	types := map[string]string{}
	for _, c := range tbl.Columns {
		types[c.Name] = string(c.Type)
	}
	if types["CreatedTime"] != "datetime" || types["Owner"] != "dynamic" || types["IncidentNumber"] != "int" || types["Title"] != "string" {
		t.Errorf("column types %v", types)
	}
	if !strings.HasPrefix(r[colOf(t, tbl, "IncidentUrl")].(string), "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident/") {
		t.Errorf("IncidentUrl %v", r[colOf(t, tbl, "IncidentUrl")])
	}

	// A summarize answers with its own columns.
	tbl = queryLake(t, cs, ContosoWorkspaceID, "SecurityIncident | summarize count() by Severity")
	if len(tbl.Columns) != 2 || tbl.Columns[1].Name != "count_" || tbl.Columns[1].Type != "long" || tbl.Rows[0][1] != float64(1) {
		t.Errorf("summarize result %+v", tbl)
	}
}

func TestQueryLakeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(f *fixture)
		args    map[string]any
		want    string
	}{
		{"syntax error", nil, map[string]any{"query": "SecurityIncident | where"}, "Syntax error"},
		{"unknown column", nil, map[string]any{"query": "SecurityIncident | where Foo == 1"}, "Failed to resolve scalar expression named 'Foo'"},
		{"unknown table", nil, map[string]any{"query": "Incidents | take 1"}, "Failed to resolve table"},
		{"too long", nil, map[string]any{"query": "SecurityIncident | where Title != '" + strings.Repeat("x", 800) + "'"}, "limit is 800 characters"},
		{"unknown workspace", nil, map[string]any{"query": "SecurityIncident", "workspaceId": FabrikamWorkspaceID}, "was not found in tenant"},
		{"workspace not a GUID", nil, map[string]any{"query": "SecurityIncident", "workspaceId": "contoso"}, "must be a GUID"},
		{"not onboarded", func(f *fixture) { _ = f.e.SetDataLakeOnboarded(ContosoTenantID, false) }, map[string]any{"query": "SecurityIncident"}, "not onboarded to the Microsoft Sentinel data lake"},
		{"not onboarded fault", func(f *fixture) { f.e.SetFault(Fault{TenantID: ContosoTenantID, Kind: FaultNotOnboarded}) }, map[string]any{"query": "SecurityIncident"}, "not onboarded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			if tc.prepare != nil {
				tc.prepare(f)
			}
			cs, _ := f.mcpSession(t, ContosoTenantID, nil)
			text, isErr := callText(t, cs, ToolQueryLake, tc.args)
			if !isErr || !strings.Contains(text, tc.want) {
				t.Errorf("got error=%v %q, want a tool error containing %q", isErr, text, tc.want)
			}
		})
	}
	t.Run("list workspaces when not onboarded", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.e.SetFault(Fault{Kind: FaultNotOnboarded, Target: ToolListSentinelWorkspaces, Count: 1})
		cs, _ := f.mcpSession(t, ContosoTenantID, nil)
		if text, isErr := callText(t, cs, ToolListSentinelWorkspaces, nil); !isErr || !strings.Contains(text, "not onboarded") {
			t.Errorf("got %v %s", isErr, text)
		}
		if _, isErr := callText(t, cs, ToolListSentinelWorkspaces, nil); isErr {
			t.Errorf("the one-off fault lasted")
		}
	})
}

// postMCP sends a raw JSON-RPC initialize to an MCP server.
func postMCP(t *testing.T, f *fixture, path, token string, header http.Header) (*http.Response, string) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}`
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestMCPRejectsBadTokens(t *testing.T) {
	t.Parallel()
	f := setup(t)
	lake, _ := f.e.AccessToken(f.srv.URL, ContosoTenantID, "", SentinelPlatformResource)
	defender, _ := f.e.AccessToken(f.srv.URL, ContosoTenantID, "", DefenderMCPResource)
	// A token signed by another emulator (another key).
	g := setup(t, func(c *Config) { c.SigningKey = nil })
	forged, _ := g.e.AccessToken(g.srv.URL, ContosoTenantID, "", SentinelPlatformResource)

	tests := []struct {
		name, path, token string
		header            http.Header
		advance           time.Duration
		want              string
	}{
		{name: "no token", path: "/mcp/data-exploration", want: "missing"},
		{name: "garbage", path: "/mcp/data-exploration", token: "abc.def.ghi", want: "malformed"},
		{name: "other signing key", path: "/mcp/data-exploration", token: forged, want: "signature"},
		{name: "wrong audience", path: "/mcp/data-exploration", token: defender, want: "audience"},
		{name: "wrong audience at triage", path: "/mcp/triage", token: lake, want: "audience"},
		{name: "tenant pin mismatch", path: "/mcp/data-exploration", token: lake, header: http.Header{"X-Mcp-Client-Tenant-Id": {FabrikamTenantID}}, want: "pinned"},
		{name: "expired", path: "/mcp/data-exploration", token: lake, advance: time.Hour, want: "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.advance > 0 {
				f.clock.Advance(tc.advance)
				defer f.clock.Advance(-tc.advance)
			}
			resp, body := postMCP(t, f, tc.path, tc.token, tc.header)
			if resp.StatusCode != 401 {
				t.Fatalf("status %d %s, want 401", resp.StatusCode, body)
			}
			if wa := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Bearer ") || !strings.Contains(wa, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q", wa)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "InvalidAuthenticationToken" || !strings.Contains(e.Error.Message, tc.want) {
				t.Errorf("body %s, want a JSON error mentioning %q", body, tc.want)
			}
		})
	}
	t.Run("valid token with matching pin", func(t *testing.T) {
		resp, body := postMCP(t, f, "/mcp/data-exploration", lake, http.Header{"X-Mcp-Client-Tenant-Id": {ContosoTenantID}})
		if resp.StatusCode != 200 || !strings.Contains(body, `"serverInfo"`) {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})
	t.Run("triage accepts a Defender token", func(t *testing.T) {
		resp, body := postMCP(t, f, "/mcp/triage", defender, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `"serverInfo"`) {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})
}

func TestMCPToolFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fault  Fault
		status int
		retry  string
	}{
		{"throttle", Fault{Target: ToolQueryLake, Kind: FaultThrottle, RetryAfter: 30 * time.Second, Count: 1}, 429, "30"},
		{"server error", Fault{Target: ToolQueryLake, Kind: FaultServerError, Status: 503, Count: 1}, 503, ""},
		{"truncated", Fault{Target: ToolQueryLake, Kind: FaultTruncate, Count: 1}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			cs, rec := f.mcpSession(t, ContosoTenantID, nil)
			tc.fault.TenantID = ContosoTenantID
			f.e.SetFault(tc.fault)
			// Other tools and other tenants are not affected.
			if _, isErr := callText(t, cs, ToolListSentinelWorkspaces, nil); isErr {
				t.Fatal("list_sentinel_workspaces failed")
			}
			_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: ToolQueryLake, Arguments: map[string]any{"query": "SecurityIncident"}})
			if err == nil {
				t.Fatal("query_lake succeeded despite the fault")
			}
			rec.mu.Lock()
			status, retry, body := rec.status, rec.retry, rec.lastBody
			rec.mu.Unlock()
			if status != tc.status || retry != tc.retry {
				t.Errorf("HTTP %d Retry-After %q, want %d %q", status, retry, tc.status, tc.retry)
			}
			if tc.fault.Kind == FaultTruncate && json.Valid(body) {
				t.Errorf("truncated body is valid JSON: %s", body)
			}
			if got := f.e.Stats().Tenant(ContosoTenantID).Tools[ToolQueryLake].Count; got != 1 {
				t.Errorf("query_lake calls counted %d, want 1", got)
			}
		})
	}
}

func TestMCPStandaloneStreamAndDelay(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tok, _ := f.e.AccessToken(f.srv.URL, ContosoTenantID, "", SentinelPlatformResource)
	client := mcp.NewClient(&mcp.Implementation{Name: "sse", Version: "0"}, nil)
	// With the standalone event stream (the SDK's default).
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint:   f.srv.URL + "/mcp/data-exploration",
		HTTPClient: &http.Client{Transport: &recordingTransport{token: tok, base: f.srv.Client().Transport}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, isErr := callText(t, cs, ToolListSentinelWorkspaces, nil); isErr {
		t.Fatal("list_sentinel_workspaces failed")
	}
	f.e.SetFault(Fault{Target: ToolQueryLake, Kind: FaultDelay, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolQueryLake, Arguments: map[string]any{"query": "SecurityIncident"}})
	if err == nil || time.Since(start) > 30*time.Second {
		t.Errorf("delayed call: %v after %v, want the caller's deadline", err, time.Since(start))
	}
}

// TestCloseEndsOpenStreams: an MCP client that keeps its event stream open
// must not keep the server from shutting down once Close is called.
func TestCloseEndsOpenStreams(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: testStart}
	cfg := DefaultConfig()
	cfg.SigningKey = testKey()
	cfg.Now = clock.Now
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	tok, _ := e.AccessToken(srv.URL, ContosoTenantID, "", SentinelPlatformResource)
	client := mcp.NewClient(&mcp.Implementation{Name: "leaky", Version: "0"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint:   srv.URL + "/mcp/data-exploration",
		HTTPClient: &http.Client{Transport: &recordingTransport{token: tok, base: http.DefaultTransport}},
		MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("server did not shut down after Emulator.Close")
	}
	_ = cs.Close()
}
