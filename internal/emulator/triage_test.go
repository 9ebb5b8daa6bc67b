package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/samples"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// triageSession connects the SDK client to the triage server with a
// Defender MCP token of the tenant.
func (f *fixture) triageSession(t *testing.T, tenant string) (*mcp.ClientSession, *recordingTransport) {
	t.Helper()
	tok, err := f.e.AccessToken(f.srv.URL, tenant, "", DefenderMCPResource)
	if err != nil {
		t.Fatal(err)
	}
	rt := &recordingTransport{token: tok, base: f.srv.Client().Transport}
	client := mcp.NewClient(&mcp.Implementation{Name: "clarion-test", Version: "0"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: f.srv.URL + "/mcp/triage", HTTPClient: &http.Client{Transport: rt}, MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, rt
}

// triageJSON calls a triage tool that must succeed and decodes its answer.
func triageJSON(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) map[string]any {
	t.Helper()
	text, isErr := callText(t, cs, tool, args)
	if isErr {
		t.Fatalf("%s(%v) failed: %s", tool, args, text)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		t.Fatalf("%s answer is not a JSON object: %v\n%.300s", tool, err, text)
	}
	return out
}

// triageError calls a triage tool that must fail and returns the Graph
// error's code and message.
func triageError(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (string, string) {
	t.Helper()
	text, isErr := callText(t, cs, tool, args)
	if !isErr {
		t.Fatalf("%s(%v) succeeded, want an error: %.300s", tool, args, text)
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(text), &e); err != nil {
		t.Fatalf("%s error is not a Graph JSON error: %s", tool, text)
	}
	return e.Error.Code, e.Error.Message
}

func values(t *testing.T, m map[string]any) []map[string]any {
	t.Helper()
	raw, ok := m["value"].([]any)
	if !ok {
		t.Fatalf("no value array in %.300v", m)
	}
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i] = v.(map[string]any)
	}
	return out
}

// seedTriage adds the demo incidents to Contoso's first workspace and
// returns the stored rows.
func seedTriage(t *testing.T, f *fixture) []Row {
	t.Helper()
	rows, err := SeedDemoIncidents(f.e, ContosoTenantID, ContosoWorkspaceID, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestTriageToolsListAndAudience(t *testing.T) {
	t.Parallel()
	f := setup(t)
	cs, _ := f.triageSession(t, ContosoTenantID)
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
		if tl.Description == "" {
			t.Errorf("%s has no description", tl.Name)
		}
	}
	want := slices.Clone(TriageTools)
	slices.Sort(want)
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("tools %v\nwant %v", names, want)
	}
	// A data lake token is for another audience.
	lake, err := f.e.AccessToken(f.srv.URL, ContosoTenantID, "", SentinelPlatformResource)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := postMCP(t, f, "/mcp/triage", lake, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, DefenderMCPResource) {
		t.Fatalf("data lake token on triage: %d %s", resp.StatusCode, body)
	}
}

// latestRows is what query_lake says the workspace holds: one row per
// incident, the latest.
func latestRows(t *testing.T, f *fixture, workspace string) map[string]QueryTable {
	t.Helper()
	res, err := f.e.Query(ContosoTenantID, workspace, "SecurityIncident | summarize arg_max(LastModifiedTime, *) by IncidentName")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]QueryTable{"": res.Tables[0]}
}

