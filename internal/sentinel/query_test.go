package sentinel

import (
	"errors"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestPollQueryText(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 6, 21, 8, 0, 0, 0, time.UTC)
	after := time.Date(2024, 6, 21, 10, 0, 0, 123456700, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		name string
		p    PollParams
		want string
	}{
		{
			// P08a: no cursor, no empty clause.
			name: "P08a first page",
			p:    PollParams{Start: start, PageSize: 50},
			want: "SecurityIncident\n" +
				"| where CreatedTime >= datetime(2024-06-21T08:00:00.0000000Z)\n" +
				"| summarize arg_max(LastModifiedTime, *) by IncidentName\n" +
				"| order by CreatedTime asc, IncidentName asc\n" +
				"| take 50",
		},
		{
			name: "next page after a cursor, in UTC",
			p:    PollParams{Start: start, AfterTime: after, AfterName: "edb492c8-9d2c-4fdd-b643-53330c239cdd", PageSize: 2},
			want: "SecurityIncident\n" +
				"| where CreatedTime >= datetime(2024-06-21T08:00:00.0000000Z)\n" +
				"| summarize arg_max(LastModifiedTime, *) by IncidentName\n" +
				"| where CreatedTime > datetime(2024-06-21T08:00:00.1234567Z) or (CreatedTime == datetime(2024-06-21T08:00:00.1234567Z) and strcmp(IncidentName, 'edb492c8-9d2c-4fdd-b643-53330c239cdd') > 0)\n" +
				"| order by CreatedTime asc, IncidentName asc\n" +
				"| take 2",
		},
		{
			name: "name with quotes and backslashes escaped",
			p:    PollParams{Start: start, AfterTime: start, AfterName: `a'b\c"d` + "\n' or 1==1 //", PageSize: 1},
			want: "SecurityIncident\n" +
				"| where CreatedTime >= datetime(2024-06-21T08:00:00.0000000Z)\n" +
				"| summarize arg_max(LastModifiedTime, *) by IncidentName\n" +
				`| where CreatedTime > datetime(2024-06-21T08:00:00.0000000Z) or (CreatedTime == datetime(2024-06-21T08:00:00.0000000Z) and strcmp(IncidentName, 'a\'b\\c"d\n\' or 1==1 //') > 0)` + "\n" +
				"| order by CreatedTime asc, IncidentName asc\n" +
				"| take 1",
		},
		{
			name: "Go clock reading rounded down to the tick",
			p:    PollParams{Start: time.Date(2024, 6, 21, 8, 0, 0, 123456789, time.UTC), PageSize: 5},
			want: "SecurityIncident\n" +
				"| where CreatedTime >= datetime(2024-06-21T08:00:00.1234567Z)\n" +
				"| summarize arg_max(LastModifiedTime, *) by IncidentName\n" +
				"| order by CreatedTime asc, IncidentName asc\n" +
				"| take 5",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := PollQuery(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("PollQuery =\n%s\nwant\n%s", got, tt.want)
			}
			if len([]rune(got)) > MaxQueryChars {
				t.Fatalf("query has %d characters", len([]rune(got)))
			}
		})
	}
}

func TestPollQueryRefuses(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 6, 21, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		p       PollParams
		wantErr error
	}{
		{"no start", PollParams{PageSize: 10}, nil},
		{"no page size", PollParams{Start: start}, nil},
		{"negative page size", PollParams{Start: start, PageSize: -1}, nil},
		{"control character in name", PollParams{Start: start, AfterTime: start, AfterName: "a\x00b", PageSize: 1}, nil},
		{"invalid UTF-8 in name", PollParams{Start: start, AfterTime: start, AfterName: "a\xffb", PageSize: 1}, nil},
		{"year out of range", PollParams{Start: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), PageSize: 1}, nil},
		{"longer than 800 characters", PollParams{Start: start, AfterTime: start, AfterName: strings.Repeat("x", 500), PageSize: 1}, ErrQueryTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := PollQuery(tt.p)
			if err == nil {
				t.Fatalf("want an error, got\n%s", q)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestKQLString(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", `''`},
		{"plain-guid-0001", `'plain-guid-0001'`},
		{`O'Brien`, `'O\'Brien'`},
		{`back\slash`, `'back\\slash'`},
		{`"double"`, `'"double"'`},
		{"tab\tnl\ncr\r", `'tab\tnl\ncr\r'`},
		{`\'`, `'\\\''`},
		{"漢字🔥", `'漢字🔥'`},
	}
	for _, tt := range tests {
		got, err := KQLString(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("KQLString(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

var datetimeLiteral = regexp.MustCompile(`datetime\(([^)]*)\)`)

// P05: three incidents created in the same 100 ns tick straddle a page
// boundary. The cursor written into the next query is the exact time read
// from Microsoft, so the keyset neither loses nor repeats any of them.
func TestPollQueryP05EqualTimestampsRoundTrip(t *testing.T) {
	t.Parallel()
	const created = "2024-06-21T08:00:00.1234567Z"
	tbl := &Table{
		Columns: []Column{{"IncidentName", "string"}, {"CreatedTime", "datetime"}},
		Rows:    [][]any{{"G-c", created}, {"G-a", created}, {"G-b", created}},
	}
	incs, err := ParseIncidents(tbl)
	if err != nil {
		t.Fatal(err)
	}
	// What Microsoft returns for page 1 (order by CreatedTime, IncidentName; take 2).
	sort.Slice(incs, func(i, j int) bool {
		if !incs[i].CreatedTime.Equal(incs[j].CreatedTime) {
			return incs[i].CreatedTime.Before(incs[j].CreatedTime)
		}
		return incs[i].Name < incs[j].Name
	})
	page1, last := incs[:2], incs[1]
	if page1[0].Name != "G-a" || last.Name != "G-b" {
		t.Fatalf("page 1 = %v", page1)
	}
	q, err := PollQuery(PollParams{Start: last.CreatedTime.Add(-10 * time.Minute), AfterTime: last.CreatedTime, AfterName: last.Name, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	lits := datetimeLiteral.FindAllStringSubmatch(q, -1)
	if len(lits) != 3 {
		t.Fatalf("query has %d datetime literals:\n%s", len(lits), q)
	}
	cursor, err := ParseTime(lits[1][1])
	if err != nil {
		t.Fatal(err)
	}
	if lits[1][1] != created || lits[2][1] != created || !cursor.Equal(last.CreatedTime) {
		t.Fatalf("cursor literal %s / %s does not round-trip %s", lits[1][1], lits[2][1], created)
	}
	if !strings.Contains(q, "strcmp(IncidentName, 'G-b') > 0") {
		t.Fatalf("cursor name missing:\n%s", q)
	}
	// Apply the keyset clause as Kusto would: only G-c is after the cursor.
	var page2 []string
	for _, inc := range incs {
		if inc.CreatedTime.After(cursor) || (inc.CreatedTime.Equal(cursor) && inc.Name > "G-b") {
			page2 = append(page2, inc.Name)
		}
	}
	if len(page2) != 1 || page2[0] != "G-c" {
		t.Fatalf("page 2 = %v, want [G-c]", page2)
	}
}
