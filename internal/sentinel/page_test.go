package sentinel

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/clarion/sentinel/internal/samples"
	"github.com/go-json-experiment/json/jsontext"
)

// referencePage reads r the way Clarion did before ParseIncidentPage:
// ParseToolResult, then ParseIncidents.
func referencePage(r *ToolResult) (IncidentPage, error) {
	t, err := ParseToolResult(r)
	if err != nil {
		return IncidentPage{}, err
	}
	incs, errs := parseIncidents(t)
	return IncidentPage{Incidents: incs, Rows: len(t.Rows), Invalid: errs}, nil
}

// samePage fails unless ParseIncidentPage gives for r exactly what
// ParseToolResult and ParseIncidents give, payload bytes included.
func samePage(t *testing.T, r *ToolResult) IncidentPage {
	t.Helper()
	want, wantErr := referencePage(r)
	got, err := ParseIncidentPage(r)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("error %v, want %v", err, wantErr)
	}
	if got.Rows != want.Rows || len(got.Incidents) != len(want.Incidents) || len(got.Invalid) != len(want.Invalid) {
		t.Fatalf("rows %d, %d incidents, %d invalid; want %d, %d, %d",
			got.Rows, len(got.Incidents), len(got.Invalid), want.Rows, len(want.Incidents), len(want.Invalid))
	}
	for i := range want.Incidents {
		g, w := got.Incidents[i], want.Incidents[i]
		if !bytes.Equal(g.Payload, w.Payload) {
			t.Fatalf("incident %d payload\n%s\nwant\n%s", i, g.Payload, w.Payload)
		}
		g.Payload, w.Payload = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("incident %d\n%+v\nwant\n%+v", i, g, w)
		}
	}
	for i := range want.Invalid {
		var g, w *RowError
		if !errors.As(got.Invalid[i], &g) || !errors.As(want.Invalid[i], &w) || *g != *w {
			t.Fatalf("invalid row %d: %v, want %v", i, got.Invalid[i], want.Invalid[i])
		}
	}
	return got
}

// table renders a Log Analytics result of one table.
func table(cols string, rows ...string) string {
	return `{"tables":[{"name":"PrimaryResult","columns":[` + cols + `],"rows":[` + strings.Join(rows, ",") + `]}]}`
}

const incidentCols = `{"name":"IncidentName","type":"string"},{"name":"CreatedTime","type":"datetime"},{"name":"Title","type":"string"},` +
	`{"name":"IncidentNumber","type":"int"},{"name":"AdditionalData","type":"dynamic"},{"name":"IncidentUrl","type":"string"}`