func TestTriageListIncidentsMatchesSecurityIncidentRows(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seedTriage(t, f)
	// One incident not visible yet (ingestion delay): the triage view does
	// not show it either.
	late := DemoIncident(ContosoTenantID, 7, f.clock.Now())
	if _, err := f.e.AddIncidents(ContosoTenantID, ContosoWorkspaceID, []Row{late}, f.clock.Now().Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	cs, _ := f.triageSession(t, ContosoTenantID)

	lake := latestRows(t, f, ContosoWorkspaceID)[""]
	nameCol, statusCol, provCol := colOf(t, lake, "IncidentName"), colOf(t, lake, "Status"), colOf(t, lake, "ProviderIncidentId")
	byName := map[string][]any{}
	for _, r := range lake.Rows {
		byName[r[nameCol].(string)] = r
	}

	got := triageJSON(t, cs, ToolListIncidents, map[string]any{"top": 100})
	incs := values(t, got)
	if len(incs) != len(byName) || int(got["@odata.count"].(float64)) != len(byName) {
		t.Fatalf("ListIncidents gave %d incidents (count %v), query_lake %d", len(incs), got["@odata.count"], len(byName))
	}
	wantStatus := map[string]string{"New": "active", "Active": "inProgress", "Closed": "resolved"}
	var prev string
	for _, inc := range incs {
		if inc["@odata.type"] != "#microsoft.graph.security.incident" || inc["tenantId"] != ContosoTenantID {
			t.Fatalf("not a Graph incident: %v", inc)
		}
		sentinel := inc["sentinel"].(map[string]any)
		row, ok := byName[sentinel["incidentId"].(string)]
		if !ok {
			t.Fatalf("incident %v is not a SecurityIncident row", sentinel["incidentId"])
		}
		if inc["id"] != row[provCol] {
			t.Errorf("id %v, want ProviderIncidentId %v", inc["id"], row[provCol])
		}
		if inc["status"] != wantStatus[row[statusCol].(string)] {
			t.Errorf("status %v for Sentinel status %v", inc["status"], row[statusCol])
		}
		if _, has := inc["alerts"]; has {
			t.Error("alerts present without includeAlertsData")
		}
		created := inc["createdDateTime"].(string)
		if prev != "" && created > prev {
			t.Errorf("not newest first: %s after %s", created, prev)
		}
		prev = created
		if late["IncidentName"] == sentinel["incidentId"] {
			t.Error("an incident not visible yet is listed")
		}
	}

	// Filters and paging.
	high := values(t, triageJSON(t, cs, ToolListIncidents, map[string]any{"Severity": "High", "top": 100}))
	for _, inc := range high {
		if inc["severity"] != "high" {
			t.Errorf("Severity filter let %v through", inc["severity"])
		}
	}
	if len(high) == 0 || len(high) == len(incs) {
		t.Errorf("Severity=High kept %d of %d", len(high), len(incs))
	}
	resolved := values(t, triageJSON(t, cs, ToolListIncidents, map[string]any{"Status": "resolved"}))
	if len(resolved) != 3 {
		t.Errorf("Status=resolved: %d incidents, want the 3 closed ones", len(resolved))
	}
	search := values(t, triageJSON(t, cs, ToolListIncidents, map[string]any{"Search": "LSASS"}))
	if len(search) != 1 || !strings.Contains(search[0]["displayName"].(string), "LSASS") {
		t.Errorf("Search=LSASS: %v", search)
	}
	p1 := triageJSON(t, cs, ToolListIncidents, map[string]any{"top": 5})
	if len(values(t, p1)) != 5 || !strings.Contains(p1["@odata.nextLink"].(string), "$skip=5") {
		t.Errorf("first page: %d items, nextLink %v", len(values(t, p1)), p1["@odata.nextLink"])
	}
	p3 := values(t, triageJSON(t, cs, ToolListIncidents, map[string]any{"top": 5, "skip": 10}))
	if len(p3) != len(incs)-10 || p3[0]["id"] != incs[10]["id"] {
		t.Errorf("third page starts at %v, want %v", p3[0]["id"], incs[10]["id"])
	}
	asc := values(t, triageJSON(t, cs, ToolListIncidents, map[string]any{"orderBy": "createdDateTime asc", "top": 100}))
	if asc[0]["id"] != incs[len(incs)-1]["id"] {
		t.Errorf("orderBy asc starts with %v", asc[0]["id"])
	}
	if code, _ := triageError(t, cs, ToolListIncidents, map[string]any{"orderBy": "title"}); code != "BadRequest" {
		t.Errorf("bad orderBy: %s", code)
	}

	// With alerts: every alert is a Graph alert with evidence.
	withAlerts := values(t, triageJSON(t, cs, ToolListIncidents, map[string]any{"includeAlertsData": true, "top": 100}))
	for _, inc := range withAlerts {
		alerts := inc["alerts"].([]any)
		if len(alerts) == 0 || len(alerts) != int(inc["alertsCount"].(float64)) {
			t.Fatalf("incident %v has %d alerts (alertsCount %v)", inc["id"], len(alerts), inc["alertsCount"])
		}
		for _, a := range alerts {
			am := a.(map[string]any)
			if am["@odata.type"] != "#microsoft.graph.security.alert" || am["incidentId"] != inc["id"] || len(am["evidence"].([]any)) == 0 {
				t.Fatalf("alert %v of incident %v: type %v incidentId %v evidence %v", am["id"], inc["id"], am["@odata.type"], am["incidentId"], am["evidence"])
			}
		}
	}
}

func TestTriageGetIncidentByID(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rows := seedTriage(t, f)
	cs, _ := f.triageSession(t, ContosoTenantID)
	var xdr Row
	for _, r := range rows {
		if r["ProviderName"] == "Microsoft XDR" {
			xdr = r
			break
		}
	}
	name := xdr["IncidentName"].(string)
	byGUID := triageJSON(t, cs, ToolGetIncidentByID, map[string]any{"incidentID": name, "includeAlertsData": true})
	if byGUID["id"] != xdr["ProviderIncidentId"] || byGUID["displayName"] != xdr["Title"] || len(byGUID["alerts"].([]any)) == 0 {
		t.Fatalf("by GUID: id %v title %v alerts %v", byGUID["id"], byGUID["displayName"], byGUID["alerts"])
	}
	upper := triageJSON(t, cs, ToolGetIncidentByID, map[string]any{"incidentID": strings.ToUpper(name)})
	if upper["id"] != byGUID["id"] {
		t.Error("GUID lookup is case-sensitive")
	}
	num := triageJSON(t, cs, ToolGetIncidentByID, map[string]any{"incidentID": json.Number(strings.TrimSpace(str(xdr["IncidentNumber"]))).String()})
	if num["id"] != byGUID["id"] {
		t.Errorf("by incident number: %v, want %v", num["id"], byGUID["id"])
	}
	// The Defender number is not a Sentinel id.
	code, msg := triageError(t, cs, ToolGetIncidentByID, map[string]any{"incidentID": xdr["ProviderIncidentId"]})
	if code != "NotFound" || !strings.Contains(msg, "not found") {
		t.Errorf("Defender number: %s %s", code, msg)
	}
}

func TestTriageSamplesGraphIncidentAndSecurityAlertRows(t *testing.T) {
	t.Parallel()
	f := setup(t)
	graphRows, err := LoadIncidents(samples.Path(t, "graph_security_list_incidents_expand_alerts_example2.json"))
	if err != nil {
		t.Fatal(err)
	}
	armRows, err := LoadIncidents(samples.Path(t, "GetIncidents.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.AddIncidents(ContosoTenantID, ContosoWorkspaceID, append(graphRows, armRows...), time.Time{}); err != nil {
		t.Fatal(err)
	}
	// The stix-shifter SecurityAlert rows, and an incident that groups two
	// of them (in the second workspace: triage is tenant-wide).
	raw, err := os.ReadFile(samples.Path(t, "securityalert_rows_stix-shifter.json"))
	if err != nil {
		t.Fatal(err)
	}
	var alertRows []Row
	if err := json.Unmarshal(raw, &alertRows); err != nil {
		t.Fatal(err)
	}
	if err := f.e.AddRows(ContosoTenantID, ContosoWorkspace2ID, "SecurityAlert", alertRows, time.Time{}); err != nil {
		t.Fatal(err)
	}
	ids := []any{alertRows[1]["SystemAlertId"], alertRows[2]["SystemAlertId"]}
	f.e.AddIncident(ContosoTenantID, ContosoWorkspace2ID, Row{"IncidentName": "6f7e4b5c-1d2e-4f3a-8b9c-0a1b2c3d4e5f", "Title": "Mining and PowerShell",
		"Severity": "High", "Status": "New", "AlertIds": ids}, time.Time{})
	cs, _ := f.triageSession(t, ContosoTenantID)

	all := values(t, triageJSON(t, cs, ToolListIncidents, map[string]any{"top": 100}))
	var graphInc, armInc map[string]any
	for _, inc := range all {
		switch inc["id"] {
		case "2972395":
			graphInc = inc
		case "3177": // the ARM example's incidentNumber (a Sentinel-provided incident)
			armInc = inc
		}
	}
	// Loading maps Graph "active" to Sentinel "Active", which Defender
	// shows as "inProgress".
	if graphInc == nil || !strings.HasPrefix(graphInc["displayName"].(string), "Multi-stage incident") ||
		graphInc["status"] != "inProgress" || graphInc["classification"] != "truePositive" || graphInc["assignedTo"] != "KaiC@contoso.onmicrosoft.com" {
		t.Fatalf("Graph sample incident: %v", graphInc)
	}
	if armInc == nil || armInc["severity"] != "high" || armInc["status"] != "resolved" || armInc["classification"] != "falsePositive" {
		t.Fatalf("ARM sample incident: %v", armInc)
	}

	// The alert built from the Defender for Cloud sample row.
	a := triageJSON(t, cs, ToolGetAlertByID, map[string]any{"AlertID": ids[0]})
	if a["title"] != alertRows[1]["DisplayName"] || a["severity"] != "high" || a["serviceSource"] != "microsoftDefenderForCloud" || a["category"] != "Execution" {
		t.Fatalf("alert from SecurityAlert row: %v", a)
	}
	ev, _ := json.Marshal(a["evidence"])
	if !strings.Contains(string(ev), "Sample-VM") {
		t.Errorf("evidence lacks the row's host entity: %s", ev)
	}
	// The MDATP row names an account; the incident lists both alerts.
	inc := triageJSON(t, cs, ToolGetIncidentByID, map[string]any{"incidentID": "6f7e4b5c-1d2e-4f3a-8b9c-0a1b2c3d4e5f", "includeAlertsData": true})
	if alerts := inc["alerts"].([]any); len(alerts) != 2 {
		t.Fatalf("incident alerts: %v", alerts)
	}
	code, _ := triageError(t, cs, ToolGetAlertByID, map[string]any{"AlertID": "da000000000000000000_1"})
	if code != "NotFound" {
		t.Errorf("unknown alert: %s", code)
	}
}

func TestTriageEntityLookups(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// A demo incident that names a device, a user and an address.
	row := DemoIncident(ContosoTenantID, 1, f.clock.Now().Add(-time.Hour)) // PowerShell download cradle
	f.e.AddIncident(ContosoTenantID, ContosoWorkspaceID, row, time.Time{})
	cs, _ := f.triageSession(t, ContosoTenantID)

	inc := values(t, triageJSON(t, cs, ToolListIncidents, map[string]any{"includeAlertsData": true}))[0]
	alert := inc["alerts"].([]any)[0].(map[string]any)
	alertID := alert["id"].(string)
	var deviceID, upn, sha256 string
	for _, e := range alert["evidence"].([]any) {
		em := e.(map[string]any)
		switch em["@odata.type"] {
		case "#microsoft.graph.security.deviceEvidence":
			deviceID = em["mdeDeviceId"].(string)
		case "#microsoft.graph.security.userEvidence":
			upn = em["userAccount"].(map[string]any)["userPrincipalName"].(string)
		case "#microsoft.graph.security.fileEvidence":
			sha256 = em["fileDetails"].(map[string]any)["sha256"].(string)
		}
	}
	if deviceID == "" || upn == "" || sha256 == "" {
		t.Fatalf("evidence lacks a device, user or file: %v", alert["evidence"])
	}
	hasAlert := func(tool string, args map[string]any) {
		t.Helper()
		for _, a := range values(t, triageJSON(t, cs, tool, args)) {
			if a["id"] == alertID {
				return
			}
		}
		t.Errorf("%s(%v) does not list alert %s", tool, args, alertID)
	}

	m := triageJSON(t, cs, ToolGetDefenderMachine, map[string]any{"ID": deviceID})
	if m["id"] != deviceID || m["computerDnsName"] == nil || m["osPlatform"] == nil {
		t.Fatalf("machine: %v", m)
	}
	byName := triageJSON(t, cs, ToolGetDefenderMachine, map[string]any{"ID": strings.Split(m["computerDnsName"].(string), ".")[0]})
	if byName["id"] != deviceID {
		t.Errorf("machine by computer name: %v", byName["id"])
	}
	hasAlert(ToolGetDefenderMachineAlerts, map[string]any{"ID": deviceID})
	hasAlert(ToolListUserRelatedAlerts, map[string]any{"ID": upn})
	hasAlert(ToolGetDefenderFileAlerts, map[string]any{"fileHash": sha256})

	users := values(t, triageJSON(t, cs, ToolGetDefenderMachineLoggedOnUsers, map[string]any{"ID": deviceID}))
	if len(users) == 0 || users[0]["accountSid"] == nil {
		t.Errorf("logged on users: %v", users)
	}
	vulns := values(t, triageJSON(t, cs, ToolGetDefenderMachineVulnerabilities, map[string]any{"ID": deviceID}))
	if len(vulns) == 0 || !strings.HasPrefix(vulns[0]["id"].(string), "CVE-") {
		t.Errorf("vulnerabilities: %v", vulns)
	}
	machines := values(t, triageJSON(t, cs, ToolListUserRelatedMachines, map[string]any{"ID": upn}))
	found := false
	for _, um := range machines {
		found = found || um["id"] == deviceID
	}
	if !found {
		t.Errorf("ListUserRelatedMachines(%s) lacks %s: %v", upn, deviceID, machines)
	}
	// Account name alone works too.
	if again := values(t, triageJSON(t, cs, ToolListUserRelatedMachines, map[string]any{"ID": strings.Split(upn, "@")[0]})); len(again) != len(machines) {
		t.Errorf("by account name: %d machines, by UPN %d", len(again), len(machines))
	}

	info := triageJSON(t, cs, ToolGetDefenderFileInfo, map[string]any{"fileHash": sha256})
	if info["sha256"] != sha256 || info["determinationType"] == nil {
		t.Errorf("file info: %v", info)
	}
	// The Graph documentation's MsSense.exe, by SHA-1.
	ms := triageJSON(t, cs, ToolGetDefenderFileStatistics, map[string]any{"fileHash": "5F1E8ACEDC065031AAD553B710838EB366CFEE9A"})
	if ms["sha1"] != "5f1e8acedc065031aad553b710838eb366cfee9a" || ms["orgPrevalence"] == "0" {
		t.Errorf("MsSense.exe statistics: %v", ms)
	}
	if rel := values(t, triageJSON(t, cs, ToolGetDefenderFileRelatedMachines, map[string]any{"fileHash": "5f1e8acedc065031aad553b710838eb366cfee9a"})); len(rel) < 2 {
		t.Errorf("MsSense.exe machines: %d", len(rel))
	}
	if code, _ := triageError(t, cs, ToolGetDefenderFileInfo, map[string]any{"fileHash": strings.Repeat("0", 64)}); code != "NotFound" {
		t.Errorf("unknown file: %s", code)
	}

	ipStats := triageJSON(t, cs, ToolGetDefenderIPStatistics, map[string]any{"ipAddress": "203.0.113.45"})
	if ipStats["orgPrevalence"] == "0" || ipStats["orgLastSeen"] == nil {
		t.Errorf("ip statistics: %v", ipStats)
	}
	internal := m["lastIpAddress"].(string)
	hasAlert(ToolGetDefenderIPAlerts, map[string]any{"ipAddress": internal})
	found2 := values(t, triageJSON(t, cs, ToolFindDefenderMachineByIP, map[string]any{"ipAddress": internal, "timestamp": f.clock.Now().Add(-time.Hour).Format(time.RFC3339)}))
	if len(found2) != 1 || found2[0]["id"] != deviceID {
		t.Errorf("FindDefenderMachineByIp(%s): %v", internal, found2)
	}
	if code, _ := triageError(t, cs, ToolGetDefenderMachine, map[string]any{"ID": "no-such-host"}); code != "NotFound" {
		t.Errorf("unknown machine: %s", code)
	}
	if code, _ := triageError(t, cs, ToolListUserRelatedAlerts, map[string]any{"ID": "nobody@contoso.onmicrosoft.com"}); code != "NotFound" {
		t.Errorf("unknown user: %s", code)
	}
}

func TestTriageAdvancedHunting(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seedTriage(t, f)
	// An event planted in a workspace table joins the generated ones.
	if err := f.e.AddRows(ContosoTenantID, ContosoWorkspaceID, "DeviceNetworkEvents", []Row{{
		"Timestamp": f.clock.Now().Add(-time.Minute), "DeviceName": "planted-host", "RemoteIP": "192.0.2.99", "RemotePort": 8443, "ActionType": "ConnectionSuccess",
	}}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	cs, _ := f.triageSession(t, ContosoTenantID)

	res := triageJSON(t, cs, ToolRunAdvancedHuntingQuery, map[string]any{
		"kqlQuery": "DeviceProcessEvents | where FileName == 'update.ps1' | project Timestamp, DeviceName, SHA256, ProcessCommandLine"})
	schema := res["schema"].([]any)
	results := res["results"].([]any)
	if len(schema) != 4 || schema[0].(map[string]any)["type"] != "DateTime" || len(results) == 0 {
		t.Fatalf("hunting result: %v", res)
	}
	if r := results[0].(map[string]any); !strings.Contains(r["ProcessCommandLine"].(string), "update.ps1") {
		t.Errorf("row %v", r)
	}
	planted := triageJSON(t, cs, ToolRunAdvancedHuntingQuery, map[string]any{"kqlQuery": "DeviceNetworkEvents | where RemoteIP == '192.0.2.99'"})
	if n := len(planted["results"].([]any)); n != 1 {
		t.Errorf("planted event: %d rows", n)
	}
	// AlertInfo holds the same alerts as ListAlerts.
	count := triageJSON(t, cs, ToolRunAdvancedHuntingQuery, map[string]any{"kqlQuery": "AlertInfo | count"})
	alerts := triageJSON(t, cs, ToolListAlerts, map[string]any{})
	if got := count["results"].([]any)[0].(map[string]any)["Count"]; got != alerts["@odata.count"] {
		t.Errorf("AlertInfo count %v, ListAlerts %v", got, alerts["@odata.count"])
	}
	// now() follows timestamp.
	past := triageJSON(t, cs, ToolRunAdvancedHuntingQuery, map[string]any{
		"kqlQuery": "DeviceInfo | where Timestamp between (ago(1d) .. now()) | count", "timestamp": "2020-01-01T00:00:00Z"})
	if got := past["results"].([]any)[0].(map[string]any)["Count"]; got != float64(0) {
		t.Errorf("count relative to 2020: %v", got)
	}
	if code, msg := triageError(t, cs, ToolRunAdvancedHuntingQuery, map[string]any{"kqlQuery": "NoSuchTable | take 1"}); code != "BadRequest" || !strings.Contains(msg, "NoSuchTable") {
		t.Errorf("unknown table: %s %s", code, msg)
	}
	if code, _ := triageError(t, cs, ToolRunAdvancedHuntingQuery, map[string]any{"kqlQuery": "AlertInfo | take 1 " + strings.Repeat(" ", 800)}); code != "BadRequest" {
		t.Errorf("long query: %s", code)
	}

	over := triageJSON(t, cs, ToolFetchAdvancedHuntingTablesOverview, map[string]any{})
	if n := len(over["tables"].([]any)); n != len(huntingTables) {
		t.Errorf("overview: %d tables", n)
	}
	detail := triageJSON(t, cs, ToolFetchAdvancedHuntingTablesDetailedSchema, map[string]any{"tableNames": []string{"DeviceProcessEvents", "Nope"}})
	tables := detail["tables"].([]any)
	if len(tables) != 1 || detail["unknownTables"].([]any)[0] != "Nope" {
		t.Fatalf("detailed schema: %v", detail)
	}
	cols := tables[0].(map[string]any)["columns"].([]any)
	if c := cols[0].(map[string]any); c["name"] != "Timestamp" || c["description"] == "" {
		t.Errorf("first column: %v", c)
	}
}

func TestTriageTenantsAreSeparate(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rows := seedTriage(t, f)
	fab, _ := f.triageSession(t, FabrikamTenantID)
	if got := values(t, triageJSON(t, fab, ToolListIncidents, map[string]any{})); len(got) != 0 {
		t.Fatalf("Fabrikam sees %d Contoso incidents", len(got))
	}
	if code, _ := triageError(t, fab, ToolGetIncidentByID, map[string]any{"incidentID": rows[0]["IncidentName"]}); code != "NotFound" {
		t.Errorf("Fabrikam reads a Contoso incident: %s", code)
	}
	con, _ := f.triageSession(t, ContosoTenantID)
	mc := triageJSON(t, con, ToolGetDefenderMachine, map[string]any{"ID": "fin-sql-01"})
	mf := triageJSON(t, fab, ToolGetDefenderMachine, map[string]any{"ID": "fin-sql-01"})
	if mc["id"] == mf["id"] {
		t.Error("two tenants share a device id")
	}
}

func TestTriageFaultsAndStats(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seedTriage(t, f)
	cs, rec := f.triageSession(t, ContosoTenantID)
	f.e.SetFault(Fault{TenantID: ContosoTenantID, Target: ToolListIncidents, Kind: FaultThrottle, RetryAfter: 12 * time.Second, Count: 1})
	if _, isErr := callText(t, cs, ToolGetDefenderMachine, map[string]any{"ID": "fin-sql-01"}); isErr {
		t.Fatal("another tool was throttled")
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: ToolListIncidents, Arguments: map[string]any{}}); err == nil {
		t.Fatal("ListIncidents succeeded despite the throttle fault")
	}
	rec.mu.Lock()
	status, retry := rec.status, rec.retry
	rec.mu.Unlock()
	if status != http.StatusTooManyRequests || retry != "12" {
		t.Errorf("HTTP %d Retry-After %q", status, retry)
	}
	triageJSON(t, cs, ToolListIncidents, map[string]any{}) // the fault was used up
	st := f.e.Stats().Tenant(ContosoTenantID)
	if st.Tools[ToolListIncidents].Count != 2 || st.Tools[ToolGetDefenderMachine].Count != 1 || st.Endpoints[EndpointTriage].Count == 0 {
		t.Errorf("stats: tools %v endpoints %v", st.Tools, st.Endpoints)
	}
}
