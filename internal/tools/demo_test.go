package tools_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/demo"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// signalWriter collects output and closes ready when it has seen marker.
type signalWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	ready  chan struct{}
	once   sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.marker) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestDemoServesTheTriageSkillOverMCP: right after `clarion demo` starts,
// an MCP client with the token from demo-credentials.json can initialize,
// list the tools of skill "triage" and call ListIncidents.
func TestDemoServesTheTriageSkillOverMCP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	stdout := &signalWriter{marker: "Press Ctrl-C to stop.", ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- demo.Main(ctx, []string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--log-level", "error"}, stdout, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo.Main: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("demo.Main did not return after its context ended")
		}
	})
	select {
	case <-stdout.ready:
	case err := <-done:
		t.Fatalf("demo.Main returned early: %v\n%s", err, stdout)
	case <-time.After(60 * time.Second):
		t.Fatalf("the demo did not start within a minute:\n%s", stdout)
	}

	raw, err := os.ReadFile(filepath.Join(dir, "demo-credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var creds demo.Credentials
	if err := json.Unmarshal(raw, &creds); err != nil || creds.URL == "" || creds.APIToken == "" {
		t.Fatalf("credentials %s: %v", raw, err)
	}
	if !strings.Contains(stdout.String(), creds.URL+"/mcp/skills/triage") {
		t.Errorf("the banner does not show the skill's MCP URL:\n%s", stdout)
	}

	client := mcp.NewClient(&mcp.Implementation{Name: "demo-agent", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint:   creds.URL + "/mcp/skills/triage",
		HTTPClient: &http.Client{Transport: bearer{token: creds.APIToken, base: http.DefaultTransport}},
		MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	defer cs.Close()
	if res := cs.InitializeResult(); res == nil || res.ServerInfo == nil || !strings.Contains(res.Instructions, `"triage"`) {
		t.Errorf("initialize result %+v", res)
	}
	names := toolNames(t, cs)
	for _, want := range []string{"ListIncidents", "GetIncidentById", "RunAdvancedHuntingQuery", "query_lake", "search_tables", "list_sentinel_workspaces"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}
	if len(names) != 23 {
		t.Errorf("tools/list: %d tools, want the 20 triage and 3 data lake tools", len(names))
	}
	text, isErr := callMCP(t, cs, "ListIncidents", map[string]any{"top": 5})
	var page struct {
		Value []map[string]any `json:"value"`
	}
	if isErr || json.Unmarshal([]byte(text), &page) != nil || page.Value == nil {
		t.Fatalf("ListIncidents: %q (error %v)", text, isErr)
	}
}
