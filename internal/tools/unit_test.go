package tools

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestCatalogHasMicrosoftsToolsWithSchemas(t *testing.T) {
	t.Parallel()
	// MICROSOFT.md §3, names exactly as Microsoft spells them.
	wantTriage := []string{"ListIncidents", "GetIncidentById", "ListAlerts", "GetAlertByID", "RunAdvancedHuntingQuery",
		"FetchAdvancedHuntingTablesOverview", "FetchAdvancedHuntingTablesDetailedSchema", "GetDefenderFileInfo",
		"GetDefenderFileStatistics", "GetDefenderFileAlerts", "GetDefenderFileRelatedMachines", "GetDefenderIpAlerts",
		"GetDefenderIpStatistics", "FindDefenderMachineByIp", "GetDefenderMachine", "GetDefenderMachineAlerts",
		"GetDefenderMachineLoggedOnUsers", "GetDefenderMachineVulnerabilities", "ListUserRelatedAlerts", "ListUserRelatedMachines"}
	wantLake := []string{"query_lake", "search_tables", "list_sentinel_workspaces"}
	for _, tc := range []struct {
		toolset string
		want    []string
	}{{ToolsetTriage, wantTriage}, {ToolsetDataLake, wantLake}} {
		ts, ok := ToolsetByID(tc.toolset)
		if !ok {
			t.Fatalf("no toolset %s", tc.toolset)
		}
		var got []string
		for _, tl := range ts.Tools {
			got = append(got, tl.Name)
			var schema struct {
				Type                 string                    `json:"type"`
				Properties           map[string]map[string]any `json:"properties"`
				Required             []string                  `json:"required"`
				AdditionalProperties bool                      `json:"additionalProperties"`
			}
			if err := json.Unmarshal(tl.InputSchema(), &schema); err != nil || schema.Type != "object" || schema.AdditionalProperties {
				t.Errorf("%s: schema %s", tl.Name, tl.InputSchema())
			}
			for _, r := range schema.Required {
				if schema.Properties[r] == nil {
					t.Errorf("%s: required %s has no property", tl.Name, r)
				}
			}
			for name, p := range schema.Properties {
				if p["description"] == "" || p["type"] == nil {
					t.Errorf("%s.%s: %v", tl.Name, name, p)
				}
			}
			if tl.Description == "" || tl.Title == "" || tl.Toolset != tc.toolset {
				t.Errorf("%s: %+v", tl.Name, tl)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s tools %v\nwant %v", tc.toolset, got, tc.want)
		}
	}
	ts, _ := ToolByName("FindDefenderMachineByIp")
	if !strings.Contains(string(ts.InputSchema()), `"required":["ipAddress","timestamp"]`) {
		t.Errorf("FindDefenderMachineByIp schema: %s", ts.InputSchema())
	}
}

func TestValidateArguments(t *testing.T) {
	t.Parallel()
	sha1 := "5f1e8acedc065031aad553b710838eb366cfee9a"
	tests := []struct {
		tool, args string
		field      string         // "" = valid
		want       map[string]any // the arguments sent on, when valid
	}{
		{"GetDefenderFileInfo", `{"fileHash":"` + strings.ToUpper(sha1) + `"}`, "", map[string]any{"fileHash": sha1}},
		{"GetDefenderFileInfo", `{"fileHash":"` + strings.Repeat("ab", 16) + `"}`, "", map[string]any{"fileHash": strings.Repeat("ab", 16)}},
		{"GetDefenderFileInfo", `{"fileHash":"` + strings.Repeat("ab", 32) + `"}`, "", map[string]any{"fileHash": strings.Repeat("ab", 32)}},
		{"GetDefenderFileInfo", `{"fileHash":"` + strings.Repeat("ab", 24) + `"}`, "fileHash", nil},
		{"GetDefenderFileInfo", `{"fileHash":"` + strings.Repeat("g", 40) + `"}`, "fileHash", nil},
		{"GetDefenderFileInfo", `{}`, "fileHash", nil},
		{"GetDefenderFileInfo", `{"fileHash":null}`, "fileHash", nil},
		{"GetDefenderFileInfo", `{"fileHash":40}`, "fileHash", nil},
		{"GetDefenderIpAlerts", `{"ipAddress":" 2001:DB8::1 "}`, "", map[string]any{"ipAddress": "2001:db8::1"}},
		{"GetDefenderIpAlerts", `{"ipAddress":"::ffff:10.0.0.1"}`, "", map[string]any{"ipAddress": "10.0.0.1"}},
		{"GetDefenderIpAlerts", `{"ipAddress":"10.0.0.256"}`, "ipAddress", nil},
		{"GetDefenderIpAlerts", `{"ipAddress":"fe80::1%eth0"}`, "ipAddress", nil},
		{"GetDefenderIpAlerts", `{"ipAddress":"contoso.com"}`, "ipAddress", nil},
		{"RunAdvancedHuntingQuery", `{"kqlQuery":"` + strings.Repeat("a", 800) + `"}`, "", map[string]any{"kqlQuery": strings.Repeat("a", 800)}},
		{"RunAdvancedHuntingQuery", `{"kqlQuery":"` + strings.Repeat("é", 800) + `"}`, "", map[string]any{"kqlQuery": strings.Repeat("é", 800)}},
		{"RunAdvancedHuntingQuery", `{"kqlQuery":"` + strings.Repeat("a", 801) + `"}`, "kqlQuery", nil},
		{"RunAdvancedHuntingQuery", `{"kqlQuery":"AlertInfo","timestamp":"2024-06-21 08:00:00"}`, "", map[string]any{"kqlQuery": "AlertInfo", "timestamp": "2024-06-21T08:00:00Z"}},
		{"RunAdvancedHuntingQuery", `{"kqlQuery":"AlertInfo","timestamp":"2024-06-21T10:00:00+02:00"}`, "", map[string]any{"kqlQuery": "AlertInfo", "timestamp": "2024-06-21T08:00:00Z"}},
		{"RunAdvancedHuntingQuery", `{"kqlQuery":"AlertInfo","timestamp":"21/06/2024"}`, "timestamp", nil},
		{"ListIncidents", `{"top":100,"skip":0,"Severity":"High","Status":"INPROGRESS","orderBy":"severity  ASC","includeAlertsData":true}`, "",
			map[string]any{"top": 100, "skip": 0, "Severity": "high", "Status": "inProgress", "orderBy": "severity asc", "includeAlertsData": true}},
		{"ListIncidents", `{"top":2.5}`, "top", nil},
		{"ListIncidents", `{"top":"ten"}`, "top", nil},
		{"ListIncidents", `{"skip":100001}`, "skip", nil},
		{"ListIncidents", `{"includeAlertsData":"yes"}`, "includeAlertsData", nil},
		{"ListIncidents", `{"orderBy":"title"}`, "orderBy", nil},
		{"ListIncidents", `{"Search":"a\u0007b"}`, "Search", nil},
		{"ListIncidents", `{"Search":"` + strings.Repeat("x", 257) + `"}`, "Search", nil},
		{"ListIncidents", `{"Search":"  "}`, "", map[string]any{}},
		{"ListIncidents", `{"createdAfter":"2024-06-21","createdBefore":"2024-06-21"}`, "createdAfter", nil},
		{"ListIncidents", `{"Top":5}`, "Top", nil},
		{"ListIncidents", `[]`, "", nil},
		{"ListAlerts", `{"status":"New"}`, "", map[string]any{"status": "new"}},
		{"ListAlerts", `{"status":"active"}`, "status", nil},
		{"GetIncidentById", `{"incidentID":"6D1666F0-882C-5C17-AF01-ACBAC7376824"}`, "", map[string]any{"incidentID": "6d1666f0-882c-5c17-af01-acbac7376824"}},
		{"GetIncidentById", `{"incidentID":3177}`, "", map[string]any{"incidentID": "3177"}},
		{"GetIncidentById", `{"incidentID":"3177","includeAlertsData":false}`, "", map[string]any{"incidentID": "3177", "includeAlertsData": false}},
		{"GetIncidentById", `{"incidentID":"-1"}`, "incidentID", nil},
		{"GetIncidentById", `{"incidentID":"12345678901234567890"}`, "incidentID", nil},
		{"GetAlertByID", `{"AlertID":"da637551227677560813_-961444813"}`, "", map[string]any{"AlertID": "da637551227677560813_-961444813"}},
		{"GetAlertByID", `{"AlertID":"da6375'; drop"}`, "AlertID", nil},
		{"GetDefenderMachine", `{"ID":"fin-sql-01.contoso.local"}`, "", map[string]any{"ID": "fin-sql-01.contoso.local"}},
		{"GetDefenderMachine", `{"ID":"fin sql"}`, "ID", nil},
		{"ListUserRelatedMachines", `{"ID":"CONTOSO\\megan.bowen"}`, "", map[string]any{"ID": `CONTOSO\megan.bowen`}},
		{"ListUserRelatedMachines", `{"ID":"S-1-5-21-1-2-3-1104"}`, "", map[string]any{"ID": "S-1-5-21-1-2-3-1104"}},
		{"ListUserRelatedMachines", `{"ID":"megan bowen"}`, "ID", nil},
		{"FetchAdvancedHuntingTablesOverview", `{}`, "", map[string]any{}},
		{"FetchAdvancedHuntingTablesOverview", `{"tableNames":"DeviceInfo, AlertInfo"}`, "", map[string]any{"tableNames": []string{"DeviceInfo", "AlertInfo"}}},
		{"FetchAdvancedHuntingTablesDetailedSchema", `{"tableNames":[]}`, "tableNames", nil},
		{"FetchAdvancedHuntingTablesDetailedSchema", `{"tableNames":["A","B","C","D","E","F","G","H","I","J","K","L","M","N","O","P","Q","R","S","T","U"]}`, "tableNames", nil},
		{"query_lake", `{"query":"SigninLogs","workspaceId":"C91598D6-F3A4-4078-B4B8-B71506369DEA"}`, "", map[string]any{"query": "SigninLogs", "workspaceId": "c91598d6-f3a4-4078-b4b8-b71506369dea"}},
		{"query_lake", `{"query":"a\u0000b"}`, "query", nil},
		{"search_tables", `{}`, "query", nil},
		{"list_sentinel_workspaces", `{}`, "", map[string]any{}},
		{"list_sentinel_workspaces", ``, "", map[string]any{}},
		{"list_sentinel_workspaces", `{"workspaceId":"x"}`, "workspaceId", nil},
	}
	for _, tc := range tests {
		t.Run(tc.tool+" "+clip(tc.args, 60), func(t *testing.T) {
			tl, ok := ToolByName(tc.tool)
			if !ok {
				t.Fatalf("no tool %s", tc.tool)
			}
			got, err := tl.validate(json.RawMessage(tc.args))
			if tc.args == `[]` {
				if err == nil || err.Code != CodeInvalidArgument {
					t.Fatalf("a JSON array was accepted: %v", got)
				}
				return
			}
			switch {
			case tc.field != "" && err == nil:
				t.Fatalf("accepted: %v", got)
			case tc.field != "" && (err.Field != tc.field || err.Code != CodeInvalidArgument || err.Message == ""):
				t.Fatalf("error %+v, want invalid_argument on %s", err, tc.field)
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field == "" && fmt.Sprint(got) != fmt.Sprint(tc.want):
				t.Fatalf("sent %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	jwt := "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJhdWQiOiJhcGk6Ly94In0.MEUCIQDx7yH8lq4v1eYt3h0nT2Gm9UQX"
	tests := []struct {
		name, in, want string
	}{
		{"secret-named keys", `{"apiKey":"abc","client_secret":"s3cr3t","Password":"p","accessToken":"t","x-api-key":"k","authorization":"Basic x","sig":"zz","keywords":"kept"}`,
			`{"Password":"[redacted]","accessToken":"[redacted]","apiKey":"[redacted]","authorization":"[redacted]","client_secret":"[redacted]","keywords":"kept","sig":"[redacted]","x-api-key":"[redacted]"}`},
		{"nested", `{"options":{"refresh_token":"r","depth":2},"list":[{"password":"p"}]}`,
			`{"list":[{"password":"[redacted]"}],"options":{"depth":2,"refresh_token":"[redacted]"}}`},
		{"JWT inside KQL", `{"query":"SigninLogs | where Token == '` + jwt + `'"}`,
			`{"query":"SigninLogs | where Token == '[redacted]'"}`},
		{"bearer", `{"query":"note: Bearer abc.def-ghi"}`, `{"query":"note: Bearer [redacted]"}`},
		{"random strings", `{"a":"clr_xN3kQ8vZp2LmR7tY4wB9cD1eF6gH0jKsUaVb","b":"AKIAX7Q2LM9P4R8TZ3VW KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}`,
			`{"a":"[redacted]","b":"AKIAX7Q2LM9P4R8TZ3VW [redacted]"}`},
		{"kept: hashes, GUIDs, ids, names, words", `{"h":"8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec","H":"5F1E8ACEDC065031AAD553B710838EB366CFEE9A","g":"6D1666F0-882C-5C17-AF01-ACBAC7376824","m":"73e7e2de709dff64ef64b1d0c30e67fab63279db","t":"DeviceProcessEvents_AlertEvidence_IdentityLogonEvents","c":"InitiatingProcessParentFileName2024","u":"megan.bowen@contoso.onmicrosoft.com","a":"da637551227677560813_-961444813"}`,
			`{"H":"5F1E8ACEDC065031AAD553B710838EB366CFEE9A","a":"da637551227677560813_-961444813","c":"InitiatingProcessParentFileName2024","g":"6D1666F0-882C-5C17-AF01-ACBAC7376824","h":"8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec","m":"73e7e2de709dff64ef64b1d0c30e67fab63279db","t":"DeviceProcessEvents_AlertEvidence_IdentityLogonEvents","u":"megan.bowen@contoso.onmicrosoft.com"}`},
		{"numbers stay numbers", `{"top":5,"skip":1e2}`, `{"skip":1e2,"top":5}`},
		{"empty", ``, `{}`},
		{"not JSON", `{"query": "x" eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.c2ln`, `"{\"query\": \"x\" [redacted]"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RedactArguments(json.RawMessage(tc.in)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestCapResult(t *testing.T) {
	t.Parallel()
	rows := func(n int) string {
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf(`["row %d",%d]`, i, i))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	t.Run("fits: unchanged bytes", func(t *testing.T) {
		in := `{"tables":[{"name":"PrimaryResult","columns":[{"name":"a","type":"string"}],"rows":` + rows(3) + `}]}`
		out, cut := capResult([]byte(in), Limits{MaxItems: 3})
		if cut || string(out) != in {
			t.Fatalf("changed: %s", out)
		}
	})
	t.Run("rows over MaxItems, key order kept", func(t *testing.T) {
		in := `{"tables":[{"name":"PrimaryResult","columns":[{"name":"a","type":"string"},{"name":"b","type":"long"}],"rows":` + rows(10) + `}]}`
		out, cut := capResult([]byte(in), Limits{MaxItems: 4})
		if !cut || !strings.HasPrefix(string(out), `{"tables":[{"name":"PrimaryResult","columns":[{"name":"a","type":"string"},{"name":"b","type":"long"}],"rows":[["row 0",0],`) ||
			!strings.Contains(string(out), `"truncated":true,"note":"Clarion capped this answer (at most 4 items per list and 262144 bytes): tables[0].rows holds 4 of 10 items.`) ||
			!strings.HasSuffix(string(out), `"truncation":[{"path":"tables[0].rows","returned":4,"total":10}]}`) {
			t.Fatalf("%s", out)
		}
	})
	t.Run("columns are never cut", func(t *testing.T) {
		var cols []string
		for i := range 6 {
			cols = append(cols, fmt.Sprintf(`{"name":"c%d"}`, i))
		}
		in := `{"tables":[{"columns":[` + strings.Join(cols, ",") + `],"rows":[]}]}`
		if out, cut := capResult([]byte(in), Limits{MaxItems: 2}); cut {
			t.Fatalf("cut the columns: %s", out)
		}
	})
	t.Run("over MaxBytes: lists halved", func(t *testing.T) {
		var items []string
		for i := range 100 {
			items = append(items, fmt.Sprintf(`{"id":%d,"text":"%s"}`, i, strings.Repeat("x", 100)))
		}
		in := `{"value":[` + strings.Join(items, ",") + `]}`
		out, capped := capResult([]byte(in), Limits{MaxItems: 1000, MaxBytes: 4096})
		var got struct {
			Value      []any
			Truncated  bool
			Truncation []cut
		}
		if err := json.Unmarshal(out, &got); err != nil || !capped || len(out) > 4096 || !got.Truncated ||
			got.Truncation[0].Total != 100 || got.Truncation[0].Returned != len(got.Value) || len(got.Value) < 10 {
			t.Fatalf("%d bytes, %+v (%v)", len(out), got, err)
		}
	})
	t.Run("array root is wrapped", func(t *testing.T) {
		out, cut := capResult([]byte(`[1,2,3,4,5]`), Limits{MaxItems: 2})
		// A bare array is not a list under a key: only the byte limit
		// applies to it.
		if cut || string(out) != `[1,2,3,4,5]` {
			t.Fatalf("%s", out)
		}
		out, cut = capResult([]byte(`[`+strings.Repeat(`"`+strings.Repeat("y", 3000)+`",`, 5)+`"z"]`), Limits{MaxBytes: 2048, MaxText: 100})
		if !cut || !strings.HasPrefix(string(out), `{"result":[`) || !strings.Contains(string(out), `"truncated":true`) || len(out) > 2048 {
			t.Fatalf("%d bytes: %.200s", len(out), out)
		}
	})
	t.Run("one huge text", func(t *testing.T) {
		in := `{"description":"` + strings.Repeat("é", 5000) + `"}`
		out, cut := capResult([]byte(in), Limits{MaxBytes: 4096, MaxText: 100})
		if !cut || !strings.Contains(string(out), "texts longer than 100 characters were cut") || len(out) > 4096 {
			t.Fatalf("%d bytes: %.200s", len(out), out)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		out, cut := capResult([]byte(strings.Repeat("plain text ", 1000)), Limits{MaxBytes: 2000})
		if !cut || !json.Valid(out) || !strings.Contains(string(out), `"truncated":true`) {
			t.Fatalf("%.200s", out)
		}
	})
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	e := throttled(0, "Microsoft is throttling")
	if e.RetryAfter <= 0 || !strings.Contains(e.Text(), "Error code: throttled. Retry after 30 seconds.") || e.HTTPStatus() != 429 {
		t.Fatalf("%+v %q", e, e.Text())
	}
	for _, w := range []string{"Triage", "tRiage-2", " triage "} {
		if n, err := NormalizeSkillName(w); err != nil || n != strings.ToLower(strings.TrimSpace(w)) {
			t.Errorf("NormalizeSkillName(%q) = %q, %v", w, n, err)
		}
	}
	for _, b := range []string{"", "-x", "a b", "a/b", strings.Repeat("a", 65), "é"} {
		if _, err := NormalizeSkillName(b); err == nil {
			t.Errorf("NormalizeSkillName(%q) accepted", b)
		}
	}
}

// capSeeds are answers near every edge of the fast path: lists at and over
// the limit, characters that grow when encoded again, escapes, invalid
// UTF-8, arrays the slow path never cuts, and text that is not JSON.
var capSeeds = []string{
	`{"value":[1,2,3]}`,
	`{"value":[1,2,3,4]}`,
	`{"value":[[1,2,3,4]]}`,
	`{"columns":[1,2,3,4],"rows":[]}`,
	`[1,2,3,4,5]`,
	`{"a":"<<<<<<<<<<>>>>>>>>>>&&&&&&&&&&"}`,
	`{"a":"\b\f\n\r\t\"\\\/\u0000\u003c\u2028\ud83d\ude00\ud800"}`,
	"{\"a\":\"\xff\xfe\xe2\x80\xa8 caf\xc3\xa9\"}",
	`{"a":"x,y,z,[,],{,}","b":[",",",",","]}`,
	`{"a": [ 1 , 2 ] , "b" : { "c" : [ ] } }`,
	`{"a":1}{"b":2}`,
	`{"a":`,
	`plain text, [1,2,3,4]`,
	`"just a string"`,
	`{"a":{"a":{"a":[{"b":[1,2,3]},{"b":[]}]}}}`,
}

// capLimits are tight limits, so that the seeds cross them.
var capLimits = []Limits{
	{MaxItems: 3, MaxBytes: 1024 + 40, MaxText: 5},
	{MaxItems: 3, MaxBytes: 1024 + 120, MaxText: 5},
	{MaxItems: 1000, MaxBytes: 1024 + 200, MaxText: 1000},
	{},
}

// checkFastPath fails when the fast path keeps an answer the slow path
// would change.
func checkFastPath(t *testing.T, data []byte) {
	for _, lim := range capLimits {
		lim = lim.withDefaults()
		if !fitsUncapped(data, lim) {
			continue
		}
		if out, cut := capDecoded(data, lim); cut || string(out) != string(data) {
			t.Fatalf("limits %+v: fast path keeps %q, the slow path gives %q (cut %v)", lim, data, out, cut)
		}
	}
}

func TestCapResultFastPathAgreesWithTheSlowPath(t *testing.T) {
	t.Parallel()
	for _, s := range capSeeds {
		checkFastPath(t, []byte(s))
	}
	// The fast path is taken for answers that fit, and not for one that
	// does not.
	if !fitsUncapped([]byte(`{"value":[1,2,3]}`), Limits{MaxItems: 3}.withDefaults()) {
		t.Error("a small answer goes the slow way")
	}
	if fitsUncapped([]byte(`{"value":[1,2,3,4]}`), Limits{MaxItems: 3}.withDefaults()) {
		t.Error("a list over MaxItems takes the fast path")
	}
	// Random answers built from the seeds' pieces.
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{`1`, `"<&>"`, `"\u2028"`, "\"\xff\"", `"é"`, `"\b"`, `null`, `"a,b"`, `[]`, `{}`}
	var gen func(depth int) string
	gen = func(depth int) string {
		if depth == 0 || rng.IntN(3) == 0 {
			return pieces[rng.IntN(len(pieces))]
		}
		n := rng.IntN(6)
		var parts []string
		if rng.IntN(2) == 0 {
			for range n {
				parts = append(parts, gen(depth-1))
			}
			return "[" + strings.Join(parts, ",") + "]"
		}
		keys := []string{"value", "rows", "columns", "a"}
		for i := range n {
			parts = append(parts, fmt.Sprintf(`"%s%d":%s`, keys[rng.IntN(len(keys))], i, gen(depth-1)))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	for range 3000 {
		checkFastPath(t, []byte(gen(4)))
	}
}

func FuzzCapResultFastPath(f *testing.F) {
	for _, s := range capSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkFastPath(t, data) })
}