// pageCases are answers that the one-pass reader must read as ParseTable
// does, or leave to it.
var pageCases = []struct {
	name string
	text string
	fast bool // read in one pass
}{
	{"plain", table(incidentCols, `["G-1","2024-06-21T01:06:41.1234567Z","t",1,"{\"providerIncidentUrl\":\"https://security.microsoft.com/incident2/1\"}","https://portal.azure.com/#x"]`), true},
	{"escapes re-encoded as RowObject writes them", table(incidentCols,
		`["G-\u0031","2024-06-21T01:06:41Z","\u003cb\u003e \u0026 \/ \u00e9 é \u2028 \ud83d\ude00 \u001F \"q\" \\ \n\t\r\b\f","7",{"providerIncidentUrl":"https:\/\/x\u0026y"},"https://portal.azure.com/#a?b=1\u0026c=2"]`), true},
	// jsontext reports invalid UTF-8 and lone surrogates in a string it
	// decodes, where encoding/json puts U+FFFD: ParseTable reads those.
	{"invalid UTF-8 in a time", table(incidentCols, "[\"G-1\",\"2024-06-21\xff\",\"t\",1,null,null]", "[\"G-2\",\"2024-06-21T01:06:41Z\",\"t\",\"1\xff\",\"{\\\"providerIncidentUrl\\\":\\\"\xfe\\\"}\",\"\xc3\xa9\"]"), false},
	{"invalid UTF-8 and a lone low surrogate", table(incidentCols, "[\"G-\xff\",\"2024-06-21T01:06:41Z\",\"a\xc3\x28b \\udc00\",null,null,null]"), false},
	{"lone high surrogate", table(incidentCols, `["G-1","2024-06-21T01:06:41Z","a \ud800 b",1,null,null]`), false},
	{"surrogate then another escape", table(incidentCols, `["G-1","2024-06-21T01:06:41Z","\ud800\u0041",1,null,null]`), false},
	{"invalid UTF-8 in the column not read", table(incidentCols+`,{"name":"Extra"}`, "[\"G-1\",\"2024-06-21T01:06:41Z\",\"t\",1,null,null,\"\xff\"]"), false},
	{"invalid UTF-8 in the field of dynamic data", table(incidentCols, "[\"G-1\",\"2024-06-21T01:06:41Z\",\"t\",1,{\"providerIncidentUrl\":\"\xff\"},null]"), true},
	// Where nothing is decoded, invalid UTF-8 is kept as sent, as
	// encoding/json keeps it.
	{"invalid UTF-8 in dynamic data and skipped parts", "{\"statistics\":\"\xff\",\"tables\":[{\"name\":\"PrimaryResult\",\"x\":\"\xfe\",\"columns\":[" + incidentCols + "],\"rows\":[[\"G-1\",\"2024-06-21T01:06:41Z\",\"t\",1,{\"a\":\"\xff\", \"b\":[\"\\ud800\"]},null]]}]}", true},
	{"duplicate names in dynamic data", table(incidentCols, `["G-1","2024-06-21T01:06:41Z","t",1,{"providerIncidentUrl":"a","x":1,"providerIncidentUrl":"b"},{"u":1,"u":2}]`), true},
	{"duplicate names in a string of dynamic data", table(incidentCols, `["G-1","2024-06-21T01:06:41Z","t",1,"{\"providerIncidentUrl\":\"a\",\"providerIncidentUrl\":\"b\"}",null]`), true},
	{"U+2028 and U+2029 as sent", table(incidentCols, "[\"G-1\",\"2024-06-21T01:06:41Z\",\"a\u2028b\u2029c\",1,null,\"\u2029\"]"), true},
	{"white space everywhere", " \n{ \"tables\" : [ { \"name\" : \"PrimaryResult\" , \"columns\" : [ " + incidentCols + " ] , \"rows\" : [ [ \"G-1\" , \"2024-06-21T01:06:41Z\" , \"t\" , 1.5e3 , { \"a\" : [ 1 , 2 ] , \"providerIncidentUrl\" : \"u\" } , null ] ] } ] } \r\n", true},
	{"numbers, literals, objects", table(incidentCols, `["G-1","2024-06-21T01:06:41Z",true,-0.5E+2,[],false]`, `["G-2","2024-06-21T01:06:41Z",12,"None",{},{"u":1}]`), true},
	{"bad rows stay out, counted", table(incidentCols, `[null,"2024-06-21T01:06:41Z","t",1,null,null]`, `["G-2","None","t",1,null,null]`, `["G-3",5,"t",1,null,null]`, `["G-4","2024-06-21T01:06:41Z","t",1,null,null]`, `["  ","yesterday","t",1,null,null]`), true},
	{"unknown keys ignored", `{"statistics":{"query":{"x":[1,{"y":null}]}},"tables":[{"name":"PrimaryResult","id":7,"columns":[{"name":"IncidentName","type":"string","extra":1},{"name":"CreatedTime"}],"rows":[["G","2024-06-21T01:06:41Z"]]}],"render":null}`, true},
	{"PrimaryResult picked among tables", `{"tables":[{"name":"Other","columns":[{"name":"X"}],"rows":[[1],[2]]},{"name":"primaryresult","columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["G","2024-06-21T01:06:41Z"]]}]}`, true},
	{"first table without PrimaryResult", `{"tables":[{"name":"T0","columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["G","2024-06-21T01:06:41Z"]]},{"name":"T1","columns":[{"name":"X"}],"rows":[]}]}`, true},
	{"column names needing escapes", table(`{"name":"Incident\u004eame"},{"name":"CreatedTime"},{"name":"a\"b<c>\u2028"}`, `["G","2024-06-21T01:06:41Z",1]`), true},
	{"name after the rows", `{"tables":[{"columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["G","2024-06-21T01:06:41Z"],["H",null]],"name":"PrimaryResult"}]}`, true},
	{"two tables named PrimaryResult", `{"tables":[{"name":"PrimaryResult","columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["A","2024-06-21T01:06:41Z"]]},{"name":"PrimaryResult","columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["B","2024-06-21T01:06:41Z"]]}]}`, true},
	{"a later table's columns do not decode", `{"tables":[{"name":"PrimaryResult","columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["A","2024-06-21T01:06:41Z"]]},{"name":"X","columns":[{"name":[]}],"rows":[]}]}`, false},
	{"invalid text after the rows", `{"tables":[{"name":"PrimaryResult","columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["A","2024-06-21T01:06:41Z"]]}],"x":tru}`, false},
	{"case-insensitive columns", table(`{"name":"incidentname"},{"name":"createdtime"},{"name":"TITLE"}`, `["G","2024-06-21T01:06:41Z","t"]`), true},
	{"no rows", table(incidentCols), true},
	{"empty", ``, false},
	{"truncated", table(incidentCols, `["G-1","2024-06-21T01:06:41Z","t",1,null,null]`)[:90], false},
	{"trailing garbage", table(incidentCols, `["G-1","2024-06-21T01:06:41Z","t",1,null,null]`) + "x", false},
	{"trailing comma", table(incidentCols, `["G-1","2024-06-21T01:06:41Z","t",1,null,null,]`), false},
	{"short row", table(incidentCols, `["G-1","2024-06-21T01:06:41Z"]`), false},
	{"row not an array", table(incidentCols, `{"error":"x"}`), false},
	{"Tables spelled otherwise", `{"Tables":[{"TableName":"Table_0","Columns":[{"ColumnName":"IncidentName","DataType":"String"},{"ColumnName":"CreatedTime"}],"Rows":[["G","2024-06-21T01:06:41Z"]]}]}`, false},
	{"duplicate tables key", `{"tables":[],"tables":[{"name":"PrimaryResult","columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["G","2024-06-21T01:06:41Z"]]}]}`, false},
	{"duplicate rows key", `{"tables":[{"name":"PrimaryResult","columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["A","2024-06-21T01:06:41Z"]],"rows":[["B","2024-06-21T01:06:41Z"]]}]}`, false},
	{"escaped key, decoded as encoding/json decodes it", `{"t\u0061bles":[{"n\u0061me":"Primary\u0052esult","columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["G","2024-06-21T01:06:41Z"]]}]}`, true},
	{"escaped key in another case", `{"t\u0041bles":[{"name":"PrimaryResult","columns":[{"name":"IncidentName"},{"name":"CreatedTime"}],"rows":[["G","2024-06-21T01:06:41Z"]]}]}`, false},
	{"key folding to tables", "{\"tableſ\":[],\"tables\":[{\"name\":\"PrimaryResult\",\"columns\":[{\"name\":\"IncidentName\"},{\"name\":\"CreatedTime\"}],\"rows\":[[\"G\",\"2024-06-21T01:06:41Z\"]]}]}", false},
	{"table name with invalid UTF-8", "{\"tables\":[{\"name\":\"PrimaryResult\xff\",\"columns\":[{\"name\":\"IncidentName\"},{\"name\":\"CreatedTime\"}],\"rows\":[[\"G\",\"2024-06-21T01:06:41Z\"]]}]}", false},
	{"two top-level values", table(incidentCols) + " " + table(incidentCols), false},
	{"columns of the wrong type", `{"tables":[{"name":"PrimaryResult","columns":[{"name":5}],"rows":[]}]}`, false},
	{"error object", `{"error":{"code":"BadArgumentError","message":"bad"}}`, false},
	{"row objects", `[{"IncidentName":"G","CreatedTime":"2024-06-21T01:06:41Z","X":{ "a" : 1 }}]`, false},
	{"double encoded", `"{\"tables\":[{\"name\":\"PrimaryResult\",\"columns\":[{\"name\":\"IncidentName\"},{\"name\":\"CreatedTime\"}],\"rows\":[[\"G\",\"2024-06-21T01:06:41Z\"]]}]}"`, false},
	{"bad escape", table(incidentCols, `["G-1\q","2024-06-21T01:06:41Z","t",1,null,null]`), false},
	{"control character in a string", table(incidentCols, "[\"G-1\t\",\"2024-06-21T01:06:41Z\",\"t\",1,null,null]"), false},
	{"bad number", table(incidentCols, `["G-1","2024-06-21T01:06:41Z","t",01,null,null]`), false},
	{"deep nesting", table(incidentCols, `["G-1","2024-06-21T01:06:41Z","t",1,`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001)+`,null]`), false},
	{"not JSON", `The query failed`, false},
}

