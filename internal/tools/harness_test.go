package tools_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/app"
	"github.com/clarion/sentinel/internal/config"
	"github.com/clarion/sentinel/internal/demo"
	"github.com/clarion/sentinel/internal/emulator"
	"github.com/clarion/sentinel/internal/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// clock is the one fake clock of Clarion and the emulator in a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is Clarion (the real app, wired as `clarion serve` wires it) and the
// Microsoft emulator, both on loopback HTTP, with the demo incidents in
// Contoso's first workspace.
type env struct {
	t      *testing.T
	clock  *clock
	emu    *emulator.Emulator
	app    *app.App
	url    string
	client *http.Client
}

// workspace is a Clarion workspace of the env with its API token.
type workspace struct {
	store.Workspace
	token string
}

func setup(t *testing.T) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 6, 21, 10, 0, 0, 0, time.UTC)}
	ecfg := emulator.DefaultConfig()
	ecfg.Now = clk.Now
	emu, err := emulator.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	emuSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(emuSrv.Close)
	t.Cleanup(func() { emu.Close() })
	if _, err := emulator.SeedDemoIncidents(emu, emulator.ContosoTenantID, emulator.ContosoWorkspaceID, clk.Now()); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	cfg := config.Defaults()
	cfg.Addr = srv.Listener.Addr().String()
	cfg.PublicURL = srv.URL
	cfg.DataDir = t.TempDir()
	cfg.EntraAuthority = emuSrv.URL
	cfg.SentinelMCPURL = emuSrv.URL + "/mcp"
	cfg.ClientID, cfg.ClientSecret = ecfg.ClientID, ecfg.ClientSecret
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.New(t.Context(), cfg, log, app.Options{Now: clk.Now, AutoMigrate: true, Owner: "replica-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Sentinel.Close()
		a.Close()
	})
	srv.Config.Handler = a.Handler()
	return &env{t: t, clock: clk, emu: emu, app: a, url: srv.URL, client: srv.Client()}
}

// workspace creates a Clarion workspace; with an account it is connected
// through the emulator's consent and sign-in pages as that account (which
// picks the Microsoft tenant).
func (e *env) workspace(name, account string) workspace {
	e.t.Helper()
	w, tok, err := e.app.CreateWorkspace(e.t.Context(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	if account != "" {
		if err := demo.Connect(e.t.Context(), e.url, tok, account); err != nil {
			e.t.Fatalf("connect %s as %s: %v", name, account, err)
		}
	}
	return workspace{Workspace: w, token: tok}
}

// do sends an API request with a token and decodes the JSON answer into
// out (when not nil); it returns the status and the headers.
func (e *env) do(token, method, path string, body any, out any) (int, http.Header) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header
}

// skill creates a skill through the API.
func (e *env) skill(w workspace, name string, toolsets ...string) {
	e.t.Helper()
	if toolsets == nil {
		toolsets = []string{}
	}
	var out map[string]any
	if code, _ := e.do(w.token, "POST", "/api/v1/skills", map[string]any{"name": name, "description": "Skill " + name, "toolsets": toolsets}, &out); code != http.StatusCreated {
		e.t.Fatalf("create skill %s: HTTP %d %v", name, code, out)
	}
}

// apiError is the JSON error shape.
type apiError struct {
	Error struct {
		Code              string `json:"code"`
		Message           string `json:"message"`
		Field             string `json:"field"`
		RetryAfterSeconds int    `json:"retry_after_seconds"`
	} `json:"error"`
}

// callJSON calls a tool over the JSON API.
func (e *env) callJSON(token, skill, tool string, args any) (int, http.Header, map[string]any) {
	e.t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	var out map[string]any
	code, h := e.do(token, "POST", "/api/v1/tools/"+tool+"?skill="+skill, args, &out)
	return code, h, out
}

// bearer adds an API token to requests.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// mcpSession connects the official MCP Go SDK client to a skill.
func (e *env) mcpSession(token, skill string) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "agent-test", Version: "1"}, nil)
	return client.Connect(e.t.Context(), &mcp.StreamableClientTransport{
		Endpoint:   e.url + "/mcp/skills/" + skill,
		HTTPClient: &http.Client{Transport: bearer{token: token, base: e.client.Transport}},
		MaxRetries: -1,
	}, nil)
}

func (e *env) mustMCP(token, skill string) *mcp.ClientSession {
	e.t.Helper()
	cs, err := e.mcpSession(token, skill)
	if err != nil {
		e.t.Fatalf("MCP connect to skill %s: %v", skill, err)
	}
	e.t.Cleanup(func() { cs.Close() })
	return cs
}

// toolNames lists the tools a session sees.
func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tl := range res.Tools {
		out = append(out, tl.Name)
	}
	return out
}

// callMCP calls a tool and returns its text and IsError.
func callMCP(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (string, bool) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if len(res.Content) != 1 {
		t.Fatalf("%s: %d content items", tool, len(res.Content))
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("%s: content %T", tool, res.Content[0])
	}
	return tc.Text, res.IsError
}

// mcpJSON calls a tool that must succeed and decodes its JSON answer.
func mcpJSON(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) map[string]any {
	t.Helper()
	text, isErr := callMCP(t, cs, tool, args)
	if isErr {
		t.Fatalf("%s(%v) failed: %s", tool, args, text)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		t.Fatalf("%s: answer is not a JSON object: %v\n%.300s", tool, err, text)
	}
	return out
}

func list(t *testing.T, m map[string]any, key string) []map[string]any {
	t.Helper()
	raw, ok := m[key].([]any)
	if !ok {
		t.Fatalf("no %s list in %.300v", key, m)
	}
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i] = v.(map[string]any)
	}
	return out
}
