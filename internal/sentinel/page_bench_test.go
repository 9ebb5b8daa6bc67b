package sentinel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/emulator/kql"
	"github.com/clarion/sentinel/internal/samples"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// pageRows is the monitor engine's default page size.
const pageRows = 200

// emulatorTemplates are the emulator's demo incidents as its query_lake
// renders them (kql.ToJSON: datetimes with seven fractional digits, dynamic
// values as JSON text), the rows the burst's lake answers with.
var emulatorTemplates = sync.OnceValues(func() (emulator.QueryTable, error) {
	e, err := emulator.New(emulator.DefaultConfig())
	if err != nil {
		return emulator.QueryTable{}, err
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 12 {
		row := emulator.DemoIncident(emulator.ContosoTenantID, 1000+i, created.Add(time.Duration(i)*time.Second))
		if _, err := e.AddIncidents(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, []emulator.Row{row}, created); err != nil {
			return emulator.QueryTable{}, err
		}
	}
	res, err := e.Query(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, "SecurityIncident | order by CreatedTime asc")
	if err != nil {
		return emulator.QueryTable{}, err
	}
	return res.Tables[0], nil
})

// emulatorPage renders a poll page of n incidents the way the burst's lake
// (internal/bench) does: the demo rows with their own names, numbers and
// times, encoded as query_lake's text content.
func emulatorPage(tb testing.TB, n int) string {
	tb.Helper()
	tpl, err := emulatorTemplates()
	if err != nil {
		tb.Fatal(err)
	}
	col := map[string]int{}
	for i, c := range tpl.Columns {
		col[c.Name] = i
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := emulator.QueryTable{Name: "PrimaryResult", Columns: tpl.Columns}
	for i := range n {
		src := tpl.Rows[i%len(tpl.Rows)]
		row := append([]any(nil), src...)
		name := fmt.Sprintf("be4b0000-0000-4000-8000-%012d", i)
		ts := kql.ToJSON(kql.TypeDatetime, from.Add(time.Duration(i)*kql.Tick))
		old, _ := src[col["IncidentName"]].(string)
		row[col["IncidentName"]] = name
		row[col["IncidentNumber"]] = int64(100000 + i)
		row[col["CreatedTime"]] = ts
		row[col["LastModifiedTime"]] = ts
		row[col["TimeGenerated"]] = ts
		if u, ok := src[col["IncidentUrl"]].(string); ok && old != "" {
			row[col["IncidentUrl"]] = strings.ReplaceAll(u, old, name)
		}
		out.Rows = append(out.Rows, row)
	}
	b, err := json.Marshal(emulator.QueryResult{Tables: []emulator.QueryTable{out}})
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// stixShifterPage renders a poll page of n incidents from the real
// SecurityIncident rows of the stix-shifter sample (strings everywhere,
// "None" for nulls, dynamic columns as JSON text), in the Log Analytics
// table shape that query_lake answers with.
func stixShifterPage(tb testing.TB, n int) string {
	tb.Helper()
	data, err := os.ReadFile(samples.Path(tb, "securityincident_rows_stix-shifter.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var objs []json.RawMessage
	if err := json.Unmarshal(data, &objs); err != nil {
		tb.Fatal(err)
	}
	t, err := ParseTable(data)
	if err != nil {
		tb.Fatal(err)
	}
	type column struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	var cols []column
	for _, c := range t.Columns {
		cols = append(cols, column{c.Name, "string"})
	}
	var rows [][]json.RawMessage
	for i := range n {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(objs[i%len(objs)], &m); err != nil {
			tb.Fatal(err)
		}
		name, _ := json.Marshal(fmt.Sprintf("5be10000-0000-4000-8000-%012d", i))
		m["IncidentName"] = name
		row := make([]json.RawMessage, len(cols))
		for j, c := range cols {
			if row[j] = m[c.Name]; row[j] == nil {
				row[j] = json.RawMessage("null")
			}
		}
		rows = append(rows, row)
	}
	b, err := json.Marshal(map[string]any{"tables": []any{map[string]any{"name": "PrimaryResult", "columns": cols, "rows": rows}}})
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// pollPages are the pages the benchmarks read.
func pollPages(tb testing.TB) []struct{ name, text string } {
	return []struct{ name, text string }{
		{"emulator", emulatorPage(tb, pageRows)},
		{"stix-shifter", stixShifterPage(tb, pageRows)},
	}
}

// BenchmarkParsePollPage measures what Clarion spends turning a query_lake
// answer (the tool's text content, after the MCP SDK decoded it) into the
// incidents of one poll page: ParseIncidentPage, the monitor engine's path,
// and for comparison ParseToolResult followed by ParseIncidents, the path
// before it.
func BenchmarkParsePollPage(b *testing.B) {
	ways := []struct {
		name  string
		parse func(*ToolResult) (int, error)
	}{
		{"ParseIncidentPage", func(r *ToolResult) (int, error) {
			p, err := ParseIncidentPage(r)
			return len(p.Incidents), err
		}},
		{"ParseToolResult+ParseIncidents", func(r *ToolResult) (int, error) {
			t, err := ParseToolResult(r)
			if err != nil {
				return 0, err
			}
			incs, err := ParseIncidents(t)
			return len(incs), err
		}},
	}
	for _, p := range pollPages(b) {
		res := &ToolResult{Content: []string{p.text}}
		for _, w := range ways {
			b.Run(p.name+"/"+w.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(p.text)))
				for b.Loop() {
					if n, err := w.parse(res); err != nil || n != pageRows {
						b.Fatalf("%d incidents, %v", n, err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pageRows), "ns/row")
			})
		}
	}
}

// BenchmarkMCPAnswerDecode measures the MCP SDK's share: decoding the
// JSON-RPC answer that carries a page into a CallToolResult, as the SDK's
// client does before Clarion sees the text (DecodeMessage, then the
// result). Clarion cannot change this part.
func BenchmarkMCPAnswerDecode(b *testing.B) {
	for _, p := range pollPages(b) {
		result, err := json.Marshal(&mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: p.text}}})
		if err != nil {
			b.Fatal(err)
		}
		id, _ := jsonrpc.MakeID(float64(7))
		wire, err := jsonrpc.EncodeMessage(&jsonrpc.Response{ID: id, Result: result})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			for b.Loop() {
				msg, err := jsonrpc.DecodeMessage(wire)
				if err != nil {
					b.Fatal(err)
				}
				var res mcp.CallToolResult
				if err := res.UnmarshalJSON(msg.(*jsonrpc.Response).Result); err != nil {
					b.Fatal(err)
				}
				if tr := toolResult(&res); len(tr.Content) != 1 || !bytes.Equal([]byte(tr.Content[0]), []byte(p.text)) {
					b.Fatal("the text did not come back")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pageRows), "ns/row")
		})
	}
}
