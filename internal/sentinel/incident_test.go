package sentinel

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseIncidentsStixShifterRows(t *testing.T) {
	t.Parallel()
	data := readSample(t, "securityincident_rows_stix-shifter.json")
	tbl, err := ParseTable(data)
	if err != nil {
		t.Fatal(err)
	}
	incs, err := ParseIncidents(tbl)
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 2 {
		t.Fatalf("got %d incidents, want 2", len(incs))
	}
	want := []struct {
		name, title, severity, status, provider, providerID, urlSuffix string
		number                                                         int64
		created                                                        time.Time
		descPrefix                                                     string
	}{
		{"7f788595-0fcf-4cb2-a669-07a4b5e8de99", "Traffic detected from IP addresses recommended for blocking", "Low", "New", "Azure Sentinel", "15216",
			"/Incidents/7f788595-0fcf-4cb2-a669-07a4b5e8de99", 15216, time.Date(2023, 3, 18, 23, 52, 9, 956735000, time.UTC), "Defender for Cloud detected inbound traffic"},
		{"919158c6-4c3f-4273-a730-a37f75622350", "AlertLog", "Medium", "New", "Azure Sentinel", "1186",
			"/Incidents/919158c6-4c3f-4273-a730-a37f75622350", 1186, time.Date(2022, 5, 7, 12, 27, 10, 171000000, time.UTC), ""},
	}
	var originals []json.RawMessage
	if err := json.Unmarshal(data, &originals); err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		got := incs[i]
		if got.Name != w.name || got.Title != w.title || got.Severity != w.severity || got.Status != w.status ||
			got.ProviderName != w.provider || got.ProviderIncidentID != w.providerID || got.Number != w.number {
			t.Errorf("incident %d = %+v", i, got)
		}
		if !got.CreatedTime.Equal(w.created) || got.CreatedTime.Location() != time.UTC {
			t.Errorf("incident %d created %v, want %v (UTC)", i, got.CreatedTime, w.created)
		}
		if !got.LastModifiedTime.Equal(w.created) {
			t.Errorf("incident %d last modified %v", i, got.LastModifiedTime)
		}
		if !strings.HasPrefix(got.IncidentURL, "https://portal.azure.com/#asset/") || !strings.HasSuffix(got.IncidentURL, w.urlSuffix) {
			t.Errorf("incident %d url %q", i, got.IncidentURL)
		}
		if !strings.HasPrefix(got.Description, w.descPrefix) {
			t.Errorf("incident %d description %q", i, got.Description)
		}
		if got.ProviderIncidentURL != "" || got.TenantID != "" {
			t.Errorf("incident %d: provider url %q tenant %q, want both empty", i, got.ProviderIncidentURL, got.TenantID)
		}
		// The payload is the row exactly as sent.
		if !bytes.Equal(got.Payload, bytes.TrimSpace(originals[i])) {
			t.Errorf("incident %d payload differs from the row as sent", i)
		}
	}
	if DeepLink(incs[0], nil) != incs[0].IncidentURL {
		t.Errorf("deep link %q, want the IncidentUrl", DeepLink(incs[0], nil))
	}
}