func TestParseIncidentPageAsParseIncidents(t *testing.T) {
	t.Parallel()
	for _, tc := range pageCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			samePage(t, &ToolResult{Content: []string{tc.text}})
			if _, fast := readIncidentTable(tc.text); fast != tc.fast {
				t.Fatalf("read in one pass: %v, want %v", fast, tc.fast)
			}
		})
	}
}

func TestParseIncidentPagePollPages(t *testing.T) {
	t.Parallel()
	for _, p := range pollPages(t) {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			if _, fast := readIncidentTable(p.text); !fast {
				t.Fatal("a query_lake page is not read in one pass")
			}
			page := samePage(t, &ToolResult{Content: []string{p.text}})
			if page.Rows != pageRows || len(page.Incidents) != pageRows || len(page.Invalid) != 0 {
				t.Fatalf("rows %d, %d incidents, %v", page.Rows, len(page.Incidents), page.Invalid)
			}
			for i, inc := range page.Incidents {
				if inc.Name == "" || inc.Number == 0 || inc.CreatedTime.IsZero() || inc.Title == "" || inc.Severity == "" || !json.Valid(inc.Payload) {
					t.Fatalf("incident %d: %+v", i, inc)
				}
			}
		})
	}
}

// Every sample answer reads the same both ways, whatever its shape.
func TestParseIncidentPageSamples(t *testing.T) {
	t.Parallel()
	dir := samples.Dir()
	if dir == "" {
		samples.Path(t, "SOURCES.md") // fails under CI, skips elsewhere
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			t.Parallel()
			samePage(t, &ToolResult{Content: []string{string(readSample(t, e.Name()))}})
		})
	}
}

