package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/tools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ToolResult compares one agent tool call made to Microsoft directly with
// the same call through Clarion's MCP endpoint (/mcp/skills/{skill}).
type ToolResult struct {
	Tool        string
	Calls       int
	Direct, Via Dist
	// Added is the distribution of the per-pair difference (through
	// Clarion minus direct); the pairs alternate which goes first.
	Added Dist
}

// headers adds fixed headers to every request.
type headers struct {
	h    map[string]string
	next http.RoundTripper
}

func (t headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header.Set(k, v)
	}
	return t.next.RoundTrip(r)
}

// mcpSession opens an MCP session with the official SDK client, as an
// agent would, sending the given headers on every request.
func mcpSession(ctx context.Context, endpoint string, h map[string]string) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "clarion-bench-agent", Version: "1"}, nil)
	return client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Timeout: time.Minute, Transport: headers{h: h, next: http.DefaultTransport}},
		MaxRetries: -1,
	}, nil)
}

// measureTools times query_lake (a small KQL query) called by an agent
// straight at the emulator's data-exploration server with the
// workspace's own access token, and the same call through a Clarion skill
// with the workspace's API token. Clarion's part of the second is the
// difference: authenticating the API token, reading the skill, checking the
// arguments, the cached access token, the audit record and its own MCP
// framing — its upstream call is the first.
func measureTools(ctx context.Context, o Options, emu *emuProcess, c *clarion, w tenantWS) (ToolResult, error) {
	r := ToolResult{Tool: emulator.ToolQueryLake}
	if _, err := c.app.Tools.CreateSkill(ctx, w.id, "bench", "Benchmark skill", []string{tools.ToolsetDataLake}); err != nil {
		return r, err
	}
	tok, err := c.app.Connections.AccessToken(ctx, w.id, connection.SentinelPlatform)
	if err != nil {
		return r, err
	}
	direct, err := mcpSession(ctx, emu.URL+"/mcp/data-exploration",
		map[string]string{"Authorization": "Bearer " + tok.Value, "x-mcp-client-tenant-id": tok.TenantID})
	if err != nil {
		return r, fmt.Errorf("MCP session with the emulator: %w", err)
	}
	defer direct.Close()
	via, err := mcpSession(ctx, c.url+"/mcp/skills/bench", map[string]string{"Authorization": "Bearer " + w.token})
	if err != nil {
		return r, fmt.Errorf("MCP session with Clarion: %w", err)
	}
	defer via.Close()

	args := map[string]any{"query": "SecurityIncident | take 1", "workspaceId": workspaceID(0, 0)}
	call := func(cs *mcp.ClientSession) (time.Duration, error) {
		t0 := time.Now()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: emulator.ToolQueryLake, Arguments: args})
		d := time.Since(t0)
		if err != nil {
			return d, err
		}
		if res.IsError {
			var texts []string
			for _, ct := range res.Content {
				if tc, ok := ct.(*mcp.TextContent); ok {
					texts = append(texts, tc.Text)
				}
			}
			return d, errors.New("tool error: " + strings.Join(texts, " "))
		}
		return d, nil
	}
	// Warm up both paths (connections, sessions, caches).
	for range 5 {
		if _, err := call(direct); err != nil {
			return r, fmt.Errorf("direct: %w", err)
		}
		if _, err := call(via); err != nil {
			return r, fmt.Errorf("through Clarion: %w", err)
		}
	}
	var ds, vs, as []time.Duration
	for i := range o.ToolCalls {
		var d, v time.Duration
		if i%2 == 0 {
			if d, err = call(direct); err == nil {
				v, err = call(via)
			}
		} else {
			if v, err = call(via); err == nil {
				d, err = call(direct)
			}
		}
		if err != nil {
			return r, err
		}
		ds, vs, as = append(ds, d), append(vs, v), append(as, v-d)
	}
	r.Calls = len(ds)
	r.Direct, r.Via, r.Added = dist(ds), dist(vs), dist(as)
	return r, nil
}
