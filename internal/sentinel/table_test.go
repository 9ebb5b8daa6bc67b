package sentinel

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/clarion/sentinel/internal/samples"
)

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(samples.Path(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// objectKeys returns the keys of a JSON object in the order they appear.
func objectKeys(t *testing.T, obj []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", obj)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// decodeExact decodes JSON keeping numbers as json.Number.
func decodeExact(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return v
}

func TestParseTableSamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sample   string
		name     string
		columns  int
		rows     int
		wantCols map[int]Column
		// original returns, per row, the row as sent: the column names and
		// cells from the sample itself.
		original func(t *testing.T, data []byte) (cols []string, rows [][]any)
	}{
		{
			sample:   "loganalytics_query_response_securityalert_msticpy_az_mon_raw_query.json",
			name:     "PrimaryResult",
			columns:  34,
			rows:     3,
			wantCols: map[int]Column{0: {"TenantId", "string"}, 1: {"TimeGenerated", "datetime"}, 14: {"ConfidenceScore", "real"}, 15: {"IsIncident", "bool"}},
			original: func(t *testing.T, data []byte) ([]string, [][]any) {
				top := decodeExact(t, data).(map[string]any)
				tbl := top["tables"].([]any)[0].(map[string]any)
				var cols []string
				for _, c := range tbl["columns"].([]any) {
					cols = append(cols, c.(map[string]any)["name"].(string))
				}
				var rows [][]any
				for _, r := range tbl["rows"].([]any) {
					rows = append(rows, r.([]any))
				}
				return cols, rows
			},
		},
		{
			sample:   "kusto_v2_frames_response_msticpy_kusto_raw_resp.json",
			name:     "PrimaryResult",
			columns:  130,
			rows:     10,
			wantCols: map[int]Column{0: {"CreatedProcessIsElevated", "bool"}, 7: {"CreatedProcessCreationTime", "datetime"}, 8: {"CreatedProcessId", "int"}},
			original: func(t *testing.T, data []byte) ([]string, [][]any) {
				for _, f := range decodeExact(t, data).([]any) {
					f := f.(map[string]any)
					if f["TableKind"] != "PrimaryResult" {
						continue
					}
					var cols []string
					for _, c := range f["Columns"].([]any) {
						cols = append(cols, c.(map[string]any)["ColumnName"].(string))
					}
					var rows [][]any
					for _, r := range f["Rows"].([]any) {
						rows = append(rows, r.([]any))
					}
					return cols, rows
				}
				t.Fatal("no PrimaryResult in sample")
				return nil, nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.sample, func(t *testing.T) {
			t.Parallel()
			data := readSample(t, tt.sample)
			tbl, err := ParseTable(data)
			if err != nil {
				t.Fatalf("ParseTable: %v", err)
			}
			if tbl.Name != tt.name || len(tbl.Columns) != tt.columns || len(tbl.Rows) != tt.rows {
				t.Fatalf("got table %q with %d columns, %d rows; want %q, %d, %d", tbl.Name, len(tbl.Columns), len(tbl.Rows), tt.name, tt.columns, tt.rows)
			}
			for i, want := range tt.wantCols {
				if tbl.Columns[i] != want {
					t.Errorf("column %d = %+v, want %+v", i, tbl.Columns[i], want)
				}
			}
			cols, rows := tt.original(t, data)
			for i := range tbl.Rows {
				obj := tbl.RowObject(i)
				if !json.Valid(obj) {
					t.Fatalf("row %d: RowObject is not valid JSON", i)
				}
				if got := objectKeys(t, obj); !reflect.DeepEqual(got, cols) {
					t.Fatalf("row %d: keys %v, want the columns in order %v", i, got, cols)
				}
				got := decodeExact(t, obj).(map[string]any)
				for j, c := range cols {
					if !reflect.DeepEqual(got[c], rows[i][j]) {
						t.Errorf("row %d column %s = %#v, want %#v as sent", i, c, got[c], rows[i][j])
					}
				}
			}
		})
	}
}

func TestParseTableKeepsValuesExact(t *testing.T) {
	t.Parallel()
	data := []byte(`{"tables":[{"name":"PrimaryResult","columns":[
		{"name":"Big","type":"long"},{"name":"Real","type":"real"},{"name":"Html","type":"string"},
		{"name":"Dyn","type":"dynamic"},{"name":"DynText","type":"dynamic"},{"name":"Null","type":"string"},{"name":"B","type":"bool"}],
		"rows":[[9007199254740993, 1.50, "<a href=\"x\">&amp;</a> ✓", {"b":1,"a":[2,3]}, "{\"providerIncidentUrl\":\"https://security.microsoft.com/x\"}", null, true]]}]}`)
	tbl, err := ParseTable(data)
	if err != nil {
		t.Fatal(err)
	}
	row := tbl.Rows[0]
	want := []any{json.Number("9007199254740993"), json.Number("1.50"), `<a href="x">&amp;</a> ✓`,
		json.RawMessage(`{"b":1,"a":[2,3]}`), `{"providerIncidentUrl":"https://security.microsoft.com/x"}`, nil, true}
	if !reflect.DeepEqual(row, want) {
		t.Fatalf("cells = %#v\nwant %#v", row, want)
	}
	got := string(tbl.RowObject(0))
	wantObj := `{"Big":9007199254740993,"Real":1.50,"Html":"<a href=\"x\">&amp;</a> ✓","Dyn":{"b":1,"a":[2,3]},` +
		`"DynText":"{\"providerIncidentUrl\":\"https://security.microsoft.com/x\"}","Null":null,"B":true}`
	if got != wantObj {
		t.Fatalf("RowObject =\n%s\nwant\n%s", got, wantObj)
	}
	if tbl.RowObject(1) != nil || tbl.RowObject(-1) != nil {
		t.Fatal("RowObject out of range must be nil")
	}
}

func TestParseTableShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		data     string
		wantCols []string
		wantRows int
		wantErr  error // checked with errors.Is when set
		anyErr   bool
		wantObj  string // RowObject(0), when set
	}{
		{
			name:     "log analytics picks PrimaryResult",
			data:     `{"tables":[{"name":"Other","columns":[{"name":"X","type":"int"}],"rows":[[1]]},{"name":"PrimaryResult","columns":[{"name":"A","type":"string"}],"rows":[["a"],["b"]]}]}`,
			wantCols: []string{"A"},
			wantRows: 2,
		},
		{
			name:     "log analytics without PrimaryResult takes the first",
			data:     `{"tables":[{"name":"T0","columns":[{"name":"X","type":"int"}],"rows":[[1]]}]}`,
			wantCols: []string{"X"},
			wantRows: 1,
		},
		{
			name:     "kusto v1 spelling",
			data:     `{"Tables":[{"TableName":"Table_0","Columns":[{"ColumnName":"A","DataType":"String"}],"Rows":[["x"]]}]}`,
			wantCols: []string{"A"},
			wantRows: 1,
		},
		{
			name:     "single table object",
			data:     `{"name":"PrimaryResult","columns":[{"name":"A","type":"string"}],"rows":[]}`,
			wantCols: []string{"A"},
			wantRows: 0,
		},
		{
			name:     "double encoded",
			data:     `"{\"tables\":[{\"name\":\"PrimaryResult\",\"columns\":[{\"name\":\"A\",\"type\":\"string\"}],\"rows\":[[\"a\"]]}]}"`,
			wantCols: []string{"A"},
			wantRows: 1,
		},
		{
			name:     "row objects keep absent keys absent",
			data:     `[{"A":"1","B":null},{"C":2,"A":"3"}]`,
			wantCols: []string{"A", "B", "C"},
			wantRows: 2,
			wantObj:  `{"A":"1","B":null}`,
		},
		{
			name:     "empty array",
			data:     `[]`,
			wantRows: 0,
		},
		{
			name:    "truncated JSON",
			data:    `{"tables":[{"name":"PrimaryResult","columns":[{"name":"A"`,
			wantErr: ErrInvalidResponse,
		},
		{
			name:    "empty",
			data:    "  ",
			wantErr: ErrInvalidResponse,
		},
		{
			name:    "not JSON",
			data:    "The query failed",
			wantErr: ErrInvalidResponse,
		},
		{
			name:   "row shorter than the columns",
			data:   `{"tables":[{"name":"PrimaryResult","columns":[{"name":"A"},{"name":"B"}],"rows":[["a"]]}]}`,
			anyErr: true,
		},
		{
			name:   "kusto v2 error in place of a row",
			data:   `[{"FrameType":"DataTable","TableKind":"PrimaryResult","TableName":"PrimaryResult","Columns":[{"ColumnName":"A","ColumnType":"string"}],"Rows":[["a"],{"OneApiErrors":[{"error":{"code":"LimitsExceeded"}}]}]}]`,
			anyErr: true,
		},
		{
			name:   "frames without a primary result",
			data:   `[{"FrameType":"DataSetHeader","Version":"v2.0"},{"FrameType":"DataSetCompletion","HasErrors":true}]`,
			anyErr: true,
		},
		{
			name:   "a number",
			data:   `42`,
			anyErr: true,
		},
		{
			name:   "array of scalars",
			data:   `[1,2]`,
			anyErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tbl, err := ParseTable([]byte(tt.data))
			if tt.wantErr != nil || tt.anyErr {
				if err == nil {
					t.Fatalf("want an error, got table %+v", tbl)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var cols []string
			for _, c := range tbl.Columns {
				cols = append(cols, c.Name)
			}
			if !reflect.DeepEqual(cols, tt.wantCols) || len(tbl.Rows) != tt.wantRows {
				t.Fatalf("columns %v rows %d; want %v, %d", cols, len(tbl.Rows), tt.wantCols, tt.wantRows)
			}
			if tt.wantObj != "" {
				if got := string(tbl.RowObject(0)); got != tt.wantObj {
					t.Fatalf("RowObject(0) = %s, want %s", got, tt.wantObj)
				}
			}
		})
	}
}

func TestParseTableErrorObject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		data           string
		wantCode       string
		wantOnboarding bool
	}{
		{"query error", `{"error":{"code":"BadArgumentError","message":"The request had some invalid properties"}}`, "BadArgumentError", false},
		{"not onboarded", `{"error":{"code":"TenantNotOnboarded","message":"The tenant is not onboarded to Microsoft Sentinel data lake."}}`, "TenantNotOnboarded", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseTable([]byte(tt.data))
			var ue *UpstreamError
			if !errors.As(err, &ue) || ue.Code != tt.wantCode {
				t.Fatalf("error %v, want an UpstreamError with code %s", err, tt.wantCode)
			}
			if got := errors.Is(err, ErrNotOnboarded); got != tt.wantOnboarding {
				t.Fatalf("errors.Is(ErrNotOnboarded) = %v, want %v", got, tt.wantOnboarding)
			}
		})
	}
}

