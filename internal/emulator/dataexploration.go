package emulator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/clarion/sentinel/internal/emulator/kql"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Data exploration tool names, exactly as Microsoft names them.
const (
	ToolListSentinelWorkspaces = "list_sentinel_workspaces"
	ToolSearchTables           = "search_tables"
	ToolQueryLake              = "query_lake"
)

// MaxKQLLength is the longest KQL text a tool accepts (MICROSOFT.md §3).
const MaxKQLLength = 800

// maxResultRows is the data lake's result row limit (MICROSOFT.md §3).
const maxResultRows = 500000

func (e *Emulator) newDataExplorationEndpoint() *mcpEndpoint {
	return e.newMCPEndpoint("data-exploration", SentinelPlatformResource, SentinelPlatformPermission, e.registerDataExplorationTools)
}

type noInput struct{}

type searchTablesInput struct {
	Query       string `json:"query" jsonschema:"Keywords describing the data you are looking for, e.g. 'sign-in failures' or 'incidents'"`
	WorkspaceID string `json:"workspaceId,omitempty" jsonschema:"The Sentinel workspace ID (GUID); default the first workspace of the tenant"`
}

type queryLakeInput struct {
	Query       string `json:"query" jsonschema:"One KQL query (at most 800 characters)"`
	WorkspaceID string `json:"workspaceId,omitempty" jsonschema:"The Sentinel workspace ID (GUID) to query; default the first workspace of the tenant"`
}

// WorkspaceInfo is one entry of list_sentinel_workspaces.
type WorkspaceInfo struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// QueryResult is the JSON text of a query_lake answer: the Log Analytics
// query API shape.
type QueryResult struct {
	Tables []QueryTable `json:"tables"`
}

// QueryTable is one table of a QueryResult; row values are as ToJSON
// renders them (datetimes with seven fractional digits, dynamic values as
// JSON text, nulls).
type QueryTable struct {
	Name    string       `json:"name"`
	Columns []kql.Column `json:"columns"`
	Rows    [][]any      `json:"rows"`
}

func (e *Emulator) registerDataExplorationTools(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolListSentinelWorkspaces,
		Description: "Lists the Microsoft Sentinel workspaces of the tenant that are attached to the Sentinel data lake: name and id pairs.",
	}, func(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
		tid := caller(req)
		if msg := e.dataLakeProblem(tid, ToolListSentinelWorkspaces); msg != "" {
			return toolError("%s", msg), nil, nil
		}
		e.mu.Lock()
		var out []WorkspaceInfo
		if t := e.tenant(tid); t != nil {
			for _, w := range t.Workspaces {
				out = append(out, WorkspaceInfo{Name: w.Name, ID: w.ID})
			}
		}
		e.mu.Unlock()
		if out == nil {
			out = []WorkspaceInfo{}
		}
		res, err := toolJSON(map[string]any{"workspaces": out})
		return res, nil, err
	})

	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolSearchTables,
		Description: "Searches the Sentinel data lake table catalog for tables relevant to the keywords and returns their schemas (columns and types).",
	}, func(ctx context.Context, req *mcp.CallToolRequest, in searchTablesInput) (*mcp.CallToolResult, any, error) {
		tid := caller(req)
		if in.WorkspaceID != "" {
			if _, msg := e.resolveWorkspace(tid, in.WorkspaceID); msg != "" {
				return toolError("%s", msg), nil, nil
			}
		}
		res, err := toolJSON(map[string]any{"tables": searchTables(in.Query)})
		return res, nil, err
	})

	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolQueryLake,
		Description: "Runs one KQL query against the Sentinel data lake of a workspace and returns the result set (Log Analytics table shape). The query text is limited to 800 characters.",
	}, func(ctx context.Context, req *mcp.CallToolRequest, in queryLakeInput) (*mcp.CallToolResult, any, error) {
		tid := caller(req)
		if msg := e.dataLakeProblem(tid, ToolQueryLake); msg != "" {
			return toolError("%s", msg), nil, nil
		}
		if strings.TrimSpace(in.Query) == "" {
			return toolError("The query parameter is required: give one KQL query."), nil, nil
		}
		if n := utf8.RuneCountInString(in.Query); n > MaxKQLLength {
			return toolError("The query is %d characters long; the limit is %d characters. Shorten the query.", n, MaxKQLLength), nil, nil
		}
		wsID, msg := e.resolveWorkspace(tid, in.WorkspaceID)
		if msg != "" {
			return toolError("%s", msg), nil, nil
		}
		result, err := e.Query(tid, wsID, in.Query)
		if err != nil {
			var ke *kql.Error
			if errors.As(err, &ke) {
				return toolError("Query failed: %s", ke.Error()), nil, nil
			}
			return toolError("Query failed: %v", err), nil, nil
		}
		repeat := e.takeStateFault(tid, ToolQueryLake, FaultRepeatAnswer)
		e.mu.Lock()
		if prev := e.lastLake[tid]; prev != nil && repeat {
			result = prev
		}
		if e.lastLake == nil {
			e.lastLake = make(map[string]*QueryResult)
		}
		e.lastLake[tid] = result
		e.mu.Unlock()
		res, err := toolJSON(result)
		return res, nil, err
	})
}

