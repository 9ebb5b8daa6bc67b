package emulator

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/samples"
)

func TestLoadIncidentSamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		n         int
		firstName string
		title     string
		severity  string
		number    int64
		created   string
		url       string // AdditionalData.providerIncidentUrl of the first row
	}{
		{"arm_incidents_list_page_nextlink_SOC_agent_ss.json", 50, "edb492c8-9d2c-4fdd-b643-53330c239cdd", "test", "Medium", 84, "2025-08-10T01:52:41.2428874Z", ""},
		{"GetIncidents.json", 1, "73e01a99-5cd7-4139-a149-9f2736ff2ab5", "My incident", "High", 3177, "2019-01-01T13:15:30Z", ""},
		{"GetIncidentById.json", 1, "73e01a99-5cd7-4139-a149-9f2736ff2ab5", "My incident", "High", 3177, "2019-01-01T13:15:30Z", ""},
		{"ibm_fn_microsoft_sentinel_update_incident_output_json_example.json", 1, "b3763ac5-6319-496b-b404-6c5000418a81", "Suspected brute-force attack attempt", "High", 4609, "2024-04-10T15:29:50.0960914Z", ""},
		{"securityincident_rows_stix-shifter.json", 2, "7f788595-0fcf-4cb2-a669-07a4b5e8de99", "Traffic detected from IP addresses recommended for blocking", "Low", 15216, "2023-03-18T23:52:09.956735Z", ""},
		{"graph_security_list_incidents_example1.json", 1, nameGUID("graph-incident:2972395"), "Multi-stage incident involving Initial access & Command and control on multiple endpoints reported by multiple sources", "Medium", 0, "2021-08-13T08:43:35.5533333Z", "https://security.microsoft.com/incidents/2972395?tid=12f988bf-16f1-11af-11ab-1d7cd011db47"},
		{"graph_security_list_incidents_expand_alerts_example2.json", 1, nameGUID("graph-incident:2972395"), "Multi-stage incident involving Initial access & Command and control on multiple endpoints reported by multiple sources", "Medium", 0, "2021-08-13T08:43:35.5533333Z", "https://security.microsoft.com/incidents/2972395?tid=12f988bf-16f1-11af-11ab-1d7cd011db47"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			rows, err := LoadIncidents(samples.Path(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != tc.n {
				t.Fatalf("%d rows, want %d", len(rows), tc.n)
			}
			r := rows[0]
			if r["IncidentName"] != tc.firstName || r["Title"] != tc.title || r["Severity"] != tc.severity {
				t.Errorf("first row %v / %v / %v", r["IncidentName"], r["Title"], r["Severity"])
			}
			if tc.number != 0 && r["IncidentNumber"] != tc.number {
				t.Errorf("IncidentNumber %#v, want %d", r["IncidentNumber"], tc.number)
			}
			want, _ := time.Parse(time.RFC3339Nano, tc.created)
			if got, _ := r["CreatedTime"].(time.Time); !got.Equal(want) {
				t.Errorf("CreatedTime %v, want %v", r["CreatedTime"], want)
			}
			if tc.url != "" {
				if ad, _ := r["AdditionalData"].(map[string]any); ad["providerIncidentUrl"] != tc.url {
					t.Errorf("providerIncidentUrl %v, want %s", r["AdditionalData"], tc.url)
				}
			}
			// Every row can be stored and queried.
			f := setup(t)
			if _, err := f.e.AddIncidents(ContosoTenantID, ContosoWorkspaceID, rows, time.Time{}); err != nil {
				t.Fatal(err)
			}
			res, err := f.e.Query(ContosoTenantID, ContosoWorkspaceID, "SecurityIncident | summarize arg_max(LastModifiedTime, *) by IncidentName | count")
			if err != nil || res.Tables[0].Rows[0][0] != int64(tc.n) {
				t.Errorf("query: %v %v", res, err)
			}
		})
	}
}