func TestParseIncidentsColumns(t *testing.T) {
	t.Parallel()
	cols := []Column{{"IncidentName", "string"}, {"IncidentNumber", "int"}, {"Title", "string"}, {"Description", "string"},
		{"Severity", "string"}, {"CreatedTime", "datetime"}, {"AdditionalData", "dynamic"}, {"ProviderIncidentId", "string"}}
	const defender = "https://security.microsoft.com/incident2/9759/overview?tid=d7ab1225-4649-4cb3-abd5-bc732bed3203"
	tests := []struct {
		name string
		row  []any
		want Incident
	}{
		{
			name: "dynamic as JSON string, number as string",
			row:  []any{"G-1", "9759", "t", "d", "High", "2025-08-10T01:52:41.2428874Z", `{"alertsCount":1,"providerIncidentUrl":"` + defender + `"}`, "9759"},
			want: Incident{Name: "G-1", Number: 9759, Title: "t", Description: "d", Severity: "High", ProviderIncidentID: "9759", ProviderIncidentURL: defender,
				CreatedTime: time.Date(2025, 8, 10, 1, 52, 41, 242887400, time.UTC)},
		},
		{
			name: "dynamic as object, number as number",
			row:  []any{"G-2", json.Number("84"), "t", nil, "Informational", "2025-08-10 01:52:41+00:00", json.RawMessage(`{"providerIncidentUrl":"` + defender + `"}`), json.Number("9759")},
			want: Incident{Name: "G-2", Number: 84, Title: "t", Severity: "Informational", ProviderIncidentID: "9759", ProviderIncidentURL: defender,
				CreatedTime: time.Date(2025, 8, 10, 1, 52, 41, 0, time.UTC)},
		},
		{
			name: "odd values leave fields empty",
			row:  []any{"G-3", "n/a", json.Number("12"), true, nil, "2025-08-10T01:52:41Z", "not json", "None"},
			want: Incident{Name: "G-3", Title: "12", Description: "true", CreatedTime: time.Date(2025, 8, 10, 1, 52, 41, 0, time.UTC)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			incs, err := ParseIncidents(&Table{Columns: cols, Rows: [][]any{tt.row}})
			if err != nil {
				t.Fatal(err)
			}
			got := incs[0]
			got.Payload = nil
			if !got.CreatedTime.Equal(tt.want.CreatedTime) {
				t.Fatalf("created %v, want %v", got.CreatedTime, tt.want.CreatedTime)
			}
			got.CreatedTime, tt.want.CreatedTime = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// P17: a missing Description key and "Description": null both give empty
// text, and the payload keeps the row as it was.
func TestParseIncidentsP17MissingDescription(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300<<10)
	data := `[{"IncidentName":"G-no-key","CreatedTime":"2024-06-21T01:06:41Z","Title":"INCIDENT on host"},` +
		`{"IncidentName":"G-null","CreatedTime":"2024-06-21T01:06:42Z","Description":null},` +
		`{"IncidentName":"G-long","CreatedTime":"2024-06-21T01:06:43Z","Description":"` + long + `"}]`
	tbl, err := ParseTable([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	incs, err := ParseIncidents(tbl)
	if err != nil {
		t.Fatal(err)
	}
	if incs[0].Description != "" || incs[1].Description != "" || incs[2].Description != long {
		t.Fatal("descriptions not as expected")
	}
	if got := string(incs[0].Payload); got != `{"IncidentName":"G-no-key","CreatedTime":"2024-06-21T01:06:41Z","Title":"INCIDENT on host"}` {
		t.Fatalf("payload %s", got)
	}
	if got := string(incs[1].Payload); got != `{"IncidentName":"G-null","CreatedTime":"2024-06-21T01:06:42Z","Description":null}` {
		t.Fatalf("payload %s", got)
	}
	if !MatchSearch("incident", incs[0].Title, incs[0].Description) {
		t.Fatal("search must match without regard to case")
	}
}

func TestParseIncidentsRowErrors(t *testing.T) {
	t.Parallel()
	cols := []Column{{"IncidentName", "string"}, {"CreatedTime", "datetime"}}
	tests := []struct {
		name    string
		cols    []Column
		rows    [][]any
		wantRow int
		wantCol string
		good    int
	}{
		{"no IncidentName", cols, [][]any{{"G-1", "2024-06-21T01:06:41Z"}, {nil, "2024-06-21T01:06:41Z"}}, 1, "IncidentName", 1},
		{"empty IncidentName", cols, [][]any{{"  ", "2024-06-21T01:06:41Z"}}, 0, "IncidentName", 0},
		{"CreatedTime None", cols, [][]any{{"G-1", "None"}, {"G-2", "2024-06-21T01:06:41Z"}}, 0, "CreatedTime", 1},
		{"CreatedTime garbage", cols, [][]any{{"G-1", "yesterday"}}, 0, "CreatedTime", 0},
		{"CreatedTime a number", cols, [][]any{{"G-1", json.Number("5")}}, 0, "CreatedTime", 0},
		{"no CreatedTime column", []Column{{"IncidentName", "string"}}, [][]any{{"G-1"}}, 0, "CreatedTime", 0},
		{"short row", cols, [][]any{{"G-1"}}, 0, "CreatedTime", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			incs, err := ParseIncidents(&Table{Columns: tt.cols, Rows: tt.rows})
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("error %v, want a RowError", err)
			}
			if re.Row != tt.wantRow || re.Column != tt.wantCol {
				t.Fatalf("RowError row %d column %s, want %d %s", re.Row, re.Column, tt.wantRow, tt.wantCol)
			}
			if !strings.Contains(err.Error(), tt.wantCol) {
				t.Fatalf("error %q does not name the column", err)
			}
			if len(incs) != tt.good {
				t.Fatalf("got %d good incidents, want %d", len(incs), tt.good)
			}
		})
	}
	if _, err := ParseIncidents(nil); err == nil {
		t.Fatal("nil table: want an error")
	}
}

// P15: every time format seen in real rows parses, to UTC, keeping 100 ns.
func TestParseTimeP15(t *testing.T) {
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
		{"2023-03-18 23:52:09.956735+00:00", time.Date(2023, 3, 18, 23, 52, 9, 956735000, time.UTC)},
		{"2024-06-21T01:06:41.1234567", base.Add(123456700)},
		{"2024-06-21T01:06:41.123456789Z", base.Add(123456700)},
		{"2024-06-21T06:36:41+0530", base},
		{" 2024-06-21T01:06:41Z ", base},
		{"None", time.Time{}},
		{"none", time.Time{}},
		{"null", time.Time{}},
		{"", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTime(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) || (!got.IsZero() && got.Location() != time.UTC) {
				t.Fatalf("ParseTime(%q) = %v, want %v in UTC", tt.in, got, tt.want)
			}
		})
	}
	for _, bad := range []string{"yesterday", "2024-13-01T00:00:00Z", "21/06/2024 01:06"} {
		if _, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q): want an error", bad)
		}
	}

	// The P15 values order as they should: the last three differ by
	// fractions of a second only.
	var prev time.Time
	for _, s := range []string{"2024-06-21T01:06:41Z", "2024-06-21T01:06:41.5Z", "2024-06-21T03:06:41.6+02:00", "2024-06-21 01:06:41.74+00:00", "2024-06-21T01:06:41.7433333Z"} {
		cur, _ := ParseTime(s)
		if !cur.After(prev) {
			t.Fatalf("%s does not sort after %v", s, prev)
		}
		prev = cur
	}
}