// dataLakeProblem explains why the tenant cannot use the data lake, or
// returns "".
func (e *Emulator) dataLakeProblem(tenantID, tool string) string {
	e.mu.Lock()
	t := e.tenant(tenantID)
	onboarded := t != nil && t.DataLakeOnboarded
	e.mu.Unlock()
	if !onboarded || e.takeStateFault(tenantID, tool, FaultNotOnboarded) {
		return "The tenant " + tenantID + " is not onboarded to the Microsoft Sentinel data lake, so its workspaces cannot be listed or queried here. " +
			"Onboard the tenant to the data lake in the Microsoft Defender portal (System > Settings > Microsoft Sentinel > Data lake), " +
			"or query a workspace by its Workspace ID."
	}
	return ""
}

// resolveWorkspace finds the workspace a tool call means: the given id, or
// the tenant's first workspace.
func (e *Emulator) resolveWorkspace(tenantID, workspaceID string) (string, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenant(tenantID)
	if t == nil {
		return "", "Unknown tenant " + tenantID + "."
	}
	workspaceID = strings.ToLower(strings.TrimSpace(workspaceID))
	if workspaceID == "" {
		if len(t.Workspaces) == 0 {
			return "", "The tenant has no Sentinel workspace attached to the data lake."
		}
		return t.Workspaces[0].ID, ""
	}
	if !isGUID(workspaceID) {
		return "", "The workspaceId '" + workspaceID + "' is not a valid workspace ID: it must be a GUID."
	}
	if t.workspaces[workspaceID] == nil {
		return "", "Workspace '" + workspaceID + "' was not found in tenant " + t.ID + ", or you do not have access to it."
	}
	return workspaceID, ""
}

// Query runs one KQL query over the visible rows of a workspace, at the
// emulator's current time, and returns the result in the shape query_lake
// answers with.
func (e *Emulator) Query(tenantID, workspaceID, query string) (*QueryResult, error) {
	e.mu.Lock()
	ws, err := e.workspace(tenantID, workspaceID)
	if err != nil {
		e.mu.Unlock()
		return nil, err
	}
	now := e.now()
	tables := ws.snapshot(now)
	e.mu.Unlock()
	res, err := kql.Run(query, kql.Options{Now: now, Tables: func(name string) (*kql.Table, bool) {
		t, ok := tables[name]
		return t, ok
	}})
	if err != nil {
		return nil, err
	}
	if len(res.Rows) > maxResultRows {
		return nil, &kql.Error{Semantic: true, Msg: fmt.Sprintf("Query result set has exceeded the internal record count limit %d (E_QUERY_RESULT_SET_TOO_LARGE). Reduce it with where, summarize or take.", maxResultRows)}
	}
	out := QueryTable{Name: res.Name, Columns: res.Columns, Rows: make([][]any, len(res.Rows))}
	for i, r := range res.Rows {
		row := make([]any, len(r))
		for j, v := range r {
			row[j] = kql.ToJSON(res.Columns[j].Type, v)
		}
		out.Rows[i] = row
	}
	return &QueryResult{Tables: []QueryTable{out}}, nil
}