// TestLoadARMPageKeepsEveryIncident checks the real 50-incident page field
// by field against its JSON.
func TestLoadARMPageKeepsEveryIncident(t *testing.T) {
	t.Parallel()
	path := samples.Path(t, "arm_incidents_list_page_nextlink_SOC_agent_ss.json")
	rows, err := LoadIncidents(path)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Value []struct {
			Name       string
			Properties struct {
				Title, Severity, Status, CreatedTimeUtc, ProviderName string
				IncidentNumber                                        int64
				AdditionalData                                        map[string]any
			}
		}
	}
	raw, _ := os.ReadFile(path)
	if err := json.Unmarshal(raw, &page); err != nil {
		t.Fatal(err)
	}
	sev := map[string]int{}
	withURL := 0
	for i, v := range page.Value {
		r := rows[i]
		p := v.Properties
		created, _ := time.Parse(time.RFC3339Nano, p.CreatedTimeUtc)
		if r["IncidentName"] != v.Name || r["Title"] != p.Title || r["Severity"] != p.Severity || r["Status"] != p.Status ||
			r["IncidentNumber"] != p.IncidentNumber || r["ProviderName"] != p.ProviderName || !r["CreatedTime"].(time.Time).Equal(created) {
			t.Errorf("row %d differs from incident %s: %v", i, v.Name, r)
		}
		if u, ok := p.AdditionalData["providerIncidentUrl"]; ok {
			withURL++
			if r["AdditionalData"].(map[string]any)["providerIncidentUrl"] != u {
				t.Errorf("row %d lost providerIncidentUrl", i)
			}
		}
		sev[r["Severity"].(string)]++
	}
	if sev["Low"] != 41 || sev["Medium"] != 7 || sev["High"] != 2 || withURL == 0 {
		t.Errorf("severities %v, %d with providerIncidentUrl", sev, withURL)
	}
}

func TestLoadIncidentDir(t *testing.T) {
	t.Parallel()
	f := setup(t)
	n, err := f.e.LoadIncidentDir(filepath.Dir(samples.Path(t, "GetIncidents.json")), ContosoTenantID, ContosoWorkspace2ID)
	if err != nil {
		t.Fatal(err)
	}
	// 50 (ARM page) + 1 + 1 (ARM examples) + 1 (SOAR envelope) + 2 (rows) + 1 + 1 (Graph).
	if n != 57 {
		t.Errorf("%d rows loaded, want 57", n)
	}
	res, err := f.e.Query(ContosoTenantID, ContosoWorkspace2ID, "SecurityIncident | summarize arg_max(LastModifiedTime, *) by IncidentName | count")
	if err != nil || res.Tables[0].Rows[0][0] != int64(55) {
		t.Errorf("distinct incidents %v %v, want 55 (two samples repeat an incident)", res, err)
	}
}

func TestLoadRejectsOtherPayloads(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"loganalytics_query_response_securityalert_msticpy_az_mon_raw_query.json", "securityalert_rows_stix-shifter.json", "kusto_v2_frames_response_msticpy_kusto_raw_resp.json", "GetAllIncidentEntities.json"} {
		_, err := LoadIncidents(samples.Path(t, file))
		if !errors.Is(err, ErrNotIncidents) {
			t.Errorf("%s: got %v, want ErrNotIncidents", file, err)
		}
	}
}

func TestDecodeIncidentShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		n          int
	}{
		{"tables response", `{"tables":[{"name":"PrimaryResult","columns":[{"name":"IncidentName","type":"string"},{"name":"CreatedTime","type":"datetime"}],"rows":[["a","2024-06-21T01:06:41Z"],["b","2024-06-21T01:06:42Z"]]}]}`, 2},
		{"kusto frames", `[{"FrameType":"DataSetHeader"},{"FrameType":"DataTable","TableKind":"PrimaryResult","Columns":[{"ColumnName":"IncidentName","ColumnType":"string"}],"Rows":[["a"]]}]`, 1},
		{"rows wrapper", `{"rows":[{"IncidentName":"a","Owner":"{\"assignedTo\":null}"}]}`, 1},
		{"single row", `{"IncidentName":"a","ClosedTime":"None"}`, 1},
	}
	for _, tc := range tests {
		rows, err := DecodeIncidents([]byte(tc.body))
		if err != nil || len(rows) != tc.n {
			t.Errorf("%s: %d rows, %v", tc.name, len(rows), err)
		}
	}
}

