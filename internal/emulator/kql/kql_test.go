package kql

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2024, 6, 21, 2, 0, 0, 0, time.UTC)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := ParseDatetime(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// incidents builds a small SecurityIncident-like table.
func incidents(t *testing.T) *Table {
	t.Helper()
	cols := []Column{
		{"IncidentName", TypeString}, {"IncidentNumber", TypeInt}, {"Title", TypeString},
		{"Severity", TypeString}, {"Status", TypeString}, {"CreatedTime", TypeDatetime},
		{"LastModifiedTime", TypeDatetime}, {"AdditionalData", TypeDynamic}, {"ClosedTime", TypeDatetime},
	}
	raw := [][]any{
		{"a1", 1, "Brute force on VM01", "High", "New", "2024-06-21T01:06:41.7433333Z", "2024-06-21T01:06:41.7433333Z", `{"alertsCount":2,"tactics":["CredentialAccess"]}`, nil},
		{"b2", 2, "Phishing mail reported", "Medium", "New", "2024-06-21T01:06:41.7433333Z", "2024-06-21T01:06:41.7433333Z", `{"alertsCount":1}`, nil},
		{"a1", 1, "Brute force on VM01", "High", "Active", "2024-06-21T01:06:41.7433333Z", "2024-06-21T01:10:00Z", `{"alertsCount":3}`, nil},
		{"c3", 3, "DLP policy matched", "Low", "Closed", "2024-06-21T01:06:41.7433334Z", "2024-06-21T01:07:00Z", `{}`, "2024-06-21T01:07:00Z"},
		{"d4", 4, "Old incident", "Informational", "New", "2024-06-20T23:00:00Z", "2024-06-20T23:00:00Z", `{}`, nil},
		{"e5", 5, "Suspicious sign-in from O'Brien's device", "High", "New", "2024-06-21T01:30:00.5Z", "2024-06-21T01:30:00.5Z", `{"alertsCount":1}`, nil},
	}
	tbl := &Table{Name: "SecurityIncident", Columns: cols}
	for _, r := range raw {
		row := make([]any, len(r))
		for i, v := range r {
			x, err := ToValue(cols[i].Type, v)
			if err != nil {
				t.Fatal(err)
			}
			row[i] = x
		}
		tbl.Rows = append(tbl.Rows, row)
	}
	return tbl
}

func run(t *testing.T, q string) (*Table, error) {
	t.Helper()
	tbl := incidents(t)
	return Run(q, Options{Now: now, Tables: func(name string) (*Table, bool) {
		if name == "SecurityIncident" {
			return tbl, true
		}
		return nil, false
	}})
}

// column returns the values of one column as text.
func column(t *testing.T, tbl *Table, name string) []string {
	t.Helper()
	i := colIndex(tbl.Columns, name)
	if i < 0 {
		t.Fatalf("no column %q in %v", name, tbl.Columns)
	}
	var out []string
	for _, r := range tbl.Rows {
		out = append(out, toText(r[i]))
	}
	return out
}

func TestQueries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		query string
		col   string
		want  []string
	}{
		{"table only", "SecurityIncident | project IncidentName", "IncidentName", []string{"a1", "b2", "a1", "c3", "d4", "e5"}},
		{"string equality is case-sensitive", "SecurityIncident | where Severity == 'high'", "IncidentName", nil},
		{"=~ ignores case", "SecurityIncident | where Severity =~ 'high' | distinct IncidentName", "IncidentName", []string{"a1", "e5"}},
		{"!~", "SecurityIncident | where Severity !~ 'high' | project IncidentName", "IncidentName", []string{"b2", "c3", "d4"}},
		{"contains ignores case", `SecurityIncident | where Title contains "PHISH" | project IncidentName`, "IncidentName", []string{"b2"}},
		{"!contains", `SecurityIncident | where Title !contains "FORCE" | project IncidentName`, "IncidentName", []string{"b2", "c3", "d4", "e5"}},
		{"quoted column name", `SecurityIncident | where ['Severity'] == "Low" | project IncidentName`, "IncidentName", []string{"c3"}},
		{"has matches whole terms", `SecurityIncident | where Title has "force" | distinct IncidentName`, "IncidentName", []string{"a1"}},
		{"has does not match inside a term", `SecurityIncident | where Title has "forc" | project IncidentName`, "IncidentName", nil},
		{"startswith/endswith", `SecurityIncident | where Title startswith "dlp" or Title endswith "REPORTED" | project IncidentName`, "IncidentName", []string{"b2", "c3"}},
		{"in list", `SecurityIncident | where Severity in ("Low", "Informational") | project IncidentName`, "IncidentName", []string{"c3", "d4"}},
		{"!in list", `SecurityIncident | where Severity !in ("Low", "Informational", "High") | project IncidentName`, "IncidentName", []string{"b2"}},
		{"in~", `SecurityIncident | where Severity in~ ("low") | project IncidentName`, "IncidentName", []string{"c3"}},
		{"escaped quote in string", `SecurityIncident | where Title contains 'O\'Brien' | project IncidentName`, "IncidentName", []string{"e5"}},
		{"double-quoted string with escape", `SecurityIncident | where Title contains "O'Brien\'s" | project IncidentName`, "IncidentName", []string{"e5"}},
		{"verbatim string", `SecurityIncident | where Title contains @"O'Brien" | project IncidentName`, "IncidentName", []string{"e5"}},
		{"not() and parentheses", `SecurityIncident | where not(Severity == "High" or (Status == "New" and IncidentNumber > 3)) | project IncidentName`, "IncidentName", []string{"b2", "c3"}},
		{"integer comparison", `SecurityIncident | where IncidentNumber >= 4 | project IncidentName`, "IncidentName", []string{"d4", "e5"}},
		{"ago", `SecurityIncident | where CreatedTime > ago(1h) | distinct IncidentName`, "IncidentName", []string{"a1", "b2", "c3", "e5"}},
		{"now minus timespan", `SecurityIncident | where CreatedTime < now() - 2h | project IncidentName`, "IncidentName", []string{"d4"}},
		{"datetime with space and offset", `SecurityIncident | where CreatedTime >= datetime(2024-06-21 03:30:00.5+02:00) | project IncidentName`, "IncidentName", []string{"e5"}},
		{"100 ns precision", `SecurityIncident | where CreatedTime > datetime(2024-06-21T01:06:41.7433333Z) | project IncidentName`, "IncidentName", []string{"c3", "e5"}},
		{"datetime equality", `SecurityIncident | where CreatedTime == datetime(2024-06-21T01:06:41.7433333Z) | distinct IncidentName`, "IncidentName", []string{"a1", "b2"}},
		{"isempty isnotempty", `SecurityIncident | where isempty(ClosedTime) and isnotempty(Title) | distinct IncidentName`, "IncidentName", []string{"a1", "b2", "d4", "e5"}},
		{"isnull on datetime", `SecurityIncident | where isnotnull(ClosedTime) | project IncidentName`, "IncidentName", []string{"c3"}},
		{"tolower toupper strlen", `SecurityIncident | where tolower(Severity) == "low" or toupper(Severity) == "INFORMATIONAL" | where strlen(IncidentName) == 2 | project IncidentName`, "IncidentName", []string{"c3", "d4"}},
		{"dynamic member", `SecurityIncident | where toint(AdditionalData.alertsCount) >= 2 | project IncidentName`, "IncidentName", []string{"a1", "a1"}},
		{"dynamic member compared directly", `SecurityIncident | where AdditionalData.alertsCount == 1 | project IncidentName`, "IncidentName", []string{"b2", "e5"}},
		{"dynamic index", `SecurityIncident | where AdditionalData["tactics"][0] == "CredentialAccess" | project IncidentName`, "IncidentName", []string{"a1"}},
		{"extend and project rename", `SecurityIncident | extend Sev = tolower(Severity) | where Sev == "medium" | project Id = IncidentName`, "Id", []string{"b2"}},
		{"order asc", `SecurityIncident | distinct IncidentName | order by IncidentName asc`, "IncidentName", []string{"a1", "b2", "c3", "d4", "e5"}},
		{"order defaults to desc", `SecurityIncident | distinct IncidentName | order by IncidentName`, "IncidentName", []string{"e5", "d4", "c3", "b2", "a1"}},
		{"sort several keys", `SecurityIncident | summarize arg_max(LastModifiedTime, *) by IncidentName | sort by Severity asc, IncidentNumber desc | project IncidentName`, "IncidentName", []string{"e5", "a1", "d4", "c3", "b2"}},
		{"take", `SecurityIncident | project IncidentName | take 2`, "IncidentName", []string{"a1", "b2"}},
		{"limit", `SecurityIncident | project IncidentName | limit 1`, "IncidentName", []string{"a1"}},
		{"top", `SecurityIncident | top 2 by IncidentNumber`, "IncidentName", []string{"e5", "d4"}},
		{"arg_max keeps the latest row", `SecurityIncident | summarize arg_max(LastModifiedTime, *) by IncidentName | where IncidentName == "a1"`, "Status", []string{"Active"}},
		{"count by", `SecurityIncident | summarize count() by Severity | order by Severity asc`, "count_", []string{"3", "1", "1", "1"}},
		{"named count", `SecurityIncident | summarize N = count() by IncidentName | where N > 1`, "IncidentName", []string{"a1"}},
		{"count operator", `SecurityIncident | count`, "Count", []string{"6"}},
		{"comments", "SecurityIncident // all\n| where Severity == 'Low' // low only\n| project IncidentName", "IncidentName", []string{"c3"}},
		{"project-away", `SecurityIncident | project-away AdditionalData, *Time | take 1 | project IncidentName`, "IncidentName", []string{"a1"}},
		{"between datetimes", `SecurityIncident | where CreatedTime between (datetime(2024-06-21T01:00:00Z) .. datetime(2024-06-21T01:07:00Z)) | distinct IncidentName`, "IncidentName", []string{"a1", "b2", "c3"}},
		{"iff", `SecurityIncident | extend Hot = iff(Severity == "High", "yes", "no") | where Hot == "yes" | distinct IncidentName`, "IncidentName", []string{"a1", "e5"}},
		{"timespan units", `SecurityIncident | where CreatedTime > now() - 1d - 2h - 30m - 10s - 100ms | count`, "Count", []string{"6"}},
		{"string ordering", `SecurityIncident | where IncidentName > 'b2' | project IncidentName`, "IncidentName", []string{"c3", "d4", "e5"}},
		{"matches regex", `SecurityIncident | where Title matches regex @"^[A-Z]{3} " | project IncidentName`, "IncidentName", []string{"c3"}},
		{"has_any", `SecurityIncident | where Title has_any ("phishing", "dlp") | project IncidentName`, "IncidentName", []string{"b2", "c3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := run(t, tc.query)
			if err != nil {
				t.Fatalf("query failed: %v", err)
			}
			if g := column(t, got, tc.col); !reflect.DeepEqual(g, tc.want) {
				t.Errorf("got %q, want %q", g, tc.want)
			}
		})
	}
}