func TestParseToolResult(t *testing.T) {
	t.Parallel()
	table := `{"tables":[{"name":"PrimaryResult","columns":[{"name":"A","type":"string"}],"rows":[["a"]]}]}`
	tests := []struct {
		name    string
		res     *ToolResult
		wantErr error
		anyErr  bool
	}{
		{name: "text content", res: &ToolResult{Content: []string{table}}},
		{name: "second text content", res: &ToolResult{Content: []string{"Query results:", table}}},
		{name: "structured content", res: &ToolResult{Content: []string{"see structured content"}, Structured: json.RawMessage(table)}},
		{name: "truncated text", res: &ToolResult{Content: []string{table[:40]}}, wantErr: ErrInvalidResponse},
		{name: "no content", res: &ToolResult{}, wantErr: ErrInvalidResponse},
		{name: "tool error not onboarded", res: &ToolResult{IsError: true, Content: []string{"Workspace query failed: the tenant is not onboarded to the Sentinel data lake."}}, wantErr: ErrNotOnboarded},
		{name: "tool error", res: &ToolResult{IsError: true, Content: []string{"Semantic error: 'Foo' is not a table"}}, anyErr: true},
		{name: "nil", res: nil, anyErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tbl, err := ParseToolResult(tt.res)
			if tt.wantErr != nil || tt.anyErr {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tbl.Rows) != 1 || tbl.Rows[0][0] != "a" {
				t.Fatalf("table %+v", tbl)
			}
		})
	}
}