func TestAddAndUpdateIncident(t *testing.T) {
	t.Parallel()
	f := setup(t)
	stored, err := f.e.AddIncidents(ContosoTenantID, ContosoWorkspaceID, []Row{{"Title": "first"}, {"Title": "second"}}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if stored[0]["IncidentNumber"] != int64(1) || stored[1]["IncidentNumber"] != int64(2) || !isGUID(stored[0]["IncidentName"].(string)) {
		t.Errorf("filled in %v", stored)
	}
	name := stored[0]["IncidentName"].(string)
	f.clock.Advance(time.Minute)
	up, err := f.e.UpdateIncident(ContosoTenantID, ContosoWorkspaceID, name, Row{"Status": "Closed", "Classification": "FalsePositive"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !up["LastModifiedTime"].(time.Time).Equal(testStart.Add(time.Minute)) || !up["ClosedTime"].(time.Time).Equal(testStart.Add(time.Minute)) ||
		up["IncidentNumber"] != int64(1) || !up["CreatedTime"].(time.Time).Equal(testStart) {
		t.Errorf("update row %v", up)
	}
	res, _ := f.e.Query(ContosoTenantID, ContosoWorkspaceID, `SecurityIncident | summarize arg_max(LastModifiedTime, *) by IncidentName | where Status == "Closed" | project IncidentName`)
	if len(res.Tables[0].Rows) != 1 || res.Tables[0].Rows[0][0] != name {
		t.Errorf("latest rows %v", res.Tables[0].Rows)
	}
	if _, err := f.e.UpdateIncident(ContosoTenantID, ContosoWorkspaceID, "nope", Row{}, time.Time{}); !errors.Is(err, ErrUnknownIncident) {
		t.Errorf("unknown incident: %v", err)
	}
	if _, err := f.e.AddIncidents(ContosoTenantID, FabrikamWorkspaceID, []Row{{}}, time.Time{}); !errors.Is(err, ErrUnknownWorkspace) {
		t.Errorf("workspace of another tenant: %v", err)
	}
	if _, err := f.e.AddIncidents(ContosoTenantID, ContosoWorkspaceID, []Row{{"CreatedTime": "yesterday"}}, time.Time{}); err == nil {
		t.Error("a bad datetime was accepted")
	}
}

func TestDemoIncidents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rows, err := SeedDemoIncidents(f.e, ContosoTenantID, ContosoWorkspaceID, testStart)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 12 {
		t.Fatalf("%d rows", len(rows))
	}
	for i := range 30 {
		f.e.AddIncident(ContosoTenantID, ContosoWorkspaceID, DemoIncident(ContosoTenantID, i, testStart.Add(time.Duration(i)*time.Second)), time.Time{})
	}
	res, err := f.e.Query(ContosoTenantID, ContosoWorkspaceID, `SecurityIncident | summarize arg_max(LastModifiedTime, *) by IncidentName | summarize count() by Severity`)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, r := range res.Tables[0].Rows {
		total += r[1].(int64)
	}
	if total != 42 || len(res.Tables[0].Rows) < 4 {
		t.Errorf("demo incidents by severity %v (total %d, want 42)", res.Tables[0].Rows, total)
	}
	res, _ = f.e.Query(ContosoTenantID, ContosoWorkspaceID, `SecurityIncident | where ProviderName == "Microsoft XDR" | take 1 | project AdditionalData`)
	if s, _ := res.Tables[0].Rows[0][0].(string); !strings.Contains(s, `"providerIncidentUrl":"https://security.microsoft.com/incident2/`) {
		t.Errorf("XDR demo incident without Defender link: %v", s)
	}
}

func TestControlAPI(t *testing.T) {
	t.Parallel()
	f := setup(t)
	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	ws := "/_emulator/tenants/" + ContosoTenantID + "/workspaces/" + ContosoWorkspaceID

	status, out := do("POST", ws+"/incidents?visible_after=90s", `[{"IncidentName":"0b0a3000-0000-4000-8000-000000000101","Title":"from the control API","Severity":"High","CreatedTime":"2024-06-21T00:59:00Z"}]`)
	if status != 201 || len(out["incidents"].([]any)) != 1 {
		t.Fatalf("add: %d %v", status, out)
	}
	status, out = do("PATCH", ws+"/incidents/0b0a3000-0000-4000-8000-000000000101", `{"Status":"Active"}`)
	if status != 200 || out["incident"].(map[string]any)["Status"] != "Active" {
		t.Fatalf("update: %d %v", status, out)
	}
	status, out = do("GET", ws+"/incidents", "")
	rows := out["rows"].([]any)
	if status != 200 || len(rows) != 2 || rows[0].(map[string]any)["visibleAt"] != "2024-06-21T01:01:30.0000000Z" {
		t.Fatalf("list: %d %v", status, out)
	}
	// The first row waits for its ingestion delay; the update row does not.
	status, out = do("POST", ws+"/query", `{"query":"SecurityIncident | where Status != \"Active\" | count"}`)
	if status != 200 || out["tables"].([]any)[0].(map[string]any)["rows"].([]any)[0].([]any)[0] != float64(0) {
		t.Errorf("query before visibility: %d %v", status, out)
	}

	// Faults.
	status, out = do("POST", "/_emulator/faults", `{"tenantId":"`+ContosoTenantID+`","target":"token","kind":"throttle","retryAfter":30,"count":1}`)
	if status != 201 || out["id"] == "" || out["retryAfter"] != float64(30) {
		t.Fatalf("add fault: %d %v", status, out)
	}
	if status, out := do("POST", "/_emulator/faults", `{"kind":"frobnicate"}`); status != 400 {
		t.Errorf("bad fault: %d %v", status, out)
	}
	_, hdr, _ := f.postToken(t, ContosoTenantID, refreshForm("x", scopeRefreshLake))
	if hdr.Get("Retry-After") != "30" {
		t.Errorf("fault from the control API not applied")
	}
	if status, out = do("GET", "/_emulator/faults", ""); len(out["faults"].([]any)) != 0 {
		t.Errorf("one-off fault still listed: %v", out)
	}
	do("POST", "/_emulator/faults", `{"kind":"delay","target":"keys","delay":"2s"}`)
	if status, _ := do("DELETE", "/_emulator/faults", ""); status != 204 || len(f.e.Faults()) != 0 {
		t.Errorf("clear faults: %d %v", status, f.e.Faults())
	}

	// Revoke, tenant state, stats.
	if status, _ := do("POST", "/_emulator/tenants/"+ContosoTenantID+"/revoke", `{"aadsts":700082}`); status != 200 {
		t.Errorf("revoke: %d", status)
	}
	if status, out := do("PATCH", "/_emulator/tenants/"+ContosoTenantID, `{"dataLakeOnboarded":false}`); status != 200 ||
		out["tenants"].([]any)[0].(map[string]any)["dataLakeOnboarded"] != false {
		t.Errorf("patch tenant: %d %v", status, out)
	}
	status, out = do("GET", "/_emulator/stats", "")
	tok := out["tenants"].(map[string]any)[ContosoTenantID].(map[string]any)["endpoints"].(map[string]any)["token"].(map[string]any)
	if status != 200 || tok["count"] != float64(1) {
		t.Errorf("stats: %d %v", status, out)
	}
	if status, out := do("POST", "/_emulator/tenants/"+ContosoTenantID+"/workspaces/"+FabrikamWorkspaceID+"/incidents", `{"Title":"x"}`); status != 404 {
		t.Errorf("unknown workspace: %d %v", status, out)
	}
	if status, _ := do("POST", "/_emulator/tenants/"+ContosoTenantID+"/workspaces/"+ContosoWorkspaceID+"/tables/SigninLogs/rows",
		`[{"UserPrincipalName":"a@contoso.onmicrosoft.com","ResultType":"50126","TimeGenerated":"2024-06-21T00:00:00Z"}]`); status != 201 {
		t.Errorf("add SigninLogs rows: %d", status)
	}
	res, err := f.e.Query(ContosoTenantID, ContosoWorkspaceID, `SigninLogs | where ResultType == "50126" | project UserPrincipalName`)
	if err != nil || len(res.Tables[0].Rows) != 1 {
		t.Errorf("SigninLogs query: %v %v", res, err)
	}
}