func TestArgMaxColumnsOrder(t *testing.T) {
	t.Parallel()
	got, err := run(t, `SecurityIncident | summarize arg_max(LastModifiedTime, *) by IncidentName`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range got.Columns {
		names = append(names, c.Name)
	}
	want := []string{"IncidentName", "LastModifiedTime", "IncidentNumber", "Title", "Severity", "Status", "CreatedTime", "AdditionalData", "ClosedTime"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("columns %v, want %v", names, want)
	}
	if len(got.Rows) != 5 {
		t.Errorf("%d rows, want 5 (one per incident)", len(got.Rows))
	}
}

// TestPollerKeysetPaging runs the poller's query page by page over
// incidents that share one CreatedTime, and checks that every incident is
// returned exactly once.
func TestPollerKeysetPaging(t *testing.T) {
	t.Parallel()
	created := "2024-06-21T08:00:00.1234567Z"
	cols := []Column{{"IncidentName", TypeString}, {"CreatedTime", TypeDatetime}, {"LastModifiedTime", TypeDatetime}, {"Status", TypeString}}
	tbl := &Table{Columns: cols}
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("%08x-0000-0000-0000-000000000000", 0xb0a30000+i*3%7)
		ct := mustTime(t, created)
		if i == 6 {
			ct = ct.Add(Tick) // one tick later
		}
		tbl.Rows = append(tbl.Rows, []any{name, ct, ct, "New"})
		tbl.Rows = append(tbl.Rows, []any{name, ct, ct.Add(time.Minute), "Active"}) // an update
		want = append(want, name)
	}
	// One incident created before the sweep start.
	old := mustTime(t, "2024-06-21T00:59:59.9999999Z")
	tbl.Rows = append(tbl.Rows, []any{"00000000-old", old, old, "New"})

	opts := Options{Now: now, Tables: func(string) (*Table, bool) { return tbl, true }}
	cursorTime, cursorName := "2024-06-21T01:00:00.0000000Z", ""
	var seen []string
	for page := 0; page < 10; page++ {
		q := fmt.Sprintf(`SecurityIncident
| where CreatedTime >= datetime(2024-06-21T01:00:00.0000000Z)
| summarize arg_max(LastModifiedTime, *) by IncidentName
| where CreatedTime > datetime(%s) or (CreatedTime == datetime(%s) and IncidentName > '%s')
| order by CreatedTime asc, IncidentName asc
| take 2`, cursorTime, cursorTime, cursorName)
		res, err := Run(q, opts)
		if err != nil {
			t.Fatal(err)
		}
		ni, ci, si := colIndex(res.Columns, "IncidentName"), colIndex(res.Columns, "CreatedTime"), colIndex(res.Columns, "Status")
		for _, r := range res.Rows {
			seen = append(seen, r[ni].(string))
			if r[si] != "Active" {
				t.Errorf("%s: status %v, want the latest row (Active)", r[ni], r[si])
			}
			cursorName = r[ni].(string)
			cursorTime = FormatDatetime(r[ci].(time.Time))
		}
		if len(res.Rows) < 2 {
			break
		}
	}
	sortedWant := append([]string(nil), want...)
	// Expected order: by CreatedTime then name; the tick-later one is last.
	last := sortedWant[6]
	sortedWant = sortedWant[:6]
	sortStrings(sortedWant)
	sortedWant = append(sortedWant, last)
	if !reflect.DeepEqual(seen, sortedWant) {
		t.Errorf("pages returned %v,\nwant each once in key order %v", seen, sortedWant)
	}
}

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		query    string
		semantic bool
		contains string
	}{
		{"unknown table", "SecurityIncidents | take 1", true, "Failed to resolve table"},
		{"unknown column", "SecurityIncident | where Foo == 1", true, "'where' operator: Failed to resolve scalar expression named 'Foo'"},
		{"type mismatch", "SecurityIncident | where CreatedTime > 'yesterday'", true, "Cannot compare values of types datetime and string"},
		{"unterminated string", "SecurityIncident | where Title == 'abc", false, "unterminated"},
		{"bad operator", "SecurityIncident | frobnicate", false, "Query could not be parsed at 'frobnicate'"},
		{"trailing garbage", "SecurityIncident | take 5 5", false, "Query could not be parsed"},
		{"bad datetime", "SecurityIncident | where CreatedTime > datetime(2024-13-01)", false, "invalid datetime"},
		{"unsupported join", "SecurityIncident | join (SecurityAlert) on IncidentName", true, "not supported"},
		{"unknown function", "SecurityIncident | where frob(Title)", true, "Failed to resolve function 'frob'"},
		{"where needs bool", "SecurityIncident | where Title", true, "bool"},
		{"empty query", "", false, "Query could not be parsed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := run(t, tc.query)
			var ke *Error
			if !errors.As(err, &ke) {
				t.Fatalf("got %v, want a *kql.Error", err)
			}
			if ke.Semantic != tc.semantic {
				t.Errorf("semantic=%v, want %v (%v)", ke.Semantic, tc.semantic, err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not contain %q", err, tc.contains)
			}
		})
	}
}

