package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/emulator/kql"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// lake is the Sentinel data lake of the burst workspace: an index-backed
// query_lake that answers Clarion's poll query (docs/ARCHITECTURE.md) by
// binary search over incidents kept in key order, as Microsoft's indexed
// store would, instead of scanning every row as the emulator's KQL
// evaluator does. The emulator cannot hold the burst: adding a row costs a
// scan of the workspace (100,000 rows take about 5×10⁹ comparisons) and
// every query snapshots and re-summarizes the whole table (about a second
// per page at 100,000 rows), so a burst through it would measure the
// emulator, not Clarion.
//
// Rows are rendered from the emulator's own demo incidents (emulator.Query
// output), so Clarion parses exactly the columns and value forms the
// emulator and Microsoft send. The lake does not check tokens: Clarion gets
// them from the emulator's Entra as in every other phase.
type lake struct {
	n         int
	columns   []kql.Column
	templates [][]any
	col       map[string]int

	mu          sync.Mutex
	createdFrom time.Time
	visibleAt   time.Time // zero: not released, the workspace is empty

	queries atomic.Int64
	rows    atomic.Int64
}

// lakeRelease makes the lake's incidents exist: created from CreatedFrom,
// 100 ns apart, all visible at VisibleAt.
type lakeRelease struct {
	CreatedFrom time.Time `json:"created_from"`
	VisibleAt   time.Time `json:"visible_at"`
}

type lakeStats struct {
	Queries int64 `json:"queries"`
	Rows    int64 `json:"rows"`
}

func newLake(n int) (*lake, error) {
	cfg := emulator.DefaultConfig()
	e, err := emulator.New(cfg)
	if err != nil {
		return nil, err
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const kinds = 12
	for i := range kinds {
		row := emulator.DemoIncident(emulator.ContosoTenantID, 1000+i, created.Add(time.Duration(i)*time.Second))
		if _, err := e.AddIncidents(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, []emulator.Row{row}, created); err != nil {
			return nil, err
		}
	}
	res, err := e.Query(emulator.ContosoTenantID, emulator.ContosoWorkspaceID, "SecurityIncident | order by CreatedTime asc")
	if err != nil {
		return nil, err
	}
	t := res.Tables[0]
	l := &lake{n: n, columns: t.Columns, templates: t.Rows, col: map[string]int{}}
	for i, c := range t.Columns {
		l.col[c.Name] = i
	}
	for _, name := range []string{"IncidentName", "IncidentNumber", "CreatedTime", "LastModifiedTime", "TimeGenerated", "IncidentUrl"} {
		if _, ok := l.col[name]; !ok {
			return nil, fmt.Errorf("bench lake: the emulator's SecurityIncident has no %s column", name)
		}
	}
	if len(l.templates) == 0 {
		return nil, errors.New("bench lake: no template incidents")
	}
	return l, nil
}

func (l *lake) handler() http.Handler {
	srv := mcp.NewServer(&mcp.Implementation{Name: "bench-data-exploration", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: emulator.ToolQueryLake, Description: "Runs Clarion's poll query over the burst workspace."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct {
			Query       string `json:"query"`
			WorkspaceID string `json:"workspaceId,omitempty"`
		}) (*mcp.CallToolResult, any, error) {
			out, err := l.query(in.Query, time.Now())
			if err != nil {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}, nil, nil
			}
			b, err := json.Marshal(out)
			if err != nil {
				return nil, nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil, nil
		})
	mux := http.NewServeMux()
	mux.Handle("/mcp/data-exploration", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{JSONResponse: true, DisableLocalhostProtection: true}))
	mux.HandleFunc("POST /_release", func(w http.ResponseWriter, r *http.Request) {
		var rel lakeRelease
		if err := json.NewDecoder(r.Body).Decode(&rel); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		l.mu.Lock()
		l.createdFrom, l.visibleAt = rel.CreatedFrom.UTC().Truncate(kql.Tick), rel.VisibleAt
		l.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(lakeStats{Queries: l.queries.Load(), Rows: l.rows.Load()})
	})
	return mux
}

var (
	reStart  = regexp.MustCompile(`CreatedTime >= datetime\(([^)]+)\)`)
	reCursor = regexp.MustCompile(`CreatedTime > datetime\(([^)]+)\) or \(CreatedTime == datetime\([^)]+\) and strcmp\(IncidentName, '([^']*)'\) > 0\)`)
	reTake   = regexp.MustCompile(`\| take (\d+)\s*$`)
)

// query answers one poll page (see sentinel.PollQuery).
func (l *lake) query(q string, now time.Time) (emulator.QueryResult, error) {
	l.queries.Add(1)
	out := emulator.QueryResult{Tables: []emulator.QueryTable{{Name: "PrimaryResult", Columns: l.columns, Rows: [][]any{}}}}
	sm, tm := reStart.FindStringSubmatch(q), reTake.FindStringSubmatch(q)
	if sm == nil || tm == nil || !strings.Contains(q, "summarize arg_max(LastModifiedTime, *) by IncidentName") {
		return out, errors.New("The bench lake answers Clarion's incident poll query only.")
	}
	start, err := kql.ParseDatetime(sm[1])
	if err != nil {
		return out, err
	}
	take, err := strconv.Atoi(tm[1])
	if err != nil || take <= 0 {
		return out, fmt.Errorf("bad take %q", tm[1])
	}
	l.mu.Lock()
	from, visible := l.createdFrom, l.visibleAt
	l.mu.Unlock()
	if visible.IsZero() || now.Before(visible) {
		return out, nil
	}
	at := func(i int) time.Time { return from.Add(time.Duration(i) * kql.Tick) }
	first := sort.Search(l.n, func(i int) bool { return !at(i).Before(start) })
	if cm := reCursor.FindStringSubmatch(q); cm != nil {
		ct, err := kql.ParseDatetime(cm[1])
		if err != nil {
			return out, err
		}
		name := strings.ReplaceAll(strings.ReplaceAll(cm[2], `\'`, `'`), `\\`, `\`)
		after := sort.Search(l.n, func(i int) bool {
			t := at(i)
			return t.After(ct) || t.Equal(ct) && burstIncidentName(i) > name
		})
		first = max(first, after)
	}
	last := min(l.n, first+take)
	for i := first; i < last; i++ {
		out.Tables[0].Rows = append(out.Tables[0].Rows, l.row(i, at(i)))
	}
	l.rows.Add(int64(last - first))
	return out, nil
}

// row renders incident i from its template: the same columns and value
// forms, its own name, number and times.
func (l *lake) row(i int, created time.Time) []any {
	tpl := l.templates[i%len(l.templates)]
	row := make([]any, len(tpl))
	copy(row, tpl)
	name := burstIncidentName(i)
	oldName, _ := tpl[l.col["IncidentName"]].(string)
	ts := kql.ToJSON(kql.TypeDatetime, created)
	row[l.col["IncidentName"]] = name
	row[l.col["IncidentNumber"]] = int64(100000 + i)
	row[l.col["CreatedTime"]] = ts
	row[l.col["LastModifiedTime"]] = ts
	row[l.col["TimeGenerated"]] = ts
	if u, ok := tpl[l.col["IncidentUrl"]].(string); ok && oldName != "" {
		row[l.col["IncidentUrl"]] = strings.ReplaceAll(u, oldName, name)
	}
	return row
}