func TestParseIncidentPageToolResults(t *testing.T) {
	t.Parallel()
	good := table(incidentCols, `["G-1","2024-06-21T01:06:41Z","t",1,null,null]`)
	tests := []struct {
		name string
		res  *ToolResult
	}{
		{"nil", nil},
		{"no content", &ToolResult{}},
		{"blank then the table", &ToolResult{Content: []string{"  ", good}}},
		{"text then the table", &ToolResult{Content: []string{"Query results:", good}}},
		{"structured", &ToolResult{Content: []string{"see structured content"}, Structured: json.RawMessage(good)}},
		{"tool error", &ToolResult{IsError: true, Content: []string{"Workspace query failed: the tenant is not onboarded to the Sentinel data lake."}}},
		{"truncated", &ToolResult{Content: []string{good[:40]}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			samePage(t, tt.res)
		})
	}
}

func TestAppendStringAsEncoder(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `<a href="x">&amp;</a>`, "\x00\x01\b\f\n\r\t\x1f\x7f", "é ✓ \u2028\u2029 😀", "\xff\xc3(\xed\xa0\x80", `\"/`} {
		checkAppendString(t, s)
	}
}

// checkAppendString compares appendString with encoding/json's Encoder,
// which RowObject uses; for invalid UTF-8 appendString must refuse.
func checkAppendString(t *testing.T, s string) {
	t.Helper()
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	got, ok := appendString(nil, s)
	if ok != utf8.ValidString(s) || ok && string(got) != strings.TrimSuffix(want.String(), "\n") {
		t.Fatalf("appendString(%q) = %s, %v; want %s", s, got, ok, want.String())
	}
}