func TestParseDatetime(t *testing.T) {
	t.Parallel()
	base := time.Date(2024, 6, 21, 1, 6, 41, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2024-06-21T01:06:41.7433333Z", base.Add(743333300)},
		{"2024-06-21T01:06:41Z", base},
		{"2024-06-21T01:06:41.5Z", base.Add(500 * time.Millisecond)},
		{"2024-06-21T03:06:41.6+02:00", base.Add(600 * time.Millisecond)},
		{"2024-06-21 01:06:41.74+00:00", base.Add(740 * time.Millisecond)},
		{"2024-06-21 01:06:41.956735+00:00", base.Add(956735 * time.Microsecond)},
		{"2024-06-21T01:06:41.123456789Z", base.Add(123456700)}, // kept to 100 ns
		{"2024-06-21", time.Date(2024, 6, 21, 0, 0, 0, 0, time.UTC)},
		{"2024-06-21T01:06", time.Date(2024, 6, 21, 1, 6, 0, 0, time.UTC)},
		{"2024-06-21T01:06:41-0130", base.Add(90 * time.Minute)},
	}
	for _, tc := range tests {
		got, err := ParseDatetime(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !got.Equal(tc.want) {
			t.Errorf("%s: got %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2024-02-30", "2024-06-21T25:00:00Z", "2024-06-21T01:06:41.Z", "2024-06-21X"} {
		if _, err := ParseDatetime(bad); err == nil {
			t.Errorf("%q parsed, want an error", bad)
		}
	}
	if got := FormatDatetime(base.Add(743333300)); got != "2024-06-21T01:06:41.7433333Z" {
		t.Errorf("FormatDatetime = %s", got)
	}
	if got := FormatDatetime(base); got != "2024-06-21T01:06:41.0000000Z" {
		t.Errorf("FormatDatetime = %s", got)
	}
}

func TestToJSON(t *testing.T) {
	t.Parallel()
	dyn, _ := ToValue(TypeDynamic, `{"b":[1,2],"a":null}`)
	tests := []struct {
		typ  Type
		in   any
		want any
	}{
		{TypeDatetime, mustTime(t, "2024-06-21T01:06:41Z"), "2024-06-21T01:06:41.0000000Z"},
		{TypeDynamic, dyn, `{"a":null,"b":[1,2]}`},
		{TypeDynamic, nil, nil},
		{TypeTimespan, 26*time.Hour + 3*time.Second + 5*Tick, "1.02:00:03.0000005"},
		{TypeLong, int64(7), int64(7)},
	}
	for _, tc := range tests {
		if got := ToJSON(tc.typ, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ToJSON(%s, %v) = %#v, want %#v", tc.typ, tc.in, got, tc.want)
		}
	}
}