// checkUnquote checks what rowReader.cell relies on: jsontext decodes a
// string literal that it accepts without error exactly as encoding/json
// does, and refuses every literal that encoding/json refuses.
func checkUnquote(t *testing.T, lit string) {
	t.Helper()
	var want string
	wantErr := json.Unmarshal([]byte(lit), &want)
	got, err := jsontext.AppendUnquote(nil, lit)
	if wantErr != nil && err == nil {
		t.Fatalf("jsontext accepts %q, encoding/json: %v", lit, wantErr)
	}
	if err == nil && string(got) != want {
		t.Fatalf("jsontext decodes %q as %q, encoding/json as %q", lit, got, want)
	}
}

func TestUnquoteAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, lit := range []string{`""`, `"a"`, `"\u0041\u00e9\u2028\ud83d\ude00"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"\/\b\f\n\r\t\"\\"`,
		"\"\xff\"", `"\x"`, `"\u12"`, `"\'"`, "\"a\x01\"", `"abc`, `"\`, `"a" `, ` "a"`} {
		checkUnquote(t, lit)
	}
}

// FuzzParseIncidentPage checks that the one-pass reader and ParseTable
// never disagree.
func FuzzParseIncidentPage(f *testing.F) {
	for _, tc := range pageCases {
		f.Add(tc.text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		samePage(t, &ToolResult{Content: []string{text}})
		checkAppendString(t, text)
		checkUnquote(t, `"`+text+`"`)
		checkDynamicString(t, text)
	})
}

// checkDynamicString compares dynamicString with its encoding/json reading.
func checkDynamicString(t *testing.T, raw string) {
	t.Helper()
	want := ""
	if trimmed := strings.TrimSpace(raw); strings.HasPrefix(trimmed, "{") {
		want = dynamicStringDecoded(trimmed, "providerIncidentUrl")
	}
	for _, v := range []any{raw, json.RawMessage(raw)} {
		if got := dynamicString(v, "providerIncidentUrl"); got != want {
			t.Fatalf("dynamicString(%T %q) = %q, want %q", v, raw, got, want)
		}
	}
}

func TestDynamicStringAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		``, `null`, `"x"`, `{}`, ` {"providerIncidentUrl":" https://x "} `,
		`{"alertsCount":1,"tactics":["A",{"b":null}],"providerIncidentUrl":"https:\/\/x\u0026y"}`,
		`{"providerIncidentUrl":1}`, `{"providerIncidentUrl":null}`, `{"providerIncidentUrl":"a","providerIncidentUrl":"b"}`,
		`{"providerIncidentUrl":"a","providerIncidentUrl":2}`, `{"ProviderIncidentURL":"folded"}`,
		`{"provider\u0049ncidentUrl":"escaped key"}`, `{"providerIncidentUrl":"a"`, `{"providerIncidentUrl":"a"} x`,
		`{"providerIncidentUrl":"a",}`, "{\"providerIncidentUrl\":\"\xff\"}",
	} {
		checkDynamicString(t, raw)
	}
}
